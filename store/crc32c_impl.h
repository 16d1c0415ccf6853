/*
 * Private to the store: the pieces shared by the portable CRC32C and the
 * per-architecture hardware paths.
 *
 * The functions here work on the raw CRC register (already inverted at the
 * start, not yet inverted at the end); es_crc32c() in crc32c.c does the
 * inversions. Feeding bytes to the register is affine over GF(2), which is
 * what lets the hardware path run three streams and join them:
 *   reg(A || B, r) = shift_{|B|}(reg(A, r)) ^ reg(B, 0)
 * where shift_n is the linear map "feed n zero bytes".
 */
#ifndef EDGESYNC_CRC32C_IMPL_H
#define EDGESYNC_CRC32C_IMPL_H

#include <stddef.h>
#include <stdint.h>

#define ES_CRC32C_POLY	0x82F63B78u
#define ES_CRC32C_LONG	8192 /* bytes per stream in the long blocks */
#define ES_CRC32C_SHORT 256  /* bytes per stream in the short blocks */

/* shift_LONG and shift_SHORT of the register, through 4x256 tables. */
uint32_t es_crc32c_shift_long(uint32_t reg);
uint32_t es_crc32c_shift_short(uint32_t reg);

/* A hardware implementation, if this architecture has one; fold (and
 * fold_name) only on x86-64 with AVX-512 and VPCLMULQDQ. */
struct es_crc32c_hw {
	const char *name;	 /* of the interleaved path */
	const char *serial_name; /* of the one-stream path */
	const char *fold_name;	 /* of the folding path */
	uint32_t (*serial)(uint32_t reg, const void *buf, size_t len);
	uint32_t (*interleaved)(uint32_t reg, const void *buf, size_t len);
	uint32_t (*fold)(uint32_t reg, const void *buf, size_t len);
};

/* es_crc32c_hw_detect returns the CPU's hardware path, or NULL. */
const struct es_crc32c_hw *es_crc32c_hw_detect(void);

#endif
