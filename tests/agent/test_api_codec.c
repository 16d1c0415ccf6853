/*
 * The local API's CBOR codec: encoder output checked by libcbor's own
 * decoder (cbor_load), libcbor-built items (long forms, indefinite
 * lengths, half floats, tags) read by ours, every op's request, and every
 * malformed input we could think of refused with the right code and a
 * message naming the problem; random and mutated inputs never crash.
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

#include "api_codec.h"

static char err[API_ERR_MAX];

/* ---- helpers ---------------------------------------------------------- */

static struct es_cbor_enc *enc_new(void)
{
	struct es_cbor_enc *e = malloc(sizeof(*e));

	assert_non_null(e);
	es_cbor_enc_init(e);
	return e;
}

static void enc_free(struct es_cbor_enc *e)
{
	es_cbor_enc_fini(e);
	free(e);
}

/* {v: 1, op: op, ...n more} */
static struct es_cbor_enc *req(const char *op, unsigned n)
{
	struct es_cbor_enc *e = enc_new();

	es_cbor_enc_map(e, 2 + n);
	es_cbor_enc_kv_uint(e, "v", 1);
	es_cbor_enc_kv_text(e, "op", op);
	return e;
}

/* An insert into 'faces' of the n ids from first, up to its "vectors"
 * key: the caller encodes the vectors. */
static struct es_cbor_enc *insert_req(uint64_t first, unsigned n)
{
	struct es_cbor_enc *e = req("insert", 3);

	es_cbor_enc_kv_text(e, "collection", "faces");
	es_cbor_enc_text(e, "ids");
	es_cbor_enc_array(e, n);
	for (unsigned i = 0; i < n; i++)
		es_cbor_enc_uint(e, first + i);
	es_cbor_enc_text(e, "vectors");
	return e;
}

static int parse(struct api_request *rq, const struct es_cbor_enc *e)
{
	assert_int_equal(es_cbor_enc_error(e), 0);
	return api_request_parse(rq, e->buf, e->len, err);
}

/* Parses e expecting code and a message containing want. */
static void expect(struct es_cbor_enc *e, int code, const char *want)
{
	struct api_request rq;
	int rc = parse(&rq, e);

	if (rc != code || !strstr(err, want))
		fail_msg("got %d '%s', wanted %d '%s'", rc, err, code, want);
	api_request_fini(&rq);
	enc_free(e);
}

static void expect_raw(const void *buf, size_t len, int code, const char *want)
{
	struct api_request rq;
	int rc = api_request_parse(&rq, buf, len, err);

	if (rc != code || !strstr(err, want))
		fail_msg("got %d '%s', wanted %d '%s'", rc, err, code, want);
	api_request_fini(&rq);
}

/* Decodes rq's vectors (insert) or vector (search) with dim. */
static int vectors(struct api_request *rq, uint32_t dim, float *out)
{
	struct es_cbor_reader r;

	es_cbor_reader_span(&r, &rq->reader, &rq->vectors);
	if (rq->op == API_OP_SEARCH)
		return api_get_vector(&r, dim, out, "vector", "faces");
	return api_get_vectors(&r, rq->n_ids, dim, out, "faces");
}

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint64_t next_rand(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

/* ---- encoder, checked by libcbor -------------------------------------- */

static void test_enc_uint(void **state)
{
	static const struct {
		uint64_t v;
		size_t len;
	} cases[] = {
	    {0, 1},	     {23, 1},	      {24, 2},	  {255, 2},
	    {256, 3},	     {65535, 3},      {65536, 5}, {UINT32_MAX, 5},
	    {1ull << 32, 9}, {UINT64_MAX, 9},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct es_cbor_enc *e = enc_new();
		struct cbor_load_result res;
		struct es_cbor_reader r;
		struct es_cbor_item it;
		cbor_item_t *item;

		es_cbor_enc_uint(e, cases[i].v);
		assert_int_equal(e->len, cases[i].len);
		item = cbor_load(e->buf, e->len, &res);
		assert_non_null(item);
		assert_int_equal(res.read, e->len);
		assert_true(cbor_isa_uint(item));
		assert_true(cbor_get_int(item) == cases[i].v);
		cbor_decref(&item);
		es_cbor_reader_init(&r, e->buf, e->len, err);
		assert_int_equal(es_cbor_next(&r, &it), 0);
		assert_int_equal(it.type, ES_CBOR_UINT);
		assert_true(it.u == cases[i].v);
		enc_free(e);
	}
}

static void test_enc_int(void **state)
{
	static const int64_t cases[] = {-1,	-24,	   -25, -256,	  -257,
					-65537, INT64_MIN, 5,	INT64_MAX};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct es_cbor_enc *e = enc_new();
		struct cbor_load_result res;
		struct es_cbor_reader r;
		cbor_item_t *item;
		int64_t v;

		es_cbor_enc_int(e, cases[i]);
		item = cbor_load(e->buf, e->len, &res);
		assert_non_null(item);
		if (cases[i] < 0) {
			assert_true(cbor_isa_negint(item));
			assert_true(-1 - (int64_t)cbor_get_int(item) ==
				    cases[i]);
		}
		cbor_decref(&item);
		es_cbor_reader_init(&r, e->buf, e->len, err);
		assert_int_equal(es_cbor_get_int(&r, "x", &v), 0);
		assert_true(v == cases[i]);
		enc_free(e);
	}
}

