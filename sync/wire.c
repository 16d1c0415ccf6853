/*
 * The protocol's vocabulary: message types, error codes, validators and
 * the decoders of the structures that several messages share
 * (collections, segments, tombstones, clock runs). See wire.h for what
 * they promise.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edgesync/distance.h"
#include "edgesync/name.h"
#include "edgesync/ndvs.h"
#include "wire.h"

static const char *const type_names[SYNC_T_COUNT] = {
    [SYNC_T_PING] = "ping",
    [SYNC_T_CHALLENGE] = "challenge",
    [SYNC_T_HELLO] = "hello",
    [SYNC_T_COLLECTIONS] = "collections",
    [SYNC_T_BEGIN] = "begin",
    [SYNC_T_MORE_TOMBSTONES] = "more_tombstones",
    [SYNC_T_MORE_CLOCKS] = "more_clocks",
    [SYNC_T_CHUNK] = "chunk",
    [SYNC_T_COMMIT] = "commit",
    [SYNC_T_CHANGES] = "changes",
    [SYNC_T_TOMBSTONES] = "tombstones",
    [SYNC_T_CLOCKS] = "clocks",
    [SYNC_T_FETCH] = "fetch",
};

const char *sync_type_name(enum sync_type t)
{
	return (unsigned)t < SYNC_T_COUNT ? type_names[t] : NULL;
}

static const char *const code_names[SYNC_C_COUNT] = {
    [SYNC_C_NONE] = "none",
    [SYNC_C_MALFORMED] = "malformed",
    [SYNC_C_INVALID] = "invalid",
    [SYNC_C_VERSION] = "version",
    [SYNC_C_UNKNOWN_TYPE] = "unknown_type",
    [SYNC_C_AUTH] = "auth",
    [SYNC_C_SESSION] = "session",
    [SYNC_C_FORBIDDEN] = "forbidden",
    [SYNC_C_NOT_FOUND] = "not_found",
    [SYNC_C_MISMATCH] = "mismatch",
    [SYNC_C_OFFSET] = "offset",
    [SYNC_C_CHECKSUM] = "checksum",
    [SYNC_C_VERIFY] = "verify",
    [SYNC_C_STATE] = "state",
    [SYNC_C_INTERNAL] = "internal",
};

const char *sync_code_name(enum sync_code c)
{
	return (unsigned)c < SYNC_C_COUNT ? code_names[c] : "none";
}

enum sync_code sync_code_parse(const char *s, size_t n)
{
	for (int c = 1; c < SYNC_C_COUNT; c++)
		if (strlen(code_names[c]) == n && !memcmp(code_names[c], s, n))
			return (enum sync_code)c;
	return SYNC_C_NONE;
}

int sync_code_err(enum sync_code c)
{
	switch (c) {
	case SYNC_C_MALFORMED:
	case SYNC_C_INVALID:
	case SYNC_C_UNKNOWN_TYPE:
	case SYNC_C_STATE:
	case SYNC_C_OFFSET:
		return ES_E_SYNC_PROTOCOL;
	case SYNC_C_VERSION:
		return ES_E_SYNC_VERSION;
	case SYNC_C_AUTH:
	case SYNC_C_SESSION:
	case SYNC_C_FORBIDDEN:
		return ES_E_SYNC_AUTH;
	case SYNC_C_MISMATCH:
		return ES_E_SYNC_MISMATCH;
	case SYNC_C_CHECKSUM:
	case SYNC_C_VERIFY:
		return ES_E_SYNC_CHECKSUM;
	default:
		return ES_E_SYNC_REFUSED;
	}
}

int sync_failf(struct sync_fail *f, enum sync_code code, const char *fmt, ...)
{
	va_list ap;

	f->code = code;
	va_start(ap, fmt);
	vsnprintf(f->msg, sizeof(f->msg), fmt, ap);
	va_end(ap);
	return -1;
}

/* ---- validation ------------------------------------------------------- */

