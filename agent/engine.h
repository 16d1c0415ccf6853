/*
 * Private to the agent: the engine, everything the daemon serves. It owns
 * the data directory: the manifest, one es_collection per collection (its
 * write-ahead log, growing buffer, segments and indexes), and the
 * background threads that seal segments and build their indexes.
 *
 * Every function is thread-safe and may be called from any number of API
 * worker threads at once. Every function returns 0 (or a count) or a
 * negative code: -errno, a store, manifest or ES_E_ENGINE_* code;
 * es_engine_strerror names any of them.
 */
#ifndef EDGESYNC_ENGINE_H
#define EDGESYNC_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#include "edgesync/collection.h" /* es_collection_verified */
#include "edgesync/distance.h"

#define ES_ENGINE_NAME_MAX 64

enum es_engine_err {
	ES_E_ENGINE_NOCOLL = -5301,   /* no such collection */
	ES_E_ENGINE_EXISTS = -5302,   /* collection exists already */
	ES_E_ENGINE_DIM = -5303,      /* vector has the wrong dimension */
	ES_E_ENGINE_VALUE = -5304,    /* NaN or infinite value */
	ES_E_ENGINE_NOTFOUND = -5305, /* no such vector id */
	ES_E_ENGINE_ARG = -5306,      /* an argument out of range */
	ES_E_ENGINE_CLOSING = -5307,  /* the agent is shutting down */
	ES_E_ENGINE_NOSYNC = -5308,   /* no sync role configured */
	ES_E_ENGINE_NOTCLOUD = -5309, /* only a cloud admits devices */
};

const char *es_engine_strerror(int err);

/* Severity of a log line the engine emits from its own threads. */
enum es_log_level { ES_LOG_ERROR, ES_LOG_WARN, ES_LOG_INFO, ES_LOG_DEBUG };

struct es_engine_config {
	const char *data_dir;
	uint64_t seal_threshold; /* vectors per segment, default 65536 */
	uint32_t index_R;	 /* default 64 */
	uint32_t index_L;	 /* default 100 */
	float index_alpha;	 /* default 1.2 */
	unsigned build_threads;	 /* 0: every core */
	uint32_t open_segments;	 /* segments kept open when idle */
	uint32_t default_flags;	 /* sync flags of a collection created
				      with ES_ENGINE_FLAGS_DEFAULT */
	/* Called from any thread, one line, no newline. */
	void (*log)(void *arg, enum es_log_level level, const char *msg);
	void *log_arg;
};

void es_engine_config_defaults(struct es_engine_config *c);

struct es_engine;

/*
 * es_engine_open opens or creates the data directory: opens the manifest,
 * removes files no manifest row names, recovers every collection (replays
 * its log, finishes or discards half-done seals), and starts the
 * background threads.
 */
int es_engine_open(struct es_engine **ep, const struct es_engine_config *c);

/* es_engine_close drains: waits for seals in flight, stops threads. */
void es_engine_close(struct es_engine *e);

/* ---- collections ------------------------------------------------------ */

struct es_collection_info {
	char name[ES_ENGINE_NAME_MAX + 1];
	uint32_t dim;
	enum es_metric metric;
	uint32_t flags;	  /* sync flags (manifest.h) */
	uint64_t vectors; /* live vectors */
	uint64_t growing; /* vectors not yet sealed */
	uint64_t segments;
	uint64_t indexed; /* segments whose index is ready */
	uint64_t version; /* manifest version */
	uint64_t bytes;	  /* segment and index bytes on disk */
};

/* Create with the agent's default sync flags (edge: upload). */
#define ES_ENGINE_FLAGS_DEFAULT 0xFFFFFFFFu

int es_engine_collection_create(struct es_engine *e, const char *name,
				uint32_t dim, enum es_metric metric,
				uint32_t flags);
int es_engine_collection_drop(struct es_engine *e, const char *name);
int es_engine_collection_info(struct es_engine *e, const char *name,
			      struct es_collection_info *info);
/*
 * es_engine_collection_dim answers the collection's dim from memory (no
 * manifest query), for sizing the vectors of a request.
 */
int es_engine_collection_dim(struct es_engine *e, const char *name,
			     uint32_t *dim);
/* *out malloc'ed (free() it), *n entries, ordered by name. */
int es_engine_collection_list(struct es_engine *e,
			      struct es_collection_info **out, size_t *n);

/* ---- data ------------------------------------------------------------- */

/*
 * The calls that take or fill vectors take the dim the caller sized them
 * with; it must be the collection's (ES_E_ENGINE_DIM if not), checked
 * while the collection is held, so a collection dropped and created again
 * with another dim meanwhile is refused, never read or written past.
 */

