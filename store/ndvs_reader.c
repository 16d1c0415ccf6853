/*
 * NDVS segment readers: a mapped one (zero-copy rows, MADV_RANDOM) and a
 * pread one (a descriptor only). Both check every header and footer field,
 * the exact size and the pad at open; the full checksum runs on request
 * (ES_NDVS_OPEN_VERIFY, es_ndvs_verify), as ndvs.h explains.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "edgesync/crc32c.h"
#include "edgesync/store_error.h"
#include "io_util.h"
#include "ndvs_format.h"

#define VERIFY_CHUNK (4u << 20)

struct es_ndvs {
	int fd;
	const unsigned char *map; /* NULL for a pread segment */
	struct es_ndvs_info info;
};

static int read_at(const struct es_ndvs *seg, void *dst, size_t len,
		   uint64_t off)
{
	if (seg->map) {
		memcpy(dst, seg->map + off, len);
		return 0;
	}
	return io_pread_all(seg->fd, dst, len, (off_t)off);
}

static int check_fields(struct es_ndvs *seg, uint64_t size,
			struct es_ndvs_info *info)
{
	unsigned char hdr[ES_NDVS_HEADER_SIZE], ftr[ES_NDVS_FOOTER_SIZE];
	unsigned char pad[4];
	int rc;

	info->file_size = size;
	if (size < ES_NDVS_HEADER_SIZE + ES_NDVS_FOOTER_SIZE)
		return ES_E_NDVS_SHORT;
	rc = read_at(seg, hdr, sizeof(hdr), 0);
	if (rc == 0)
		rc = ndvs_check_header(hdr, size, info);
	if (rc == 0)
		rc = read_at(seg, ftr, sizeof(ftr), size - sizeof(ftr));
	if (rc == 0)
		rc = ndvs_check_footer(ftr, info);
	if (rc == 0 && info->pad)
		rc = read_at(seg, pad, info->pad, info->ids_offset - info->pad);
	if (rc == 0)
		rc = ndvs_check_pad(pad, info);
	return rc;
}

int es_ndvs_open(struct es_ndvs **segp, const char *path, unsigned flags,
		 struct es_ndvs_info *info)
{
	struct es_ndvs *seg;
	struct stat st;
	int rc;

	*segp = NULL;
	if (info)
		memset(info, 0, sizeof(*info));
	seg = calloc(1, sizeof(*seg));
	if (!seg)
		return -ENOMEM;
	seg->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (seg->fd < 0) {
		rc = -errno;
		goto err;
	}
	if (fstat(seg->fd, &st) < 0) {
		rc = -errno;
		goto err;
	}
	if (!S_ISREG(st.st_mode)) {
		rc = -EINVAL;
		goto err;
	}
	if (!(flags & ES_NDVS_OPEN_PREAD) && st.st_size > 0) {
		void *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED,
			       seg->fd, 0);

		if (m == MAP_FAILED) {
			rc = -errno;
			goto err;
		}
		seg->map = m;
		madvise(m, (size_t)st.st_size, MADV_RANDOM);
	}
	rc = check_fields(seg, (uint64_t)st.st_size, &seg->info);
	if (rc == 0 && (flags & ES_NDVS_OPEN_VERIFY))
		rc = es_ndvs_verify(seg);
	if (info)
		*info = seg->info;
	if (rc < 0)
		goto err;
	*segp = seg;
	return 0;
err:
	es_ndvs_close(seg);
	return rc;
}

void es_ndvs_close(struct es_ndvs *seg)
{
	if (!seg)
		return;
	if (seg->map)
		munmap((void *)seg->map, seg->info.file_size);
	if (seg->fd >= 0)
		close(seg->fd);
	free(seg);
}

const struct es_ndvs_info *es_ndvs_get_info(const struct es_ndvs *seg)
{
	return &seg->info;
}

int es_ndvs_verify(struct es_ndvs *seg)
{
	uint64_t len = seg->info.file_size - ES_NDVS_FOOTER_SIZE;
	uint32_t crc = 0;
	unsigned char *buf;
	int rc = 0;

	if (seg->map) {
		madvise((void *)seg->map, len, MADV_SEQUENTIAL);
		crc = es_crc32c(0, seg->map, len);
		madvise((void *)seg->map, len, MADV_RANDOM);
	} else {
		buf = malloc(VERIFY_CHUNK);
		if (!buf)
			return -ENOMEM;
		posix_fadvise(seg->fd, 0, (off_t)len, POSIX_FADV_SEQUENTIAL);
		for (uint64_t off = 0; rc == 0 && off < len;) {
			size_t n =
			    len - off < VERIFY_CHUNK ? len - off : VERIFY_CHUNK;

			rc = io_pread_all(seg->fd, buf, n, (off_t)off);
			crc = es_crc32c(crc, buf, n);
			off += n;
		}
		free(buf);
		if (rc < 0)
			return rc;
	}
	return crc == seg->info.checksum ? 0 : ES_E_NDVS_CHECKSUM;
}

const float *es_ndvs_row(const struct es_ndvs *seg, uint64_t row)
{
	if (!seg->map || row >= seg->info.count)
		return NULL;
	return (const float *)(seg->map + ES_NDVS_HEADER_SIZE +
			       row * seg->info.dim * sizeof(float));
}

static int rows_in_range(const struct es_ndvs *seg, uint64_t first, uint64_t n)
{
	return first <= seg->info.count && n <= seg->info.count - first;
}

int es_ndvs_read_rows(const struct es_ndvs *seg, uint64_t first, uint64_t n,
		      float *dst)
{
	uint64_t row_bytes = (uint64_t)seg->info.dim * sizeof(float);

	if (!rows_in_range(seg, first, n))
		return -ERANGE;
	if (n == 0)
		return 0;
	return read_at(seg, dst, n * row_bytes,
		       ES_NDVS_HEADER_SIZE + first * row_bytes);
}

int es_ndvs_read_ids(const struct es_ndvs *seg, uint64_t first, uint64_t n,
		     uint64_t *dst)
{
	if (!rows_in_range(seg, first, n))
		return -ERANGE;
	if (n == 0)
		return 0;
	return read_at(seg, dst, n * sizeof(uint64_t),
		       seg->info.ids_offset + first * sizeof(uint64_t));
}