/* A reply-like structure, read back by libcbor. */
static void test_enc_structure(void **state)
{
	struct es_cbor_enc *e = enc_new();
	float v[3] = {1.5f, -2.25f, 1e-30f}, got[3];
	struct cbor_load_result res;
	struct cbor_pair *pairs;
	cbor_item_t *item, *arr;
	char long_text[300];

	memset(long_text, 'x', sizeof(long_text) - 1);
	long_text[sizeof(long_text) - 1] = '\0';
	es_cbor_enc_map(e, 5);
	es_cbor_enc_kv_bool(e, "ok", 1);
	es_cbor_enc_kv_text(e, "name", long_text);
	es_cbor_enc_text(e, "vector");
	es_cbor_enc_floats(e, v, 3);
	es_cbor_enc_text(e, "distances");
	es_cbor_enc_array(e, 2);
	es_cbor_enc_float(e, 0.5f);
	es_cbor_enc_float(e, -INFINITY);
	es_cbor_enc_kv_bool(e, "no", 0);
	assert_int_equal(es_cbor_enc_error(e), 0);

	item = cbor_load(e->buf, e->len, &res);
	assert_non_null(item);
	assert_int_equal(res.read, e->len);
	assert_true(cbor_isa_map(item));
	assert_int_equal(cbor_map_size(item), 5);
	pairs = cbor_map_handle(item);
	assert_true(cbor_get_bool(pairs[0].value));
	assert_int_equal(cbor_string_length(pairs[1].value), strlen(long_text));
	assert_memory_equal(cbor_string_handle(pairs[1].value), long_text,
			    strlen(long_text));
	assert_int_equal(cbor_bytestring_length(pairs[2].value), 12);
	memcpy(got, cbor_bytestring_handle(pairs[2].value), 12);
	assert_memory_equal(got, v, 12);
	arr = pairs[3].value;
	assert_int_equal(cbor_array_size(arr), 2);
	assert_true(cbor_float_get_float(cbor_array_handle(arr)[0]) == 0.5);
	assert_true(isinf(cbor_float_get_float(cbor_array_handle(arr)[1])));
	assert_false(cbor_get_bool(pairs[4].value));
	cbor_decref(&item);

	es_cbor_enc_reset(e, 0);
	assert_int_equal(e->len, 0);
	assert_null(e->buf);
	enc_free(e);
}

/* ---- libcbor-built input, read by us ---------------------------------- */

static unsigned char *serialize(cbor_item_t *item, size_t *len)
{
	unsigned char *buf = NULL;
	size_t size = 0;

	*len = cbor_serialize_alloc(item, &buf, &size);
	assert_true(*len > 0);
	cbor_decref(&item);
	return buf;
}

static void add_pair(cbor_item_t *map, const char *k, cbor_item_t *v)
{
	assert_true(cbor_map_add(
	    map, (struct cbor_pair){.key = cbor_move(cbor_build_string(k)),
				    .value = cbor_move(v)}));
}

/*
 * A search as another encoder might write it: self-describe tag, an
 * indefinite map, v as an 8-byte integer, the vector an indefinite array
 * of half, single and double floats and integers, k as a 2-byte integer.
 */
static void test_libcbor_request(void **state)
{
	cbor_item_t *map = cbor_new_indefinite_map();
	cbor_item_t *vec = cbor_new_indefinite_array();
	cbor_item_t *top;
	struct api_request rq;
	unsigned char *buf;
	float out[4];
	size_t len;

	add_pair(map, "v", cbor_build_uint64(1));
	add_pair(map, "op", cbor_build_string("search"));
	add_pair(map, "collection", cbor_build_string("faces"));
	assert_true(cbor_array_push(vec, cbor_move(cbor_build_float2(0.5f))));
	assert_true(cbor_array_push(vec, cbor_move(cbor_build_float4(-1.25f))));
	assert_true(cbor_array_push(vec, cbor_move(cbor_build_float8(3.0))));
	assert_true(cbor_array_push(vec, cbor_move(cbor_build_negint8(6))));
	add_pair(map, "vector", vec);
	add_pair(map, "k", cbor_build_uint16(7));
	add_pair(map, "future_field",
		 cbor_build_tag(1, cbor_move(cbor_build_uint8(3))));
	top = cbor_build_tag(55799, cbor_move(map));
	buf = serialize(top, &len);

	assert_int_equal(api_request_parse(&rq, buf, len, err), 0);
	assert_int_equal(rq.op, API_OP_SEARCH);
	assert_string_equal(rq.name, "faces");
	assert_int_equal(rq.k, 7);
	assert_int_equal(vectors(&rq, 4, out), 0);
	assert_true(out[0] == 0.5f && out[1] == -1.25f && out[2] == 3.0f &&
		    out[3] == -7.0f);
	/* The same vector is not dim 3 nor dim 5. */
	assert_int_equal(vectors(&rq, 3, out), API_E_DIM);
	assert_non_null(strstr(err, "has more than 3 values"));
	assert_int_equal(vectors(&rq, 5, out), API_E_DIM);
	assert_non_null(
	    strstr(err, "vector has 4 values, collection 'faces' has dim 5"));
	api_request_fini(&rq);
	free(buf);
}

