/*
 * The configuration of `edgesync agent`: one table of options, an INI file
 * read with libinih, the command line over it, and the rules between
 * options. What one option's value may be (its parsing, bounds and
 * printing) is in config_value.c.
 *
 * Invariants:
 *   1. Every option is one row of opts[]: its name is the INI key (under
 *      its section) and the long command-line option. Nothing else names
 *      an option, so --help, the file and the command line cannot drift.
 *   2. A default is text that goes through the same setter as the file
 *      and the command line (es_config_init), so it obeys the bounds.
 *   3. A value is checked whole before it replaces the old one: a setter
 *      that fails leaves its option as it was.
 *   4. origin[i] says where option i got its value (default, FILE:LINE,
 *      command line), so every error can point at the line to fix.
 *   5. Only es_config_check looks at more than one option.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <ini.h>

#include "config.h"
#include "config_opt.h"

#define OPT(nm, sec, arg, def, ty, fld, lo, hi, rel, help)                     \
	{                                                                      \
		{nm,	      sec,  arg,                                       \
		 def,	      help, lo,                                        \
		 hi,	      rel,  ty == T_PEERS || ty == T_DEVICES,          \
		 ty == T_BOOL},                                                \
		    ty, FIELD(fld)                                             \
	}

static const struct opt opts[] = {
    OPT("data-dir", "agent", "DIR", ES_CONFIG_DEFAULT_DATA_DIR, T_PATH,
	data_dir, 0, 0, 0,
	"directory of the manifest, write-ahead logs, segments, indexes"),
    OPT("log-level", "agent", "LEVEL", "info", T_LEVEL, log_level, 0, 0, 1,
	"error, warn, info or debug"),
    OPT("cpus", "agent", "LIST", "", T_CPUS, cpus, 0, 0, 0,
	"CPUs the agent runs on, like 0-1,3 (empty: every CPU it may use)"),
    OPT("socket", "api", "PATH", ES_CONFIG_DEFAULT_SOCKET, T_PATH, socket, 0, 0,
	0, "Unix socket of the local API (mode 0660, its directory 0750)"),
    OPT("workers", "api", "N", "16", T_UINT, workers, 1, 1024, 0,
	"requests served at once"),
    OPT("max-message", "api", "BYTES", "64M", T_SIZE, max_message, 65536,
	1073741824.0, 0, "largest request taken (suffix K, M or G)"),
    OPT("max-clients", "api", "N", "4096", T_UINT, max_clients, 1, 65536, 0,
	"connections at once (and at most half the open-file limit)"),
    OPT("allow-users", "api", "USERS", "", T_USERS, allow_uids, 0, 0, 0,
	"users besides root and the agent's own who may connect: names "
	"or uids, comma-separated"),
    OPT("allow-groups", "api", "GROUPS", "", T_GROUPS, allow_gids, 0, 0, 0,
	"groups whose members may connect: names or gids, "
	"comma-separated"),
    OPT("seal-threshold", "store", "N", "65536", T_UINT, seal_threshold, 1,
	67108864, 0,
	"vectors in a collection's growing buffer that make "
	"it a segment"),
    OPT("index-r", "store", "R", "64", T_UINT, index_r, 2, 1024, 0,
	"Vamana index: largest out-degree of a node"),
    OPT("index-l", "store", "L", "100", T_UINT, index_l, 2, 4096, 0,
	"Vamana index: search list while building (at least index-r)"),
    OPT("index-alpha", "store", "ALPHA", "1.2", T_FLOAT, index_alpha, 1.0, 2.0,
	0, "Vamana index: pruning factor of the second pass"),
    OPT("build-threads", "store", "N", "0", T_UINT, build_threads, 0, 256, 0,
	"threads that build indexes (0: every core)"),
    OPT("role", "sync", "ROLE", "none", T_ROLE, role, 0, 0, 0,
	"edge (dials its peers), cloud (listens) or none"),
    OPT("listen", "sync", "URL", "", T_LISTEN, listen, 0, 0, 0,
	"cloud: address to listen on, tcp://HOST:PORT or "
	"tls+tcp://HOST:PORT"),
    OPT("peer", "sync", "URL", "", T_PEERS, peers, 0, 0, 0,
	"edge: a cloud to sync with (repeat for more)"),
    OPT("token", "sync", "SECRET", "", T_TOKEN, token, 0, 0, 0,
	"shared secret of tcp:// peers, 16 characters or more (labs "
	"only: use TLS)"),
    OPT("tls-cert", "sync", "FILE", "", T_FILE, tls_cert, 0, 0, 0,
	"this agent's certificate (PEM)"),
    OPT("tls-key", "sync", "FILE", "", T_FILE, tls_key, 0, 0, 0,
	"this agent's private key (PEM)"),
    OPT("tls-ca", "sync", "FILE", "", T_FILE, tls_ca, 0, 0, 0,
	"certificates of the authorities that sign peers (PEM)"),
    OPT("allow-devices", "sync", "IDS", "", T_DEVICES, allow_devices, 0, 0, 0,
	"cloud: device ids admitted (comma-separated, or repeat the key); "
	"others only once `edgesync peers approve`d"),
    OPT("bandwidth", "sync", "BYTES", "0", T_SIZE, bandwidth, 0,
	1099511627776.0, 0,
	"edge: bytes per second per peer, suffix K, M or G (0: no limit); "
	"a chunk then carries at most a minute of it"),
    OPT("sync-interval", "sync", "MS", "5000", T_UINT, sync_interval, 100,
	86400000, 0, "edge: milliseconds between sync rounds"),
    OPT("chunk-size", "sync", "BYTES", "1M", T_SIZE, chunk_size, 1024,
	16777216.0, 0,
	"bytes per transfer chunk (a cloud: the largest it takes)"),
    OPT("backoff-max", "sync", "MS", "60000", T_UINT, backoff_max, 100,
	86400000, 0,
	"edge: longest wait, in milliseconds, before retrying a failed "
	"round"),
    OPT("fetch-indexes", "sync", "BOOL", "false", T_BOOL, fetch_indexes, 0, 0,
	0,
	"edge: download the index a cloud built with each segment "
	"(checked, then used as is) instead of building it here"),
    OPT("index-wait", "sync", "MS", "600000", T_UINT, index_wait, 0, 86400000,
	0,
	"edge with fetch-indexes: milliseconds to wait for a cloud to index "
	"a segment it publishes without one, before taking it alone (0: "
	"never wait)"),
    OPT("idle-timeout", "sync", "MS", "600000", T_UINT, idle_timeout, 0,
	86400000, 0,
	"cloud: close a connection that sent no request for this many "
	"milliseconds, such as one whose edge vanished without closing it "
	"(0: never)"),
};

#define N_OPTS (sizeof(opts) / sizeof(opts[0]))

static const char *const sections[] = {"agent", "api", "store", "sync"};

const struct es_config_option *es_config_option(size_t i)
{
	return i < N_OPTS ? &opts[i].pub : NULL;
}

static int find_opt(const char *name)
{
	for (size_t i = 0; i < N_OPTS; i++)
		if (!strcmp(opts[i].pub.name, name))
			return (int)i;
	return -1;
}

int es_config_init(struct es_config *c)
{
	char why[ES_CONFIG_ERR_MAX];

	memset(c, 0, sizeof(*c));
	c->origin = calloc(N_OPTS, sizeof(*c->origin));
	if (!c->origin)
		return -ENOMEM;
	for (size_t i = 0; i < N_OPTS; i++) {
		int rc = config_value_set(c, &opts[i], opts[i].pub.def, 0, why,
					  sizeof(why));

		if (rc < 0) {
			es_config_fini(c);
			return rc == -ENOMEM ? rc : -EINVAL;
		}
	}
	return 0;
}

void es_config_fini(struct es_config *c)
{
	for (size_t i = 0; i < N_OPTS; i++)
		config_value_clear(c, &opts[i]);
	free(c->origin);
	free(c->path);
	memset(c, 0, sizeof(*c));
}

/* ---- the INI file ----------------------------------------------------- */

