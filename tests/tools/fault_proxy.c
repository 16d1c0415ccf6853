/*
 * fault_proxy: a TCP proxy for fault tests. It listens on a loopback port,
 * forwards every connection to a target (an edgesync cloud) and, on a
 * schedule, hurts the traffic: it resets a connection in the middle of a
 * message (cut), forwards part of a message and then closes (truncate),
 * stops forwarding for a while (stall), or flips one bit (flip).
 *
 * It follows nng's TCP framing (an 8-byte SP handshake each way, then
 * messages as an 8-byte big-endian length and a body) so that faults can
 * land inside the messages that carry segment data: "big" messages, whose
 * body is at least --big bytes. Big messages are numbered per direction
 * over all connections (0, 1, ...); "up" is client -> target.
 *
 * Determinism: whether and where big message k of direction d is hurt is
 * a function of (seed, d, k) only (a hash, not a stream of random numbers
 * shared by the connections), so the same seed and schedule give the same
 * faults whatever the interleaving of connections and reads. Random
 * faults (explicit ones are where --event says):
 *   cut       at a body offset in [64, len - 64): forward up to it, then
 *             close both sides with a reset (SO_LINGER 0)
 *   truncate  the same offsets, then close both sides with FIN
 *   stall     the same offsets: this direction waits --stall-ms
 *   flip      one bit of a body byte in [256, len - 256) (inside a chunk's
 *             data, not its CBOR fields; needs len >= 1024)
 * A big message gets at most one fault, and no random cut or truncation
 * comes within QUIET big messages after a flip (it could take the flipped
 * message, still in flight, down with the connection before the receiver
 * saw it, and the flip would go uncounted). Random faults stop after
 * --max-faults per direction; --event adds explicit ones.
 *
 * --cut-small and --flip-small hurt the other messages (hello, begin,
 * commit, replies...): message m of direction d (all messages counted) is
 * cut or truncated, or gets a bit flipped, at a body offset past its
 * 4-byte nng header, again as a function of (seed, d, m), at most
 * --max-small times per direction. They are counted apart ("small_cut",
 * "small_truncate", "small_flip"): they lose no chunk. Flips there hit
 * names, sizes, offsets, versions and clocks, which only each message's
 * CRC32C trailer covers: they show that it catches them.
 *
 * Counters: bytes and messages per direction; of big messages, their bytes
 * and the bytes of their CBOR "data" field (the chunk's payload), so that
 * what was sent twice is exact: payload - the data's size.
 *
 * Control: SIGUSR1 cuts every open connection at once. SIGUSR2 arms a
 * freeze (SIGRTMIN: of the up direction only, SIGRTMIN + 1: down only):
 * the next big message, whichever way it goes, stops at a body
 * offset (a function of seed, direction and k) for --freeze-ms (default
 * 10 s), counted as "freeze": a transfer held in the middle of a chunk,
 * for a test to kill an agent at that moment. SIGTERM or SIGINT end the
 * proxy. --stats FILE holds counters as one JSON object, replaced
 * atomically (rename) within 100 ms of any change, and at exit. --log FILE
 * gets one line per connection and per fault.
 *
 * State: one poll() loop, no threads. Each connection has two halves (up,
 * down); a half reads into its buffer, scans the bytes (framing, faults)
 * and writes them on. Invariant of a half: sent <= scanned <= filled; only
 * bytes before `scanned` may be written; a pending action (cut, truncate,
 * stall) sits at `scanned` and runs once sent == scanned.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BUF_SIZE  (256 * 1024)
#define MAX_CONNS 256
#define MAX_EVENT 256
#define HEAD_MAX  256 /* where a chunk message's "data" field starts */
#define QUIET	  16  /* big messages after a flip without a random cut */

enum act { A_NONE, A_CUT, A_TRUNCATE, A_STALL, A_FLIP, A_FREEZE, A_N };
static const char *const act_name[A_N] = {"none",  "cut",  "truncate",
					  "stall", "flip", "freeze"};

enum { UP, DOWN };
static const char *const dir_name[2] = {"up", "down"};

