/*
 * The local API's request schema (agent/PROTOCOL.md): the ops, the fields
 * each one takes, and the readers of ids and vectors. A request is walked
 * once to find its fields (api_map_index); then v and op are checked and
 * only the fields of that op are decoded, so fields an op does not use are
 * ignored like unknown ones. Vectors stay raw spans until the server knows
 * the collection's dim, then decode straight into one float array.
 */
#include <errno.h>
#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api_codec.h"

enum field {
	F_V,
	F_OP,
	F_NAME,
	F_COLLECTION,
	F_DIM,
	F_METRIC,
	F_SYNC,
	F_IDS,
	F_VECTORS,
	F_ID,
	F_VECTOR,
	F_K,
	F_L,
	F_DEVICE,
	F_APPROVE,
	F_COUNT,
};

static const char *const field_names[F_COUNT] = {
    "v",       "op", "name",   "collection", "dim", "metric", "sync",	 "ids",
    "vectors", "id", "vector", "k",	     "L",   "device", "approve",
};

#define BIT(f) (1u << (f))
/* Ops on a collection read "name" or "collection" (synonyms). */
#define COLL BIT(F_COLLECTION)

static const struct {
	const char *name;
	unsigned required;
	unsigned optional;
} ops[API_OP_COUNT] = {
    [API_OP_PING] = {"ping", 0, 0},
    [API_OP_COLL_CREATE] = {"collection.create", COLL | BIT(F_DIM),
			    BIT(F_METRIC) | BIT(F_SYNC)},
    [API_OP_COLL_LIST] = {"collection.list", 0, 0},
    [API_OP_COLL_INFO] = {"collection.info", COLL, 0},
    [API_OP_COLL_DROP] = {"collection.drop", COLL, 0},
    [API_OP_INSERT] = {"insert", COLL | BIT(F_IDS) | BIT(F_VECTORS), 0},
    [API_OP_DELETE] = {"delete", COLL | BIT(F_IDS), 0},
    [API_OP_GET] = {"get", COLL | BIT(F_ID), 0},
    [API_OP_SEARCH] = {"search", COLL | BIT(F_VECTOR), BIT(F_K) | BIT(F_L)},
    [API_OP_FLUSH] = {"flush", COLL, 0},
    [API_OP_STATS] = {"stats", 0, 0},
    [API_OP_SEGMENTS] = {"segments", COLL, 0},
    [API_OP_PEERS] = {"peers", 0, 0},
    [API_OP_SYNC_NOW] = {"sync-now", 0, 0},
    [API_OP_PEERS_APPROVE] = {"peers.approve", BIT(F_DEVICE), BIT(F_APPROVE)},
};

const char *api_op_name(enum api_op op)
{
	return (unsigned)op < API_OP_COUNT ? ops[op].name : NULL;
}

/* ---- vectors ---------------------------------------------------------- */

/* Writes "vector" or "vector 3" (idx >= 0) for messages. */
static const char *vec_label(char *buf, size_t size, const char *what, long idx)
{
	if (idx < 0)
		return what;
	snprintf(buf, size, "%s %ld", what, idx);
	return buf;
}

static int dim_fail(struct api_reader *r, const char *label, uint64_t got,
		    uint32_t dim, const char *coll)
{
	if (coll)
		return api_fail(r, API_E_DIM,
				"%s has %" PRIu64 " values, collection '%s' "
				"has dim %" PRIu32,
				label, got, coll, dim);
	return api_fail(r, API_E_DIM,
			"%s has %" PRIu64 " values, %" PRIu32 " expected",
			label, got, dim);
}

/* Refuses NaN and infinities in v[0..n), naming the first one. */
static int check_finite(struct api_reader *r, const float *v, size_t n,
			uint32_t dim, const char *what, long idx, int batch)
{
	uint32_t bits, bad = 0;
	char lb[48];

	/* A branch-free pass first (the compiler vectorizes it): exponent
	 * all ones is NaN or infinity. */
	for (size_t i = 0; i < n; i++) {
		memcpy(&bits, &v[i], sizeof(bits));
		bad |= (bits & 0x7f800000u) == 0x7f800000u;
	}
	for (size_t i = 0; bad && i < n; i++) {
		if (isfinite(v[i]))
			continue;
		if (batch)
			idx = (long)(i / dim);
		return api_fail(r, API_E_BAD_VALUE, "%s value %zu is %s",
				vec_label(lb, sizeof(lb), what, idx), i % dim,
				isnan(v[i]) ? "NaN" : "infinite");
	}
	return 0;
}

