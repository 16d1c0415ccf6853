/*
 * The local API's CBOR codec: a pull reader over libcbor's streaming
 * decoder, typed reads that name what was wrong, the request parser, and
 * a hand encoder. The invariants are in api_codec.h.
 */
#include <cbor.h>
#include <errno.h>
#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api_codec.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
/* Vectors travel as little-endian float32 and are copied as they lie. */
#error "edgesync supports little-endian hosts only (x86-64, aarch64)"
#endif

const char *api_err_name(int err)
{
	switch ((enum api_err)err) {
	case API_E_BAD_REQUEST:
		return "bad_request";
	case API_E_BAD_VALUE:
		return "bad_value";
	case API_E_DIM:
		return "dim_mismatch";
	case API_E_UNKNOWN_OP:
		return "unknown_op";
	case API_E_TOO_LARGE:
		return "too_large";
	}
	return NULL;
}

int api_fail(struct api_reader *r, int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(r->err, API_ERR_MAX, fmt, ap);
	va_end(ap);
	return code;
}

static size_t offset(const struct api_reader *r)
{
	return (size_t)(r->p - r->start);
}

const char *api_type_name(enum api_type t)
{
	static const char *const names[] = {
	    [API_UINT] = "an unsigned integer",
	    [API_NEGINT] = "a negative integer",
	    [API_BYTES] = "a byte string",
	    [API_TEXT] = "a text string",
	    [API_ARRAY] = "an array",
	    [API_MAP] = "a map",
	    [API_FLOAT] = "a float",
	    [API_BOOL] = "a boolean",
	    [API_NULL] = "null",
	    [API_UNDEF] = "undefined",
	    [API_BREAK] = "a break",
	};

	return names[t];
}

void api_reader_init(struct api_reader *r, const void *buf, size_t len,
		     char *err)
{
	r->start = buf;
	r->p = buf;
	r->end = r->p + len;
	r->err = err;
	err[0] = '\0';
}

void api_reader_span(struct api_reader *sub, const struct api_reader *r,
		     const struct api_span *s)
{
	sub->start = r->start;
	sub->p = s->p;
	sub->end = s->p + s->len;
	sub->err = r->err;
}

/* ---- libcbor streaming callbacks: each fills in one item head -------- */

enum { K_ITEM, K_TAG, K_INDEF_STRING };

struct dec {
	struct api_item *it;
	int kind;
};

#define DEC(ctx) ((struct dec *)(ctx))

static void set_uint(void *ctx, uint64_t v)
{
	DEC(ctx)->it->type = API_UINT;
	DEC(ctx)->it->u = v;
}

static void on_u8(void *ctx, uint8_t v)
{
	set_uint(ctx, v);
}

static void on_u16(void *ctx, uint16_t v)
{
	set_uint(ctx, v);
}

static void on_u32(void *ctx, uint32_t v)
{
	set_uint(ctx, v);
}

static void set_neg(void *ctx, uint64_t v)
{
	DEC(ctx)->it->type = API_NEGINT;
	DEC(ctx)->it->u = v;
}

static void on_n8(void *ctx, uint8_t v)
{
	set_neg(ctx, v);
}

static void on_n16(void *ctx, uint16_t v)
{
	set_neg(ctx, v);
}

static void on_n32(void *ctx, uint32_t v)
{
	set_neg(ctx, v);
}

static void on_bytes(void *ctx, cbor_data p, size_t n)
{
	DEC(ctx)->it->type = API_BYTES;
	DEC(ctx)->it->data = p;
	DEC(ctx)->it->u = n;
}

static void on_text(void *ctx, cbor_data p, size_t n)
{
	DEC(ctx)->it->type = API_TEXT;
	DEC(ctx)->it->data = p;
	DEC(ctx)->it->u = n;
}

static void on_indef_string(void *ctx)
{
	DEC(ctx)->kind = K_INDEF_STRING;
}

static void on_array(void *ctx, size_t n)
{
	DEC(ctx)->it->type = API_ARRAY;
	DEC(ctx)->it->u = n;
}

static void on_indef_array(void *ctx)
{
	DEC(ctx)->it->type = API_ARRAY;
	DEC(ctx)->it->indef = 1;
}

static void on_map(void *ctx, size_t n)
{
	DEC(ctx)->it->type = API_MAP;
	DEC(ctx)->it->u = n;
}

static void on_indef_map(void *ctx)
{
	DEC(ctx)->it->type = API_MAP;
	DEC(ctx)->it->indef = 1;
}

static void on_tag(void *ctx, uint64_t v)
{
	DEC(ctx)->kind = K_TAG;
}

static void on_float(void *ctx, float v)
{
	DEC(ctx)->it->type = API_FLOAT;
	DEC(ctx)->it->f = v;
}

