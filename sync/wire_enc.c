/*
 * Encoders of the sync protocol's messages (PROTOCOL.md): heads of
 * requests and replies, refusals, and the shared structures.
 */
#include <string.h>

#include "edgesync/distance.h"
#include "wire.h"

void sync_enc_request(struct es_cbor_enc *e, enum sync_type t, size_t n)
{
	es_cbor_enc_map(e, n + 2);
	es_cbor_enc_kv_uint(e, "v", ES_SYNC_PROTOCOL);
	es_cbor_enc_kv_text(e, "type", sync_type_name(t));
}

void sync_enc_ok(struct es_cbor_enc *e, size_t n)
{
	es_cbor_enc_map(e, n + 2);
	es_cbor_enc_kv_uint(e, "v", ES_SYNC_PROTOCOL);
	es_cbor_enc_kv_bool(e, "ok", 1);
}

void sync_enc_fail(struct es_cbor_enc *e, const struct sync_fail *f)
{
	es_cbor_enc_map(e, f->has_offset ? 4 : 3);
	es_cbor_enc_kv_uint(e, "v", ES_SYNC_PROTOCOL);
	es_cbor_enc_kv_bool(e, "ok", 0);
	es_cbor_enc_text(e, "error");
	es_cbor_enc_map(e, 2);
	es_cbor_enc_kv_text(e, "code", sync_code_name(f->code));
	es_cbor_enc_text(e, "message");
	es_cbor_enc_textn(e, f->msg, strnlen(f->msg, SYNC_MESSAGE_MAX));
	if (f->has_offset)
		es_cbor_enc_kv_uint(e, "offset", f->offset);
}

void sync_enc_collection(struct es_cbor_enc *e,
			 const struct es_sync_collection *c, int with_version)
{
	es_cbor_enc_map(e, with_version ? 4 : 3);
	es_cbor_enc_kv_text(e, "name", c->name);
	es_cbor_enc_kv_uint(e, "dim", c->dim);
	es_cbor_enc_kv_text(e, "metric",
			    es_metric_name((enum es_metric)c->metric));
	if (with_version)
		es_cbor_enc_kv_uint(e, "version", c->version);
}

void sync_enc_segment(struct es_cbor_enc *e, const struct es_sync_segment *s,
		      int with_add_version)
{
	int index = with_add_version && s->index_size;

	es_cbor_enc_map(e, with_add_version ? (index ? 10 : 8) : 7);
	es_cbor_enc_kv_text(e, "origin", s->origin);
	es_cbor_enc_kv_uint(e, "origin_seq", s->origin_seq);
	es_cbor_enc_kv_uint(e, "seal_hlc", s->seal_hlc);
	es_cbor_enc_kv_uint(e, "count", s->count);
	es_cbor_enc_kv_uint(e, "dim", s->dim);
	es_cbor_enc_kv_uint(e, "size", s->size);
	es_cbor_enc_kv_uint(e, "checksum", s->checksum);
	if (with_add_version)
		es_cbor_enc_kv_uint(e, "add_version", s->add_version);
	if (index) {
		es_cbor_enc_kv_uint(e, "index_size", s->index_size);
		es_cbor_enc_kv_uint(e, "index_checksum", s->index_checksum);
	}
}

void sync_enc_tombstones(struct es_cbor_enc *e,
			 const struct es_sync_tombstone *t, size_t n)
{
	es_cbor_enc_array(e, n);
	for (size_t i = 0; i < n; i++) {
		es_cbor_enc_array(e, 3);
		es_cbor_enc_uint(e, t[i].id);
		es_cbor_enc_uint(e, t[i].hlc);
		es_cbor_enc_text(e, t[i].origin);
	}
}

void sync_enc_clocks(struct es_cbor_enc *e, const struct es_clock_run *c,
		     size_t n)
{
	es_cbor_enc_array(e, n);
	for (size_t i = 0; i < n; i++) {
		es_cbor_enc_array(e, 2);
		es_cbor_enc_uint(e, c[i].row);
		es_cbor_enc_uint(e, c[i].hlc);
	}
}
