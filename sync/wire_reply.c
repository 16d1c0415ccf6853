/*
 * Replies of the sync protocol, as the edge reads them: {v, ok: true,
 * ...} with the fields of the request's type, or {v, ok: false, error:
 * {code, message}[, offset]}. A cloud is a peer like any other: every
 * field is checked as a request's would be.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edgesync/crc32c.h"
#include "wire.h"

enum field {
	R_V,
	R_OK,
	R_ERROR,
	R_OFFSET,
	R_DEVICE,
	R_NONCE,
	R_HLC,
	R_CHUNK_MAX,
	R_STATE,
	R_COLLECTIONS,
	R_VERSION,
	R_MORE,
	R_SEGMENTS,
	R_TOTAL,
	R_TOMBSTONES,
	R_DATA,
	R_CRC,
	R_WINDOW,
	R_CLOCKS,
	R_COUNT,
};

static const char *const field_names[R_COUNT] = {
    "v",       "ok",   "error",	    "offset", "device",
    "nonce",   "hlc",  "chunk_max", "state",  "collections",
    "version", "more", "segments",  "total",  "tombstones",
    "data",    "crc",  "window",    "clocks",
};

#define BIT(f) (1u << (f))

static const unsigned needs[SYNC_T_COUNT] = {
    [SYNC_T_PING] = 0,
    [SYNC_T_CHALLENGE] = BIT(R_NONCE) | BIT(R_DEVICE),
    [SYNC_T_HELLO] = BIT(R_DEVICE) | BIT(R_HLC) | BIT(R_CHUNK_MAX),
    [SYNC_T_COLLECTIONS] = BIT(R_COLLECTIONS),
    [SYNC_T_BEGIN] = BIT(R_STATE),
    [SYNC_T_MORE_TOMBSTONES] = BIT(R_OFFSET),
    [SYNC_T_MORE_CLOCKS] = BIT(R_OFFSET),
    [SYNC_T_CHUNK] = BIT(R_OFFSET),
    [SYNC_T_COMMIT] = BIT(R_STATE),
    [SYNC_T_CHANGES] = BIT(R_VERSION) | BIT(R_MORE) | BIT(R_SEGMENTS),
    [SYNC_T_TOMBSTONES] = BIT(R_TOTAL) | BIT(R_TOMBSTONES),
    [SYNC_T_CLOCKS] = BIT(R_TOTAL) | BIT(R_CLOCKS),
    [SYNC_T_FETCH] = BIT(R_DATA) | BIT(R_CRC),
};

static int parse_error(struct sync_reply *rp, struct es_cbor_reader *r)
{
	static const char *const keys[2] = {"code", "message"};
	struct es_cbor_span sp[2];
	struct es_cbor_reader f;
	const char *s;
	size_t n;
	int rc;

	rc = es_cbor_map_index(r, keys, 2, sp, 1, "field 'error'");
	if (rc)
		return rc;
	if (!sp[0].p)
		return es_cbor_fail(r, ES_E_CBOR_SCHEMA,
				    "field 'error' lacks 'code'");
	es_cbor_reader_span(&f, r, &sp[0]);
	rc = es_cbor_get_text_ref(&f, "error code", &s, &n);
	if (rc)
		return rc;
	rp->code = sync_code_parse(s, n);
	if (!sp[1].p)
		return 0;
	es_cbor_reader_span(&f, r, &sp[1]);
	rc = es_cbor_get_text_ref(&f, "error message", &s, &n);
	if (rc)
		return rc;
	/* Kept printable: it ends up in logs. */
	n = n < SYNC_MESSAGE_MAX ? n : SYNC_MESSAGE_MAX;
	for (size_t i = 0; i < n; i++)
		rp->message[i] = s[i] >= 0x20 && s[i] < 0x7f ? s[i] : '?';
	rp->message[n] = '\0';
	return 0;
}

static int parse_state(struct sync_reply *rp, struct es_cbor_reader *f)
{
	char st[16];
	int rc = es_cbor_get_text(f, "field 'state'", st, sizeof(st));

	if (rc)
		return rc;
	if (!strcmp(st, "duplicate"))
		rp->state = SYNC_S_DUPLICATE;
	else if (!strcmp(st, "resume"))
		rp->state = SYNC_S_RESUME;
	else if (!strcmp(st, "installed"))
		rp->state = SYNC_S_INSTALLED;
	else
		return es_cbor_fail(f, ES_E_CBOR_VALUE, "unknown state '%s'",
				    st);
	return 0;
}

