/*
 * nng's REP side over ipc, on our own Unix socket (rep_ipc.h).
 *
 * Why not an nng listener: Debian 12's nng 1.5.2 has bug #1518 (fixed
 * upstream in PR #1519): a peer that connects to an ipc listener and
 * hangs up before the SP handshake leaves the listener never handing a
 * connection to its socket again, and closing such a listener can wedge
 * nng's reaper thread, after which every nng_close in the process hangs
 * (sync's sockets included). Any local user who can reach the socket file
 * can trigger it. The wire format is small and fixed, so the agent speaks
 * it itself; clients keep using nng.
 *
 * Wire (nng's ipc transport, SP rep0):
 *   handshake  each side sends 8 bytes: 00 'S' 'P' 00, its protocol
 *              (u16 BE: rep0 = 0x31, req0 = 0x30), 00 00; the peer must
 *              be req0, within HANDSHAKE_MS.
 *   message    01, u64 BE length, then that many bytes: the SP header
 *              (4-byte BE words up to and including the first with the
 *              top bit set: the request id, after any hops) and the body.
 *   reply      the same frame, with the request's header words echoed.
 *
 * Threads: one event-loop thread owns the listening socket and every
 * connection's descriptor and buffers; workers only call rep_ipc_reply,
 * which appends to the connection's posted list under s->lock and wakes
 * the loop through an eventfd.
 *
 * Invariants:
 *   1. Only the loop thread reads, writes, closes or frees a connection;
 *      a connection is freed only after its last request was answered
 *      (pending == 0) and it is off the ready list, so a worker never
 *      touches freed memory.
 *   2. Under s->lock: pending (per connection and in all), early,
 *      posted replies, the ready list, draining.
 *   3. A closed connection stays in memory (state C_DEAD, on the dead
 *      list) until the end of the loop iteration at least, so epoll
 *      events of the same batch that name it are ignored, never followed
 *      into freed memory.
 *   4. At most max_pending requests of one connection are out at once,
 *      and once more than OUT_MAX bytes of its replies wait to be
 *      written (out_bytes) its reads pause, so a client that sends
 *      without reading holds at most OUT_MAX plus the replies of the
 *      requests already out. A message is read into a buffer that grows
 *      as bytes arrive, never to the declared length up front, and one
 *      (frame header or body) that stops arriving for send_timeout_ms
 *      drops its connection.
 *   5. At most max_conns connections at once (and never more than half
 *      the open-file limit): past that a new one is closed at accept,
 *      so clients cannot take the descriptors the engine needs.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "rep_ipc.h"

#define HANDSHAKE_MS	10000
#define SP_REP0		0x31
#define SP_REQ0		0x30
#define FIRST_BUF	(64 * 1024) /* a message buffer's first size */
#define READ_BUDGET	(1u << 22)  /* bytes per connection per wake-up */
#define TICK_MS		250	    /* timeouts are checked this often */
#define ACCEPT_PAUSE_MS 100	    /* after EMFILE/ENFILE */
#define OUT_MAX		(4u << 20)  /* reply bytes waiting: reads pause */
#define FULL_LOG_MS	10000	    /* "too many connections", at most */

enum cstate { C_HANDSHAKE, C_OPEN, C_DEAD };

struct rep_out {
	struct rep_out *next;
	size_t len, off;
	uint8_t data[];
};

struct rep_conn {
	int fd;
	enum cstate state;
	uint32_t events; /* registered with epoll */
	uint64_t since;	 /* accepted at, ms */
	uint8_t hs[8];
	unsigned hs_got;
	uint8_t head[9]; /* 01 + length of the message being read */
	unsigned head_got;
	uint8_t *msg;
	size_t msg_len, msg_got, msg_cap;
	uint64_t msg_at;		/* last bytes of a partial message */
	struct rep_out *out, *out_tail; /* being written */
	size_t out_bytes;		/* of out, not yet written */
	uint64_t stalled_at;		/* write blocked since, ms; 0: not */
	struct rep_conn *prev, *next;	/* live list, or the dead list */
	struct rep_ipc_flow flow;	/* the caller's (rep_ipc.h) */
	/* under s->lock (invariant 2) */
	unsigned pending;
	struct rep_out *posted, *posted_tail;
	int on_ready;
	struct rep_conn *ready_next;
};

