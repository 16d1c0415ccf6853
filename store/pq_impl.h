/*
 * Private to the store's PQ: the kernels that score one subvector x of
 * length len against the 256 centroids of its subspace, given ct, the
 * centroids transposed (float t of centroid j at ct[t * 256 + j]):
 *
 *   scores(x, len, ct, init, mul, out)
 *       out[j] = init[j] + sum_t (mul * x[t]) * ct[t * 256 + j]
 *       (the query table: init |x|^2 + |c_j|^2 and mul -2 for L2,
 *       init 0 and mul -1 for inner products)
 *   nearest(x, len, ct, cn)
 *       the j minimizing scores(x, len, ct, cn, -2)[j], with cn[j] the
 *       squared length of centroid j (|x - c_j|^2 less the constant
 *       |x|^2); the lowest such j on a tie; a NaN never wins (all NaN
 *       gives 0). Encoding and training use this one.
 *
 * pq_kernels_get(s) returns the set s (ES_SIMD_PORTABLE always;
 * ES_SIMD_AVX2 and ES_SIMD_AVX512 on x86-64 CPUs that have them) or NULL.
 * pq.c uses the widest; tests compare them all.
 *
 * The second half of this file is the kernels' body, written once and
 * compiled once per vector width, the way crc32c_hw.h is: pq.c defines,
 * before each inclusion,
 *   PQ_SET   a suffix naming the set (pq_nearest_<set>, pq_scores_<set>,
 *            and pq_kernels_<set>, the struct holding both)
 *   PQ_ATTR  their attributes (a target, or nothing)
 *   PQ_VF    a float vector type (GCC vector_size) of the width wanted
 *   PQ_VI    the int32_t vector type of the same size
 * The body keeps 8 vectors of centroids in registers while it walks the
 * subvector, so the width should be the widest the target runs natively
 * (wider ones are split badly). Every width adds in the same order.
 */
#ifndef EDGESYNC_PQ_IMPL_H
#define EDGESYNC_PQ_IMPL_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "edgesync/distance.h"
#include "edgesync/pq.h"

struct pq_kernels {
	unsigned (*nearest)(const float *x, uint32_t len, const float *ct,
			    const float *cn);
	void (*scores)(const float *x, uint32_t len, const float *ct,
		       const float *init, float mul, float *out);
};

const struct pq_kernels *pq_kernels_get(enum es_simd s);

#endif

#ifdef PQ_SET
#if !defined(PQ_ATTR) || !defined(PQ_VF) || !defined(PQ_VI)
#error "define PQ_ATTR, PQ_VF and PQ_VI with PQ_SET"
#endif

#define PQ_CAT2(a, b) a##b
#define PQ_CAT(a, b)  PQ_CAT2(a, b)
#define PQ_VL	      ((unsigned)(sizeof(PQ_VF) / sizeof(float)))
#define PQ_EACH(S)    S(0) S(1) S(2) S(3) S(4) S(5) S(6) S(7)
#define PQ_LOAD(v, p) memcpy(&(v), (p), sizeof(v))
#define PQ_INIT(q)    PQ_LOAD(a[q], init + jb + (q)*PQ_VL);
#define PQ_STEP(q)                                                             \
	PQ_LOAD(r, row + (q)*PQ_VL);                                           \
	a[q] += xv * r;
#define PQ_STORE(q) memcpy(out + jb + (q)*PQ_VL, &a[q], sizeof(a[q]));
/* Keeps, per lane, the smallest value so far and its centroid. */
#define PQ_KEEP(q)                                                             \
	lt = a[q] < bv;                                                        \
	bv = (PQ_VF)((lt & (PQ_VI)a[q]) | (~lt & (PQ_VI)bv));                  \
	bi = (lt & idx) | (~lt & bi);                                          \
	idx += (int32_t)PQ_VL;
/* a[] = the scores of the 8 * PQ_VL centroids from jb. */
#define PQ_BLOCK()                                                             \
	PQ_EACH(PQ_INIT)                                                       \
	for (uint32_t t = 0; t < len; t++) {                                   \
		const float *row = ct + (size_t)t * ES_PQ_CENTROIDS + jb;      \
                                                                               \
		xv = (PQ_VF){0} + mul * x[t];                                  \
		PQ_EACH(PQ_STEP)                                               \
	}

PQ_ATTR static void PQ_CAT(pq_scores_, PQ_SET)(const float *x, uint32_t len,
					       const float *ct,
					       const float *init, float mul,
					       float *out)
{
	PQ_VF a[8], r, xv;

	for (unsigned jb = 0; jb < ES_PQ_CENTROIDS; jb += 8 * PQ_VL) {
		PQ_BLOCK()
		PQ_EACH(PQ_STORE)
	}
}

PQ_ATTR static unsigned PQ_CAT(pq_nearest_,
			       PQ_SET)(const float *x, uint32_t len,
				       const float *ct, const float *init)
{
	PQ_VF a[8], bv, r, xv;
	PQ_VI bi = {0}, idx, lt;
	const float mul = -2.0f;
	unsigned best = 0;

	for (unsigned l = 0; l < PQ_VL; l++)
		idx[l] = (int32_t)l;
	bv = (PQ_VF){0} + INFINITY;
	for (unsigned jb = 0; jb < ES_PQ_CENTROIDS; jb += 8 * PQ_VL) {
		PQ_BLOCK()
		PQ_EACH(PQ_KEEP)
	}
	for (unsigned l = 1; l < PQ_VL; l++)
		if (bv[l] < bv[best] || (bv[l] == bv[best] && bi[l] < bi[best]))
			best = l;
	return (unsigned)bi[best];
}

static const struct pq_kernels PQ_CAT(pq_kernels_, PQ_SET) = {
    .nearest = PQ_CAT(pq_nearest_, PQ_SET),
    .scores = PQ_CAT(pq_scores_, PQ_SET),
};

#undef PQ_BLOCK
#undef PQ_KEEP
#undef PQ_STORE
#undef PQ_STEP
#undef PQ_INIT
#undef PQ_LOAD
#undef PQ_EACH
#undef PQ_VL
#undef PQ_CAT
#undef PQ_CAT2
#undef PQ_VI
#undef PQ_VF
#undef PQ_ATTR
#undef PQ_SET
#endif
