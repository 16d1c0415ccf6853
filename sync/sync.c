/*
 * es_sync_start/stop/now/status: the configuration checks, the handle and
 * the helpers every other file of sync shares (logging, clocks, sleeping,
 * the staging sweep). The protocol is in PROTOCOL.md; the cloud's and the
 * edge's machinery in cloud.c and edge.c.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <nng/nng.h>

#include "edgesync/cbor.h"
#include "edgesync/store_error.h"
#include "ident.h"
#include "sync_impl.h"
#include "sync_test.h"
#include "wire.h"

/* ---- logging and clocks ----------------------------------------------- */

static void vlog(struct es_sync *s, int level, const char *fmt, va_list ap)
{
	char msg[512];

	if (!s->host.log)
		return;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	s->host.log(s->host.arg, level, msg);
}

void sync_log(struct es_sync *s, int level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(s, level, fmt, ap);
	va_end(ap);
}

#define LOG_WINDOW_MS 10000
#define LOG_BURST     20

void sync_log_peer(struct es_sync *s, int level, const char *fmt, ...)
{
	uint64_t now = sync_mono_ms(), w = atomic_load(&s->log_window);
	unsigned n, dropped;
	va_list ap;

	if (now - w >= LOG_WINDOW_MS &&
	    atomic_compare_exchange_strong(&s->log_window, &w, now)) {
		n = atomic_exchange(&s->log_count, 0);
		dropped = n > LOG_BURST ? n - LOG_BURST : 0;
		if (dropped)
			sync_log(s, SYNC_LOG_WARN,
				 "sync: %u similar messages about peers "
				 "dropped in the last %d s",
				 dropped, LOG_WINDOW_MS / 1000);
	}
	if (atomic_fetch_add(&s->log_count, 1) >= LOG_BURST)
		return;
	va_start(ap, fmt);
	vlog(s, level, fmt, ap);
	va_end(ap);
}