/* An explicit fault: big message k of dir at body offset off, or (raw)
 * the byte at cumulative offset off of dir. */
struct event {
	int dir;
	int raw;
	uint64_t k, off;
	enum act act;
	int done;
};

struct half {
	int dir;
	unsigned char *buf;
	size_t filled, scanned, sent;
	int eof;	    /* the source said FIN */
	enum act pending;   /* runs when sent == scanned */
	uint64_t stall_end; /* ms; reads and scans wait until then */
	/* framing */
	int hs_left; /* handshake bytes still to pass */
	int hdr_got; /* bytes of the length header so far */
	unsigned char hdr[8];
	uint64_t body_len, body_off; /* the message being passed */
	int big;		     /* it is a big message */
	uint64_t big_k;
	uint64_t msg_k; /* its number among all messages of the direction */
	/* a big message's CBOR "data" byte string, once its head is seen */
	unsigned char head[HEAD_MAX];
	int data_known;
	uint64_t data_start, data_len;
	enum act fault; /* planned for this message */
	uint64_t fault_off;
	unsigned fault_bit;
};

struct conn {
	int id;
	int fd[2]; /* [UP] the client, [DOWN] the target */
	struct half h[2];
};

static struct {
	const char *listen_host, *target_host, *port_file, *stats_path;
	int listen_port, target_port;
	uint64_t seed, big, stall_ms, freeze_ms;
	unsigned prob[A_N];  /* per mille per big message */
	unsigned prob_small; /* per mille per other message: cuts */
	unsigned flip_small; /* and bit flips */
	uint64_t max_small;
	int dirs[2]; /* random faults apply to this direction */
	uint64_t max_faults;
	struct event ev[MAX_EVENT];
	int n_ev;
	FILE *log;
} opt;

static struct {
	uint64_t conns, refused, closed;
	uint64_t bytes[2], msgs[2], big_msgs[2], big_bytes[2];
	uint64_t payload[2]; /* bytes of "data" fields passed */
	uint64_t faults[2][A_N];
	uint64_t random_faults[2];
	uint64_t last_flip[2]; /* 1 + the last big message flipped, or 0 */
	uint64_t small_faults[2][A_N];
	uint64_t random_small[2];
} st;

static struct conn *conns[MAX_CONNS];
static volatile sig_atomic_t cut_all, arm_freeze, stopping;
/* bit d: the next big message of direction d freezes it */
static int freeze_armed;
static int stats_dirty;

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void logf_(const char *fmt, ...)
{
	va_list ap;

	if (!opt.log)
		return;
	va_start(ap, fmt);
	vfprintf(opt.log, fmt, ap);
	va_end(ap);
	fputc('\n', opt.log);
	fflush(opt.log);
}

static void die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs("fault_proxy: ", stderr);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(2);
}

static uint64_t mix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

static uint64_t hash(int dir, uint64_t k, uint64_t salt)
{
	return mix(mix(mix(opt.seed) ^ (uint64_t)dir) ^ k) ^ mix(salt);
}

/* ---- stats ------------------------------------------------------------ */

static void write_stats(void)
{
	char tmp[4096];
	FILE *f;

	if (!opt.stats_path)
		return;
	snprintf(tmp, sizeof(tmp), "%s.tmp", opt.stats_path);
	f = fopen(tmp, "w");
	if (!f)
		return;
	fprintf(f,
		"{\"seed\":%" PRIu64 ",\"connections\":%" PRIu64
		",\"refused\":%" PRIu64 ",\"closed\":%" PRIu64,
		opt.seed, st.conns, st.refused, st.closed);
	for (int d = 0; d < 2; d++) {
		fprintf(f,
			",\"%s\":{\"bytes\":%" PRIu64 ",\"messages\":%" PRIu64
			",\"big_messages\":%" PRIu64 ",\"big_bytes\":%" PRIu64
			",\"payload\":%" PRIu64,
			dir_name[d], st.bytes[d], st.msgs[d], st.big_msgs[d],
			st.big_bytes[d], st.payload[d]);
		for (int a = A_CUT; a < A_N; a++)
			fprintf(f, ",\"%s\":%" PRIu64, act_name[a],
				st.faults[d][a]);
		for (int a = A_CUT; a < A_N; a++)
			if (a != A_STALL)
				fprintf(f, ",\"small_%s\":%" PRIu64,
					act_name[a], st.small_faults[d][a]);
		fputc('}', f);
	}
	fputs("}\n", f);
	if (fclose(f) == 0)
		rename(tmp, opt.stats_path);
	stats_dirty = 0;
}