/* One number of a vector given as an array. */
static int vec_number(struct api_reader *r, float *out, const char *label,
		      uint32_t i)
{
	struct api_item it;
	double v;
	int rc = api_next(r, &it);

	if (rc)
		return rc;
	switch (it.type) {
	case API_UINT:
		v = (double)it.u;
		break;
	case API_NEGINT:
		v = -1.0 - (double)it.u;
		break;
	case API_FLOAT:
		v = it.f;
		break;
	default:
		return api_fail(r, API_E_BAD_REQUEST,
				"%s value %" PRIu32 " must be a number, not %s",
				label, i, api_type_name(it.type));
	}
	if (isnan(v))
		return api_fail(r, API_E_BAD_VALUE,
				"%s value %" PRIu32 " is NaN", label, i);
	if (!(fabs(v) <= FLT_MAX))
		return api_fail(r, API_E_BAD_VALUE,
				"%s value %" PRIu32 " is %s", label, i,
				isinf(v) ? "infinite" : "beyond float32 range");
	*out = (float)v;
	return 0;
}

static int read_vector(struct api_reader *r, uint32_t dim, float *out,
		       const char *what, long idx, const char *coll)
{
	struct api_item it;
	struct api_seq s = {0};
	char lb[48];
	const char *label;
	uint32_t i = 0;
	int rc = api_next(r, &it);

	if (rc)
		return rc;
	label = vec_label(lb, sizeof(lb), what, idx);
	if (it.type == API_BYTES) {
		if (it.u % sizeof(float))
			return api_fail(r, API_E_DIM,
					"%s has %" PRIu64 " bytes, not a "
					"whole number of float32",
					label, it.u);
		if (it.u / sizeof(float) != dim)
			return dim_fail(r, label, it.u / sizeof(float), dim,
					coll);
		memcpy(out, it.data, (size_t)dim * sizeof(float));
		return check_finite(r, out, dim, dim, what, idx, 0);
	}
	if (it.type != API_ARRAY)
		return api_fail(r, API_E_BAD_REQUEST,
				"%s must be a byte string of float32 or an "
				"array of numbers, not %s",
				label, api_type_name(it.type));
	if (!it.indef && it.u != dim)
		return dim_fail(r, label, it.u, dim, coll);
	s.left = it.u;
	s.indef = it.indef;
	while ((rc = api_seq_next(r, &s)) > 0) {
		if (i == dim)
			return api_fail(r, API_E_DIM,
					"%s has more than %" PRIu32 " values",
					label, dim);
		rc = vec_number(r, &out[i], label, i);
		if (rc)
			return rc;
		i++;
	}
	if (rc == 0 && i != dim)
		return dim_fail(r, label, i, dim, coll);
	return rc;
}

int api_get_vector(struct api_reader *r, uint32_t dim, float *out,
		   const char *what, const char *coll)
{
	return read_vector(r, dim, out, what, -1, coll);
}

