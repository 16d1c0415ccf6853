/*
 * edgesync store: CRC32C (Castagnoli, reflected polynomial 0x82F63B78,
 * init and xorout 0xFFFFFFFF), the checksum of every edgesync file and
 * message. es_crc32c(0, "123456789", 9) == 0xE3069283.
 *
 * The value composes like zlib's crc32: es_crc32c(es_crc32c(0, a), b) is the
 * CRC of a followed by b, so callers can checksum while they stream.
 *
 * The implementation is chosen once, at first use: on x86-64 with AVX-512
 * and VPCLMULQDQ, carry-less multiply folding (long buffers) with SSE4.2;
 * else SSE4.2 on x86-64 or the ARMv8 CRC32 instructions on aarch64 when
 * the CPU has them, three interleaved streams; otherwise portable
 * slicing-by-8. All functions are thread-safe.
 */
#ifndef EDGESYNC_CRC32C_H
#define EDGESYNC_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* es_crc32c extends crc (0 to start) with len bytes at buf. */
uint32_t es_crc32c(uint32_t crc, const void *buf, size_t len);

/*
 * es_crc32c_combine returns the CRC of A followed by B from crc_a (of A),
 * crc_b (of B, started from 0) and B's length, without the bytes: a
 * receiver that checked every chunk gets the whole file's CRC for free.
 * O(log len_b).
 */
uint32_t es_crc32c_combine(uint32_t crc_a, uint32_t crc_b, uint64_t len_b);

/* The implementations, callable directly for tests and benchmarks. */
enum es_crc32c_impl {
	ES_CRC32C_PORTABLE = 0, /* slicing-by-8, any CPU */
	ES_CRC32C_HW_SERIAL,	/* one stream of CRC instructions */
	ES_CRC32C_HW,		/* three interleaved streams */
	ES_CRC32C_HW_FOLD,	/* carry-less multiply folding (x86 with
				 * AVX-512 and VPCLMULQDQ), the default
				 * where the CPU has it */
};

/*
 * es_crc32c_impl_available says whether impl can run on this CPU;
 * es_crc32c_impl_name names it ("portable", "sse4.2", "vpclmulqdq",
 * "armv8-crc", ...).
 */
int es_crc32c_impl_available(enum es_crc32c_impl impl);
const char *es_crc32c_impl_name(enum es_crc32c_impl impl);

/*
 * es_crc32c_with computes like es_crc32c using impl, which must be
 * available. es_crc32c_active says which impl es_crc32c uses.
 */
uint32_t es_crc32c_with(enum es_crc32c_impl impl, uint32_t crc, const void *buf,
			size_t len);
enum es_crc32c_impl es_crc32c_active(void);

#endif
