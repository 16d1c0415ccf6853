/*
 * The local API's operations (agent/PROTOCOL.md): each handler takes a
 * parsed request, calls the engine and encodes the success reply; any
 * failure returns a code with a message in o->err, and api_ops_handle
 * turns it into the error reply "<op>: <message>" with a stable code.
 *
 * Vectors are decoded only once the collection's dim is known (from
 * es_engine_collection_dim, which reads memory only), so a wrong length is
 * named exactly; a request's floats are one allocation, bounded by
 * max_message. The engine checks that dim again while it holds the
 * collection, so one dropped and created with another dim in between is
 * refused (dim_mismatch), never read past.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api_ops.h"
#include "edgesync/manifest.h"
#include "edgesync/store_error.h"
#include "edgesync/sync.h"
#include "edgesync/vamana.h"

_Static_assert(API_MAX_K <= ES_VAMANA_MAX_K && API_MAX_L <= ES_VAMANA_MAX_L,
	       "the API's search limits are the index's");

#define ENC_KEEP (1u << 20) /* encoder bytes kept between requests */

const char *api_ops_code(int err)
{
	const char *name = api_err_name(err);

	if (name)
		return name;
	switch (err) {
	case ES_E_ENGINE_NOCOLL:
	case ES_E_ENGINE_NOTFOUND:
	case ES_E_MANIFEST_NOTFOUND:
		return "not_found";
	case ES_E_ENGINE_EXISTS:
	case ES_E_MANIFEST_EXISTS:
		return "exists";
	case ES_E_ENGINE_DIM:
		return "dim_mismatch";
	case ES_E_ENGINE_VALUE:
	case ES_E_ENGINE_ARG:
	case ES_E_MANIFEST_NAME:
		return "bad_value";
	case ES_E_ENGINE_CLOSING:
		return "shutting_down";
	case ES_E_ENGINE_NOSYNC:   /* sync (peers, sync-now) */
	case ES_E_ENGINE_NOTCLOUD: /* peers.approve on an edge */
		return "no_sync";
	default:
		return "internal";
	}
}

static int fail(struct api_ops *o, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(struct api_ops *o, int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(o->err, sizeof(o->err), fmt, ap);
	va_end(ap);
	return code;
}

/* An engine failure, named with what the request was about. */
static int engine_fail(struct api_ops *o, const struct api_request *rq, int rc)
{
	switch (rc) {
	case ES_E_ENGINE_NOCOLL:
	case ES_E_MANIFEST_NOTFOUND:
		return fail(o, rc, "collection '%s' does not exist", rq->name);
	case ES_E_ENGINE_EXISTS:
	case ES_E_MANIFEST_EXISTS:
		return fail(o, rc, "collection '%s' exists already", rq->name);
	case ES_E_ENGINE_NOTFOUND:
		return fail(o, rc,
			    "collection '%s' has no vector with id %" PRIu64,
			    rq->name, rq->id);
	case ES_E_ENGINE_DIM:
		return fail(o, rc,
			    "collection '%s' was created again with another "
			    "dim while the request ran",
			    rq->name);
	case ES_E_ENGINE_CLOSING:
		return fail(o, rc, "the agent is shutting down");
	default:
		return fail(o, rc, "%s", es_engine_strerror(rc));
	}
}

static uint64_t now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec;
}

int api_ops_init(struct api_ops *o, struct es_engine *e, size_t max_message)
{
	memset(o, 0, sizeof(*o));
	o->engine = e;
	o->max_message = max_message;
	o->started = now_s();
	o->query = calloc(API_MAX_DIM, sizeof(*o->query));
	o->hits = calloc(API_MAX_K, sizeof(*o->hits));
	if (!o->query || !o->hits) {
		api_ops_fini(o);
		return -ENOMEM;
	}
	return 0;
}

void api_ops_fini(struct api_ops *o)
{
	free(o->query);
	free(o->hits);
	o->query = NULL;
	o->hits = NULL;
}

/* {v: 1, ok: true, ...n more entries} */
static void reply_ok(struct es_cbor_enc *e, unsigned n)
{
	es_cbor_enc_map(e, 2 + n);
	es_cbor_enc_kv_uint(e, "v", API_PROTOCOL);
	es_cbor_enc_kv_bool(e, "ok", 1);
}

