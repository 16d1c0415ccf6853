/*
 * Local API server: a Unix socket file, nng's REQ/REP over ipc spoken by
 * rep_ipc.c (whose comment says why not an nng listener), and a pool of
 * worker threads.
 *
 * Threads. Engine calls block: an insert waits for its fsync (ms), a
 * search reads index pages (up to tens of ms). rep_ipc's event loop
 * never calls the engine: it queues each request here (on_request), and
 * `workers` pool threads take them, decode, call the engine, encode and
 * hand the reply back (serve). One thread per concurrent request, so a
 * slow request never holds up a fast one, and concurrent inserts can
 * share an fsync. Requests queue per connection (rep_ipc_flow), and the
 * connections with requests waiting take turns, one request each, in
 * the order they began waiting: a client with many requests in flight
 * delays another's next request by at most one of its own per worker.
 *
 * Invariants:
 *   1. Every request rep_ipc hands out is answered exactly once, by the
 *      pool thread that took it (rep_ipc_reply, or rep_ipc_drop when no
 *      reply could be encoded); rep_ipc_stop waits for that.
 *   2. The queue (the ring of flows with requests waiting, each flow's
 *      requests) and pool_exit are under s->lock; a flow is on the ring
 *      exactly when it has a request waiting (queued). The pool exits
 *      only after rep_ipc_stop returned, so the queue is empty by then.
 *   3. Memory is per worker (encoder, query and hit buffers) or per
 *      request (bounded by max_message): idle connections cost only
 *      rep_ipc's connection record.
 *   4. Peers are checked at accept (admit): root, the agent's own uid,
 *      allow_uids and allow_gids (the peer's gid or any group its user
 *      belongs to); others are disconnected at once and logged.
 *   5. The socket binds <path>.new, which is then linked to path: an
 *      agent never replaces a socket file another live agent holds, and
 *      path is complete (mode 0660) when it appears. The file is removed
 *      at stop only if it is still ours (same device and inode).
 *
 * Stop: rep_ipc_stop turns new connections away and waits for the
 * requests in flight (those arriving meanwhile are answered
 * shutting_down), then the pool exits and the socket file goes.
 */
#include <errno.h>
#include <fcntl.h>
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

#include "api_codec.h"
#include "api_ops.h"
#include "api_server.h"
#include "rep_ipc.h"

#define DEFAULT_WORKERS	    16
#define MAX_WORKERS	    1024
#define DEFAULT_MAX_MESSAGE ((size_t)64 << 20)
#define MIN_MAX_MESSAGE	    ((size_t)64 << 10)
#define SEND_TIMEOUT_MS	    30000 /* a client that stops reading or sending */
#define SETTLE_MS	    100 /* lets replies sent during stop leave the socket */
#define MAX_PENDING	    64 /* requests of one connection in flight */
#define MAX_GROUPS	    1024
#define TMP_SUFFIX	    ".new" /* where the socket binds first */

struct worker {
	struct es_api_server *s;
	struct api_ops ops;
	struct es_cbor_enc enc;
};

struct es_api_server {
	struct es_engine *engine;
	struct rep_ipc *rep;
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
	pthread_cond_t work; /* pool threads wait for requests */
	struct rep_ipc_flow *ring, *ring_tail; /* flows with requests waiting */
	unsigned waiting; /* requests on the ring's flows */
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

/*
 * Removes a socket file no one listens on; -EADDRINUSE if someone does,
 * -EEXIST if path is not a socket. (A bare connect is harmless to an
 * edgesync agent: rep_ipc drops a connection that hangs up at once.)
 */
static int clear_stale(struct es_api_server *s)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct stat st;
	int fd, rc;

