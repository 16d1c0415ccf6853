/*
 * The shared CBOR codec (edgesync/cbor.h): encoder output checked by
 * libcbor's own decoder and by our reader, libcbor-built items in forms
 * our encoder never writes (long heads, indefinite containers, half
 * floats, tags), and hostile input: truncation at every byte, nesting
 * past the limit, declared lengths and counts far beyond the message,
 * indefinite strings, trailing bytes, random bytes; float32 arrays in
 * both forms. Every failure must come back as a code with a message,
 * never a crash or an overread (run under AddressSanitizer).
 */
#include <cbor.h>
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "edgesync/cbor.h"

static char err[ES_CBOR_ERR_MAX];

/* Copies len bytes into a buffer of exactly len bytes, so ASan sees any
 * read past the end. */
static unsigned char *exact(const void *p, size_t len)
{
	unsigned char *b = malloc(len ? len : 1);

	assert_non_null(b);
	memcpy(b, p, len);
	return b;
}

/* Skips one item of buf; returns the code and leaves the message. */
static int skip_all(const void *p, size_t len)
{
	unsigned char *b = exact(p, len);
	struct es_cbor_reader r;
	int rc;

	es_cbor_reader_init(&r, b, len, err);
	rc = es_cbor_skip(&r, 0);
	if (rc == 0)
		rc = es_cbor_reader_end(&r);
	free(b);
	return rc;
}

static void expect_skip(const void *p, size_t len, int code, const char *want)
{
	int rc = skip_all(p, len);

	if (rc != code || !strstr(err, want))
		fail_msg("got %d '%s', wanted %d '%s'", rc, err, code, want);
}

/* ---- encoder ---------------------------------------------------------- */

static void check_uint(uint64_t v, size_t want_len)
{
	struct es_cbor_enc e;
	struct es_cbor_reader r;
	struct cbor_load_result res;
	cbor_item_t *item;
	uint64_t got;

	es_cbor_enc_init(&e);
	es_cbor_enc_uint(&e, v);
	assert_int_equal(es_cbor_enc_error(&e), 0);
	assert_int_equal(e.len, want_len);
	item = cbor_load(e.buf, e.len, &res);
	assert_non_null(item);
	assert_true(cbor_isa_uint(item));
	assert_true(cbor_get_int(item) == v);
	cbor_decref(&item);
	es_cbor_reader_init(&r, e.buf, e.len, err);
	assert_int_equal(es_cbor_get_uint(&r, "v", &got), 0);
	assert_true(got == v);
	assert_int_equal(es_cbor_reader_end(&r), 0);
	es_cbor_enc_fini(&e);
}

static void test_enc_uint(void **state)
{
	static const struct {
		uint64_t v;
		size_t len;
	} cases[] = {
	    {0, 1},	     {23, 1},	      {24, 2},
	    {255, 2},	     {256, 3},	      {65535, 3},
	    {65536, 5},	     {UINT32_MAX, 5}, {(uint64_t)UINT32_MAX + 1, 9},
	    {UINT64_MAX, 9},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		check_uint(cases[i].v, cases[i].len);
}

static void test_enc_int(void **state)
{
	static const int64_t cases[] = {0,	   -1,	      -24,    -25,
					-256,	   -257,      -65537, INT64_MIN,
					INT64_MAX, 1000000007};
	struct es_cbor_enc e;
	struct es_cbor_reader r;
	int64_t got;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		es_cbor_enc_init(&e);
		es_cbor_enc_int(&e, cases[i]);
		es_cbor_reader_init(&r, e.buf, e.len, err);
		assert_int_equal(es_cbor_get_int(&r, "i", &got), 0);
		assert_true(got == cases[i]);
		es_cbor_enc_fini(&e);
	}
}

