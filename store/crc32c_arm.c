/* CRC32C with the ARMv8 CRC32 instructions (aarch64). */
#include "crc32c_impl.h"

#if defined(__aarch64__)
#include <arm_acle.h>
#include <sys/auxv.h>
#ifndef HWCAP_CRC32
#define HWCAP_CRC32 (1 << 7)
#endif

#define HW_ATTR	       __attribute__((target("+crc")))
#define HW_CRC8(r, b)  __crc32cb((r), (b))
#define HW_CRC64(r, v) __crc32cd((r), (v))
#include "crc32c_hw.h"

static const struct es_crc32c_hw armv8 = {
    .name = "armv8-crc",
    .serial_name = "armv8-crc-serial",
    .serial = hw_serial,
    .interleaved = hw_interleaved,
};

const struct es_crc32c_hw *es_crc32c_hw_detect(void)
{
	return (getauxval(AT_HWCAP) & HWCAP_CRC32) ? &armv8 : NULL;
}
#endif