static void on_double(void *ctx, double v)
{
	DEC(ctx)->it->type = API_FLOAT;
	DEC(ctx)->it->f = v;
}

static void on_undef(void *ctx)
{
	DEC(ctx)->it->type = API_UNDEF;
}

static void on_null(void *ctx)
{
	DEC(ctx)->it->type = API_NULL;
}

static void on_bool(void *ctx, bool v)
{
	DEC(ctx)->it->type = API_BOOL;
	DEC(ctx)->it->b = v;
}

static void on_break(void *ctx)
{
	DEC(ctx)->it->type = API_BREAK;
}

static const struct cbor_callbacks callbacks = {
    .uint8 = on_u8,
    .uint16 = on_u16,
    .uint32 = on_u32,
    .uint64 = set_uint,
    .negint8 = on_n8,
    .negint16 = on_n16,
    .negint32 = on_n32,
    .negint64 = set_neg,
    .byte_string_start = on_indef_string,
    .byte_string = on_bytes,
    .string = on_text,
    .string_start = on_indef_string,
    .indef_array_start = on_indef_array,
    .array_start = on_array,
    .indef_map_start = on_indef_map,
    .map_start = on_map,
    .tag = on_tag,
    .float2 = on_float,
    .float4 = on_float,
    .float8 = on_double,
    .undefined = on_undef,
    .null = on_null,
    .boolean = on_bool,
    .indef_break = on_break,
};

int api_next(struct api_reader *r, struct api_item *it)
{
	struct cbor_decoder_result res;
	struct dec d = {.it = it};

	for (;;) {
		if (r->p >= r->end)
			return api_fail(
			    r, API_E_BAD_REQUEST,
			    "truncated CBOR: the message ends at byte "
			    "%zu where an item should start",
			    offset(r));
		memset(it, 0, sizeof(*it));
		d.kind = K_ITEM;
		res = cbor_stream_decode(r->p, (size_t)(r->end - r->p),
					 &callbacks, &d);
		if (res.status == CBOR_DECODER_NEDATA)
			return api_fail(
			    r, API_E_BAD_REQUEST,
			    "truncated CBOR: the item at byte %zu "
			    "declares more bytes than the message has",
			    offset(r));
		if (res.status != CBOR_DECODER_FINISHED || res.read == 0)
			return api_fail(
			    r, API_E_BAD_REQUEST,
			    "malformed CBOR at byte %zu (initial byte "
			    "0x%02x)",
			    offset(r), *r->p);
		if (d.kind == K_INDEF_STRING)
			return api_fail(r, API_E_BAD_REQUEST,
					"indefinite-length string at byte %zu: "
					"send strings with a definite length",
					offset(r));
		r->p += res.read;
		if (d.kind != K_TAG)
			return 0;
	}
}

int api_seq_next(struct api_reader *r, struct api_seq *s)
{
	if (s->indef) {
		if (r->p >= r->end)
			return api_fail(r, API_E_BAD_REQUEST,
					"truncated CBOR: an indefinite-length "
					"array or map has no break");
		if (*r->p != 0xff)
			return 1;
		r->p++;
		return 0;
	}
	if (s->left == 0)
		return 0;
	s->left--;
	return 1;
}

static int skip_depth(struct api_reader *r, int depth)
{
	struct api_item it;
	struct api_seq s = {0};
	int rc = api_next(r, &it);

	if (rc)
		return rc;
	if (it.type == API_BREAK)
		return api_fail(r, API_E_BAD_REQUEST,
				"malformed CBOR: unexpected break at byte %zu",
				offset(r) - 1);
	if (it.type != API_ARRAY && it.type != API_MAP)
		return 0;
	if (depth >= API_MAX_DEPTH)
		return api_fail(r, API_E_BAD_REQUEST,
				"CBOR nested deeper than %d levels",
				API_MAX_DEPTH);
	s.left = it.u;
	s.indef = it.indef;
	while ((rc = api_seq_next(r, &s)) > 0) {
		rc = skip_depth(r, depth + 1);
		if (rc == 0 && it.type == API_MAP)
			rc = skip_depth(r, depth + 1);
		if (rc)
			return rc;
	}
	return rc;
}

int api_skip(struct api_reader *r, int depth)
{
	return skip_depth(r, depth);
}

int api_span_read(struct api_reader *r, struct api_span *s, int depth)
{
	const unsigned char *p = r->p;
	int rc = skip_depth(r, depth);

	if (rc)
		return rc;
	s->p = p;
	s->len = (size_t)(r->p - p);
	return 0;
}

static int seq_begin(struct api_reader *r, struct api_seq *s,
		     enum api_type want, const char *what)
{
	struct api_item it;
	int rc = api_next(r, &it);

