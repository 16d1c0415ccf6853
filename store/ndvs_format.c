/*
 * NDVS header and footer: packing, and the checks that every reader runs,
 * each failure with its own code (store_error.h), in the order the fields
 * sit in the file.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "edgesync/crc32c.h"
#include "edgesync/store_error.h"
#include "edgesync/le.h"
#include "ndvs_format.h"

static const unsigned char ndvs_magic[4] = {'N', 'D', 'V', 'S'};

#define TAG_LEN	      9 /* '#' and 8 hex digits */
#define EDGESYNC_NAME "edgesync"

int ndvs_layout(uint32_t dim, uint64_t count, struct es_ndvs_info *info)
{
	uint64_t vec_bytes, id_bytes, total;

	if (__builtin_mul_overflow((uint64_t)dim * 4, count, &vec_bytes) ||
	    __builtin_mul_overflow(count, (uint64_t)8, &id_bytes) ||
	    __builtin_add_overflow(vec_bytes, id_bytes, &total) ||
	    __builtin_add_overflow(
		total,
		(uint64_t)(ES_NDVS_HEADER_SIZE + ES_NDVS_FOOTER_SIZE + 4),
		&total) ||
	    total > (uint64_t)INT64_MAX)
		return -EOVERFLOW;
	info->dim = dim;
	info->count = count;
	info->pad = (vec_bytes % 8) ? 4 : 0;
	info->ids_offset = ES_NDVS_HEADER_SIZE + vec_bytes + info->pad;
	info->file_size = total - 4 + info->pad;
	return 0;
}

int es_ndvs_file_size(uint32_t dim, uint64_t count, uint64_t *size)
{
	struct es_ndvs_info info;
	int rc = ndvs_layout(dim, count, &info);

	if (rc == 0)
		*size = info.file_size;
	return rc;
}

void ndvs_pack_header(unsigned char hdr[ES_NDVS_HEADER_SIZE], uint32_t dim,
		      uint64_t count)
{
	memset(hdr, 0, ES_NDVS_HEADER_SIZE);
	memcpy(hdr, ndvs_magic, 4);
	le16_store(hdr + 4, ES_NDVS_FORMAT_VERSION);
	le16_store(hdr + 6, 0); /* flags */
	le32_store(hdr + 8, dim);
	le64_store(hdr + 12, count);
	hdr[20] = 0; /* dtype: float32 */
	hdr[21] = 0; /* codec: none */
}

void ndvs_pack_footer(unsigned char ftr[ES_NDVS_FOOTER_SIZE],
		      const char created_by[ES_NDVS_CREATED_BY_SIZE],
		      uint32_t checksum)
{
	le16_store(ftr, ES_NDVS_FORMAT_VERSION);
	memcpy(ftr + 2, created_by, ES_NDVS_CREATED_BY_SIZE);
	le32_store(ftr + 34, checksum);
	le32_store(ftr + 38, ES_NDVS_FOOTER_SIZE);
	memcpy(ftr + 42, ndvs_magic, 4);
}

static uint32_t stamp_tag(const char *text, size_t len)
{
	return es_crc32c(0, text, len);
}

void ndvs_stamp(char created_by[ES_NDVS_CREATED_BY_SIZE], const char *name)
{
	size_t len = strnlen(name, ES_NDVS_CREATED_BY_SIZE - 1 - TAG_LEN);

	memset(created_by, 0, ES_NDVS_CREATED_BY_SIZE);
	memcpy(created_by, name, len);
	snprintf(created_by + len, TAG_LEN + 1, "#%08x",
		 stamp_tag(created_by, len));
}