	if (lstat(s->path, &st) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISSOCK(st.st_mode))
		return -EEXIST;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	strcpy(sa.sun_path, s->path);
	rc = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 ? 0 : -errno;
	close(fd);
	if (rc == 0 || rc == -EAGAIN) /* EAGAIN: its backlog is full */
		return -EADDRINUSE;
	if (rc == -ENOENT)
		return 0; /* gone meanwhile */
	if (rc != -ECONNREFUSED)
		return rc;
	return unlink(s->path) < 0 && errno != ENOENT ? -errno : 0;
}

/*
 * Binds tmp_path (mode 0660), listens, and links it to path (invariant
 * 5). Returns the listening descriptor or -errno.
 */
static int bind_socket(struct es_api_server *s)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct stat st;
	int fd, rc = 0;

	if (lstat(s->tmp_path, &st) == 0) { /* left by a crash */
		if (!S_ISSOCK(st.st_mode))
			return -EEXIST;
		if (unlink(s->tmp_path) < 0 && errno != ENOENT)
			return -errno;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	strcpy(sa.sun_path, s->tmp_path);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		rc = -errno;
		close(fd);
		return rc;
	}
	if (chmod(s->tmp_path, 0660) < 0 || lstat(s->tmp_path, &st) < 0 ||
	    listen(fd, SOMAXCONN) < 0)
		rc = -errno;
	else if (link(s->tmp_path, s->path) < 0)
		rc = errno == EEXIST ? -EADDRINUSE : -errno;
	unlink(s->tmp_path);
	if (rc) {
		close(fd);
		return rc;
	}
	s->bound = 1;
	s->dev = st.st_dev;
	s->ino = st.st_ino;
	return fd;
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

/* rep_ipc's admission check (invariant 4). */
static int admit(void *arg, const struct rep_ipc_peer *p)
{
	struct es_api_server *s = arg;

	if (peer_allowed(s, p->uid, p->gid))
		return 1;
	log_refusal(s, p->uid, p->gid, (uint64_t)p->pid);
	return 0;
}

/* ---- the pool --------------------------------------------------------- */

/* Puts f at the end of the ring (under s->lock). */
static void ring_push(struct es_api_server *s, struct rep_ipc_flow *f)
{
	f->queued = 1;
	f->next = NULL;
	if (s->ring_tail)
		s->ring_tail->next = f;
	else
		s->ring = f;
	s->ring_tail = f;
}

/* The next request: the first of the flow whose turn it is, which then
 * goes to the end of the ring if it has more (under s->lock). */
static struct rep_ipc_req *ring_take(struct es_api_server *s)
{
	struct rep_ipc_flow *f = s->ring;
	struct rep_ipc_req *r;

	if (!f)
		return NULL;
	s->ring = f->next;
	if (!s->ring)
		s->ring_tail = NULL;
	r = f->head;
	f->head = r->next;
	f->queued = 0;
	s->waiting--;
	if (f->head)
		ring_push(s, f);
	else
		f->tail = NULL;
	return r;
}

/* On rep_ipc's loop thread: queues r for the pool. */
static void on_request(void *arg, struct rep_ipc_req *r)
{
	struct es_api_server *s = arg;

	struct rep_ipc_flow *f = r->flow;

	r->next = NULL;
	pthread_mutex_lock(&s->lock);
	if (f->tail)
		f->tail->next = r;
	else
		f->head = r;
	f->tail = r;
	s->waiting++;
	if (!f->queued)
		ring_push(s, f);
	pthread_cond_signal(&s->work);
	pthread_mutex_unlock(&s->lock);
}

static void on_log(void *arg, enum es_log_level level, const char *msg)
{
	struct es_api_server *s = arg;

	if (s->log)
		s->log(s->log_arg, level, msg);
}

/* On a pool thread: runs r and answers it (invariant 1). */
static void serve(struct worker *w, struct rep_ipc_req *r)
{
	struct es_api_server *s = w->s;

	if (api_ops_handle(&w->ops, r->body, r->len, r->late, &w->enc)) {
		rep_ipc_drop(s->rep, r);
		slog(s, ES_LOG_ERROR, "out of memory for a reply: dropped");
	} else if (rep_ipc_reply(s->rep, r, w->enc.buf, w->enc.len)) {
		slog(s, ES_LOG_ERROR, "out of memory for a reply: dropped");
	}
}

