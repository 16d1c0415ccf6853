/*
 * The cloud's sessions (one per connection) and per-device counters;
 * cloud.h says how they live and die. Also admission: a device that
 * proved its identity is admitted if allow_devices lists it, in lab mode,
 * or if the host approved it at run time (asked at every hello, so a
 * revocation takes effect at the next one; es_sync_device_approval closes
 * the revoked device's connections to make that now).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cloud.h"
#include "sync_test.h"

void cloud_sessions_init(struct sync_cloud *c)
{
	pthread_mutex_init(&c->sess_lock, NULL);
}

void cloud_session_end_upload(struct sync_cloud *c, struct cloud_session *ss)
{
	struct sync_staging *st = &c->s->staging;
	struct cloud_upload *up = &ss->up;
	pthread_mutex_t *lk;
	int busy, last;

	/*
	 * The upload's room back, if it was the last transfer of its key
	 * (staging.h). This can run on nng's thread that tears connections
	 * down, and a commit can hold the key's lock for minutes: a busy key
	 * keeps its room until its next begin or the sweep. A failed
	 * writeback must start the transfer over, so that waits.
	 */
	if (up->holding) {
		lk = sync_staging_lock(st, up->key);
		busy = up->w.werr ? pthread_mutex_lock(lk)
				  : pthread_mutex_trylock(lk);
		last = sync_staging_unhold(st, up->key) == 0;
		if (!busy && (last || up->w.werr))
			sync_staging_release(st, up->key, &up->w);
		if (!busy)
			pthread_mutex_unlock(lk);
	}
	cloud_upload_release(up);
}

static void session_free(struct sync_cloud *c, struct cloud_session *ss)
{
	if (ss->dev) {
		pthread_mutex_lock(&c->s->stat_lock);
		if (--ss->dev->sessions == 0)
			ss->dev->st.connected = 0;
		pthread_mutex_unlock(&c->s->stat_lock);
	}
	cloud_session_end_upload(c, ss);
	if (ss->fetch.fd >= 0)
		close(ss->fetch.fd);
	free(ss->tombs.v);
	free(ss->clocks.v);
	pthread_mutex_destroy(&ss->lock);
	free(ss);
}

void cloud_sessions_fini(struct sync_cloud *c)
{
	struct cloud_session *ss, *next;
	struct cloud_device *d, *dn;

	for (size_t b = 0; b < CLOUD_BUCKETS; b++) {
		for (ss = c->sess[b]; ss; ss = next) {
			next = ss->next;
			session_free(c, ss);
		}
		c->sess[b] = NULL;
	}
	for (d = c->devices; d; d = dn) {
		dn = d->next;
		free(d);
	}
	c->devices = NULL;
	pthread_mutex_destroy(&c->sess_lock);
}

static void session_add(struct sync_cloud *c, nng_pipe p)
{
	uint32_t id = nng_pipe_id(p);
	struct cloud_session *ss;

	pthread_mutex_lock(&c->sess_lock);
	if (c->n_sess >= CLOUD_SESSIONS_MAX || !(ss = calloc(1, sizeof(*ss)))) {
		pthread_mutex_unlock(&c->sess_lock);
		sync_log_peer(c->s, SYNC_LOG_WARN,
			      "sync: refusing a connection: %d connections "
			      "open already",
			      CLOUD_SESSIONS_MAX);
		nng_pipe_close(p);
		return;
	}
	ss->pipe = id;
	ss->refs = 1;
	ss->active_ms = sync_mono_ms();
	ss->fetch.fd = -1;
	pthread_mutex_init(&ss->lock, NULL);
	ss->next = c->sess[id % CLOUD_BUCKETS];
	c->sess[id % CLOUD_BUCKETS] = ss;
	c->n_sess++;
	pthread_mutex_unlock(&c->sess_lock);
}

static void session_remove(struct sync_cloud *c, uint32_t id)
{
	struct cloud_session **pp, *ss = NULL;

	pthread_mutex_lock(&c->sess_lock);
	for (pp = &c->sess[id % CLOUD_BUCKETS]; *pp; pp = &(*pp)->next) {
		if ((*pp)->pipe == id) {
			ss = *pp;
			*pp = ss->next;
			c->n_sess--;
			break;
		}
	}
	if (ss && --ss->refs > 0)
		ss = NULL; /* a worker holds it and frees it */
	pthread_mutex_unlock(&c->sess_lock);
	if (ss)
		session_free(c, ss);
}

void cloud_pipe_event(nng_pipe p, nng_pipe_ev ev, void *arg)
{
	struct sync_cloud *c = arg;

	if (ev == NNG_PIPE_EV_ADD_PRE) {
		atomic_fetch_add(&c->accepted, 1);
		session_add(c, p);
	} else if (ev == NNG_PIPE_EV_REM_POST) {
		session_remove(c, nng_pipe_id(p));
		if (sync_test_hooks.pipe_removed)
			sync_test_hooks.pipe_removed(sync_test_hooks.arg,
						     nng_pipe_id(p));
	}
}

