/*
 * The cloud's sessions (one per connection) and per-device counters;
 * cloud.h says how they live and die.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cloud.h"

void cloud_sessions_init(struct sync_cloud *c)
{
	pthread_mutex_init(&c->sess_lock, NULL);
}

void cloud_session_end_upload(struct cloud_session *ss)
{
	free(ss->up.tombs);
	memset(&ss->up, 0, sizeof(ss->up));
}

static void session_free(struct sync_cloud *c, struct cloud_session *ss)
{
	if (ss->dev) {
		pthread_mutex_lock(&c->s->stat_lock);
		if (--ss->dev->sessions == 0)
			ss->dev->st.connected = 0;
		pthread_mutex_unlock(&c->s->stat_lock);
	}
	cloud_session_end_upload(ss);
	if (ss->fetch.fd >= 0)
		close(ss->fetch.fd);
	free(ss->tc.t);
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
	} else if (ev == NNG_PIPE_EV_REM_POST)
		session_remove(c, nng_pipe_id(p));
}

struct cloud_session *cloud_session_get(struct sync_cloud *c, uint32_t id)
{
	struct cloud_session *ss;

	pthread_mutex_lock(&c->sess_lock);
	for (ss = c->sess[id % CLOUD_BUCKETS]; ss; ss = ss->next)
		if (ss->pipe == id)
			break;
	if (ss)
		ss->refs++;
	pthread_mutex_unlock(&c->sess_lock);
	return ss;
}

void cloud_session_put(struct sync_cloud *c, struct cloud_session *ss)
{
	int last;

	pthread_mutex_lock(&c->sess_lock);
	last = --ss->refs == 0;
	pthread_mutex_unlock(&c->sess_lock);
	if (last)
		session_free(c, ss);
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
		cloud_session_end_upload(ss);
		snprintf(ss->device, sizeof(ss->device), "%s", device);
	}
	ss->authed = 1;
	return 0;
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