/* ---- faults ----------------------------------------------------------- */

/* The fault planned for big message k of dir whose body is len bytes. */
static void plan(struct half *h)
{
	uint64_t len = h->body_len, r;
	unsigned acc = 0;

	h->fault = A_NONE;
	for (int i = 0; i < opt.n_ev; i++) {
		struct event *e = &opt.ev[i];

		if (e->raw || e->dir != h->dir || e->k != h->big_k)
			continue;
		h->fault = e->act;
		h->fault_off = e->off < len ? e->off : len / 2;
		h->fault_bit = (unsigned)(hash(h->dir, h->big_k, 3) % 8);
		e->done = 1;
		if (h->fault == A_FLIP)
			st.last_flip[h->dir] = h->big_k + 1;
		return;
	}
	if (!opt.dirs[h->dir] || st.random_faults[h->dir] >= opt.max_faults)
		return;
	r = hash(h->dir, h->big_k, 1) % 1000;
	for (int a = A_CUT; a < A_N; a++) {
		acc += opt.prob[a];
		if (r < acc) {
			h->fault = (enum act)a;
			break;
		}
	}
	if (h->fault == A_FLIP && len < 1024)
		h->fault = A_NONE;
	/* A cut soon after a flip could lose the flipped message with the
	 * connection, unseen: random cuts keep QUIET messages away. */
	if ((h->fault == A_CUT || h->fault == A_TRUNCATE) &&
	    st.last_flip[h->dir] && h->big_k < st.last_flip[h->dir] + QUIET)
		h->fault = A_NONE;
	if (h->fault == A_NONE)
		return;
	if (h->fault == A_FLIP)
		st.last_flip[h->dir] = h->big_k + 1;
	r = hash(h->dir, h->big_k, 2);
	if (h->fault == A_FLIP)
		h->fault_off = 256 + r % (len - 512);
	else
		h->fault_off = len > 128 ? 64 + r % (len - 128) : len / 2;
	h->fault_bit = (unsigned)(hash(h->dir, h->big_k, 3) % 8);
	st.random_faults[h->dir]++;
}

/* The fault planned for a message that is not big, if any. */
static void plan_small(struct half *h)
{
	uint64_t len = h->body_len;

	uint64_t r = hash(h->dir, h->msg_k, 4) % 1000;

	h->fault = A_NONE;
	if (!opt.dirs[h->dir] || len <= 4 ||
	    st.random_small[h->dir] >= opt.max_small ||
	    r >= opt.prob_small + opt.flip_small)
		return;
	if (r >= opt.prob_small)
		h->fault = A_FLIP;
	else
		h->fault = hash(h->dir, h->msg_k, 5) % 2 ? A_CUT : A_TRUNCATE;
	h->fault_off = 4 + hash(h->dir, h->msg_k, 6) % (len - 4);
	h->fault_bit = (unsigned)(hash(h->dir, h->msg_k, 7) % 8);
	st.random_small[h->dir]++;
}

/*
 * Finds the field "data" (CBOR text "data", then a definite byte string
 * header) in the first `have` bytes of a big message's body.
 */
static void find_data(struct half *h, size_t have)
{
	static const int extra[4] = {1, 2, 4, 8};

	for (size_t i = 0; i + 6 <= have; i++) {
		const unsigned char *q = h->head + i;
		unsigned ai = q[5] & 31;
		size_t hl;
		uint64_t len = 0;

		if (q[0] != 0x64 || memcmp(q + 1, "data", 4) ||
		    q[5] >> 5 != 2 || ai > 27)
			continue;
		hl = ai < 24 ? 0 : (size_t)extra[ai - 24];
		if (i + 6 + hl > have)
			return; /* its length is not here yet */
		if (ai < 24)
			len = ai;
		for (size_t j = 0; j < hl; j++)
			len = len << 8 | q[6 + j];
		h->data_start = i + 6 + hl;
		h->data_len = len;
		h->data_known = 1;
		return;
	}
}