struct rep_ipc {
	struct rep_ipc_config c;
	int ep, wake, lfd;
	pthread_t loop;
	struct rep_conn *live, *dead;
	unsigned n_live;
	uint64_t accept_paused_until;
	uint64_t full_logged_at; /* the last "too many connections" */
	unsigned full_refused;	 /* refused since */
	int reads_off;		 /* drain, last phase: nothing more is read */

	pthread_mutex_t lock;
	struct rep_conn *ready;
	unsigned pending; /* requests out, in all */
	unsigned early;	  /* of those, received before draining */
	int draining;
	unsigned settle_ms;
};

static char tag_listen, tag_wake; /* epoll data of the two fixed fds */

static void rlog(struct rep_ipc *s, enum es_log_level level, const char *fmt,
		 ...) __attribute__((format(printf, 3, 4)));

static void rlog(struct rep_ipc *s, enum es_log_level level, const char *fmt,
		 ...)
{
	char line[256];
	va_list ap;

	if (!s->c.log)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	s->c.log(s->c.arg, level, line);
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void put_be64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

static uint64_t get_be64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

static void free_outs(struct rep_out *o)
{
	while (o) {
		struct rep_out *n = o->next;

		free(o);
		o = n;
	}
}

/* ---- connections (loop thread only, invariant 1) ---------------------- */

static void set_events(struct rep_ipc *s, struct rep_conn *c)
{
	uint32_t want = 0;
	struct epoll_event ev = {.data.ptr = c};
	int reading;

	pthread_mutex_lock(&s->lock);
	reading = c->pending < s->c.max_pending;
	pthread_mutex_unlock(&s->lock);
	reading = reading && c->out_bytes <= OUT_MAX;
	if (reading && !s->reads_off)
		want |= EPOLLIN;
	if (c->out)
		want |= EPOLLOUT;
	if (want == c->events)
		return;
	if ((want & EPOLLIN) && !(c->events & EPOLLIN))
		c->msg_at = now_ms(); /* a paused message's time starts again */
	ev.events = want;
	if (epoll_ctl(s->ep, EPOLL_CTL_MOD, c->fd, &ev) == 0)
		c->events = want;
}

static void unlink_conn(struct rep_conn **list, struct rep_conn *c)
{
	if (c->prev)
		c->prev->next = c->next;
	else
		*list = c->next;
	if (c->next)
		c->next->prev = c->prev;
	c->prev = c->next = NULL;
}

static void push_conn(struct rep_conn **list, struct rep_conn *c)
{
	c->prev = NULL;
	c->next = *list;
	if (*list)
		(*list)->prev = c;
	*list = c;
}

/* Closes c's descriptor; c itself waits on the dead list (invariant 3). */
static void close_conn(struct rep_ipc *s, struct rep_conn *c)
{
	if (c->state == C_DEAD)
		return;
	epoll_ctl(s->ep, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	c->fd = -1;
	c->state = C_DEAD;
	free(c->msg);
	c->msg = NULL;
	free_outs(c->out);
	c->out = c->out_tail = NULL;
	c->out_bytes = 0;
	unlink_conn(&s->live, c);
	s->n_live--;
	push_conn(&s->dead, c);
}

/* Frees the dead connections no worker can reach any more. */
static void sweep_dead(struct rep_ipc *s)
{
	struct rep_conn *c = s->dead, *next;

	for (; c; c = next) {
		int gone;

		next = c->next;
		pthread_mutex_lock(&s->lock);
		gone = c->pending == 0 && !c->on_ready;
		if (gone) {
			free_outs(c->posted);
			c->posted = c->posted_tail = NULL;
		}
		pthread_mutex_unlock(&s->lock);
		if (gone) {
			unlink_conn(&s->dead, c);
			free(c);
		}
	}
}

/* Writes what c has queued; closes it on an error. */
static void flush(struct rep_ipc *s, struct rep_conn *c)
{
	while (c->out) {
		struct rep_out *o = c->out;
		ssize_t n = send(c->fd, o->data + o->off, o->len - o->off,
				 MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				if (!c->stalled_at)
					c->stalled_at = now_ms();
				break;
			}
			close_conn(s, c); /* the client went away */
			return;
		}
		c->stalled_at = 0;
		o->off += (size_t)n;
		c->out_bytes -= (size_t)n;
		if (o->off == o->len) {
			c->out = o->next;
			if (!c->out)
				c->out_tail = NULL;
			free(o);
		}
	}
	set_events(s, c);
}

/* The SP header's length: up to the first word with the top bit set. */
static size_t sp_header_len(const uint8_t *m, size_t len)
{
	for (size_t i = 0; i < REP_IPC_MAX_HOPS && 4 * (i + 1) <= len; i++)
		if (m[4 * i] & 0x80)
			return 4 * (i + 1);
	return 0;
}

/* A whole message arrived: hands it to the caller. 0, or -1 to close. */
static int dispatch(struct rep_ipc *s, struct rep_conn *c)
{
	struct rep_ipc_req *r;
	size_t hl = sp_header_len(c->msg, c->msg_len);

	if (!hl) {
		rlog(s, ES_LOG_DEBUG,
		     "API connection closed: a message without a request id");
		return -1;
	}
	if (c->msg_len - hl > s->c.max_message) {
		rlog(s, ES_LOG_INFO,
		     "API connection closed: a request of %zu bytes, over "
		     "the limit of %zu",
		     c->msg_len - hl, s->c.max_message);
		return -1;
	}
	r = calloc(1, sizeof(*r));
	if (!r) {
		rlog(s, ES_LOG_ERROR, "out of memory for a request: dropped");
		return -1;
	}
	r->conn = c;
	r->flow = &c->flow;
	r->msg = c->msg;
	r->hdr_len = hl;
	r->body = c->msg + hl;
	r->len = c->msg_len - hl;
	c->msg = NULL;
	c->msg_len = c->msg_got = c->msg_cap = 0;
	c->head_got = 0;
	pthread_mutex_lock(&s->lock);
	r->late = s->draining;
	c->pending++;
	s->pending++;
	if (!r->late)
		s->early++;
	pthread_mutex_unlock(&s->lock);
	s->c.request(s->c.arg, r);
	return 0;
}

/* Reads into buf; 1 when it is full, 0 when it would block, -1 to close. */
static int fill(struct rep_conn *c, uint8_t *buf, size_t want, size_t *got,
		size_t *budget)
{
	while (*got < want) {
		ssize_t n = recv(c->fd, buf + *got, want - *got, MSG_DONTWAIT);

		if (n > 0) {
			*got += (size_t)n;
			*budget = *budget > (size_t)n ? *budget - (size_t)n : 0;
			if (!*budget && *got < want)
				return 0; /* level-triggered: back later */
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		return -1; /* end of stream or an error */
	}
	return 1;
}

static int check_handshake(struct rep_ipc *s, const uint8_t *h)
{
	if (h[0] != 0 || h[1] != 'S' || h[2] != 'P' || h[3] != 0 || h[6] != 0 ||
	    h[7] != 0) {
		rlog(s, ES_LOG_DEBUG,
		     "API connection closed: not nng's SP "
		     "handshake");
		return -1;
	}
	if ((h[4] << 8 | h[5]) != SP_REQ0) {
		rlog(s, ES_LOG_DEBUG,
		     "API connection closed: peer protocol 0x%02x%02x is not "
		     "req0",
		     h[4], h[5]);
		return -1;
	}
	return 0;
}

/* Reads what c has for us: its handshake, then messages. */
static void on_readable(struct rep_ipc *s, struct rep_conn *c)
{
	size_t budget = READ_BUDGET, got;
	int rc;

	if (c->state == C_HANDSHAKE) {
		got = c->hs_got;
		rc = fill(c, c->hs, sizeof(c->hs), &got, &budget);
		c->hs_got = (unsigned)got;
		if (rc == 1 && check_handshake(s, c->hs) == 0)
			c->state = C_OPEN;
		else if (rc != 0)
			goto close;
		else
			return;
	}
	while (c->state == C_OPEN && (c->events & EPOLLIN) && budget) {
		if (c->head_got < sizeof(c->head)) {
			got = c->head_got;
			rc = fill(c, c->head, sizeof(c->head), &got, &budget);
			if (got > c->head_got)
				c->msg_at = now_ms();
			c->head_got = (unsigned)got;
			if (rc <= 0)
				goto out;
			if (c->head[0] != 1) {
				rlog(s, ES_LOG_DEBUG,
				     "API connection closed: "
				     "message type %u",
				     c->head[0]);
				goto close;
			}
			c->msg_len = get_be64(c->head + 1);
			if (c->msg_len >
			    s->c.max_message + 4 * REP_IPC_MAX_HOPS) {
				rlog(s, ES_LOG_INFO,
				     "API connection closed: a message of "
				     "%llu bytes, over the limit of %zu",
				     (unsigned long long)c->msg_len,
				     s->c.max_message);
				goto close;
			}
			c->msg_got = 0;
			c->msg_at = now_ms();
		}
		while (c->msg_got < c->msg_len) {
			size_t want = c->msg_len;

			if (c->msg_cap < want) { /* grow as bytes arrive */
				size_t cap =
				    c->msg_cap ? c->msg_cap * 2 : FIRST_BUF;
				uint8_t *m;

				cap = cap < want ? cap : want;
				m = realloc(c->msg, cap);
				if (!m) {
					rlog(s, ES_LOG_ERROR,
					     "out of memory for a request");
					goto close;
				}
				c->msg = m;
				c->msg_cap = cap;
			}
			want = c->msg_cap;
			got = c->msg_got;
			rc = fill(c, c->msg, want, &c->msg_got, &budget);
			if (c->msg_got > got)
				c->msg_at = now_ms();
			if (rc <= 0)
				goto out;
		}
		if (!c->msg) { /* an empty message has no request id */
			rlog(s, ES_LOG_DEBUG,
			     "API connection closed: an empty message");
			goto close;
		}
		if (dispatch(s, c))
			goto close;
		set_events(s, c); /* reads pause at max_pending */
	}
	return;
out:
	if (rc == 0)
		return;
close:
	close_conn(s, c);
}

/* max_conns, and at most half the open-file limit (invariant 5). */
static unsigned conn_limit(const struct rep_ipc *s)
{
	struct rlimit rl;
	unsigned n = s->c.max_conns;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 &&
	    rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur / 2 < n)
		n = (unsigned)(rl.rlim_cur / 2);
	return n ? n : 1;
}

/* Connections refused at the limit (refused more): one log line at most
 * every FULL_LOG_MS; the check of timeouts logs what is left. */
static void log_full(struct rep_ipc *s, unsigned refused)
{
	uint64_t now = now_ms();

	s->full_refused += refused;
	if (s->full_logged_at && now - s->full_logged_at < FULL_LOG_MS)
		return;
	rlog(s, ES_LOG_WARN,
	     "API socket: refused %u connection%s: %u clients are connected, "
	     "the most taken (%u: max-clients %u, and half the open-file "
	     "limit)",
	     s->full_refused, s->full_refused == 1 ? "" : "s", s->n_live,
	     conn_limit(s), s->c.max_conns);
	s->full_logged_at = now;
	s->full_refused = 0;
}

static void accept_all(struct rep_ipc *s)
{
	static const uint8_t hs[8] = {0, 'S', 'P', 0, 0, SP_REP0, 0, 0};

	for (;;) {
		struct epoll_event ev = {.events = EPOLLIN};
		struct rep_ipc_peer peer;
		struct ucred cred;
		socklen_t cl = sizeof(cred);
		struct rep_conn *c;
		int draining, fd;

		fd = accept4(s->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EMFILE || errno == ENFILE ||
			    errno == ENOBUFS || errno == ENOMEM) {
				rlog(s, ES_LOG_WARN,
				     "API socket: cannot accept a connection "
				     "(%s); pausing %d ms",
				     strerror(errno), ACCEPT_PAUSE_MS);
				s->accept_paused_until =
				    now_ms() + ACCEPT_PAUSE_MS;
				epoll_ctl(s->ep, EPOLL_CTL_DEL, s->lfd, NULL);
			}
			return;
		}
		pthread_mutex_lock(&s->lock);
		draining = s->draining;
		pthread_mutex_unlock(&s->lock);
		if (draining ||
		    getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cl) < 0) {
			close(fd);
			continue;
		}
		if (s->n_live >= conn_limit(s)) {
			close(fd);
			log_full(s, 1);
			continue;
		}
		peer.uid = cred.uid;
		peer.gid = cred.gid;
		peer.pid = cred.pid;
		if (s->c.admit && !s->c.admit(s->c.arg, &peer)) {
			close(fd);
			continue;
		}
		c = calloc(1, sizeof(*c));
		/* 8 bytes into an empty socket buffer: never a short write */
		if (!c || send(fd, hs, sizeof(hs), MSG_NOSIGNAL) !=
			      (ssize_t)sizeof(hs)) {
			free(c);
			close(fd);
			continue;
		}
		c->fd = fd;
		c->state = C_HANDSHAKE;
		c->since = now_ms();
		c->events = EPOLLIN;
		ev.data.ptr = c;
		if (epoll_ctl(s->ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
			free(c);
			close(fd);
			continue;
		}
		push_conn(&s->live, c);
		s->n_live++;
	}
}

