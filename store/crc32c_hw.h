/*
 * Private to the store: the hardware CRC32C loops, written once for every
 * architecture. The including file defines
 *   HW_ATTR          the function attribute that enables the instructions,
 *   HW_CRC8(r, b)    the register extended by one byte,
 *   HW_CRC64(r, v)   the register extended by one little-endian u64,
 * and gets hw_serial() and hw_interleaved() with the es_crc32c_hw
 * signatures. Three streams hide the instruction's latency: each block of
 * 3 x n bytes is three independent CRCs joined with es_crc32c_shift_*.
 */
#ifndef HW_ATTR
#error "define HW_ATTR, HW_CRC8 and HW_CRC64 before including crc32c_hw.h"
#endif

#include <string.h>

static inline HW_ATTR uint64_t hw_load64(const unsigned char *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

static HW_ATTR uint32_t hw_serial(uint32_t reg, const void *buf, size_t len)
{
	const unsigned char *p = buf;

	for (; len >= 8; p += 8, len -= 8)
		reg = HW_CRC64(reg, hw_load64(p));
	for (; len; p++, len--)
		reg = HW_CRC8(reg, *p);
	return reg;
}

/* Three streams of n bytes each from p; returns the joined register. */
static inline HW_ATTR uint32_t hw_three(uint32_t reg, const unsigned char *p,
					size_t n, uint32_t (*shift)(uint32_t))
{
	uint32_t r1 = 0, r2 = 0;
	const unsigned char *end = p + n;

	for (; p < end; p += 8) {
		reg = HW_CRC64(reg, hw_load64(p));
		r1 = HW_CRC64(r1, hw_load64(p + n));
		r2 = HW_CRC64(r2, hw_load64(p + 2 * n));
	}
	reg = shift(reg) ^ r1;
	return shift(reg) ^ r2;
}

static HW_ATTR uint32_t hw_interleaved(uint32_t reg, const void *buf,
				       size_t len)
{
	const unsigned char *p = buf;

	for (; len && ((uintptr_t)p & 7); p++, len--)
		reg = HW_CRC8(reg, *p);
	for (; len >= 3 * ES_CRC32C_LONG;
	     p += 3 * ES_CRC32C_LONG, len -= 3 * ES_CRC32C_LONG)
		reg = hw_three(reg, p, ES_CRC32C_LONG, es_crc32c_shift_long);
	for (; len >= 3 * ES_CRC32C_SHORT;
	     p += 3 * ES_CRC32C_SHORT, len -= 3 * ES_CRC32C_SHORT)
		reg = hw_three(reg, p, ES_CRC32C_SHORT, es_crc32c_shift_short);
	return hw_serial(reg, p, len);
}