struct cloud_session *cloud_session_find(struct sync_cloud *c, uint32_t id)
{
	struct cloud_session *ss;

	for (ss = c->sess[id % CLOUD_BUCKETS]; ss; ss = ss->next)
		if (ss->pipe == id)
			break;
	return ss;
}

struct cloud_session *cloud_session_get(struct sync_cloud *c, uint32_t id)
{
	struct cloud_session *ss;

	pthread_mutex_lock(&c->sess_lock);
	ss = cloud_session_find(c, id);
	if (ss) {
		ss->refs++;
		ss->active_ms = sync_mono_ms();
	}
	pthread_mutex_unlock(&c->sess_lock);
	return ss;
}

void cloud_session_put(struct sync_cloud *c, struct cloud_session *ss)
{
	int last;

	pthread_mutex_lock(&c->sess_lock);
	last = --ss->refs == 0;
	ss->active_ms = sync_mono_ms();
	pthread_mutex_unlock(&c->sess_lock);
	if (last)
		session_free(c, ss);
}

/* A connection that went idle, closed by cloud_sessions_close_idle. */
struct idle_conn {
	uint32_t pipe;
	uint64_t idle_ms;
	char device[ES_SYNC_DEVICE_MAX + 1]; /* "" before a hello */
};

void cloud_sessions_close_idle(struct sync_cloud *c, uint64_t idle_ms)
{
	struct idle_conn *idle;
	struct cloud_session *ss;
	size_t n = 0, max;
	uint64_t now;

	pthread_mutex_lock(&c->sess_lock);
	max = c->n_sess;
	pthread_mutex_unlock(&c->sess_lock);
	idle = calloc(max + 1, sizeof(*idle));
	if (!idle)
		return;
	/* sess_lock, then stat_lock (ss->dev); the pipes close unlocked.
	 * now is read under the lock, so no active_ms is later than it. */
	pthread_mutex_lock(&c->sess_lock);
	now = sync_mono_ms();
	pthread_mutex_lock(&c->s->stat_lock);
	for (size_t b = 0; n < max && b < CLOUD_BUCKETS; b++) {
		for (ss = c->sess[b]; ss && n < max; ss = ss->next) {
			if (ss->refs > 1 || ss->active_ms + idle_ms > now)
				continue; /* in a request, or not idle */
			idle[n].pipe = ss->pipe;
			idle[n].idle_ms = now - ss->active_ms;
			if (ss->dev)
				snprintf(idle[n].device, sizeof(idle[n].device),
					 "%s", ss->dev->st.device);
			n++;
		}
	}
	pthread_mutex_unlock(&c->s->stat_lock);
	pthread_mutex_unlock(&c->sess_lock);
	for (size_t i = 0; i < n; i++) {
		nng_pipe p = NNG_PIPE_INITIALIZER;

		/* An edge that syncs less often than idle_ms dials
		 * again at once and leaves a connection without a
		 * hello each time: those are closed quietly. */
		sync_log(c->s,
			 idle[i].device[0] ? SYNC_LOG_INFO : SYNC_LOG_DEBUG,
			 "sync: closing connection %" PRIu32 " of %s: no "
			 "request for %" PRIu64 " ms (idle-timeout)",
			 idle[i].pipe,
			 idle[i].device[0] ? idle[i].device
					   : "a peer that never said hello",
			 idle[i].idle_ms);
		p.id = idle[i].pipe;
		nng_pipe_close(p);
	}
	free(idle);
}

/* The counters of device, created if new; under s->stat_lock. */
static struct cloud_device *device_get(struct sync_cloud *c, const char *device)
{
	struct cloud_device *d;

	for (d = c->devices; d; d = d->next)
		if (!strcmp(d->st.device, device))
			return d;
	if (c->n_devices >= CLOUD_DEVICES_MAX)
		return NULL;
	d = calloc(1, sizeof(*d));
	if (!d)
		return NULL;
	snprintf(d->st.device, sizeof(d->st.device), "%s", device);
	snprintf(d->st.peer, sizeof(d->st.peer), "%s", device);
	d->next = c->devices;
	c->devices = d;
	c->n_devices++;
	return d;
}