struct load {
	struct es_config *c;
	FILE *f;
	int line;
	int indented; /* the current line starts with a blank */
	int bad_line; /* the line err describes, 0 if none */
	char *err;
	size_t errlen;
};

/*
 * Hands inih one physical line at a time, so its line count is ours; a
 * line longer than inih's buffer is an error, not two lines.
 */
static char *read_line(char *str, int num, void *stream)
{
	struct load *l = stream;
	size_t len;
	int ch;

	if (!fgets(str, num, l->f))
		return NULL;
	l->line++;
	l->indented = str[0] == ' ' || str[0] == '\t';
	len = strlen(str);
	if (len + 1 < (size_t)num || str[len - 1] == '\n')
		return str;
	while ((ch = fgetc(l->f)) != EOF && ch != '\n')
		;
	if (!l->bad_line) {
		snprintf(l->err, l->errlen,
			 "%s:%d: the line is longer than %d characters",
			 l->c->path, l->line, num - 3);
		l->bad_line = l->line;
	}
	str[0] = '\0';
	return str;
}

static void key_error(const char *section, const char *name, char *why,
		      size_t wl)
{
	int s = -1, i = find_opt(name);

	for (size_t k = 0; k < sizeof(sections) / sizeof(sections[0]); k++)
		if (!strcmp(section, sections[k]))
			s = (int)k;
	if (i < 0 && s < 0 && *section)
		snprintf(why, wl, "[%s] is not a section (%s)", section,
			 "agent, api, store, sync");
	else if (i < 0)
		snprintf(why, wl, "unknown key");
	else if (!*section)
		snprintf(why, wl, "outside any section; it belongs in [%s]",
			 opts[i].pub.section);
	else
		snprintf(why, wl, "belongs in [%s], not [%s]",
			 opts[i].pub.section, section);
}

