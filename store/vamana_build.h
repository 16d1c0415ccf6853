/*
 * Private to the store: the in-memory Vamana graph that es_vamana_build()
 * constructs before writing it out, and a plain greedy walk over it. The
 * tests build and measure graphs through these without touching files.
 */
#ifndef EDGESYNC_VAMANA_BUILD_H
#define EDGESYNC_VAMANA_BUILD_H

#include <stdint.h>

#include "edgesync/distance.h"
#include "edgesync/vamana.h"

/*
 * A graph over n rows of dim floats: row i's out-neighbours are
 * adj[i * R .. i * R + degree[i]), each < n and never i. vectors belong to
 * the caller and must outlive the graph (normalized for cosine).
 */
struct vamana_graph {
	const float *vectors;
	uint32_t n, dim, R;
	uint32_t entry; /* the medoid; 0 when n is 0 */
	uint32_t *adj;
	uint32_t *degree;
};

/*
 * vamana_graph_build builds g over vectors (n x dim) with p's R, L, alpha,
 * metric, seed, threads and progress (pq_m, segment_id unused). The result
 * depends on the data and p->seed only, never on p->threads. Returns 0,
 * ES_E_VAMANA_PARAM, ES_E_VECS_NONFINITE (a NaN or infinite value),
 * -ECANCELED (p->stop) or -ENOMEM. On failure g holds nothing to free.
 */
int vamana_graph_build(struct vamana_graph *g, const float *vectors, uint32_t n,
		       uint32_t dim, const struct es_vamana_build_params *p);
void vamana_graph_free(struct vamana_graph *g);

/* 1 if the build with p is to give up (p->stop set). */
static inline int vamana_build_stopped(const struct es_vamana_build_params *p)
{
	return p->stop && atomic_load(p->stop);
}

/* 0 if p's R, L, alpha and metric can build a graph, or ES_E_VAMANA_PARAM. */
int vamana_build_params_check(const struct es_vamana_build_params *p);
/* The threads a build with p runs: p->threads, or one per online CPU; at
 * most 256. */
unsigned vamana_build_threads(const struct es_vamana_build_params *p);

/*
 * A walker is one thread's scratch for greedy searches of g with list
 * size L (1..ES_VAMANA_MAX_L); g must outlive it.
 */
struct vamana_walker;
int vamana_walker_create(struct vamana_walker **wp,
			 const struct vamana_graph *g, enum es_metric metric,
			 uint32_t L);
void vamana_walker_destroy(struct vamana_walker *w);

/*
 * vamana_walker_search walks from the entry and writes the (up to) k
 * nearest rows it found to rows, nearest first, and their distances to
 * dists (may be NULL). The query must already be normalized for cosine.
 * Returns how many it wrote.
 */
uint32_t vamana_walker_search(struct vamana_walker *w, const float *query,
			      uint32_t k, uint32_t *rows, float *dists);

#endif