static const char *sync_name(uint32_t flags)
{
	switch (flags & (ES_COLLECTION_UPLOAD | ES_COLLECTION_DOWNLOAD)) {
	case ES_COLLECTION_UPLOAD:
		return "upload";
	case ES_COLLECTION_DOWNLOAD:
		return "download";
	case ES_COLLECTION_UPLOAD | ES_COLLECTION_DOWNLOAD:
		return "both";
	default:
		return "none";
	}
}

static uint32_t sync_flags(const char *name)
{
	if (!strcmp(name, "upload"))
		return ES_COLLECTION_UPLOAD;
	if (!strcmp(name, "download"))
		return ES_COLLECTION_DOWNLOAD;
	if (!strcmp(name, "both"))
		return ES_COLLECTION_UPLOAD | ES_COLLECTION_DOWNLOAD;
	return 0;
}

static void enc_collection(struct es_cbor_enc *e,
			   const struct es_collection_info *ci)
{
	es_cbor_enc_map(e, 10);
	es_cbor_enc_kv_text(e, "name", ci->name);
	es_cbor_enc_kv_uint(e, "dim", ci->dim);
	es_cbor_enc_kv_text(e, "metric", es_metric_name(ci->metric));
	es_cbor_enc_kv_text(e, "sync", sync_name(ci->flags));
	es_cbor_enc_kv_uint(e, "vectors", ci->vectors);
	es_cbor_enc_kv_uint(e, "growing", ci->growing);
	es_cbor_enc_kv_uint(e, "segments", ci->segments);
	es_cbor_enc_kv_uint(e, "indexed", ci->indexed);
	es_cbor_enc_kv_uint(e, "version", ci->version);
	es_cbor_enc_kv_uint(e, "bytes", ci->bytes);
}

/* ---- operations ------------------------------------------------------- */

static int op_ping(struct api_ops *o, struct api_request *rq,
		   struct es_cbor_enc *e)
{
	reply_ok(e, 6);
	es_cbor_enc_kv_text(e, "version", ES_VERSION);
	es_cbor_enc_kv_uint(e, "protocol", API_PROTOCOL);
	es_cbor_enc_kv_uint(e, "max_message", o->max_message);
	es_cbor_enc_kv_uint(e, "max_batch", API_MAX_BATCH);
	es_cbor_enc_kv_uint(e, "max_k", API_MAX_K);
	es_cbor_enc_kv_uint(e, "max_dim", API_MAX_DIM);
	return 0;
}

static int op_create(struct api_ops *o, struct api_request *rq,
		     struct es_cbor_enc *e)
{
	enum es_metric metric = ES_METRIC_L2;
	int rc;

	if (rq->metric[0] && es_metric_parse(rq->metric, &metric))
		return fail(o, API_E_BAD_VALUE,
			    "metric must be one of l2, ip, cosine");
	/* no "sync": the agent's default (an edge uploads) */
	rc = es_engine_collection_create(o->engine, rq->name, rq->dim, metric,
					 rq->sync[0] ? sync_flags(rq->sync)
						     : ES_ENGINE_FLAGS_DEFAULT);
	if (rc < 0)
		return engine_fail(o, rq, rc);
	reply_ok(e, 0);
	return 0;
}

static int op_list(struct api_ops *o, struct api_request *rq,
		   struct es_cbor_enc *e)
{
	struct es_collection_info *list = NULL;
	size_t n = 0;
	int rc = es_engine_collection_list(o->engine, &list, &n);

	if (rc < 0)
		return engine_fail(o, rq, rc);
	reply_ok(e, 1);
	es_cbor_enc_text(e, "collections");
	es_cbor_enc_array(e, n);
	for (size_t i = 0; i < n; i++)
		enc_collection(e, &list[i]);
	free(list);
	return 0;
}

static int op_info(struct api_ops *o, struct api_request *rq,
		   struct es_cbor_enc *e)
{
	struct es_collection_info ci;
	int rc = es_engine_collection_info(o->engine, rq->name, &ci);