int api_get_vectors(struct api_reader *r, size_t n, uint32_t dim, float *out,
		    const char *coll)
{
	struct api_item it;
	struct api_seq s = {0};
	uint64_t want = (uint64_t)n * dim * sizeof(float);
	size_t i = 0;
	int rc = api_next(r, &it);

	if (rc)
		return rc;
	if (it.type == API_BYTES) {
		if (it.u != want)
			return api_fail(r, API_E_DIM,
					"vectors has %" PRIu64 " bytes for %zu "
					"ids; collection '%s' has dim %" PRIu32
					", so %" PRIu64 " bytes (n x dim x 4) "
					"were expected",
					it.u, n, coll ? coll : "?", dim, want);
		memcpy(out, it.data, (size_t)want);
		return check_finite(r, out, n * dim, dim, "vector", -1, 1);
	}
	if (it.type != API_ARRAY)
		return api_fail(r, API_E_BAD_REQUEST,
				"vectors must be a byte string of float32 or "
				"an array of vectors, not %s",
				api_type_name(it.type));
	if (!it.indef && it.u != n)
		return api_fail(r, API_E_BAD_REQUEST,
				"vectors has %" PRIu64 " entries for %zu ids",
				it.u, n);
	s.left = it.u;
	s.indef = it.indef;
	while ((rc = api_seq_next(r, &s)) > 0) {
		if (i == n)
			return api_fail(r, API_E_BAD_REQUEST,
					"vectors has more entries than the "
					"%zu ids",
					n);
		rc =
		    read_vector(r, dim, out + i * dim, "vector", (long)i, coll);
		if (rc)
			return rc;
		i++;
	}
	if (rc == 0 && i != n)
		return api_fail(r, API_E_BAD_REQUEST,
				"vectors has %zu entries for %zu ids", i, n);
	return rc;
}

/* ---- ids -------------------------------------------------------------- */

int api_get_ids(struct api_reader *r, const char *what, size_t max,
		uint64_t **idsp, size_t *np)
{
	struct api_seq s = {0};
	uint64_t *ids = NULL, *grown;
	size_t n = 0, cap;
	int rc = api_array_begin(r, &s, what);

	*idsp = NULL;
	*np = 0;
	if (rc)
		return rc;
	if (!s.indef && s.left > max)
		return api_fail(r, API_E_TOO_LARGE,
				"%s has %" PRIu64 " entries, at most %zu per "
				"request",
				what, s.left, max);
	/* Each entry takes a byte at least: never trust the count more. */
	if (!s.indef && s.left > (uint64_t)(r->end - r->p))
		return api_fail(r, API_E_BAD_REQUEST,
				"truncated CBOR: %s declares %" PRIu64
				" entries but the message ends first",
				what, s.left);
	cap = s.indef ? 64 : (size_t)s.left;
	while ((rc = api_seq_next(r, &s)) > 0) {
		struct api_item it;

		if (n == max) {
			rc =
			    api_fail(r, API_E_TOO_LARGE,
				     "%s has more than %zu entries", what, max);
			break;
		}
		if (!ids || n == cap) {
			cap = ids ? cap * 2 : cap;
			grown = realloc(ids, cap * sizeof(*ids));
			if (!grown) {
				rc = api_fail(r, -ENOMEM, "out of memory");
				break;
			}
			ids = grown;
		}
		rc = api_next(r, &it);
		if (rc)
			break;
		if (it.type != API_UINT) {
			rc = api_fail(r,
				      it.type == API_NEGINT ? API_E_BAD_VALUE
							    : API_E_BAD_REQUEST,
				      "%s[%zu] must be an unsigned integer, "
				      "not %s",
				      what, n, api_type_name(it.type));
			break;
		}
		ids[n++] = it.u;
	}
	if (rc) {
		free(ids);
		return rc;
	}
	*idsp = ids;
	*np = n;
	return 0;
}

/* ---- requests --------------------------------------------------------- */

/* Copies text for a message: at most size - 1 bytes, '?' if unprintable. */
static void printable(char *dst, size_t size, const unsigned char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n && i + 1 < size; i++)
		dst[i] = s[i] >= 0x20 && s[i] < 0x7f ? (char)s[i] : '?';
	dst[i] = '\0';
}

static int parse_op(struct api_reader *r, const struct api_span *sp,
		    enum api_op *op)
{
	struct api_reader sub;
	struct api_item it;
	char shown[40];
	int rc;

	api_reader_span(&sub, r, sp);
	rc = api_next(&sub, &it);
	if (rc)
		return rc;
	if (it.type != API_TEXT)
		return api_fail(r, API_E_BAD_REQUEST,
				"field 'op' must be a text string, not %s",
				api_type_name(it.type));
	for (int i = 0; i < API_OP_COUNT; i++) {
		if (strlen(ops[i].name) == it.u &&
		    !memcmp(ops[i].name, it.data, it.u)) {
			*op = (enum api_op)i;
			return 0;
		}
	}
	printable(shown, sizeof(shown), it.data, it.u);
	return api_fail(r, API_E_UNKNOWN_OP, "unknown op '%s%s'", shown,
			it.u >= sizeof(shown) ? "..." : "");
}

