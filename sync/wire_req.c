/*
 * Requests of the sync protocol (PROTOCOL.md): the top-level map is walked
 * once to find its fields; v is checked first, then type, then only the
 * fields of that type are decoded, so unknown fields and fields a type
 * does not use are ignored alike.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edgesync/crc32c.h"
#include "wire.h"

enum field {
	F_V,
	F_TYPE,
	F_DEVICE,
	F_ROLE,
	F_HLC,
	F_TOKEN,
	F_CERT,
	F_SIG,
	F_COLLECTION,
	F_SEGMENT,
	F_TOMBSTONES,
	F_TOMBS_TOTAL,
	F_ORIGIN,
	F_SEQ,
	F_OFFSET,
	F_DATA,
	F_CRC,
	F_SINCE,
	F_ADD_VERSION,
	F_FIRST,
	F_LENGTH,
	F_PART,
	F_CLOCKS,
	F_CLOCKS_TOTAL,
	F_COUNT,
};

static const char *const field_names[F_COUNT] = {
    "v",	  "type",	"device",      "role",
    "hlc",	  "token",	"cert",	       "sig",
    "collection", "segment",	"tombstones",  "tombstones_total",
    "origin",	  "origin_seq", "offset",      "data",
    "crc",	  "since",	"add_version", "first",
    "length",	  "part",	"clocks",      "clocks_total",
};

#define BIT(f) (1u << (f))
#define SEGREF (BIT(F_COLLECTION) | BIT(F_ORIGIN) | BIT(F_SEQ))

static const struct {
	unsigned required;
	unsigned optional;
} schema[SYNC_T_COUNT] = {
    [SYNC_T_PING] = {0, 0},
    [SYNC_T_CHALLENGE] = {0, 0},
    [SYNC_T_HELLO] = {BIT(F_DEVICE) | BIT(F_ROLE) | BIT(F_HLC),
		      BIT(F_TOKEN) | BIT(F_CERT) | BIT(F_SIG)},
    [SYNC_T_COLLECTIONS] = {0, 0},
    [SYNC_T_BEGIN] = {BIT(F_COLLECTION) | BIT(F_SEGMENT),
		      BIT(F_TOMBSTONES) | BIT(F_TOMBS_TOTAL) | BIT(F_CLOCKS) |
			  BIT(F_CLOCKS_TOTAL)},
    [SYNC_T_MORE_TOMBSTONES] = {SEGREF | BIT(F_FIRST) | BIT(F_TOMBSTONES), 0},
    [SYNC_T_MORE_CLOCKS] = {SEGREF | BIT(F_FIRST) | BIT(F_CLOCKS), 0},
    [SYNC_T_CHUNK] = {SEGREF | BIT(F_OFFSET) | BIT(F_DATA) | BIT(F_CRC), 0},
    [SYNC_T_COMMIT] = {SEGREF, 0},
    [SYNC_T_CHANGES] = {BIT(F_COLLECTION) | BIT(F_SINCE), 0},
    [SYNC_T_TOMBSTONES] = {BIT(F_COLLECTION) | BIT(F_ADD_VERSION) |
			       BIT(F_FIRST),
			   0},
    [SYNC_T_CLOCKS] = {BIT(F_COLLECTION) | BIT(F_ADD_VERSION) | BIT(F_FIRST),
		       0},
    [SYNC_T_FETCH] = {SEGREF | BIT(F_OFFSET) | BIT(F_LENGTH), BIT(F_PART)},
};

/* Maps a codec failure to the wire: schema and syntax are "malformed",
 * values "invalid". */
static int codec_fail(struct sync_fail *f, int rc, const char *err)
{
	enum sync_code c = SYNC_C_MALFORMED;

	if (rc == ES_E_CBOR_VALUE)
		c = SYNC_C_INVALID;
	else if (rc == -ENOMEM)
		c = SYNC_C_INTERNAL;
	return sync_failf(f, c, "%s", err[0] ? err : "out of memory");
}

static int parse_version(struct es_cbor_reader *r,
			 const struct es_cbor_span *sp, struct sync_fail *f)
{
	struct es_cbor_reader sub;
	uint64_t v;
	int rc;

	if (!sp->p)
		return sync_failf(f, SYNC_C_MALFORMED,
				  "the request lacks field 'v' (protocol "
				  "version; this agent speaks %d)",
				  ES_SYNC_PROTOCOL);
	es_cbor_reader_span(&sub, r, sp);
	rc = es_cbor_get_uint(&sub, "field 'v'", &v);
	if (rc)
		return codec_fail(f, rc, r->err);
	if (v != ES_SYNC_PROTOCOL)
		return sync_failf(f, SYNC_C_VERSION,
				  "protocol version %" PRIu64
				  " is not supported; this agent speaks "
				  "version %d",
				  v, ES_SYNC_PROTOCOL);
	return 0;
}

static int parse_type(struct es_cbor_reader *r, const struct es_cbor_span *sp,
		      enum sync_type *t, struct sync_fail *f)
{
	struct es_cbor_reader sub;
	const char *s;
	char shown[40];
	size_t n;
	int rc;