/* ---- requests --------------------------------------------------------- */

static void test_every_op(void **state)
{
	static const char *const plain[] = {"ping", "collection.list", "stats"};
	struct api_request rq;
	struct es_cbor_enc *e;

	for (size_t i = 0; i < 3; i++) {
		e = req(plain[i], 0);
		assert_int_equal(parse(&rq, e), 0);
		assert_string_equal(api_op_name(rq.op), plain[i]);
		api_request_fini(&rq);
		enc_free(e);
	}

	e = req("collection.create", 4);
	es_cbor_enc_kv_text(e, "name", "faces_2-x");
	es_cbor_enc_kv_uint(e, "dim", 128);
	es_cbor_enc_kv_text(e, "metric", "cosine");
	es_cbor_enc_kv_text(e, "sync", "both");
	assert_int_equal(parse(&rq, e), 0);
	assert_int_equal(rq.op, API_OP_COLL_CREATE);
	assert_string_equal(rq.name, "faces_2-x");
	assert_int_equal(rq.dim, 128);
	assert_string_equal(rq.metric, "cosine");
	assert_string_equal(rq.sync, "both");
	api_request_fini(&rq);
	enc_free(e);

	/* "collection" is accepted for "name" and the other way round */
	e = req("collection.drop", 1);
	es_cbor_enc_kv_text(e, "collection", "a");
	assert_int_equal(parse(&rq, e), 0);
	assert_string_equal(rq.name, "a");
	api_request_fini(&rq);
	enc_free(e);
	e = req("flush", 1);
	es_cbor_enc_kv_text(e, "name", "b");
	assert_int_equal(parse(&rq, e), 0);
	assert_int_equal(rq.op, API_OP_FLUSH);
	assert_string_equal(rq.name, "b");
	api_request_fini(&rq);
	enc_free(e);

	e = req("get", 2);
	es_cbor_enc_kv_text(e, "collection", "c");
	es_cbor_enc_kv_uint(e, "id", UINT64_MAX);
	assert_int_equal(parse(&rq, e), 0);
	assert_true(rq.id == UINT64_MAX);
	api_request_fini(&rq);
	enc_free(e);

	e = req("delete", 2);
	es_cbor_enc_kv_text(e, "collection", "c");
	es_cbor_enc_text(e, "ids");
	es_cbor_enc_array(e, 3);
	es_cbor_enc_uint(e, 0);
	es_cbor_enc_uint(e, 1ull << 40);
	es_cbor_enc_uint(e, UINT64_MAX);
	assert_int_equal(parse(&rq, e), 0);
	assert_int_equal(rq.n_ids, 3);
	assert_true(rq.ids[1] == 1ull << 40 && rq.ids[2] == UINT64_MAX);
	api_request_fini(&rq);
	enc_free(e);

	/* search defaults: k 10, L 0; fields other ops use are ignored */
	e = req("search", 3);
	es_cbor_enc_kv_text(e, "collection", "c");
	es_cbor_enc_text(e, "vector");
	es_cbor_enc_floats(e, (float[]){1, 2}, 2);
	es_cbor_enc_kv_text(e, "dim", "not a number, and not search's");
	assert_int_equal(parse(&rq, e), 0);
	assert_int_equal(rq.k, 10);
	assert_int_equal(rq.L, 0);
	api_request_fini(&rq);
	enc_free(e);

	e = req("segments", 1);
	es_cbor_enc_kv_text(e, "collection", "c");
	assert_int_equal(parse(&rq, e), 0);
	assert_int_equal(rq.op, API_OP_SEGMENTS);
	api_request_fini(&rq);
	enc_free(e);
}

/* An insert of 3 vectors of dim 4 in each accepted form. */
static void test_vector_forms(void **state)
{
	float v[12], out[12];
	struct api_request rq;
	struct es_cbor_enc *e;

	for (int i = 0; i < 12; i++)
		v[i] = (float)i * 0.5f - 2.0f;
	for (int form = 0; form < 4; form++) {
		e = insert_req(100, 3);
		if (form == 0) {
			es_cbor_enc_floats(e, v, 12);
		} else {
			es_cbor_enc_array(e, 3);
			for (int i = 0; i < 3; i++) {
				if (form == 1) {
					es_cbor_enc_floats(e, v + 4 * i, 4);
					continue;
				}
				es_cbor_enc_array(e, 4);
				for (int j = 0; j < 4; j++) {
					float x = v[4 * i + j];

					if (form == 3 && x == floorf(x))
						es_cbor_enc_int(e, (int64_t)x);
					else
						es_cbor_enc_float(e, x);
				}
			}
		}
		assert_int_equal(parse(&rq, e), 0);
		memset(out, 0, sizeof(out));
		assert_int_equal(vectors(&rq, 4, out), 0);
		assert_memory_equal(out, v, sizeof(v));
		api_request_fini(&rq);
		enc_free(e);
	}
}

/* ---- malformed requests ------------------------------------------------ */

