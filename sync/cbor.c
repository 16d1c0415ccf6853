/*
 * CBOR pull reader: one item head per call, decoded in place by libcbor's
 * streaming decoder; typed reads that name what was wrong. The contract
 * and the invariants are in edgesync/cbor.h.
 */
#include <cbor.h>
#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "edgesync/cbor.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
/* float32 byte strings are little-endian and are copied as they lie. */
#error "edgesync supports little-endian hosts only (x86-64, aarch64)"
#endif

int es_cbor_fail(struct es_cbor_reader *r, int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(r->err, ES_CBOR_ERR_MAX, fmt, ap);
	va_end(ap);
	return code;
}

static size_t offset(const struct es_cbor_reader *r)
{
	return (size_t)(r->p - r->start);
}

const char *es_cbor_type_name(enum es_cbor_type t)
{
	static const char *const names[] = {
	    [ES_CBOR_UINT] = "an unsigned integer",
	    [ES_CBOR_NEGINT] = "a negative integer",
	    [ES_CBOR_BYTES] = "a byte string",
	    [ES_CBOR_TEXT] = "a text string",
	    [ES_CBOR_ARRAY] = "an array",
	    [ES_CBOR_MAP] = "a map",
	    [ES_CBOR_FLOAT] = "a float",
	    [ES_CBOR_BOOL] = "a boolean",
	    [ES_CBOR_NULL] = "null",
	    [ES_CBOR_UNDEF] = "undefined",
	    [ES_CBOR_BREAK] = "a break",
	};

	if ((unsigned)t >= sizeof(names) / sizeof(names[0]))
		return "an unknown item";
	return names[t];
}

void es_cbor_reader_init(struct es_cbor_reader *r, const void *buf, size_t len,
			 char *err)
{
	r->start = buf;
	r->p = buf;
	r->end = r->p + len;
	r->err = err;
	err[0] = '\0';
}

void es_cbor_reader_span(struct es_cbor_reader *sub,
			 const struct es_cbor_reader *r,
			 const struct es_cbor_span *s)
{
	sub->start = r->start;
	sub->p = s->p;
	sub->end = s->p + s->len;
	sub->err = r->err;
}

int es_cbor_reader_end(struct es_cbor_reader *r)
{
	if (r->p == r->end)
		return 0;
	return es_cbor_fail(r, ES_E_CBOR_MALFORMED,
			    "%zu bytes follow the CBOR item at byte %zu",
			    (size_t)(r->end - r->p), offset(r));
}

/* ---- libcbor streaming callbacks: each fills in one item head -------- */

enum { K_ITEM, K_TAG, K_INDEF_STRING };

struct dec {
	struct es_cbor_item *it;
	int kind;
};

#define DEC(ctx) ((struct dec *)(ctx))

static void set_uint(void *ctx, uint64_t v)
{
	DEC(ctx)->it->type = ES_CBOR_UINT;
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
	DEC(ctx)->it->type = ES_CBOR_NEGINT;
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
	DEC(ctx)->it->type = ES_CBOR_BYTES;
	DEC(ctx)->it->data = p;
	DEC(ctx)->it->u = n;
}

static void on_text(void *ctx, cbor_data p, size_t n)
{
	DEC(ctx)->it->type = ES_CBOR_TEXT;
	DEC(ctx)->it->data = p;
	DEC(ctx)->it->u = n;
}

static void on_indef_string(void *ctx)
{
	DEC(ctx)->kind = K_INDEF_STRING;
}

static void on_array(void *ctx, size_t n)
{
	DEC(ctx)->it->type = ES_CBOR_ARRAY;
	DEC(ctx)->it->u = n;
}

static void on_indef_array(void *ctx)
{
	DEC(ctx)->it->type = ES_CBOR_ARRAY;
	DEC(ctx)->it->indef = 1;
}

static void on_map(void *ctx, size_t n)
{
	DEC(ctx)->it->type = ES_CBOR_MAP;
	DEC(ctx)->it->u = n;
}

static void on_indef_map(void *ctx)
{
	DEC(ctx)->it->type = ES_CBOR_MAP;
	DEC(ctx)->it->indef = 1;
}

static void on_tag(void *ctx, uint64_t v)
{
	DEC(ctx)->kind = K_TAG;
}

static void on_float(void *ctx, float v)
{
	DEC(ctx)->it->type = ES_CBOR_FLOAT;
	DEC(ctx)->it->f = v;
}

static void on_double(void *ctx, double v)
{
	DEC(ctx)->it->type = ES_CBOR_FLOAT;
	DEC(ctx)->it->f = v;
}

static void on_undef(void *ctx)
{
	DEC(ctx)->it->type = ES_CBOR_UNDEF;
}

static void on_null(void *ctx)
{
	DEC(ctx)->it->type = ES_CBOR_NULL;
}

