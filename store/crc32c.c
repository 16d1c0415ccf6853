/*
 * CRC32C: the portable slicing-by-8 path, the shift tables the hardware
 * paths use to join their streams, and the choice made at first use.
 */
#include <pthread.h>
#include <string.h>

#include "edgesync/crc32c.h"
#include "crc32c_impl.h"

#if !defined(__x86_64__) && !defined(__aarch64__)
const struct es_crc32c_hw *es_crc32c_hw_detect(void)
{
	return NULL;
}
#endif

static pthread_once_t crc_once = PTHREAD_ONCE_INIT;
static uint32_t sw_table[8][256];
static uint32_t shift_long[4][256];
static uint32_t shift_short[4][256];
static uint32_t x8pow2[64]; /* x^(8 * 2^k) mod P, reflected */
static const struct es_crc32c_hw *hw;

#define X0 0x80000000u /* the polynomial 1 in the reflected register */

/* a * b mod P, both reflected (bit 31 is x^0). */
static uint32_t mul_mod(uint32_t a, uint32_t b)
{
	uint32_t p = 0;

	for (uint32_t m = X0; m && a; m >>= 1) {
		if (a & m) {
			p ^= b;
			a ^= m;
		}
		b = (b & 1) ? (b >> 1) ^ ES_CRC32C_POLY : b >> 1; /* b * x */
	}
	return p;
}

/* The 4x256 table of the map "feed n zero bytes to the register". */
static void shift_table_init(uint32_t table[4][256], size_t n)
{
	uint32_t basis[32];

	for (int bit = 0; bit < 32; bit++) {
		uint32_t v = 1u << bit;

		for (size_t i = 0; i < n; i++)
			v = sw_table[0][v & 0xff] ^ (v >> 8);
		basis[bit] = v;
	}
	for (int k = 0; k < 4; k++) {
		for (uint32_t b = 0; b < 256; b++) {
			uint32_t v = 0;

			for (int j = 0; j < 8; j++)
				if (b & (1u << j))
					v ^= basis[8 * k + j];
			table[k][b] = v;
		}
	}
}

static void crc_init(void)
{
	for (uint32_t n = 0; n < 256; n++) {
		uint32_t c = n;

		for (int k = 0; k < 8; k++)
			c = (c & 1) ? (c >> 1) ^ ES_CRC32C_POLY : c >> 1;
		sw_table[0][n] = c;
	}
	for (uint32_t n = 0; n < 256; n++)
		for (int k = 1; k < 8; k++)
			sw_table[k][n] = (sw_table[k - 1][n] >> 8) ^
					 sw_table[0][sw_table[k - 1][n] & 0xff];
	shift_table_init(shift_long, ES_CRC32C_LONG);
	shift_table_init(shift_short, ES_CRC32C_SHORT);
	x8pow2[0] = X0 >> 8; /* x^8 */
	for (int k = 1; k < 64; k++)
		x8pow2[k] = mul_mod(x8pow2[k - 1], x8pow2[k - 1]);
	hw = es_crc32c_hw_detect();
}

static inline uint32_t shift_apply(uint32_t table[4][256], uint32_t reg)
{
	return table[0][reg & 0xff] ^ table[1][(reg >> 8) & 0xff] ^
	       table[2][(reg >> 16) & 0xff] ^ table[3][reg >> 24];
}

uint32_t es_crc32c_shift_long(uint32_t reg)
{
	return shift_apply(shift_long, reg);
}

uint32_t es_crc32c_shift_short(uint32_t reg)
{
	return shift_apply(shift_short, reg);
}

static inline uint32_t load32le(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

static uint32_t sw_crc(uint32_t reg, const void *buf, size_t len)
{
	const unsigned char *p = buf;

	for (; len && ((uintptr_t)p & 7); p++, len--)
		reg = sw_table[0][(reg ^ *p) & 0xff] ^ (reg >> 8);
	for (; len >= 8; p += 8, len -= 8) {
		uint32_t lo = reg ^ load32le(p);
		uint32_t hi = load32le(p + 4);

		reg = sw_table[7][lo & 0xff] ^ sw_table[6][(lo >> 8) & 0xff] ^
		      sw_table[5][(lo >> 16) & 0xff] ^ sw_table[4][lo >> 24] ^
		      sw_table[3][hi & 0xff] ^ sw_table[2][(hi >> 8) & 0xff] ^
		      sw_table[1][(hi >> 16) & 0xff] ^ sw_table[0][hi >> 24];
	}
	for (; len; p++, len--)
		reg = sw_table[0][(reg ^ *p) & 0xff] ^ (reg >> 8);
	return reg;
}

int es_crc32c_impl_available(enum es_crc32c_impl impl)
{
	pthread_once(&crc_once, crc_init);
	switch (impl) {
	case ES_CRC32C_PORTABLE:
		return 1;
	case ES_CRC32C_HW_SERIAL:
	case ES_CRC32C_HW:
		return hw != NULL;
	case ES_CRC32C_HW_FOLD:
		return hw && hw->fold;
	}
	return 0;
}

const char *es_crc32c_impl_name(enum es_crc32c_impl impl)
{
	pthread_once(&crc_once, crc_init);
	switch (impl) {
	case ES_CRC32C_PORTABLE:
		return "portable";
	case ES_CRC32C_HW_SERIAL:
		return hw ? hw->serial_name : "unavailable";
	case ES_CRC32C_HW:
		return hw ? hw->name : "unavailable";
	case ES_CRC32C_HW_FOLD:
		return hw && hw->fold ? hw->fold_name : "unavailable";
	}
	return "unknown";
}

enum es_crc32c_impl es_crc32c_active(void)
{
	pthread_once(&crc_once, crc_init);
	if (hw && hw->fold)
		return ES_CRC32C_HW_FOLD;
	return hw ? ES_CRC32C_HW : ES_CRC32C_PORTABLE;
}

uint32_t es_crc32c_with(enum es_crc32c_impl impl, uint32_t crc, const void *buf,
			size_t len)
{
	uint32_t reg = ~crc;

	pthread_once(&crc_once, crc_init);
	if (impl == ES_CRC32C_HW_FOLD && hw && hw->fold)
		reg = hw->fold(reg, buf, len);
	else if (impl == ES_CRC32C_HW && hw)
		reg = hw->interleaved(reg, buf, len);
	else if (impl == ES_CRC32C_HW_SERIAL && hw)
		reg = hw->serial(reg, buf, len);
	else
		reg = sw_crc(reg, buf, len);
	return ~reg;
}

/*
 * Feeding n zero bytes to the register multiplies it by x^(8n) mod P;
 * with the inversions, CRC(A || B) = shift_{|B|}(CRC(A)) ^ CRC(B).
 */
uint32_t es_crc32c_combine(uint32_t crc_a, uint32_t crc_b, uint64_t len_b)
{
	uint32_t x = X0;

	pthread_once(&crc_once, crc_init);
	for (int k = 0; len_b; k++, len_b >>= 1)
		if (len_b & 1)
			x = mul_mod(x, x8pow2[k]);
	return mul_mod(crc_a, x) ^ crc_b;
}

uint32_t es_crc32c(uint32_t crc, const void *buf, size_t len)
{
	pthread_once(&crc_once, crc_init);
	if (!hw)
		return ~sw_crc(~crc, buf, len);
	return ~(hw->fold ? hw->fold(~crc, buf, len)
			  : hw->interleaved(~crc, buf, len));
}
