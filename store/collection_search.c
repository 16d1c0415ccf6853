/*
 * Searching a collection: one snapshot (state held shared for the whole
 * query, so no part changes under it), every part searched, candidates
 * kept only if they are the live copy of their id (invariants 1 and 2 of
 * collection_impl.h), the best k merged.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "collection_impl.h"

/* A bounded max-heap of the k best hits so far; top is the worst. */
struct topk {
	struct es_collection_hit *h;
	uint32_t n, k;
};

static void sift_down(struct topk *t, uint32_t i)
{
	for (;;) {
		uint32_t l = 2 * i + 1, r = l + 1, m = i;

		if (l < t->n && t->h[l].distance > t->h[m].distance)
			m = l;
		if (r < t->n && t->h[r].distance > t->h[m].distance)
			m = r;
		if (m == i)
			return;
		struct es_collection_hit tmp = t->h[i];
		t->h[i] = t->h[m];
		t->h[m] = tmp;
		i = m;
	}
}

/* Would a hit at distance d enter? */
static inline int topk_wants(const struct topk *t, float d)
{
	return t->n < t->k || d < t->h[0].distance;
}

static void topk_push(struct topk *t, uint64_t id, float d)
{
	if (t->n < t->k) {
		uint32_t i = t->n++;

		t->h[i].id = id;
		t->h[i].distance = d;
		while (i && t->h[(i - 1) / 2].distance < t->h[i].distance) {
			struct es_collection_hit tmp = t->h[i];
			t->h[i] = t->h[(i - 1) / 2];
			t->h[(i - 1) / 2] = tmp;
			i = (i - 1) / 2;
		}
	} else if (d < t->h[0].distance) {
		t->h[0].id = id;
		t->h[0].distance = d;
		sift_down(t, 0);
	}
}

static int hit_cmp(const void *a, const void *b)
{
	const struct es_collection_hit *x = a, *y = b;

	if (x->distance != y->distance)
		return x->distance < y->distance ? -1 : 1;
	return x->id < y->id ? -1 : x->id > y->id;
}

static void search_buffer(const struct es_collection *c, const struct membuf *b,
			  const float *q, struct topk *t)
{
	for (uint64_t r = 0; r < b->n; r++) {
		if (!b->alive[r])
			continue;
		topk_push(t, b->ids[r], c->dist(q, membuf_row(b, r), b->dim));
	}
}

/* A segment without index: every row, checked for liveness if it enters. */
static void search_exact(const struct es_collection *c, uint32_t h,
			 const struct part *pt, const float *q, struct topk *t)
{
	uint64_t id;

	for (uint64_t r = 0; r < pt->meta.count; r++) {
		float d = c->dist(q, es_ndvs_row(pt->ndvs, r), c->p.dim);

		if (!topk_wants(t, d))
			continue;
		if (es_ndvs_read_ids(pt->ndvs, r, 1, &id) == 0 &&
		    idmap_get(&c->live, id) == loc_pack(h, r))
			topk_push(t, id, d);
	}
}

static int search_index(const struct es_collection *c, uint32_t h,
			struct part *pt, const float *q, uint32_t k, uint32_t L,
			struct topk *t, struct es_vamana_hit *scratch)
{
	struct es_vamana_searcher *s;
	/* with dead rows, ask for a few more than k: they are dropped below */
	uint32_t want = atomic_load(&pt->dead) ? k + k / 2 + 4 : k;
	int n, rc;

	if (want > ES_VAMANA_MAX_K)
		want = ES_VAMANA_MAX_K;
	if (want > pt->meta.count)
		want = (uint32_t)pt->meta.count;
	if (L < want)
		L = want;
	rc = coll_searcher_get(pt, &s);
	if (rc < 0)
		return rc;
	n = es_vamana_search(s, q, want, L, 4, scratch, NULL);
	coll_searcher_put(pt, s);
	for (int i = 0; i < n; i++)
		if (idmap_get(&c->live, scratch[i].id) ==
		    loc_pack(h, scratch[i].row))
			topk_push(t, scratch[i].id, scratch[i].distance);
	return n < 0 ? n : 0;
}

static int search_segment(const struct es_collection *c, uint32_t h,
			  const float *q, uint32_t k, uint32_t L,
			  struct topk *t, struct es_vamana_hit *scratch)
{
	struct part *pt = c->parts[h];
	int rc;

	if (pt->meta.count == 0)
		return 0;
	rc = coll_part_acquire((struct es_collection *)c, pt);
	if (rc < 0)
		return rc;
	if (pt->index)
		rc = search_index(c, h, pt, q, k, L, t, scratch);
	else
		search_exact(c, h, pt, q, t);
	coll_part_release((struct es_collection *)c, pt);
	return rc;
}

int es_collection_search(struct es_collection *c, const float *query,
			 uint32_t k, uint32_t L, struct es_collection_hit *hits)
{
	struct topk t = {.h = hits, .k = k};
	struct es_vamana_hit *scratch;
	float *q;
	int rc = 0;

	if (k == 0 || k > ES_VAMANA_MAX_K || L > ES_VAMANA_MAX_L)
		return -EINVAL;
	if (L == 0)
		L = k > 64 ? k : 64;
	q = malloc(c->p.dim * sizeof(float));
	scratch = malloc(ES_VAMANA_MAX_K * sizeof(*scratch));
	if (!q || !scratch) {
		free(q);
		free(scratch);
		return -ENOMEM;
	}
	memcpy(q, query, c->p.dim * sizeof(float));
	if (c->p.metric == ES_METRIC_COSINE)
		es_vector_normalize(q, c->p.dim);

	pthread_rwlock_rdlock(&c->state);
	search_buffer(c, &c->parts[c->growing]->buf, q, &t);
	if (c->frozen != PART_NONE)
		search_buffer(c, &c->parts[c->frozen]->buf, q, &t);
	for (uint32_t i = 0; rc == 0 && i < c->n_segments; i++)
		rc = search_segment(c, c->segments[i], q, k, L, &t, scratch);
	pthread_rwlock_unlock(&c->state);

	free(q);
	free(scratch);
	if (rc < 0)
		return rc;
	qsort(hits, t.n, sizeof(*hits), hit_cmp);
	return (int)t.n;
}
