/* An in-memory engine for the API server's tests: see fake_engine.h. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edgesync/distance.h"
#include "edgesync/store_error.h"
#include "fake_engine.h"

#define MAX_COLLS 16

struct fcoll {
	struct es_collection_info info;
	uint64_t *ids;
	float *vecs;
	size_t n, cap;
};

struct es_engine {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct fcoll colls[MAX_COLLS];
	unsigned slow_entered;
	unsigned permits; /* blocked searches on "slow" that may finish */
	int released;
	int fail;
	char redim_name[ES_ENGINE_NAME_MAX + 1];
	uint32_t redim;
	uint64_t inserts, searches;
	uint32_t default_flags; /* for ES_ENGINE_FLAGS_DEFAULT */
};

const char *es_engine_strerror(int err)
{
	switch (err) {
	case ES_E_ENGINE_NOCOLL:
		return "no such collection";
	case ES_E_ENGINE_EXISTS:
		return "collection exists already";
	case ES_E_ENGINE_NOTFOUND:
		return "no vector with that id";
	case ES_E_ENGINE_DIM:
		return "vector has the wrong dimension";
	case -EIO:
		return "Input/output error";
	case ES_E_ENGINE_NOSYNC:
		return "this agent does not sync (no role configured)";
	}
	return "fake engine error";
}

void es_engine_config_defaults(struct es_engine_config *c)
{
	memset(c, 0, sizeof(*c));
}

int es_engine_open(struct es_engine **ep, const struct es_engine_config *c)
{
	struct es_engine *e = calloc(1, sizeof(*e));

	if (!e)
		return -ENOMEM;
	e->default_flags = c->default_flags;
	pthread_mutex_init(&e->mu, NULL);
	pthread_cond_init(&e->cv, NULL);
	*ep = e;
	return 0;
}

void es_engine_close(struct es_engine *e)
{
	for (int i = 0; i < MAX_COLLS; i++) {
		free(e->colls[i].ids);
		free(e->colls[i].vecs);
	}
	pthread_cond_destroy(&e->cv);
	pthread_mutex_destroy(&e->mu);
	free(e);
}

unsigned fake_engine_slow_entered(struct es_engine *e)
{
	unsigned n;

	pthread_mutex_lock(&e->mu);
	n = e->slow_entered;
	pthread_mutex_unlock(&e->mu);
	return n;
}

void fake_engine_wait_slow(struct es_engine *e, unsigned n)
{
	pthread_mutex_lock(&e->mu);
	while (e->slow_entered < n)
		pthread_cond_wait(&e->cv, &e->mu);
	pthread_mutex_unlock(&e->mu);
}

void fake_engine_permit(struct es_engine *e, unsigned n)
{
	pthread_mutex_lock(&e->mu);
	e->permits += n;
	pthread_cond_broadcast(&e->cv);
	pthread_mutex_unlock(&e->mu);
}

void fake_engine_release(struct es_engine *e)
{
	pthread_mutex_lock(&e->mu);
	e->released = 1;
	pthread_cond_broadcast(&e->cv);
	pthread_mutex_unlock(&e->mu);
}

void fake_engine_fail(struct es_engine *e, int err)
{
	pthread_mutex_lock(&e->mu);
	e->fail = err;
	pthread_mutex_unlock(&e->mu);
}

void fake_engine_redim_after_dim(struct es_engine *e, const char *name,
				 uint32_t dim)
{
	pthread_mutex_lock(&e->mu);
	strcpy(e->redim_name, name);
	e->redim = dim;
	pthread_mutex_unlock(&e->mu);
}

/* Under e->mu. */
static struct fcoll *find(struct es_engine *e, const char *name)
{
	for (int i = 0; i < MAX_COLLS; i++)
		if (e->colls[i].info.dim &&
		    !strcmp(e->colls[i].info.name, name))
			return &e->colls[i];
	return NULL;
}

int es_engine_collection_create(struct es_engine *e, const char *name,
				uint32_t dim, enum es_metric metric,
				uint32_t flags)
{
	int rc = ES_E_ENGINE_EXISTS;

	pthread_mutex_lock(&e->mu);
	if (e->fail) {
		rc = e->fail;
	} else if (!find(e, name)) {
		rc = -ENOSPC;
		for (int i = 0; i < MAX_COLLS; i++) {
			struct fcoll *c = &e->colls[i];

			if (c->info.dim)
				continue;
			memset(c, 0, sizeof(*c));
			strcpy(c->info.name, name);
			c->info.dim = dim;
			c->info.metric = metric;
			c->info.flags = flags == ES_ENGINE_FLAGS_DEFAULT
					    ? e->default_flags
					    : flags;
			rc = 0;
			break;
		}
	}
	pthread_mutex_unlock(&e->mu);
	return rc;
}

