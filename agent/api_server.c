/*
 * Local API server: nng REP on ipc://<socket file>, `workers` contexts.
 *
 * Threads. Engine calls block: an insert waits for its fsync (ms), a
 * search reads index pages (up to tens of ms). nng runs completion
 * callbacks on a small shared task queue (2 x cores threads, also used by
 * sync's sockets), so they never call the engine: a callback only moves
 * its worker to the next state and, for a received request, queues it.
 * A pool of `workers` threads (one per context, so a slow request never
 * holds up a fast one, and concurrent inserts can share an fsync) takes
 * queued workers, decodes, calls the engine, encodes and sends the reply.
 * One more thread, the watchdog, checks the listener (below).
 *
 * Worker states (all changes under s->lock):
 *
 *   RECV --request (worker_cb)--> QUEUED --taken (pool_main)--> BUSY
 *    ^                                                            |
 *    +------ reply sent (worker_cb) <------ SEND <--- serve() -----+
 *
 *   RECV --recv cancelled or socket closed--> DONE
 *   SEND --reply sent while stopping--------> DONE
 *
 * Invariants:
 *   1. A worker's aio has at most one operation in flight; its state says
 *      which, and only that operation's completion (or the pool thread
 *      holding it BUSY) touches the worker.
 *   2. Once s->stopping is set, every posted receive is cancelled:
 *      es_api_server_stop cancels workers in RECV, and worker_recv checks
 *      stopping after posting. So every worker reaches DONE. The same
 *      holds for the watchdog's probe (probe_io).
 *   3. Memory is per worker (encoder, query and hit buffers) or per
 *      request (ids, floats, both bounded by max_message): nothing is
 *      allocated per connection, so idle connections cost only nng's pipe.
 *   4. Peers are checked when their pipe is added (pipe_cb): root, the
 *      agent's own uid, allow_uids and allow_gids (the peer's gid or any
 *      group its user belongs to); others are disconnected at once.
 *   5. Listeners are created and closed by start (before the watchdog
 *      runs) and the watchdog thread only; stop joins the watchdog before
 *      anything else, so a restart never overlaps a stop.
 *   6. A listener binds <path>.new, which is then linked (start) or
 *      renamed (restart) to path: path never goes missing while the
 *      server runs, and nng's unlink of a listener's path when it closes
 *      hits the temporary name, never the socket file in use. The file is
 *      removed at stop only if it is still ours (same device and inode).
 *
 * The hand-off to the pool costs a thread wake-up per request; a variant
 * with one synchronous thread per context was not clearly faster on ping
 * (medians 0.13 ms here, 0.12 ms there, 0.11 ms for a bare nng round
 * trip, with a spread of 0.1 to 0.3 ms on a loaded 2-core machine).
 *
 * Listener watchdog. nng 1.5.2 (Debian 12) has bug #1518 (fixed upstream
 * by PR #1519): after a peer connects and hangs up before the SP
 * handshake, the listener never hands a connection to the socket again.
 * Connections accepted before keep working; new ones even complete the
 * transport handshake, then wait forever. Any user who can reach the
 * socket file can cause it. So every watchdog_ms, and soon after a
 * connection of the current listener closed without sending a request
 * (pipe_gone), the watchdog dials path with nng and sends a ping (probe).
 * No reply, and no connection reached the socket meanwhile (pipe_cb counts
 * them, so busy workers are not mistaken for a stuck listener): the
 * watchdog binds a new listener, renames it over path (relisten) and
 * logs a warning. The stuck listener is retired, not closed at once:
 * closing a listener closes the connections it accepted, and a request
 * on its way in on one would be lost. It is closed (close_retired) once
 * no request came through it for RETIRE_QUIET_MS and none is being
 * served, or after RETIRE_MAX_MS; that also disconnects the clients that
 * connected while it was stuck, and their nng dialers reconnect to the
 * new listener. Its accepted clients reconnect the same way, between two
 * requests (one sent at the very moment of the close would see its
 * connection close, as when the agent restarts). nng 1.5.2 leaks the
 * stuck listener's endpoint and the connections that reached it while
 * it was stuck (a few KB per freeze).
 *
 * Stop: stopping is set and the watchdog joined; pipe_cb turns away new
 * connections; receives are cancelled; requests received before are
 * served (those received after get shutting_down); once every worker is
 * DONE the socket is closed (with its listeners), and the socket file
 * removed if it is still ours. Listeners are not closed earlier, since
 * that closes the connections they accepted.
 */
#include <errno.h>
#include <grp.h>
#include <inttypes.h>
#include <pthread.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/protocol/reqrep0/req.h>
#include <nng/supplemental/util/platform.h>

#include "api_codec.h"
#include "api_ops.h"
#include "api_server.h"