/* Moves the workers' replies to their connections and writes them. */
static void take_replies(struct rep_ipc *s)
{
	struct rep_conn *list, *c;
	uint64_t buf;

	if (read(s->wake, &buf, sizeof(buf)) < 0) {
		/* EAGAIN: nothing was signalled; the list says the same */
	}
	pthread_mutex_lock(&s->lock);
	list = s->ready;
	s->ready = NULL;
	pthread_mutex_unlock(&s->lock);
	while ((c = list)) {
		struct rep_out *posted;

		pthread_mutex_lock(&s->lock);
		list = c->ready_next;
		c->ready_next = NULL;
		c->on_ready = 0;
		posted = c->posted;
		c->posted = c->posted_tail = NULL;
		pthread_mutex_unlock(&s->lock);
		if (c->state == C_DEAD) {
			free_outs(posted);
			continue;
		}
		while (posted) {
			struct rep_out *o = posted;

			posted = o->next;
			o->next = NULL;
			c->out_bytes += o->len - o->off;
			if (c->out_tail)
				c->out_tail->next = o;
			else
				c->out = o;
			c->out_tail = o;
		}
		flush(s, c); /* also resumes paused reads */
	}
}

/* Handshakes too slow and replies not taken: those connections go. */
static void check_timeouts(struct rep_ipc *s, unsigned send_ms)
{
	uint64_t now = now_ms();
	struct rep_conn *c, *next;

	for (c = s->live; c; c = next) {
		next = c->next;
		if (c->state == C_HANDSHAKE && now - c->since > HANDSHAKE_MS) {
			close_conn(s, c);
		} else if (c->stalled_at && now - c->stalled_at > send_ms) {
			rlog(s, ES_LOG_WARN,
			     "API connection closed: the client took no reply "
			     "for %u ms",
			     send_ms);
			close_conn(s, c);
		} else if (c->head_got > 0 && (c->events & EPOLLIN) &&
			   now - c->msg_at > send_ms) {
			/* head_got > 0: a frame is under way (dispatch
			 * resets it), its header or its body stalled */
			if (c->head_got < sizeof(c->head))
				rlog(s, ES_LOG_WARN,
				     "API connection closed: %u bytes of a "
				     "message's 9-byte frame header came, then "
				     "nothing for %u ms",
				     c->head_got, send_ms);
			else
				rlog(s, ES_LOG_WARN,
				     "API connection closed: %zu of a %zu-byte "
				     "message came, then nothing for %u ms",
				     c->msg_got, c->msg_len, send_ms);
			close_conn(s, c);
		}
	}
	if (s->full_refused && now - s->full_logged_at >= FULL_LOG_MS)
		log_full(s, 0); /* the refusals since the last line */
	if (s->accept_paused_until && now >= s->accept_paused_until) {
		struct epoll_event ev = {.events = EPOLLIN,
					 .data.ptr = &tag_listen};

		s->accept_paused_until = 0;
		epoll_ctl(s->ep, EPOLL_CTL_ADD, s->lfd, &ev);
	}
}