static void test_envelope_errors(void **state)
{
	static const unsigned char garbage[] = {0xff, 0x00, 0x13};
	static const unsigned char reserved[] = {0x1c};
	static const unsigned char simple[] = {0xf8, 0x20};
	static const unsigned char indef_text[] = {0xa1, 0x7f, 0x61,
						   'v',	 0xff, 0x01};
	static const unsigned char stray_break[] = {0xa1, 0x61, 'v', 0xff};
	struct es_cbor_enc *e;

	expect_raw("", 0, API_E_BAD_REQUEST, "empty request");
	expect_raw(garbage, sizeof(garbage), API_E_BAD_REQUEST,
		   "request must be a map, not a break");
	expect_raw(reserved, 1, API_E_BAD_REQUEST, "malformed CBOR at byte 0");
	expect_raw(simple, 2, API_E_BAD_REQUEST, "malformed CBOR");
	expect_raw(indef_text, sizeof(indef_text), API_E_BAD_REQUEST,
		   "indefinite-length string at byte 1");
	expect_raw(stray_break, sizeof(stray_break), API_E_BAD_REQUEST,
		   "unexpected break");

	e = enc_new();
	es_cbor_enc_array(e, 1);
	es_cbor_enc_uint(e, 1);
	expect(e, API_E_BAD_REQUEST, "request must be a map, not an array");

	e = req("ping", 0);
	es_cbor_enc_uint(e, 7); /* trailing item */
	expect(e, API_E_BAD_REQUEST, "1 trailing bytes after the request map");

	e = enc_new();
	es_cbor_enc_map(e, 1);
	es_cbor_enc_kv_text(e, "op", "ping");
	expect(e, API_E_BAD_REQUEST, "missing field 'v'");

	e = enc_new();
	es_cbor_enc_map(e, 2);
	es_cbor_enc_kv_uint(e, "v", 2);
	es_cbor_enc_kv_text(e, "op", "ping");
	expect(e, API_E_BAD_REQUEST, "protocol version 2 is not supported");

	e = enc_new();
	es_cbor_enc_map(e, 2);
	es_cbor_enc_kv_text(e, "v", "1");
	es_cbor_enc_kv_text(e, "op", "ping");
	expect(e, API_E_BAD_REQUEST,
	       "field 'v' must be an unsigned integer, not a text string");

	e = enc_new();
	es_cbor_enc_map(e, 1);
	es_cbor_enc_kv_uint(e, "v", 1);
	expect(e, API_E_BAD_REQUEST, "missing field 'op'");

	e = req("frobnicate", 0);
	expect(e, API_E_UNKNOWN_OP, "unknown op 'frobnicate'");

	e = req("bad\nop\x01", 0);
	expect(e, API_E_UNKNOWN_OP, "unknown op 'bad?op?'");

	e = enc_new();
	es_cbor_enc_map(e, 2);
	es_cbor_enc_kv_uint(e, "v", 1);
	es_cbor_enc_text(e, "op");
	es_cbor_enc_uint(e, 3);
	expect(e, API_E_BAD_REQUEST, "field 'op' must be a text string");

	e = req("ping", 1);
	es_cbor_enc_uint(e, 5); /* key */
	es_cbor_enc_uint(e, 6);
	expect(e, API_E_BAD_REQUEST, "map keys must be text strings");

	e = req("ping", 1);
	es_cbor_enc_kv_text(e, "op", "stats");
	expect(e, API_E_BAD_REQUEST, "field 'op' appears twice");

	/* an unknown field of any shape is skipped */
	e = req("ping", 2);
	es_cbor_enc_text(e, "extra");
	es_cbor_enc_map(e, 1);
	es_cbor_enc_kv_text(e, "deeper", "still fine");
	es_cbor_enc_kv_uint(e, "v2", 9);
	expect(e, 0, "");
}

