/*
 * Private to sync: the cloud's state, shared by cloud.c (socket,
 * contexts, workers, watchdog), cloud_session.c (sessions and device
 * counters) and cloud_ops.c (the handlers).
 *
 * A session is one connection (an nng pipe): created when the pipe is
 * added, before it can deliver a message (NNG_PIPE_EV_ADD_PRE), removed
 * when it goes (REM_POST). What a connection has proven (hello) and the
 * transfer it is in the middle of live in its session, so a request on
 * another connection can never use them. A session is reference-counted:
 * a worker holds it (and its lock) while it handles a request, and the
 * last holder frees it.
 */
#ifndef EDGESYNC_SYNC_CLOUD_H
#define EDGESYNC_SYNC_CLOUD_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include <nng/nng.h>
#include <nng/supplemental/tls/tls.h>

#include "edgesync/cbor.h"
#include "staging.h"
#include "sync_impl.h"
#include "wire.h"

#define CLOUD_CTXS	   8
#define CLOUD_WORKERS	   4
#define CLOUD_SESSIONS_MAX 4096
#define CLOUD_DEVICES_MAX  4096
#define CLOUD_BUCKETS	   256
/* How long, and at how many of the watchdog's looks in a row, one
 * connection must be seen closing in nng before the cloud gives up on
 * this process (wedge_check in cloud.c); closings followed at once. */
#define CLOUD_WEDGE_SEEN 3
#define CLOUD_WEDGE_MS	 60000
#define CLOUD_CLOSING	 64

/* Counters of one device, across its connections (under s->stat_lock). */
struct cloud_device {
	int sessions; /* authenticated connections now */
	struct es_sync_peer_status st;
	struct cloud_device *next;
};

/* Chunks held in memory: at most CLOUD_HELD_MAX bytes over every
 * connection, SYNC_WINDOW_MAX per upload (the window hello announces). */
#define CLOUD_HELD_MAX (256u << 20)
/* Tombstones of uploads in progress (begin .. commit), in memory: at most
 * CLOUD_TOMBS_MAX over every connection (each upload may have 2^20),
 * counted as their begin announces them. */
#define CLOUD_TOMBS_MAX (2u << 20)
/* Clock runs of uploads in progress, in memory: at most CLOUD_CLOCKS_MAX
 * over every connection, counted as their begin announces them. A run is
 * 16 bytes, so 2^22 of them are 64 MiB, a quarter of what the held
 * chunks may take (CLOUD_HELD_MAX), and four uploads of the most runs a
 * segment may have (2^20) still go at once; most segments have far fewer
 * runs than rows. */
#define CLOUD_CLOCKS_MAX (4u << 20)

/* A chunk that arrived ahead of the staged length (its data a copy). */
struct cloud_held {
	uint64_t off;
	size_t n;
	unsigned char *data;
};

/*
 * A list that comes with an upload in pages, its tombstones or its clock
 * runs (kind says which): begin announces total and brings the first
 * page, more_tombstones or more_clocks the rest. Every entry kept counts
 * in *held, the count of its kind over every connection.
 */
struct cloud_list {
	const struct sync_list_kind *kind;
	void *v; /* malloc'ed, n entries */
	size_t n;
	uint64_t total;
	atomic_size_t *held;
};

/*
 * The upload a connection is in the middle of (begin .. commit). Chunks
 * up to SYNC_WINDOW_MAX chunk sizes ahead of the staged length wait in
 * held[] until the gap before them is written (chunks of one connection
 * can reach the handlers out of order: they run on several workers).
 * Every held byte is counted in *held_total, every entry its begin
 * announced for its lists in theirs (from begin, so that an upload let
 * in can finish them), which release gives back.
 */
struct cloud_upload {
	int active;
	struct cloud_held held[SYNC_WINDOW_MAX];
	size_t n_held;
	atomic_size_t *held_total;
	struct es_sync_collection coll;
	struct es_sync_segment seg;
	struct cloud_list tombs;  /* struct es_sync_tombstone */
	struct cloud_list clocks; /* struct es_clock_run */
	char key[SYNC_KEY_LEN + 1];
	int holding; /* of key, from begin (sync_staging_hold) */
	struct sync_stage_writer w;
	/* Where the chunks' time went (sums in microseconds), logged at
	 * debug level with the install: from receipt to a worker, the
	 * worker's checks, the wait for the session (another request of the
	 * connection, or cloud_stream waiting for the chunk before's
	 * writeback), and the pwrite. */
	struct cloud_upload_times {
		uint64_t begun_us, chunks, bytes;
		uint64_t queued, checked, waited, written;
	} times;
};

/* The segment a connection is downloading, kept open between fetches. */
struct cloud_fetch {
	int fd; /* -1: none */
	char coll[ES_SYNC_NAME_MAX + 1];
	char origin[ES_SYNC_DEVICE_MAX + 1];
	uint64_t seq;
	int index; /* the segment's index file, not the segment */
	uint64_t size;
};

/* A list (tombstones, clock runs) of the segment a connection is
 * downloading, read from the host once for all its pages. */
struct cloud_lcache {
	int valid;
	char coll[ES_SYNC_NAME_MAX + 1];
	uint64_t add_version;
	void *v;
	size_t n;
};

struct cloud_session {
	uint32_t pipe;
	int refs; /* under c->sess_lock */
	/* sync_mono_ms when a request last took or gave the session back
	 * (cloud_session_get, put); under c->sess_lock */
	uint64_t active_ms;
	struct cloud_session *next;
	pthread_mutex_t lock; /* everything below */
	int authed;
	char device[ES_SYNC_DEVICE_MAX + 1];
	unsigned char nonce[SYNC_NONCE_LEN];
	int has_nonce;
	struct cloud_device *dev; /* once authed */
	struct cloud_upload up;
	struct cloud_fetch fetch;
	struct cloud_lcache tombs, clocks;
};