/* A message of every kind of item, read back by libcbor and by us. */
static void test_enc_roundtrip(void **state)
{
	static const char *const keys[] = {"n", "s", "b", "f", "a", "t", "z"};
	unsigned char blob[300];
	struct es_cbor_span sp[7];
	struct es_cbor_reader r, f;
	struct es_cbor_seq seq;
	struct es_cbor_enc e;
	struct cbor_load_result res;
	cbor_item_t *item;
	const unsigned char *bp;
	unsigned char *dst;
	float fv[3] = {1.5f, -2.0f, 0.25f};
	double d;
	size_t n;
	uint64_t u;
	char s[16];
	int b;

	for (size_t i = 0; i < sizeof(blob); i++)
		blob[i] = (unsigned char)(i * 7);
	es_cbor_enc_init(&e);
	es_cbor_enc_map(&e, 7);
	es_cbor_enc_kv_uint(&e, "n", 1234567);
	es_cbor_enc_kv_text(&e, "s", "hello");
	es_cbor_enc_kv_bool(&e, "b", 1);
	es_cbor_enc_text(&e, "f");
	es_cbor_enc_float(&e, 3.25f);
	es_cbor_enc_text(&e, "a");
	es_cbor_enc_array(&e, 3);
	es_cbor_enc_floats(&e, fv, 3);
	es_cbor_enc_null(&e);
	dst = es_cbor_enc_bytes_reserve(&e, sizeof(blob));
	assert_non_null(dst);
	memcpy(dst, blob, sizeof(blob));
	es_cbor_enc_kv_bytes(&e, "t", "", 0);
	es_cbor_enc_text(&e, "z");
	es_cbor_enc_textn(&e, "abcdef", 3);
	assert_int_equal(es_cbor_enc_error(&e), 0);

	item = cbor_load(e.buf, e.len, &res);
	assert_non_null(item);
	assert_int_equal(res.read, e.len);
	assert_true(cbor_isa_map(item));
	assert_int_equal(cbor_map_size(item), 7);
	cbor_decref(&item);

	es_cbor_reader_init(&r, e.buf, e.len, err);
	assert_int_equal(es_cbor_map_index(&r, keys, 7, sp, 0, "m"), 0);
	assert_int_equal(es_cbor_reader_end(&r), 0);
	es_cbor_reader_span(&f, &r, &sp[0]);
	assert_int_equal(es_cbor_get_uint(&f, "n", &u), 0);
	assert_int_equal(u, 1234567);
	es_cbor_reader_span(&f, &r, &sp[1]);
	assert_int_equal(es_cbor_get_text(&f, "s", s, sizeof(s)), 0);
	assert_string_equal(s, "hello");
	es_cbor_reader_span(&f, &r, &sp[2]);
	assert_int_equal(es_cbor_get_bool(&f, "b", &b), 0);
	assert_true(b);
	es_cbor_reader_span(&f, &r, &sp[3]);
	assert_int_equal(es_cbor_get_number(&f, "f", &d), 0);
	assert_true(d == 3.25);
	es_cbor_reader_span(&f, &r, &sp[4]);
	assert_int_equal(es_cbor_array_begin(&f, &seq, "a"), 0);
	assert_int_equal(es_cbor_seq_next(&f, &seq), 1);
	assert_int_equal(es_cbor_get_bytes(&f, "floats", &bp, &n), 0);
	assert_int_equal(n, 12);
	assert_memory_equal(bp, fv, 12);
	assert_int_equal(es_cbor_seq_next(&f, &seq), 1);
	assert_int_equal(es_cbor_skip(&f, 1), 0);
	assert_int_equal(es_cbor_seq_next(&f, &seq), 1);
	assert_int_equal(es_cbor_get_bytes(&f, "blob", &bp, &n), 0);
	assert_int_equal(n, sizeof(blob));
	assert_memory_equal(bp, blob, sizeof(blob));
	assert_int_equal(es_cbor_seq_next(&f, &seq), 0);
	es_cbor_reader_span(&f, &r, &sp[5]);
	assert_int_equal(es_cbor_get_bytes(&f, "t", &bp, &n), 0);
	assert_int_equal(n, 0);
	es_cbor_reader_span(&f, &r, &sp[6]);
	assert_int_equal(es_cbor_get_text(&f, "z", s, sizeof(s)), 0);
	assert_string_equal(s, "abc");

	/* Reset keeps a small buffer and empties it. */
	es_cbor_enc_reset(&e, 1 << 20);
	assert_int_equal(e.len, 0);
	assert_non_null(e.buf);
	es_cbor_enc_reset(&e, 0);
	assert_null(e.buf);
	es_cbor_enc_fini(&e);
}

