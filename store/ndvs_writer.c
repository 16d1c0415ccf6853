/*
 * NDVS segment writer.
 *
 * A segment appears at its final path whole or not at all:
 *
 *   es_ndvs_writer_open      mkstemp "<path>.tmp.XXXXXX" in the same
 *                            directory, header written
 *   es_ndvs_writer_add  (*)  vectors streamed through a 1 MiB buffer
 *   es_ndvs_writer_commit    pad, ids, footer -> fsync(file) -> rename to
 *                            path -> fsync(directory) -> durable
 *   es_ndvs_writer_abort     (or any failure) unlink the temporary file
 *
 * Invariants:
 *   1. w->crc is the CRC32C of every byte handed to the file so far, in
 *      file order: it is extended in emit() just before the bytes leave,
 *      so the checksum is never computed by reading the file back.
 *   2. path is never opened for writing; only rename() touches it, after
 *      the temporary file's data is on disk.
 *   3. The footer is emitted only when exactly count rows were added.
 * A crash at any point leaves either no file at path (and a *.tmp.* file
 * that start-up removes) or the complete, durable segment.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "edgesync/crc32c.h"
#include "edgesync/store_error.h"
#include "io_util.h"
#include "ndvs_format.h"

#define WRITE_BUF (1u << 20)

struct es_ndvs_writer {
	int fd;
	char *path;
	char *tmp_path;
	uint32_t dim;
	uint64_t count;
	uint64_t added;
	uint64_t *ids;
	uint32_t crc;
	size_t used;
	unsigned char *buf;
};

static int flush(struct es_ndvs_writer *w)
{
	int rc = io_write_all(w->fd, w->buf, w->used);

	w->used = 0;
	return rc;
}

/* Hands len bytes to the file; covered by the checksum when checked. */
static int emit(struct es_ndvs_writer *w, const void *p, size_t len,
		int checked)
{
	int rc;

	if (checked)
		w->crc = es_crc32c(w->crc, p, len);
	if (w->used + len <= WRITE_BUF) {
		memcpy(w->buf + w->used, p, len);
		w->used += len;
		return 0;
	}
	rc = flush(w);
	if (rc == 0)
		rc = io_write_all(w->fd, p, len);
	return rc;
}

static void writer_free(struct es_ndvs_writer *w)
{
	if (w->fd >= 0)
		close(w->fd);
	free(w->path);
	free(w->tmp_path);
	free(w->ids);
	free(w->buf);
	free(w);
}

void es_ndvs_writer_abort(struct es_ndvs_writer *w)
{
	if (!w)
		return;
	if (w->tmp_path)
		unlink(w->tmp_path);
	writer_free(w);
}

int es_ndvs_writer_open(struct es_ndvs_writer **wp, const char *path,
			uint32_t dim, uint64_t count)
{
	unsigned char hdr[ES_NDVS_HEADER_SIZE];
	struct es_ndvs_writer *w;
	uint64_t size;
	int rc;

	*wp = NULL;
	if (dim == 0)
		return -EINVAL;
	rc = es_ndvs_file_size(dim, count, &size);
	if (rc < 0)
		return rc;
	if (count > SIZE_MAX / sizeof(uint64_t))
		return -EOVERFLOW;
	w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->fd = -1;
	w->dim = dim;
	w->count = count;
	w->path = strdup(path);
	w->buf = malloc(WRITE_BUF);
	w->ids = malloc(count ? count * sizeof(uint64_t) : 1);
	if (!w->path || !w->buf || !w->ids ||
	    asprintf(&w->tmp_path, "%s.tmp.XXXXXX", path) < 0) {
		w->tmp_path = NULL;
		writer_free(w);
		return -ENOMEM;
	}
	w->fd = mkostemp(w->tmp_path, O_CLOEXEC);
	if (w->fd < 0) {
		rc = -errno;
		free(w->tmp_path);
		w->tmp_path = NULL;
		writer_free(w);
		return rc;
	}
	/* Claim the space now: a full disk fails here, not at the end. */
	rc = posix_fallocate(w->fd, 0, (off_t)size);
	if (rc != 0 && rc != EOPNOTSUPP && rc != EINVAL) {
		es_ndvs_writer_abort(w);
		return -rc;
	}
	ndvs_pack_header(hdr, dim, count);
	rc = emit(w, hdr, sizeof(hdr), 1);
	if (rc < 0) {
		es_ndvs_writer_abort(w);
		return rc;
	}
	*wp = w;
	return 0;
}

int es_ndvs_writer_add(struct es_ndvs_writer *w, const float *vectors,
		       const uint64_t *ids, size_t n)
{
	if (n > w->count - w->added)
		return -EINVAL;
	if (n == 0)
		return 0;
	memcpy(w->ids + w->added, ids, n * sizeof(uint64_t));
	w->added += n;
	return emit(w, vectors, n * w->dim * sizeof(float), 1);
}

int es_ndvs_writer_commit(struct es_ndvs_writer *w, struct es_ndvs_info *info)
{
	static const unsigned char zero_pad[4];
	unsigned char ftr[ES_NDVS_FOOTER_SIZE];
	char created_by[ES_NDVS_CREATED_BY_SIZE];
	struct es_ndvs_info layout = {0};
	int rc = ndvs_layout(w->dim, w->count, &layout);

	if (rc == 0 && w->added != w->count)
		rc = ES_E_NDVS_ROWS;
	if (rc == 0)
		rc = emit(w, zero_pad, layout.pad, 1);
	if (rc == 0)
		rc = emit(w, w->ids, w->count * sizeof(uint64_t), 1);
	if (rc == 0) {
		ndvs_stamp(created_by, "edgesync " ES_VERSION);
		ndvs_pack_footer(ftr, created_by, w->crc);
		rc = emit(w, ftr, sizeof(ftr), 0);
	}
	if (rc == 0)
		rc = flush(w);
	if (rc == 0 && fsync(w->fd) < 0)
		rc = -errno;
	if (rc == 0 && rename(w->tmp_path, w->path) < 0)
		rc = -errno;
	if (rc < 0) {
		es_ndvs_writer_abort(w);
		return rc;
	}
	free(w->tmp_path);
	w->tmp_path = NULL; /* renamed: nothing left to remove */
	rc = io_fsync_parent(w->path);
	if (rc == 0 && info) {
		*info = layout;
		info->checksum = w->crc;
		memcpy(info->created_by, created_by, sizeof(created_by));
	}
	writer_free(w);
	return rc;
}

int es_ndvs_write(const char *path, uint32_t dim, uint64_t count,
		  const float *vectors, const uint64_t *ids,
		  struct es_ndvs_info *info)
{
	struct es_ndvs_writer *w;
	int rc = es_ndvs_writer_open(&w, path, dim, count);

	if (rc < 0)
		return rc;
	rc = es_ndvs_writer_add(w, vectors, ids, count);
	if (rc < 0) {
		es_ndvs_writer_abort(w);
		return rc;
	}
	return es_ndvs_writer_commit(w, info);
}