static int on_key(void *user, const char *section, const char *name,
		  const char *value)
{
	struct load *l = user;
	struct es_config_origin *o;
	char why[ES_CONFIG_ERR_MAX - 64];
	int i = find_opt(name), rc;

	if (l->bad_line)
		return 1; /* one error is reported: the first */
	if (i < 0 || strcmp(section, opts[i].pub.section)) {
		key_error(section, name, why, sizeof(why));
		goto bad;
	}
	o = &l->c->origin[i];
	if (o->file && *o->file && !opts[i].pub.repeatable) {
		snprintf(why, sizeof(why), "given twice (first on line %d)%s",
			 o->line,
			 l->indented ? "; an indented line continues the "
				       "key before it"
				     : "");
		goto bad;
	}
	rc = config_value_set(l->c, &opts[i], value, o->file && *o->file, why,
			      sizeof(why));
	if (rc < 0)
		goto bad;
	o->file = l->c->path;
	o->line = l->line;
	return 1;
bad:
	snprintf(l->err, l->errlen, "%s:%d: %s: %s", l->c->path, l->line, name,
		 why);
	l->bad_line = l->line;
	return 1;
}

int es_config_load(struct es_config *c, const char *path, char *err,
		   size_t errlen)
{
	struct load l = {.c = c, .err = err, .errlen = errlen};
	struct stat st;
	int rc;

	free(c->path);
	c->path = strdup(path);
	if (!c->path) {
		snprintf(err, errlen, "%s: out of memory", path);
		return -ENOMEM;
	}
	l.f = fopen(path, "re");
	if (!l.f) {
		rc = -errno;
		snprintf(err, errlen, "%s: %s", path, strerror(-rc));
		return rc;
	}
	if (fstat(fileno(l.f), &st) < 0 || !S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "%s: not a regular file", path);
		fclose(l.f);
		return -EINVAL;
	}
	rc = ini_parse_stream(read_line, &l, on_key, &l);
	if (rc == 0 && ferror(l.f)) {
		snprintf(err, errlen, "%s:%d: read error", path, l.line);
		rc = -EIO;
	} else if (rc == -2) {
		snprintf(err, errlen, "%s: out of memory", path);
		rc = -ENOMEM;
	} else if (rc > 0 && (!l.bad_line || rc < l.bad_line)) {
		snprintf(err, errlen, "%s:%d: %s", path, rc,
			 "not a '[section]' or a 'key = value' line");
		rc = -EINVAL;
	} else if (l.bad_line) {
		rc = -EINVAL;
	}
	fclose(l.f);
	return rc;
}

/* ---- the command line ------------------------------------------------- */