/* ---- libcbor-built input ---------------------------------------------- */

static void add_pair(cbor_item_t *map, const char *k, cbor_item_t *v)
{
	struct cbor_pair pair = {.key = cbor_move(cbor_build_string(k)),
				 .value = cbor_move(v)};

	assert_true(cbor_map_add(map, pair));
}

static void test_libcbor_forms(void **state)
{
	static const char *const keys[] = {"wide", "half", "tagged", "list",
					   "neg"};
	cbor_item_t *map = cbor_new_indefinite_map(), *arr, *wide, *half;
	struct es_cbor_span sp[5];
	struct es_cbor_reader r, f;
	struct es_cbor_seq seq;
	unsigned char *buf;
	size_t len, cap, k = 0;
	uint64_t u;
	int64_t i;
	double d;

	wide = cbor_new_int64();
	cbor_set_uint64(wide, 7); /* 7 in a 9-byte head */
	add_pair(map, "wide", wide);
	half = cbor_new_float2();
	cbor_set_float2(half, 0.5f);
	add_pair(map, "half", half);
	add_pair(map, "tagged",
		 cbor_build_tag(1, cbor_move(cbor_build_uint32(99))));
	arr = cbor_new_indefinite_array();
	for (int j = 0; j < 5; j++)
		assert_true(cbor_array_push(
		    arr, cbor_move(cbor_build_uint8((uint8_t)j))));
	add_pair(map, "list", arr);
	add_pair(map, "neg", cbor_build_negint64(41)); /* -42 */
	len = cbor_serialize_alloc(map, &buf, &cap);
	assert_true(len > 0);

	es_cbor_reader_init(&r, buf, len, err);
	assert_int_equal(es_cbor_map_index(&r, keys, 5, sp, 0, "m"), 0);
	assert_int_equal(es_cbor_reader_end(&r), 0);
	es_cbor_reader_span(&f, &r, &sp[0]);
	assert_int_equal(es_cbor_get_uint(&f, "wide", &u), 0);
	assert_int_equal(u, 7);
	es_cbor_reader_span(&f, &r, &sp[1]);
	assert_int_equal(es_cbor_get_number(&f, "half", &d), 0);
	assert_true(d == 0.5);
	es_cbor_reader_span(&f, &r, &sp[2]);
	assert_int_equal(es_cbor_get_uint(&f, "tagged", &u), 0);
	assert_int_equal(u, 99);
	es_cbor_reader_span(&f, &r, &sp[3]);
	assert_int_equal(es_cbor_array_begin(&f, &seq, "list"), 0);
	assert_true(seq.indef);
	while (es_cbor_seq_next(&f, &seq) == 1) {
		assert_int_equal(es_cbor_get_uint(&f, "x", &u), 0);
		assert_int_equal(u, k++);
	}
	assert_int_equal(k, 5);
	assert_int_equal(es_cbor_reader_end(&f), 0);
	es_cbor_reader_span(&f, &r, &sp[4]);
	assert_int_equal(es_cbor_get_int(&f, "neg", &i), 0);
	assert_int_equal(i, -42);
	free(buf);
	cbor_decref(&map);
}

/* ---- typed reads and maps --------------------------------------------- */

static void expect_code(int rc, int code, const char *want)
{
	if (rc != code || !strstr(err, want))
		fail_msg("got %d '%s', wanted %d '%s'", rc, err, code, want);
}