/* Counts the bytes of the data field among [body_off, body_off + n). */
static void count_payload(struct half *h, const unsigned char *p, size_t n)
{
	uint64_t lo = h->body_off, hi = h->body_off + n, a, b;

	if (!h->data_known && lo < HEAD_MAX) {
		size_t k = n < HEAD_MAX - lo ? n : (size_t)(HEAD_MAX - lo);

		memcpy(h->head + lo, p, k);
		find_data(h, (size_t)(lo + k));
	}
	if (!h->data_known)
		return;
	a = lo > h->data_start ? lo : h->data_start;
	b = hi < h->data_start + h->data_len ? hi : h->data_start + h->data_len;
	if (b > a)
		st.payload[h->dir] += b - a;
}

/* A raw event at cumulative byte `at` of dir, if one lies in [at, at+n). */
static struct event *raw_event(int dir, uint64_t at, size_t n)
{
	for (int i = 0; i < opt.n_ev; i++) {
		struct event *e = &opt.ev[i];

		if (e->raw && !e->done && e->dir == dir && e->off >= at &&
		    e->off < at + n)
			return e;
	}
	return NULL;
}

static void count_fault(struct conn *c, struct half *h, enum act a,
			const char *where)
{
	if (h->hdr_got == 8 && !h->big)
		st.small_faults[h->dir][a]++;
	else
		st.faults[h->dir][a]++;
	stats_dirty = 1;
	logf_("conn %d %s %s: %s", c->id, dir_name[h->dir], where, act_name[a]);
}

/*
 * Scans the bytes [scanned, filled): framing, flips in place, counters.
 * Stops at a cut, truncate or stall (h->pending set, scanned at it).
 */
static void scan(struct conn *c, struct half *h)
{
	char where[96];

	while (h->scanned < h->filled && h->pending == A_NONE) {
		unsigned char *p = h->buf + h->scanned;
		size_t n = h->filled - h->scanned, take;
		struct event *e = raw_event(h->dir, st.bytes[h->dir], n);

		if (e && e->off == st.bytes[h->dir]) {
			e->done = 1;
			snprintf(where, sizeof(where), "byte %" PRIu64, e->off);
			if (e->act == A_FLIP) {
				*p ^= (unsigned char)(1u << (e->off % 8));
				count_fault(c, h, A_FLIP, where);
			} else {
				h->pending = e->act;
				count_fault(c, h, e->act, where);
				break;
			}
		} else if (e) {
			n = (size_t)(e->off - st.bytes[h->dir]);
		}
		if (h->hs_left) {
			take = n < (size_t)h->hs_left ? n : (size_t)h->hs_left;
			h->hs_left -= (int)take;
		} else if (h->hdr_got < 8) {
			take = n < (size_t)(8 - h->hdr_got)
				   ? n
				   : (size_t)(8 - h->hdr_got);
			memcpy(h->hdr + h->hdr_got, p, take);
			h->hdr_got += (int)take;
			if (h->hdr_got == 8) {
				h->body_len = 0;
				for (int i = 0; i < 8; i++)
					h->body_len =
					    h->body_len << 8 | h->hdr[i];
				h->body_off = 0;
				h->fault = A_NONE;
				h->msg_k = st.msgs[h->dir]++;
				h->big = h->body_len >= opt.big;
				h->data_known = 0;
				if (h->big) {
					h->big_k = st.big_msgs[h->dir]++;
					plan(h);
					if ((freeze_armed >> h->dir & 1) &&
					    h->fault == A_NONE) {
						freeze_armed = 0;
						h->fault = A_FREEZE;
						h->fault_off =
						    64 +
						    hash(h->dir, h->big_k, 8) %
							(h->body_len - 128);
					}
				} else {
					plan_small(h);
				}
				if (h->body_len == 0)
					h->hdr_got = 0;
			}
		} else {
			uint64_t left = h->body_len - h->body_off;

			take = n < left ? n : (size_t)left;
			if (h->fault != A_NONE && h->fault_off >= h->body_off &&
			    h->fault_off < h->body_off + take) {
				size_t at =
				    (size_t)(h->fault_off - h->body_off);
				enum act a = h->fault;

				snprintf(where, sizeof(where),
					 "%s message %" PRIu64 " (%" PRIu64
					 " bytes) at %" PRIu64,
					 h->big ? "big" : "small",
					 h->big ? h->big_k : h->msg_k,
					 h->body_len, h->fault_off);
				h->fault = A_NONE;
				count_fault(c, h, a, where);
				if (a == A_FLIP) {
					p[at] ^=
					    (unsigned char)(1u << h->fault_bit);
				} else {
					take = at;
					h->pending = a;
				}
			}
			if (h->big) {
				st.big_bytes[h->dir] += take;
				count_payload(h, p, take);
			}
			h->body_off += take;
			if (h->body_off == h->body_len)
				h->hdr_got = 0;
		}
		h->scanned += take;
		st.bytes[h->dir] += take;
		stats_dirty = 1;
	}
}