/*
 * es_engine_insert stores n vectors (n x dim floats) with their ids; an id
 * that exists is replaced. Returns 0 once every vector is durable and
 * visible to searches, never before.
 */
int es_engine_insert(struct es_engine *e, const char *name, const uint64_t *ids,
		     const float *vectors, size_t n, uint32_t dim);

/* es_engine_delete removes n ids (absent ones are not an error). */
int es_engine_delete(struct es_engine *e, const char *name, const uint64_t *ids,
		     size_t n);

/* es_engine_get copies the vector of id to out (dim floats). */
int es_engine_get(struct es_engine *e, const char *name, uint64_t id,
		  float *out, uint32_t dim);

struct es_engine_hit {
	uint64_t id;
	float distance;
};

/*
 * es_engine_search writes the k nearest live vectors to query (dim
 * floats), nearest first, to hits (k entries), returning how many. L is
 * the search list of the Vamana segments (0: max(k, 64)).
 */
int es_engine_search(struct es_engine *e, const char *name, const float *query,
		     uint32_t dim, uint32_t k, uint32_t L,
		     struct es_engine_hit *hits);

/* es_engine_flush seals what is growing; returns once it is durable. */
int es_engine_flush(struct es_engine *e, const char *name);

/* ---- introspection ---------------------------------------------------- */

struct es_segment_info {
	int64_t id;
	uint64_t count;
	uint64_t size;
	uint32_t checksum;
	int indexed;
	uint64_t index_size;
	uint64_t seal_hlc;
	char origin[65];
	/* its rows' clocks as the manifest records them: the number of
	 * runs and the CRC32C of the runs as (row, hlc) little-endian u64
	 * pairs, for comparing replicas */
	uint64_t clock_runs;
	uint32_t clocks_crc;
};

int es_engine_segments(struct es_engine *e, const char *name,
		       struct es_segment_info **out, size_t *n);

/*
 * es_engine_verify_segment reads segment id of collection name whole,
 * and its index (es_collection_verify): 0 with the findings in *v,
 * ES_E_ENGINE_NOCOLL, or -ENOENT for no such segment.
 */
int es_engine_verify_segment(struct es_engine *e, const char *name, int64_t id,
			     struct es_collection_verified *v);
/*
 * es_engine_verify_manifest runs the manifest's full check (SQLite's
 * integrity and foreign key checks): 0, or ES_E_MANIFEST_CORRUPT with
 * what SQLite said in why.
 */
int es_engine_verify_manifest(struct es_engine *e, char *why, size_t size);

struct es_engine_stats {
	uint64_t collections;
	uint64_t vectors;
	uint64_t segments;
	uint64_t bytes;
	uint64_t inserts;	/* vectors acknowledged since start */
	uint64_t searches;	/* since start */
	uint64_t seals_pending; /* seals and index builds queued */
	char device_id[65];
};

int es_engine_stats(struct es_engine *e, struct es_engine_stats *s);

/* This data directory's persistent device id (the manifest's). */
const char *es_engine_device_id(struct es_engine *e);

/* ---- sync ------------------------------------------------------------- */

struct es_sync;
struct es_sync_host;
struct es_sync_peer_status;

/* es_engine_sync_host fills h with the engine as sync's host (sync.h). */
void es_engine_sync_host(struct es_engine *e, struct es_sync_host *h);

/*
 * es_engine_attach_sync hands the engine the running sync (or NULL before
 * it stops), for es_engine_peers and es_engine_sync_now, which answer
 * ES_E_ENGINE_NOSYNC without one.
 */
void es_engine_attach_sync(struct es_engine *e, struct es_sync *s);
/*
 * es_engine_peers: sync's status per peer; on a cloud, followed by the
 * devices the manifest has seen but nobody approved that sync has not
 * seen since it started (awaiting_approval 1, counters 0).
 */
int es_engine_peers(struct es_engine *e, struct es_sync_peer_status **out,
		    size_t *n);
int es_engine_sync_now(struct es_engine *e);

/*
 * es_engine_peer_approve approves (approved 1) or revokes (0) device on a
 * cloud, in the manifest's peers. Approving a device never seen records
 * it first (pre-approval); revoking one never seen is
 * ES_E_MANIFEST_NOTFOUND. A revoked device's connections are closed, so
 * it is refused at its next hello. Returns 1 if allow-devices (or lab
 * mode) admits the device whatever its approval, else 0;
 * ES_E_ENGINE_ARG for a bad device id, ES_E_ENGINE_NOSYNC without sync,
 * ES_E_ENGINE_NOTCLOUD on an edge.
 */
int es_engine_peer_approve(struct es_engine *e, const char *device,
			   int approved);

#endif
