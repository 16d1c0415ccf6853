/*
 * CRC32C on x86-64: the SSE4.2 crc32 instruction (three streams), and on
 * CPUs with AVX-512 and VPCLMULQDQ a folding path for long buffers.
 *
 * Folding: the register is a polynomial over GF(2) in bit-reflected form,
 * and feeding it D more bits multiplies it by x^D mod P. A 128-bit lane
 * of data is carried D bits forward by two carry-less multiplies, its low
 * 64 bits by x^(D+31) mod P and its high 64 bits by x^(D-33) mod P, both
 * reflected 32-bit constants (the usual x^(D+32) and x^(D-32), one lower
 * because the product of two reflected 64-bit operands comes out one bit
 * short of 128; test_crc32c checks the path against the portable one).
 * Sixteen lanes (four 512-bit registers) run side by side over 256-byte
 * blocks, are folded into one lane at the end, and that lane's 16 bytes
 * go through the crc32 instruction from a zero register: the result is
 * the register that feeding every byte before the tail would give.
 */
#include "crc32c_impl.h"

#if defined(__x86_64__)
#include <immintrin.h>

#define HW_ATTR	       __attribute__((target("sse4.2")))
#define HW_CRC8(r, b)  _mm_crc32_u8((r), (b))
#define HW_CRC64(r, v) ((uint32_t)_mm_crc32_u64((r), (v)))
#include "crc32c_hw.h"

#define FOLD_ATTR __attribute__((target("sse4.2,avx512f,vpclmulqdq")))
#define FOLD_MIN  1024 /* shorter buffers: the three streams */

/* A fold of D bits: x^(D+31) and x^(D-33) mod P, reflected, in every
 * 128-bit lane. */
#define FOLD_K(lo, hi) _mm512_set_epi64(hi, lo, hi, lo, hi, lo, hi, lo)

/* Each lane of a carried forward by the lane's constants in k, ^ b. */
static inline FOLD_ATTR __m512i fold(__m512i a, __m512i k, __m512i b)
{
	return _mm512_ternarylogic_epi64(_mm512_clmulepi64_epi128(a, k, 0x00),
					 _mm512_clmulepi64_epi128(a, k, 0x11),
					 b, 0x96);
}

static FOLD_ATTR uint32_t fold_crc(uint32_t reg, const void *buf, size_t len)
{
	const unsigned char *p = buf;
	const __m512i k2048 = FOLD_K(0xdcb17aa4, 0xb9e02b86); /* a block */
	const __m512i k512 = FOLD_K(0x740eef02, 0x9e4addf8);  /* a register */
	/* Lanes 0, 1 and 2 of the last register lie 384, 256 and 128 bits
	 * before lane 3; lane 3's constants are 0, and it is added as is. */
	const __m512i klast =
	    _mm512_set_epi64(0, 0, 0x493c7d27, 0xf20c0dfe, 0xba4fc28e,
			     0x3da6d0cb, 0xddc0152b, 0x1c291d04);
	__m512i a0, a1, a2, a3, t;
	__m128i x;

	if (len < FOLD_MIN)
		return hw_interleaved(reg, buf, len);
	a0 = _mm512_xor_si512(
	    _mm512_loadu_si512(p),
	    _mm512_zextsi128_si512(_mm_cvtsi32_si128((int)reg)));
	a1 = _mm512_loadu_si512(p + 64);
	a2 = _mm512_loadu_si512(p + 128);
	a3 = _mm512_loadu_si512(p + 192);
	for (p += 256, len -= 256; len >= 256; p += 256, len -= 256) {
		a0 = fold(a0, k2048, _mm512_loadu_si512(p));
		a1 = fold(a1, k2048, _mm512_loadu_si512(p + 64));
		a2 = fold(a2, k2048, _mm512_loadu_si512(p + 128));
		a3 = fold(a3, k2048, _mm512_loadu_si512(p + 192));
	}
	a1 = fold(a0, k512, a1);
	a2 = fold(a1, k512, a2);
	a3 = fold(a2, k512, a3);
	t = _mm512_xor_si512(_mm512_clmulepi64_epi128(a3, klast, 0x00),
			     _mm512_clmulepi64_epi128(a3, klast, 0x11));
	x = _mm_xor_si128(_mm512_castsi512_si128(t),
			  _mm512_extracti32x4_epi32(t, 1));
	x = _mm_xor_si128(x, _mm512_extracti32x4_epi32(t, 2));
	x = _mm_xor_si128(x, _mm512_extracti32x4_epi32(a3, 3));
	reg = (uint32_t)_mm_crc32_u64(0, (uint64_t)_mm_cvtsi128_si64(x));
	reg = (uint32_t)_mm_crc32_u64(reg, (uint64_t)_mm_extract_epi64(x, 1));
	return hw_interleaved(reg, p, len);
}

static const struct es_crc32c_hw sse42 = {
    .name = "sse4.2",
    .serial_name = "sse4.2-serial",
    .serial = hw_serial,
    .interleaved = hw_interleaved,
};

static const struct es_crc32c_hw sse42_fold = {
    .name = "sse4.2",
    .serial_name = "sse4.2-serial",
    .fold_name = "vpclmulqdq",
    .serial = hw_serial,
    .interleaved = hw_interleaved,
    .fold = fold_crc,
};

const struct es_crc32c_hw *es_crc32c_hw_detect(void)
{
	__builtin_cpu_init();
	if (!__builtin_cpu_supports("sse4.2"))
		return NULL;
	if (__builtin_cpu_supports("avx512f") &&
	    __builtin_cpu_supports("vpclmulqdq"))
		return &sse42_fold;
	return &sse42;
}
#endif
