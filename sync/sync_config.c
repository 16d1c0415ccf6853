/*
 * The configuration of es_sync_start: checked (ES_E_SYNC_CONFIG with a
 * log line naming what is wrong) and copied, so the caller's strings need
 * not outlive the call.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sync_impl.h"
#include "wire.h"

static int bad(struct es_sync *s, const char *what)
{
	sync_log(s, SYNC_LOG_ERROR, "sync: configuration: %s", what);
	return ES_E_SYNC_CONFIG;
}

/* A device id of the configuration (in field), by the one rule
 * (es_sync_device_check), which says what is wrong with it. */
static int bad_device(struct es_sync *s, const char *field, const char *dev)
{
	char why[ES_SYNC_DEVICE_MAX + 128], msg[sizeof(why) + 64];

	if (dev && es_sync_device_check(dev, why, sizeof(why)) == 0)
		return 0;
	snprintf(msg, sizeof(msg), "%s: %s", field,
		 dev ? why : "a device id is missing");
	return bad(s, msg);
}

static int tls_files(struct es_sync *s, const struct es_sync_config *c)
{
	if (!c->tls_cert || !c->tls_key || !c->tls_ca || !*c->tls_cert ||
	    !*c->tls_key || !*c->tls_ca)
		return bad(s, "tls+tcp:// needs tls_cert, tls_key and tls_ca");
	return 0;
}

static int check_token(struct es_sync *s, const char *token)
{
	size_t n = token ? strlen(token) : 0;

	if (!token || n == 0)
		return 0;
	if (n < SYNC_TOKEN_MIN || n > SYNC_TOKEN_MAX)
		return bad(s, "the token must be 16 to 256 characters");
	return 0;
}

static int check_cloud(struct es_sync *s, const struct es_sync_config *c,
		       const struct es_sync_host *h)
{
	struct sync_url u;
	int has_token = c->token && *c->token;

	if (!c->listen_url || sync_url_parse(c->listen_url, &u))
		return bad(s, "a cloud needs listen_url: tcp://host:port, "
			      "tls+tcp://host:port or ipc:///path");
	for (size_t i = 0; i < c->n_allow_devices; i++)
		if (bad_device(s, "allow_devices", c->allow_devices[i]))
			return ES_E_SYNC_CONFIG;
	if (u.scheme == SYNC_URL_TLS) {
		if (tls_files(s, c))
			return ES_E_SYNC_CONFIG;
		if (c->n_allow_devices == 0 && !has_token &&
		    !h->device_approved)
			return bad(s, "a TLS cloud needs allow_devices (or a "
				      "token): it would admit any device the "
				      "CA ever signed");
		if (c->n_allow_devices == 0 && h->device_approved)
			sync_log(s, SYNC_LOG_INFO,
				 "sync: no allow_devices: this TLS cloud "
				 "admits only devices approved at run time "
				 "(`edgesync peers approve DEVICE`)");
		return 0;
	}
	if (!has_token)
		return bad(s, "a cloud on plain tcp:// or ipc:// needs a "
			      "token; use tls+tcp:// in production");
	return 0;
}

static int check_edge(struct es_sync *s, const struct es_sync_config *c)
{
	struct sync_url u;

	if (c->n_peers == 0 || !c->peers)
		return bad(s, "an edge needs at least one peer URL");
	for (size_t i = 0; i < c->n_peers; i++) {
		if (!c->peers[i] || sync_url_parse(c->peers[i], &u))
			return bad(s, "a peer URL is not tcp://host:port, "
				      "tls+tcp://host:port or ipc:///path");
		if (u.scheme == SYNC_URL_TLS && tls_files(s, c))
			return ES_E_SYNC_CONFIG;
		if (u.scheme != SYNC_URL_TLS && (!c->token || !*c->token))
			return bad(s, "a plain tcp:// or ipc:// peer needs a "
				      "token");
		if (strlen(c->peers[i]) > 127) /* status .peer */
			return bad(s, "a peer URL is longer than 127 bytes");
	}
	return 0;
}