int es_config_set(struct es_config *c, const char *name, const char *value,
		  char *err, size_t errlen)
{
	char why[ES_CONFIG_ERR_MAX - 64];
	int i = find_opt(name), rc;

	if (i < 0) {
		snprintf(err, errlen, "--%s: unknown option", name);
		return -EINVAL;
	}
	/* a repeatable option given here replaces the file's list */
	rc = config_value_set(c, &opts[i], value,
			      c->origin[i].file && !*c->origin[i].file, why,
			      sizeof(why));
	if (rc < 0) {
		snprintf(err, errlen, "--%s: %s", name, why);
		return rc;
	}
	c->origin[i].file = "";
	c->origin[i].line = 0;
	return 0;
}

/* Writes where option i was set: "FILE:LINE: name", "--name" or "name". */
static void where(const struct es_config *c, size_t i, char *buf, size_t len)
{
	const struct es_config_origin *o = &c->origin[i];

	if (!o->file && c->path)
		snprintf(buf, len, "%s: %s", c->path, opts[i].pub.name);
	else if (!o->file)
		snprintf(buf, len, "%s", opts[i].pub.name);
	else if (!*o->file)
		snprintf(buf, len, "--%s", opts[i].pub.name);
	else
		snprintf(buf, len, "%s:%d: %s", o->file, o->line,
			 opts[i].pub.name);
}

/* ---- rules between options -------------------------------------------- */

int es_config_sync_set(const struct es_config *c)
{
	return c->role != CFG_ROLE_NONE || *c->listen || c->n_peers ||
	       *c->token || *c->tls_cert || *c->tls_key || *c->tls_ca ||
	       c->bandwidth || c->n_allow_devices ||
	       c->sync_interval != ES_CONFIG_DEFAULT_SYNC_INTERVAL ||
	       c->chunk_size != ES_CONFIG_DEFAULT_CHUNK_SIZE ||
	       c->backoff_max != ES_CONFIG_DEFAULT_BACKOFF_MAX ||
	       c->fetch_indexes ||
	       c->index_wait != ES_CONFIG_DEFAULT_INDEX_WAIT ||
	       c->idle_timeout != ES_CONFIG_DEFAULT_IDLE_TIMEOUT;
}

/* The name of the first sync option that is set, for messages. */
static const char *first_sync_key(const struct es_config *c)
{
	const char *set[] = {c->listen, c->token, c->tls_cert, c->tls_key,
			     c->tls_ca};
	static const char *const names[] = {"listen", "token", "tls-cert",
					    "tls-key", "tls-ca"};

	if (c->n_peers)
		return "peer";
	for (int i = 0; i < 5; i++)
		if (*set[i])
			return names[i];
	if (c->n_allow_devices)
		return "allow-devices";
	if (c->sync_interval != ES_CONFIG_DEFAULT_SYNC_INTERVAL)
		return "sync-interval";
	if (c->chunk_size != ES_CONFIG_DEFAULT_CHUNK_SIZE)
		return "chunk-size";
	if (c->backoff_max != ES_CONFIG_DEFAULT_BACKOFF_MAX)
		return "backoff-max";
	if (c->fetch_indexes)
		return "fetch-indexes";
	if (c->index_wait != ES_CONFIG_DEFAULT_INDEX_WAIT)
		return "index-wait";
	if (c->idle_timeout != ES_CONFIG_DEFAULT_IDLE_TIMEOUT)
		return "idle-timeout";
	return c->bandwidth ? "bandwidth" : "role";
}

static int fail(const struct es_config *c, const char *name, char *err,
		size_t errlen, const char *why)
{
	char at[ES_CONFIG_ERR_MAX / 2];

	where(c, (size_t)find_opt(name), at, sizeof(at));
	snprintf(err, errlen, "%s: %s", at, why);
	return -EINVAL;
}