static int parse_collections(struct sync_reply *rp, struct es_cbor_reader *f)
{
	struct es_cbor_seq s;
	size_t cap = 0;
	void *p;
	int rc = es_cbor_array_begin(f, &s, "field 'collections'");

	while (rc == 0 && (rc = es_cbor_seq_next(f, &s)) > 0) {
		if (rp->n_colls == SYNC_COLLECTIONS_MAX)
			return es_cbor_fail(f, ES_E_CBOR_VALUE,
					    "more than %u collections",
					    SYNC_COLLECTIONS_MAX);
		if (rp->n_colls == cap) {
			cap = cap ? 2 * cap : 8;
			p = realloc(rp->colls, cap * sizeof(*rp->colls));
			if (!p)
				return -ENOMEM;
			rp->colls = p;
		}
		rc = sync_dec_collection(f, &rp->colls[rp->n_colls], 2, 1);
		if (rc == 0)
			rp->n_colls++;
	}
	return rc;
}

static int parse_segments(struct sync_reply *rp, struct es_cbor_reader *f)
{
	struct es_cbor_seq s;
	size_t cap = 0;
	void *p;
	int rc = es_cbor_array_begin(f, &s, "field 'segments'");

	while (rc == 0 && (rc = es_cbor_seq_next(f, &s)) > 0) {
		if (rp->n_segs == SYNC_SEGMENTS_PER_MSG)
			return es_cbor_fail(f, ES_E_CBOR_VALUE,
					    "more than %u segments",
					    SYNC_SEGMENTS_PER_MSG);
		if (rp->n_segs == cap) {
			cap = cap ? 2 * cap : 8;
			p = realloc(rp->segs, cap * sizeof(*rp->segs));
			if (!p)
				return -ENOMEM;
			rp->segs = p;
		}
		rc = sync_dec_segment(f, &rp->segs[rp->n_segs], 2, 1);
		if (rc == 0)
			rp->n_segs++;
	}
	return rc;
}

static int parse_field(struct sync_reply *rp, enum field fd,
		       struct es_cbor_reader *f)
{
	const unsigned char *p;
	size_t n;
	int rc;

	switch (fd) {
	case R_OFFSET:
		rp->has_offset = 1;
		return es_cbor_get_uint(f, "field 'offset'", &rp->offset);
	case R_DEVICE:
		return sync_dec_device(f, "field 'device'", rp->device);
	case R_NONCE:
		rc = es_cbor_get_bytes(f, "field 'nonce'", &p, &n);
		if (rc == 0 && n != SYNC_NONCE_LEN)
			rc = es_cbor_fail(f, ES_E_CBOR_VALUE,
					  "the nonce is not %u bytes",
					  SYNC_NONCE_LEN);
		rp->nonce = p;
		return rc;
	case R_HLC:
		return sync_dec_hlc(f, "field 'hlc'", &rp->hlc);
	case R_CHUNK_MAX:
		rc = es_cbor_get_uint(f, "field 'chunk_max'", &rp->chunk_max);
		if (rc == 0 && (rp->chunk_max < SYNC_CHUNK_MIN ||
				rp->chunk_max > SYNC_CHUNK_MAX))
			rc = es_cbor_fail(
			    f, ES_E_CBOR_VALUE,
			    "chunk_max %" PRIu64 " is not in %u..%u",
			    rp->chunk_max, SYNC_CHUNK_MIN, SYNC_CHUNK_MAX);
		return rc;
	case R_STATE:
		return parse_state(rp, f);
	case R_COLLECTIONS:
		return parse_collections(rp, f);
	case R_VERSION:
		return es_cbor_get_uint(f, "field 'version'", &rp->version);
	case R_MORE:
		return es_cbor_get_bool(f, "field 'more'", &rp->more);
	case R_SEGMENTS:
		return parse_segments(rp, f);
	case R_TOTAL:
		return es_cbor_get_uint(f, "field 'total'", &rp->total);
	case R_TOMBSTONES:
		return sync_dec_tombstones(f, SYNC_TOMBS_PER_MSG, &rp->tombs,
					   &rp->n_tombs, 1);
	case R_CLOCKS:
		return sync_dec_clocks(f, SYNC_CLOCKS_PER_MSG, &rp->clocks,
				       &rp->n_clocks, 1);
	case R_DATA:
		return es_cbor_get_bytes(f, "field 'data'", &rp->data,
					 &rp->data_len);
	case R_CRC:
		return sync_dec_u32(f, "field 'crc'", &rp->crc);
	case R_WINDOW:
		rc = es_cbor_get_uint(f, "field 'window'", &rp->window);
		if (rc == 0 && (rp->window < 1 || rp->window > SYNC_WINDOW_MAX))
			rc = es_cbor_fail(f, ES_E_CBOR_VALUE,
					  "window %" PRIu64 " is not in 1..%u",
					  rp->window, SYNC_WINDOW_MAX);
		return rc;
	default:
		return 0;
	}
}