/* ---- connections ------------------------------------------------------ */

static void conn_close(struct conn *c, int reset)
{
	struct linger lg = {1, 0};

	for (int i = 0; i < 2; i++) {
		if (c->fd[i] < 0)
			continue;
		if (reset)
			setsockopt(c->fd[i], SOL_SOCKET, SO_LINGER, &lg,
				   sizeof(lg));
		close(c->fd[i]);
		free(c->h[i].buf);
	}
	for (int i = 0; i < MAX_CONNS; i++)
		if (conns[i] == c)
			conns[i] = NULL;
	logf_("conn %d closed%s", c->id, reset ? " (reset)" : "");
	st.closed++;
	stats_dirty = 1;
	free(c);
}

static int set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	return fl < 0 ? -1 : fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

static void conn_open(int lfd)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	int one = 1, cfd, tfd, slot = -1;
	struct conn *c;

	cfd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	if (cfd < 0)
		return;
	for (int i = 0; i < MAX_CONNS; i++)
		if (!conns[i]) {
			slot = i;
			break;
		}
	sa.sin_port = htons((uint16_t)opt.target_port);
	inet_pton(AF_INET, opt.target_host, &sa.sin_addr);
	tfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	/* Loopback: a blocking connect answers at once. */
	if (slot < 0 || tfd < 0 ||
	    connect(tfd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		struct linger lg = {1, 0};

		setsockopt(cfd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
		close(cfd);
		if (tfd >= 0)
			close(tfd);
		st.refused++;
		stats_dirty = 1;
		logf_("refused a connection: the target is down");
		return;
	}
	c = calloc(1, sizeof(*c));
	if (!c)
		die("out of memory");
	c->id = (int)st.conns++;
	c->fd[UP] = cfd;
	c->fd[DOWN] = tfd;
	for (int d = 0; d < 2; d++) {
		setsockopt(c->fd[d], IPPROTO_TCP, TCP_NODELAY, &one,
			   sizeof(one));
		set_nonblock(c->fd[d]);
		c->h[d].dir = d;
		c->h[d].hs_left = 8;
		c->h[d].buf = malloc(BUF_SIZE);
		if (!c->h[d].buf)
			die("out of memory");
	}
	conns[slot] = c;
	stats_dirty = 1;
	logf_("conn %d open", c->id);
}

/*
 * Moves a half on: writes what is scanned, runs a pending action, reads
 * and scans more. Returns -1 if the connection is gone.
 */
static int half_step(struct conn *c, struct half *h, short rev_from,
		     short rev_to, uint64_t now)
{
	int from = c->fd[h->dir], to = c->fd[!h->dir];
	ssize_t n;

	if ((rev_to & POLLOUT) && h->sent < h->scanned) {
		n = write(to, h->buf + h->sent, h->scanned - h->sent);
		if (n < 0 && errno != EAGAIN && errno != EINTR) {
			conn_close(c, 0);
			return -1;
		}
		if (n > 0)
			h->sent += (size_t)n;
	}
	if (h->sent < h->scanned)
		return 0;
	if (h->pending == A_CUT || h->pending == A_TRUNCATE) {
		conn_close(c, h->pending == A_CUT);
		return -1;
	}
	if (h->pending == A_STALL || h->pending == A_FREEZE) {
		h->stall_end = now + (h->pending == A_STALL ? opt.stall_ms
							    : opt.freeze_ms);
		h->pending = A_NONE;
	}
	if (h->stall_end > now)
		return 0;
	if (h->scanned < h->filled) {
		scan(c, h);
		return 0;
	}
	if (h->eof)
		return 0;
	h->filled = h->scanned = h->sent = 0;
	if (!(rev_from & (POLLIN | POLLHUP | POLLERR)))
		return 0;
	n = read(from, h->buf, BUF_SIZE);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return 0;
	if (n <= 0) {
		/* EOF or an error: pass the FIN on; a reset closes it all */
		if (n < 0) {
			conn_close(c, 1);
			return -1;
		}
		h->eof = 1;
		shutdown(to, SHUT_WR);
		if (c->h[!h->dir].eof) {
			conn_close(c, 0);
			return -1;
		}
		return 0;
	}
	h->filled = (size_t)n;
	scan(c, h);
	return 0;
}

/* ---- main ------------------------------------------------------------- */

static void on_signal(int sig)
{
	if (sig == SIGUSR1)
		cut_all = 1;
	else if (sig == SIGUSR2)
		arm_freeze = 1 << UP | 1 << DOWN;
	else if (sig == SIGRTMIN)
		arm_freeze = 1 << UP;
	else if (sig == SIGRTMIN + 1)
		arm_freeze = 1 << DOWN;
	else
		stopping = 1;
}

static void usage(void)
{
	fputs(
	    "usage: fault_proxy --target HOST:PORT [--listen HOST:PORT]\n"
	    "  [--port-file FILE] [--stats FILE] [--log FILE] [--seed N]\n"
	    "  [--big BYTES] [--dir up|down|both] [--cut PERMILLE]\n"
	    "  [--truncate PERMILLE] [--flip PERMILLE] [--stall PERMILLE]\n"
	    "  [--stall-ms MS] [--max-faults N] [--cut-small PERMILLE]\n"
	    "  [--flip-small PERMILLE] [--max-small N]\n"
	    "  [--event DIR:K:OFFSET:ACTION]\n"
	    "  [--event DIR:@BYTE:ACTION] [--freeze-ms MS]\n"
	    "Faults hit big messages (body >= --big, default 4096), message\n"
	    "K of a direction counted from 0 over all connections; @BYTE is a\n"
	    "cumulative byte of the direction. ACTION: cut, truncate, stall,\n"
	    "flip. SIGUSR1 cuts every connection now; SIGUSR2 freezes the\n"
	    "direction of the next big message in its middle (--freeze-ms),\n"
	    "SIGRTMIN the next going up, SIGRTMIN+1 the next going down.\n",
	    stderr);
	exit(64);
}

static void host_port(const char *s, const char **host, int *port)
{
	const char *colon = strrchr(s, ':');
	char *h;

	if (!colon)
		usage();
	h = strndup(s, (size_t)(colon - s));
	*host = *h ? h : "127.0.0.1";
	*port = atoi(colon + 1);
	if (*port < 0 || *port > 65535)
		usage();
}

static enum act act_of(const char *s)
{
	for (int a = A_CUT; a < A_N; a++)
		if (!strcmp(s, act_name[a]))
			return (enum act)a;
	usage();
	return A_NONE;
}

static void parse_event(const char *s)
{
	struct event *e = &opt.ev[opt.n_ev];
	char d[8], a[16];
	unsigned long long k, off;

	if (opt.n_ev == MAX_EVENT)
		die("too many events");
	if (sscanf(s, "%7[a-z]:@%llu:%15s", d, &off, a) == 3) {
		e->raw = 1;
		e->off = off;
	} else if (sscanf(s, "%7[a-z]:%llu:%llu:%15s", d, &k, &off, a) == 4) {
		e->k = k;
		e->off = off;
	} else {
		usage();
	}
	if (strcmp(d, "up") && strcmp(d, "down"))
		usage();
	e->dir = strcmp(d, "up") ? DOWN : UP;
	e->act = act_of(a);
	opt.n_ev++;
}

static void parse_args(int argc, char **argv)
{
	opt.listen_host = "127.0.0.1";
	opt.big = 4096;
	opt.stall_ms = 500;
	opt.freeze_ms = 10000;
	opt.max_faults = UINT64_MAX;
	opt.max_small = UINT64_MAX;
	opt.dirs[UP] = 1;
	for (int i = 1; i < argc; i++) {
		const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (!v)
			usage();
		i++;
		if (!strcmp(o, "--target"))
			host_port(v, &opt.target_host, &opt.target_port);
		else if (!strcmp(o, "--listen"))
			host_port(v, &opt.listen_host, &opt.listen_port);
		else if (!strcmp(o, "--port-file"))
			opt.port_file = v;
		else if (!strcmp(o, "--stats"))
			opt.stats_path = v;
		else if (!strcmp(o, "--log")) {
			opt.log = fopen(v, "a");
			if (!opt.log)
				die("%s: %s", v, strerror(errno));
		} else if (!strcmp(o, "--seed"))
			opt.seed = strtoull(v, NULL, 0);
		else if (!strcmp(o, "--big"))
			opt.big = strtoull(v, NULL, 0);
		else if (!strcmp(o, "--stall-ms"))
			opt.stall_ms = strtoull(v, NULL, 0);
		else if (!strcmp(o, "--freeze-ms"))
			opt.freeze_ms = strtoull(v, NULL, 0);
		else if (!strcmp(o, "--max-faults"))
			opt.max_faults = strtoull(v, NULL, 0);
		else if (!strcmp(o, "--cut"))
			opt.prob[A_CUT] = (unsigned)atoi(v);
		else if (!strcmp(o, "--truncate"))
			opt.prob[A_TRUNCATE] = (unsigned)atoi(v);
		else if (!strcmp(o, "--stall"))
			opt.prob[A_STALL] = (unsigned)atoi(v);
		else if (!strcmp(o, "--flip"))
			opt.prob[A_FLIP] = (unsigned)atoi(v);
		else if (!strcmp(o, "--cut-small"))
			opt.prob_small = (unsigned)atoi(v);
		else if (!strcmp(o, "--flip-small"))
			opt.flip_small = (unsigned)atoi(v);
		else if (!strcmp(o, "--max-small"))
			opt.max_small = strtoull(v, NULL, 0);
		else if (!strcmp(o, "--event"))
			parse_event(v);
		else if (!strcmp(o, "--dir")) {
			opt.dirs[UP] = !strcmp(v, "up") || !strcmp(v, "both");
			opt.dirs[DOWN] =
			    !strcmp(v, "down") || !strcmp(v, "both");
			if (!opt.dirs[UP] && !opt.dirs[DOWN])
				usage();
		} else
			usage();
	}
	if (!opt.target_host || opt.big < 256 ||
	    opt.prob_small + opt.flip_small > 1000 ||
	    opt.prob[A_CUT] + opt.prob[A_TRUNCATE] + opt.prob[A_STALL] +
		    opt.prob[A_FLIP] >
		1000)
		usage();
}

static int listen_on(void)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t sl = sizeof(sa);
	int one = 1, fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	sa.sin_port = htons((uint16_t)opt.listen_port);
	if (fd < 0 || inet_pton(AF_INET, opt.listen_host, &sa.sin_addr) != 1)
		die("bad listen address %s", opt.listen_host);
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
	    listen(fd, 64) != 0)
		die("cannot listen on %s:%d: %s", opt.listen_host,
		    opt.listen_port, strerror(errno));
	getsockname(fd, (struct sockaddr *)&sa, &sl);
	set_nonblock(fd);
	if (opt.port_file) {
		char tmp[4096];
		FILE *f;

		snprintf(tmp, sizeof(tmp), "%s.tmp", opt.port_file);
		f = fopen(tmp, "w");
		if (!f || fprintf(f, "%d\n", ntohs(sa.sin_port)) < 0 ||
		    fclose(f) != 0 || rename(tmp, opt.port_file) != 0)
			die("cannot write %s", opt.port_file);
	}
	logf_("listening on %s:%d, target %s:%d, seed %" PRIu64,
	      opt.listen_host, ntohs(sa.sin_port), opt.target_host,
	      opt.target_port, opt.seed);
	return fd;
}

