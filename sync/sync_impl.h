/*
 * Private to sync: the handle, shared helpers, and the interfaces between
 * sync's files:
 *
 *   sync.c        es_sync_start/stop/now/status: configuration checks,
 *                 the handle, logging, clocks, the staging sweep
 *   cloud.c       the listening side: socket, contexts, workers, watchdog
 *   cloud_session.c  sessions (one per connection) and device counters
 *   cloud_ops.c   the cloud's handler of each message type
 *   edge.c        the dialing side: one thread per peer, rounds, backoff
 *   edge_up.c     uploads; edge_down.c downloads
 *   staging.c     the staging directory (staging.h)
 *   wire*.c       the protocol's messages (wire.h)
 *   ident.c       TLS configurations, device proof, the token
 *   url.c, io.c   URLs and system calls
 */
#ifndef EDGESYNC_SYNC_IMPL_H
#define EDGESYNC_SYNC_IMPL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include <sys/types.h>

#include "edgesync/sync.h"
#include "staging.h"

/*
 * Codes private to sync, in its reserved range; es_sync_strerror names
 * them too in case one reaches a caller.
 */
#define SYNC_E_OFFSET  (-5290) /* staging: not the durable offset */
#define SYNC_E_STOPPED (-5291) /* es_sync_stop was called */
#define SYNC_E_RESTART (-5292) /* a transfer must start over (begin) */

/* A peer may be this far ahead of our wall clock before we stop
 * following its clock (manifest: bounding skew is the caller's policy). */
#define SYNC_CLOCK_AHEAD_MS (24ull * 3600 * 1000)

struct sync_cloud;
struct sync_peer;
struct sync_signer;
struct sync_verifier;

struct es_sync {
	struct es_sync_config cfg; /* every string and array a copy */
	struct es_sync_host host;
	struct sync_staging staging;
	struct sync_signer *signer;	/* edge with TLS */
	struct sync_verifier *verifier; /* cloud with TLS */
	atomic_int stopping;

	pthread_mutex_t lock; /* wake, and the condition below */
	pthread_cond_t cond;  /* CLOCK_MONOTONIC; stop and sync-now */
	uint64_t wake;

	pthread_mutex_t stat_lock; /* every peer status */
	pthread_mutex_t sweep_lock;
	uint64_t last_sweep_ms;
	atomic_uint_fast64_t log_window; /* rate limit of peer-caused logs */
	atomic_uint log_count;

	struct sync_cloud *cloud;
	struct sync_peer *peers;
	size_t n_peers;
};

/* ---- sync.c ----------------------------------------------------------- */

enum { SYNC_LOG_ERROR, SYNC_LOG_WARN, SYNC_LOG_INFO, SYNC_LOG_DEBUG };

void sync_log(struct es_sync *s, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Like sync_log, for events a peer can cause at will: at most 20 lines
 * in any 10 seconds, then one line saying how many were dropped. */
void sync_log_peer(struct es_sync *s, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

uint64_t sync_wall_ms(void); /* Unix ms */
uint64_t sync_mono_ms(void);
uint64_t sync_mono_us(void);
/* The instant ms on the monotonic clock (sync_mono_ms), for timed waits. */
struct timespec sync_mono_ts(uint64_t ms);
/* An HLC for "now" from the wall clock (ms << 16). */
uint64_t sync_wall_hlc(void);

/*
 * sync_sleep waits up to ms, until stop, or (wake_seen not NULL) until
 * es_sync_now bumps the wake counter past *wake_seen (which it updates).
 * Returns SYNC_E_STOPPED when stopping, else 0.
 */
int sync_sleep(struct es_sync *s, uint64_t ms, uint64_t *wake_seen);
int sync_is_stopping(struct es_sync *s);

/* Passes a peer's clock to the host unless it is implausibly far ahead. */
void sync_observe_hlc(struct es_sync *s, uint64_t hlc, const char *from);

/* Sweeps the staging directory if an hour has passed since the last. */
void sync_sweep_maybe(struct es_sync *s, int force);

/* The text of an nng error as a negative errno-like code. */
int sync_nng_err(int rv);

/*
 * The connections nng counts on its object of kind ("dialer") whose id
 * is id (its "pipes" statistic), or -1 if it cannot say. nng counts a
 * connection from before NNG_PIPE_EV_ADD_PRE until its close has
 * finished, after NNG_PIPE_EV_REM_POST: a count above ours that stays is
 * a close that never finished (README, "Known limits").
 */
int sync_nng_pipes(const char *kind, int id);

/*
 * The ids of the connections of socket sock_id that nng holds statistics
 * for, in a malloc'ed *ids: nng keeps them from just after
 * NNG_PIPE_EV_ADD_PRE (for a connection it accepted) until its close has
 * finished, after NNG_PIPE_EV_REM_POST. How many, or -ENOENT if nng gives
 * no statistics, or -ENOMEM.
 */
int sync_nng_socket_pipes(int sock_id, uint32_t **ids);

/* ---- sync_config.c ---------------------------------------------------- */

/* Checks c and h, logging what is wrong: 0 or ES_E_SYNC_CONFIG. */
int sync_config_check(struct es_sync *s, const struct es_sync_config *c,
		      const struct es_sync_host *h);
/* Deep copy with defaults filled in; free with sync_config_free. */
int sync_config_copy(struct es_sync_config *d, const struct es_sync_config *c);
void sync_config_free(struct es_sync_config *d);

/* ---- io.c ------------------------------------------------------------- */

int sync_pread_all(int fd, void *buf, size_t len, off_t off);
int sync_pwrite_all(int fd, const void *buf, size_t len, off_t off);
int sync_fsync_dir(const char *dir);
/* Reads a whole (small) file into a NUL-terminated malloc'ed buffer. */
int sync_read_file(const char *path, size_t max, char **out, size_t *len);
int sync_random(void *buf, size_t n);

/* ---- url.c ------------------------------------------------------------ */

enum sync_scheme { SYNC_URL_TCP, SYNC_URL_TLS, SYNC_URL_IPC };

struct sync_url {
	enum sync_scheme scheme;
	char host[256]; /* without brackets; "" for a wildcard */
	unsigned port;
	char path[256]; /* ipc */
};

/* tcp://host:port, tls+tcp://host:port, ipc:///path; -EINVAL else. */
int sync_url_parse(const char *url, struct sync_url *u);
/* Writes u back as a URL, with host replaced if host is not NULL. */
int sync_url_format(const struct sync_url *u, const char *host, char *buf,
		    size_t size);

/* ---- cloud.c, edge.c -------------------------------------------------- */

int sync_cloud_start(struct es_sync *s);
void sync_cloud_stop(struct es_sync *s);
int sync_cloud_status(struct es_sync *s, struct es_sync_peer_status **out,
		      size_t *n);

int sync_edge_start(struct es_sync *s);
void sync_edge_stop(struct es_sync *s);
int sync_edge_status(struct es_sync *s, struct es_sync_peer_status **out,
		     size_t *n);

#endif