static int parse_name(struct api_reader *r, const struct api_span *sp,
		      struct api_request *rq)
{
	int by_name = rq->op == API_OP_COLL_CREATE ||
		      rq->op == API_OP_COLL_INFO || rq->op == API_OP_COLL_DROP;
	enum field f = by_name ? F_NAME : F_COLLECTION;
	struct api_reader sub;
	char what[32], shown[API_NAME_MAX + 1];
	int rc;

	if (!sp[f].p)
		f = by_name ? F_COLLECTION : F_NAME;
	if (!sp[f].p)
		return api_fail(r, API_E_BAD_REQUEST, "missing field '%s'",
				by_name ? "name" : "collection");
	snprintf(what, sizeof(what), "field '%s'", field_names[f]);
	api_reader_span(&sub, r, &sp[f]);
	rc = api_get_text(&sub, what, rq->name, sizeof(rq->name));
	if (rc)
		return rc;
	if (api_name_valid(rq->name))
		return 0;
	printable(shown, sizeof(shown), (const unsigned char *)rq->name,
		  strlen(rq->name));
	return api_fail(r, API_E_BAD_VALUE,
			"collection name '%s' is not 1 to %d characters of "
			"a-z, 0-9, _ and -",
			shown, API_NAME_MAX);
}

/* A device id: 1..64 of ASCII 0x21..0x7e; the message names the fault. */
static int parse_device(struct api_reader *r, struct api_reader *sub,
			struct api_request *rq)
{
	char shown[API_DEVICE_MAX + 1];
	size_t n;
	int rc =
	    api_get_text(sub, "field 'device'", rq->device, sizeof(rq->device));

	if (rc)
		return rc;
	n = strlen(rq->device);
	if (n == 0)
		return api_fail(r, API_E_BAD_VALUE,
				"device id is empty: it must be 1 to %d "
				"printable ASCII characters without spaces",
				API_DEVICE_MAX);
	printable(shown, sizeof(shown), (const unsigned char *)rq->device, n);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)rq->device[i];

		if (c == ' ')
			return api_fail(r, API_E_BAD_VALUE,
					"device id '%s' contains a space "
					"(at %zu)",
					shown, i);
		if (c < 0x21 || c > 0x7e)
			return api_fail(
			    r, API_E_BAD_VALUE,
			    "device id '%s' contains a byte that is "
			    "not printable ASCII (0x%02x at %zu)",
			    shown, c, i);
	}
	return 0;
}

static int one_of(const char *s, const char *const *set)
{
	for (; *set; set++)
		if (!strcmp(s, *set))
			return 1;
	return 0;
}