_Static_assert(ES_SYNC_NAME_MAX == ES_NAME_MAX, "one name rule");

int es_sync_device_check(const char *s, char *why, size_t len)
{
	char shown[ES_SYNC_DEVICE_MAX + 1];
	size_t n = strlen(s), i;

	/* The id as a message can show it: at most 64 bytes, printable. */
	for (i = 0; i < n && i < ES_SYNC_DEVICE_MAX; i++)
		shown[i] = s[i] >= 0x20 && s[i] < 0x7f ? s[i] : '?';
	shown[i] = '\0';
	if (n == 0) {
		if (why)
			snprintf(why, len,
				 "device id is empty: it must be 1 to %d "
				 "printable ASCII characters without spaces",
				 ES_SYNC_DEVICE_MAX);
		return -EINVAL;
	}
	if (n > ES_SYNC_DEVICE_MAX) {
		if (why)
			snprintf(why, len,
				 "device id '%.20s...' is %zu characters, at "
				 "most %d",
				 shown, n, ES_SYNC_DEVICE_MAX);
		return -EINVAL;
	}
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c >= 0x21 && c <= 0x7e)
			continue;
		if (why && c == ' ')
			snprintf(why, len,
				 "device id '%s' contains a space (at %zu)",
				 shown, i);
		else if (why)
			snprintf(why, len,
				 "device id '%s' contains a byte that is not "
				 "printable ASCII (0x%02x at %zu)",
				 shown, c, i);
		return -EINVAL;
	}
	return 0;
}

int sync_segment_check(const struct es_sync_segment *seg, uint32_t dim,
		       char *why, size_t size)
{
	uint64_t want;

	if (seg->dim != dim) {
		snprintf(why, size,
			 "segment dim %" PRIu32 " differs from the "
			 "collection's %" PRIu32,
			 seg->dim, dim);
		return -1;
	}
	if (seg->dim < 1 || seg->dim > SYNC_DIM_MAX ||
	    es_ndvs_file_size(seg->dim, seg->count, &want) != 0 ||
	    want != seg->size) {
		snprintf(why, size,
			 "segment size %" PRIu64 " is not that of %" PRIu64
			 " vectors of dim %" PRIu32,
			 seg->size, seg->count, seg->dim);
		return -1;
	}
	if (seg->size > SYNC_SEGMENT_SIZE_MAX) {
		snprintf(why, size,
			 "segment size %" PRIu64 " exceeds the limit of "
			 "%" PRIu64 " bytes",
			 seg->size, (uint64_t)SYNC_SEGMENT_SIZE_MAX);
		return -1;
	}
	return 0;
}

/* ---- field decoders --------------------------------------------------- */

int sync_dec_u32(struct es_cbor_reader *r, const char *what, uint32_t *v)
{
	uint64_t u;
	int rc = es_cbor_get_uint(r, what, &u);

	if (rc)
		return rc;
	if (u > UINT32_MAX)
		return es_cbor_fail(r, ES_E_CBOR_VALUE,
				    "%s is larger than 2^32 - 1", what);
	*v = (uint32_t)u;
	return 0;
}

int sync_dec_hlc(struct es_cbor_reader *r, const char *what, uint64_t *v)
{
	int rc = es_cbor_get_uint(r, what, v);

	if (rc == 0 && *v > SYNC_HLC_MAX)
		rc = es_cbor_fail(r, ES_E_CBOR_VALUE,
				  "%s is a clock above 2^63 - 1", what);
	return rc;
}

int sync_dec_name(struct es_cbor_reader *r, const char *what, char *name)
{
	int rc = es_cbor_get_text(r, what, name, ES_SYNC_NAME_MAX + 1);

	if (rc == 0 && !es_name_valid(name))
		rc = es_cbor_fail(r, ES_E_CBOR_VALUE,
				  "%s '%s' is not a collection name "
				  "([a-z0-9_-]{1,64})",
				  what, name);
	return rc;
}