/* The sync options: who dials and who listens, TLS or a token. */
static int check_sync(const struct es_config *c, char *err, size_t errlen)
{
	const char *addr = c->role == CFG_ROLE_EDGE ? "peer" : "listen";
	const char *tls_set;
	int tls = 0, plain = 0;

	if (*c->listen && !strncmp(c->listen, "tls+", 4))
		tls++;
	else if (*c->listen)
		plain++;
	for (size_t i = 0; i < c->n_peers; i++) {
		if (!strncmp(c->peers[i], "tls+", 4))
			tls++;
		else
			plain++;
	}
	if (c->role == CFG_ROLE_NONE)
		return fail(c, first_sync_key(c), err, errlen,
			    "set, but role is none (make it edge or cloud)");
	if (c->role == CFG_ROLE_EDGE && !c->n_peers)
		return fail(c, "role", err, errlen,
			    "an edge needs at least one peer");
	if (c->role == CFG_ROLE_EDGE && *c->listen)
		return fail(c, "listen", err, errlen,
			    "an edge dials its peers; only a cloud listens");
	if (c->role == CFG_ROLE_CLOUD && !*c->listen)
		return fail(c, "role", err, errlen,
			    "a cloud needs a listen address");
	if (c->role == CFG_ROLE_CLOUD && c->n_peers)
		return fail(c, "peer", err, errlen,
			    "a cloud listens; peers are for edges");
	if (c->role == CFG_ROLE_EDGE && c->n_allow_devices)
		return fail(c, "allow-devices", err, errlen,
			    "a cloud admits devices; an edge dials its peers");
	if (c->role == CFG_ROLE_EDGE &&
	    c->origin[find_opt("idle-timeout")].file)
		return fail(c, "idle-timeout", err, errlen,
			    "set on an edge: only a cloud closes idle "
			    "connections (an edge times out each request "
			    "instead)");
	if (c->role == CFG_ROLE_CLOUD) { /* what only an edge does */
		const char *k =
		    c->bandwidth ? "bandwidth"
		    : c->sync_interval != ES_CONFIG_DEFAULT_SYNC_INTERVAL
			? "sync-interval"
		    : c->backoff_max != ES_CONFIG_DEFAULT_BACKOFF_MAX
			? "backoff-max"
			: NULL;

		if (k)
			return fail(c, k, err, errlen,
				    "set on a cloud: only an edge dials, "
				    "paces and retries rounds");
	}
	if (c->role == CFG_ROLE_CLOUD && c->fetch_indexes)
		return fail(c, "fetch-indexes", err, errlen,
			    "an edge fetches indexes; a cloud serves its own");
	if (!c->fetch_indexes && c->index_wait != ES_CONFIG_DEFAULT_INDEX_WAIT)
		return fail(c, "index-wait", err, errlen,
			    "set, but fetch-indexes is false");
	if (tls && plain)
		return fail(c, addr, err, errlen,
			    "mixes tcp:// and tls+tcp://");
	if (tls && (!*c->tls_cert || !*c->tls_key || !*c->tls_ca))
		return fail(c, addr, err, errlen,
			    "tls+tcp:// needs tls-cert, tls-key and tls-ca");
	/* a TLS cloud without allow-devices admits only devices approved
	 * at run time (`edgesync peers approve`) */
	if (tls)
		return 0;
	tls_set = *c->tls_cert	? "tls-cert"
		  : *c->tls_key ? "tls-key"
		  : *c->tls_ca	? "tls-ca"
				: NULL;
	if (tls_set)
		return fail(
		    c, tls_set, err, errlen,
		    "set, but the addresses are tcp://, not tls+tcp://");
	if (!*c->token)
		return fail(c, addr, err, errlen,
			    "tcp:// without TLS needs a token (labs only)");
	return 0;
}

int es_config_check(const struct es_config *c, char *err, size_t errlen)
{
	if (c->index_l < c->index_r) {
		char why[128];

		/* the one given, if only one was: the default is not wrong */
		if (c->origin[find_opt("index-l")].file ||
		    !c->origin[find_opt("index-r")].file) {
			snprintf(why, sizeof(why),
				 "%llu is less than index-r (%llu)",
				 (unsigned long long)c->index_l,
				 (unsigned long long)c->index_r);
			return fail(c, "index-l", err, errlen, why);
		}
		snprintf(why, sizeof(why),
			 "%llu is more than index-l (%llu, its default)",
			 (unsigned long long)c->index_r,
			 (unsigned long long)c->index_l);
		return fail(c, "index-r", err, errlen, why);
	}
	if (es_config_sync_set(c))
		return check_sync(c, err, errlen);
	return 0;
}

int es_config_format(const struct es_config *c, size_t i, char *buf, size_t len)
{
	return config_value_format(c, &opts[i], buf, len);
}
