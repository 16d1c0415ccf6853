/*
 * Reading NumPy .npy files (numpy.lib.format, versions 1.0, 2.0, 3.0):
 * "\x93NUMPY", major and minor version bytes, the header's length
 * (uint16 LE in 1.0, uint32 LE in 2.0 and 3.0), then the header, a
 * Python dict literal such as
 *     {'descr': '<f4', 'fortran_order': False, 'shape': (1000, 128), }
 * padded with spaces to a newline, then the array's bytes. Only a 2-D
 * C-order array of little-endian float32 or float64 is read; the file
 * must be exactly its header and the array.
 */
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "edgesync/le.h"
#include "edgesync/store_error.h"
#include "io_util.h"
#include "vecs_impl.h"

#define NPY_HEADER_MAX (1u << 20)
#define NPY_MAX_NDIM   32

/* What the header says. */
struct npy_header {
	char descr[16];
	int fortran;
	int ndim;
	uint64_t shape[NPY_MAX_NDIM];
	unsigned seen; /* 1 descr, 2 fortran_order, 4 shape */
};

struct cursor {
	const char *p, *end;
};

static void skip_space(struct cursor *c)
{
	while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' ||
				 *c->p == '\n' || *c->p == '\r'))
		c->p++;
}

static int take_char(struct cursor *c, char ch)
{
	skip_space(c);
	if (c->p < c->end && *c->p == ch) {
		c->p++;
		return 1;
	}
	return 0;
}

/* A quoted string into out; one too long for out is "?". */
static int take_string(struct cursor *c, char *out, size_t len)
{
	size_t n = 0;
	char quote;

	skip_space(c);
	if (c->p >= c->end || (*c->p != '\'' && *c->p != '"'))
		return -1;
	quote = *c->p++;
	while (c->p < c->end && *c->p != quote) {
		/* no escapes; no control bytes (a NUL would end the
		 * compare early: '<f4\0zz' taken for '<f4') */
		if (*c->p == '\\' || (unsigned char)*c->p < 0x20)
			return -1;
		if (n < len)
			out[n] = *c->p;
		n++;
		c->p++;
	}
	if (c->p >= c->end)
		return -1;
	c->p++;
	if (n >= len)
		strcpy(out, "?");
	else
		out[n] = '\0';
	return 0;
}

static int take_word(struct cursor *c, const char *word)
{
	size_t n = strlen(word);

	skip_space(c);
	if ((size_t)(c->end - c->p) >= n && !memcmp(c->p, word, n)) {
		c->p += n;
		return 1;
	}
	return 0;
}

/* A tuple of whole numbers, "(3,)" or "(10, 4)" or "()". */
static int take_shape(struct cursor *c, struct npy_header *h)
{
	if (!take_char(c, '('))
		return ES_E_NPY_HEADER;
	h->ndim = 0;
	for (;;) {
		uint64_t x = 0;
		int digits = 0;

		skip_space(c);
		if (take_char(c, ')'))
			return 0;
		while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
			if (x > (UINT64_MAX - 9) / 10)
				return ES_E_NPY_HEADER;
			x = x * 10 + (uint64_t)(*c->p++ - '0');
			digits++;
		}
		if (!digits || h->ndim == NPY_MAX_NDIM)
			return ES_E_NPY_HEADER;
		if (c->p < c->end && *c->p == 'L') /* Python 2 longs */
			c->p++;
		h->shape[h->ndim++] = x;
		if (!take_char(c, ',')) {
			return take_char(c, ')') ? 0 : ES_E_NPY_HEADER;
		}
	}
}

/* One "key: value"; each key once. */
static int take_item(struct cursor *c, struct npy_header *h)
{
	char key[32];

	if (take_string(c, key, sizeof(key)) < 0 || !take_char(c, ':'))
		return ES_E_NPY_HEADER;
	if (!strcmp(key, "descr") && !(h->seen & 1)) {
		h->seen |= 1;
		skip_space(c);
		if (c->p < c->end && *c->p == '[')
			return ES_E_NPY_DTYPE; /* a structured dtype */
		return take_string(c, h->descr, sizeof(h->descr)) < 0
			   ? ES_E_NPY_HEADER
			   : 0;
	}
	if (!strcmp(key, "fortran_order") && !(h->seen & 2)) {
		h->seen |= 2;
		if (take_word(c, "True"))
			h->fortran = 1;
		else if (!take_word(c, "False"))
			return ES_E_NPY_HEADER;
		return 0;
	}
	if (!strcmp(key, "shape") && !(h->seen & 4)) {
		h->seen |= 4;
		return take_shape(c, h);
	}
	return ES_E_NPY_HEADER;
}