static void test_field_errors(void **state)
{
	struct es_cbor_enc *e;

	e = req("collection.create", 1);
	es_cbor_enc_kv_uint(e, "dim", 4);
	expect(e, API_E_BAD_REQUEST, "missing field 'name'");

	e = req("collection.create", 1);
	es_cbor_enc_kv_text(e, "name", "x");
	expect(e, API_E_BAD_REQUEST, "missing field 'dim'");

	e = req("collection.create", 2);
	es_cbor_enc_kv_text(e, "name", "Faces");
	es_cbor_enc_kv_uint(e, "dim", 4);
	expect(e, API_E_BAD_VALUE, "collection name 'Faces' is not 1 to 64");

	e = req("collection.info", 1);
	es_cbor_enc_kv_text(e, "name", "");
	expect(e, API_E_BAD_VALUE, "collection name '' is not");

	e = req("collection.info", 1);
	es_cbor_enc_text(e, "name");
	es_cbor_enc_textn(e, "a\0b", 3);
	expect(e, API_E_BAD_VALUE, "field 'name' contains a NUL byte");

	e = req("collection.info", 1);
	es_cbor_enc_kv_text(e, "name",
			    "a2345678901234567890123456789012345678901"
			    "23456789012345678901234x");
	expect(e, API_E_BAD_VALUE, "field 'name' is longer than 64 bytes");

	e = req("collection.info", 1);
	es_cbor_enc_text(e, "name");
	es_cbor_enc_bytes(e, "abc", 3);
	expect(e, API_E_BAD_REQUEST,
	       "field 'name' must be a text string, not a byte string");

	e = req("collection.create", 2);
	es_cbor_enc_kv_text(e, "name", "x");
	es_cbor_enc_kv_uint(e, "dim", 0);
	expect(e, API_E_BAD_VALUE, "dim is 0, it must be 1 to 4096");

	e = req("collection.create", 2);
	es_cbor_enc_kv_text(e, "name", "x");
	es_cbor_enc_kv_uint(e, "dim", 4097);
	expect(e, API_E_BAD_VALUE, "dim is 4097");

	e = req("collection.create", 2);
	es_cbor_enc_kv_text(e, "name", "x");
	es_cbor_enc_text(e, "dim");
	es_cbor_enc_int(e, -4);
	expect(e, API_E_BAD_VALUE, "field 'dim' must not be negative");

	e = req("collection.create", 2);
	es_cbor_enc_kv_text(e, "name", "x");
	es_cbor_enc_text(e, "dim");
	es_cbor_enc_float(e, 4.0f);
	expect(e, API_E_BAD_REQUEST,
	       "field 'dim' must be an unsigned integer, not a float");

	e = req("collection.create", 3);
	es_cbor_enc_kv_text(e, "name", "x");
	es_cbor_enc_kv_uint(e, "dim", 4);
	es_cbor_enc_kv_text(e, "metric", "hamming");
	expect(e, API_E_BAD_VALUE, "metric must be one of l2, ip, cosine");

	e = req("collection.create", 3);
	es_cbor_enc_kv_text(e, "name", "x");
	es_cbor_enc_kv_uint(e, "dim", 4);
	es_cbor_enc_kv_text(e, "sync", "sideways-and-then-some");
	expect(e, API_E_BAD_VALUE, "sync must be one of none, upload");

	e = req("get", 1);
	es_cbor_enc_kv_text(e, "collection", "x");
	expect(e, API_E_BAD_REQUEST, "missing field 'id'");

	e = req("insert", 2);
	es_cbor_enc_kv_text(e, "collection", "x");
	es_cbor_enc_text(e, "ids");
	es_cbor_enc_array(e, 0);
	expect(e, API_E_BAD_REQUEST, "missing field 'vectors'");

	e = req("insert", 1);
	es_cbor_enc_text(e, "ids");
	es_cbor_enc_array(e, 0);
	expect(e, API_E_BAD_REQUEST, "missing field 'collection'");

	e = req("delete", 2);
	es_cbor_enc_kv_text(e, "collection", "x");
	es_cbor_enc_kv_uint(e, "ids", 5);
	expect(e, API_E_BAD_REQUEST,
	       "ids must be an array, not an unsigned integer");

	e = req("delete", 2);
	es_cbor_enc_kv_text(e, "collection", "x");
	es_cbor_enc_text(e, "ids");
	es_cbor_enc_array(e, 3);
	es_cbor_enc_uint(e, 1);
	es_cbor_enc_uint(e, 2);
	es_cbor_enc_int(e, -3);
	expect(e, API_E_BAD_VALUE,
	       "ids[2] must be an unsigned integer, not a negative integer");

	e = req("delete", 2);
	es_cbor_enc_kv_text(e, "collection", "x");
	es_cbor_enc_text(e, "ids");
	es_cbor_enc_array(e, 2);
	es_cbor_enc_uint(e, 1);
	es_cbor_enc_text(e, "k"); /* a text string where an id goes */
	expect(e, API_E_BAD_REQUEST, "ids[1] must be an unsigned integer");
}

static struct es_cbor_enc *search(unsigned extra)
{
	struct es_cbor_enc *e = req("search", 2 + extra);

	es_cbor_enc_kv_text(e, "collection", "faces");
	es_cbor_enc_text(e, "vector");
	es_cbor_enc_floats(e, (float[]){1, 2, 3, 4}, 4);
	return e;
}

static void test_limits(void **state)
{
	struct es_cbor_enc *e;

	e = search(1);
	es_cbor_enc_kv_uint(e, "k", 0);
	expect(e, API_E_BAD_VALUE, "k must be at least 1");
	e = search(1);
	es_cbor_enc_kv_uint(e, "k", 1000);
	expect(e, 0, "");
	e = search(1);
	es_cbor_enc_kv_uint(e, "k", 1001);
	expect(e, API_E_TOO_LARGE, "k is 1001, at most 1000");
	e = search(1);
	es_cbor_enc_kv_uint(e, "L", 4096);
	expect(e, 0, "");
	e = search(1);
	es_cbor_enc_kv_uint(e, "L", 4097);
	expect(e, API_E_TOO_LARGE, "L is 4097, at most 4096");

	/* 100,000 ids pass, 100,001 do not, nor an indefinite array of so */
	for (int indef = 0; indef < 2; indef++) {
		for (uint64_t n = API_MAX_BATCH; n <= API_MAX_BATCH + 1; n++) {
			e = req("delete", 2);
			es_cbor_enc_kv_text(e, "collection", "x");
			es_cbor_enc_text(e, "ids");
			if (indef)
				es_cbor_enc_raw(e, "\x9f", 1);
			else
				es_cbor_enc_array(e, n);
			for (uint64_t i = 0; i < n; i++)
				es_cbor_enc_uint(e, i);
			if (indef)
				es_cbor_enc_raw(e, "\xff", 1);
			if (n == API_MAX_BATCH)
				expect(e, 0, "");
			else
				expect(e, API_E_TOO_LARGE,
				       indef
					   ? "ids has more than 100000 "
					     "entries"
					   : "ids has 100001 entries, at most "
					     "100000 per request");
		}
	}
}

