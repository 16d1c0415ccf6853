/*
 * Private to the agent: the local API server. It listens on an ipc://
 * socket file with nng REP, serves requests on a pool of worker contexts
 * (one nng_ctx and aio each, so slow requests do not block fast ones),
 * decodes each CBOR request, calls the engine and encodes the reply
 * (agent/PROTOCOL.md). Bad requests get an error reply naming what was
 * wrong; peers whose uid/gid is not allowed are disconnected.
 */
#ifndef EDGESYNC_API_SERVER_H
#define EDGESYNC_API_SERVER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "engine.h"

struct es_api_config {
	const char *socket_path;  /* file path; its directory made 0750 */
	unsigned workers;         /* concurrent requests, default 16 */
	size_t max_message;       /* NNG_OPT_RECVMAXSZ, default 64 MiB */
	const uid_t *allow_uids;  /* besides root and the agent's own uid */
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

/* Stops accepting, lets requests in flight finish, removes the socket. */
void es_api_server_stop(struct es_api_server *s);

#endif