static int outs_empty(const struct rep_ipc *s)
{
	for (const struct rep_conn *c = s->live; c; c = c->next)
		if (c->out)
			return 0;
	return 1;
}

/*
 * Whether a drain is over: every request received before it answered,
 * then (settle) until the replies are written or settle_ms passed, then
 * reads stop and the late requests still out are answered.
 */
static int drained(struct rep_ipc *s, uint64_t *settle_end)
{
	unsigned pending, early;
	int draining, posted;

	pthread_mutex_lock(&s->lock);
	draining = s->draining;
	pending = s->pending;
	early = s->early;
	posted = s->ready != NULL; /* replies the loop has not taken yet */
	pthread_mutex_unlock(&s->lock);
	if (!draining || early)
		return 0;
	if (!*settle_end)
		*settle_end = now_ms() + s->settle_ms;
	if (pending == 0 && !posted && outs_empty(s))
		return 1;
	if (now_ms() < *settle_end)
		return 0;
	if (!s->reads_off) {
		s->reads_off = 1;
		for (struct rep_conn *c = s->live; c; c = c->next)
			set_events(s, c);
	}
	return pending == 0;
}

static void *loop_main(void *arg)
{
	struct rep_ipc *s = arg;
	struct epoll_event evs[64];
	uint64_t next_tick = now_ms() + TICK_MS, settle_end = 0;

	for (;;) {
		int n = epoll_wait(s->ep, evs, 64, TICK_MS);

		for (int i = 0; i < n; i++) {
			void *p = evs[i].data.ptr;
			struct rep_conn *c = p;

			if (p == &tag_listen) {
				accept_all(s);
			} else if (p == &tag_wake) {
				take_replies(s);
			} else if (c->state != C_DEAD) {
				if (evs[i].events & EPOLLOUT)
					flush(s, c);
				if (c->state != C_DEAD &&
				    (evs[i].events &
				     (EPOLLIN | EPOLLHUP | EPOLLERR))) {
					if (c->events & EPOLLIN)
						on_readable(s, c);
					else if (evs[i].events &
						 (EPOLLHUP | EPOLLERR))
						close_conn(s, c);
				}
			}
		}
		if (now_ms() >= next_tick) {
			check_timeouts(s, s->c.send_timeout_ms);
			next_tick = now_ms() + TICK_MS;
		}
		sweep_dead(s);
		if (drained(s, &settle_end))
			break;
	}
	return NULL;
}

