/*
 * Distance kernels for aarch64 with NEON (Advanced SIMD, 4 floats a
 * register). NEON is part of the aarch64 base, so no target attribute is
 * needed; detection still asks the kernel (HWCAP_ASIMD), as the CRC32C
 * path does, so a strange platform without it falls back to portable.
 *
 * Shape of every kernel:
 *   main loop   4 accumulators, 16 floats an iteration, unaligned loads;
 *               four independent FMA chains hide the FMA latency
 *   remainder   up to 3 more whole registers, one per accumulator
 *   tail        the last dim % 4 floats in scalar code (NEON has no
 *               masked load, and reading past the end could fault)
 */
#include "distance_impl.h"

#if defined(__aarch64__)
#include <arm_neon.h>
#include <sys/auxv.h>
#ifndef HWCAP_ASIMD
#define HWCAP_ASIMD (1 << 1)
#endif

static inline float32x4_t neon_l2_step(float32x4_t acc, float32x4_t x,
				       float32x4_t y)
{
	float32x4_t d = vsubq_f32(x, y);

	return vfmaq_f32(acc, d, d);
}

#define L2_4(acc, k) neon_l2_step((acc), vld1q_f32(a + (k)), vld1q_f32(b + (k)))
#define IP_4(acc, k) vfmaq_f32((acc), vld1q_f32(a + (k)), vld1q_f32(b + (k)))

static float l2_neon(const float *a, const float *b, size_t dim)
{
	float32x4_t s0 = vdupq_n_f32(0), s1 = s0, s2 = s0, s3 = s0;
	size_t i = 0, r;
	float s;

	for (; i + 16 <= dim; i += 16) {
		s0 = L2_4(s0, i);
		s1 = L2_4(s1, i + 4);
		s2 = L2_4(s2, i + 8);
		s3 = L2_4(s3, i + 12);
	}
	r = (dim - i) / 4;
	if (r > 0)
		s0 = L2_4(s0, i);
	if (r > 1)
		s1 = L2_4(s1, i + 4);
	if (r > 2)
		s2 = L2_4(s2, i + 8);
	i += 4 * r;
	s = vaddvq_f32(vaddq_f32(vaddq_f32(s0, s1), vaddq_f32(s2, s3)));
	for (; i < dim; i++) {
		float d = a[i] - b[i];

		s += d * d;
	}
	return s;
}

static float ip_neon(const float *a, const float *b, size_t dim)
{
	float32x4_t s0 = vdupq_n_f32(0), s1 = s0, s2 = s0, s3 = s0;
	size_t i = 0, r;
	float s;

	for (; i + 16 <= dim; i += 16) {
		s0 = IP_4(s0, i);
		s1 = IP_4(s1, i + 4);
		s2 = IP_4(s2, i + 8);
		s3 = IP_4(s3, i + 12);
	}
	r = (dim - i) / 4;
	if (r > 0)
		s0 = IP_4(s0, i);
	if (r > 1)
		s1 = IP_4(s1, i + 4);
	if (r > 2)
		s2 = IP_4(s2, i + 8);
	i += 4 * r;
	s = vaddvq_f32(vaddq_f32(vaddq_f32(s0, s1), vaddq_f32(s2, s3)));
	for (; i < dim; i++)
		s += a[i] * b[i];
	return -s;
}

static const struct distance_kernels neon = {
    .name = "neon",
    .l2 = l2_neon,
    .ip = ip_neon,
};

const struct distance_kernels *distance_simd_detect(enum es_simd s)
{
	if (s != ES_SIMD_NEON)
		return NULL;
	return (getauxval(AT_HWCAP) & HWCAP_ASIMD) ? &neon : NULL;
}
#endif
