/*
 * Private to the agent's configuration: an option's row (config.c holds
 * the table, opts[]) and what is done to one option's value
 * (config_value.c): parse and set it, clear it, print it.
 */
#ifndef EDGESYNC_CONFIG_OPT_H
#define EDGESYNC_CONFIG_OPT_H

#include <stddef.h>

#include "config.h"

enum opt_type {
	T_PATH,	   /* an absolute path */
	T_FILE,	   /* an absolute path to a readable file, or empty */
	T_TOKEN,   /* a secret of 16 characters or more, or empty */
	T_UINT,	   /* a whole number within bounds */
	T_SIZE,	   /* a whole number of bytes, suffix K, M, G */
	T_FLOAT,   /* a finite number within bounds */
	T_LEVEL,   /* enum es_log_level by name */
	T_ROLE,	   /* enum cfg_role by name */
	T_USERS,   /* user names or uids */
	T_GROUPS,  /* group names or gids */
	T_LISTEN,  /* a tcp:// or tls+tcp:// address to listen on, or empty */
	T_CPUS,	   /* a list of CPUs (cpu_list.h), or empty */
	T_PEERS,   /* a tcp:// or tls+tcp:// address to dial, repeatable */
	T_DEVICES, /* device ids, comma-separated, repeatable */
	T_BOOL,	   /* true or false; on the command line, alone: true */
};

struct opt {
	struct es_config_option pub;
	enum opt_type type;
	size_t off; /* of its field in struct es_config: FIELD(name) */
};

#define FIELD(f) offsetof(struct es_config, f)

/*
 * Sets o from the text v, checked whole first (a failure leaves o as it
 * was); append adds to a repeatable option instead of replacing it.
 * 0, or -errno (-EINVAL, -ERANGE, ...) with the reason in why.
 */
int config_value_set(struct es_config *c, const struct opt *o, const char *v,
		     int append, char *why, size_t wl);
/* Frees what o's value holds and leaves it empty. */
void config_value_clear(struct es_config *c, const struct opt *o);
/* o's value as text into buf (snprintf's contract). */
int config_value_format(const struct es_config *c, const struct opt *o,
			char *buf, size_t len);

#endif
