/*
 * Private to the agent: the configuration of `edgesync agent`.
 *
 * Every option lives in one table in config.c (name, section, type,
 * default, bounds, help, whether SIGHUP reloads it). The same name is the
 * key in the INI file, under its section, and the long command-line option
 * (--name VALUE), which overrides the file. Loading is three steps:
 * es_config_init (the defaults), es_config_load (a file) and es_config_set
 * (one option at a time, from the command line), then es_config_check for
 * the rules that span options. Every step returns 0 or a negative errno
 * (-EINVAL for a bad value) and writes, on failure, one line to err that
 * names the file, the line, the key and what was wrong.
 *
 * The struct is filled by these functions only; es_config_fini frees it.
 * Nothing here prints, exits or touches global state.
 */
#ifndef EDGESYNC_CONFIG_H
#define EDGESYNC_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "engine.h"

#define ES_CONFIG_DEFAULT_FILE		"/etc/edgesync/edgesync.conf"
#define ES_CONFIG_DEFAULT_SOCKET	"/run/edgesync/agent.sock"
#define ES_CONFIG_DEFAULT_DATA_DIR	"/var/lib/edgesync"
#define ES_CONFIG_DEFAULT_SYNC_INTERVAL 5000 /* ms */
#define ES_CONFIG_DEFAULT_CHUNK_SIZE	(1u << 20)
#define ES_CONFIG_DEFAULT_BACKOFF_MAX	60000  /* ms */
#define ES_CONFIG_DEFAULT_INDEX_WAIT	600000 /* ms */
#define ES_CONFIG_DEFAULT_IDLE_TIMEOUT	600000 /* ms */

/* An error message: file, line, key and what was wrong. */
#define ES_CONFIG_ERR_MAX 512

enum cfg_role { CFG_ROLE_NONE, CFG_ROLE_EDGE, CFG_ROLE_CLOUD };

struct es_config {
	/* [agent] */
	char *data_dir;
	enum es_log_level log_level;
	char *cpus; /* a CPU list (cpu_list.h); "": not pinned */
	/* [api] */
	char *socket;
	uint64_t workers;
	uint64_t max_message;
	uint64_t max_clients;
	uid_t *allow_uids;
	size_t n_allow_uids;
	gid_t *allow_gids;
	size_t n_allow_gids;
	/* [store] */
	uint64_t seal_threshold;
	uint64_t index_r;
	uint64_t index_l;
	double index_alpha;
	uint64_t build_threads;
	/* [sync] */
	enum cfg_role role;
	char *listen;
	char **peers;
	size_t n_peers;
	char *token;
	char *tls_cert;
	char *tls_key;
	char *tls_ca;
	char **allow_devices; /* cloud: device ids admitted */
	size_t n_allow_devices;
	uint64_t bandwidth;
	uint64_t sync_interval; /* edge: ms between rounds */
	uint64_t chunk_size;	/* bytes per chunk (and largest accepted) */
	uint64_t backoff_max;	/* edge: ms, cap of the reconnect backoff */
	int fetch_indexes;	/* edge: take the cloud's indexes */
	uint64_t index_wait;	/* edge: ms to wait for the cloud's index */
	uint64_t idle_timeout;	/* cloud: ms without a request, 0: never */

	char *path; /* the file loaded, if any */
	/* Where each option was last set (indexed like the table). */
	struct es_config_origin {
		const char *file; /* NULL: default; "" command line */
		int line;
	} * origin;
};

/* One row of the option table, as --help shows it. */
struct es_config_option {
	const char *name;
	const char *section;
	const char *arg; /* what the value looks like, for help */
	const char *def; /* default, as it would be written in the file */
	const char *help;
	double min, max; /* bounds of a number; both 0 otherwise */
	int reloadable;	 /* SIGHUP applies it */
	int repeatable;	 /* may be given more than once (a list) */
	int flag;	 /* true/false; --NAME alone on the command line */
};

/* es_config_option returns row i of the table, NULL past the end. */
const struct es_config_option *es_config_option(size_t i);

/* es_config_init sets every option to its default; 0 or -ENOMEM. */
int es_config_init(struct es_config *c);
void es_config_fini(struct es_config *c);

/*
 * es_config_load reads an INI file over c. Unknown sections and keys, a
 * key outside its section, a key given twice and any bad value are errors.
 */
int es_config_load(struct es_config *c, const char *path, char *err,
		   size_t errlen);

/*
 * es_config_set sets the option named name (as in the table) from the
 * command line. A repeatable option given on the command line replaces
 * the file's list; later values add to it.
 */
int es_config_set(struct es_config *c, const char *name, const char *value,
		  char *err, size_t errlen);

/* es_config_check applies the rules between options (index-l >= index-r,
 * the sync options that go together). */
int es_config_check(const struct es_config *c, char *err, size_t errlen);

/* es_config_sync_set says whether any sync option is set. */
int es_config_sync_set(const struct es_config *c);

/*
 * es_config_format writes the value of option i (an index into the
 * table) as the file would spell it; returns snprintf's count.
 */
int es_config_format(const struct es_config *c, size_t i, char *buf,
		     size_t len);

/* es_config_log_level_name: "error", "warn", "info", "debug". */
const char *es_config_log_level_name(enum es_log_level l);

#endif
