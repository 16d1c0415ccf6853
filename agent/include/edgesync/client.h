/*
 * edgesync client: the C library through which programs (and the edgesync
 * CLI) talk to a local agent over its Unix socket. Requests and replies
 * are CBOR maps over nng REQ/REP on ipc:// (the protocol is documented in
 * agent/PROTOCOL.md; any language with nng and CBOR can speak it).
 *
 * One es_client is one connection; it may be used by one thread at a time
 * (open one per thread for parallel requests). Every function returns 0 (or
 * a count) or a negative code: -errno, ES_E_CLIENT_* for transport and
 * protocol failures, or the code the agent answered (ES_E_CLIENT_REMOTE,
 * with the agent's code and message from es_client_error()).
 */
#ifndef EDGESYNC_CLIENT_H
#define EDGESYNC_CLIENT_H

#include <stddef.h>
#include <stdint.h>

enum es_client_err {
	ES_E_CLIENT_CONNECT = -5401,  /* no agent listening, or it hung up */
	ES_E_CLIENT_TIMEOUT = -5402,  /* no reply in time */
	ES_E_CLIENT_PROTOCOL = -5403, /* the reply was not understood */
	ES_E_CLIENT_REMOTE = -5404,   /* the agent refused: see error() */
	ES_E_CLIENT_TOO_BIG = -5405,  /* request larger than the agent takes */
};

struct es_client;

/*
 * es_client_open connects to the agent's socket (a file path; "ipc://"
 * is added). timeout_ms bounds each request (0: 30 s). A client is one
 * connection: once the agent closes it (it stopped), every request fails
 * with ES_E_CLIENT_CONNECT at once, and a new client must be opened.
 */
int es_client_open(struct es_client **cp, const char *socket_path,
		   unsigned timeout_ms);
void es_client_close(struct es_client *c);

/*
 * After ES_E_CLIENT_REMOTE: the agent's error code (a short string such as
 * "not_found", "bad_request", "dim_mismatch") and message; valid until the
 * next call on c. Otherwise a description of the last failure.
 */
const char *es_client_error_code(const struct es_client *c);
const char *es_client_error(const struct es_client *c);
const char *es_client_strerror(int err);

int es_client_ping(struct es_client *c);

struct es_client_collection {
	char name[65];
	uint32_t dim;
	char metric[8]; /* "l2", "ip", "cosine" */
	char sync[16];	/* "upload", "download", "both", "none" */
	uint64_t vectors, growing, segments, indexed, version, bytes;
};

int es_client_collection_create(struct es_client *c, const char *name,
				uint32_t dim, const char *metric,
				const char *sync);
int es_client_collection_drop(struct es_client *c, const char *name);
int es_client_collection_info(struct es_client *c, const char *name,
			      struct es_client_collection *out);
/* *out malloc'ed (free() it). */
int es_client_collection_list(struct es_client *c,
			      struct es_client_collection **out, size_t *n);

/* Durable once it returns 0. vectors: n x dim floats. */
int es_client_insert(struct es_client *c, const char *name, const uint64_t *ids,
		     const float *vectors, size_t n, uint32_t dim);
int es_client_delete(struct es_client *c, const char *name, const uint64_t *ids,
		     size_t n);
/* out: dim floats; *dim receives the collection's dimension. */
int es_client_get(struct es_client *c, const char *name, uint64_t id,
		  float *out, uint32_t max_dim, uint32_t *dim);

struct es_client_hit {
	uint64_t id;
	float distance;
};

/* Returns the number of hits written (at most k). L 0: agent's default. */
int es_client_search(struct es_client *c, const char *name, const float *query,
		     uint32_t dim, uint32_t k, uint32_t L,
		     struct es_client_hit *hits);
int es_client_flush(struct es_client *c, const char *name);

struct es_client_segment {
	int64_t id;
	uint64_t count, size, index_size, seal_hlc;
	uint32_t checksum;
	int indexed;
	char origin[65];
	uint64_t clock_runs; /* its rows' clocks: runs and their CRC32C */
	uint32_t clocks_crc;
};
int es_client_segments(struct es_client *c, const char *name,
		       struct es_client_segment **out, size_t *n);

/* What the agent found reading one segment whole (es_client_verify). */
struct es_client_verified {
	uint64_t bytes; /* read: the segment, and its index if it has one */
	int indexed;
	char problem[320]; /* "" if its files verify, else what is wrong */
};
/*
 * es_client_verify has the agent read segment id of name and its index
 * whole and check them against their records; a damaged file is
 * reported in v->problem, not as an error.
 */
int es_client_verify(struct es_client *c, const char *name, int64_t id,
		     struct es_client_verified *v);
/* es_client_verify_manifest: the agent's full check of its manifest;
 * problem is "" if it passes (size bytes, at least 1). */
int es_client_verify_manifest(struct es_client *c, char *problem, size_t size);

struct es_client_stats {
	uint64_t collections, vectors, segments, bytes, inserts, searches,
	    seals_pending, uptime_s;
	char device_id[65];
	char version[32];
};
int es_client_stats(struct es_client *c, struct es_client_stats *out);

/* One sync peer as the agent sees it (sync.h's es_sync_peer_status). */
struct es_client_peer {
	char peer[128];	 /* URL (edge) or device id (cloud) */
	char device[65]; /* the peer's device id, once it said hello */
	int connected;
	uint64_t last_success_ms; /* Unix ms; 0 never */
	uint64_t segments_pending, bytes_pending;
	uint64_t lag_s; /* age of the oldest unshipped segment */
	uint64_t bytes_sent, bytes_received;
	uint64_t checksum_failures;
	uint64_t segments_sent, segments_received;
	char last_error[256];
	/* cloud: a device seen but not approved (`edgesync peers approve`) */
	int awaiting_approval;
};

/*
 * es_client_peers: the agent's sync peers, *out malloc'ed (free() it).
 * An agent without a [sync] role answers ES_E_CLIENT_REMOTE, code
 * "no_sync".
 */
int es_client_peers(struct es_client *c, struct es_client_peer **out,
		    size_t *n);
/* es_client_sync_now asks the agent for a sync round now. */
int es_client_sync_now(struct es_client *c);

/*
 * es_client_peer_approve approves (approve 1) or revokes (0) device on a
 * cloud agent; approving a device that never connected pre-approves it.
 * A revoked device is refused from its next hello (its connections are
 * closed). *allow_listed (may be NULL) is set to 1 if the cloud's
 * allow-devices admits the device whatever its approval. Refusals come
 * as ES_E_CLIENT_REMOTE: bad_value (bad device id), not_found (revoking
 * a device never seen), no_sync (not a cloud).
 */
int es_client_peer_approve(struct es_client *c, const char *device, int approve,
			   int *allow_listed);

#endif