static void on_bool(void *ctx, bool v)
{
	DEC(ctx)->it->type = ES_CBOR_BOOL;
	DEC(ctx)->it->b = v;
}

static void on_break(void *ctx)
{
	DEC(ctx)->it->type = ES_CBOR_BREAK;
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

int es_cbor_next(struct es_cbor_reader *r, struct es_cbor_item *it)
{
	struct cbor_decoder_result res;
	struct dec d = {.it = it};

	for (;;) {
		if (r->p >= r->end)
			return es_cbor_fail(
			    r, ES_E_CBOR_MALFORMED,
			    "truncated CBOR: the message ends at byte %zu "
			    "where an item should start",
			    offset(r));
		memset(it, 0, sizeof(*it));
		d.kind = K_ITEM;
		res = cbor_stream_decode(r->p, (size_t)(r->end - r->p),
					 &callbacks, &d);
		if (res.status == CBOR_DECODER_NEDATA)
			return es_cbor_fail(
			    r, ES_E_CBOR_MALFORMED,
			    "truncated CBOR: the item at byte %zu declares "
			    "more bytes than the message has",
			    offset(r));
		if (res.status != CBOR_DECODER_FINISHED || res.read == 0)
			return es_cbor_fail(r, ES_E_CBOR_MALFORMED,
					    "malformed CBOR at byte %zu "
					    "(initial byte 0x%02x)",
					    offset(r), *r->p);
		if (d.kind == K_INDEF_STRING)
			return es_cbor_fail(
			    r, ES_E_CBOR_MALFORMED,
			    "indefinite-length string at byte %zu: send "
			    "strings with a definite length",
			    offset(r));
		r->p += res.read;
		if (d.kind != K_TAG)
			return 0;
	}
}

int es_cbor_seq_next(struct es_cbor_reader *r, struct es_cbor_seq *s)
{
	if (s->indef) {
		if (r->p >= r->end)
			return es_cbor_fail(r, ES_E_CBOR_MALFORMED,
					    "truncated CBOR: an indefinite-"
					    "length array or map has no break");
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

static int too_deep(struct es_cbor_reader *r)
{
	return es_cbor_fail(r, ES_E_CBOR_MALFORMED,
			    "CBOR nested deeper than %d levels at byte %zu",
			    ES_CBOR_MAX_DEPTH, offset(r));
}

int es_cbor_skip(struct es_cbor_reader *r, int depth)
{
	struct es_cbor_item it;
	struct es_cbor_seq s = {0};
	int rc = es_cbor_next(r, &it);

	if (rc)
		return rc;
	if (it.type == ES_CBOR_BREAK)
		return es_cbor_fail(r, ES_E_CBOR_MALFORMED,
				    "malformed CBOR: unexpected break at byte "
				    "%zu",
				    offset(r) - 1);
	if (it.type != ES_CBOR_ARRAY && it.type != ES_CBOR_MAP)
		return 0;
	if (depth >= ES_CBOR_MAX_DEPTH)
		return too_deep(r);
	s.left = it.u;
	s.indef = it.indef;
	while ((rc = es_cbor_seq_next(r, &s)) > 0) {
		rc = es_cbor_skip(r, depth + 1);
		if (rc == 0 && it.type == ES_CBOR_MAP)
			rc = es_cbor_skip(r, depth + 1);
		if (rc)
			return rc;
	}
	return rc;
}

int es_cbor_span_read(struct es_cbor_reader *r, struct es_cbor_span *s,
		      int depth)
{
	const unsigned char *p = r->p;
	int rc = es_cbor_skip(r, depth);

	if (rc)
		return rc;
	s->p = p;
	s->len = (size_t)(r->p - p);
	return 0;
}

static int type_fail(struct es_cbor_reader *r, const char *what,
		     const char *want, enum es_cbor_type got)
{
	return es_cbor_fail(r, ES_E_CBOR_SCHEMA, "%s must be %s, not %s", what,
			    want, es_cbor_type_name(got));
}

static int seq_begin(struct es_cbor_reader *r, struct es_cbor_seq *s,
		     enum es_cbor_type want, const char *what)
{
	struct es_cbor_item it;
	int rc = es_cbor_next(r, &it);

	if (rc)
		return rc;
	if (it.type != want)
		return type_fail(r, what, es_cbor_type_name(want), it.type);
	s->left = it.u;
	s->indef = it.indef;
	return 0;
}

int es_cbor_array_begin(struct es_cbor_reader *r, struct es_cbor_seq *s,
			const char *what)
{
	return seq_begin(r, s, ES_CBOR_ARRAY, what);
}

int es_cbor_map_begin(struct es_cbor_reader *r, struct es_cbor_seq *s,
		      const char *what)
{
	return seq_begin(r, s, ES_CBOR_MAP, what);
}

static size_t key_find(const char *const *keys, size_t nkeys,
		       const struct es_cbor_item *key)
{
	size_t i;

	for (i = 0; i < nkeys; i++)
		if (strlen(keys[i]) == key->u &&
		    !memcmp(keys[i], key->data, key->u))
			break;
	return i;
}

int es_cbor_map_index(struct es_cbor_reader *r, const char *const *keys,
		      size_t nkeys, struct es_cbor_span *spans, int depth,
		      const char *what)
{
	struct es_cbor_item key;
	struct es_cbor_seq s = {0};
	size_t i;
	int rc;

	memset(spans, 0, nkeys * sizeof(*spans));
	if (depth >= ES_CBOR_MAX_DEPTH)
		return too_deep(r);
	rc = es_cbor_map_begin(r, &s, what);
	while (rc == 0 && (rc = es_cbor_seq_next(r, &s)) > 0) {
		rc = es_cbor_next(r, &key);
		if (rc)
			return rc;
		if (key.type != ES_CBOR_TEXT)
			return es_cbor_fail(r, ES_E_CBOR_SCHEMA,
					    "%s: map keys must be text "
					    "strings, not %s",
					    what, es_cbor_type_name(key.type));
		i = key_find(keys, nkeys, &key);
		if (i == nkeys) {
			rc = es_cbor_skip(r, depth + 1);
			continue;
		}
		if (spans[i].p)
			return es_cbor_fail(r, ES_E_CBOR_SCHEMA,
					    "%s: field '%s' appears twice",
					    what, keys[i]);
		rc = es_cbor_span_read(r, &spans[i], depth + 1);
	}
	return rc;
}

/* ---- typed reads ------------------------------------------------------ */

int es_cbor_get_uint(struct es_cbor_reader *r, const char *what, uint64_t *v)
{
	struct es_cbor_item it;
	int rc = es_cbor_next(r, &it);

	if (rc)
		return rc;
	if (it.type == ES_CBOR_NEGINT)
		return es_cbor_fail(r, ES_E_CBOR_VALUE,
				    "%s must not be negative", what);
	if (it.type != ES_CBOR_UINT)
		return type_fail(r, what, "an unsigned integer", it.type);
	*v = it.u;
	return 0;
}

int es_cbor_get_int(struct es_cbor_reader *r, const char *what, int64_t *v)
{
	struct es_cbor_item it;
	int rc = es_cbor_next(r, &it);

	if (rc)
		return rc;
	if (it.type != ES_CBOR_UINT && it.type != ES_CBOR_NEGINT)
		return type_fail(r, what, "an integer", it.type);
	if (it.u > INT64_MAX)
		return es_cbor_fail(r, ES_E_CBOR_VALUE,
				    "%s is out of the range of a 64-bit "
				    "integer",
				    what);
	*v = it.type == ES_CBOR_UINT ? (int64_t)it.u : -1 - (int64_t)it.u;
	return 0;
}

int es_cbor_get_bool(struct es_cbor_reader *r, const char *what, int *v)
{
	struct es_cbor_item it;
	int rc = es_cbor_next(r, &it);

	if (rc)
		return rc;
	if (it.type != ES_CBOR_BOOL)
		return type_fail(r, what, "a boolean", it.type);
	*v = it.b;
	return 0;
}

/* An item as a double; 1 if it was a number. */
static int item_number(const struct es_cbor_item *it, double *v)
{
	switch (it->type) {
	case ES_CBOR_UINT:
		*v = (double)it->u;
		return 1;
	case ES_CBOR_NEGINT:
		*v = -1.0 - (double)it->u;
		return 1;
	case ES_CBOR_FLOAT:
		*v = it->f;
		return 1;
	default:
		return 0;
	}
}

int es_cbor_get_number(struct es_cbor_reader *r, const char *what, double *v)
{
	struct es_cbor_item it;
	int rc = es_cbor_next(r, &it);

	if (rc)
		return rc;
	if (!item_number(&it, v))
		return type_fail(r, what, "a number", it.type);
	if (isnan(*v))
		return es_cbor_fail(r, ES_E_CBOR_VALUE, "%s is NaN", what);
	if (isinf(*v))
		return es_cbor_fail(r, ES_E_CBOR_VALUE, "%s is infinite", what);
	return 0;
}

static int get_string(struct es_cbor_reader *r, const char *what,
		      enum es_cbor_type want, const unsigned char **p,
		      size_t *n)
{
	struct es_cbor_item it;
	int rc = es_cbor_next(r, &it);

	if (rc)
		return rc;
	if (it.type != want)
		return type_fail(r, what, es_cbor_type_name(want), it.type);
	*p = it.data;
	*n = (size_t)it.u;
	return 0;
}

int es_cbor_get_bytes(struct es_cbor_reader *r, const char *what,
		      const unsigned char **p, size_t *n)
{
	return get_string(r, what, ES_CBOR_BYTES, p, n);
}

int es_cbor_get_text_ref(struct es_cbor_reader *r, const char *what,
			 const char **p, size_t *n)
{
	const unsigned char *u = NULL;
	int rc = get_string(r, what, ES_CBOR_TEXT, &u, n);

	if (rc == 0)
		*p = (const char *)u;
	return rc;
}

int es_cbor_get_text(struct es_cbor_reader *r, const char *what, char *buf,
		     size_t size)
{
	const unsigned char *p = NULL;
	size_t n = 0;
	int rc = get_string(r, what, ES_CBOR_TEXT, &p, &n);

	if (rc)
		return rc;
	if (n >= size)
		return es_cbor_fail(r, ES_E_CBOR_VALUE,
				    "%s is longer than %zu bytes", what,
				    size - 1);
	if (memchr(p, '\0', n))
		return es_cbor_fail(r, ES_E_CBOR_VALUE,
				    "%s contains a NUL byte", what);
	memcpy(buf, p, n);
	buf[n] = '\0';
	return 0;
}

/* ---- float32 arrays --------------------------------------------------- */

size_t es_cbor_floats_nonfinite(const float *v, size_t n)
{
	uint32_t bits, bad = 0;
	size_t i;

	/* A branch-free pass first (the compiler vectorizes it): exponent
	 * all ones is NaN or infinity. */
	for (i = 0; i < n; i++) {
		memcpy(&bits, &v[i], sizeof(bits));
		bad |= (bits & 0x7f800000u) == 0x7f800000u;
	}
	for (i = 0; bad && i < n; i++)
		if (!isfinite(v[i]))
			return i;
	return n;
}

static int count_fail(struct es_cbor_reader *r, const char *what, uint64_t got,
		      size_t n, uint64_t *count)
{
	*count = got;
	return es_cbor_fail(r, ES_E_CBOR_COUNT,
			    "%s has %" PRIu64 " values, %zu expected", what,
			    got, n);
}

/* Element i of a float array given as an array of numbers. */
static int float_elem(struct es_cbor_reader *r, const char *what, size_t i,
		      float *out)
{
	struct es_cbor_item it;
	double v;
	int rc = es_cbor_next(r, &it);

	if (rc)
		return rc;
	if (!item_number(&it, &v))
		return es_cbor_fail(r, ES_E_CBOR_SCHEMA,
				    "%s value %zu must be a number, not %s",
				    what, i, es_cbor_type_name(it.type));
	if (isnan(v))
		return es_cbor_fail(r, ES_E_CBOR_VALUE, "%s value %zu is NaN",
				    what, i);
	if (!(fabs(v) <= FLT_MAX))
		return es_cbor_fail(
		    r, ES_E_CBOR_VALUE, "%s value %zu is %s", what, i,
		    isinf(v) ? "infinite" : "beyond float32 range");
	*out = (float)v;
	return 0;
}

int es_cbor_get_floats(struct es_cbor_reader *r, const char *what, float *out,
		       size_t n, uint64_t *count)
{
	struct es_cbor_item it;
	struct es_cbor_seq s = {0};
	size_t i = 0;
	int rc = es_cbor_next(r, &it);

	*count = UINT64_MAX;
	if (rc)
		return rc;
	if (it.type == ES_CBOR_BYTES) {
		if (it.u % sizeof(float))
			return es_cbor_fail(r, ES_E_CBOR_COUNT,
					    "%s has %" PRIu64 " bytes, not a "
					    "whole number of float32",
					    what, it.u);
		if (it.u / sizeof(float) != n)
			return count_fail(r, what, it.u / sizeof(float), n,
					  count);
		memcpy(out, it.data, n * sizeof(float));
		i = es_cbor_floats_nonfinite(out, n);
		if (i < n)
			return es_cbor_fail(r, ES_E_CBOR_VALUE,
					    "%s value %zu is %s", what, i,
					    isnan(out[i]) ? "NaN" : "infinite");
		return 0;
	}
	if (it.type != ES_CBOR_ARRAY)
		return type_fail(r, what,
				 "a byte string of float32 or an array of "
				 "numbers",
				 it.type);
	if (!it.indef && it.u != n)
		return count_fail(r, what, it.u, n, count);
	s.left = it.u;
	s.indef = it.indef;
	while ((rc = es_cbor_seq_next(r, &s)) > 0) {
		if (i == n)
			return es_cbor_fail(r, ES_E_CBOR_COUNT,
					    "%s has more than %zu values", what,
					    n);
		rc = float_elem(r, what, i, &out[i]);
		if (rc)
			return rc;
		i++;
	}
	if (rc == 0 && i != n)
		return count_fail(r, what, i, n, count);
	return rc;
}