static int check_host(struct es_sync *s, const struct es_sync_host *h)
{
	if (!h->list_collections || !h->ensure_collection ||
	    !h->list_segments || !h->segment_tombstones || !h->segment_clocks ||
	    !h->segment_path || !h->has_segment || !h->install || !h->ack_get ||
	    !h->ack_put)
		return bad(s, "the host lacks a callback");
	return 0;
}

int sync_config_check(struct es_sync *s, const struct es_sync_config *c,
		      const struct es_sync_host *h)
{
	if (check_host(s, h))
		return ES_E_SYNC_CONFIG;
	if (bad_device(s, "device_id", c->device_id))
		return ES_E_SYNC_CONFIG;
	if (!c->staging_dir || !*c->staging_dir)
		return bad(s, "staging_dir is required");
	if (c->chunk_size &&
	    (c->chunk_size < SYNC_CHUNK_MIN || c->chunk_size > SYNC_CHUNK_MAX))
		return bad(s, "chunk_size must be 1 KiB to 16 MiB");
	if (check_token(s, c->token))
		return ES_E_SYNC_CONFIG;
	if (c->fetch_indexes && !h->install_indexed)
		return bad(s, "fetch_indexes needs the host's install_indexed");
	if (c->role == ES_SYNC_CLOUD)
		return check_cloud(s, c, h);
	if (c->role == ES_SYNC_EDGE)
		return check_edge(s, c);
	return bad(s, "role must be edge or cloud");
}

enum es_sync_role es_sync_role(const struct es_sync *s)
{
	return s->cfg.role;
}

/* ---- the copy --------------------------------------------------------- */

static int dup(const char **dst, const char *src)
{
	if (!src) {
		*dst = NULL;
		return 0;
	}
	*dst = strdup(src);
	return *dst ? 0 : -ENOMEM;
}

static int dup_list(const char *const **dst, const char *const *src, size_t n)
{
	const char **v;

	*dst = NULL;
	if (n == 0)
		return 0;
	v = calloc(n, sizeof(*v));
	if (!v)
		return -ENOMEM;
	*dst = v;
	for (size_t i = 0; i < n; i++)
		if (dup(&v[i], src[i]))
			return -ENOMEM;
	return 0;
}

int sync_config_copy(struct es_sync_config *d, const struct es_sync_config *c)
{
	*d = *c;
	d->device_id = d->listen_url = d->token = NULL;
	d->tls_cert = d->tls_key = d->tls_ca = d->staging_dir = NULL;
	d->peers = d->allow_devices = NULL;
	if (dup(&d->device_id, c->device_id) ||
	    dup(&d->listen_url, c->listen_url) || dup(&d->token, c->token) ||
	    dup(&d->tls_cert, c->tls_cert) || dup(&d->tls_key, c->tls_key) ||
	    dup(&d->tls_ca, c->tls_ca) ||
	    dup(&d->staging_dir, c->staging_dir) ||
	    dup_list(&d->peers, c->peers, c->n_peers) ||
	    dup_list(&d->allow_devices, c->allow_devices, c->n_allow_devices))
		return -ENOMEM;
	if (!d->chunk_size)
		d->chunk_size = SYNC_CHUNK_DEFAULT;
	if (!d->interval_ms)
		d->interval_ms = 5000;
	if (!d->backoff_max_ms)
		d->backoff_max_ms = 60000;
	return 0;
}

static void free_list(const char *const *v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		free((char *)v[i]);
	free((void *)v);
}

void sync_config_free(struct es_sync_config *d)
{
	free((char *)d->device_id);
	free((char *)d->listen_url);
	free((char *)d->token);
	free((char *)d->tls_cert);
	free((char *)d->tls_key);
	free((char *)d->tls_ca);
	free((char *)d->staging_dir);
	free_list(d->peers, d->n_peers);
	free_list(d->allow_devices, d->n_allow_devices);
	memset(d, 0, sizeof(*d));
}
