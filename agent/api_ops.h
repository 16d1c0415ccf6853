/*
 * Private to the agent: the local API's operations. api_ops_handle turns
 * one request (CBOR bytes) into one reply (CBOR bytes) by way of the
 * engine; the transport is api_server.c's. Runs on the server's pool
 * threads, any number at once, each with its own struct api_ops.
 */
#ifndef EDGESYNC_API_OPS_H
#define EDGESYNC_API_OPS_H

#include <stddef.h>
#include <stdint.h>

#include "api_codec.h"
#include "engine.h"

/* One worker's scratch: nothing here is shared between threads. */
struct api_ops {
	struct es_engine *engine;
	size_t max_message; /* also bounds a request's decoded floats */
	uint64_t started;   /* CLOCK_MONOTONIC seconds at server start */
	float *query;	    /* API_MAX_DIM floats */
	struct es_engine_hit *hits; /* API_MAX_K */
	char err[API_ERR_MAX];
	void (*log)(void *arg, enum es_log_level level, const char *msg);
	void *log_arg;
};

/* Allocates o's buffers; 0 or -ENOMEM. */
int api_ops_init(struct api_ops *o, struct es_engine *e, size_t max_message);
void api_ops_fini(struct api_ops *o);

/*
 * api_ops_handle decodes req, runs it and leaves the reply in out (reset
 * first): {ok: true, ...} or {ok: false, error: {code, message}}. late
 * answers every request with shutting_down. Returns 0, or -ENOMEM when
 * not even an error reply could be encoded.
 */
int api_ops_handle(struct api_ops *o, const void *req, size_t len, int late,
		   struct es_cbor_enc *out);

/* The stable code of any error the server can answer ("not_found"...). */
const char *api_ops_code(int err);

#endif