int sync_dec_device(struct es_cbor_reader *r, const char *what, char *dev)
{
	char why[ES_SYNC_DEVICE_MAX + 128];
	int rc = es_cbor_get_text(r, what, dev, ES_SYNC_DEVICE_MAX + 1);

	if (rc == 0 && es_sync_device_check(dev, why, sizeof(why)) != 0)
		rc = es_cbor_fail(r, ES_E_CBOR_VALUE, "%s: %s", what, why);
	return rc;
}

/* A required field of a map read with es_cbor_map_index. */
static int need(struct es_cbor_reader *r, const struct es_cbor_span *sp,
		const char *field, const char *what)
{
	if (sp->p)
		return 0;
	return es_cbor_fail(r, ES_E_CBOR_SCHEMA, "%s lacks field '%s'", what,
			    field);
}

enum { C_NAME, C_DIM, C_METRIC, C_VERSION, C_COUNT };

int sync_dec_collection(struct es_cbor_reader *r, struct es_sync_collection *c,
			int depth, int with_version)
{
	static const char *const keys[C_COUNT] = {"name", "dim", "metric",
						  "version"};
	struct es_cbor_span sp[C_COUNT];
	struct es_cbor_reader f;
	char metric[16];
	enum es_metric m;
	int rc;

	memset(c, 0, sizeof(*c));
	rc = es_cbor_map_index(r, keys, C_COUNT, sp, depth, "a collection");
	for (int i = 0; rc == 0 && i < C_COUNT; i++) {
		if (i == C_VERSION && !with_version)
			continue;
		rc = need(r, &sp[i], keys[i], "a collection");
	}
	if (rc)
		return rc;
	es_cbor_reader_span(&f, r, &sp[C_NAME]);
	rc = sync_dec_name(&f, "collection name", c->name);
	es_cbor_reader_span(&f, r, &sp[C_DIM]);
	if (rc == 0)
		rc = sync_dec_u32(&f, "collection dim", &c->dim);
	if (rc == 0 && (c->dim < 1 || c->dim > SYNC_DIM_MAX))
		rc = es_cbor_fail(r, ES_E_CBOR_VALUE,
				  "collection dim %" PRIu32 " is not in 1..%u",
				  c->dim, SYNC_DIM_MAX);
	es_cbor_reader_span(&f, r, &sp[C_METRIC]);
	if (rc == 0)
		rc = es_cbor_get_text(&f, "collection metric", metric,
				      sizeof(metric));
	if (rc == 0 && es_metric_parse(metric, &m) != 0)
		rc = es_cbor_fail(r, ES_E_CBOR_VALUE,
				  "collection metric '%s' is not l2, ip or "
				  "cosine",
				  metric);
	c->metric = (uint32_t)m;
	if (rc == 0 && with_version) {
		es_cbor_reader_span(&f, r, &sp[C_VERSION]);
		rc = es_cbor_get_uint(&f, "collection version", &c->version);
	}
	return rc;
}

enum {
	S_ORIGIN,
	S_SEQ,
	S_HLC,
	S_COUNT_,
	S_DIM,
	S_SIZE,
	S_CHECKSUM,
	S_ADD_VERSION,
	S_INDEX_SIZE,
	S_INDEX_CHECKSUM,
	S_N,
};

/* changes: the holder's index of the segment, optional (both or none). */
static int dec_segment_index(struct es_cbor_reader *r,
			     const struct es_cbor_span *sp,
			     struct es_sync_segment *seg)
{
	struct es_cbor_reader f;
	int rc;

