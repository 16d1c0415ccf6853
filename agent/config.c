/*
 * The configuration of `edgesync agent`: one table of options, an INI file
 * read with libinih, and the command line over it.
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
#include <grp.h>
#include <limits.h>
#include <math.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ini.h>

#include "config.h"
#include "cpu_list.h"
#include "edgesync/sync.h"

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
	size_t off;
};

static int set_value(struct es_config *c, const struct opt *o, const char *v,
		     int append, char *why, size_t wl);
static void clear_value(struct es_config *c, const struct opt *o);

#define FIELD(f) offsetof(struct es_config, f)
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
	"bytes per second per peer, suffix K, M or G (0: no limit)"),
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
		int rc = set_value(c, &opts[i], opts[i].pub.def, 0, why,
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
		clear_value(c, &opts[i]);
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
	rc = set_value(l->c, &opts[i], value, o->file && *o->file, why,
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
	rc = set_value(c, &opts[i], value,
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

/* ---- values ----------------------------------------------------------- */

static const char *const level_names[] = {"error", "warn", "info", "debug"};
static const char *const role_names[] = {"none", "edge", "cloud"};

const char *es_config_log_level_name(enum es_log_level l)
{
	return (unsigned)l < 4 ? level_names[l] : "?";
}

static void *field(struct es_config *c, const struct opt *o)
{
	return (char *)c + o->off;
}

static const void *cfield(const struct es_config *c, const struct opt *o)
{
	return (const char *)c + o->off;
}

/* Parses a whole number with an optional K, M, G or T (powers of 1024). */
static int parse_uint(const char *v, int suffix, uint64_t *out)
{
	unsigned long long n;
	unsigned shift = 0;
	char *end;

	if (*v < '0' || *v > '9')
		return -EINVAL;
	errno = 0;
	n = strtoull(v, &end, 10);
	if (errno)
		return -ERANGE;
	if (suffix && *end) {
		const char *units = "KMGT", *u = strchr(units, *end & ~0x20);

		if (!u || end[1])
			return -EINVAL;
		shift = 10 * (unsigned)(u - units + 1);
		end++;
		if (n > (ULLONG_MAX >> shift))
			return -ERANGE;
	}
	if (*end)
		return -EINVAL;
	*out = (uint64_t)n << shift;
	return 0;
}

static int set_number(struct es_config *c, const struct opt *o, const char *v,
		      char *why, size_t wl)
{
	double lo = o->pub.min, hi = o->pub.max;
	uint64_t n;
	int rc;

	if (o->type == T_FLOAT) {
		char *end;
		double d = strtod(v, &end);

		if (end == v || *end || !isfinite(d) || d < lo || d > hi) {
			snprintf(why, wl, "'%s' is not a number from %g to %g",
				 v, lo, hi);
			return -EINVAL;
		}
		*(double *)field(c, o) = d;
		return 0;
	}
	rc = parse_uint(v, o->type == T_SIZE, &n);
	if (rc == -EINVAL) {
		snprintf(why, wl, "'%s' is not a whole number%s", v,
			 o->type == T_SIZE ? " (with K, M or G)" : "");
		return rc;
	}
	if (rc < 0 || (double)n < lo || (double)n > hi) {
		snprintf(why, wl, "%s is out of range (%.0f to %.0f)", v, lo,
			 hi);
		return -ERANGE;
	}
	*(uint64_t *)field(c, o) = n;
	return 0;
}

static int set_name(struct es_config *c, const struct opt *o, const char *v,
		    char *why, size_t wl)
{
	int level = o->type == T_LEVEL, n = level ? 4 : 3;

	for (int i = 0; i < n; i++) {
		if (strcmp(v, level ? level_names[i] : role_names[i]))
			continue;
		if (level)
			c->log_level = (enum es_log_level)i;
		else
			c->role = (enum cfg_role)i;
		return 0;
	}
	snprintf(why, wl, "'%s' is not %s", v,
		 level ? "error, warn, info or debug" : "edge, cloud or none");
	return -EINVAL;
}