#define DEFAULT_WORKERS	    16
#define MAX_WORKERS	    1024
#define DEFAULT_MAX_MESSAGE ((size_t)64 << 20)
#define SEND_TIMEOUT_MS	    30000 /* a client that stops reading its reply */
#define SETTLE_MS	    100 /* lets replies sent during stop leave the socket */
#define MAX_GROUPS	    1024
#define TMP_SUFFIX	    ".new" /* where a listener binds first */
#define DEFAULT_WATCHDOG_MS 2000
#define PROBE_MS	    1000 /* the probe's send, then its receive */
#define KICK_GAP_MS	    500	 /* least time between two kicked checks */
#define RETIRE_POLL_MS	    50
#define RETIRE_QUIET_MS	    1000
#define RETIRE_MAX_MS	    30000
#define MAX_RETIRED	    8
#define ASKED_BITS	    6 /* 64 slots of pipes that sent a request */

enum wstate { W_RECV, W_QUEUED, W_BUSY, W_SEND, W_DONE };

struct worker {
	struct es_api_server *s;
	nng_ctx ctx;
	int ctx_open;
	nng_aio *aio;
	enum wstate state;
	int late;     /* received after stop began */
	uint32_t lid; /* listener its request came through */
	nng_msg *req;
	struct worker *next; /* in the queue */
	struct api_ops ops;
	struct api_enc enc;
};

/* A listener replaced by the watchdog, kept for its connections. */
struct retired {
	nng_listener l;
	uint64_t since; /* retired at, ms */
	uint64_t last;	/* last request through it, ms */
};

struct es_api_server {
	struct es_engine *engine;
	nng_socket sock;
	int sock_open;
	int bound; /* the socket file is ours: */
	dev_t dev; /* its device and inode, to remove only ours */
	ino_t ino;
	char *path;
	char *tmp_path; /* path TMP_SUFFIX */
	size_t max_message;
	uid_t self_uid;
	uid_t *allow_uids;
	size_t n_allow_uids;
	gid_t *allow_gids;
	size_t n_allow_gids;
	void (*log)(void *arg, enum es_log_level level, const char *msg);
	void *log_arg;

	pthread_mutex_t lock;
	pthread_cond_t work; /* pool threads wait for queued workers */
	pthread_cond_t done; /* stop waits for every worker DONE */
	struct worker *head, *tail;
	int stopping;
	int pool_exit;
	time_t refused_at;	/* last refusal logged */
	unsigned refused_quiet; /* refusals not logged since */

	unsigned nworkers;
	struct worker *workers;
	unsigned nthreads;
	pthread_t *threads;

	/* the listeners and the watchdog, under lock (invariant 5) */
	nng_listener listener; /* bound to path */
	uint64_t accepted;     /* connections it handed to the socket */
	struct retired retired[MAX_RETIRED];
	unsigned n_retired;
	uint32_t asked[1 << ASKED_BITS]; /* ids of pipes that sent requests */
	unsigned watchdog_ms;
	pthread_t watchdog;
	int watchdog_started;
	pthread_cond_t wd_cv; /* CLOCK_MONOTONIC */
	int wd_kick;	      /* check soon */
	nng_aio *probe_aio;
};