static void test_typed_errors(void **state)
{
	static const unsigned char neg[] = {0x20};		 /* -1 */
	static const unsigned char text[] = {0x63, 'a', 0, 'b'}; /* NUL */
	static const unsigned char big[] = {0x1b, 0x80, 0, 0, 0,
					    0,	  0,	0, 0}; /* 2^63 */
	static const unsigned char nan[] = {0xf9, 0x7e, 0x00};
	static const unsigned char inf[] = {0xf9, 0x7c, 0x00};
	static const unsigned char long_text[] = {0x65, 'a', 'b',
						  'c',	'd', 'e'};
	struct es_cbor_reader r;
	uint64_t u;
	int64_t i;
	double d;
	char s[4];
	int b;

	es_cbor_reader_init(&r, neg, sizeof(neg), err);
	expect_code(es_cbor_get_uint(&r, "field 'k'", &u), ES_E_CBOR_VALUE,
		    "field 'k' must not be negative");
	es_cbor_reader_init(&r, text, sizeof(text), err);
	expect_code(es_cbor_get_text(&r, "name", s, sizeof(s)), ES_E_CBOR_VALUE,
		    "NUL");
	es_cbor_reader_init(&r, long_text, sizeof(long_text), err);
	expect_code(es_cbor_get_text(&r, "name", s, sizeof(s)), ES_E_CBOR_VALUE,
		    "longer than 3 bytes");
	es_cbor_reader_init(&r, big, sizeof(big), err);
	expect_code(es_cbor_get_int(&r, "i", &i), ES_E_CBOR_VALUE,
		    "out of the range");
	es_cbor_reader_init(&r, nan, sizeof(nan), err);
	expect_code(es_cbor_get_number(&r, "x", &d), ES_E_CBOR_VALUE, "NaN");
	es_cbor_reader_init(&r, inf, sizeof(inf), err);
	expect_code(es_cbor_get_number(&r, "x", &d), ES_E_CBOR_VALUE,
		    "infinite");
	es_cbor_reader_init(&r, neg, sizeof(neg), err);
	expect_code(es_cbor_get_bool(&r, "flag", &b), ES_E_CBOR_SCHEMA,
		    "flag must be a boolean, not a negative integer");
	es_cbor_reader_init(&r, text, sizeof(text), err);
	expect_code(es_cbor_get_uint(&r, "n", &u), ES_E_CBOR_SCHEMA,
		    "n must be an unsigned integer, not a text string");
}

static void test_map_index(void **state)
{
	static const char *const keys[] = {"a", "b"};
	/* {"a": 1, "x": [1, {"y": 2}], "b": 2} */
	static const unsigned char ok[] = {0xa3, 0x61, 'a',  0x01, 0x61,
					   'x',	 0x82, 0x01, 0xa1, 0x61,
					   'y',	 0x02, 0x61, 'b',  0x02};
	/* {"a": 1, "a": 2} */
	static const unsigned char dup[] = {0xa2, 0x61, 'a', 0x01,
					    0x61, 'a',	0x02};
	/* {1: 2} */
	static const unsigned char intkey[] = {0xa1, 0x01, 0x02};
	/* [1] where a map is expected */
	static const unsigned char arr[] = {0x81, 0x01};
	struct es_cbor_span sp[2];
	struct es_cbor_reader r;

	es_cbor_reader_init(&r, ok, sizeof(ok), err);
	assert_int_equal(es_cbor_map_index(&r, keys, 2, sp, 0, "m"), 0);
	assert_non_null(sp[0].p);
	assert_non_null(sp[1].p);
	assert_int_equal(sp[1].p[0], 0x02);
	es_cbor_reader_init(&r, dup, sizeof(dup), err);
	expect_code(es_cbor_map_index(&r, keys, 2, sp, 0, "the request"),
		    ES_E_CBOR_SCHEMA, "field 'a' appears twice");
	es_cbor_reader_init(&r, intkey, sizeof(intkey), err);
	expect_code(es_cbor_map_index(&r, keys, 2, sp, 0, "m"),
		    ES_E_CBOR_SCHEMA, "keys must be text strings");
	es_cbor_reader_init(&r, arr, sizeof(arr), err);
	expect_code(es_cbor_map_index(&r, keys, 2, sp, 0, "the request"),
		    ES_E_CBOR_SCHEMA, "the request must be a map");
}

/* ---- hostile input ---------------------------------------------------- */