static void test_vector_errors(void **state)
{
	struct api_request rq;
	struct es_cbor_enc *e;
	float v[8 * 128], out[8 * 128];

	for (int i = 0; i < 8 * 128; i++)
		v[i] = (float)i;

	/* the brief's example: vector 3 of an array has 127 values */
	e = insert_req(0, 5);
	es_cbor_enc_array(e, 5);
	for (int i = 0; i < 5; i++)
		es_cbor_enc_floats(e, v, i == 3 ? 127 : 128);
	if (parse(&rq, e))
		fail_msg("%s", err);
	assert_int_equal(vectors(&rq, 128, out), API_E_DIM);
	assert_string_equal(err,
			    "vector 3 has 127 values, collection 'faces' has "
			    "dim 128");
	api_request_fini(&rq);
	enc_free(e);

	/* one byte string for the batch: its length must be n x dim x 4 */
	e = insert_req(1, 2);
	es_cbor_enc_floats(e, v, 255);
	assert_int_equal(parse(&rq, e), 0);
	assert_int_equal(vectors(&rq, 128, out), API_E_DIM);
	assert_string_equal(err, "vectors has 1020 bytes for 2 ids; "
				 "collection 'faces' has dim 128, so 1024 "
				 "bytes (n x dim x 4) were expected");
	api_request_fini(&rq);
	enc_free(e);

	/* NaN and infinity, in bytes and in arrays; beyond float range */
	for (int kind = 0; kind < 5; kind++) {
		float bad[8];
		static const char *const want[] = {
		    "vector 1 value 2 is NaN", "vector 1 value 2 is infinite",
		    "vector 1 value 2 is NaN", "vector 1 value 2 is infinite",
		    "vector 1 value 2 is beyond float32 range"};

		memcpy(bad, v, sizeof(bad));
		e = insert_req(1, 2);
		if (kind < 2) {
			bad[6] = kind == 0 ? NAN : -INFINITY;
			es_cbor_enc_floats(e, bad, 8);
		} else {
			es_cbor_enc_array(e, 2);
			for (int i = 0; i < 2; i++) {
				es_cbor_enc_array(e, 4);
				for (int j = 0; j < 4; j++) {
					if (i == 1 && j == 2 && kind == 4)
						es_cbor_enc_raw(
						    e,
						    "\xfb\x7e\x37\xe4\x3c"
						    "\x88\x00\x75\x9c",
						    9); /* 1e300 */
					else if (i == 1 && j == 2)
						es_cbor_enc_float(
						    e,
						    kind == 2 ? NAN : INFINITY);
					else
						es_cbor_enc_float(e, 1.0f);
				}
			}
		}
		assert_int_equal(parse(&rq, e), 0);
		assert_int_equal(vectors(&rq, 4, out), API_E_BAD_VALUE);
		if (!strstr(err, want[kind]))
			fail_msg("kind %d: '%s'", kind, err);
		api_request_fini(&rq);
		enc_free(e);
	}

	/* a single query vector */
	e = search(0);
	assert_int_equal(parse(&rq, e), 0);
	assert_int_equal(vectors(&rq, 8, out), API_E_DIM);
	assert_string_equal(
	    err, "vector has 4 values, collection 'faces' has dim 8");
	api_request_fini(&rq);
	enc_free(e);

	e = req("search", 2);
	es_cbor_enc_kv_text(e, "collection", "faces");
	es_cbor_enc_kv_text(e, "vector", "1,2,3,4");
	assert_int_equal(parse(&rq, e), 0);
	assert_int_equal(vectors(&rq, 4, out), API_E_BAD_REQUEST);
	assert_non_null(strstr(err, "vector must be a byte string of float32 "
				    "or an array of numbers, not a text "
				    "string"));
	api_request_fini(&rq);
	enc_free(e);

	e = req("search", 2);
	es_cbor_enc_kv_text(e, "collection", "faces");
	es_cbor_enc_text(e, "vector");
	es_cbor_enc_array(e, 2);
	es_cbor_enc_float(e, 1);
	es_cbor_enc_text(e, "x"); /* a text string among the numbers */
	assert_int_equal(parse(&rq, e), 0);
	assert_int_equal(vectors(&rq, 2, out), API_E_BAD_REQUEST);
	assert_non_null(strstr(err, "vector value 1 must be a number, not a "
				    "text string"));
	api_request_fini(&rq);
	enc_free(e);

	e = req("search", 2);
	es_cbor_enc_kv_text(e, "collection", "faces");
	es_cbor_enc_text(e, "vector");
	es_cbor_enc_bytes(e, "abcde", 5);
	assert_int_equal(parse(&rq, e), 0);
	assert_int_equal(vectors(&rq, 2, out), API_E_DIM);
	assert_non_null(strstr(err, "vector has 5 bytes, not a whole number"));
	api_request_fini(&rq);
	enc_free(e);

	/* an array of vectors whose count is not the ids' */
	e = insert_req(1, 2);
	es_cbor_enc_array(e, 3);
	for (int i = 0; i < 3; i++)
		es_cbor_enc_floats(e, v, 2);
	assert_int_equal(parse(&rq, e), 0);
	assert_int_equal(vectors(&rq, 2, out), API_E_BAD_REQUEST);
	assert_string_equal(err, "vectors has 3 entries for 2 ids");
	api_request_fini(&rq);
	enc_free(e);
}