static void slog(struct es_api_server *s, enum es_log_level level,
		 const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void slog(struct es_api_server *s, enum es_log_level level,
		 const char *fmt, ...)
{
	char line[512];
	va_list ap;

	if (!s->log)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	s->log(s->log_arg, level, line);
}

static int nng_errno(int rv)
{
	if (rv & NNG_ESYSERR)
		return -(rv & ~NNG_ESYSERR);
	switch (rv) {
	case NNG_ENOMEM:
		return -ENOMEM;
	case NNG_EADDRINUSE:
		return -EADDRINUSE;
	case NNG_EADDRINVAL:
	case NNG_EINVAL:
		return -EINVAL;
	case NNG_EPERM:
		return -EACCES;
	case NNG_ENOENT:
		return -ENOENT;
	case NNG_ECONNREFUSED:
		return -ECONNREFUSED;
	case NNG_ETIMEDOUT:
		return -ETIMEDOUT;
	default:
		return -EIO;
	}
}

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ---- the socket file -------------------------------------------------- */

/* Creates the missing directories above path, each 0750. */
static int make_dirs(const char *path)
{
	char *dir = strdup(path);
	struct stat st;
	int rc = 0;

	if (!dir)
		return -ENOMEM;
	for (char *p = dir + 1; rc == 0 && (p = strchr(p, '/')); p++) {
		*p = '\0';
		if (mkdir(dir, 0750) == 0) {
			if (chmod(dir, 0750) < 0) /* whatever the umask */
				rc = -errno;
		} else if (errno != EEXIST) {
			rc = -errno;
		} else if (stat(dir, &st) < 0) {
			rc = -errno;
		} else if (!S_ISDIR(st.st_mode)) {
			rc = -ENOTDIR;
		}
		*p = '/';
	}
	free(dir);
	return rc;
}

/* Whether path is still the socket file this server bound. */
static int path_is_ours(struct es_api_server *s)
{
	struct stat st;

	return lstat(s->path, &st) == 0 && st.st_dev == s->dev &&
	       st.st_ino == s->ino;
}

/* ---- the probe: a whole nng connection and a ping --------------------- */

enum { PROBE_SILENT = 1, PROBE_REFUSED = 2 };

/* The ping request, {v: 1, op: "ping"}, as an nng message. */
static int ping_msg(nng_msg **mp)
{
	struct api_enc e;
	int rv;

	api_enc_init(&e);
	api_enc_map(&e, 2);
	api_enc_kv_uint(&e, "v", API_PROTOCOL);
	api_enc_kv_text(&e, "op", "ping");
	rv = api_enc_error(&e) ? NNG_ENOMEM : nng_msg_alloc(mp, e.len);
	if (rv == 0)
		memcpy(nng_msg_body(*mp), e.buf, e.len);
	api_enc_fini(&e);
	return rv;
}

/* One send or receive on the probe's aio, cancelled by a stop. */
static int probe_io(struct es_api_server *s, nng_socket sock, int send)
{
	nng_aio *aio = s->probe_aio;
	int stopping;

	nng_aio_set_timeout(aio, PROBE_MS);
	if (send)
		nng_send_aio(sock, aio);
	else
		nng_recv_aio(sock, aio);
	pthread_mutex_lock(&s->lock);
	stopping = s->stopping;
	pthread_mutex_unlock(&s->lock);
	if (stopping) /* invariant 2: stop may have cancelled before */
		nng_aio_cancel(aio);
	nng_aio_wait(aio);
	return nng_aio_result(aio);
}

/*
 * Dials path with nng REQ and sends a ping: 0 if answered, PROBE_SILENT
 * if not within PROBE_MS each way, PROBE_REFUSED if no one listens (only
 * known with wait_dial, which waits for the connection and nng's
 * handshake), or -errno. Never a bare connect(), which hangs up before
 * the handshake and so would freeze the listener it found (nng #1518).
 */
static int probe(struct es_api_server *s, int wait_dial)
{
	char url[sizeof(((struct sockaddr_un *)0)->sun_path) + 8];
	nng_socket sock;
	nng_msg *m = NULL;
	int rv, rc;

	snprintf(url, sizeof(url), "ipc://%s", s->path);
	rv = nng_req0_open(&sock);
	if (rv)
		return nng_errno(rv);
	rv = nng_socket_set_ms(sock, NNG_OPT_REQ_RESENDTIME,
			       NNG_DURATION_INFINITE);
	if (rv == 0)
		rv = nng_dial(sock, url, NULL,
			      wait_dial ? 0 : NNG_FLAG_NONBLOCK);
	if (rv == 0)
		rv = ping_msg(&m);
	if (rv) {
		rc = rv == NNG_ECONNREFUSED ? PROBE_REFUSED : nng_errno(rv);
		goto out;
	}
	nng_aio_set_msg(s->probe_aio, m);
	if (probe_io(s, sock, 1)) {
		nng_msg_free(nng_aio_get_msg(s->probe_aio));
		rc = PROBE_SILENT;
		goto out;
	}
	rc = probe_io(s, sock, 0) ? PROBE_SILENT : 0;
	if (rc == 0)
		nng_msg_free(nng_aio_get_msg(s->probe_aio));
out:
	nng_aio_set_msg(s->probe_aio, NULL);
	nng_close(sock);
	return rc;
}

/*
 * Removes a socket file no one listens on; -EADDRINUSE if someone does
 * (an agent that answers, or one that completes the handshake only),
 * -EEXIST if path is not a socket.
 */
static int clear_stale(struct es_api_server *s)
{
	struct stat st;
	int rc;

	if (lstat(s->path, &st) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISSOCK(st.st_mode))
		return -EEXIST;
	rc = probe(s, 1);
	if (rc == -ENOENT)
		return 0; /* gone meanwhile */
	if (rc != PROBE_REFUSED)
		return rc < 0 ? rc : -EADDRINUSE;
	return unlink(s->path) < 0 && errno != ENOENT ? -errno : 0;
}

/* ---- peer credentials ------------------------------------------------- */

static int member_of(struct es_api_server *s, uid_t uid, gid_t gid)
{
	struct passwd pw, *res = NULL;
	gid_t groups[MAX_GROUPS];
	int n = MAX_GROUPS, found = 0;
	char *buf;
	size_t size = 16384;

	buf = malloc(size);
	if (!buf)
		return 0;
	if (getpwuid_r(uid, &pw, buf, size, &res) == 0 && res &&
	    getgrouplist(pw.pw_name, gid, groups, &n) >= 0) {
		for (int i = 0; i < n && !found; i++)
			for (size_t j = 0; j < s->n_allow_gids; j++)
				if (groups[i] == s->allow_gids[j])
					found = 1;
	}
	free(buf);
	return found;
}

static int peer_allowed(struct es_api_server *s, uid_t uid, gid_t gid)
{
	if (uid == 0 || uid == s->self_uid)
		return 1;
	for (size_t i = 0; i < s->n_allow_uids; i++)
		if (uid == s->allow_uids[i])
			return 1;
	for (size_t i = 0; i < s->n_allow_gids; i++)
		if (gid == s->allow_gids[i])
			return 1;
	return s->n_allow_gids && member_of(s, uid, gid);
}

/* Logs a refused peer, at most one line a second. */
static void log_refusal(struct es_api_server *s, uint64_t uid, uint64_t gid,
			uint64_t pid)
{
	time_t now = time(NULL);
	unsigned quiet = 0;
	int say = 0;

	pthread_mutex_lock(&s->lock);
	if (now != s->refused_at) {
		say = 1;
		quiet = s->refused_quiet;
		s->refused_at = now;
		s->refused_quiet = 0;
	} else {
		s->refused_quiet++;
	}
	pthread_mutex_unlock(&s->lock);
	if (say)
		slog(s, ES_LOG_WARN,
		     "refused a connection from uid %" PRIu64 " gid %" PRIu64
		     " pid %" PRIu64 ": not an allowed user or group "
		     "(%u more refused before)",
		     uid, gid, pid, quiet);
}

/* Where asked[] keeps a pipe's id (nng's ids are all odd: hashed). */
static unsigned asked_slot(uint32_t id)
{
	return (id * 2654435761u) >> (32 - ASKED_BITS);
}

/*
 * A connection closed: if it came through the current listener and never
 * sent a request (as far as asked[] remembers), have the watchdog check
 * the listener soon. (Peers that nng #1518 trips on never become pipes,
 * so the periodic check is what catches those.)
 */
static void pipe_gone(struct es_api_server *s, nng_pipe p)
{
	uint32_t lid = nng_pipe_listener(p).id;

	pthread_mutex_lock(&s->lock);
	if (!s->stopping && s->asked[asked_slot(p.id)] != p.id &&
	    lid == s->listener.id) {
		s->wd_kick = 1;
		pthread_cond_signal(&s->wd_cv);
	}
	pthread_mutex_unlock(&s->lock);
}

/* Runs on an nng thread before a new connection joins the socket. */
static void pipe_cb(nng_pipe p, nng_pipe_ev ev, void *arg)
{
	struct es_api_server *s = arg;
	uint64_t uid = UINT64_MAX, gid = UINT64_MAX, pid = 0;
	uint32_t lid;
	int stopping;

	if (ev == NNG_PIPE_EV_REM_POST) {
		pipe_gone(s, p);
		return;
	}
	if (ev != NNG_PIPE_EV_ADD_PRE)
		return;
	lid = nng_pipe_listener(p).id;
	pthread_mutex_lock(&s->lock);
	stopping = s->stopping;
	if (lid == s->listener.id)
		s->accepted++; /* the listener works */
	pthread_mutex_unlock(&s->lock);
	if (stopping) {
		nng_pipe_close(p);
		return;
	}
	if (nng_pipe_get_uint64(p, NNG_OPT_IPC_PEER_UID, &uid) == 0 &&
	    nng_pipe_get_uint64(p, NNG_OPT_IPC_PEER_GID, &gid) == 0 &&
	    peer_allowed(s, (uid_t)uid, (gid_t)gid))
		return;
	nng_pipe_get_uint64(p, NNG_OPT_IPC_PEER_PID, &pid);
	nng_pipe_close(p);
	log_refusal(s, uid, gid, pid);
}

/* ---- workers ---------------------------------------------------------- */

static void set_state(struct worker *w, enum wstate st)
{
	w->state = st;
	if (st == W_DONE)
		pthread_cond_broadcast(&w->s->done);
}

/* Posts the next receive, or ends the worker if the server is stopping. */
static void worker_recv(struct worker *w)
{
	struct es_api_server *s = w->s;
	int stopping;

	pthread_mutex_lock(&s->lock);
	stopping = s->stopping;
	set_state(w, stopping ? W_DONE : W_RECV);
	pthread_mutex_unlock(&s->lock);
	if (stopping)
		return;
	nng_aio_set_timeout(w->aio, NNG_DURATION_INFINITE);
	nng_ctx_recv(w->ctx, w->aio);
	pthread_mutex_lock(&s->lock);
	stopping = s->stopping;
	pthread_mutex_unlock(&s->lock);
	if (stopping) /* invariant 2: stop may have looked before we posted */
		nng_aio_cancel(w->aio);
}

/* Under s->lock: notes where a request came from (pipe_gone, retirees). */
static void note_request(struct es_api_server *s, struct worker *w,
			 uint32_t pipe_id)
{
	s->asked[asked_slot(pipe_id)] = pipe_id;
	if (w->lid == s->listener.id)
		return;
	for (unsigned i = 0; i < s->n_retired; i++)
		if (s->retired[i].l.id == w->lid)
			s->retired[i].last = mono_ms();
}

/* nng's completion callback: never blocks, never calls the engine. */
static void worker_cb(void *arg)
{
	struct worker *w = arg;
	struct es_api_server *s = w->s;
	int rv = nng_aio_result(w->aio);
	nng_pipe pipe = NNG_PIPE_INITIALIZER;
	uint32_t lid = 0;
	enum wstate st;
	int retry = 0;

	pthread_mutex_lock(&s->lock);
	st = w->state;
	pthread_mutex_unlock(&s->lock);
	if (st == W_SEND) {
		if (rv != 0)
			nng_msg_free(nng_aio_get_msg(w->aio));
		worker_recv(w);
		return;
	}
	if (rv == 0) {
		pipe = nng_msg_get_pipe(nng_aio_get_msg(w->aio));
		lid = nng_pipe_listener(pipe).id;
	}
	pthread_mutex_lock(&s->lock);
	if (rv == 0) {
		w->req = nng_aio_get_msg(w->aio);
		w->late = s->stopping;
		w->lid = lid;
		note_request(s, w, pipe.id);
		w->next = NULL;
		if (s->tail)
			s->tail->next = w;
		else
			s->head = w;
		s->tail = w;
		set_state(w, W_QUEUED);
		pthread_cond_signal(&s->work);
	} else if (rv == NNG_ECLOSED || rv == NNG_ECANCELED || s->stopping) {
		set_state(w, W_DONE);
	} else {
		retry = 1; /* a transient failure of this receive */
	}
	pthread_mutex_unlock(&s->lock);
	if (retry)
		worker_recv(w);
}

/* On a pool thread: runs w's request and sends the reply. */
static void serve(struct worker *w)
{
	struct es_api_server *s = w->s;
	nng_msg *req = w->req, *rep = NULL;
	int rc;

	w->req = NULL;
	rc = api_ops_handle(&w->ops, nng_msg_body(req), nng_msg_len(req),
			    w->late, &w->enc);
	nng_msg_free(req);
	if (rc == 0)
		rc = nng_msg_alloc(&rep, w->enc.len);
	if (rc) {
		slog(s, ES_LOG_ERROR, "out of memory for a reply: dropped");
		worker_recv(w);
		return;
	}
	memcpy(nng_msg_body(rep), w->enc.buf, w->enc.len);
	pthread_mutex_lock(&s->lock);
	set_state(w, W_SEND);
	pthread_mutex_unlock(&s->lock);
	nng_aio_set_msg(w->aio, rep);
	nng_aio_set_timeout(w->aio, SEND_TIMEOUT_MS);
	nng_ctx_send(w->ctx, w->aio);
}

static void *pool_main(void *arg)
{
	struct es_api_server *s = arg;
	struct worker *w;

	pthread_mutex_lock(&s->lock);
	for (;;) {
		while (!s->head && !s->pool_exit)
			pthread_cond_wait(&s->work, &s->lock);
		w = s->head;
		if (!w)
			break;
		s->head = w->next;
		if (!s->head)
			s->tail = NULL;
		set_state(w, W_BUSY);
		pthread_mutex_unlock(&s->lock);
		serve(w);
		pthread_mutex_lock(&s->lock);
	}
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

/* ---- listeners -------------------------------------------------------- */

/*
 * Binds a new listener to tmp_path, mode 0660, with the socket's options
 * (the pipe notifications are the socket's, so they hold already).
 */
static int bind_tmp(struct es_api_server *s, nng_listener *lp, dev_t *dev,
		    ino_t *ino)
{
	char url[sizeof(((struct sockaddr_un *)0)->sun_path) + 8];
	nng_listener l;
	struct stat st;
	int rv, rc;

	if (lstat(s->tmp_path, &st) == 0) { /* left by a crash */
		if (!S_ISSOCK(st.st_mode))
			return -EEXIST;
		if (unlink(s->tmp_path) < 0 && errno != ENOENT)
			return -errno;
	}
	snprintf(url, sizeof(url), "ipc://%s", s->tmp_path);
	rv = nng_listener_create(&l, s->sock, url);
	if (rv)
		return nng_errno(rv);
	rv = nng_listener_set_size(l, NNG_OPT_RECVMAXSZ, s->max_message);
	/* nng applies it right after bind; the chmod below makes sure. */
	nng_listener_set_int(l, NNG_OPT_IPC_PERMISSIONS, 0660);
	if (rv == 0)
		rv = nng_listener_start(l, 0);
	rc = rv ? nng_errno(rv) : 0;
	if (rc == 0 &&
	    (chmod(s->tmp_path, 0660) < 0 || lstat(s->tmp_path, &st) < 0))
		rc = -errno;
	if (rc) {
		nng_listener_close(l); /* unlinks tmp_path */
		return rc;
	}
	*lp = l;
	*dev = st.st_dev;
	*ino = st.st_ino;
	return 0;
}

/* At start: the first listener, linked to path unless someone has it. */
static int listen_on(struct es_api_server *s)
{
	nng_listener l;
	dev_t dev;
	ino_t ino;
	int rc = bind_tmp(s, &l, &dev, &ino);

	if (rc)
		return rc;
	pthread_mutex_lock(&s->lock);
	s->listener = l;
	pthread_mutex_unlock(&s->lock);
	if (link(s->tmp_path, s->path) < 0)
		return errno == EEXIST ? -EADDRINUSE : -errno;
	s->bound = 1;
	s->dev = dev;
	s->ino = ino;
	return unlink(s->tmp_path) < 0 ? -errno : 0;
}

/* A new listener renamed over path; the old one retired. */
static int relisten(struct es_api_server *s)
{
	nng_listener l, evicted = NNG_LISTENER_INITIALIZER;
	uint64_t now = mono_ms();
	dev_t dev;
	ino_t ino;
	int rc = bind_tmp(s, &l, &dev, &ino);

	if (rc)
		return rc;
	if (rename(s->tmp_path, s->path) < 0) {
		rc = -errno;
		nng_listener_close(l);
		return rc;
	}
	s->dev = dev;
	s->ino = ino;
	pthread_mutex_lock(&s->lock);
	if (s->n_retired == MAX_RETIRED) { /* the oldest goes now */
		evicted = s->retired[0].l;
		memmove(&s->retired[0], &s->retired[1],
			(MAX_RETIRED - 1) * sizeof(s->retired[0]));
		s->n_retired--;
	}
	s->retired[s->n_retired++] =
	    (struct retired){.l = s->listener, .since = now, .last = now};
	s->listener = l;
	s->accepted = 0;
	pthread_mutex_unlock(&s->lock);
	if (evicted.id)
		nng_listener_close(evicted);
	return 0;
}

/* Under s->lock: no request of l's is being served or waits for one. */
static int retired_idle(struct es_api_server *s, const struct retired *r,
			uint64_t now)
{
	uint32_t id = r->l.id;
	int free_worker = 0;

	if (now - r->last < RETIRE_QUIET_MS)
		return 0;
	for (unsigned i = 0; i < s->nworkers; i++) {
		const struct worker *w = &s->workers[i];

		if (w->state == W_RECV)
			free_worker = 1; /* so nng holds no request back */
		else if (w->state != W_DONE && w->lid == id)
			return 0;
	}
	return free_worker;
}

/* Closes the retired listeners that are idle or too old. */
static void close_retired(struct es_api_server *s)
{
	nng_listener done[MAX_RETIRED];
	uint64_t now = mono_ms();
	unsigned n = 0, keep = 0;

	pthread_mutex_lock(&s->lock);
	for (unsigned i = 0; i < s->n_retired; i++) {
		struct retired *r = &s->retired[i];

		if (retired_idle(s, r, now) || now - r->since >= RETIRE_MAX_MS)
			done[n++] = r->l;
		else
			s->retired[keep++] = *r;
	}
	s->n_retired = keep;
	pthread_mutex_unlock(&s->lock);
	for (unsigned i = 0; i < n; i++)
		nng_listener_close(done[i]); /* its connections go too */
}

/* ---- the watchdog ------------------------------------------------------ */

/* Probes the listener; restarts it if no connection reaches the socket. */
static void check_listener(struct es_api_server *s, int *failing)
{
	uint64_t before;
	int rc, stuck;

	if (!path_is_ours(s))
		return; /* removed, or another agent's now: leave it */
	pthread_mutex_lock(&s->lock);
	before = s->accepted;
	pthread_mutex_unlock(&s->lock);
	if (probe(s, 0) != PROBE_SILENT)
		return; /* answered, or no probe possible (out of memory...) */
	pthread_mutex_lock(&s->lock);
	stuck = !s->stopping && s->accepted == before; /* else: just busy */
	pthread_mutex_unlock(&s->lock);
	if (!stuck)
		return;
	rc = relisten(s);
	if (rc == 0) {
		*failing = 0;
		slog(s, ES_LOG_WARN,
		     "API listener stopped accepting connections (nng bug "
		     "#1518); restarted it");
	} else if (!*failing) {
		*failing = 1;
		slog(s, ES_LOG_ERROR,
		     "API listener stopped accepting connections (nng bug "
		     "#1518) and could not be restarted: %s (will retry)",
		     strerror(-rc));
	}
}

static void wait_until(struct es_api_server *s, uint64_t ms)
{
	struct timespec ts = {.tv_sec = (time_t)(ms / 1000),
			      .tv_nsec = (long)(ms % 1000) * 1000000};

	pthread_cond_timedwait(&s->wd_cv, &s->lock, &ts);
}

static void *watchdog_main(void *arg)
{
	struct es_api_server *s = arg;
	uint64_t last = mono_ms(), next = last + s->watchdog_ms;
	int failing = 0;

	pthread_mutex_lock(&s->lock);
	while (!s->stopping) {
		uint64_t now = mono_ms();

		if (s->wd_kick && last + KICK_GAP_MS < next)
			next = last + KICK_GAP_MS;
		s->wd_kick = 0;
		if (now >= next) {
			pthread_mutex_unlock(&s->lock);
			check_listener(s, &failing);
			last = mono_ms();
			next = last + s->watchdog_ms;
			pthread_mutex_lock(&s->lock);
		} else if (s->n_retired && next > now + RETIRE_POLL_MS) {
			wait_until(s, now + RETIRE_POLL_MS);
		} else {
			wait_until(s, next);
		}
		if (s->n_retired && !s->stopping) {
			pthread_mutex_unlock(&s->lock);
			close_retired(s);
			pthread_mutex_lock(&s->lock);
		}
	}
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

/* ---- start and stop --------------------------------------------------- */

static int copy_ids(void **dst, const void *src, size_t n, size_t size)
{
	*dst = NULL;
	if (!n)
		return 0;
	*dst = malloc(n * size);
	if (!*dst)
		return -ENOMEM;
	memcpy(*dst, src, n * size);
	return 0;
}

/* Frees s and everything it holds; workers must be idle or never run. */
static void destroy(struct es_api_server *s)
{
	pthread_mutex_lock(&s->lock);
	s->pool_exit = 1;
	pthread_cond_broadcast(&s->work);
	pthread_mutex_unlock(&s->lock);
	for (unsigned i = 0; i < s->nthreads; i++)
		pthread_join(s->threads[i], NULL);
	for (unsigned i = 0; s->workers && i < s->nworkers; i++) {
		struct worker *w = &s->workers[i];

		if (w->aio)
			nng_aio_free(w->aio); /* stops it first */
		if (w->ctx_open)
			nng_ctx_close(w->ctx);
		if (w->req)
			nng_msg_free(w->req);
		api_ops_fini(&w->ops);
		api_enc_fini(&w->enc);
	}
	if (s->sock_open)
		nng_close(s->sock); /* and its listeners */
	if (s->probe_aio)
		nng_aio_free(s->probe_aio);
	if (s->bound && path_is_ours(s))
		unlink(s->path);
	pthread_cond_destroy(&s->wd_cv);
	pthread_cond_destroy(&s->done);
	pthread_cond_destroy(&s->work);
	pthread_mutex_destroy(&s->lock);
	free(s->threads);
	free(s->workers);
	free(s->allow_gids);
	free(s->allow_uids);
	free(s->tmp_path);
	free(s->path);
	free(s);
}

static int init_workers(struct es_api_server *s)
{
	int rc;

	s->workers = calloc(s->nworkers, sizeof(*s->workers));
	s->threads = calloc(s->nworkers, sizeof(*s->threads));
	if (!s->workers || !s->threads)
		return -ENOMEM;
	for (unsigned i = 0; i < s->nworkers; i++) {
		struct worker *w = &s->workers[i];

		w->s = s;
		api_enc_init(&w->enc);
		rc = api_ops_init(&w->ops, s->engine, s->max_message);
		if (rc)
			return rc;
		w->ops.log = s->log;
		w->ops.log_arg = s->log_arg;
		rc = nng_ctx_open(&w->ctx, s->sock);
		if (rc)
			return nng_errno(rc);
		w->ctx_open = 1;
		rc = nng_aio_alloc(&w->aio, worker_cb, w);
		if (rc)
			return nng_errno(rc);
	}
	for (; s->nthreads < s->nworkers; s->nthreads++) {
		rc = pthread_create(&s->threads[s->nthreads], NULL, pool_main,
				    s);
		if (rc)
			return -rc;
	}
	return 0;
}

static int server_new(struct es_api_server **sp, struct es_engine *e,
		      const struct es_api_config *c)
{
	struct es_api_server *s = calloc(1, sizeof(*s));
	pthread_condattr_t ca;
	int rc;

	*sp = s;
	if (!s)
		return -ENOMEM;
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->work, NULL);
	pthread_cond_init(&s->done, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&s->wd_cv, &ca);
	pthread_condattr_destroy(&ca);
	s->engine = e;
	s->self_uid = geteuid();
	s->log = c->log;
	s->log_arg = c->log_arg;
	s->max_message = c->max_message ? c->max_message : DEFAULT_MAX_MESSAGE;
	s->watchdog_ms = c->watchdog_ms ? c->watchdog_ms : DEFAULT_WATCHDOG_MS;
	s->nworkers = c->workers ? c->workers : DEFAULT_WORKERS;
	if (s->nworkers > MAX_WORKERS)
		s->nworkers = MAX_WORKERS;
	s->n_allow_uids = c->n_allow_uids;
	s->n_allow_gids = c->n_allow_gids;
	s->path = strdup(c->socket_path);
	s->tmp_path = malloc(strlen(c->socket_path) + sizeof(TMP_SUFFIX));
	if (!s->path || !s->tmp_path ||
	    copy_ids((void **)&s->allow_uids, c->allow_uids, c->n_allow_uids,
		     sizeof(uid_t)) ||
	    copy_ids((void **)&s->allow_gids, c->allow_gids, c->n_allow_gids,
		     sizeof(gid_t)))
		return -ENOMEM;
	sprintf(s->tmp_path, "%s" TMP_SUFFIX, c->socket_path);
	rc = nng_aio_alloc(&s->probe_aio, NULL, NULL);
	return rc ? nng_errno(rc) : 0;
}

/* The REP socket, its options and its pipe notifications. */
static int open_socket(struct es_api_server *s)
{
	int rc = nng_rep0_open(&s->sock);

	if (rc)
		return nng_errno(rc);
	s->sock_open = 1;
	rc = nng_socket_set_size(s->sock, NNG_OPT_RECVMAXSZ, s->max_message);
	if (rc == 0)
		rc = nng_pipe_notify(s->sock, NNG_PIPE_EV_ADD_PRE, pipe_cb, s);
	if (rc == 0)
		rc = nng_pipe_notify(s->sock, NNG_PIPE_EV_REM_POST, pipe_cb, s);
	return rc ? nng_errno(rc) : 0;
}

int es_api_server_start(struct es_api_server **sp, struct es_engine *e,
			const struct es_api_config *c)
{
	struct es_api_server *s;
	int rc;

	*sp = NULL;
	if (!c->socket_path || !c->socket_path[0])
		return -EINVAL;
	if (strlen(c->socket_path) + strlen(TMP_SUFFIX) >=
	    sizeof(((struct sockaddr_un *)0)->sun_path))
		return -ENAMETOOLONG;
	rc = server_new(&s, e, c);
	if (rc == 0)
		rc = make_dirs(s->path);
	if (rc == 0)
		rc = clear_stale(s);
	if (rc == 0)
		rc = open_socket(s);
	if (rc == 0)
		rc = init_workers(s);
	if (rc == 0)
		rc = listen_on(s);
	if (rc == 0 && c->watchdog_ms != ES_API_WATCHDOG_OFF) {
		rc = -pthread_create(&s->watchdog, NULL, watchdog_main, s);
		s->watchdog_started = rc == 0;
	}
	if (rc)
		goto err;
	for (unsigned i = 0; i < s->nworkers; i++)
		worker_recv(&s->workers[i]);
	*sp = s;
	return 0;
err:
	if (s)
		destroy(s);
	return rc;
}

/* Stops the watchdog; after this, no listener changes (invariant 5). */
static void stop_watchdog(struct es_api_server *s)
{
	pthread_mutex_lock(&s->lock);
	s->stopping = 1;
	pthread_cond_signal(&s->wd_cv);
	pthread_mutex_unlock(&s->lock);
	nng_aio_cancel(s->probe_aio);
	if (s->watchdog_started)
		pthread_join(s->watchdog, NULL);
	s->watchdog_started = 0;
}

void es_api_server_stop(struct es_api_server *s)
{
	int busy = 0;

	if (!s)
		return;
	stop_watchdog(s);
	pthread_mutex_lock(&s->lock);
	for (unsigned i = 0; i < s->nworkers; i++)
		busy |= s->workers[i].state != W_RECV;
	pthread_mutex_unlock(&s->lock);
	/*
	 * The listeners stay open until the end: closing one would close
	 * the connections it accepted, and the replies in flight with them.
	 * So new connections are turned away by pipe_cb, and the socket file
	 * stays until destroy, so that a second agent started meanwhile
	 * refuses to start rather than lose its socket file.
	 */
	for (unsigned i = 0; i < s->nworkers; i++) {
		struct worker *w = &s->workers[i];
		enum wstate st;

		pthread_mutex_lock(&s->lock);
		st = w->state;
		pthread_mutex_unlock(&s->lock);
		if (st == W_RECV)
			nng_aio_cancel(w->aio);
	}
	pthread_mutex_lock(&s->lock);
	for (unsigned i = 0; i < s->nworkers; i++)
		while (s->workers[i].state != W_DONE)
			pthread_cond_wait(&s->done, &s->lock);
	pthread_mutex_unlock(&s->lock);
	if (busy)
		nng_msleep(SETTLE_MS);
	destroy(s);
}