	if (rc)
		return rc;
	if (it.type != want)
		return api_fail(r, API_E_BAD_REQUEST, "%s must be %s, not %s",
				what, api_type_name(want),
				api_type_name(it.type));
	s->left = it.u;
	s->indef = it.indef;
	return 0;
}

int api_array_begin(struct api_reader *r, struct api_seq *s, const char *what)
{
	return seq_begin(r, s, API_ARRAY, what);
}

int api_map_begin(struct api_reader *r, struct api_seq *s, const char *what)
{
	return seq_begin(r, s, API_MAP, what);
}

int api_map_index(struct api_reader *r, const char *const *keys, size_t nkeys,
		  struct api_span *spans, int depth, const char *what)
{
	struct api_item key;
	struct api_seq s = {0};
	size_t i;
	int rc;

	memset(spans, 0, nkeys * sizeof(*spans));
	if (depth >= API_MAX_DEPTH)
		return api_fail(r, API_E_BAD_REQUEST,
				"CBOR nested deeper than %d levels",
				API_MAX_DEPTH);
	rc = api_map_begin(r, &s, what);
	while (rc == 0 && (rc = api_seq_next(r, &s)) > 0) {
		rc = api_next(r, &key);
		if (rc)
			return rc;
		if (key.type != API_TEXT)
			return api_fail(r, API_E_BAD_REQUEST,
					"%s: map keys must be text strings, "
					"not %s",
					what, api_type_name(key.type));
		for (i = 0; i < nkeys; i++)
			if (strlen(keys[i]) == key.u &&
			    !memcmp(keys[i], key.data, key.u))
				break;
		if (i == nkeys) {
			rc = skip_depth(r, depth + 1);
			continue;
		}
		if (spans[i].p)
			return api_fail(r, API_E_BAD_REQUEST,
					"%s: field '%s' appears twice", what,
					keys[i]);
		rc = api_span_read(r, &spans[i], depth + 1);
	}
	return rc;
}

/* ---- typed reads ------------------------------------------------------ */

int api_get_uint(struct api_reader *r, const char *what, uint64_t *v)
{
	struct api_item it;
	int rc = api_next(r, &it);

	if (rc)
		return rc;
	if (it.type == API_NEGINT)
		return api_fail(r, API_E_BAD_VALUE, "%s must not be negative",
				what);
	if (it.type != API_UINT)
		return api_fail(r, API_E_BAD_REQUEST,
				"%s must be an unsigned integer, not %s", what,
				api_type_name(it.type));
	*v = it.u;
	return 0;
}

int api_get_int(struct api_reader *r, const char *what, int64_t *v)
{
	struct api_item it;
	int rc = api_next(r, &it);

	if (rc)
		return rc;
	if (it.type != API_UINT && it.type != API_NEGINT)
		return api_fail(r, API_E_BAD_REQUEST,
				"%s must be an integer, not %s", what,
				api_type_name(it.type));
	if (it.u > INT64_MAX)
		return api_fail(r, API_E_BAD_VALUE,
				"%s is out of the range of a 64-bit integer",
				what);
	*v = it.type == API_UINT ? (int64_t)it.u : -1 - (int64_t)it.u;
	return 0;
}

int api_get_bool(struct api_reader *r, const char *what, int *v)
{
	struct api_item it;
	int rc = api_next(r, &it);

	if (rc)
		return rc;
	if (it.type != API_BOOL)
		return api_fail(r, API_E_BAD_REQUEST,
				"%s must be a boolean, not %s", what,
				api_type_name(it.type));
	*v = it.b;
	return 0;
}

/* An item as a double; 1 if it was a number. */
static int item_number(const struct api_item *it, double *v)
{
	switch (it->type) {
	case API_UINT:
		*v = (double)it->u;
		return 1;
	case API_NEGINT:
		*v = -1.0 - (double)it->u;
		return 1;
	case API_FLOAT:
		*v = it->f;
		return 1;
	default:
		return 0;
	}
}

int api_get_number(struct api_reader *r, const char *what, double *v)
{
	struct api_item it;
	int rc = api_next(r, &it);

	if (rc)
		return rc;
	if (!item_number(&it, v))
		return api_fail(r, API_E_BAD_REQUEST,
				"%s must be a number, not %s", what,
				api_type_name(it.type));
	if (isnan(*v))
		return api_fail(r, API_E_BAD_VALUE, "%s is NaN", what);
	if (isinf(*v))
		return api_fail(r, API_E_BAD_VALUE, "%s is infinite", what);
	return 0;
}