enum cloud_ctx_state { CTX_IDLE, CTX_RECV, CTX_WORK, CTX_SEND };

/* One request in flight: nng context + aio, state machine in cloud.c. */
struct cloud_ctx {
	struct sync_cloud *c;
	nng_ctx ctx;
	nng_aio *aio;
	enum cloud_ctx_state state;
	nng_msg *msg;
	struct cloud_ctx *next; /* work queue */
	uint64_t t_recv;	/* sync_mono_us when its request arrived */
};

struct sync_cloud {
	struct es_sync *s;
	struct sync_url url;
	char listen_url[320]; /* with the bound port */
	char probe_url[320];
	nng_socket sock;
	int sock_open;
	nng_listener listener;
	nng_tls_config *tls; /* server */
	size_t recv_max;

	struct cloud_ctx ctxs[CLOUD_CTXS];
	pthread_t workers[CLOUD_WORKERS];
	size_t n_workers;
	pthread_t watchdog;
	int watchdog_on;
	int probing; /* ipc:// only: the watchdog probes the listener */
	/* The watchdog's look for connections wedged in nng (cloud.c,
	 * wedge_check); its thread alone touches these. */
	struct cloud_closing {
		uint32_t pipe;
		uint64_t since; /* ms: the first look that saw it */
		unsigned looks; /* in a row */
	} closing_seen[CLOUD_CLOSING];
	size_t n_closing_seen;
	int wedge_told; /* the host was asked for a restart */
	int no_stats;	/* nng gave no statistics (logged) */

	pthread_mutex_t send_lock; /* closing, against replies */
	int closing;
	pthread_mutex_t qlock; /* the work queue */
	pthread_cond_t qcond;
	struct cloud_ctx *qhead, *qtail;
	int qstop;

	pthread_mutex_t sess_lock;
	struct cloud_session *sess[CLOUD_BUCKETS];
	size_t n_sess;

	struct cloud_device *devices; /* under s->stat_lock */
	size_t n_devices;

	atomic_uint accepted;	   /* connections our socket accepted */
	atomic_size_t held_bytes;  /* every session's held chunks */
	atomic_size_t tombs_held;  /* every session's upload's tombstones */
	atomic_size_t clocks_held; /* ... and clock runs */
	uint64_t recoveries;
};

/* cloud_session.c */
void cloud_sessions_init(struct sync_cloud *c);
void cloud_sessions_fini(struct sync_cloud *c);
void cloud_pipe_event(nng_pipe p, nng_pipe_ev ev, void *arg);
/* The session of connection pipe, or NULL; under c->sess_lock, and no
 * reference taken (cloud_session_get takes one). */
struct cloud_session *cloud_session_find(struct sync_cloud *c, uint32_t pipe);
struct cloud_session *cloud_session_get(struct sync_cloud *c, uint32_t pipe);
void cloud_session_put(struct sync_cloud *c, struct cloud_session *ss);
/* Closes the connections that no request holds and that have had none
 * for idle_ms (the watchdog calls it; idle_timeout_ms in sync.h). */
void cloud_sessions_close_idle(struct sync_cloud *c, uint64_t idle_ms);
void cloud_session_end_upload(struct sync_cloud *c, struct cloud_session *ss);
/* Marks ss authenticated as device (device counters created if new). */
int cloud_session_auth(struct sync_cloud *c, struct cloud_session *ss,
		       const char *device);
/*
 * cloud_admit: 0 if device (identity proven) may sync here: in
 * allow_devices, lab mode, or approved by the host; else -1 with f filled
 * in (the device then counts as awaiting approval).
 */
int cloud_admit(struct sync_cloud *c, const char *device, struct sync_fail *f);

/*
 * The handlers: 0 with the ok reply in out, or -1 with f filled in.
 * Called with the session's lock held.
 */
typedef int cloud_handler(struct sync_cloud *c, struct cloud_session *ss,
			  const struct sync_req *rq, struct es_cbor_enc *out,
			  struct sync_fail *f);
/* cloud_upload.c */
cloud_handler cloud_begin, cloud_more_tombstones, cloud_more_clocks,
    cloud_chunk, cloud_commit;
/* Frees what an upload holds (its lists, held chunks) and clears it. */
void cloud_upload_release(struct cloud_upload *up);
/* cloud_ops.c */
cloud_handler cloud_collections, cloud_changes, cloud_tombstones, cloud_clocks,
    cloud_fetch;
/* Adds to the device's counters (st fields chosen by the caller). */
void cloud_count(struct sync_cloud *c, struct cloud_session *ss,
		 uint64_t checksum_failures, uint64_t segments_received,
		 uint64_t segments_sent);

/* When a request arrived and when a worker took it (cloud_handle's
 * timing of chunks). */
struct cloud_worker {
	uint64_t t_recv, t_taken;
	int stream; /* set by cloud_handle: call cloud_stream after the reply */
};

/*
 * cloud_stream starts the writeback of the chunks the upload of pipe's
 * session wrote and acknowledged (sync_staging_stream), after their
 * reply went.
 */
void cloud_stream(struct sync_cloud *c, uint32_t pipe);

/* cloud_ops.c: handles one request; the reply is left in out. */
void cloud_handle(struct sync_cloud *c, uint32_t pipe, const void *buf,
		  size_t len, struct es_cbor_enc *out, struct cloud_worker *w);

#endif
