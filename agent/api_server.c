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
 *      stopping after posting. So every worker reaches DONE.
 *   3. Memory is per worker (encoder, query and hit buffers) or per
 *      request (ids, floats, both bounded by max_message): nothing is
 *      allocated per connection, so idle connections cost only nng's pipe.
 *   4. Peers are checked when their pipe is added (pipe_cb): root, the
 *      agent's own uid, allow_uids and allow_gids (the peer's gid or any
 *      group its user belongs to); others are disconnected at once.
 *
 * The hand-off to the pool costs a thread wake-up per request; a variant
 * with one synchronous thread per context was not clearly faster on ping
 * (medians 0.13 ms here, 0.12 ms there, 0.11 ms for a bare nng round
 * trip, with a spread of 0.1 to 0.3 ms on a loaded 2-core machine).
 *
 * Stop: stopping is set; pipe_cb turns away new connections; receives
 * are cancelled; requests received before are served (those received
 * after get shutting_down); once every worker is DONE the socket is
 * closed, which unlinks the socket file. The listener is not closed
 * earlier, since that closes the connections it accepted.
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

enum wstate { W_RECV, W_QUEUED, W_BUSY, W_SEND, W_DONE };

struct worker {
	struct es_api_server *s;
	nng_ctx ctx;
	int ctx_open;
	nng_aio *aio;
	enum wstate state;
	int late; /* received after stop began */
	nng_msg *req;
	struct worker *next; /* in the queue */
	struct api_ops ops;
	struct api_enc enc;
};

struct es_api_server {
	struct es_engine *engine;
	nng_socket sock;
	int sock_open;
	nng_listener listener;
	int bound; /* the socket file is ours: */
	dev_t dev; /* its device and inode, to remove only ours */
	ino_t ino;
	char *path;
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
	default:
		return -EIO;
	}
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

/*
 * Removes a socket file no one listens on; -EADDRINUSE if someone
 * answers, -EEXIST if path is not a socket.
 */
static int clear_stale(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct stat st;
	int fd, rc;

	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISSOCK(st.st_mode))
		return -EEXIST;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	memcpy(sa.sun_path, path, strlen(path) + 1);
	rc = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
	rc = rc == 0 ? -EADDRINUSE : errno == ECONNREFUSED ? 0 : -errno;
	close(fd);
	if (rc == 0 && unlink(path) < 0 && errno != ENOENT)
		rc = -errno;
	return rc;
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