/* Lengths and counts larger than the message are never believed. */
static void test_huge_lengths(void **state)
{
	static const struct {
		const char *bytes;
		size_t len;
	} heads[] = {
	    {"\x5b\xff\xff\xff\xff\xff\xff\xff\xff", 9}, /* bytes 2^64-1 */
	    {"\x7b\x7f\xff\xff\xff\xff\xff\xff\xff", 9}, /* text 2^63-1 */
	    {"\x5a\xff\xff\xff\xf0", 5},		 /* bytes ~4 GiB */
	    {"\x9b\x7f\xff\xff\xff\xff\xff\xff\xff", 9}, /* array 2^63-1 */
	    {"\xbb\x7f\xff\xff\xff\xff\xff\xff\xff", 9}, /* map 2^63-1 */
	    {"\x9a\xff\xff\xff\xff", 5},		 /* array 2^32-1 */
	};
	struct es_cbor_enc *e;

	for (size_t i = 0; i < sizeof(heads) / sizeof(heads[0]); i++) {
		e = req("ping", 1);
		es_cbor_enc_text(e, "unknown");
		es_cbor_enc_raw(e, heads[i].bytes, heads[i].len);
		es_cbor_enc_raw(e, "\x01\x02\x03", 3);
		expect(e, API_E_BAD_REQUEST, "truncated CBOR");
	}

	/* a top-level map that claims 2^63 pairs */
	expect_raw("\xbb\x7f\xff\xff\xff\xff\xff\xff\xff\x61v\x01", 12,
		   API_E_BAD_REQUEST, "truncated CBOR");

	/* ids that claim more entries than bytes follow: no allocation */
	e = req("delete", 2);
	es_cbor_enc_kv_text(e, "collection", "x");
	es_cbor_enc_text(e, "ids");
	es_cbor_enc_array(e, 50000);
	es_cbor_enc_uint(e, 1);
	expect(e, API_E_BAD_REQUEST, "truncated CBOR");

	e = req("delete", 2);
	es_cbor_enc_kv_text(e, "collection", "x");
	es_cbor_enc_text(e, "ids");
	es_cbor_enc_raw(e, "\x9b\x00\x00\x01\x00\x00\x00\x00\x00", 9);
	es_cbor_enc_uint(e, 1);
	expect(e, API_E_BAD_REQUEST, "truncated CBOR");
}

static void test_deep_nesting(void **state)
{
	struct es_cbor_enc *e;

	for (int kind = 0; kind < 3; kind++) {
		e = req("ping", 1);
		es_cbor_enc_text(e, "deep");
		for (int i = 0; i < 10000; i++) {
			if (kind == 0)
				es_cbor_enc_array(e, 1);
			else if (kind == 1)
				es_cbor_enc_raw(e, "\x9f", 1); /* indefinite */
			else
				es_cbor_enc_map(e, 1), es_cbor_enc_text(e, "m");
		}
		es_cbor_enc_uint(e, 0);
		expect(e, API_E_BAD_REQUEST, "CBOR nested deeper than 32");
	}

	/* 20 levels inside an unknown field are fine */
	e = req("ping", 1);
	es_cbor_enc_text(e, "deep");
	for (int i = 0; i < 20; i++)
		es_cbor_enc_array(e, 1);
	es_cbor_enc_uint(e, 0);
	expect(e, 0, "");

	/* so are 10,000 tags in a row: they are skipped, not nested */
	e = req("ping", 1);
	es_cbor_enc_text(e, "tagged");
	for (int i = 0; i < 10000; i++)
		es_cbor_enc_raw(e, "\xd8\x20", 2);
	es_cbor_enc_uint(e, 0);
	expect(e, 0, "");
}

/* A valid insert cut at every length is refused, never read past. */
static void test_truncation(void **state)
{
	struct es_cbor_enc *e = req("insert", 3);
	struct api_request rq;
	unsigned char *copy;

	es_cbor_enc_kv_text(e, "collection", "faces");
	es_cbor_enc_text(e, "ids");
	es_cbor_enc_array(e, 2);
	es_cbor_enc_uint(e, 1);
	es_cbor_enc_uint(e, 1ull << 33);
	es_cbor_enc_text(e, "vectors");
	es_cbor_enc_array(e, 2);
	es_cbor_enc_floats(e, (float[]){1, 2, 3}, 3);
	es_cbor_enc_array(e, 3);
	es_cbor_enc_float(e, 1);
	es_cbor_enc_float(e, 2);
	es_cbor_enc_uint(e, 300);
	assert_int_equal(parse(&rq, e), 0);
	api_request_fini(&rq);
	for (size_t n = 0; n < e->len; n++) {
		copy = malloc(n ? n : 1); /* exact size: ASan sees overreads */
		memcpy(copy, e->buf, n);
		assert_int_not_equal(api_request_parse(&rq, copy, n, err), 0);
		assert_true(strstr(err, "truncated") ||
			    strstr(err, "empty request"));
		api_request_fini(&rq);
		free(copy);
	}
	enc_free(e);
}