int api_get_text(struct api_reader *r, const char *what, char *buf, size_t size)
{
	struct api_item it;
	int rc = api_next(r, &it);

	if (rc)
		return rc;
	if (it.type != API_TEXT)
		return api_fail(r, API_E_BAD_REQUEST,
				"%s must be a text string, not %s", what,
				api_type_name(it.type));
	if (it.u >= size)
		return api_fail(r, API_E_BAD_VALUE,
				"%s is longer than %zu bytes", what, size - 1);
	if (memchr(it.data, '\0', it.u))
		return api_fail(r, API_E_BAD_VALUE, "%s contains a NUL byte",
				what);
	memcpy(buf, it.data, it.u);
	buf[it.u] = '\0';
	return 0;
}

int api_name_valid(const char *name)
{
	size_t n = strlen(name);

	if (n < 1 || n > API_NAME_MAX)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = name[i];

		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      c == '_' || c == '-'))
			return 0;
	}
	return 1;
}

/* ---- encoder ---------------------------------------------------------- */

void api_enc_init(struct api_enc *e)
{
	memset(e, 0, sizeof(*e));
}

void api_enc_fini(struct api_enc *e)
{
	free(e->buf);
	memset(e, 0, sizeof(*e));
}

void api_enc_reset(struct api_enc *e, size_t keep)
{
	if (e->cap > keep) {
		free(e->buf);
		e->buf = NULL;
		e->cap = 0;
	}
	e->len = 0;
	e->err = 0;
}

int api_enc_error(const struct api_enc *e)
{
	return e->err;
}

/* Room for n more bytes, or NULL (and the sticky error). */
static unsigned char *reserve(struct api_enc *e, size_t n)
{
	unsigned char *p;
	size_t cap;

	if (e->err)
		return NULL;
	if (n > SIZE_MAX / 2 - e->len) {
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
static void head(struct api_enc *e, unsigned major, uint64_t v)
{
	unsigned char *p;
	int n;

	if (v < 24)
		n = 0;
	else if (v <= UINT8_MAX)
		n = 1;
	else if (v <= UINT16_MAX)
		n = 2;
	else if (v <= UINT32_MAX)
		n = 4;
	else
		n = 8;
	p = reserve(e, 1 + (size_t)n);
	if (!p)
		return;
	if (n == 0) {
		p[0] = (unsigned char)(major << 5 | v);
		return;
	}
	p[0] = (unsigned char)(major << 5 | (n == 1   ? 24
					     : n == 2 ? 25
					     : n == 4 ? 26
						      : 27));
	for (int i = 0; i < n; i++) /* CBOR heads are big-endian */
		p[1 + i] = (unsigned char)(v >> (8 * (n - 1 - i)));
}

void api_enc_map(struct api_enc *e, uint64_t n)
{
	head(e, 5, n);
}

void api_enc_array(struct api_enc *e, uint64_t n)
{
	head(e, 4, n);
}

void api_enc_uint(struct api_enc *e, uint64_t v)
{
	head(e, 0, v);
}

void api_enc_int(struct api_enc *e, int64_t v)
{
	if (v >= 0)
		head(e, 0, (uint64_t)v);
	else
		head(e, 1, (uint64_t)(-1 - v));
}

void api_enc_bool(struct api_enc *e, int v)
{
	unsigned char *p = reserve(e, 1);

	if (p)
		p[0] = v ? 0xf5 : 0xf4;
}

void api_enc_float(struct api_enc *e, float v)
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

void api_enc_textn(struct api_enc *e, const char *s, size_t n)
{
	unsigned char *p;

	head(e, 3, n);
	p = reserve(e, n);
	if (p && n)
		memcpy(p, s, n);
}

void api_enc_text(struct api_enc *e, const char *s)
{
	api_enc_textn(e, s, strlen(s));
}

void api_enc_bytes(struct api_enc *e, const void *src, size_t n)
{
	unsigned char *p;

	head(e, 2, n);
	p = reserve(e, n);
	if (p && n)
		memcpy(p, src, n);
}

void api_enc_floats(struct api_enc *e, const float *v, size_t n)
{
	if (n > SIZE_MAX / sizeof(float)) {
		e->err = -ENOMEM;
		return;
	}
	api_enc_bytes(e, v, n * sizeof(float));
}

void api_enc_raw(struct api_enc *e, const void *src, size_t n)
{
	unsigned char *p = reserve(e, n);

	if (p && n)
		memcpy(p, src, n);
}

void api_enc_kv_uint(struct api_enc *e, const char *key, uint64_t v)
{
	api_enc_text(e, key);
	api_enc_uint(e, v);
}

void api_enc_kv_text(struct api_enc *e, const char *key, const char *s)
{
	api_enc_text(e, key);
	api_enc_text(e, s);
}

void api_enc_kv_bool(struct api_enc *e, const char *key, int v)
{
	api_enc_text(e, key);
	api_enc_bool(e, v);
}
