/*
 * Distance kernels for x86-64: AVX2+FMA (8 floats a register) and
 * AVX-512F (16). Each function carries its own target attribute, so the
 * rest of the build stays baseline x86-64 and distance.c picks a set only
 * after __builtin_cpu_supports() (which also checks that the OS saves the
 * wide registers) says the CPU can run it.
 *
 * Shape of every kernel, with W floats a register:
 *   main loop   4 accumulators, 4*W floats an iteration, unaligned loads;
 *               four independent FMA chains hide the FMA latency
 *   remainder   up to 3 more whole registers, one per accumulator
 *   tail        the last dim % W floats with a masked load: lanes past the
 *               end read as 0 (which adds 0) and never fault
 * then the accumulators are added pairwise and reduced across lanes.
 */
#include "distance_impl.h"

#if defined(__x86_64__)
#include <immintrin.h>

#define AVX2_ATTR   __attribute__((target("avx2,fma")))
#define AVX512_ATTR __attribute__((target("avx512f")))

static inline AVX2_ATTR float avx2_hsum(__m256 v)
{
	__m128 s =
	    _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));

	s = _mm_add_ps(s, _mm_movehl_ps(s, s));
	s = _mm_add_ss(s, _mm_movehdup_ps(s));
	return _mm_cvtss_f32(s);
}

/* Lanes 0..n-1 set, for 0 < n < 8. */
static inline AVX2_ATTR __m256i avx2_mask(size_t n)
{
	return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)n),
				  _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

static inline AVX2_ATTR __m256 avx2_l2_step(__m256 acc, __m256 x, __m256 y)
{
	__m256 d = _mm256_sub_ps(x, y);

	return _mm256_fmadd_ps(d, d, acc);
}

#define L2_8(acc, k)                                                           \
	avx2_l2_step((acc), _mm256_loadu_ps(a + (k)), _mm256_loadu_ps(b + (k)))
#define IP_8(acc, k)                                                           \
	_mm256_fmadd_ps(_mm256_loadu_ps(a + (k)), _mm256_loadu_ps(b + (k)),    \
			(acc))

static AVX2_ATTR float l2_avx2(const float *a, const float *b, size_t dim)
{
	__m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
	size_t i = 0, r;

	for (; i + 32 <= dim; i += 32) {
		s0 = L2_8(s0, i);
		s1 = L2_8(s1, i + 8);
		s2 = L2_8(s2, i + 16);
		s3 = L2_8(s3, i + 24);
	}
	r = (dim - i) / 8;
	if (r > 0)
		s0 = L2_8(s0, i);
	if (r > 1)
		s1 = L2_8(s1, i + 8);
	if (r > 2)
		s2 = L2_8(s2, i + 16);
	i += 8 * r;
	if (i < dim) {
		__m256i m = avx2_mask(dim - i);

		s3 = avx2_l2_step(s3, _mm256_maskload_ps(a + i, m),
				  _mm256_maskload_ps(b + i, m));
	}
	return avx2_hsum(
	    _mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
}

static AVX2_ATTR float ip_avx2(const float *a, const float *b, size_t dim)
{
	__m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
	size_t i = 0, r;

	for (; i + 32 <= dim; i += 32) {
		s0 = IP_8(s0, i);
		s1 = IP_8(s1, i + 8);
		s2 = IP_8(s2, i + 16);
		s3 = IP_8(s3, i + 24);
	}
	r = (dim - i) / 8;
	if (r > 0)
		s0 = IP_8(s0, i);
	if (r > 1)
		s1 = IP_8(s1, i + 8);
	if (r > 2)
		s2 = IP_8(s2, i + 16);
	i += 8 * r;
	if (i < dim) {
		__m256i m = avx2_mask(dim - i);

		s3 = _mm256_fmadd_ps(_mm256_maskload_ps(a + i, m),
				     _mm256_maskload_ps(b + i, m), s3);
	}
	return -avx2_hsum(
	    _mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
}

static inline AVX512_ATTR __m512 avx512_l2_step(__m512 acc, __m512 x, __m512 y)
{
	__m512 d = _mm512_sub_ps(x, y);

	return _mm512_fmadd_ps(d, d, acc);
}

#define L2_16(acc, k)                                                          \
	avx512_l2_step((acc), _mm512_loadu_ps(a + (k)),                        \
		       _mm512_loadu_ps(b + (k)))
#define IP_16(acc, k)                                                          \
	_mm512_fmadd_ps(_mm512_loadu_ps(a + (k)), _mm512_loadu_ps(b + (k)),    \
			(acc))

static AVX512_ATTR float l2_avx512(const float *a, const float *b, size_t dim)
{
	__m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
	size_t i = 0, r;

	for (; i + 64 <= dim; i += 64) {
		s0 = L2_16(s0, i);
		s1 = L2_16(s1, i + 16);
		s2 = L2_16(s2, i + 32);
		s3 = L2_16(s3, i + 48);
	}
	r = (dim - i) / 16;
	if (r > 0)
		s0 = L2_16(s0, i);
	if (r > 1)
		s1 = L2_16(s1, i + 16);
	if (r > 2)
		s2 = L2_16(s2, i + 32);
	i += 16 * r;
	if (i < dim) {
		__mmask16 m = (__mmask16)((1u << (dim - i)) - 1);

		s3 = avx512_l2_step(s3, _mm512_maskz_loadu_ps(m, a + i),
				    _mm512_maskz_loadu_ps(m, b + i));
	}
	return _mm512_reduce_add_ps(
	    _mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3)));
}

static AVX512_ATTR float ip_avx512(const float *a, const float *b, size_t dim)
{
	__m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
	size_t i = 0, r;

	for (; i + 64 <= dim; i += 64) {
		s0 = IP_16(s0, i);
		s1 = IP_16(s1, i + 16);
		s2 = IP_16(s2, i + 32);
		s3 = IP_16(s3, i + 48);
	}
	r = (dim - i) / 16;
	if (r > 0)
		s0 = IP_16(s0, i);
	if (r > 1)
		s1 = IP_16(s1, i + 16);
	if (r > 2)
		s2 = IP_16(s2, i + 32);
	i += 16 * r;
	if (i < dim) {
		__mmask16 m = (__mmask16)((1u << (dim - i)) - 1);

		s3 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + i),
				     _mm512_maskz_loadu_ps(m, b + i), s3);
	}
	return -_mm512_reduce_add_ps(
	    _mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3)));
}

static const struct distance_kernels avx2 = {
    .name = "avx2",
    .l2 = l2_avx2,
    .ip = ip_avx2,
};

static const struct distance_kernels avx512 = {
    .name = "avx512",
    .l2 = l2_avx512,
    .ip = ip_avx512,
};

const struct distance_kernels *distance_simd_detect(enum es_simd s)
{
	__builtin_cpu_init();
	switch (s) {
	case ES_SIMD_AVX2:
		if (__builtin_cpu_supports("avx2") &&
		    __builtin_cpu_supports("fma"))
			return &avx2;
		return NULL;
	case ES_SIMD_AVX512:
		return __builtin_cpu_supports("avx512f") ? &avx512 : NULL;
	case ES_SIMD_PORTABLE:
	case ES_SIMD_NEON:
		break;
	}
	return NULL;
}
#endif