	if (rc < 0)
		return engine_fail(o, rq, rc);
	reply_ok(e, 1);
	es_cbor_enc_text(e, "collection");
	enc_collection(e, &ci);
	return 0;
}

static int op_drop(struct api_ops *o, struct api_request *rq,
		   struct es_cbor_enc *e)
{
	int rc = es_engine_collection_drop(o->engine, rq->name);

	if (rc < 0)
		return engine_fail(o, rq, rc);
	reply_ok(e, 0);
	return 0;
}

/* The collection's dim, for decoding its vectors. */
static int coll_dim(struct api_ops *o, struct api_request *rq, uint32_t *dim)
{
	int rc = es_engine_collection_dim(o->engine, rq->name, dim);

	if (rc < 0)
		return engine_fail(o, rq, rc);
	if (*dim < 1 || *dim > API_MAX_DIM)
		return fail(o, -EINVAL,
			    "collection '%s' has dim %" PRIu32
			    ", beyond what the API serves",
			    rq->name, *dim);
	return 0;
}

static int op_insert(struct api_ops *o, struct api_request *rq,
		     struct es_cbor_enc *e)
{
	struct es_cbor_reader r;
	uint64_t bytes;
	uint32_t dim = 0;
	float *vecs;
	int rc = coll_dim(o, rq, &dim);

	if (rc)
		return rc;
	bytes = (uint64_t)rq->n_ids * dim * sizeof(float);
	if (bytes > o->max_message)
		return fail(o, API_E_TOO_LARGE,
			    "%zu vectors of dim %" PRIu32 " take %" PRIu64
			    " bytes, more than the %zu a request may carry",
			    rq->n_ids, dim, bytes, o->max_message);
	vecs = malloc(bytes ? (size_t)bytes : 1);
	if (!vecs)
		return fail(o, -ENOMEM, "out of memory for %" PRIu64 " bytes",
			    bytes);
	es_cbor_reader_span(&r, &rq->reader, &rq->vectors);
	rc = api_get_vectors(&r, rq->n_ids, dim, vecs, rq->name);
	if (rc == 0 && rq->n_ids) {
		rc = es_engine_insert(o->engine, rq->name, rq->ids, vecs,
				      rq->n_ids, dim);
		if (rc < 0)
			rc = engine_fail(o, rq, rc);
	}
	free(vecs);
	if (rc)
		return rc;
	reply_ok(e, 1);
	es_cbor_enc_kv_uint(e, "count", rq->n_ids);
	return 0;
}

static int op_delete(struct api_ops *o, struct api_request *rq,
		     struct es_cbor_enc *e)
{
	uint32_t dim = 0;
	int rc;

	if (rq->n_ids) {
		rc = es_engine_delete(o->engine, rq->name, rq->ids, rq->n_ids);
		if (rc < 0)
			return engine_fail(o, rq, rc);
	} else {
		rc = coll_dim(o, rq, &dim); /* says if the collection exists */
		if (rc)
			return rc;
	}
	reply_ok(e, 1);
	es_cbor_enc_kv_uint(e, "count", rq->n_ids);
	return 0;
}

static int op_get(struct api_ops *o, struct api_request *rq,
		  struct es_cbor_enc *e)
{
	uint32_t dim = 0;
	int rc = coll_dim(o, rq, &dim);

	if (rc)
		return rc;
	rc = es_engine_get(o->engine, rq->name, rq->id, o->query, dim);
	if (rc < 0)
		return engine_fail(o, rq, rc);
	reply_ok(e, 2);
	es_cbor_enc_kv_uint(e, "id", rq->id);
	es_cbor_enc_text(e, "vector");
	es_cbor_enc_floats(e, o->query, dim);
	return 0;
}

static int op_search(struct api_ops *o, struct api_request *rq,
		     struct es_cbor_enc *e)
{
	struct es_cbor_reader r;
	uint32_t dim = 0;
	int n, rc = coll_dim(o, rq, &dim);

