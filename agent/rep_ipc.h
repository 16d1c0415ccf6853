/*
 * The reply side of nng's REQ/REP protocol (SP rep0, whose peer is req0)
 * over nng's ipc transport framing, on a Unix stream socket this module
 * accepts and drives itself with epoll. Any nng REQ socket that dials
 * ipc://<path> talks to it unchanged; the agent's API server uses it in
 * place of an nng listener (rep_ipc.c says why).
 *
 * The caller binds and listens; rep_ipc owns the descriptor from then on.
 * Requests reach the caller on the event-loop thread (it must queue them,
 * never block); the caller answers each one exactly once, from any
 * thread, with rep_ipc_reply or rep_ipc_drop.
 */
#ifndef EDGESYNC_REP_IPC_H
#define EDGESYNC_REP_IPC_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "engine.h" /* enum es_log_level */

struct rep_ipc;
struct rep_conn;

#define REP_IPC_MAX_HOPS  8    /* SP backtrace words a request may carry */
#define REP_IPC_MAX_CONNS 4096 /* connections at once, by default */

/*
 * One per connection, for the caller: its requests waiting in the
 * caller's queue, so that connections can be served in turn. The caller
 * owns the fields (under its own lock); the flow lives as long as a
 * request of its connection is unanswered.
 */
struct rep_ipc_flow {
	struct rep_ipc_req *head, *tail;
	struct rep_ipc_flow *next;
	int queued;
};

struct rep_ipc_req {
	const void *body; /* the request, SP header removed */
	size_t len;
	int late;		   /* arrived after rep_ipc_stop began */
	struct rep_ipc_flow *flow; /* its connection's */
	/* private */
	struct rep_conn *conn;
	uint8_t *msg; /* the whole received message */
	size_t hdr_len;
	struct rep_ipc_req *next; /* free for the caller's queue */
};

struct rep_ipc_peer {
	uid_t uid;
	gid_t gid;
	pid_t pid;
};

struct rep_ipc_config {
	int fd;		      /* bound and listening; rep_ipc closes it */
	size_t max_message;   /* a longer body drops its connection */
	unsigned max_pending; /* requests in flight per connection */
	unsigned max_conns;   /* 0: REP_IPC_MAX_CONNS (see rep_ipc.c) */
	/* A reply not taken for this long drops its connection, and so
	 * does a message that stops arriving. */
	unsigned send_timeout_ms;
	/* At accept: 1 admits the peer, 0 closes the connection at once. */
	int (*admit)(void *arg, const struct rep_ipc_peer *peer);
	/* A request, on the loop thread: queue it, never block. */
	void (*request)(void *arg, struct rep_ipc_req *r);
	void (*log)(void *arg, enum es_log_level level, const char *msg);
	void *arg;
};

int rep_ipc_start(struct rep_ipc **sp, const struct rep_ipc_config *c);

/*
 * Sends body as r's reply (copied) and frees r; from any thread. A reply
 * for a connection that is gone is dropped. 0 or -ENOMEM (r freed too).
 */
int rep_ipc_reply(struct rep_ipc *s, struct rep_ipc_req *r, const void *body,
		  size_t len);

/* Frees r without a reply (the client's nng resends it or times out). */
void rep_ipc_drop(struct rep_ipc *s, struct rep_ipc_req *r);

/*
 * Turns new connections away, waits until every request received before
 * is answered (requests arriving meanwhile keep coming, marked late),
 * gives the replies up to settle_ms to leave, then closes every
 * connection and the listening socket and frees s. Every request handed
 * out must be answered or dropped for this to return.
 */
void rep_ipc_stop(struct rep_ipc *s, unsigned settle_ms);

#endif