static void *pool_main(void *arg)
{
	struct worker *w = arg;
	struct es_api_server *s = w->s;
	struct rep_ipc_req *r;

	pthread_mutex_lock(&s->lock);
	for (;;) {
		while (!s->ring && !s->pool_exit)
			pthread_cond_wait(&s->work, &s->lock);
		r = ring_take(s);
		if (!r)
			break;
		pthread_mutex_unlock(&s->lock);
		serve(w, r);
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

/* Frees s and everything it holds; rep_ipc must be stopped (or absent). */
static void destroy(struct es_api_server *s)
{
	pthread_mutex_lock(&s->lock);
	s->pool_exit = 1;
	pthread_cond_broadcast(&s->work);
	pthread_mutex_unlock(&s->lock);
	for (unsigned i = 0; i < s->nthreads; i++)
		pthread_join(s->threads[i], NULL);
	for (unsigned i = 0; s->workers && i < s->nworkers; i++) {
		api_ops_fini(&s->workers[i].ops);
		es_cbor_enc_fini(&s->workers[i].enc);
	}
	if (s->bound && path_is_ours(s))
		unlink(s->path);
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
		es_cbor_enc_init(&w->enc);
		rc = api_ops_init(&w->ops, s->engine, s->max_message);
		if (rc)
			return rc;
		w->ops.log = s->log;
		w->ops.log_arg = s->log_arg;
	}
	for (; s->nthreads < s->nworkers; s->nthreads++) {
		rc = pthread_create(&s->threads[s->nthreads], NULL, pool_main,
				    &s->workers[s->nthreads]);
		if (rc)
			return -rc;
	}
	return 0;
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
	s->engine = e;
	s->self_uid = geteuid();
	s->log = c->log;
	s->log_arg = c->log_arg;
	s->max_message = c->max_message ? c->max_message : DEFAULT_MAX_MESSAGE;
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
	return 0;
}

int es_api_server_start(struct es_api_server **sp, struct es_engine *e,
			const struct es_api_config *c)
{
	struct rep_ipc_config rc_ = {0};
	struct es_api_server *s;
	int rc, fd = -1;

	*sp = NULL;
	if (!c->socket_path || !c->socket_path[0])
		return -EINVAL;
	/* the C client checks only requests over 64 KiB (client.c) */
	if (c->max_message && c->max_message < MIN_MAX_MESSAGE)
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
		rc = init_workers(s);
	if (rc == 0) {
		fd = bind_socket(s);
		rc = fd < 0 ? fd : 0;
	}
	if (rc == 0) {
		rc_.fd = fd;
		rc_.max_message = s->max_message;
		rc_.max_pending = MAX_PENDING;
		rc_.max_conns = c->max_clients;
		rc_.send_timeout_ms =
		    c->send_timeout_ms ? c->send_timeout_ms : SEND_TIMEOUT_MS;
		rc_.admit = admit;
		rc_.request = on_request;
		rc_.log = on_log;
		rc_.arg = s;
		rc = rep_ipc_start(&s->rep, &rc_); /* owns fd, even failing */
	}
	if (rc) {
		if (s)
			destroy(s);
		return rc;
	}
	*sp = s;
	return 0;
}

unsigned es_api_server_waiting(struct es_api_server *s)
{
	unsigned n;

	pthread_mutex_lock(&s->lock);
	n = s->waiting;
	pthread_mutex_unlock(&s->lock);
	return n;
}

void es_api_server_stop(struct es_api_server *s)
{
	if (!s)
		return;
	rep_ipc_stop(s->rep, SETTLE_MS); /* every request answered */
	s->rep = NULL;
	destroy(s);
}