int es_engine_collection_drop(struct es_engine *e, const char *name)
{
	struct fcoll *c;
	int rc = ES_E_ENGINE_NOCOLL;

	pthread_mutex_lock(&e->mu);
	c = find(e, name);
	if (c) {
		free(c->ids);
		free(c->vecs);
		memset(c, 0, sizeof(*c));
		rc = 0;
	}
	pthread_mutex_unlock(&e->mu);
	return rc;
}

int es_engine_collection_info(struct es_engine *e, const char *name,
			      struct es_collection_info *info)
{
	struct fcoll *c;
	int rc = ES_E_ENGINE_NOCOLL;

	pthread_mutex_lock(&e->mu);
	c = e->fail ? NULL : find(e, name);
	if (e->fail)
		rc = e->fail;
	if (c) {
		*info = c->info;
		info->vectors = info->growing = c->n;
		rc = 0;
	}
	pthread_mutex_unlock(&e->mu);
	return rc;
}

int es_engine_collection_dim(struct es_engine *e, const char *name,
			     uint32_t *dim)
{
	struct fcoll *c;
	int rc = ES_E_ENGINE_NOCOLL;

	pthread_mutex_lock(&e->mu);
	c = e->fail ? NULL : find(e, name);
	if (e->fail)
		rc = e->fail;
	if (c) {
		*dim = c->info.dim;
		rc = 0;
	}
	if (c && e->redim && !strcmp(e->redim_name, name)) {
		free(c->ids);
		free(c->vecs);
		c->ids = NULL;
		c->vecs = NULL;
		c->n = c->cap = 0;
		c->info.dim = e->redim;
		e->redim = 0;
	}
	pthread_mutex_unlock(&e->mu);
	return rc;
}

int es_engine_collection_list(struct es_engine *e,
			      struct es_collection_info **out, size_t *n)
{
	size_t k = 0;

	*out = calloc(MAX_COLLS, sizeof(**out));
	if (!*out)
		return -ENOMEM;
	pthread_mutex_lock(&e->mu);
	for (int i = 0; i < MAX_COLLS; i++) {
		if (!e->colls[i].info.dim)
			continue;
		(*out)[k] = e->colls[i].info;
		(*out)[k++].vectors = e->colls[i].n;
	}
	pthread_mutex_unlock(&e->mu);
	*n = k;
	return 0;
}

static long slot_of(struct fcoll *c, uint64_t id)
{
	for (size_t i = 0; i < c->n; i++)
		if (c->ids[i] == id)
			return (long)i;
	return -1;
}

int es_engine_insert(struct es_engine *e, const char *name, const uint64_t *ids,
		     const float *vectors, size_t n, uint32_t dim)
{
	struct fcoll *c;
	int rc = 0;

	pthread_mutex_lock(&e->mu);
	c = find(e, name);
	if (!c)
		rc = ES_E_ENGINE_NOCOLL;
	else if (c->info.dim != dim)
		rc = ES_E_ENGINE_DIM;
	for (size_t i = 0; rc == 0 && i < n; i++) {
		uint32_t d = c->info.dim;
		long s = slot_of(c, ids[i]);

		if (s < 0 && c->n == c->cap) {
			size_t cap = c->cap ? c->cap * 2 : 64;

			c->ids = realloc(c->ids, cap * sizeof(*c->ids));
			c->vecs = realloc(c->vecs, cap * d * sizeof(float));
			c->cap = cap;
		}
		if (s < 0)
			s = (long)c->n++;
		c->ids[s] = ids[i];
		memcpy(c->vecs + (size_t)s * d, vectors + i * d,
		       d * sizeof(float));
	}
	if (rc == 0)
		e->inserts += n;
	pthread_mutex_unlock(&e->mu);
	return rc;
}

int es_engine_delete(struct es_engine *e, const char *name, const uint64_t *ids,
		     size_t n)
{
	struct fcoll *c;
	int rc = 0;

	pthread_mutex_lock(&e->mu);
	c = find(e, name);
	if (!c)
		rc = ES_E_ENGINE_NOCOLL;
	for (size_t i = 0; rc == 0 && i < n; i++) {
		long s = slot_of(c, ids[i]);
		uint32_t d = c->info.dim;

		if (s < 0)
			continue;
		c->n--;
		c->ids[s] = c->ids[c->n];
		memmove(c->vecs + (size_t)s * d, c->vecs + c->n * d,
			d * sizeof(float));
	}
	pthread_mutex_unlock(&e->mu);
	return rc;
}

int es_engine_get(struct es_engine *e, const char *name, uint64_t id,
		  float *out, uint32_t dim)
{
	struct fcoll *c;
	long s;
	int rc = ES_E_ENGINE_NOCOLL;

	pthread_mutex_lock(&e->mu);
	c = find(e, name);
	if (c && c->info.dim != dim) {
		rc = ES_E_ENGINE_DIM;
	} else if (c) {
		s = slot_of(c, id);
		rc = s < 0 ? ES_E_ENGINE_NOTFOUND : 0;
		if (s >= 0)
			memcpy(out, c->vecs + (size_t)s * c->info.dim,
			       c->info.dim * sizeof(float));
	}
	pthread_mutex_unlock(&e->mu);
	return rc;
}