	if (rc)
		return rc;
	es_cbor_reader_span(&r, &rq->reader, &rq->vectors);
	rc = api_get_vector(&r, dim, o->query, "vector", rq->name);
	if (rc)
		return rc;
	n = es_engine_search(o->engine, rq->name, o->query, dim, rq->k, rq->L,
			     o->hits);
	if (n < 0)
		return engine_fail(o, rq, n);
	if (n > (int)rq->k)
		n = (int)rq->k;
	reply_ok(e, 2);
	es_cbor_enc_text(e, "ids");
	es_cbor_enc_array(e, (uint64_t)n);
	for (int i = 0; i < n; i++)
		es_cbor_enc_uint(e, o->hits[i].id);
	es_cbor_enc_text(e, "distances");
	es_cbor_enc_array(e, (uint64_t)n);
	for (int i = 0; i < n; i++)
		es_cbor_enc_float(e, o->hits[i].distance);
	return 0;
}

static int op_flush(struct api_ops *o, struct api_request *rq,
		    struct es_cbor_enc *e)
{
	int rc = es_engine_flush(o->engine, rq->name);

	if (rc < 0)
		return engine_fail(o, rq, rc);
	reply_ok(e, 0);
	return 0;
}

/* verify: a segment and its index read whole; a damaged file is a
 * finding (problem), not a failed request. */
static int op_verify(struct api_ops *o, struct api_request *rq,
		     struct es_cbor_enc *e)
{
	struct es_collection_verified v;
	char problem[320] = "";
	int rc = rq->id > INT64_MAX
		     ? -ENOENT
		     : es_engine_verify_segment(o->engine, rq->name,
						(int64_t)rq->id, &v);

	if (rc == -ENOENT)
		return fail(o, ES_E_ENGINE_NOTFOUND,
			    "collection '%s' has no segment %" PRIu64, rq->name,
			    rq->id);
	if (rc < 0)
		return engine_fail(o, rq, rc);
	if (v.segment_rc)
		snprintf(problem, sizeof(problem), "segment file: %s%s",
			 es_store_strerror(v.segment_rc),
			 v.index_rc ? "; " : "");
	if (v.index_rc)
		snprintf(problem + strlen(problem),
			 sizeof(problem) - strlen(problem), "index file: %s",
			 es_store_strerror(v.index_rc));
	reply_ok(e, 3);
	es_cbor_enc_kv_uint(e, "bytes", v.bytes);
	es_cbor_enc_kv_bool(e, "indexed", v.indexed);
	es_cbor_enc_kv_text(e, "problem", problem);
	return 0;
}

static int op_manifest_verify(struct api_ops *o, struct api_request *rq,
			      struct es_cbor_enc *e)
{
	char why[256];
	int rc = es_engine_verify_manifest(o->engine, why, sizeof(why));

	/* an I/O error reading it is a finding too */
	if (rc < 0 && !why[0])
		snprintf(why, sizeof(why), "%s", es_engine_strerror(rc));
	reply_ok(e, 1);
	es_cbor_enc_kv_text(e, "problem", rc ? why : "");
	return 0;
}

static int op_stats(struct api_ops *o, struct api_request *rq,
		    struct es_cbor_enc *e)
{
	struct es_engine_stats st;
	int rc = es_engine_stats(o->engine, &st);

	if (rc < 0)
		return engine_fail(o, rq, rc);
	reply_ok(e, 10);
	es_cbor_enc_kv_uint(e, "collections", st.collections);
	es_cbor_enc_kv_uint(e, "vectors", st.vectors);
	es_cbor_enc_kv_uint(e, "segments", st.segments);
	es_cbor_enc_kv_uint(e, "bytes", st.bytes);
	es_cbor_enc_kv_uint(e, "inserts", st.inserts);
	es_cbor_enc_kv_uint(e, "searches", st.searches);
	es_cbor_enc_kv_uint(e, "seals_pending", st.seals_pending);
	es_cbor_enc_kv_uint(e, "uptime_s", now_s() - o->started);
	es_cbor_enc_kv_text(e, "device_id", st.device_id);
	es_cbor_enc_kv_text(e, "version", ES_VERSION);
	return 0;
}

static int op_segments(struct api_ops *o, struct api_request *rq,
		       struct es_cbor_enc *e)
{
	struct es_segment_info *list = NULL;
	size_t n = 0;
	int rc = es_engine_segments(o->engine, rq->name, &list, &n);

