/* CRC32C with the SSE4.2 crc32 instruction (x86-64). */
#include "crc32c_impl.h"

#if defined(__x86_64__)
#include <nmmintrin.h>

#define HW_ATTR	       __attribute__((target("sse4.2")))
#define HW_CRC8(r, b)  _mm_crc32_u8((r), (b))
#define HW_CRC64(r, v) ((uint32_t)_mm_crc32_u64((r), (v)))
#include "crc32c_hw.h"

static const struct es_crc32c_hw sse42 = {
    .name = "sse4.2",
    .serial_name = "sse4.2-serial",
    .serial = hw_serial,
    .interleaved = hw_interleaved,
};

const struct es_crc32c_hw *es_crc32c_hw_detect(void)
{
	__builtin_cpu_init();
	return __builtin_cpu_supports("sse4.2") ? &sse42 : NULL;
}
#endif