int es_engine_search(struct es_engine *e, const char *name, const float *query,
		     uint32_t dim, uint32_t k, uint32_t L,
		     struct es_engine_hit *hits)
{
	es_distance_fn dist;
	struct fcoll *c;
	int n = 0;

	pthread_mutex_lock(&e->mu);
	if (!strcmp(name, "slow")) {
		e->slow_entered++;
		pthread_cond_broadcast(&e->cv);
		while (!e->released && !e->permits)
			pthread_cond_wait(&e->cv, &e->mu);
		if (!e->released)
			e->permits--;
	}
	c = find(e, name);
	if (!c || c->info.dim != dim) {
		pthread_mutex_unlock(&e->mu);
		return c ? ES_E_ENGINE_DIM : ES_E_ENGINE_NOCOLL;
	}
	dist = es_distance_get(c->info.metric);
	/* insertion sort into hits, nearest first */
	for (size_t i = 0; i < c->n; i++) {
		float d = dist(query, c->vecs + i * c->info.dim, c->info.dim);
		int j;

		if (n == (int)k && d >= hits[n - 1].distance)
			continue;
		j = n < (int)k ? n++ : (int)k - 1;
		while (j > 0 && hits[j - 1].distance > d) {
			hits[j] = hits[j - 1];
			j--;
		}
		hits[j].id = c->ids[i];
		hits[j].distance = d;
	}
	e->searches++;
	pthread_mutex_unlock(&e->mu);
	return n;
}

int es_engine_flush(struct es_engine *e, const char *name)
{
	int rc;

	pthread_mutex_lock(&e->mu);
	rc = find(e, name) ? 0 : ES_E_ENGINE_NOCOLL;
	pthread_mutex_unlock(&e->mu);
	return rc;
}

int es_engine_segments(struct es_engine *e, const char *name,
		       struct es_segment_info **out, size_t *n)
{
	int rc;

	pthread_mutex_lock(&e->mu);
	rc = find(e, name) ? 0 : ES_E_ENGINE_NOCOLL;
	pthread_mutex_unlock(&e->mu);
	*out = NULL;
	*n = 0;
	if (rc)
		return rc;
	*out = calloc(2, sizeof(**out));
	if (!*out)
		return -ENOMEM;
	(*out)[0] = (struct es_segment_info){.id = 1,
					     .count = 10,
					     .size = 4096,
					     .checksum = 0xdeadbeef,
					     .indexed = 1,
					     .index_size = 8192,
					     .seal_hlc = 77,
					     .origin = "dev-a",
					     .clock_runs = 3,
					     .clocks_crc = 0xfeedface};
	(*out)[1] = (struct es_segment_info){.id = -2, .count = 5};
	*n = 2;
	return 0;
}

/* Segment 1 (of es_engine_segments) verifies; segment 2 is damaged. */
int es_engine_verify_segment(struct es_engine *e, const char *name, int64_t id,
			     struct es_collection_verified *v)
{
	int rc;

	pthread_mutex_lock(&e->mu);
	rc = find(e, name) ? 0 : ES_E_ENGINE_NOCOLL;
	pthread_mutex_unlock(&e->mu);
	memset(v, 0, sizeof(*v));
	if (rc)
		return rc;
	if (id == 1) {
		v->bytes = 4096 + 8192;
		v->indexed = 1;
	} else if (id == 2) {
		v->bytes = 1000;
		v->segment_rc = ES_E_NDVS_CHECKSUM;
	} else {
		return -ENOENT;
	}
	return 0;
}

int es_engine_verify_manifest(struct es_engine *e, char *why, size_t size)
{
	snprintf(why, size, "%s", "");
	return 0;
}

int es_engine_stats(struct es_engine *e, struct es_engine_stats *s)
{
	memset(s, 0, sizeof(*s));
	pthread_mutex_lock(&e->mu);
	for (int i = 0; i < MAX_COLLS; i++) {
		if (!e->colls[i].info.dim)
			continue;
		s->collections++;
		s->vectors += e->colls[i].n;
	}
	s->inserts = e->inserts;
	s->searches = e->searches;
	pthread_mutex_unlock(&e->mu);
	strcpy(s->device_id, "fake-device");
	return 0;
}

/* ---- sync: the fake engine never syncs -------------------------------- */

int es_engine_peers(struct es_engine *e, struct es_sync_peer_status **out,
		    size_t *n)
{
	(void)e;
	*out = NULL;
	*n = 0;
	return ES_E_ENGINE_NOSYNC;
}

int es_engine_sync_now(struct es_engine *e)
{
	(void)e;
	return ES_E_ENGINE_NOSYNC;
}

int es_engine_peer_approve(struct es_engine *e, const char *device,
			   int approved)
{
	(void)e;
	(void)device;
	(void)approved;
	return ES_E_ENGINE_NOSYNC;
}
