/*
 * The local API's request schema (agent/PROTOCOL.md): the ops, the fields
 * each one takes, and the readers of ids and vectors. A request is walked
 * once to find its fields (es_cbor_map_index); then v and op are checked and
 * only the fields of that op are decoded, so fields an op does not use are
 * ignored like unknown ones. Vectors stay raw spans until the server knows
 * the collection's dim, then decode straight into one float array.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api_codec.h"
#include "edgesync/sync.h"

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
    [API_OP_VERIFY] = {"verify", COLL | BIT(F_ID), 0},
    [API_OP_MANIFEST_VERIFY] = {"manifest.verify", 0, 0},
};

const char *api_op_name(enum api_op op)
{
	return (unsigned)op < API_OP_COUNT ? ops[op].name : NULL;
}

/* ---- codes ------------------------------------------------------------ */

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

int api_cbor_err(int err)
{
	switch (err) {
	case ES_E_CBOR_MALFORMED:
	case ES_E_CBOR_SCHEMA:
		return API_E_BAD_REQUEST;
	case ES_E_CBOR_VALUE:
		return API_E_BAD_VALUE;
	case ES_E_CBOR_COUNT:
		return API_E_DIM;
	default:
		return err;
	}
}

/* ---- vectors ---------------------------------------------------------- */

/*
 * One vector of dim floats, what naming it ("vector", "vector 3"); a
 * wrong count of values is named against the collection's dim.
 */
static int read_vector(struct es_cbor_reader *r, uint32_t dim, float *out,
		       const char *what, const char *coll)
{
	uint64_t got;
	int rc = es_cbor_get_floats(r, what, out, dim, &got);

	if (rc == ES_E_CBOR_COUNT && coll && got != UINT64_MAX)
		return es_cbor_fail(r, API_E_DIM,
				    "%s has %" PRIu64 " values, collection "
				    "'%s' has dim %" PRIu32,
				    what, got, coll, dim);
	return rc;
}

int api_get_vector(struct es_cbor_reader *r, uint32_t dim, float *out,
		   const char *what, const char *coll)
{
	return api_cbor_err(read_vector(r, dim, out, what, coll));
}

/* A batch as one byte string of n x dim float32. */
static int read_batch_bytes(struct es_cbor_reader *r,
			    const struct es_cbor_item *it, size_t n,
			    uint32_t dim, float *out, const char *coll)
{
	uint64_t want = (uint64_t)n * dim * sizeof(float);
	size_t bad;

	if (it->u != want)
		return es_cbor_fail(r, API_E_DIM,
				    "vectors has %" PRIu64 " bytes for %zu "
				    "ids; collection '%s' has dim %" PRIu32
				    ", so %" PRIu64 " bytes (n x dim x 4) "
				    "were expected",
				    it->u, n, coll ? coll : "?", dim, want);
	memcpy(out, it->data, (size_t)want);
	bad = es_cbor_floats_nonfinite(out, n * dim);
	if (bad == n * dim)
		return 0;
	return es_cbor_fail(r, API_E_BAD_VALUE, "vector %zu value %zu is %s",
			    bad / dim, bad % dim,
			    isnan(out[bad]) ? "NaN" : "infinite");
}

static int read_vectors(struct es_cbor_reader *r, size_t n, uint32_t dim,
			float *out, const char *coll)
{
	struct es_cbor_item it;
	struct es_cbor_seq s = {0};
	char label[48];
	size_t i = 0;
	int rc = es_cbor_next(r, &it);

	if (rc)
		return rc;
	if (it.type == ES_CBOR_BYTES)
		return read_batch_bytes(r, &it, n, dim, out, coll);
	if (it.type != ES_CBOR_ARRAY)
		return es_cbor_fail(r, API_E_BAD_REQUEST,
				    "vectors must be a byte string of float32 "
				    "or an array of vectors, not %s",
				    es_cbor_type_name(it.type));
	if (!it.indef && it.u != n)
		return es_cbor_fail(r, API_E_BAD_REQUEST,
				    "vectors has %" PRIu64 " entries for %zu "
				    "ids",
				    it.u, n);
	s.left = it.u;
	s.indef = it.indef;
	while ((rc = es_cbor_seq_next(r, &s)) > 0) {
		if (i == n)
			return es_cbor_fail(r, API_E_BAD_REQUEST,
					    "vectors has more entries than the "
					    "%zu ids",
					    n);
		snprintf(label, sizeof(label), "vector %zu", i);
		rc = read_vector(r, dim, out + i * dim, label, coll);
		if (rc)
			return rc;
		i++;
	}
	if (rc == 0 && i != n)
		return es_cbor_fail(r, API_E_BAD_REQUEST,
				    "vectors has %zu entries for %zu ids", i,
				    n);
	return rc;
}

int api_get_vectors(struct es_cbor_reader *r, size_t n, uint32_t dim,
		    float *out, const char *coll)
{
	return api_cbor_err(read_vectors(r, n, dim, out, coll));
}

/* ---- ids -------------------------------------------------------------- */

/*
 * An array of at most max unsigned integers into *idsp (malloc'ed; free()
 * it, NULL when empty).
 */