static void test_truncation(void **state)
{
	static const float v[4] = {1, 2, 3, 4};
	struct es_cbor_enc e;

	es_cbor_enc_init(&e);
	es_cbor_enc_map(&e, 4);
	es_cbor_enc_kv_uint(&e, "v", 1);
	es_cbor_enc_kv_text(&e, "type", "chunk");
	es_cbor_enc_text(&e, "data");
	es_cbor_enc_floats(&e, v, 4);
	es_cbor_enc_text(&e, "nested");
	es_cbor_enc_array(&e, 2);
	es_cbor_enc_map(&e, 1);
	es_cbor_enc_kv_uint(&e, "x", UINT64_MAX);
	es_cbor_enc_float(&e, 2.5f);
	assert_int_equal(skip_all(e.buf, e.len), 0);
	for (size_t cut = 0; cut < e.len; cut++)
		expect_skip(e.buf, cut, ES_E_CBOR_MALFORMED, "truncated");
	/* And one byte too many. */
	{
		unsigned char *b = malloc(e.len + 1);

		memcpy(b, e.buf, e.len);
		b[e.len] = 0x00;
		expect_skip(b, e.len + 1, ES_E_CBOR_MALFORMED,
			    "1 bytes follow");
		free(b);
	}
	es_cbor_enc_fini(&e);
}

static void test_deep_nesting(void **state)
{
	unsigned char buf[64];

	/* ES_CBOR_MAX_DEPTH nested arrays, the innermost empty: fine. */
	memset(buf, 0x81, sizeof(buf));
	buf[ES_CBOR_MAX_DEPTH - 1] = 0x80;
	assert_int_equal(skip_all(buf, ES_CBOR_MAX_DEPTH), 0);
	/* One level more: refused, not recursed. */
	buf[ES_CBOR_MAX_DEPTH - 1] = 0x81;
	buf[ES_CBOR_MAX_DEPTH] = 0x80;
	expect_skip(buf, ES_CBOR_MAX_DEPTH + 1, ES_E_CBOR_MALFORMED,
		    "nested deeper than 32");
	/* Indefinite maps nest the same way. */
	for (int i = 0; i < 40; i++)
		buf[i] = 0xbf;
	expect_skip(buf, 40, ES_E_CBOR_MALFORMED, "nested deeper");
}

static void test_huge_lengths(void **state)
{
	/* A byte string declaring 2^63 bytes, then 2^64 - 1. */
	static const unsigned char bytes63[] = {0x5b, 0x80, 0, 0, 0, 0,
						0,    0,    0, 1, 2};
	static const unsigned char bytes64[] = {0x5b, 0xff, 0xff, 0xff, 0xff,
						0xff, 0xff, 0xff, 0xff, 'x'};
	/* Text of 2^32 - 1 bytes in a message of 8. */
	static const unsigned char text32[] = {0x7a, 0xff, 0xff, 0xff,
					       0xff, 'a',  'b',	 'c'};
	/* An array and a map of 2^64 - 1 elements holding 2. */
	static const unsigned char arr[] = {0x9b, 0xff, 0xff, 0xff, 0xff, 0xff,
					    0xff, 0xff, 0xff, 0x01, 0x02};
	static const unsigned char map[] = {0xbb, 0xff, 0xff, 0xff, 0xff, 0xff,
					    0xff, 0xff, 0xff, 0x01, 0x02};

	expect_skip(bytes63, sizeof(bytes63), ES_E_CBOR_MALFORMED,
		    "declares more bytes");
	expect_skip(bytes64, sizeof(bytes64), ES_E_CBOR_MALFORMED,
		    "declares more bytes");
	expect_skip(text32, sizeof(text32), ES_E_CBOR_MALFORMED,
		    "declares more bytes");
	expect_skip(arr, sizeof(arr), ES_E_CBOR_MALFORMED, "truncated");
	expect_skip(map, sizeof(map), ES_E_CBOR_MALFORMED, "truncated");
}

static void test_malformed(void **state)
{
	static const unsigned char indef_bytes[] = {0x5f, 0x41, 'a', 0xff};
	static const unsigned char indef_text[] = {0x7f, 0x61, 'a', 0xff};
	static const unsigned char lone_break[] = {0xff};
	static const unsigned char reserved[] = {0x1c}; /* ai 28 */
	static const unsigned char no_break[] = {0x9f, 0x01, 0x02};
	static const unsigned char break_in_map[] = {0xa1, 0xff};

	expect_skip(indef_bytes, sizeof(indef_bytes), ES_E_CBOR_MALFORMED,
		    "indefinite-length string");
	expect_skip(indef_text, sizeof(indef_text), ES_E_CBOR_MALFORMED,
		    "indefinite-length string");
	expect_skip(lone_break, sizeof(lone_break), ES_E_CBOR_MALFORMED,
		    "unexpected break");
	expect_skip(reserved, sizeof(reserved), ES_E_CBOR_MALFORMED,
		    "malformed CBOR at byte 0");
	expect_skip(no_break, sizeof(no_break), ES_E_CBOR_MALFORMED,
		    "no break");
	expect_skip(break_in_map, sizeof(break_in_map), ES_E_CBOR_MALFORMED,
		    "unexpected break");
	expect_skip("", 0, ES_E_CBOR_MALFORMED, "truncated");
}