	if (rc < 0)
		return engine_fail(o, rq, rc);
	reply_ok(e, 1);
	es_cbor_enc_text(e, "segments");
	es_cbor_enc_array(e, n);
	for (size_t i = 0; i < n; i++) {
		es_cbor_enc_map(e, 10);
		es_cbor_enc_text(e, "id");
		es_cbor_enc_int(e, list[i].id);
		es_cbor_enc_kv_uint(e, "count", list[i].count);
		es_cbor_enc_kv_uint(e, "size", list[i].size);
		es_cbor_enc_kv_uint(e, "checksum", list[i].checksum);
		es_cbor_enc_kv_bool(e, "indexed", list[i].indexed);
		es_cbor_enc_kv_uint(e, "index_size", list[i].index_size);
		es_cbor_enc_kv_uint(e, "seal_hlc", list[i].seal_hlc);
		es_cbor_enc_kv_text(e, "origin", list[i].origin);
		es_cbor_enc_kv_uint(e, "clock_runs", list[i].clock_runs);
		es_cbor_enc_kv_uint(e, "clocks_crc", list[i].clocks_crc);
	}
	free(list);
	return 0;
}

/* ---- sync: peers, sync-now ------------------------------------------- */

static int sync_fail(struct api_ops *o, int rc)
{
	if (rc == ES_E_ENGINE_NOSYNC)
		return fail(o, rc,
			    "this agent does not sync: its configuration "
			    "has no [sync] role");
	return fail(o, rc, "%s", es_engine_strerror(rc));
}

static void enc_peer(struct es_cbor_enc *e, const struct es_sync_peer_status *p)
{
	es_cbor_enc_map(e, 14);
	es_cbor_enc_kv_text(e, "peer", p->peer);
	es_cbor_enc_kv_text(e, "device", p->device);
	es_cbor_enc_kv_bool(e, "connected", p->connected);
	es_cbor_enc_kv_uint(e, "last_success_ms", p->last_success_ms);
	es_cbor_enc_kv_uint(e, "segments_pending", p->segments_pending);
	es_cbor_enc_kv_uint(e, "bytes_pending", p->bytes_pending);
	es_cbor_enc_kv_uint(e, "lag_s", p->lag_s);
	es_cbor_enc_kv_uint(e, "bytes_sent", p->bytes_sent);
	es_cbor_enc_kv_uint(e, "bytes_received", p->bytes_received);
	es_cbor_enc_kv_uint(e, "checksum_failures", p->checksum_failures);
	es_cbor_enc_kv_uint(e, "segments_sent", p->segments_sent);
	es_cbor_enc_kv_uint(e, "segments_received", p->segments_received);
	es_cbor_enc_kv_text(e, "last_error", p->last_error);
	es_cbor_enc_kv_bool(e, "awaiting_approval", p->awaiting_approval);
}

static int op_peers(struct api_ops *o, struct api_request *rq,
		    struct es_cbor_enc *e)
{
	struct es_sync_peer_status *list = NULL;
	size_t n = 0;
	int rc = es_engine_peers(o->engine, &list, &n);

	(void)rq;
	if (rc < 0)
		return sync_fail(o, rc);
	reply_ok(e, 1);
	es_cbor_enc_text(e, "peers");
	es_cbor_enc_array(e, n);
	for (size_t i = 0; i < n; i++)
		enc_peer(e, &list[i]);
	free(list);
	return 0;
}

static int op_sync_now(struct api_ops *o, struct api_request *rq,
		       struct es_cbor_enc *e)
{
	int rc = es_engine_sync_now(o->engine);

	(void)rq;
	if (rc < 0)
		return sync_fail(o, rc);
	reply_ok(e, 0);
	return 0;
}

static int op_peers_approve(struct api_ops *o, struct api_request *rq,
			    struct es_cbor_enc *e)
{
	int rc = es_engine_peer_approve(o->engine, rq->device, rq->approve);