	if (!sp->p)
		return sync_failf(f, SYNC_C_MALFORMED,
				  "the request lacks field 'type'");
	es_cbor_reader_span(&sub, r, sp);
	rc = es_cbor_get_text_ref(&sub, "field 'type'", &s, &n);
	if (rc)
		return codec_fail(f, rc, r->err);
	for (int i = 0; i < SYNC_T_COUNT; i++) {
		const char *name = sync_type_name((enum sync_type)i);

		if (strlen(name) == n && !memcmp(name, s, n)) {
			*t = (enum sync_type)i;
			return 0;
		}
	}
	/* Echo at most 32 printable bytes of what the peer sent. */
	for (n = n < 32 ? n : 32, shown[n] = '\0'; n-- > 0;)
		shown[n] = s[n] >= 0x20 && s[n] < 0x7f ? s[n] : '?';
	return sync_failf(f, SYNC_C_UNKNOWN_TYPE, "unknown message type '%s'",
			  shown);
}

/* The collection of an op: a name, or for begin a whole description. */
static int parse_collection(struct sync_req *rq, struct es_cbor_reader *f)
{
	if (rq->type == SYNC_T_BEGIN)
		return sync_dec_collection(f, &rq->coll, 1, 0);
	return sync_dec_name(f, "field 'collection'", rq->coll.name);
}

static int parse_blob(struct es_cbor_reader *f, const char *what, size_t max,
		      const unsigned char **p, size_t *n)
{
	int rc = es_cbor_get_bytes(f, what, p, n);

	if (rc == 0 && *n > max)
		rc = es_cbor_fail(f, ES_E_CBOR_VALUE,
				  "%s is longer than %zu bytes", what, max);
	return rc;
}

/* fetch's part: "segment" (the default) or "index". */
static int parse_part(struct es_cbor_reader *f, int *index)
{
	char part[16];
	int rc = es_cbor_get_text(f, "field 'part'", part, sizeof(part));

	if (rc == 0 && strcmp(part, "segment") && strcmp(part, "index"))
		rc = es_cbor_fail(f, ES_E_CBOR_VALUE,
				  "field 'part' must be \"segment\" or "
				  "\"index\"");
	*index = rc == 0 && !strcmp(part, "index");
	return rc;
}

static int parse_field(struct sync_req *rq, enum field fd,
		       struct es_cbor_reader *f)
{
	switch (fd) {
	case F_DEVICE:
		return sync_dec_device(f, "field 'device'", rq->device);
	case F_ROLE:
		return es_cbor_get_text(f, "field 'role'", rq->role,
					sizeof(rq->role));
	case F_HLC:
		return sync_dec_hlc(f, "field 'hlc'", &rq->hlc);
	case F_TOKEN:
		return parse_blob(f, "field 'token'", SYNC_TOKEN_MAX,
				  &rq->token, &rq->token_len);
	case F_CERT:
		return parse_blob(f, "field 'cert'", SYNC_CERT_MAX, &rq->cert,
				  &rq->cert_len);
	case F_SIG:
		return parse_blob(f, "field 'sig'", SYNC_SIG_MAX, &rq->sig,
				  &rq->sig_len);
	case F_COLLECTION:
		return parse_collection(rq, f);
	case F_SEGMENT:
		return sync_dec_segment(f, &rq->seg, 1, 0);
	case F_TOMBSTONES:
		return sync_dec_tombstones(f, SYNC_TOMBS_PER_MSG, &rq->tombs,
					   &rq->n_tombs, 1);
	case F_TOMBS_TOTAL:
		return es_cbor_get_uint(f, "field 'tombstones_total'",
					&rq->tombs_total);
	case F_ORIGIN:
		return sync_dec_device(f, "field 'origin'", rq->seg.origin);
	case F_SEQ:
		return es_cbor_get_uint(f, "field 'origin_seq'",
					&rq->seg.origin_seq);
	case F_OFFSET:
		return es_cbor_get_uint(f, "field 'offset'", &rq->offset);
	case F_DATA:
		return es_cbor_get_bytes(f, "field 'data'", &rq->data,
					 &rq->data_len);
	case F_CRC:
		return sync_dec_u32(f, "field 'crc'", &rq->crc);
	case F_SINCE:
		return es_cbor_get_uint(f, "field 'since'", &rq->since);
	case F_ADD_VERSION:
		return es_cbor_get_uint(f, "field 'add_version'",
					&rq->add_version);
	case F_FIRST:
		return es_cbor_get_uint(f, "field 'first'", &rq->first);
	case F_LENGTH:
		return es_cbor_get_uint(f, "field 'length'", &rq->length);
	case F_PART:
		return parse_part(f, &rq->index);
	case F_CLOCKS:
		return sync_dec_clocks(f, SYNC_CLOCKS_PER_MSG, &rq->clocks,
				       &rq->n_clocks, 1);
	case F_CLOCKS_TOTAL:
		return es_cbor_get_uint(f, "field 'clocks_total'",
					&rq->clocks_total);
	default:
		return 0;
	}
}

/*
 * begin's clock runs: clocks_total (the runs sent when absent) and the
 * runs sent, against the segment. A segment of rows has at least one.
 */
