/*
 * Private to sync: one peer of an edge (a cloud it dials), shared by
 * edge.c (thread, connection, session, requests, status), edge_up.c and
 * edge_down.c. Everything in struct sync_peer but st is touched only by
 * the peer's own thread; st only under s->stat_lock.
 */
#ifndef EDGESYNC_SYNC_EDGE_H
#define EDGESYNC_SYNC_EDGE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include <nng/nng.h>
#include <nng/supplemental/tls/tls.h>

#include "edgesync/cbor.h"
#include "sync_impl.h"
#include "wire.h"

/* Reply timeouts: most requests, and a commit (+1 s per 20 MB). */
#define PEER_TIMEOUT_MS 60000
#define PEER_SEND_MS	10000
/* How long stop lets a peer's thread finish its request (sync_edge_stop). */
#define PEER_STOP_GRACE_MS 2000
/* How long, and at how many failed rounds in a row, a connection must
 * look wedged (peer_wedged) before the edge gives up on this process. */
#define PEER_WEDGE_SEEN 3
#define PEER_WEDGE_MS	60000
#define PEER_ATTEMPTS	5     /* restarts of one segment in one round */
#define PEER_BAD_CHUNKS 5     /* checksum failures of one chunk in a row */
#define PEER_PAGES_MAX	10000 /* changes replies per collection per round */
/* With a bandwidth limit, a chunk is at most this many seconds of it. */
#define PEER_CHUNK_SECONDS 60

/* Segments a peer awaits the cloud's index of (fetch_indexes). */
#define PEER_INDEX_WAITS 16

struct sync_peer {
	struct es_sync *s;
	size_t index;
	const char *url;
	struct sync_url u;
	pthread_t thread;
	int started;

	pthread_mutex_t sock_lock; /* sock against es_sync_stop */
	nng_socket sock;
	int sock_open;
	nng_dialer dialer; /* valid while sock_open */
	nng_tls_config *tls;
	atomic_uint pipe_gen; /* bumped by every new connection */
	atomic_int pipes;
	atomic_uint pipe_id; /* the newest connection (nng_pipe_id), 0: none */
	uint64_t wedged_since; /* ms: the first of wedged_seen (peer_wedged) */
	unsigned wedged_seen;  /* failed rounds in a row that looked wedged */
	int no_stats;	       /* nng gave no dialer statistics (logged) */

	unsigned hello_gen; /* pipe_gen when hello succeeded */
	int hello_ok;
	char cloud[ES_SYNC_DEVICE_MAX + 1]; /* the peer's device id */
	uint32_t chunk;			    /* min(ours, the peer's) */
	uint32_t window;		    /* min(ours, the peer's) */
	size_t recv_max;

	struct es_cbor_enc enc; /* the request being built */
	nng_msg *reply_msg;	/* the last reply; rp points into it */
	struct sync_reply rp;
	char err[ES_CBOR_ERR_MAX]; /* why the round failed */
	char logged[sizeof(((struct es_sync_peer_status *)0)->last_error)];

	int64_t tokens; /* bandwidth bucket, bytes */
	uint64_t tokens_ms;
	uint64_t rng;
	uint64_t wake_seen;

	/* fetch_indexes: segments listed without an index, awaited since
	 * (edge_down.c, index_awaited); the oldest entry is reused */
	struct peer_index_wait {
		char coll[ES_SYNC_NAME_MAX + 1];
		char origin[ES_SYNC_DEVICE_MAX + 1];
		uint64_t seq;
		uint64_t since_ms; /* 0: a free entry */
		int expired;	   /* waited enough: taken alone */
	} iwait[PEER_INDEX_WAITS];

	struct es_sync_peer_status st;
};

/*
 * peer_request sends the request in p->enc (saying hello first if this
 * connection has not) and parses the reply into p->rp, valid until the
 * next request. Returns 0 for an ok reply, ES_E_SYNC_REFUSED for a
 * refusal (p->rp.code says which), or a transport or protocol error.
 */
int peer_request(struct sync_peer *p, enum sync_type t, int timeout_ms);

/* Says hello if this connection has not (p->rp is then hello's reply). */
int peer_session(struct sync_peer *p);

/* How long a request waits for its reply: ms, unless a test shortens it. */
int peer_reply_ms(int ms);

/*
 * The transfer machinery both directions share (edge_xfer.c): the bytes
 * [off, size) of one segment move in pieces of p->chunk / p->window bytes
 * (sync_piece_size), with up to p->window requests in flight, so at most
 * one chunk is in flight; each request on its own nng context of p->sock
 * ("chunk" for an upload, "fetch" for a download).
 *
 * ops->request builds the request for the piece [off, off + n) as an nng
 * message. ops->reply takes the reply to it, which peer_transfer has made
 * the peer's last reply (p->rp, ok or refusal); replies are taken in the
 * order the requests were sent, whatever order they arrive in, so a
 * download appends in order. ops->reply returns 0 (the piece is done),
 * XFER_AGAIN (send the same piece again: a checksum failure),
 * XFER_RESUME with *resume set (drop every piece in flight and go on at
 * *resume: the receiver is elsewhere), or an error that ends the
 * transfer. PEER_BAD_CHUNKS AGAIN/RESUME in a row without a piece done
 * fail the transfer; a "session" refusal returns SYNC_E_RESTART (the
 * connection changed: begin again). Bytes are counted as they go out
 * and come in. Returns 0 when every piece up to size is done.
 */
#define XFER_AGAIN  1
#define XFER_RESUME 2

struct xfer_ops {
	enum sync_type type;
	int (*request)(struct sync_peer *p, void *arg, uint64_t off, size_t n,
		       nng_msg **msg);
	int (*reply)(struct sync_peer *p, void *arg, uint64_t off, size_t n,
		     uint64_t *resume);
};

int peer_transfer(struct sync_peer *p, const struct xfer_ops *ops, void *arg,
		  uint64_t off, uint64_t size);

/* An nng message holding p->enc (a request with no bulk data). */
int peer_msg(struct sync_peer *p, nng_msg **msg);

/*
 * peer_refusal turns p->rp's refusal of what into a return code:
 * SYNC_E_RESTART for "state" and "session" (start the transfer over),
 * else the ES_E_SYNC_* code, with p->err saying why.
 */
int peer_refusal(struct sync_peer *p, const char *what);

/* rc is the connection's failure, not the request's: the round ends. */
int peer_transport_err(int rc);

/* Records why the round fails (p->err) and returns rc. */
int peer_errf(struct sync_peer *p, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Waits until the bandwidth limit allows n more bytes. */
int peer_throttle(struct sync_peer *p, size_t n);

/* Adds to the status counters. */
void peer_count(struct sync_peer *p, uint64_t checksum_failures,
		uint64_t segments_sent, uint64_t segments_received);
void peer_pending(struct sync_peer *p, uint64_t segments, uint64_t bytes,
		  uint64_t oldest_seal_hlc);

int sync_upload_all(struct sync_peer *p);
int sync_download_all(struct sync_peer *p);

#endif
