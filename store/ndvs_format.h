/*
 * Private to the store: packing and checking NDVS headers and footers, the
 * one place that knows the byte layout. Both readers and the writer use it.
 *
 * Header (32):  0 magic "NDVS" | 4 version u16 | 6 flags u16 | 8 dim u32 |
 *               12 count u64 | 20 dtype u8 | 21 codec u8 | 22 reserved[10]
 * Footer (46):  0 version u16 | 2 created_by[32] | 34 crc32c u32 |
 *               38 footer_size u32 (46) | 42 magic "NDVS"
 */
#ifndef EDGESYNC_NDVS_FORMAT_H
#define EDGESYNC_NDVS_FORMAT_H

#include "edgesync/ndvs.h"

/*
 * ndvs_layout fills dim, count, file_size, pad and ids_offset of info for a
 * segment of count vectors of dim floats; -EOVERFLOW past 2^63 bytes.
 */
int ndvs_layout(uint32_t dim, uint64_t count, struct es_ndvs_info *info);

void ndvs_pack_header(unsigned char hdr[ES_NDVS_HEADER_SIZE], uint32_t dim,
		      uint64_t count);
void ndvs_pack_footer(unsigned char ftr[ES_NDVS_FOOTER_SIZE],
		      const char created_by[ES_NDVS_CREATED_BY_SIZE],
		      uint32_t checksum);

/* ndvs_stamp fills created_by with "<name>#<tag>" (see ndvs.h). */
void ndvs_stamp(char created_by[ES_NDVS_CREATED_BY_SIZE], const char *name);

/*
 * ndvs_check_header checks every header field and that file_size is the
 * exact size they imply; fills dim, count, file_size, pad, ids_offset.
 * ndvs_check_footer checks every footer field; fills checksum, created_by.
 * ndvs_check_pad checks the info->pad bytes at pad.
 */
int ndvs_check_header(const unsigned char *hdr, uint64_t file_size,
		      struct es_ndvs_info *info);
int ndvs_check_footer(const unsigned char *ftr, struct es_ndvs_info *info);
int ndvs_check_pad(const unsigned char *pad, const struct es_ndvs_info *info);

#endif