static int parse_field(struct api_reader *r, enum field f,
		       const struct api_span *sp, struct api_request *rq)
{
	static const char *const metrics[] = {"l2", "ip", "cosine", NULL};
	static const char *const syncs[] = {"none", "upload", "download",
					    "both", NULL};
	struct api_reader sub;
	char what[32];
	uint64_t v = 0;
	int rc = 0;

	snprintf(what, sizeof(what), "field '%s'", field_names[f]);
	api_reader_span(&sub, r, sp);
	switch (f) {
	case F_DIM:
		rc = api_get_uint(&sub, what, &v);
		if (rc == 0 && (v < 1 || v > API_MAX_DIM))
			return api_fail(r, API_E_BAD_VALUE,
					"dim is %" PRIu64
					", it must be 1 to %d",
					v, API_MAX_DIM);
		rq->dim = (uint32_t)v;
		return rc;
	case F_METRIC:
		rc = api_get_text(&sub, what, rq->metric, sizeof(rq->metric));
		if (rc == API_E_BAD_VALUE ||
		    (rc == 0 && !one_of(rq->metric, metrics)))
			return api_fail(r, API_E_BAD_VALUE,
					"metric must be one of l2, ip, cosine");
		return rc;
	case F_SYNC:
		rc = api_get_text(&sub, what, rq->sync, sizeof(rq->sync));
		if (rc == API_E_BAD_VALUE ||
		    (rc == 0 && !one_of(rq->sync, syncs)))
			return api_fail(r, API_E_BAD_VALUE,
					"sync must be one of none, upload, "
					"download, both");
		return rc;
	case F_IDS:
		return api_get_ids(&sub, "ids", API_MAX_BATCH, &rq->ids,
				   &rq->n_ids);
	case F_ID:
		return api_get_uint(&sub, what, &rq->id);
	case F_K:
		rc = api_get_uint(&sub, what, &v);
		if (rc == 0 && v == 0)
			return api_fail(r, API_E_BAD_VALUE,
					"k must be at least 1");
		if (rc == 0 && v > API_MAX_K)
			return api_fail(r, API_E_TOO_LARGE,
					"k is %" PRIu64 ", at most %d", v,
					API_MAX_K);
		rq->k = (uint32_t)v;
		return rc;
	case F_L:
		rc = api_get_uint(&sub, what, &v);
		if (rc == 0 && v > API_MAX_L)
			return api_fail(r, API_E_TOO_LARGE,
					"L is %" PRIu64 ", at most %d", v,
					API_MAX_L);
		rq->L = (uint32_t)v;
		return rc;
	case F_VECTORS:
	case F_VECTOR:
		rq->vectors = *sp; /* decoded once dim is known */
		return 0;
	case F_DEVICE:
		return parse_device(r, &sub, rq);
	case F_APPROVE:
		return api_get_bool(&sub, what, &rq->approve);
	default:
		return 0;
	}
}

int api_request_parse(struct api_request *rq, const void *buf, size_t len,
		      char *err)
{
	struct api_reader *r = &rq->reader;
	struct api_span sp[F_COUNT];
	struct api_reader sub;
	unsigned want;
	uint64_t v;
	int rc;

	memset(rq, 0, sizeof(*rq));
	rq->op = API_OP_COUNT;
	rq->k = 10;
	rq->approve = 1;
	api_reader_init(r, buf, len, err);
	if (len == 0)
		return api_fail(r, API_E_BAD_REQUEST, "empty request");
	rc = api_map_index(r, field_names, F_COUNT, sp, 0, "request");
	if (rc)
		return rc;
	if (r->p != r->end)
		return api_fail(r, API_E_BAD_REQUEST,
				"%zu trailing bytes after the request map",
				(size_t)(r->end - r->p));
	if (!sp[F_V].p)
		return api_fail(r, API_E_BAD_REQUEST,
				"missing field 'v' (the protocol version, %d)",
				API_PROTOCOL);
	api_reader_span(&sub, r, &sp[F_V]);
	rc = api_get_uint(&sub, "field 'v'", &v);
	if (rc)
		return rc;
	if (v != API_PROTOCOL)
		return api_fail(r, API_E_BAD_REQUEST,
				"protocol version %" PRIu64 " is not "
				"supported; this agent speaks version %d",
				v, API_PROTOCOL);
	if (!sp[F_OP].p)
		return api_fail(r, API_E_BAD_REQUEST, "missing field 'op'");
	rc = parse_op(r, &sp[F_OP], &rq->op);
	if (rc)
		return rc;
	want = ops[rq->op].required;
	if (want & COLL) {
		rc = parse_name(r, sp, rq);
		if (rc)
			return rc;
	}
	for (int f = F_DIM; f < F_COUNT; f++) {
		if ((want & BIT(f)) && !sp[f].p)
			return api_fail(r, API_E_BAD_REQUEST,
					"missing field '%s'", field_names[f]);
	}
	want |= ops[rq->op].optional;
	for (int f = F_DIM; f < F_COUNT && rc == 0; f++) {
		if ((want & BIT(f)) && sp[f].p)
			rc = parse_field(r, (enum field)f, &sp[f], rq);
	}
	return rc;
}

void api_request_fini(struct api_request *rq)
{
	free(rq->ids);
	rq->ids = NULL;
	rq->n_ids = 0;
}
