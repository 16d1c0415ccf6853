/*
 * Private to the agent: the local API's schema (agent/PROTOCOL.md) over
 * the shared CBOR codec (edgesync/cbor.h), used by the server
 * (api_server.c, api_ops.c) and the client library (client.c).
 *
 * Requests are read with the codec's pull reader: strings point into the
 * request, nothing is allocated per element; a batch of vectors costs one
 * allocation, the float array the engine takes. Replies are written with
 * the codec's encoder.
 *
 * Invariants:
 *   1. The codec's invariants hold (bounded reads and nesting, one message
 *      per failure in the reader's err buffer, nothing printed).
 *   2. What the API's entry points below return is an API_E_* code (or
 *      -errno): the codec's ES_E_CBOR_* codes are mapped once, by
 *      api_cbor_err, so API clients see the same codes and messages as
 *      before the codec was shared.
 */
#ifndef EDGESYNC_API_CODEC_H
#define EDGESYNC_API_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "edgesync/cbor.h"
#include "edgesync/name.h"

#define API_PROTOCOL   1      /* the "v" of every request and reply */
#define API_MAX_BATCH  100000 /* ids per insert or delete */
#define API_MAX_K      1000   /* search results */
#define API_MAX_L      4096   /* search list (ES_VAMANA_MAX_L) */
#define API_MAX_DIM    4096
#define API_NAME_MAX   ES_NAME_MAX /* collection names: es_name_valid */
#define API_DEVICE_MAX 64	   /* device ids: 1..64 of ASCII 0x21..0x7e */
#define API_ERR_MAX    ES_CBOR_ERR_MAX /* error messages, with the NUL */

/* Codes of requests the server refuses before the engine sees them. */
enum api_err {
	API_E_BAD_REQUEST = -5501, /* not CBOR, wrong type, missing field */
	API_E_BAD_VALUE = -5502,   /* NaN, out of range, unknown name */
	API_E_DIM = -5503,	   /* vector length != collection dim */
	API_E_UNKNOWN_OP = -5504,
	API_E_TOO_LARGE = -5505, /* over a limit of the protocol */
};

/* The stable string of an API_E_* code ("bad_request"...); NULL if not. */
const char *api_err_name(int err);

/*
 * api_cbor_err maps a codec code to the API's: malformed or mis-shaped
 * CBOR is API_E_BAD_REQUEST, a refused value API_E_BAD_VALUE, a float
 * array of another length API_E_DIM; any other code is returned as is.
 */
int api_cbor_err(int err);

/*
 * api_get_vector reads one vector of dim floats into out: a byte string
 * of dim little-endian float32 or an array of dim numbers. Non-finite
 * values are refused. what names it in errors ("vector", "vector 3");
 * coll names the collection.
 */
int api_get_vector(struct es_cbor_reader *r, uint32_t dim, float *out,
		   const char *what, const char *coll);

/*
 * api_get_vectors reads n vectors of dim floats into out (n x dim): one
 * byte string of n x dim float32, or an array of n vectors as above.
 */
int api_get_vectors(struct es_cbor_reader *r, size_t n, uint32_t dim,
		    float *out, const char *coll);

/* ---- requests (server side) ------------------------------------------- */

enum api_op {
	API_OP_PING,
	API_OP_COLL_CREATE,
	API_OP_COLL_LIST,
	API_OP_COLL_INFO,
	API_OP_COLL_DROP,
	API_OP_INSERT,
	API_OP_DELETE,
	API_OP_GET,
	API_OP_SEARCH,
	API_OP_FLUSH,
	API_OP_STATS,
	API_OP_SEGMENTS,
	API_OP_PEERS,
	API_OP_SYNC_NOW,
	API_OP_PEERS_APPROVE,
	API_OP_VERIFY,
	API_OP_MANIFEST_VERIFY,
	API_OP_COUNT,
};

/* "ping", "collection.create", ...; NULL for an unknown op. */
const char *api_op_name(enum api_op op);

struct api_request {
	enum api_op op;
	char name[API_NAME_MAX + 1]; /* "name" or "collection" */
	uint32_t dim;
	char metric[8]; /* "" if absent */
	char sync[16];	/* "" if absent */
	uint64_t id;
	uint64_t *ids; /* malloc'ed */
	size_t n_ids;
	uint32_t k;			 /* default 10 */
	uint32_t L;			 /* default 0 */
	char device[API_DEVICE_MAX + 1]; /* peers.approve */
	int approve;			 /* peers.approve, default 1 */
	/* Insert's "vectors", search's "vector": decoded once dim is known. */
	struct es_cbor_span vectors;
	struct es_cbor_reader reader; /* over the request, for the spans */
};

/*
 * api_request_parse decodes a request: checks v and op and reads the
 * fields op uses (types, presence, ranges). Fields op does not use and
 * unknown fields are skipped. err (API_ERR_MAX bytes) receives the
 * message on failure; rq keeps pointers into buf and err. Call
 * api_request_fini whatever it returned.
 */
int api_request_parse(struct api_request *rq, const void *buf, size_t len,
		      char *err);
void api_request_fini(struct api_request *rq);

#endif