/* Random bytes and mutations of a valid request never crash. */
static void test_random_inputs(void **state)
{
	struct es_cbor_enc *e = req("insert", 3);
	struct api_request rq;
	unsigned char buf[96], *copy;
	float out[64];
	int accepted = 0;

	for (int i = 0; i < 20000; i++) {
		size_t n = next_rand() % sizeof(buf);

		for (size_t j = 0; j < n; j++)
			buf[j] = (unsigned char)next_rand();
		if (n)
			buf[0] = 0xa0 | (buf[0] & 0x1f); /* mostly maps */
		copy = malloc(n ? n : 1);
		memcpy(copy, buf, n);
		if (api_request_parse(&rq, copy, n, err) == 0)
			accepted++;
		assert_true(strlen(err) < API_ERR_MAX);
		api_request_fini(&rq);
		free(copy);
	}

	es_cbor_enc_kv_text(e, "collection", "faces");
	es_cbor_enc_text(e, "ids");
	es_cbor_enc_array(e, 2);
	es_cbor_enc_uint(e, 1);
	es_cbor_enc_uint(e, 2);
	es_cbor_enc_text(e, "vectors");
	es_cbor_enc_array(e, 2);
	es_cbor_enc_floats(e, (float[]){1, 2, 3, 4}, 4);
	es_cbor_enc_array(e, 4);
	for (int j = 0; j < 4; j++)
		es_cbor_enc_float(e, (float)j);
	for (int i = 0; i < 50000; i++) {
		copy = malloc(e->len);
		memcpy(copy, e->buf, e->len);
		for (int f = 0; f < 1 + (int)(next_rand() % 3); f++)
			copy[next_rand() % e->len] ^=
			    (unsigned char)(1u << (next_rand() % 8));
		if (api_request_parse(&rq, copy, e->len, err) == 0 &&
		    rq.op == API_OP_INSERT && rq.n_ids <= 16) {
			accepted++;
			vectors(&rq, 4, out);
		}
		api_request_fini(&rq);
		free(copy);
	}
	print_message("random and mutated inputs: %d of 70000 accepted\n",
		      accepted);
	enc_free(e);
}

static void test_err_names(void **state)
{
	assert_string_equal(api_err_name(API_E_BAD_REQUEST), "bad_request");
	assert_string_equal(api_err_name(API_E_BAD_VALUE), "bad_value");
	assert_string_equal(api_err_name(API_E_DIM), "dim_mismatch");
	assert_string_equal(api_err_name(API_E_UNKNOWN_OP), "unknown_op");
	assert_string_equal(api_err_name(API_E_TOO_LARGE), "too_large");
	assert_null(api_err_name(-1));
	assert_true(es_name_valid("a"));
	assert_true(es_name_valid("abc_def-0123456789"));
	assert_false(es_name_valid("a b"));
	assert_false(es_name_valid("a/b"));
	assert_false(es_name_valid(".."));
	assert_false(es_name_valid(""));
	assert_false(es_name_valid("Abc"));
	char n[ES_NAME_MAX + 2];
	memset(n, 'x', sizeof(n) - 1);
	n[ES_NAME_MAX] = 0;
	assert_true(es_name_valid(n)); /* 64 */
	n[ES_NAME_MAX] = 'x';
	n[ES_NAME_MAX + 1] = 0;
	assert_false(es_name_valid(n)); /* 65 */
}

/* The shared codec's codes become the API's, which clients see. */
static void test_cbor_codes(void **state)
{
	assert_int_equal(api_cbor_err(ES_E_CBOR_MALFORMED), API_E_BAD_REQUEST);
	assert_int_equal(api_cbor_err(ES_E_CBOR_SCHEMA), API_E_BAD_REQUEST);
	assert_int_equal(api_cbor_err(ES_E_CBOR_VALUE), API_E_BAD_VALUE);
	assert_int_equal(api_cbor_err(ES_E_CBOR_COUNT), API_E_DIM);
	assert_int_equal(api_cbor_err(API_E_TOO_LARGE), API_E_TOO_LARGE);
	assert_int_equal(api_cbor_err(-ENOMEM), -ENOMEM);
	assert_int_equal(api_cbor_err(0), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_enc_uint),
	    cmocka_unit_test(test_enc_int),
	    cmocka_unit_test(test_enc_structure),
	    cmocka_unit_test(test_libcbor_request),
	    cmocka_unit_test(test_every_op),
	    cmocka_unit_test(test_vector_forms),
	    cmocka_unit_test(test_envelope_errors),
	    cmocka_unit_test(test_field_errors),
	    cmocka_unit_test(test_limits),
	    cmocka_unit_test(test_vector_errors),
	    cmocka_unit_test(test_huge_lengths),
	    cmocka_unit_test(test_deep_nesting),
	    cmocka_unit_test(test_truncation),
	    cmocka_unit_test(test_random_inputs),
	    cmocka_unit_test(test_err_names),
	    cmocka_unit_test(test_cbor_codes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