static int check_head(struct sync_reply *rp, struct es_cbor_reader *r,
		      const struct es_cbor_span *sp)
{
	struct es_cbor_reader f;
	uint64_t v;
	int rc;

	if (!sp[R_V].p || !sp[R_OK].p)
		return es_cbor_fail(r, ES_E_CBOR_SCHEMA,
				    "the reply lacks field '%s'",
				    sp[R_V].p ? "ok" : "v");
	es_cbor_reader_span(&f, r, &sp[R_V]);
	rc = es_cbor_get_uint(&f, "field 'v'", &v);
	if (rc)
		return rc;
	if (v != ES_SYNC_PROTOCOL)
		return es_cbor_fail(r, ES_E_SYNC_VERSION,
				    "the peer speaks protocol version "
				    "%" PRIu64 ", this agent %d",
				    v, ES_SYNC_PROTOCOL);
	es_cbor_reader_span(&f, r, &sp[R_OK]);
	rc = es_cbor_get_bool(&f, "field 'ok'", &rp->ok);
	if (rc || rp->ok)
		return rc;
	if (!sp[R_ERROR].p)
		return es_cbor_fail(r, ES_E_CBOR_SCHEMA,
				    "a refusal lacks field 'error'");
	es_cbor_reader_span(&f, r, &sp[R_ERROR]);
	rc = parse_error(rp, &f);
	if (rc == 0 && sp[R_OFFSET].p) {
		es_cbor_reader_span(&f, r, &sp[R_OFFSET]);
		rc = parse_field(rp, R_OFFSET, &f);
	}
	return rc;
}

static int parse_map(struct sync_reply *rp, enum sync_type t, const void *buf,
		     size_t len, char *err)
{
	struct es_cbor_span sp[R_COUNT];
	struct es_cbor_reader r, f;
	int rc;

	memset(rp, 0, sizeof(*rp));
	es_cbor_reader_init(&r, buf, len, err);
	rc = es_cbor_map_index(&r, field_names, R_COUNT, sp, 0, "a reply");
	if (rc == 0)
		rc = es_cbor_reader_end(&r);
	if (rc == 0)
		rc = check_head(rp, &r, sp);
	if (rc || !rp->ok)
		goto out;
	rp->window = 1;
	for (int i = R_OFFSET; i < R_COUNT && rc == 0; i++) {
		int optional = (i == R_OFFSET || i == R_WINDOW) && sp[i].p;

		if (!(needs[t] & BIT(i)) && !optional)
			continue;
		if (!sp[i].p) {
			rc = es_cbor_fail(&r, ES_E_CBOR_SCHEMA,
					  "the reply to %s lacks field '%s'",
					  sync_type_name(t), field_names[i]);
			break;
		}
		es_cbor_reader_span(&f, &r, &sp[i]);
		rc = parse_field(rp, (enum field)i, &f);
		if (rc == 0)
			rc = es_cbor_reader_end(&f);
	}
	if (rc == 0 && t == SYNC_T_BEGIN && rp->state == SYNC_S_RESUME &&
	    !rp->has_offset)
		rc = es_cbor_fail(&r, ES_E_CBOR_SCHEMA,
				  "a resume reply lacks field 'offset'");
out:
	if (rc == ES_E_SYNC_VERSION || rc == -ENOMEM)
		return rc;
	return rc ? ES_E_SYNC_PROTOCOL : 0;
}

int sync_reply_parse(struct sync_reply *rp, enum sync_type t, const void *buf,
		     size_t len, char *err)
{
	uint32_t bulk = 0;
	int rc;

	if (len < SYNC_TRAILER) {
		memset(rp, 0, sizeof(*rp));
		snprintf(err, ES_CBOR_ERR_MAX,
			 "a reply of %zu bytes has no room for its CRC32C "
			 "trailer",
			 len);
		return ES_E_SYNC_PROTOCOL;
	}
	rc = parse_map(rp, t, buf, len - SYNC_TRAILER, err);
	if (rc == 0 && rp->data) {
		bulk = es_crc32c(0, rp->data, rp->data_len);
		rp->crc_ok = bulk == rp->crc;
	}
	if (sync_trailer_check(buf, len, rc == 0 ? rp->data : NULL,
			       rp->data_len, bulk) != 0) {
		snprintf(err, ES_CBOR_ERR_MAX,
			 "the reply fails its CRC32C trailer (damaged in "
			 "transit)");
		return ES_E_SYNC_CHECKSUM;
	}
	return rc;
}

void sync_reply_fini(struct sync_reply *rp)
{
	free(rp->colls);
	free(rp->segs);
	free(rp->tombs);
	free(rp->clocks);
	rp->colls = NULL;
	rp->segs = NULL;
	rp->tombs = NULL;
	rp->clocks = NULL;
}
