/* CRC32C: the check value, known vectors, and every path agreeing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "edgesync/crc32c.h"

static const enum es_crc32c_impl impls[] = {
    ES_CRC32C_PORTABLE, ES_CRC32C_HW_SERIAL, ES_CRC32C_HW, ES_CRC32C_HW_FOLD};
#define N_IMPLS (sizeof(impls) / sizeof(impls[0]))

static void test_check_value(void **state)
{
	for (size_t i = 0; i < N_IMPLS; i++) {
		if (!es_crc32c_impl_available(impls[i]))
			continue;
		assert_int_equal(es_crc32c_with(impls[i], 0, "123456789", 9),
				 0xE3069283u);
	}
	assert_int_equal(es_crc32c(0, "123456789", 9), 0xE3069283u);
	assert_int_equal(es_crc32c(0, "", 0), 0);
}

/* The iSCSI test vectors (RFC 3720, B.4). */
static void test_rfc3720_vectors(void **state)
{
	unsigned char buf[32];

	memset(buf, 0, sizeof(buf));
	assert_int_equal(es_crc32c(0, buf, 32), 0x8A9136AAu);
	memset(buf, 0xff, sizeof(buf));
	assert_int_equal(es_crc32c(0, buf, 32), 0x62A8AB43u);
	for (int i = 0; i < 32; i++)
		buf[i] = (unsigned char)i;
	assert_int_equal(es_crc32c(0, buf, 32), 0x46DD794Eu);
	for (int i = 0; i < 32; i++)
		buf[i] = (unsigned char)(31 - i);
	assert_int_equal(es_crc32c(0, buf, 32), 0x113FDB5Cu);
}

static uint64_t next(uint64_t *s)
{
	*s = *s * 6364136223846793005ull + 1442695040888963407ull;
	return *s >> 33;
}

/*
 * Lengths around every block boundary of the three-stream path and of the
 * folding path (256-byte blocks from 1 KiB on), at every alignment: each
 * available path gives the portable path's answer.
 */
static void test_paths_agree(void **state)
{
	const size_t max = 3 * 8192 * 2 + 3 * 256 * 2 + 64;
	unsigned char *buf = malloc(max + 8);
	uint64_t seed = 1;
	size_t lens[] = {0,    1,     7,     8,	    9,	   255,	  767,	 768,
			 769,  1000,  1023,  1024,  1025,  1279,  1280,	 1281,
			 4096, 24575, 24576, 24577, 25344, 49152, 49919, max};

	assert_non_null(buf);
	for (size_t i = 0; i < max + 8; i++)
		buf[i] = (unsigned char)next(&seed);
	for (size_t l = 0; l < sizeof(lens) / sizeof(lens[0]); l++) {
		for (size_t off = 0; off < 8; off++) {
			/* 0, and CRCs to continue from at odd offsets */
			uint32_t from =
			    (off & 1) ? 0x9e3779b9u * (uint32_t)off : 0;
			uint32_t want = es_crc32c_with(ES_CRC32C_PORTABLE, from,
						       buf + off, lens[l]);

			for (size_t i = 1; i < N_IMPLS; i++) {
				if (!es_crc32c_impl_available(impls[i]))
					continue;
				assert_int_equal(es_crc32c_with(impls[i], from,
								buf + off,
								lens[l]),
						 want);
			}
			assert_int_equal(es_crc32c(from, buf + off, lens[l]),
					 want);
		}
	}
	for (size_t len = 0; len < 2000; len += 13)
		assert_int_equal(
		    es_crc32c(0, buf, len),
		    es_crc32c_with(ES_CRC32C_PORTABLE, 0, buf, len));
	free(buf);
}

/* crc(a || b) == crc(crc(a), b) at every split point. */
static void test_streaming(void **state)
{
	unsigned char buf[3000];
	uint64_t seed = 9;
	uint32_t whole;

	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (unsigned char)next(&seed);
	whole = es_crc32c(0, buf, sizeof(buf));
	for (size_t cut = 0; cut <= sizeof(buf); cut += 7)
		assert_int_equal(es_crc32c(es_crc32c(0, buf, cut), buf + cut,
					   sizeof(buf) - cut),
				 whole);
}

/* CRC(A || B) from CRC(A), CRC(B) and |B|, for lengths across the
 * table boundaries, 0 and beyond 4 GiB's bit pattern. */
static void test_combine(void **state)
{
	static const size_t lens[] = {0,    1,	  3,	 8,	255,   256,
				      4096, 8192, 24577, 65536, 100003};
	unsigned char *buf = malloc(2 * 100003);
	uint32_t seed = 7;

	(void)state;
	assert_non_null(buf);
	for (size_t i = 0; i < 2 * 100003; i++) {
		seed = seed * 1103515245u + 12345u;
		buf[i] = (unsigned char)(seed >> 16);
	}
	for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++)
		for (size_t j = 0; j < sizeof(lens) / sizeof(lens[0]); j++) {
			size_t a = lens[i], b = lens[j];
			uint32_t ca = es_crc32c(0, buf, a);
			uint32_t cb = es_crc32c(0, buf + a, b);

			assert_int_equal(es_crc32c_combine(ca, cb, b),
					 es_crc32c(0, buf, a + b));
		}
	/* Lengths beyond 32 bits: shifting by 2^32 + 5 zero bytes is
	 * shifting by 2^32, then by 5. */
	{
		uint32_t c = es_crc32c(0, "123456789", 9);
		uint64_t big = (1ull << 32) + 5;

		assert_int_equal(
		    es_crc32c_combine(c, 0, big),
		    es_crc32c_combine(es_crc32c_combine(c, 0, 1ull << 32), 0,
				      5));
		assert_int_not_equal(es_crc32c_combine(c, 0, big),
				     es_crc32c_combine(c, 0, 5));
	}
	free(buf);
}

static void test_names(void **state)
{
	assert_string_equal(es_crc32c_impl_name(ES_CRC32C_PORTABLE),
			    "portable");
	assert_true(es_crc32c_impl_available(es_crc32c_active()));
	if (es_crc32c_impl_available(ES_CRC32C_HW_FOLD))
		assert_string_equal(es_crc32c_impl_name(ES_CRC32C_HW_FOLD),
				    "vpclmulqdq");
	else
		print_message("no folding path on this CPU (AVX-512 and "
			      "VPCLMULQDQ): not tested here\n");
	/* The fastest path this CPU has is the one in use. */
	if (es_crc32c_impl_available(ES_CRC32C_HW_FOLD))
		assert_int_equal(es_crc32c_active(), ES_CRC32C_HW_FOLD);
	else if (es_crc32c_impl_available(ES_CRC32C_HW))
		assert_int_equal(es_crc32c_active(), ES_CRC32C_HW);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_check_value),
	    cmocka_unit_test(test_rfc3720_vectors),
	    cmocka_unit_test(test_paths_agree),
	    cmocka_unit_test(test_streaming),
	    cmocka_unit_test(test_combine),
	    cmocka_unit_test(test_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