/* ---- the API ---------------------------------------------------------- */

static void post(struct rep_ipc *s, struct rep_ipc_req *r, struct rep_out *o)
{
	struct rep_conn *c = r->conn;
	uint64_t one = 1;

	pthread_mutex_lock(&s->lock);
	c->pending--;
	s->pending--;
	if (!r->late)
		s->early--;
	if (o && c->state != C_DEAD) {
		if (c->posted_tail)
			c->posted_tail->next = o;
		else
			c->posted = o;
		c->posted_tail = o;
		o = NULL;
	}
	if (!c->on_ready) { /* the loop frees, resumes reads, writes */
		c->on_ready = 1;
		c->ready_next = s->ready;
		s->ready = c;
	}
	/* Under the lock: once it is released the loop may see nothing
	 * left out, end, and rep_ipc_stop free s and close the eventfd. */
	if (write(s->wake, &one, sizeof(one)) < 0) {
		/* the counter is only at its limit if the loop is long awake */
	}
	pthread_mutex_unlock(&s->lock);
	free(o);
	free(r->msg);
	free(r);
}

int rep_ipc_reply(struct rep_ipc *s, struct rep_ipc_req *r, const void *body,
		  size_t len)
{
	size_t total = r->hdr_len + len;
	struct rep_out *o = malloc(sizeof(*o) + 9 + total);

	if (o) {
		o->next = NULL;
		o->off = 0;
		o->len = 9 + total;
		o->data[0] = 1;
		put_be64(o->data + 1, total);
		memcpy(o->data + 9, r->msg, r->hdr_len);
		memcpy(o->data + 9 + r->hdr_len, body, len);
	}
	post(s, r, o);
	return o ? 0 : -ENOMEM;
}