/* Checks a path: absolute, not too long; a T_FILE must be readable. */
static int check_path(const struct opt *o, const char *v, char *why, size_t wl)
{
	struct stat st;
	size_t max = o->off == FIELD(socket) ? 103 : PATH_MAX - 1;

	if (o->type == T_FILE && !*v)
		return 0;
	if (v[0] != '/') {
		snprintf(why, wl, "'%s' is not an absolute path", v);
		return -EINVAL;
	}
	if (strlen(v) > max) {
		snprintf(why, wl, "the path is longer than %zu bytes%s", max,
			 max == 103 ? ", the limit of the agent's Unix socket"
				    : "");
		return -ENAMETOOLONG;
	}
	if (o->type != T_FILE)
		return 0;
	if (stat(v, &st) < 0 || access(v, R_OK) < 0) {
		snprintf(why, wl, "%s: %s", v, strerror(errno));
		return -EINVAL;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(why, wl, "%s: not a regular file", v);
		return -EINVAL;
	}
	return 0;
}

static int check_token(const char *v, char *why, size_t wl)
{
	size_t n = strlen(v);

	if (n && n < 16) {
		snprintf(why, wl, "%zu characters; a token needs 16 or more",
			 n);
		return -EINVAL;
	}
	for (const char *p = v; *p; p++) {
		if ((unsigned char)*p <= ' ' || *p == 0x7f) {
			snprintf(why, wl,
				 "blanks and control characters are "
				 "not allowed in a token");
			return -EINVAL;
		}
	}
	return 0;
}

/*
 * Checks tcp://HOST:PORT or tls+tcp://HOST:PORT (HOST may be [IPv6]); a
 * listening address may leave HOST empty or "*" for every interface.
 */
static int check_url(const char *v, int listen, char *why, size_t wl)
{
	const char *host, *colon, *p;
	uint64_t port;
	size_t hl;

	if (!strncmp(v, "tcp://", 6))
		host = v + 6;
	else if (!strncmp(v, "tls+tcp://", 10))
		host = v + 10;
	else
		goto bad;
	colon = strrchr(host, ':');
	if (!colon || parse_uint(colon + 1, 0, &port) || !port || port > 65535)
		goto bad;
	hl = (size_t)(colon - host);
	if (hl && host[0] == '[') {
		if (hl < 3 || host[hl - 1] != ']')
			goto bad;
		host++;
		hl -= 2;
	}
	if (!listen && (!hl || (hl == 1 && host[0] == '*')))
		goto bad;
	for (p = host; p < host + hl; p++)
		if (!(strchr(".-_:*%", *p) || (*p >= '0' && *p <= '9') ||
		      ((*p | 0x20) >= 'a' && (*p | 0x20) <= 'z')))
			goto bad;
	return 0;
bad:
	snprintf(why, wl,
		 "'%s' is not tcp://HOST:PORT or tls+tcp://HOST:PORT%s", v,
		 listen ? "" : " with a host");
	return -EINVAL;
}

static int set_string(struct es_config *c, const struct opt *o, const char *v,
		      char *why, size_t wl)
{
	char **dst = field(c, o), *copy;
	cpu_set_t cpus;
	int rc;

	if (o->type == T_PATH && !*v) {
		snprintf(why, wl, "empty");
		return -EINVAL;
	}
	if (o->type == T_TOKEN)
		rc = check_token(v, why, wl);
	else if (o->type == T_LISTEN)
		rc = *v ? check_url(v, 1, why, wl) : 0;
	else if (o->type == T_CPUS)
		rc = *v ? es_cpu_list_parse(v, &cpus, why, wl) : 0;
	else
		rc = check_path(o, v, why, wl);
	if (rc < 0)
		return rc;
	copy = strdup(v);
	if (!copy) {
		snprintf(why, wl, "out of memory");
		return -ENOMEM;
	}
	free(*dst);
	*dst = copy;
	return 0;
}

static void clear_devices(struct es_config *c)
{
	for (size_t i = 0; i < c->n_allow_devices; i++)
		free(c->allow_devices[i]);
	free(c->allow_devices);
	c->allow_devices = NULL;
	c->n_allow_devices = 0;
}

static int add_peer(struct es_config *c, const char *v, int append, char *why,
		    size_t wl)
{
	char **peers, *copy;
	int rc = *v ? check_url(v, 0, why, wl) : 0;

	if (rc < 0)
		return rc;
	if (!append) {
		for (size_t i = 0; i < c->n_peers; i++)
			free(c->peers[i]);
		c->n_peers = 0;
	}
	if (!*v)
		return 0; /* "peer =" empties the list */
	peers = realloc(c->peers, (c->n_peers + 1) * sizeof(*peers));
	copy = strdup(v);
	if (peers)
		c->peers = peers;
	if (!peers || !copy) {
		free(copy);
		snprintf(why, wl, "out of memory");
		return -ENOMEM;
	}
	c->peers[c->n_peers++] = copy;
	return 0;
}