	if (!sp[S_INDEX_SIZE].p)
		return 0;
	rc = need(r, &sp[S_INDEX_CHECKSUM], "index_checksum", "a segment");
	es_cbor_reader_span(&f, r, &sp[S_INDEX_SIZE]);
	if (rc == 0)
		rc = es_cbor_get_uint(&f, "segment index_size",
				      &seg->index_size);
	if (rc == 0 && seg->index_size > SYNC_INDEX_SIZE_MAX)
		rc = es_cbor_fail(r, ES_E_CBOR_VALUE,
				  "segment index_size is above 256 GiB");
	es_cbor_reader_span(&f, r, &sp[S_INDEX_CHECKSUM]);
	if (rc == 0)
		rc = sync_dec_u32(&f, "segment index_checksum",
				  &seg->index_checksum);
	return rc;
}

int sync_dec_segment(struct es_cbor_reader *r, struct es_sync_segment *seg,
		     int depth, int with_add_version)
{
	static const char *const keys[S_N] = {
	    "origin",	  "origin_seq",	   "seal_hlc", "count",
	    "dim",	  "size",	   "checksum", "add_version",
	    "index_size", "index_checksum"};
	struct es_cbor_span sp[S_N];
	struct es_cbor_reader f;
	int rc;

	memset(seg, 0, sizeof(*seg));
	rc = es_cbor_map_index(r, keys, S_N, sp, depth, "a segment");
	for (int i = 0; rc == 0 && i <= S_ADD_VERSION; i++) {
		if (i == S_ADD_VERSION && !with_add_version)
			continue;
		rc = need(r, &sp[i], keys[i], "a segment");
	}
	if (rc)
		return rc;
	es_cbor_reader_span(&f, r, &sp[S_ORIGIN]);
	rc = sync_dec_device(&f, "segment origin", seg->origin);
	es_cbor_reader_span(&f, r, &sp[S_SEQ]);
	if (rc == 0)
		rc = es_cbor_get_uint(&f, "segment origin_seq",
				      &seg->origin_seq);
	es_cbor_reader_span(&f, r, &sp[S_HLC]);
	if (rc == 0)
		rc = sync_dec_hlc(&f, "segment seal_hlc", &seg->seal_hlc);
	es_cbor_reader_span(&f, r, &sp[S_COUNT_]);
	if (rc == 0)
		rc = es_cbor_get_uint(&f, "segment count", &seg->count);
	es_cbor_reader_span(&f, r, &sp[S_DIM]);
	if (rc == 0)
		rc = sync_dec_u32(&f, "segment dim", &seg->dim);
	es_cbor_reader_span(&f, r, &sp[S_SIZE]);
	if (rc == 0)
		rc = es_cbor_get_uint(&f, "segment size", &seg->size);
	es_cbor_reader_span(&f, r, &sp[S_CHECKSUM]);
	if (rc == 0)
		rc = sync_dec_u32(&f, "segment checksum", &seg->checksum);
	if (rc == 0 && with_add_version) {
		es_cbor_reader_span(&f, r, &sp[S_ADD_VERSION]);
		rc = es_cbor_get_uint(&f, "segment add_version",
				      &seg->add_version);
	}
	if (rc == 0 && with_add_version)
		rc = dec_segment_index(r, sp, seg);
	return rc;
}

static int dec_tombstone(struct es_cbor_reader *r, void *entry)
{
	struct es_sync_tombstone *t = entry;
	struct es_cbor_seq s;
	int rc = es_cbor_array_begin(r, &s, "a tombstone");

	if (rc)
		return rc;
	if (s.indef || s.left != 3)
		return es_cbor_fail(r, ES_E_CBOR_SCHEMA,
				    "a tombstone must be an array of 3 "
				    "items [id, hlc, origin]");
	rc = es_cbor_get_uint(r, "tombstone id", &t->id);
	if (rc == 0)
		rc = sync_dec_hlc(r, "tombstone hlc", &t->hlc);
	if (rc == 0)
		rc = sync_dec_device(r, "tombstone origin", t->origin);
	return rc;
}

