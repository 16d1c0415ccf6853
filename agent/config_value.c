/*
 * One option's value (config_opt.h): its text parsed and checked against
 * the option's type and bounds, set, cleared and printed back. Users and
 * groups are resolved to ids here, paths and files checked, URLs parsed.
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

#include "config_opt.h"
#include "cpu_list.h"
#include "edgesync/sync.h"

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
	const char *host, *colon, *p, *what = "";
	uint64_t port;
	size_t hl;

	if (!strncmp(v, "tcp://", 6))
		host = v + 6;
	else if (!strncmp(v, "tls+tcp://", 10))
		host = v + 10;
	else
		goto bad;
	what = ": the port must be 1 to 65535";
	colon = strrchr(host, ':');
	if (!colon || parse_uint(colon + 1, 0, &port) || !port || port > 65535)
		goto bad;
	what = ": the host is not a name or an address";
	hl = (size_t)(colon - host);
	if (hl && host[0] == '[') {
		if (hl < 3 || host[hl - 1] != ']')
			goto bad;
		host++;
		hl -= 2;
	}
	if (!listen && (!hl || (hl == 1 && host[0] == '*'))) {
		what = ": a peer needs a host";
		goto bad;
	}
	for (p = host; p < host + hl; p++)
		if (!(strchr(".-_:*%", *p) || (*p >= '0' && *p <= '9') ||
		      ((*p | 0x20) >= 'a' && (*p | 0x20) <= 'z')))
			goto bad;
	return 0;
bad:
	snprintf(why, wl,
		 "'%s' is not tcp://HOST:PORT or tls+tcp://HOST:PORT%s", v,
		 what);
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

int config_value_set(struct es_config *c, const struct opt *o, const char *v,
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

void config_value_clear(struct es_config *c, const struct opt *o)
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

/* ---- printing values -------------------------------------------------- */

/* The n strings of v joined by sep into buf (snprintf's contract). */
static int format_words(char *const *v, size_t n, const char *sep, char *buf,
			size_t len)
{
	size_t used = 0;

	if (len)
		buf[0] = '\0';
	for (size_t i = 0; i < n; i++)
		used += (size_t)snprintf(buf + (used < len ? used : len),
					 used < len ? len - used : 0, "%s%s",
					 i ? sep : "", v[i]);
	return (int)used;
}

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

int config_value_format(const struct es_config *c, const struct opt *o,
			char *buf, size_t len)
{
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
	case T_PEERS:
		return format_words(c->peers, c->n_peers, " ", buf, len);
	case T_DEVICES:
		return format_words(c->allow_devices, c->n_allow_devices, ",",
				    buf, len);
	}
	return 0;
}