/* Adds the device ids of v (split at commas and blanks) to the list, each
 * checked by es_sync_device_check. */
static int add_devices(struct es_config *c, const char *v, int append,
		       char *why, size_t wl)
{
	char *copy = strdup(v), *tok, *save = NULL, **grown;
	size_t n = append ? c->n_allow_devices : 0, cap = n + strlen(v) / 2 + 1;
	int rc = copy ? 0 : -ENOMEM;

	grown = rc ? NULL : calloc(cap, sizeof(*grown));
	if (!grown)
		rc = -ENOMEM;
	for (size_t i = 0; rc == 0 && i < n; i++)
		if (!(grown[i] = strdup(c->allow_devices[i])))
			rc = -ENOMEM;
	for (tok = rc ? NULL : strtok_r(copy, ", \t", &save); tok;
	     tok = strtok_r(NULL, ", \t", &save)) {
		rc = es_sync_device_check(tok, why, wl);
		if (rc == 0 && !(grown[n++] = strdup(tok)))
			rc = -ENOMEM;
		if (rc)
			break;
	}
	if (rc == -ENOMEM)
		snprintf(why, wl, "out of memory");
	if (rc == 0) { /* a whole value replaces the list, never half */
		clear_devices(c);
		c->allow_devices = grown;
		c->n_allow_devices = n;
		grown = NULL;
	}
	for (size_t i = 0; grown && i < cap; i++)
		free(grown[i]);
	free(grown);
	free(copy);
	return rc;
}

/* Resolves a user or group by name or number. */
static int resolve_id(const char *name, int group, uint32_t *id, char *why,
		      size_t wl)
{
	struct passwd pw, *pwr = NULL;
	struct group gr, *grr = NULL;
	size_t len = 4096;
	uint64_t n;
	char *buf;
	int rc;

	if (!parse_uint(name, 0, &n)) {
		if (n >= UINT32_MAX) {
			snprintf(why, wl, "%s is not a valid %s id", name,
				 group ? "group" : "user");
			return -EINVAL;
		}
		*id = (uint32_t)n;
		return 0;
	}
	for (;;) {
		buf = malloc(len);
		if (!buf) {
			snprintf(why, wl, "out of memory");
			return -ENOMEM;
		}
		rc = group ? getgrnam_r(name, &gr, buf, len, &grr)
			   : getpwnam_r(name, &pw, buf, len, &pwr);
		if (rc != ERANGE || len >= (1u << 20))
			break;
		free(buf);
		len *= 4;
	}
	if (pwr)
		*id = pwr->pw_uid;
	if (grr)
		*id = grr->gr_gid;
	free(buf);
	if (pwr || grr)
		return 0;
	if (rc)
		snprintf(why, wl, "cannot look up %s '%s': %s",
			 group ? "group" : "user", name, strerror(rc));
	else
		snprintf(why, wl, "no %s named '%s'", group ? "group" : "user",
			 name);
	return -EINVAL;
}

_Static_assert(sizeof(uid_t) == 4 && sizeof(gid_t) == 4,
	       "uids and gids are kept as uint32_t");

/* Sets a list of users or groups, split at commas and blanks. */
static int set_ids(struct es_config *c, const struct opt *o, const char *v,
		   char *why, size_t wl)
{
	int group = o->type == T_GROUPS;
	char *copy = strdup(v), *tok, *save = NULL;
	uint32_t *ids = calloc(strlen(v) / 2 + 1, sizeof(*ids));
	size_t n = 0;
	int rc = 0;

	if (!copy || !ids) {
		snprintf(why, wl, "out of memory");
		rc = -ENOMEM;
		goto out;
	}
	for (tok = strtok_r(copy, ", \t", &save); tok;
	     tok = strtok_r(NULL, ", \t", &save)) {
		rc = resolve_id(tok, group, &ids[n], why, wl);
		if (rc < 0)
			goto out;
		n++;
	}
	if (group) {
		free(c->allow_gids);
		c->allow_gids = (gid_t *)ids;
		c->n_allow_gids = n;
	} else {
		free(c->allow_uids);
		c->allow_uids = (uid_t *)ids;
		c->n_allow_uids = n;
	}
	ids = NULL;
out:
	free(ids);
	free(copy);
	return rc;
}

static int set_bool(struct es_config *c, const struct opt *o, const char *v,
		    char *why, size_t wl)
{
	if (!strcmp(v, "true") || !strcmp(v, "false")) {
		*(int *)field(c, o) = v[0] == 't';
		return 0;
	}
	snprintf(why, wl, "'%s' is not true or false", v);
	return -EINVAL;
}

