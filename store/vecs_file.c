/* Reading texmex .fvecs / .ivecs files, checked record by record. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "edgesync/store_error.h"
#include "edgesync/vecs_file.h"
#include "io_util.h"
#include "edgesync/le.h"

#define READ_BUF (4u << 20)

struct es_vecs {
	int fd;
	enum es_vecs_kind kind;
	uint32_t dim;
	uint64_t count;
	uint64_t pos; /* records consumed */
	size_t rec_size;
	unsigned char *buf;
};

void es_vecs_close(struct es_vecs *v)
{
	if (!v)
		return;
	if (v->fd >= 0)
		close(v->fd);
	free(v->buf);
	free(v);
}

int es_vecs_open(struct es_vecs **vp, const char *path, enum es_vecs_kind kind)
{
	unsigned char head[4];
	struct es_vecs *v;
	struct stat st;
	int32_t dim;
	int rc;

	*vp = NULL;
	v = calloc(1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	v->kind = kind;
	v->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (v->fd < 0) {
		rc = -errno;
		goto err;
	}
	if (fstat(v->fd, &st) < 0) {
		rc = -errno;
		goto err;
	}
	rc = S_ISREG(st.st_mode) ? 0 : -EINVAL;
	if (rc == 0 && st.st_size == 0)
		rc = ES_E_VECS_EMPTY;
	if (rc == 0 && st.st_size < 4)
		rc = ES_E_VECS_TRUNCATED;
	if (rc == 0)
		rc = io_pread_all(v->fd, head, 4, 0);
	if (rc < 0)
		goto err;
	dim = (int32_t)le32_load(head);
	if (dim <= 0 || dim > ES_VECS_MAX_DIM) {
		rc = ES_E_VECS_DIM;
		goto err;
	}
	v->dim = (uint32_t)dim;
	v->rec_size = 4 + 4 * (size_t)dim;
	if ((uint64_t)st.st_size % v->rec_size) {
		rc = ES_E_VECS_TRUNCATED;
		goto err;
	}
	v->count = (uint64_t)st.st_size / v->rec_size;
	v->buf = malloc(READ_BUF > v->rec_size ? READ_BUF : v->rec_size);
	if (!v->buf) {
		rc = -ENOMEM;
		goto err;
	}
	*vp = v;
	return 0;
err:
	es_vecs_close(v);
	return rc;
}

uint32_t es_vecs_dim(const struct es_vecs *v)
{
	return v->dim;
}

uint64_t es_vecs_count(const struct es_vecs *v)
{
	return v->count;
}

uint64_t es_vecs_position(const struct es_vecs *v)
{
	return v->pos;
}

/* Checks one record and copies its values to dst. */
static int take_record(struct es_vecs *v, const unsigned char *rec, void *dst)
{
	size_t bytes = 4 * (size_t)v->dim;

	if (le32_load(rec) != v->dim)
		return ES_E_VECS_MIXED;
	memcpy(dst, rec + 4, bytes);
	if (v->kind == ES_VECS_FLOAT) {
		const float *f = dst;

		for (uint32_t i = 0; i < v->dim; i++)
			if (!isfinite(f[i]))
				return ES_E_VECS_NONFINITE;
	}
	return 0;
}

long es_vecs_read(struct es_vecs *v, void *dst, size_t n)
{
	size_t per_read = READ_BUF / v->rec_size ? READ_BUF / v->rec_size : 1;
	unsigned char *out = dst;
	size_t done = 0;

	if (n > v->count - v->pos)
		n = v->count - v->pos;
	while (done < n) {
		size_t batch = n - done < per_read ? n - done : per_read;
		int rc = io_pread_all(v->fd, v->buf, batch * v->rec_size,
				      (off_t)(v->pos * v->rec_size));

		if (rc < 0)
			return rc;
		for (size_t i = 0; i < batch; i++) {
			rc = take_record(v, v->buf + i * v->rec_size,
					 out + (done + i) * 4 * v->dim);
			if (rc < 0) {
				v->pos += i;
				return rc;
			}
		}
		v->pos += batch;
		done += batch;
	}
	return (long)done;
}

int es_vecs_load(const char *path, enum es_vecs_kind kind, void **data,
		 uint32_t *dim, uint64_t *count)
{
	struct es_vecs *v;
	void *all;
	long got;
	int rc = es_vecs_open(&v, path, kind);

	*data = NULL;
	if (rc < 0)
		return rc;
	all = malloc(es_vecs_count(v) * es_vecs_dim(v) * 4);
	if (!all) {
		es_vecs_close(v);
		return -ENOMEM;
	}
	got = es_vecs_read(v, all, es_vecs_count(v));
	if (got < 0) {
		free(all);
		es_vecs_close(v);
		return (int)got;
	}
	*data = all;
	*dim = es_vecs_dim(v);
	*count = es_vecs_count(v);
	es_vecs_close(v);
	return 0;
}