void rep_ipc_drop(struct rep_ipc *s, struct rep_ipc_req *r)
{
	post(s, r, NULL);
}

static void destroy(struct rep_ipc *s)
{
	struct rep_conn *c;

	while ((c = s->live))
		close_conn(s, c);
	while ((c = s->dead)) {
		free_outs(c->posted);
		unlink_conn(&s->dead, c);
		free(c);
	}
	if (s->lfd >= 0)
		close(s->lfd);
	if (s->wake >= 0)
		close(s->wake);
	if (s->ep >= 0)
		close(s->ep);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

int rep_ipc_start(struct rep_ipc **sp, const struct rep_ipc_config *c)
{
	struct rep_ipc *s = calloc(1, sizeof(*s));
	struct epoll_event lev = {.events = EPOLLIN, .data.ptr = &tag_listen};
	struct epoll_event wev = {.events = EPOLLIN, .data.ptr = &tag_wake};
	int rc;

	*sp = NULL;
	if (!s) {
		close(c->fd);
		return -ENOMEM;
	}
	pthread_mutex_init(&s->lock, NULL);
	s->c = *c;
	if (!s->c.max_pending)
		s->c.max_pending = 1;
	if (!s->c.max_conns)
		s->c.max_conns = REP_IPC_MAX_CONNS;
	s->lfd = c->fd;
	s->wake = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	s->ep = epoll_create1(EPOLL_CLOEXEC);
	if (s->wake < 0 || s->ep < 0 ||
	    fcntl(s->lfd, F_SETFL, fcntl(s->lfd, F_GETFL) | O_NONBLOCK) < 0 ||
	    epoll_ctl(s->ep, EPOLL_CTL_ADD, s->lfd, &lev) < 0 ||
	    epoll_ctl(s->ep, EPOLL_CTL_ADD, s->wake, &wev) < 0) {
		rc = -errno;
		destroy(s);
		return rc;
	}
	/* Before the loop runs: its first request can be answered (with
	 * *sp) before pthread_create returns. */
	*sp = s;
	rc = pthread_create(&s->loop, NULL, loop_main, s);
	if (rc) {
		*sp = NULL;
		destroy(s);
		return -rc;
	}
	return 0;
}

void rep_ipc_stop(struct rep_ipc *s, unsigned settle_ms)
{
	uint64_t one = 1;

	if (!s)
		return;
	pthread_mutex_lock(&s->lock);
	s->draining = 1;
	s->settle_ms = settle_ms;
	pthread_mutex_unlock(&s->lock);
	if (write(s->wake, &one, sizeof(one)) < 0) {
		/* the loop still sees draining at its next tick */
	}
	pthread_join(s->loop, NULL);
	destroy(s);
}