static int dec_clock(struct es_cbor_reader *r, void *entry)
{
	struct es_clock_run *c = entry;
	struct es_cbor_seq s;
	int rc = es_cbor_array_begin(r, &s, "a clock run");

	if (rc)
		return rc;
	if (s.indef || s.left != 2)
		return es_cbor_fail(r, ES_E_CBOR_SCHEMA,
				    "a clock run must be an array of 2 items "
				    "[row, hlc]");
	rc = es_cbor_get_uint(r, "clock run row", &c->row);
	if (rc == 0)
		rc = sync_dec_hlc(r, "clock run hlc", &c->hlc);
	return rc;
}

/* An array of at most max entries of size bytes, each read by dec; *out
 * malloc'ed (NULL when empty). what names the entries in messages. */
static int dec_list(struct es_cbor_reader *r, const char *what, size_t max,
		    size_t size, int (*dec)(struct es_cbor_reader *, void *),
		    void **out, size_t *n, int depth)
{
	struct es_cbor_seq s;
	unsigned char *v = NULL, *nv;
	size_t cap = 0, k = 0;
	int rc;

	*out = NULL;
	*n = 0;
	if (depth >= ES_CBOR_MAX_DEPTH)
		return es_cbor_fail(r, ES_E_CBOR_MALFORMED, "nested too deep");
	rc = es_cbor_array_begin(r, &s, what);
	while (rc == 0 && (rc = es_cbor_seq_next(r, &s)) > 0) {
		if (k == max) {
			rc = es_cbor_fail(r, ES_E_CBOR_VALUE,
					  "more than %zu %s in one message",
					  max, what);
			break;
		}
		if (k == cap) {
			cap = cap ? cap * 2 : 16;
			nv = realloc(v, cap * size);
			if (!nv) {
				rc = -ENOMEM;
				break;
			}
			v = nv;
		}
		rc = dec(r, v + k * size);
		if (rc == 0)
			k++;
	}
	if (rc) {
		free(v);
		return rc;
	}
	*out = v;
	*n = k;
	return 0;
}

int sync_dec_tombstones(struct es_cbor_reader *r, size_t max,
			struct es_sync_tombstone **out, size_t *n, int depth)
{
	void *v;
	int rc = dec_list(r, "tombstones", max, sizeof(**out), dec_tombstone,
			  &v, n, depth);

	*out = v;
	return rc;
}

int sync_dec_clocks(struct es_cbor_reader *r, size_t max,
		    struct es_clock_run **out, size_t *n, int depth)
{
	void *v;
	int rc = dec_list(r, "clock runs", max, sizeof(**out), dec_clock, &v, n,
			  depth);

	*out = v;
	return rc;
}

/* ---- the lists beside a segment --------------------------------------- */

/* A begin with full pages of both lists (a tombstone is at most 85 bytes,
 * a clock run 19) and everything else (far below 4 KiB) fits the
 * allowance. */
_Static_assert(SYNC_TOMBS_PER_MSG * 85u + SYNC_CLOCKS_PER_MSG * 19u + 4096u <=
		   SYNC_HEADER_ALLOWANCE,
	       "a begin fits SYNC_HEADER_ALLOWANCE");

static void enc_tombs(struct es_cbor_enc *e, const void *v, size_t n)
{
	sync_enc_tombstones(e, v, n);
}

static void enc_clocks(struct es_cbor_enc *e, const void *v, size_t n)
{
	sync_enc_clocks(e, v, n);
}

const struct sync_list_kind sync_list_tombs = {
    .field = "tombstones",
    .total = "tombstones_total",
    .what = "tombstones",
    .more = SYNC_T_MORE_TOMBSTONES,
    .fetch = SYNC_T_TOMBSTONES,
    .size = sizeof(struct es_sync_tombstone),
    .per_msg = SYNC_TOMBS_PER_MSG,
    .max = SYNC_TOMBS_MAX,
    .enc = enc_tombs,
};