static int set_value(struct es_config *c, const struct opt *o, const char *v,
		     int append, char *why, size_t wl)
{
	switch (o->type) {
	case T_BOOL:
		return set_bool(c, o, v, why, wl);
	case T_PATH:
	case T_FILE:
	case T_TOKEN:
	case T_LISTEN:
	case T_CPUS:
		return set_string(c, o, v, why, wl);
	case T_UINT:
	case T_SIZE:
	case T_FLOAT:
		return set_number(c, o, v, why, wl);
	case T_LEVEL:
	case T_ROLE:
		return set_name(c, o, v, why, wl);
	case T_USERS:
	case T_GROUPS:
		return set_ids(c, o, v, why, wl);
	case T_PEERS:
		return add_peer(c, v, append, why, wl);
	case T_DEVICES:
		return add_devices(c, v, append, why, wl);
	}
	return -EINVAL;
}

static void clear_value(struct es_config *c, const struct opt *o)
{
	switch (o->type) {
	case T_PATH:
	case T_FILE:
	case T_TOKEN:
	case T_LISTEN:
	case T_CPUS:
		free(*(char **)field(c, o));
		*(char **)field(c, o) = NULL;
		break;
	case T_USERS:
	case T_GROUPS:
		free(*(void **)field(c, o));
		*(void **)field(c, o) = NULL;
		break;
	case T_PEERS:
		for (size_t i = 0; i < c->n_peers; i++)
			free(c->peers[i]);
		free(c->peers);
		c->peers = NULL;
		c->n_peers = 0;
		break;
	case T_DEVICES:
		clear_devices(c);
		break;
	default:
		break;
	}
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
	       c->index_wait != ES_CONFIG_DEFAULT_INDEX_WAIT;
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

		snprintf(why, sizeof(why), "%llu is less than index-r (%llu)",
			 (unsigned long long)c->index_l,
			 (unsigned long long)c->index_r);
		return fail(c, "index-l", err, errlen, why);
	}
	if (es_config_sync_set(c))
		return check_sync(c, err, errlen);
	return 0;
}

/* ---- printing values -------------------------------------------------- */

static int format_ids(const uint32_t *ids, size_t n, char *buf, size_t len)
{
	size_t used = 0;

	if (len)
		buf[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		int k = snprintf(buf + (used < len ? used : len),
				 used < len ? len - used : 0, "%s%u",
				 i ? "," : "", ids[i]);

		used += (size_t)k;
	}
	return (int)used;
}

int es_config_format(const struct es_config *c, size_t i, char *buf, size_t len)
{
	const struct opt *o = &opts[i];
	const void *f = cfield(c, o);

	switch (o->type) {
	case T_PATH:
	case T_FILE:
	case T_TOKEN:
	case T_LISTEN:
	case T_CPUS:
		return snprintf(buf, len, "%s", *(char *const *)f);
	case T_UINT:
	case T_SIZE:
		return snprintf(buf, len, "%llu",
				(unsigned long long)*(const uint64_t *)f);
	case T_FLOAT:
		return snprintf(buf, len, "%g", *(const double *)f);
	case T_BOOL:
		return snprintf(buf, len, "%s",
				*(const int *)f ? "true" : "false");
	case T_LEVEL:
		return snprintf(buf, len, "%s", level_names[c->log_level]);
	case T_ROLE:
		return snprintf(buf, len, "%s", role_names[c->role]);
	case T_USERS:
		return format_ids(c->allow_uids, c->n_allow_uids, buf, len);
	case T_GROUPS:
		return format_ids(c->allow_gids, c->n_allow_gids, buf, len);
	case T_PEERS: {
		size_t used = 0;

		if (len)
			buf[0] = '\0';
		for (size_t k = 0; k < c->n_peers; k++)
			used +=
			    (size_t)snprintf(buf + (used < len ? used : len),
					     used < len ? len - used : 0,
					     "%s%s", k ? " " : "", c->peers[k]);
		return (int)used;
	}
	case T_DEVICES: {
		size_t used = 0;

		if (len)
			buf[0] = '\0';
		for (size_t k = 0; k < c->n_allow_devices; k++)
			used += (size_t)snprintf(
			    buf + (used < len ? used : len),
			    used < len ? len - used : 0, "%s%s", k ? "," : "",
			    c->allow_devices[k]);
		return (int)used;
	}
	}
	return 0;
}
