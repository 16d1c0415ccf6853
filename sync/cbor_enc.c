/*
 * CBOR encoder: items appended to one growing buffer, shortest heads,
 * the first allocation failure sticky (edgesync/cbor.h).
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "edgesync/cbor.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
/* Vectors travel as little-endian float32 and are copied as they lie. */
#error "edgesync supports little-endian hosts only (x86-64, aarch64)"
#endif

void es_cbor_enc_init(struct es_cbor_enc *e)
{
	memset(e, 0, sizeof(*e));
}

void es_cbor_enc_fini(struct es_cbor_enc *e)
{
	free(e->buf);
	memset(e, 0, sizeof(*e));
}

void es_cbor_enc_reset(struct es_cbor_enc *e, size_t keep)
{
	if (e->cap > keep) {
		free(e->buf);
		e->buf = NULL;
		e->cap = 0;
	}
	e->len = 0;
	e->err = 0;
}

int es_cbor_enc_error(const struct es_cbor_enc *e)
{
	return e->err;
}

/* Room for n more bytes, or NULL (and the sticky error). */
static unsigned char *reserve(struct es_cbor_enc *e, size_t n)
{
	unsigned char *p;
	size_t cap;

	if (e->err)
		return NULL;
	if (n > SIZE_MAX / 4 - e->len) {
		e->err = -ENOMEM;
		return NULL;
	}
	if (e->len + n > e->cap) {
		cap = e->cap ? e->cap : 256;
		while (cap < e->len + n)
			cap *= 2;
		p = realloc(e->buf, cap);
		if (!p) {
			e->err = -ENOMEM;
			return NULL;
		}
		e->buf = p;
		e->cap = cap;
	}
	p = e->buf + e->len;
	e->len += n;
	return p;
}

/* A head: major type and argument, in the shortest form. */
static void head(struct es_cbor_enc *e, unsigned major, uint64_t v)
{
	unsigned char *p;
	int n, ai;

	if (v < 24) {
		n = 0;
		ai = (int)v;
	} else if (v <= UINT8_MAX) {
		n = 1;
		ai = 24;
	} else if (v <= UINT16_MAX) {
		n = 2;
		ai = 25;
	} else if (v <= UINT32_MAX) {
		n = 4;
		ai = 26;
	} else {
		n = 8;
		ai = 27;
	}
	p = reserve(e, 1 + (size_t)n);
	if (!p)
		return;
	p[0] = (unsigned char)(major << 5 | (unsigned)ai);
	for (int i = 0; i < n; i++) /* CBOR heads are big-endian */
		p[1 + i] = (unsigned char)(v >> (8 * (n - 1 - i)));
}

void es_cbor_enc_map(struct es_cbor_enc *e, uint64_t n)
{
	head(e, 5, n);
}

void es_cbor_enc_array(struct es_cbor_enc *e, uint64_t n)
{
	head(e, 4, n);
}

void es_cbor_enc_uint(struct es_cbor_enc *e, uint64_t v)
{
	head(e, 0, v);
}

void es_cbor_enc_int(struct es_cbor_enc *e, int64_t v)
{
	if (v >= 0)
		head(e, 0, (uint64_t)v);
	else
		head(e, 1, (uint64_t)(-1 - v));
}

static void simple(struct es_cbor_enc *e, unsigned char byte)
{
	unsigned char *p = reserve(e, 1);

	if (p)
		p[0] = byte;
}

void es_cbor_enc_bool(struct es_cbor_enc *e, int v)
{
	simple(e, v ? 0xf5 : 0xf4);
}

void es_cbor_enc_null(struct es_cbor_enc *e)
{
	simple(e, 0xf6);
}

void es_cbor_enc_float(struct es_cbor_enc *e, float v)
{
	unsigned char *p = reserve(e, 5);
	uint32_t bits;

	if (!p)
		return;
	memcpy(&bits, &v, sizeof(bits));
	p[0] = 0xfa;
	for (int i = 0; i < 4; i++)
		p[1 + i] = (unsigned char)(bits >> (8 * (3 - i)));
}

/* A string head of major type major and its n bytes. */
static void string(struct es_cbor_enc *e, unsigned major, const void *src,
		   size_t n)
{
	unsigned char *p;

	head(e, major, n);
	p = reserve(e, n);
	if (p && n)
		memcpy(p, src, n);
}

void es_cbor_enc_textn(struct es_cbor_enc *e, const char *s, size_t n)
{
	string(e, 3, s, n);
}

void es_cbor_enc_text(struct es_cbor_enc *e, const char *s)
{
	string(e, 3, s, strlen(s));
}

void es_cbor_enc_bytes(struct es_cbor_enc *e, const void *src, size_t n)
{
	string(e, 2, src, n);
}

unsigned char *es_cbor_enc_bytes_reserve(struct es_cbor_enc *e, size_t n)
{
	head(e, 2, n);
	return reserve(e, n);
}

void es_cbor_enc_floats(struct es_cbor_enc *e, const float *v, size_t n)
{
	if (n > SIZE_MAX / sizeof(float)) {
		e->err = -ENOMEM;
		return;
	}
	string(e, 2, v, n * sizeof(float));
}

void es_cbor_enc_raw(struct es_cbor_enc *e, const void *src, size_t n)
{
	unsigned char *p = reserve(e, n);

	if (p && n)
		memcpy(p, src, n);
}

void es_cbor_enc_kv_uint(struct es_cbor_enc *e, const char *key, uint64_t v)
{
	es_cbor_enc_text(e, key);
	es_cbor_enc_uint(e, v);
}

void es_cbor_enc_kv_text(struct es_cbor_enc *e, const char *key, const char *s)
{
	es_cbor_enc_text(e, key);
	es_cbor_enc_text(e, s);
}

void es_cbor_enc_kv_bool(struct es_cbor_enc *e, const char *key, int v)
{
	es_cbor_enc_text(e, key);
	es_cbor_enc_bool(e, v);
}

void es_cbor_enc_kv_bytes(struct es_cbor_enc *e, const char *key, const void *p,
			  size_t n)
{
	es_cbor_enc_text(e, key);
	es_cbor_enc_bytes(e, p, n);
}
