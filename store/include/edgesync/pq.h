/*
 * edgesync store: product quantization, the compressed copies of vectors
 * that steer a disk-resident Vamana search from memory.
 *
 * A vector of dim floats is cut into m consecutive subspaces (the first
 * dim % m of them one float longer); each subspace is coded by the index of
 * the nearest of 256 centroids, so a code is m bytes. A query builds a
 * table of m x 256 partial distances once (es_pq_table), after which the
 * distance to any code is m table look-ups (es_pq_distance).
 *
 * For ES_METRIC_L2 the partial distances are squared L2; for IP and COSINE
 * they are negated inner products (COSINE: train, encode and query with
 * normalized vectors).
 */
#ifndef EDGESYNC_PQ_H
#define EDGESYNC_PQ_H

#include <stddef.h>
#include <stdint.h>

#include "edgesync/distance.h"

#define ES_PQ_CENTROIDS 256

struct es_pq;

/*
 * es_pq_train learns m codebooks from n vectors of dim floats (k-means,
 * Lloyd iterations, k-means++-free seeded initialization), using at most
 * sample of them (picked with seed) and threads threads. Deterministic for
 * a given seed whatever the thread count. m must be 1..dim.
 */
int es_pq_train(struct es_pq **pqp, const float *data, uint64_t n, uint32_t dim,
		uint32_t m, uint64_t sample, uint64_t seed, unsigned threads);
void es_pq_destroy(struct es_pq *pq);

uint32_t es_pq_dim(const struct es_pq *pq);
uint32_t es_pq_m(const struct es_pq *pq);

/*
 * es_pq_encode writes the m-byte codes of n vectors (row-major) to codes
 * (n * m bytes), using threads threads.
 */
int es_pq_encode(const struct es_pq *pq, const float *data, uint64_t n,
		 uint8_t *codes, unsigned threads);

/*
 * The codebook as bytes, for the index file: es_pq_packed_size bytes,
 * written by es_pq_pack; es_pq_unpack validates and rebuilds it
 * (0, -EINVAL or -ENOMEM).
 */
size_t es_pq_packed_size(const struct es_pq *pq);
void es_pq_pack(const struct es_pq *pq, void *buf);
int es_pq_unpack(struct es_pq **pqp, const void *buf, size_t len, uint32_t dim,
		 uint32_t m);

/* es_pq_table fills table (m * 256 floats) for query under metric. */
void es_pq_table(const struct es_pq *pq, enum es_metric metric,
		 const float *query, float *table);

/* es_pq_distance is the approximate distance of one code. */
static inline float es_pq_distance(const float *table, const uint8_t *code,
				   uint32_t m)
{
	float d = 0;

	for (uint32_t i = 0; i < m; i++)
		d += table[i * ES_PQ_CENTROIDS + code[i]];
	return d;
}

#endif