int main(int argc, char **argv)
{
	struct pollfd pf[1 + 2 * MAX_CONNS];
	struct conn *at[2 * MAX_CONNS];
	uint64_t last_stats = 0;
	struct sigaction sa;
	int lfd;

	parse_args(argc, argv);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGUSR1, &sa, NULL);
	sigaction(SIGUSR2, &sa, NULL);
	sigaction(SIGRTMIN, &sa, NULL);
	sigaction(SIGRTMIN + 1, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	lfd = listen_on();
	write_stats();
	while (!stopping) {
		uint64_t now = now_ms();
		int n = 1, timeout = 100;

		if (arm_freeze) {
			freeze_armed = arm_freeze;
			arm_freeze = 0;
			logf_("freeze armed (%s)", freeze_armed == 3 ? "both"
						   : freeze_armed == 1
						       ? "up"
						       : "down");
		}
		if (cut_all) {
			cut_all = 0;
			for (int i = 0; i < MAX_CONNS; i++)
				if (conns[i]) {
					logf_("conn %d: cut on SIGUSR1",
					      conns[i]->id);
					st.faults[UP][A_CUT]++;
					conn_close(conns[i], 1);
				}
		}
		pf[0] = (struct pollfd){.fd = lfd, .events = POLLIN};
		for (int i = 0; i < MAX_CONNS; i++) {
			struct conn *c = conns[i];

			if (!c)
				continue;
			for (int d = 0; d < 2; d++) {
				short ev = 0;

				/* fd[d] is the source of half d and the
				 * sink of half !d */
				if (!c->h[d].eof &&
				    c->h[d].filled == c->h[d].scanned &&
				    c->h[d].sent == c->h[d].scanned)
					ev |= POLLIN;
				if (c->h[!d].sent < c->h[!d].scanned)
					ev |= POLLOUT;
				if (c->h[d].stall_end > now) {
					int w = (int)(c->h[d].stall_end - now);

					ev &= (short)~POLLIN;
					timeout = w < timeout ? w : timeout;
				}
				if (c->h[d].scanned < c->h[d].filled &&
				    c->h[d].sent == c->h[d].scanned)
					timeout = 0;
				pf[n] = (struct pollfd){.fd = c->fd[d],
							.events = ev};
				at[n - 1] = c;
				n++;
			}
		}
		if (poll(pf, (nfds_t)n, timeout) < 0 && errno != EINTR)
			die("poll: %s", strerror(errno));
		now = now_ms();
		if (pf[0].revents & POLLIN)
			conn_open(lfd);
		for (int i = 1; i + 1 < n; i += 2) {
			struct conn *c = at[i - 1];
			short rup = pf[i].revents, rdown = pf[i + 1].revents;

			/* half UP: client (pf[i]) -> target (pf[i+1]) */
			if (half_step(c, &c->h[UP], rup, rdown, now) < 0)
				continue;
			half_step(c, &c->h[DOWN], rdown, rup, now);
		}
		if (stats_dirty && now - last_stats >= 100) {
			write_stats();
			last_stats = now;
		}
	}
	for (int i = 0; i < MAX_CONNS; i++)
		if (conns[i])
			conn_close(conns[i], 0);
	write_stats();
	close(lfd);
	if (opt.log)
		fclose(opt.log);
	return 0;
}