	switch (rc) {
	case ES_E_MANIFEST_NOTFOUND:
		return fail(o, rc,
			    "device '%s' is unknown to this cloud: it never "
			    "connected and was never approved",
			    rq->device);
	case ES_E_ENGINE_NOTCLOUD:
		return fail(o, rc,
			    "this agent is an edge: devices are approved on "
			    "the cloud they connect to");
	case ES_E_ENGINE_ARG:
		return fail(o, rc, "device id '%s' is not valid", rq->device);
	default:
		if (rc < 0)
			return sync_fail(o, rc);
	}
	reply_ok(e, 3);
	es_cbor_enc_kv_text(e, "device", rq->device);
	es_cbor_enc_kv_bool(e, "approved", rq->approve);
	es_cbor_enc_kv_bool(e, "allow_listed", rc == 1);
	return 0;
}

/* ---- dispatch --------------------------------------------------------- */

typedef int (*op_fn)(struct api_ops *o, struct api_request *rq,
		     struct es_cbor_enc *e);

static const op_fn handlers[API_OP_COUNT] = {
    [API_OP_PING] = op_ping,
    [API_OP_COLL_CREATE] = op_create,
    [API_OP_COLL_LIST] = op_list,
    [API_OP_COLL_INFO] = op_info,
    [API_OP_COLL_DROP] = op_drop,
    [API_OP_INSERT] = op_insert,
    [API_OP_DELETE] = op_delete,
    [API_OP_GET] = op_get,
    [API_OP_SEARCH] = op_search,
    [API_OP_FLUSH] = op_flush,
    [API_OP_STATS] = op_stats,
    [API_OP_SEGMENTS] = op_segments,
    [API_OP_PEERS] = op_peers,
    [API_OP_SYNC_NOW] = op_sync_now,
    [API_OP_PEERS_APPROVE] = op_peers_approve,
    [API_OP_VERIFY] = op_verify,
    [API_OP_MANIFEST_VERIFY] = op_manifest_verify,
};

static void log_internal(struct api_ops *o, const struct api_request *rq,
			 int rc)
{
	char line[API_ERR_MAX + 96];

	if (!o->log)
		return;
	snprintf(line, sizeof(line), "%s%s%s%s failed: %s (%d)",
		 api_op_name(rq->op) ? api_op_name(rq->op) : "request",
		 rq->name[0] ? " on '" : "", rq->name, rq->name[0] ? "'" : "",
		 o->err, rc);
	o->log(o->log_arg, ES_LOG_ERROR, line);
}

static void reply_error(struct api_ops *o, const struct api_request *rq, int rc,
			struct es_cbor_enc *e)
{
	const char *op = api_op_name(rq->op);
	const char *code = api_ops_code(rc);
	char msg[API_ERR_MAX + 32];

	if (!o->err[0])
		snprintf(o->err, sizeof(o->err), "%s", es_engine_strerror(rc));
	if (!strcmp(code, "internal"))
		log_internal(o, rq, rc);
	snprintf(msg, sizeof(msg), "%s%s%s", op ? op : "", op ? ": " : "",
		 o->err);
	es_cbor_enc_reset(e, ENC_KEEP);
	es_cbor_enc_map(e, 3);
	es_cbor_enc_kv_uint(e, "v", API_PROTOCOL);
	es_cbor_enc_kv_bool(e, "ok", 0);
	es_cbor_enc_text(e, "error");
	es_cbor_enc_map(e, 2);
	es_cbor_enc_kv_text(e, "code", code);
	es_cbor_enc_kv_text(e, "message", msg);
}

int api_ops_handle(struct api_ops *o, const void *req, size_t len, int late,
		   struct es_cbor_enc *out)
{
	struct api_request rq;
	int rc;

	es_cbor_enc_reset(out, ENC_KEEP);
	rc = api_request_parse(&rq, req, len, o->err);
	if (rc == 0 && late)
		rc = fail(o, ES_E_ENGINE_CLOSING, "the agent is shutting down");
	if (rc == 0) {
		rc = handlers[rq.op](o, &rq, out);
		if (rc == 0 && es_cbor_enc_error(out))
			rc = fail(o, es_cbor_enc_error(out),
				  "out of memory encoding the reply");
	}
	if (rc)
		reply_error(o, &rq, rc, out);
	api_request_fini(&rq);
	return es_cbor_enc_error(out);
}