/* Runs on an nng thread before a new connection joins the socket. */
static void pipe_cb(nng_pipe p, nng_pipe_ev ev, void *arg)
{
	struct es_api_server *s = arg;
	uint64_t uid = UINT64_MAX, gid = UINT64_MAX, pid = 0;
	int stopping;

	if (ev != NNG_PIPE_EV_ADD_PRE)
		return;
	pthread_mutex_lock(&s->lock);
	stopping = s->stopping;
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

/* nng's completion callback: never blocks, never calls the engine. */
static void worker_cb(void *arg)
{
	struct worker *w = arg;
	struct es_api_server *s = w->s;
	int rv = nng_aio_result(w->aio);
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
	pthread_mutex_lock(&s->lock);
	if (rv == 0) {
		w->req = nng_aio_get_msg(w->aio);
		w->late = s->stopping;
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

/* Removes the socket file unless another agent has bound it since. */
static void remove_ours(struct es_api_server *s)
{
	struct stat st;

	if (lstat(s->path, &st) == 0 && st.st_dev == s->dev &&
	    st.st_ino == s->ino)
		unlink(s->path);
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
		nng_close(s->sock);
	if (s->bound)
		remove_ours(s);
	pthread_cond_destroy(&s->done);
	pthread_cond_destroy(&s->work);
	pthread_mutex_destroy(&s->lock);
	free(s->threads);
	free(s->workers);
	free(s->allow_gids);
	free(s->allow_uids);
	free(s->path);
	free(s);
}

static int init_workers(struct es_api_server *s, size_t max_message)
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
		rc = api_ops_init(&w->ops, s->engine, max_message);
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

/* Binds and listens on the socket file, mode 0660. */
static int listen_on(struct es_api_server *s)
{
	char url[sizeof(((struct sockaddr_un *)0)->sun_path) + 8];
	struct stat st;
	int rc;

	snprintf(url, sizeof(url), "ipc://%s", s->path);
	rc = nng_listener_create(&s->listener, s->sock, url);
	if (rc)
		return nng_errno(rc);
	/* nng applies it right after bind; the chmod below makes sure. */
	nng_listener_set_int(s->listener, NNG_OPT_IPC_PERMISSIONS, 0660);
	rc = nng_listener_start(s->listener, 0);
	if (rc)
		return nng_errno(rc);
	if (lstat(s->path, &st) < 0)
		return -errno;
	s->bound = 1;
	s->dev = st.st_dev;
	s->ino = st.st_ino;
	return chmod(s->path, 0660) < 0 ? -errno : 0;
}

static int server_new(struct es_api_server **sp, struct es_engine *e,
		      const struct es_api_config *c)
{
	struct es_api_server *s = calloc(1, sizeof(*s));

	*sp = s;
	if (!s)
		return -ENOMEM;
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->work, NULL);
	pthread_cond_init(&s->done, NULL);
	s->engine = e;
	s->self_uid = geteuid();
	s->log = c->log;
	s->log_arg = c->log_arg;
	s->nworkers = c->workers ? c->workers : DEFAULT_WORKERS;
	if (s->nworkers > MAX_WORKERS)
		s->nworkers = MAX_WORKERS;
	s->n_allow_uids = c->n_allow_uids;
	s->n_allow_gids = c->n_allow_gids;
	s->path = strdup(c->socket_path);
	if (!s->path ||
	    copy_ids((void **)&s->allow_uids, c->allow_uids, c->n_allow_uids,
		     sizeof(uid_t)) ||
	    copy_ids((void **)&s->allow_gids, c->allow_gids, c->n_allow_gids,
		     sizeof(gid_t)))
		return -ENOMEM;
	return 0;
}

int es_api_server_start(struct es_api_server **sp, struct es_engine *e,
			const struct es_api_config *c)
{
	struct es_api_server *s;
	size_t max_message =
	    c->max_message ? c->max_message : DEFAULT_MAX_MESSAGE;
	int rc;

	*sp = NULL;
	if (!c->socket_path || !c->socket_path[0])
		return -EINVAL;
	if (strlen(c->socket_path) >=
	    sizeof(((struct sockaddr_un *)0)->sun_path))
		return -ENAMETOOLONG;
	rc = server_new(&s, e, c);
	if (rc)
		goto err;
	rc = make_dirs(s->path);
	if (rc)
		goto err;
	rc = clear_stale(s->path);
	if (rc)
		goto err;
	rc = nng_rep0_open(&s->sock);
	if (rc) {
		rc = nng_errno(rc);
		goto err;
	}
	s->sock_open = 1;
	rc = nng_socket_set_size(s->sock, NNG_OPT_RECVMAXSZ, max_message);
	if (rc == 0)
		rc = nng_pipe_notify(s->sock, NNG_PIPE_EV_ADD_PRE, pipe_cb, s);
	if (rc) {
		rc = nng_errno(rc);
		goto err;
	}
	rc = init_workers(s, max_message);
	if (rc)
		goto err;
	rc = listen_on(s);
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

void es_api_server_stop(struct es_api_server *s)
{
	int busy = 0;

	if (!s)
		return;
	pthread_mutex_lock(&s->lock);
	s->stopping = 1;
	for (unsigned i = 0; i < s->nworkers; i++)
		busy |= s->workers[i].state != W_RECV;
	pthread_mutex_unlock(&s->lock);
	/*
	 * The listener stays open until the end: closing it would close the
	 * connections it accepted, and the replies in flight with them. So
	 * new connections are turned away by pipe_cb, and the socket file
	 * stays until nng_close (which unlinks its path, whatever is there
	 * by then), so that a second agent started meanwhile refuses to
	 * start rather than lose its socket file.
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