static uint64_t clock_ms(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

uint64_t sync_wall_ms(void)
{
	return clock_ms(CLOCK_REALTIME);
}

uint64_t sync_mono_ms(void)
{
	return clock_ms(CLOCK_MONOTONIC);
}

uint64_t sync_mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

struct timespec sync_mono_ts(uint64_t ms)
{
	struct timespec ts = {.tv_sec = (time_t)(ms / 1000),
			      .tv_nsec = (long)(ms % 1000) * 1000000};

	return ts;
}

uint64_t sync_wall_hlc(void)
{
	return sync_wall_ms() << 16;
}

int sync_is_stopping(struct es_sync *s)
{
	return atomic_load(&s->stopping);
}

int sync_sleep(struct es_sync *s, uint64_t ms, uint64_t *wake_seen)
{
	uint64_t deadline = sync_mono_ms() + ms;
	struct timespec ts = sync_mono_ts(deadline);
	int rc = 0;

	pthread_mutex_lock(&s->lock);
	while (!sync_is_stopping(s) && !(wake_seen && s->wake != *wake_seen) &&
	       sync_mono_ms() < deadline)
		pthread_cond_timedwait(&s->cond, &s->lock, &ts);
	if (wake_seen)
		*wake_seen = s->wake;
	if (sync_is_stopping(s))
		rc = SYNC_E_STOPPED;
	pthread_mutex_unlock(&s->lock);
	return rc;
}

void sync_observe_hlc(struct es_sync *s, uint64_t hlc, const char *from)
{
	uint64_t ms = hlc >> 16;

	if (!s->host.hlc_observe || hlc == 0)
		return;
	if (ms > sync_wall_ms() + SYNC_CLOCK_AHEAD_MS) {
		sync_log_peer(s, SYNC_LOG_WARN,
			      "sync: %s's clock is more than a day ahead of "
			      "ours; not following it",
			      from);
		return;
	}
	s->host.hlc_observe(s->host.arg, hlc);
}

/*
 * The scope of kind under s whose "id" is id, or NULL. nng 1.5.2's
 * nng_stat_find_dialer and its kin cannot be used: they check the id of
 * the top scope only and then return the first scope of that kind found
 * anywhere below, so with two peers one would read the other's.
 */
static nng_stat *find_scope(nng_stat *s, const char *kind, int id)
{
	nng_stat *c, *idst, *found;

	if (nng_stat_type(s) != NNG_STAT_SCOPE)
		return NULL;
	if (!strcmp(nng_stat_name(s), kind)) {
		idst = nng_stat_find(s, "id");
		return idst && nng_stat_value(idst) == (uint64_t)id ? s : NULL;
	}
	for (c = nng_stat_child(s); c; c = nng_stat_next(c))
		if ((found = find_scope(c, kind, id)) != NULL)
			return found;
	return NULL;
}

int sync_nng_pipes(const char *kind, int id)
{
	nng_stat *root, *sc, *st;
	int n = -1;

	if (nng_stats_get(&root) != 0)
		return -1;
	sc = find_scope(root, kind, id);
	st = sc ? nng_stat_find(sc, "pipes") : NULL;
	if (st)
		n = (int)nng_stat_value(st);
	nng_stats_free(root);
	return n;
}

/* Counts in *n the "pipe" scopes under s of socket sock_id, and stores
 * their ids in ids when it is not NULL (see sync_nng_socket_pipes). */
static void pipe_scopes(nng_stat *s, int sock_id, uint32_t *ids, size_t *n)
{
	nng_stat *c, *sock, *id;

	if (nng_stat_type(s) != NNG_STAT_SCOPE)
		return;
	if (!strcmp(nng_stat_name(s), "pipe")) {
		sock = nng_stat_find(s, "socket");
		id = nng_stat_find(s, "id");
		if (sock && id && nng_stat_value(sock) == (uint64_t)sock_id) {
			if (ids)
				ids[*n] = (uint32_t)nng_stat_value(id);
			(*n)++;
		}
		return;
	}
	for (c = nng_stat_child(s); c; c = nng_stat_next(c))
		pipe_scopes(c, sock_id, ids, n);
}

int sync_nng_socket_pipes(int sock_id, uint32_t **ids)
{
	nng_stat *root;
	size_t n = 0;

	*ids = NULL;
	if (nng_stats_get(&root) != 0)
		return -ENOENT;
	/* Counted, then stored: two walks of one snapshot agree. */
	pipe_scopes(root, sock_id, NULL, &n);
	*ids = malloc((n ? n : 1) * sizeof(**ids));
	if (*ids) {
		n = 0;
		pipe_scopes(root, sock_id, *ids, &n);
	}
	nng_stats_free(root);
	if (!*ids)
		return -ENOMEM;
	return n > INT32_MAX ? INT32_MAX : (int)n;
}

int sync_nng_err(int rv)
{
	switch (rv) {
	case 0:
		return 0;
	case NNG_ETIMEDOUT:
		return -ETIMEDOUT;
	case NNG_ECLOSED:
		return -ESHUTDOWN;
	case NNG_ECONNREFUSED:
		return -ECONNREFUSED;
	case NNG_ECONNRESET:
	case NNG_ECONNSHUT:
		return -ECONNRESET;
	case NNG_ENOMEM:
		return -ENOMEM;
	case NNG_EADDRINUSE:
		return -EADDRINUSE;
	case NNG_EADDRINVAL:
	case NNG_EINVAL:
		return -EINVAL;
	case NNG_ECRYPTO:
	case NNG_EPEERAUTH:
		return ES_E_SYNC_AUTH;
	default:
		return -EIO;
	}
}

/* ---- staging sweep ---------------------------------------------------- */

static int installed(void *arg, const struct sync_stage_meta *m)
{
	struct es_sync *s = arg;

	return s->host.has_segment(s->host.arg, m->coll, m->origin,
				   m->origin_seq, NULL) == 1;
}

void sync_sweep_maybe(struct es_sync *s, int force)
{
	uint64_t now = sync_mono_ms();
	int n;

	pthread_mutex_lock(&s->sweep_lock);
	if (force || now - s->last_sweep_ms >= 3600 * 1000) {
		s->last_sweep_ms = now;
		n = sync_staging_sweep(&s->staging, SYNC_STAGE_MAX_AGE_S,
				       installed, s);
		if (n > 0)
			sync_log(s, SYNC_LOG_INFO,
				 "sync: removed %d stale staged transfers", n);
		else if (n < 0)
			sync_log(s, SYNC_LOG_WARN,
				 "sync: cannot sweep staging directory %s: %s",
				 s->staging.dir, es_sync_strerror(n));
	}
	pthread_mutex_unlock(&s->sweep_lock);
}

/* ---- the handle ------------------------------------------------------- */

static void sync_free(struct es_sync *s)
{
	sync_signer_free(s->signer);
	sync_verifier_free(s->verifier);
	sync_staging_fini(&s->staging);
	sync_config_free(&s->cfg);
	pthread_cond_destroy(&s->cond);
	pthread_mutex_destroy(&s->lock);
	pthread_mutex_destroy(&s->stat_lock);
	pthread_mutex_destroy(&s->sweep_lock);
	free(s);
}

static struct es_sync *sync_alloc(const struct es_sync_host *host)
{
	struct es_sync *s = calloc(1, sizeof(*s));
	pthread_condattr_t ca;

	if (!s)
		return NULL;
	s->host = *host;
	pthread_mutex_init(&s->lock, NULL);
	pthread_mutex_init(&s->stat_lock, NULL);
	pthread_mutex_init(&s->sweep_lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&s->cond, &ca);
	pthread_condattr_destroy(&ca);
	return s;
}

/* Loads what proves identities, for the URLs in use. */
static int load_identity(struct es_sync *s)
{
	const struct es_sync_config *c = &s->cfg;
	struct sync_url u;
	char why[256];
	int tls = 0, plain = 0, rc = 0;

	if (c->role == ES_SYNC_CLOUD) {
		sync_url_parse(c->listen_url, &u);
		tls = u.scheme == SYNC_URL_TLS;
		plain = !tls;
		if (tls)
			rc = sync_verifier_load(&s->verifier, c->tls_ca, why,
						sizeof(why));
	} else {
		for (size_t i = 0; i < c->n_peers; i++) {
			sync_url_parse(c->peers[i], &u);
			tls |= u.scheme == SYNC_URL_TLS;
			plain |= u.scheme != SYNC_URL_TLS;
		}
		if (tls)
			rc = sync_signer_load(&s->signer, c->tls_cert,
					      c->tls_key, why, sizeof(why));
	}
	if (rc) {
		sync_log(s, SYNC_LOG_ERROR, "sync: %s", why);
		return rc;
	}
	if (plain)
		sync_log(s, SYNC_LOG_WARN,
			 "sync: WARNING: plain tcp with a shared token: for "
			 "labs only; anyone on the path can read and replay "
			 "it. Use tls+tcp:// in production.");
	return 0;
}

int es_sync_start(struct es_sync **sp, const struct es_sync_config *c,
		  const struct es_sync_host *host)
{
	struct es_sync *s;
	int rc;

	*sp = NULL;
	if (!c || !host)
		return -EINVAL;
	s = sync_alloc(host);
	if (!s)
		return -ENOMEM;
	rc = sync_config_check(s, c, host);
	if (rc == 0)
		rc = sync_config_copy(&s->cfg, c);
	if (rc)
		goto err;
	rc = sync_staging_init(&s->staging, s->cfg.staging_dir);
	if (rc) {
		sync_log(s, SYNC_LOG_ERROR,
			 "sync: cannot use staging directory %s: %s",
			 s->cfg.staging_dir, es_sync_strerror(rc));
		goto err;
	}
	rc = load_identity(s);
	if (rc)
		goto err;
	sync_sweep_maybe(s, 1);
	if (s->cfg.role == ES_SYNC_CLOUD)
		rc = sync_cloud_start(s);
	else
		rc = sync_edge_start(s);
	if (rc)
		goto err;
	*sp = s;
	return 0;
err:
	sync_free(s);
	return rc;
}

void es_sync_stop(struct es_sync *s)
{
	if (!s)
		return;
	pthread_mutex_lock(&s->lock);
	atomic_store(&s->stopping, 1);
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
	if (s->cfg.role == ES_SYNC_CLOUD)
		sync_cloud_stop(s);
	else
		sync_edge_stop(s);
	sync_free(s);
}

void es_sync_now(struct es_sync *s)
{
	if (!s)
		return;
	pthread_mutex_lock(&s->lock);
	s->wake++;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
}

int es_sync_status(struct es_sync *s, struct es_sync_peer_status **out,
		   size_t *n)
{
	*out = NULL;
	*n = 0;
	if (!s)
		return -EINVAL;
	if (s->cfg.role == ES_SYNC_CLOUD)
		return sync_cloud_status(s, out, n);
	return sync_edge_status(s, out, n);
}

const char *es_sync_strerror(int err)
{
	switch (err) {
	case ES_E_SYNC_PROTOCOL:
		return "a peer message broke the sync protocol";
	case ES_E_SYNC_VERSION:
		return "the peer speaks another sync protocol version";
	case ES_E_SYNC_AUTH:
		return "the peer's identity or token was refused";
	case ES_E_SYNC_MISMATCH:
		return "the collection exists with another dim or metric";
	case ES_E_SYNC_CHECKSUM:
		return "a chunk or a segment failed its CRC32C or checks";
	case ES_E_SYNC_REFUSED:
		return "the peer refused the request";
	case ES_E_SYNC_CONFIG:
		return "the sync configuration is unusable";
	case ES_E_CBOR_MALFORMED:
		return "malformed CBOR";
	case ES_E_CBOR_SCHEMA:
		return "CBOR of an unexpected shape";
	case ES_E_CBOR_VALUE:
		return "a CBOR value out of range";
	case SYNC_E_OFFSET:
		return "not the receiver's offset";
	case SYNC_E_STOPPED:
		return "sync is stopping";
	case SYNC_E_RESTART:
		return "the transfer must start over";
	default:
		return es_store_strerror(err);
	}
}

struct sync_test_hooks sync_test_hooks;