const struct sync_list_kind sync_list_clocks = {
    .field = "clocks",
    .total = "clocks_total",
    .what = "clock runs",
    .more = SYNC_T_MORE_CLOCKS,
    .fetch = SYNC_T_CLOCKS,
    .size = sizeof(struct es_clock_run),
    .per_msg = SYNC_CLOCKS_PER_MSG,
    .max = SYNC_CLOCKS_MAX,
    .enc = enc_clocks,
};

int sync_clocks_total_check(const struct es_sync_segment *seg, uint64_t total,
			    char *why, size_t size)
{
	if (es_clock_runs_total_ok(total, seg->count))
		return 0;
	if (seg->count == 0)
		snprintf(why, size,
			 "%" PRIu64 " clock runs for a segment of 0 rows, "
			 "which has none",
			 total);
	else if (total == 0)
		snprintf(why, size,
			 "no clock runs for a segment of %" PRIu64
			 " rows: it has at least one",
			 seg->count);
	else if (total > seg->count)
		snprintf(why, size,
			 "%" PRIu64 " clock runs for a segment of %" PRIu64
			 " rows: at most one per row",
			 total, seg->count);
	else
		snprintf(why, size,
			 "%" PRIu64 " clock runs: a segment has at most %u",
			 total, SYNC_CLOCKS_MAX);
	return -1;
}

int sync_clocks_check(const struct es_sync_segment *seg,
		      const struct es_clock_run *c, size_t n, uint64_t first,
		      const struct es_clock_run *prev, uint64_t total,
		      char *why, size_t size)
{
	for (size_t i = 0; i < n; prev = &c[i++]) {
		uint64_t k = first + i;

		switch (es_clock_run_check(prev, &c[i], k, total, seg->count,
					   seg->seal_hlc)) {
		case ES_CLOCK_RUN_OK:
			continue;
		case ES_CLOCK_RUN_FIRST_ROW:
			snprintf(why, size,
				 "clock run 0 starts at row %" PRIu64
				 "; the first run starts at row 0",
				 c[i].row);
			break;
		case ES_CLOCK_RUN_ROW_ORDER:
			snprintf(why, size,
				 "clock run %" PRIu64 " starts at row %" PRIu64
				 ", not after run %" PRIu64 "'s row %" PRIu64
				 ": rows must increase",
				 k, c[i].row, k - 1, prev->row);
			break;
		case ES_CLOCK_RUN_ROW_PAST:
			snprintf(why, size,
				 "clock run %" PRIu64 " starts at row %" PRIu64
				 ", beyond the segment's %" PRIu64 " rows",
				 k, c[i].row, seg->count);
			break;
		case ES_CLOCK_RUN_HLC_ORDER:
			snprintf(why, size,
				 "clock run %" PRIu64 " has hlc %" PRIu64
				 ", not above run %" PRIu64 "'s %" PRIu64
				 ": rows are in the order of their writes",
				 k, c[i].hlc, k - 1, prev->hlc);
			break;
		case ES_CLOCK_RUN_HLC_SEAL:
			if (c[i].hlc > seg->seal_hlc)
				snprintf(why, size,
					 "clock run %" PRIu64
					 " has hlc %" PRIu64
					 ", above the segment's seal_hlc "
					 "%" PRIu64,
					 k, c[i].hlc, seg->seal_hlc);
			else
				snprintf(why, size,
					 "clock run %" PRIu64
					 " has hlc %" PRIu64
					 ", the segment's seal_hlc, which only "
					 "the last run has (run %" PRIu64 ")",
					 k, c[i].hlc, total - 1);
			break;
		case ES_CLOCK_RUN_HLC_NOT_LAST:
			snprintf(why, size,
				 "the last clock run has hlc %" PRIu64
				 ", not the segment's seal_hlc %" PRIu64
				 " (its newest write)",
				 c[i].hlc, seg->seal_hlc);
			break;
		}
		return -1;
	}
	return 0;
}