/* ---- float32 arrays --------------------------------------------------- */

/* Reads n floats from an exact copy of p; returns the code, keeps err
 * and the count a mismatch reports in *got. */
static int get_floats(const void *p, size_t len, float *out, size_t n,
		      uint64_t *got)
{
	unsigned char *b = exact(p, len);
	struct es_cbor_reader r;
	int rc;

	es_cbor_reader_init(&r, b, len, err);
	rc = es_cbor_get_floats(&r, "vector", out, n, got);
	if (rc == 0)
		rc = es_cbor_reader_end(&r);
	free(b);
	return rc;
}

static void test_floats(void **state)
{
	static const float v[3] = {1.5f, -2.25f, 1e-30f};
	/* [0.5 (half), -1, 7, 2.5 (double)] and the same, indefinite */
	static const unsigned char arr[] = {0x84, 0xf9, 0x38, 0x00, 0x20,
					    0x07, 0xfb, 0x40, 0x04, 0,
					    0,	  0,	0,    0,    0};
	static const unsigned char indef[] = {
	    0x9f, 0xf9, 0x38, 0x00, 0x20, 0x07, 0xfb, 0x40,
	    0x04, 0,	0,    0,    0,	  0,	0,    0xff};
	static const unsigned char odd[] = {0x45, 1, 2, 3, 4, 5};
	static const unsigned char inf[] = {0x82, 0xf9, 0x7c, 0x00, 0x01};
	static const unsigned char huge[] = {0x81, 0xfb, 0x7e, 0x37, 0xe4,
					     0x3c, 0x88, 0x00, 0x75, 0x9c};
	static const unsigned char text[] = {0x81, 0x61, 'x'};
	static const unsigned char map[] = {0xa0};
	static const unsigned char short_bytes[] = {0x4c, 0, 0, 0, 0};
	float bad[3] = {1.0f, NAN, 2.0f}, out[4];
	struct es_cbor_enc e;
	uint64_t got;

	es_cbor_enc_init(&e);
	es_cbor_enc_floats(&e, v, 3);
	assert_int_equal(get_floats(e.buf, e.len, out, 3, &got), 0);
	assert_memory_equal(out, v, sizeof(v));
	expect_code(get_floats(e.buf, e.len, out, 2, &got), ES_E_CBOR_COUNT,
		    "vector has 3 values, 2 expected");
	assert_int_equal(got, 3);
	expect_code(get_floats(e.buf, e.len, out, 4, &got), ES_E_CBOR_COUNT,
		    "vector has 3 values, 4 expected");
	assert_int_equal(got, 3);
	es_cbor_enc_reset(&e, 0);
	es_cbor_enc_floats(&e, bad, 3);
	expect_code(get_floats(e.buf, e.len, out, 3, &got), ES_E_CBOR_VALUE,
		    "vector value 1 is NaN");
	es_cbor_enc_fini(&e);

	assert_int_equal(get_floats(arr, sizeof(arr), out, 4, &got), 0);
	assert_true(out[0] == 0.5f && out[1] == -1.0f && out[2] == 7.0f &&
		    out[3] == 2.5f);
	memset(out, 0, sizeof(out));
	assert_int_equal(get_floats(indef, sizeof(indef), out, 4, &got), 0);
	assert_true(out[0] == 0.5f && out[3] == 2.5f);
	expect_code(get_floats(arr, sizeof(arr), out, 3, &got), ES_E_CBOR_COUNT,
		    "vector has 4 values, 3 expected");
	assert_int_equal(got, 4);
	expect_code(get_floats(indef, sizeof(indef), out, 3, &got),
		    ES_E_CBOR_COUNT, "vector has more than 3 values");
	assert_true(got == UINT64_MAX);
	expect_code(get_floats(indef, sizeof(indef), out, 5, &got),
		    ES_E_CBOR_COUNT, "vector has 4 values, 5 expected");
	assert_int_equal(got, 4);
	expect_code(get_floats(odd, sizeof(odd), out, 1, &got), ES_E_CBOR_COUNT,
		    "vector has 5 bytes, not a whole number of float32");
	assert_true(got == UINT64_MAX);
	expect_code(get_floats(inf, sizeof(inf), out, 2, &got), ES_E_CBOR_VALUE,
		    "vector value 0 is infinite");
	expect_code(get_floats(huge, sizeof(huge), out, 1, &got),
		    ES_E_CBOR_VALUE, "vector value 0 is beyond float32 range");
	expect_code(get_floats(text, sizeof(text), out, 1, &got),
		    ES_E_CBOR_SCHEMA,
		    "vector value 0 must be a number, not a text string");
	expect_code(get_floats(map, sizeof(map), out, 1, &got),
		    ES_E_CBOR_SCHEMA,
		    "vector must be a byte string of float32 or an array of "
		    "numbers, not a map");
	expect_code(get_floats(short_bytes, sizeof(short_bytes), out, 3, &got),
		    ES_E_CBOR_MALFORMED, "declares more bytes");
}