static int parse_header(const char *text, size_t len, struct npy_header *h)
{
	struct cursor c = {text, text + len};
	int rc;

	memset(h, 0, sizeof(*h));
	if (!take_char(&c, '{'))
		return ES_E_NPY_HEADER;
	while (!take_char(&c, '}')) {
		rc = take_item(&c, h);
		if (rc < 0)
			return rc;
		if (!take_char(&c, ',')) {
			if (!take_char(&c, '}'))
				return ES_E_NPY_HEADER;
			break;
		}
	}
	skip_space(&c);
	if (c.p != c.end || h->seen != 7)
		return ES_E_NPY_HEADER;
	return 0;
}

/* The item size for descr, or a code. */
static int check_descr(const char *descr)
{
	if (!strcmp(descr, "<f4"))
		return 4;
	if (!strcmp(descr, "<f8"))
		return 8;
	if (!strcmp(descr, ">f4") || !strcmp(descr, ">f8"))
		return ES_E_NPY_ENDIAN;
	return ES_E_NPY_DTYPE;
}

static int take_f4(struct es_vecs *v, const unsigned char *rec, void *dst)
{
	float *f = dst;

	memcpy(f, rec, 4 * (size_t)v->dim);
	for (uint32_t i = 0; i < v->dim; i++)
		if (!isfinite(f[i])) {
			v->loc.column = i + 1;
			return ES_E_VECS_NONFINITE;
		}
	return 0;
}

static int take_f8(struct es_vecs *v, const unsigned char *rec, void *dst)
{
	float *f = dst;

	for (uint32_t i = 0; i < v->dim; i++) {
		uint64_t bits = le64_load(rec + 8 * (size_t)i);
		double d;

		memcpy(&d, &bits, 8);
		/* what rounds to FLT_MAX is in range, as numpy casts it */
		if (!isfinite(d) || fabs(d) >= 0x1.ffffffp127) {
			v->loc.column = i + 1;
			return isfinite(d) ? ES_E_VECS_RANGE
					   : ES_E_VECS_NONFINITE;
		}
		f[i] = (float)d;
	}
	return 0;
}

/* Reads the preamble: the header's offset and length. */
static int read_preamble(struct es_vecs *v, uint64_t size, uint64_t *off,
			 uint64_t *len)
{
	unsigned char pre[12];
	int rc;

	if (size < 6)
		return ES_E_NPY_MAGIC;
	rc = io_pread_all(v->fd, pre, size < 12 ? (size_t)size : 12, 0);
	if (rc < 0)
		return rc;
	if (memcmp(pre, "\x93NUMPY", 6))
		return ES_E_NPY_MAGIC;
	if (size < 8)
		return ES_E_NPY_HEADER;
	if (pre[6] < 1 || pre[6] > 3 || pre[7] != 0)
		return ES_E_NPY_VERSION;
	*off = pre[6] == 1 ? 10 : 12;
	if (size < *off)
		return ES_E_NPY_HEADER;
	*len = pre[6] == 1 ? le16_load(pre + 8) : le32_load(pre + 8);
	if (*len > NPY_HEADER_MAX || *off + *len > size)
		return ES_E_NPY_HEADER;
	return 0;
}

int vecs_npy_open(struct es_vecs *v, uint64_t size)
{
	struct npy_header h;
	uint64_t off, len, body;
	char *text;
	int rc, item;

	rc = read_preamble(v, size, &off, &len);
	if (rc < 0)
		return rc;
	text = malloc(len + 1);
	if (!text)
		return -ENOMEM;
	rc = io_pread_all(v->fd, text, len, (off_t)off);
	if (rc == 0)
		rc = parse_header(text, len, &h);
	free(text);
	if (rc < 0)
		return rc;
	item = check_descr(h.descr);
	if (item < 0)
		return item;
	if (h.fortran)
		return ES_E_NPY_FORTRAN;
	if (h.ndim != 2)
		return ES_E_NPY_SHAPE;
	if (h.shape[1] == 0 || h.shape[1] > ES_VECS_MAX_DIM)
		return ES_E_VECS_DIM;
	if (h.shape[0] == 0)
		return ES_E_VECS_EMPTY;
	v->dim = (uint32_t)h.shape[1];
	v->count = h.shape[0];
	v->rec_size = (size_t)item * v->dim;
	v->data_off = (off_t)(off + len);
	if (v->count > (size - off - len) / v->rec_size)
		return ES_E_NPY_TRUNCATED;
	body = v->count * v->rec_size;
	if (off + len + body != size)
		return ES_E_NPY_SIZE;
	v->take = item == 4 ? take_f4 : take_f8;
	return vecs_binary_init(v);
}
