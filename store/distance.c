/*
 * Distance kernels: the metric names, vector normalization, the portable
 * kernels and the choice of kernel set made at first use.
 *
 * Invariants:
 *   1. sets[] is written only by dist_init(), once, under pthread_once;
 *      every reader goes through pthread_once first, so it sees the
 *      finished table. sets[ES_SIMD_PORTABLE] is never NULL.
 *   2. active is the widest available set: AVX-512, then AVX2+FMA, then
 *      NEON, then portable. es_distance_get() hands out its functions;
 *      callers keep the pointer and call it per vector, so there is no
 *      dispatch per element or per call.
 *   3. Every set computes the same sums as the portable one, in another
 *      order; results differ only by float rounding.
 *   4. COSINE is IP: the index stores normalized vectors and normalizes
 *      each query with es_vector_normalize().
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <string.h>

#include "distance_impl.h"

#define N_SETS (ES_SIMD_NEON + 1)

#if !defined(__x86_64__) && !defined(__aarch64__)
const struct distance_kernels *distance_simd_detect(enum es_simd s)
{
	return NULL;
}
#endif

static pthread_once_t dist_once = PTHREAD_ONCE_INIT;
static const struct distance_kernels *sets[N_SETS];
static enum es_simd active = ES_SIMD_PORTABLE;

static const char *const metric_names[] = {
    [ES_METRIC_L2] = "l2",
    [ES_METRIC_IP] = "ip",
    [ES_METRIC_COSINE] = "cosine",
};

int es_metric_parse(const char *name, enum es_metric *m)
{
	if (!name || !m)
		return -EINVAL;
	for (size_t i = 0; i < sizeof(metric_names) / sizeof(*metric_names);
	     i++) {
		if (strcmp(name, metric_names[i]) == 0) {
			*m = (enum es_metric)i;
			return 0;
		}
	}
	return -EINVAL;
}

const char *es_metric_name(enum es_metric m)
{
	switch (m) {
	case ES_METRIC_L2:
	case ES_METRIC_IP:
	case ES_METRIC_COSINE:
		return metric_names[m];
	}
	return "unknown";
}

/*
 * Eight independent sums keep the adds from waiting on each other; gcc
 * -O2 turns them into two SSE (or NEON) registers without -ffast-math.
 * Eight measured about twice as fast as four, and faster than sixteen,
 * at dims 128 and 784.
 */
static float l2_portable(const float *a, const float *b, size_t dim)
{
	float s[8] = {0};
	size_t i = 0;

	for (; i + 8 <= dim; i += 8) {
		float d0 = a[i] - b[i], d1 = a[i + 1] - b[i + 1];
		float d2 = a[i + 2] - b[i + 2], d3 = a[i + 3] - b[i + 3];
		float d4 = a[i + 4] - b[i + 4], d5 = a[i + 5] - b[i + 5];
		float d6 = a[i + 6] - b[i + 6], d7 = a[i + 7] - b[i + 7];

		s[0] += d0 * d0;
		s[1] += d1 * d1;
		s[2] += d2 * d2;
		s[3] += d3 * d3;
		s[4] += d4 * d4;
		s[5] += d5 * d5;
		s[6] += d6 * d6;
		s[7] += d7 * d7;
	}
	for (; i < dim; i++) {
		float d = a[i] - b[i];

		s[i & 7] += d * d;
	}
	return ((s[0] + s[4]) + (s[1] + s[5])) +
	       ((s[2] + s[6]) + (s[3] + s[7]));
}

static float ip_portable(const float *a, const float *b, size_t dim)
{
	float s[8] = {0};
	size_t i = 0;

	for (; i + 8 <= dim; i += 8) {
		s[0] += a[i] * b[i];
		s[1] += a[i + 1] * b[i + 1];
		s[2] += a[i + 2] * b[i + 2];
		s[3] += a[i + 3] * b[i + 3];
		s[4] += a[i + 4] * b[i + 4];
		s[5] += a[i + 5] * b[i + 5];
		s[6] += a[i + 6] * b[i + 6];
		s[7] += a[i + 7] * b[i + 7];
	}
	for (; i < dim; i++)
		s[i & 7] += a[i] * b[i];
	return -(((s[0] + s[4]) + (s[1] + s[5])) +
		 ((s[2] + s[6]) + (s[3] + s[7])));
}

static const struct distance_kernels portable = {
    .name = "portable",
    .l2 = l2_portable,
    .ip = ip_portable,
};

static void dist_init(void)
{
	static const enum es_simd best_first[] = {
	    ES_SIMD_AVX512,
	    ES_SIMD_AVX2,
	    ES_SIMD_NEON,
	};

	sets[ES_SIMD_PORTABLE] = &portable;
	for (int s = ES_SIMD_PORTABLE + 1; s < N_SETS; s++)
		sets[s] = distance_simd_detect((enum es_simd)s);
	for (size_t i = 0; i < sizeof(best_first) / sizeof(*best_first); i++) {
		if (sets[best_first[i]]) {
			active = best_first[i];
			break;
		}
	}
}

static const struct distance_kernels *set_get(enum es_simd s)
{
	pthread_once(&dist_once, dist_init);
	if ((unsigned)s >= N_SETS)
		return NULL;
	return sets[s];
}

int es_simd_available(enum es_simd s)
{
	return set_get(s) != NULL;
}

const char *es_simd_name(enum es_simd s)
{
	switch (s) {
	case ES_SIMD_PORTABLE:
		return "portable";
	case ES_SIMD_AVX2:
		return "avx2";
	case ES_SIMD_AVX512:
		return "avx512";
	case ES_SIMD_NEON:
		return "neon";
	}
	return "unknown";
}

enum es_simd es_simd_active(void)
{
	pthread_once(&dist_once, dist_init);
	return active;
}

static es_distance_fn kernel_of(const struct distance_kernels *k,
				enum es_metric m)
{
	if (!k)
		return NULL;
	switch (m) {
	case ES_METRIC_L2:
		return k->l2;
	case ES_METRIC_IP:
	case ES_METRIC_COSINE:
		return k->ip;
	}
	return NULL;
}

es_distance_fn es_distance_get_with(enum es_metric m, enum es_simd s)
{
	return kernel_of(set_get(s), m);
}

es_distance_fn es_distance_get(enum es_metric m)
{
	return kernel_of(set_get(es_simd_active()), m);
}

/*
 * The norm is summed in double: no overflow or underflow for any finite
 * float vector of any dim, and the result is within an ulp of unit length.
 * A vector whose norm is 0, infinite or NaN is left as it is.
 */
void es_vector_normalize(float *v, size_t dim)
{
	double sum = 0, scale;

	for (size_t i = 0; i < dim; i++)
		sum += (double)v[i] * v[i];
	if (!(sum > 0) || !isfinite(sum))
		return;
	scale = 1.0 / sqrt(sum);
	for (size_t i = 0; i < dim; i++)
		v[i] = (float)(v[i] * scale);
}