static void test_floats_nonfinite(void **state)
{
	float v[5] = {1.0f, -0.0f, 3e38f, INFINITY, NAN};

	assert_int_equal(es_cbor_floats_nonfinite(v, 3), 3);
	assert_int_equal(es_cbor_floats_nonfinite(v, 5), 3);
	assert_int_equal(es_cbor_floats_nonfinite(v + 4, 1), 0);
	assert_int_equal(es_cbor_floats_nonfinite(v, 0), 0);
}

/* Random bytes and random mutations of a valid message: any result but
 * a crash (ASan watches the reads). */
static void test_random_inputs(void **state)
{
	static const char *const keys[] = {"v", "type", "data", "x"};
	struct es_cbor_span sp[4];
	struct es_cbor_reader r;
	struct es_cbor_enc e;
	unsigned char buf[96], *b;
	uint64_t seed = 42;
	int ok = 0;

	es_cbor_enc_init(&e);
	es_cbor_enc_map(&e, 3);
	es_cbor_enc_kv_uint(&e, "v", 1);
	es_cbor_enc_kv_text(&e, "type", "begin");
	es_cbor_enc_kv_bytes(&e, "data", "0123456789", 10);
	for (int round = 0; round < 20000; round++) {
		size_t len;

		if (round % 2) {
			len = e.len;
			memcpy(buf, e.buf, len);
			for (int k = 0; k < 3; k++) {
				seed = seed * 6364136223846793005ull + 1;
				buf[(seed >> 33) % len] ^=
				    (unsigned char)(seed >> 17);
			}
		} else {
			seed = seed * 6364136223846793005ull + 1;
			len = (seed >> 33) % sizeof(buf);
			for (size_t k = 0; k < len; k++) {
				seed = seed * 6364136223846793005ull + 1;
				buf[k] = (unsigned char)(seed >> 40);
			}
		}
		b = exact(buf, len);
		es_cbor_reader_init(&r, b, len, err);
		if (es_cbor_map_index(&r, keys, 4, sp, 0, "m") == 0)
			ok++;
		else
			assert_true(err[0] != '\0');
		free(b);
	}
	assert_true(ok > 0);
	es_cbor_enc_fini(&e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_enc_uint),
	    cmocka_unit_test(test_enc_int),
	    cmocka_unit_test(test_enc_roundtrip),
	    cmocka_unit_test(test_libcbor_forms),
	    cmocka_unit_test(test_typed_errors),
	    cmocka_unit_test(test_map_index),
	    cmocka_unit_test(test_truncation),
	    cmocka_unit_test(test_deep_nesting),
	    cmocka_unit_test(test_huge_lengths),
	    cmocka_unit_test(test_malformed),
	    cmocka_unit_test(test_floats),
	    cmocka_unit_test(test_floats_nonfinite),
	    cmocka_unit_test(test_random_inputs),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
