/*
 * Private to the agent: the local API server. It listens on a Unix socket
 * file and speaks nng's REQ/REP over ipc (rep_ipc.c), so any nng REQ
 * socket dialing ipc://<path> is a client. A pool of worker threads
 * decodes each CBOR request, calls the engine and encodes the reply
 * (agent/PROTOCOL.md). Bad requests get an error reply naming what was
 * wrong; peers whose uid/gid is not allowed are disconnected. Logs go
 * through config.log, from any thread.
 */
#ifndef EDGESYNC_API_SERVER_H
#define EDGESYNC_API_SERVER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "engine.h"

struct es_api_config {
	/*
	 * The socket file's path; its directory is made 0750. The socket
	 * is bound as "<socket_path>.new" first (linked into place), so
	 * the path must be at most 103 bytes.
	 */
	const char *socket_path;
	unsigned workers;     /* concurrent requests, default 16 */
	size_t max_message;   /* a longer request drops its connection;
			       default 64 MiB, at least 64 KiB */
	unsigned max_clients; /* connections at once, default 4096 (and
				    at most half the open-file limit) */
	/* A client that takes no reply, or stops in the middle of a
	 * request, for this long is disconnected; default 30 s. */
	unsigned send_timeout_ms;
	const uid_t *allow_uids; /* besides root and the agent's own uid */
	size_t n_allow_uids;
	const gid_t *allow_gids;
	size_t n_allow_gids;
	void (*log)(void *arg, enum es_log_level level, const char *msg);
	void *log_arg;
};

struct es_api_server;

/* Starts listening; returns once the socket file exists (mode 0660). */
int es_api_server_start(struct es_api_server **sp, struct es_engine *e,
			const struct es_api_config *c);

/* Requests received and waiting for a worker. */
unsigned es_api_server_waiting(struct es_api_server *s);

/*
 * Turns new connections away, lets requests in flight finish (requests
 * arriving meanwhile are answered shutting_down), removes the socket file
 * (if it is still this server's).
 */
void es_api_server_stop(struct es_api_server *s);

#endif
