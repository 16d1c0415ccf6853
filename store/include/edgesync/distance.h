/*
 * edgesync store: distance kernels. Every distance is "smaller is closer":
 *   ES_METRIC_L2      squared Euclidean distance
 *   ES_METRIC_IP      negated inner product
 *   ES_METRIC_COSINE  negated inner product of vectors the caller has
 *                     normalized (es_vector_normalize); the index stores
 *                     normalized vectors and normalizes each query.
 * The kernel set is chosen once, at first use: AVX-512 or AVX2+FMA on
 * x86-64, NEON on aarch64, portable C otherwise. Thread-safe.
 */
#ifndef EDGESYNC_DISTANCE_H
#define EDGESYNC_DISTANCE_H

#include <stddef.h>

enum es_metric {
	ES_METRIC_L2 = 0,
	ES_METRIC_IP = 1,
	ES_METRIC_COSINE = 2,
};

/* es_metric_parse reads "l2", "ip" or "cosine"; 0 or -EINVAL. */
int es_metric_parse(const char *name, enum es_metric *m);
const char *es_metric_name(enum es_metric m);

typedef float (*es_distance_fn)(const float *a, const float *b, size_t dim);

/* es_distance_get returns the best kernel this CPU has for metric m. */
es_distance_fn es_distance_get(enum es_metric m);

/* es_vector_normalize scales v to unit length (a zero vector stays 0). */
void es_vector_normalize(float *v, size_t dim);

/* The kernel sets, callable directly for tests and benchmarks. */
enum es_simd {
	ES_SIMD_PORTABLE = 0,
	ES_SIMD_AVX2,
	ES_SIMD_AVX512,
	ES_SIMD_NEON,
};
int es_simd_available(enum es_simd s);
const char *es_simd_name(enum es_simd s);
enum es_simd es_simd_active(void);
/* es_distance_get_with: the kernel of set s (which must be available). */
es_distance_fn es_distance_get_with(enum es_metric m, enum es_simd s);

#endif
