/*
 * Reading vector files record by record: the interface of vecs_file.h,
 * the choice of a format by content, the .fvecs / .ivecs reader and the
 * batched reading the binary formats share (.npy in vecs_npy.c, CSV in
 * vecs_csv.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "edgesync/store_error.h"
#include "edgesync/vecs_file.h"
#include "io_util.h"
#include "edgesync/le.h"
#include "vecs_impl.h"

#define SNIFF_BYTES 512

void es_vecs_close(struct es_vecs *v)
{
	if (!v)
		return;
	if (v->ops && v->ops->fini)
		v->ops->fini(v);
	if (v->fd >= 0)
		close(v->fd);
	free(v->buf);
	free(v);
}

/* ---- binary formats: records of rec_size bytes from data_off ---------- */

static long binary_read(struct es_vecs *v, void *dst, uint64_t *ids, size_t n)
{
	size_t per_read = VECS_READ_BUF / v->rec_size;
	unsigned char *out = dst;
	size_t done = 0;

	(void)ids;
	if (per_read == 0)
		per_read = 1;
	while (done < n) {
		size_t batch = n - done < per_read ? n - done : per_read;
		int rc =
		    io_pread_all(v->fd, v->buf, batch * v->rec_size,
				 v->data_off + (off_t)(v->pos * v->rec_size));

		if (rc < 0)
			return rc;
		for (size_t i = 0; i < batch; i++) {
			rc = v->take(v, v->buf + i * v->rec_size,
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

static const struct vecs_ops binary_ops = {binary_read, NULL};

int vecs_binary_init(struct es_vecs *v)
{
	v->buf =
	    malloc(VECS_READ_BUF > v->rec_size ? VECS_READ_BUF : v->rec_size);
	if (!v->buf)
		return -ENOMEM;
	v->ops = &binary_ops;
	return 0;
}

/* ---- .fvecs / .ivecs --------------------------------------------------- */

/* Checks one record and copies its values to dst. */
static int fvecs_take(struct es_vecs *v, const unsigned char *rec, void *dst)
{
	size_t bytes = 4 * (size_t)v->dim;

	if (le32_load(rec) != v->dim)
		return ES_E_VECS_MIXED;
	memcpy(dst, rec + 4, bytes);
	if (v->kind == ES_VECS_FLOAT) {
		const float *f = dst;

		for (uint32_t i = 0; i < v->dim; i++)
			if (!isfinite(f[i])) {
				v->loc.column = i + 1;
				return ES_E_VECS_NONFINITE;
			}
	}
	return 0;
}

/*
 * Opens an .fvecs / .ivecs file; guessed says the format was not given, so a
 * file whose first record is no record at all is none of the formats.
 */
static int fvecs_open(struct es_vecs *v, uint64_t size, int guessed)
{
	unsigned char head[4];
	int32_t dim;
	int rc;

	if (size < 4)
		return guessed ? ES_E_VECS_FORMAT : ES_E_VECS_TRUNCATED;
	rc = io_pread_all(v->fd, head, 4, 0);
	if (rc < 0)
		return rc;
	dim = (int32_t)le32_load(head);
	if (dim <= 0 || dim > ES_VECS_MAX_DIM)
		return guessed ? ES_E_VECS_FORMAT : ES_E_VECS_DIM;
	v->dim = (uint32_t)dim;
	v->rec_size = 4 + 4 * (size_t)dim;
	if (size % v->rec_size)
		return ES_E_VECS_TRUNCATED;
	v->count = size / v->rec_size;
	v->take = fvecs_take;
	return vecs_binary_init(v);
}

/* ---- choosing the format ----------------------------------------------- */

/*
 * Whether p[0..len) is text: valid UTF-8 (cut at the end allowed), no
 * control bytes but tab, LF and CR. An .fvecs file never is: its first
 * int32 (the dimension, 1 to 65536) holds a zero byte.
 */
static int looks_like_text(const unsigned char *p, size_t len)
{
	size_t i = 0;

	while (i < len) {
		unsigned char c = p[i];
		size_t more;

		if (c < 0x80) {
			if ((c < 0x20 && c != '\t' && c != '\n' && c != '\r') ||
			    c == 0x7f)
				return 0;
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf)
			more = 1;
		else if (c >= 0xe0 && c <= 0xef)
			more = 2;
		else if (c >= 0xf0 && c <= 0xf4)
			more = 3;
		else
			return 0;
		for (size_t k = 1; k <= more && i + k < len; k++)
			if ((p[i + k] & 0xc0) != 0x80)
				return 0;
		i += 1 + more;
	}
	return 1;
}

static int sniff(int fd, uint64_t size, enum es_vecs_format *format)
{
	unsigned char head[SNIFF_BYTES];
	size_t len = size < SNIFF_BYTES ? (size_t)size : SNIFF_BYTES;
	int rc = io_pread_all(fd, head, len, 0);

	if (rc < 0)
		return rc;
	if (len >= 6 && !memcmp(head, "\x93NUMPY", 6))
		*format = ES_VECS_NPY;
	else if (looks_like_text(head, len))
		*format = ES_VECS_CSV;
	else
		*format = ES_VECS_FVECS;
	return 0;
}

/* ---- the interface ----------------------------------------------------- */

static int vecs_open(struct es_vecs **vp, const char *path,
		     enum es_vecs_format format, enum es_vecs_kind kind,
		     unsigned flags, struct es_vecs_loc *loc)
{
	int guessed = format == ES_VECS_AUTO;
	struct es_vecs *v;
	struct stat st;
	int rc;

	*vp = NULL;
	if (loc)
		memset(loc, 0, sizeof(*loc));
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
	if (rc == 0 && guessed)
		rc = sniff(v->fd, (uint64_t)st.st_size, &format);
	if (rc < 0)
		goto err;
	v->format = format;
	if (format == ES_VECS_NPY)
		rc = vecs_npy_open(v, (uint64_t)st.st_size);
	else if (format == ES_VECS_CSV)
		rc = vecs_csv_open(v, (uint64_t)st.st_size, flags);
	else if (format == ES_VECS_FVECS)
		rc = fvecs_open(v, (uint64_t)st.st_size, guessed);
	else
		rc = -EINVAL;
	if (rc < 0)
		goto err;
	*vp = v;
	return 0;
err:
	if (loc)
		*loc = v->loc;
	es_vecs_close(v);
	return rc;
}

int es_vecs_open(struct es_vecs **vp, const char *path, enum es_vecs_kind kind)
{
	return vecs_open(vp, path, ES_VECS_FVECS, kind, 0, NULL);
}

int es_vecs_open_as(struct es_vecs **vp, const char *path,
		    enum es_vecs_format format, unsigned flags,
		    struct es_vecs_loc *loc)
{
	return vecs_open(vp, path, format, ES_VECS_FLOAT, flags, loc);
}

uint32_t es_vecs_dim(const struct es_vecs *v)
{
	return v->dim;
}

uint64_t es_vecs_count(const struct es_vecs *v)
{
	return v->count;
}

enum es_vecs_format es_vecs_format(const struct es_vecs *v)
{
	return v->format;
}

const char *es_vecs_format_name(enum es_vecs_format format)
{
	switch (format) {
	case ES_VECS_FVECS:
		return "fvecs";
	case ES_VECS_NPY:
		return "npy";
	case ES_VECS_CSV:
		return "csv";
	case ES_VECS_AUTO:
		break;
	}
	return "auto";
}

int es_vecs_has_ids(const struct es_vecs *v)
{
	return v->has_ids;
}

uint64_t es_vecs_position(const struct es_vecs *v)
{
	return v->pos;
}

void es_vecs_where(const struct es_vecs *v, struct es_vecs_loc *loc)
{
	*loc = v->loc;
}

long es_vecs_read_ids(struct es_vecs *v, void *dst, uint64_t *ids, size_t n)
{
	long got;

	if (n > v->count - v->pos)
		n = v->count - v->pos;
	if (n == 0)
		return 0;
	memset(&v->loc, 0, sizeof(v->loc));
	got = v->ops->read(v, dst, v->has_ids ? ids : NULL, n);
	if (got < 0) {
		v->loc.has_vector = 1;
		v->loc.vector = v->pos;
	}
	return got;
}

long es_vecs_read(struct es_vecs *v, void *dst, size_t n)
{
	return es_vecs_read_ids(v, dst, NULL, n);
}

const char *es_vecs_message(char *buf, size_t len, const char *path, int err,
			    const struct es_vecs_loc *loc)
{
	const char *what = es_store_strerror(err);

	if (loc && loc->line && loc->column)
		snprintf(buf, len, "%s: line %llu, column %u: %s", path,
			 (unsigned long long)loc->line, loc->column, what);
	else if (loc && loc->line)
		snprintf(buf, len, "%s: line %llu: %s", path,
			 (unsigned long long)loc->line, what);
	else if (loc && loc->has_vector && loc->column)
		snprintf(buf, len, "%s: vector %llu, value %u: %s", path,
			 (unsigned long long)loc->vector, loc->column, what);
	else if (loc && loc->has_vector)
		snprintf(buf, len, "%s: vector %llu: %s", path,
			 (unsigned long long)loc->vector, what);
	else
		snprintf(buf, len, "%s: %s", path, what);
	return buf;
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