static int is_lower_hex(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

/* NUL-padded printable ASCII, and the edgesync tag rules of ndvs.h. */
static int check_created_by(const unsigned char *field)
{
	const char *s = (const char *)field;
	size_t len = 0;

	while (len < ES_NDVS_CREATED_BY_SIZE && field[len])
		len++;
	if (len == ES_NDVS_CREATED_BY_SIZE)
		return ES_E_NDVS_CREATED_BY; /* no terminating NUL */
	for (size_t i = 0; i < len; i++)
		if (field[i] < 0x20 || field[i] > 0x7e)
			return ES_E_NDVS_CREATED_BY;
	for (size_t i = len; i < ES_NDVS_CREATED_BY_SIZE; i++)
		if (field[i])
			return ES_E_NDVS_CREATED_BY;

	int tagged = len >= TAG_LEN && s[len - TAG_LEN] == '#';

	for (size_t i = len - TAG_LEN + 1; tagged && i < len; i++)
		tagged = is_lower_hex(s[i]);
	if (tagged) {
		char want[TAG_LEN + 1];

		snprintf(want, sizeof(want), "#%08x",
			 stamp_tag(s, len - TAG_LEN));
		if (memcmp(want, s + len - TAG_LEN, TAG_LEN) != 0)
			return ES_E_NDVS_CREATED_BY;
	} else if (strncmp(s, EDGESYNC_NAME, strlen(EDGESYNC_NAME)) == 0) {
		return ES_E_NDVS_CREATED_BY;
	}
	return 0;
}

int ndvs_check_header(const unsigned char *hdr, uint64_t file_size,
		      struct es_ndvs_info *info)
{
	struct es_ndvs_info want;

	info->file_size = file_size;
	if (file_size < ES_NDVS_HEADER_SIZE + ES_NDVS_FOOTER_SIZE)
		return ES_E_NDVS_SHORT;
	if (memcmp(hdr, ndvs_magic, 4) != 0)
		return ES_E_NDVS_MAGIC;
	if (le16_load(hdr + 4) != ES_NDVS_FORMAT_VERSION)
		return ES_E_NDVS_VERSION;
	if (le16_load(hdr + 6) != 0)
		return ES_E_NDVS_FLAGS;
	info->dim = le32_load(hdr + 8);
	info->count = le64_load(hdr + 12);
	if (info->dim == 0)
		return ES_E_NDVS_DIM;
	if (hdr[20] != 0)
		return ES_E_NDVS_DTYPE;
	if (hdr[21] != 0)
		return ES_E_NDVS_CODEC;
	for (int i = 22; i < ES_NDVS_HEADER_SIZE; i++)
		if (hdr[i] != 0)
			return ES_E_NDVS_RESERVED;
	if (ndvs_layout(info->dim, info->count, &want) < 0 ||
	    want.file_size != file_size)
		return ES_E_NDVS_SIZE;
	return ndvs_layout(info->dim, info->count, info);
}

int ndvs_check_footer(const unsigned char *ftr, struct es_ndvs_info *info)
{
	int rc;

	if (le16_load(ftr) != ES_NDVS_FORMAT_VERSION)
		return ES_E_NDVS_FOOTER_VERSION;
	rc = check_created_by(ftr + 2);
	if (rc < 0)
		return rc;
	memcpy(info->created_by, ftr + 2, ES_NDVS_CREATED_BY_SIZE);
	info->checksum = le32_load(ftr + 34);
	if (le32_load(ftr + 38) != ES_NDVS_FOOTER_SIZE)
		return ES_E_NDVS_FOOTER_SIZE;
	if (memcmp(ftr + 42, ndvs_magic, 4) != 0)
		return ES_E_NDVS_TRAILER;
	return 0;
}

int ndvs_check_pad(const unsigned char *pad, const struct es_ndvs_info *info)
{
	for (uint32_t i = 0; i < info->pad; i++)
		if (pad[i])
			return ES_E_NDVS_PAD;
	return 0;
}

int es_ndvs_check_image(const void *buf, size_t len, struct es_ndvs_info *info)
{
	struct es_ndvs_info local;
	const unsigned char *p = buf;
	int rc;

	if (!info)
		info = &local;
	memset(info, 0, sizeof(*info));
	rc = ndvs_check_header(p, len, info);
	if (rc == ES_E_NDVS_SHORT)
		return rc;
	if (rc == 0)
		rc = ndvs_check_footer(p + len - ES_NDVS_FOOTER_SIZE, info);
	if (rc == 0)
		rc = ndvs_check_pad(p + info->ids_offset - info->pad, info);
	if (rc == 0 &&
	    es_crc32c(0, p, len - ES_NDVS_FOOTER_SIZE) != info->checksum)
		rc = ES_E_NDVS_CHECKSUM;
	return rc;
}
