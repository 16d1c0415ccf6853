/*
 * Private to the agent: the local API server. It listens on an ipc://
 * socket file with nng REP, serves requests on a pool of worker contexts
 * (one nng_ctx and aio each, so slow requests do not block fast ones),
 * decodes each CBOR request, calls the engine and encodes the reply
 * (agent/PROTOCOL.md). Bad requests get an error reply naming what was
 * wrong; peers whose uid/gid is not allowed are disconnected. A watchdog
 * thread restarts the listener if it stops accepting (api_server.c).
 * Logs go through config.log, from any thread.
 */
#ifndef EDGESYNC_API_SERVER_H
#define EDGESYNC_API_SERVER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "engine.h"

/* es_api_config.watchdog_ms: no listener watchdog (for tests). */
#define ES_API_WATCHDOG_OFF ((unsigned)-1)

struct es_api_config {
	/*
	 * The socket file's path; its directory is made 0750. Its listener
	 * binds "<socket_path>.new" first (renamed into place), so the path
	 * must be at most 103 bytes.
	 */
	const char *socket_path;
	unsigned workers;   /* concurrent requests, default 16 */
	size_t max_message; /* NNG_OPT_RECVMAXSZ, default 64 MiB */
	/*
	 * How often the listener is checked and restarted if it stopped
	 * accepting connections (nng bug #1518), in ms; default 2000.
	 */
	unsigned watchdog_ms;
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

/*
 * Stops the watchdog, stops accepting, lets requests in flight finish,
 * removes the socket file (if it is still this server's).
 */
void es_api_server_stop(struct es_api_server *s);

#endif