static int get_ids(struct es_cbor_reader *r, const char *what, size_t max,
		   uint64_t **idsp, size_t *np)
{
	struct es_cbor_seq s = {0};
	uint64_t *ids = NULL, *grown;
	size_t n = 0, cap;
	int rc = es_cbor_array_begin(r, &s, what);

	*idsp = NULL;
	*np = 0;
	if (rc)
		return rc;
	if (!s.indef && s.left > max)
		return es_cbor_fail(r, API_E_TOO_LARGE,
				    "%s has %" PRIu64
				    " entries, at most %zu per "
				    "request",
				    what, s.left, max);
	/* Each entry takes a byte at least: never trust the count more. */
	if (!s.indef && s.left > (uint64_t)(r->end - r->p))
		return es_cbor_fail(r, API_E_BAD_REQUEST,
				    "truncated CBOR: %s declares %" PRIu64
				    " entries but the message ends first",
				    what, s.left);
	cap = s.indef ? 64 : (size_t)s.left;
	while ((rc = es_cbor_seq_next(r, &s)) > 0) {
		struct es_cbor_item it;

		if (n == max) {
			rc = es_cbor_fail(r, API_E_TOO_LARGE,
					  "%s has more than %zu entries", what,
					  max);
			break;
		}
		if (!ids || n == cap) {
			cap = ids ? cap * 2 : cap;
			grown = realloc(ids, cap * sizeof(*ids));
			if (!grown) {
				rc = es_cbor_fail(r, -ENOMEM, "out of memory");
				break;
			}
			ids = grown;
		}
		rc = es_cbor_next(r, &it);
		if (rc)
			break;
		if (it.type != ES_CBOR_UINT) {
			rc = es_cbor_fail(
			    r,
			    it.type == ES_CBOR_NEGINT ? API_E_BAD_VALUE
						      : API_E_BAD_REQUEST,
			    "%s[%zu] must be an unsigned integer, "
			    "not %s",
			    what, n, es_cbor_type_name(it.type));
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

static int parse_op(struct es_cbor_reader *r, const struct es_cbor_span *sp,
		    enum api_op *op)
{
	struct es_cbor_reader sub;
	struct es_cbor_item it;
	char shown[40];
	int rc;

	es_cbor_reader_span(&sub, r, sp);
	rc = es_cbor_next(&sub, &it);
	if (rc)
		return rc;
	if (it.type != ES_CBOR_TEXT)
		return es_cbor_fail(r, API_E_BAD_REQUEST,
				    "field 'op' must be a text string, not %s",
				    es_cbor_type_name(it.type));
	for (int i = 0; i < API_OP_COUNT; i++) {
		if (strlen(ops[i].name) == it.u &&
		    !memcmp(ops[i].name, it.data, it.u)) {
			*op = (enum api_op)i;
			return 0;
		}
	}
	printable(shown, sizeof(shown), it.data, it.u);
	return es_cbor_fail(r, API_E_UNKNOWN_OP, "unknown op '%s%s'", shown,
			    it.u >= sizeof(shown) ? "..." : "");
}

static int parse_name(struct es_cbor_reader *r, const struct es_cbor_span *sp,
		      struct api_request *rq)
{
	int by_name = rq->op == API_OP_COLL_CREATE ||
		      rq->op == API_OP_COLL_INFO || rq->op == API_OP_COLL_DROP;
	enum field f = by_name ? F_NAME : F_COLLECTION;
	struct es_cbor_reader sub;
	char what[32], shown[API_NAME_MAX + 1];
	int rc;

	if (!sp[f].p)
		f = by_name ? F_COLLECTION : F_NAME;
	if (!sp[f].p)
		return es_cbor_fail(r, API_E_BAD_REQUEST, "missing field '%s'",
				    by_name ? "name" : "collection");
	snprintf(what, sizeof(what), "field '%s'", field_names[f]);
	es_cbor_reader_span(&sub, r, &sp[f]);
	rc = es_cbor_get_text(&sub, what, rq->name, sizeof(rq->name));
	if (rc)
		return rc;
	if (es_name_valid(rq->name))
		return 0;
	printable(shown, sizeof(shown), (const unsigned char *)rq->name,
		  strlen(rq->name));
	return es_cbor_fail(r, API_E_BAD_VALUE,
			    "collection name '%s' is not 1 to %d characters of "
			    "a-z, 0-9, _ and -",
			    shown, API_NAME_MAX);
}

/* A device id (es_sync_device_check); the message names the fault. */
static int parse_device(struct es_cbor_reader *r, struct es_cbor_reader *sub,
			struct api_request *rq)
{
	char why[160];
	int rc = es_cbor_get_text(sub, "field 'device'", rq->device,
				  sizeof(rq->device));

	if (rc)
		return rc;
	if (es_sync_device_check(rq->device, why, sizeof(why)))
		return es_cbor_fail(r, API_E_BAD_VALUE, "%s", why);
	return 0;
}

static int one_of(const char *s, const char *const *set)
{
	for (; *set; set++)
		if (!strcmp(s, *set))
			return 1;
	return 0;
}

static int parse_field(struct es_cbor_reader *r, enum field f,
		       const struct es_cbor_span *sp, struct api_request *rq)
{
	static const char *const metrics[] = {"l2", "ip", "cosine", NULL};
	static const char *const syncs[] = {"none", "upload", "download",
					    "both", NULL};
	struct es_cbor_reader sub;
	char what[32];
	uint64_t v = 0;
	int rc = 0;

	snprintf(what, sizeof(what), "field '%s'", field_names[f]);
	es_cbor_reader_span(&sub, r, sp);
	switch (f) {
	case F_DIM:
		rc = es_cbor_get_uint(&sub, what, &v);
		if (rc == 0 && (v < 1 || v > API_MAX_DIM))
			return es_cbor_fail(r, API_E_BAD_VALUE,
					    "dim is %" PRIu64
					    ", it must be 1 to %d",
					    v, API_MAX_DIM);
		rq->dim = (uint32_t)v;
		return rc;
	case F_METRIC:
		rc = es_cbor_get_text(&sub, what, rq->metric,
				      sizeof(rq->metric));
		if (rc == ES_E_CBOR_VALUE ||
		    (rc == 0 && !one_of(rq->metric, metrics)))
			return es_cbor_fail(
			    r, API_E_BAD_VALUE,
			    "metric must be one of l2, ip, cosine");
		return rc;
	case F_SYNC:
		rc = es_cbor_get_text(&sub, what, rq->sync, sizeof(rq->sync));
		if (rc == ES_E_CBOR_VALUE ||
		    (rc == 0 && !one_of(rq->sync, syncs)))
			return es_cbor_fail(r, API_E_BAD_VALUE,
					    "sync must be one of none, upload, "
					    "download, both");
		return rc;
	case F_IDS:
		return get_ids(&sub, "ids", API_MAX_BATCH, &rq->ids,
			       &rq->n_ids);
	case F_ID:
		return es_cbor_get_uint(&sub, what, &rq->id);
	case F_K:
		rc = es_cbor_get_uint(&sub, what, &v);
		if (rc == 0 && v == 0)
			return es_cbor_fail(r, API_E_BAD_VALUE,
					    "k must be at least 1");
		if (rc == 0 && v > API_MAX_K)
			return es_cbor_fail(r, API_E_TOO_LARGE,
					    "k is %" PRIu64 ", at most %d", v,
					    API_MAX_K);
		rq->k = (uint32_t)v;
		return rc;
	case F_L:
		rc = es_cbor_get_uint(&sub, what, &v);
		if (rc == 0 && v > API_MAX_L)
			return es_cbor_fail(r, API_E_TOO_LARGE,
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
		return es_cbor_get_bool(&sub, what, &rq->approve);
	default:
		return 0;
	}
}

static int parse(struct api_request *rq, const void *buf, size_t len, char *err)
{
	struct es_cbor_reader *r = &rq->reader;
	struct es_cbor_span sp[F_COUNT];
	struct es_cbor_reader sub;
	unsigned want;
	uint64_t v;
	int rc;

	memset(rq, 0, sizeof(*rq));
	rq->op = API_OP_COUNT;
	rq->k = 10;
	rq->approve = 1;
	es_cbor_reader_init(r, buf, len, err);
	if (len == 0)
		return es_cbor_fail(r, API_E_BAD_REQUEST, "empty request");
	rc = es_cbor_map_index(r, field_names, F_COUNT, sp, 0, "request");
	if (rc)
		return rc;
	if (r->p != r->end)
		return es_cbor_fail(r, API_E_BAD_REQUEST,
				    "%zu trailing bytes after the request map",
				    (size_t)(r->end - r->p));
	if (!sp[F_V].p)
		return es_cbor_fail(
		    r, API_E_BAD_REQUEST,
		    "missing field 'v' (the protocol version, %d)",
		    API_PROTOCOL);
	es_cbor_reader_span(&sub, r, &sp[F_V]);
	rc = es_cbor_get_uint(&sub, "field 'v'", &v);
	if (rc)
		return rc;
	if (v != API_PROTOCOL)
		return es_cbor_fail(r, API_E_BAD_REQUEST,
				    "protocol version %" PRIu64 " is not "
				    "supported; this agent speaks version %d",
				    v, API_PROTOCOL);
	if (!sp[F_OP].p)
		return es_cbor_fail(r, API_E_BAD_REQUEST, "missing field 'op'");
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
			return es_cbor_fail(r, API_E_BAD_REQUEST,
					    "missing field '%s'",
					    field_names[f]);
	}
	want |= ops[rq->op].optional;
	for (int f = F_DIM; f < F_COUNT && rc == 0; f++) {
		if ((want & BIT(f)) && sp[f].p)
			rc = parse_field(r, (enum field)f, &sp[f], rq);
	}
	return rc;
}

int api_request_parse(struct api_request *rq, const void *buf, size_t len,
		      char *err)
{
	return api_cbor_err(parse(rq, buf, len, err));
}

void api_request_fini(struct api_request *rq)
{
	free(rq->ids);
	rq->ids = NULL;
	rq->n_ids = 0;
}