static int parse_clocks(struct sync_req *rq, const struct es_cbor_span *sp,
			struct sync_fail *f)
{
	char why[200];

	if (!sp[F_CLOCKS_TOTAL].p)
		rq->clocks_total = rq->n_clocks;
	if (rq->clocks_total < rq->n_clocks)
		return sync_failf(f, SYNC_C_INVALID,
				  "clocks_total %" PRIu64
				  " is below the %zu clock runs sent",
				  rq->clocks_total, rq->n_clocks);
	if (sync_clocks_total_check(&rq->seg, rq->clocks_total, why,
				    sizeof(why)))
		return sync_failf(f, SYNC_C_INVALID, "clocks_total: %s", why);
	if (sync_clocks_check(&rq->seg, rq->clocks, rq->n_clocks, 0, NULL,
			      rq->clocks_total, why, sizeof(why)))
		return sync_failf(f, SYNC_C_INVALID, "clocks: %s", why);
	return 0;
}

/* Checks that need several fields. */
static int parse_check(struct sync_req *rq, const struct es_cbor_span *sp,
		       struct sync_fail *f)
{
	char why[160];

	if (rq->type == SYNC_T_HELLO && strcmp(rq->role, "edge") != 0)
		return sync_failf(f, SYNC_C_INVALID,
				  "role '%s' cannot sync with a cloud; only "
				  "'edge' can",
				  rq->role);
	if (rq->type != SYNC_T_BEGIN)
		return 0;
	if (sync_segment_check(&rq->seg, rq->coll.dim, why, sizeof(why)))
		return sync_failf(f, SYNC_C_INVALID, "%s", why);
	if (!sp[F_TOMBS_TOTAL].p)
		rq->tombs_total = rq->n_tombs;
	if (rq->tombs_total < rq->n_tombs || rq->tombs_total > SYNC_TOMBS_MAX)
		return sync_failf(f, SYNC_C_INVALID,
				  "tombstones_total %" PRIu64
				  " is not between the %zu tombstones sent "
				  "and the limit of %u",
				  rq->tombs_total, rq->n_tombs, SYNC_TOMBS_MAX);
	return parse_clocks(rq, sp, f);
}

static int parse_map(struct sync_req *rq, const void *buf, size_t len,
		     struct sync_fail *f)
{
	struct es_cbor_span sp[F_COUNT];
	struct es_cbor_reader r, sub;
	char err[ES_CBOR_ERR_MAX];
	unsigned want;
	int rc;

	memset(rq, 0, sizeof(*rq));
	memset(f, 0, sizeof(*f));
	es_cbor_reader_init(&r, buf, len, err);
	rc = es_cbor_map_index(&r, field_names, F_COUNT, sp, 0, "a request");
	if (rc == 0)
		rc = es_cbor_reader_end(&r);
	if (rc)
		return codec_fail(f, rc, err);
	if (parse_version(&r, &sp[F_V], f) ||
	    parse_type(&r, &sp[F_TYPE], &rq->type, f))
		return -1;
	want = schema[rq->type].required | schema[rq->type].optional;
	for (int i = F_DEVICE; i < F_COUNT; i++) {
		if (!(want & BIT(i)))
			continue;
		if (!sp[i].p) {
			if (!(schema[rq->type].required & BIT(i)))
				continue;
			return sync_failf(f, SYNC_C_MALFORMED,
					  "a %s request needs field '%s'",
					  sync_type_name(rq->type),
					  field_names[i]);
		}
		es_cbor_reader_span(&sub, &r, &sp[i]);
		rc = parse_field(rq, (enum field)i, &sub);
		if (rc == 0)
			rc = es_cbor_reader_end(&sub);
		if (rc)
			return codec_fail(f, rc, err);
	}
	return parse_check(rq, sp, f);
}

int sync_req_parse(struct sync_req *rq, const void *buf, size_t len,
		   struct sync_fail *f)
{
	const unsigned char *in_buf = NULL;
	uint32_t bulk = 0;
	int rc;

	if (len < SYNC_TRAILER) {
		memset(rq, 0, sizeof(*rq));
		return sync_failf(f, SYNC_C_MALFORMED,
				  "a message of %zu bytes has no room for its "
				  "CRC32C trailer",
				  len);
	}
	rc = parse_map(rq, buf, len - SYNC_TRAILER, f);
	if (rc == 0 && rq->type == SYNC_T_CHUNK) {
		in_buf = rq->data;
		bulk = es_crc32c(0, rq->data, rq->data_len);
		rq->crc_ok = bulk == rq->crc;
	}
	if (sync_trailer_check(buf, len, in_buf, rq->data_len, bulk) != 0)
		return sync_failf(f, SYNC_C_CHECKSUM,
				  "the message fails its CRC32C trailer "
				  "(damaged in transit); send it again");
	return rc;
}

void sync_req_fini(struct sync_req *rq)
{
	free(rq->tombs);
	free(rq->clocks);
	rq->tombs = NULL;
	rq->n_tombs = 0;
	rq->clocks = NULL;
	rq->n_clocks = 0;
}