int cloud_session_auth(struct sync_cloud *c, struct cloud_session *ss,
		       const char *device)
{
	struct cloud_device *d;

	pthread_mutex_lock(&c->s->stat_lock);
	d = device_get(c, device);
	if (d)
		d->st.awaiting_approval = 0;
	if (d && ss->dev != d) {
		if (ss->dev && --ss->dev->sessions == 0)
			ss->dev->st.connected = 0;
		d->sessions++;
		d->st.connected = 1;
		ss->dev = d;
	}
	pthread_mutex_unlock(&c->s->stat_lock);
	if (!d)
		return -ENOMEM;
	if (strcmp(ss->device, device) != 0) {
		cloud_session_end_upload(c, ss);
		snprintf(ss->device, sizeof(ss->device), "%s", device);
	}
	ss->authed = 1;
	return 0;
}

/* ---- admission -------------------------------------------------------- */

static int in_allow_list(const struct es_sync_config *cfg, const char *device)
{
	for (size_t i = 0; i < cfg->n_allow_devices; i++)
		if (!strcmp(cfg->allow_devices[i], device))
			return 1;
	return 0;
}

/* Lab mode: no allow list and no approvals to ask (plain tcp, or a host
 * without device_approved): every holder of the token is admitted. */
static int lab_mode(const struct sync_cloud *c)
{
	return c->s->cfg.n_allow_devices == 0 &&
	       (c->url.scheme != SYNC_URL_TLS || !c->s->host.device_approved);
}

int cloud_admit(struct sync_cloud *c, const char *device, struct sync_fail *f)
{
	const struct es_sync_host *h = &c->s->host;
	struct cloud_device *d;
	int rc;

	if (in_allow_list(&c->s->cfg, device) || lab_mode(c))
		return 0;
	rc = h->device_approved ? h->device_approved(h->arg, device) : 0;
	if (rc < 0)
		return sync_failf(f, SYNC_C_INTERNAL,
				  "cannot look up the approval of '%s': %s",
				  device, es_sync_strerror(rc));
	if (rc > 0)
		return 0;
	pthread_mutex_lock(&c->s->stat_lock);
	d = device_get(c, device);
	if (d)
		d->st.awaiting_approval = 1;
	pthread_mutex_unlock(&c->s->stat_lock);
	return sync_failf(f, SYNC_C_AUTH,
			  "device '%s' is not in allow_devices nor approved: "
			  "run `edgesync peers approve %s` on the cloud",
			  device, device);
}

int es_sync_device_approval(struct es_sync *s, const char *device, int approved)
{
	struct sync_cloud *c = s->cloud;
	struct cloud_session *ss;
	struct cloud_device *d;
	uint32_t *pipes = NULL;
	size_t n = 0;

	if (!device || es_sync_device_check(device, NULL, 0))
		return -EINVAL;
	if (s->cfg.role != ES_SYNC_CLOUD || !c)
		return 0;
	if (in_allow_list(&s->cfg, device) || lab_mode(c))
		return 1;
	if (approved) {
		pthread_mutex_lock(&s->stat_lock);
		for (d = c->devices; d; d = d->next)
			if (!strcmp(d->st.device, device))
				d->st.awaiting_approval = 0;
		pthread_mutex_unlock(&s->stat_lock);
		return 0;
	}
	/* sess_lock, then stat_lock (ss->dev); the pipes close unlocked */
	pthread_mutex_lock(&c->sess_lock);
	pipes = calloc(c->n_sess + 1, sizeof(*pipes));
	pthread_mutex_lock(&s->stat_lock);
	for (d = c->devices; d; d = d->next)
		if (!strcmp(d->st.device, device))
			d->st.awaiting_approval = 1;
	for (size_t b = 0; pipes && b < CLOUD_BUCKETS; b++)
		for (ss = c->sess[b]; ss; ss = ss->next)
			if (ss->dev && !strcmp(ss->dev->st.device, device))
				pipes[n++] = ss->pipe;
	pthread_mutex_unlock(&s->stat_lock);
	pthread_mutex_unlock(&c->sess_lock);
	for (size_t i = 0; i < n; i++) {
		nng_pipe p = NNG_PIPE_INITIALIZER;

		p.id = pipes[i];
		nng_pipe_close(p);
	}
	free(pipes);
	if (n)
		sync_log(s, SYNC_LOG_INFO,
			 "sync: device %s revoked: closed its %zu "
			 "connection(s)",
			 device, n);
	return pipes ? 0 : -ENOMEM;
}

int sync_cloud_status(struct es_sync *s, struct es_sync_peer_status **out,
		      size_t *n)
{
	struct sync_cloud *c = s->cloud;
	struct cloud_device *d;
	size_t k = 0;

	pthread_mutex_lock(&s->stat_lock);
	*out = calloc(c->n_devices ? c->n_devices : 1, sizeof(**out));
	if (!*out) {
		pthread_mutex_unlock(&s->stat_lock);
		return -ENOMEM;
	}
	for (d = c->devices; d; d = d->next)
		(*out)[k++] = d->st;
	pthread_mutex_unlock(&s->stat_lock);
	*n = k;
	return 0;
}
