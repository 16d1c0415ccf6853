/*
 * Write-ahead log with group commit; the contract is edgesync/wal.h.
 *
 * An append goes through these states (w->lock held except during I/O):
 *
 *   es_wal_append   frame [len][crc] outside the lock, then copy the
 *                   record into w->pend and take seq = ++w->next_seq
 *                                                         -> queued
 *   wal_flush       the first queued appender that finds no batch in
 *                   flight (and no rotation waiting) becomes the leader:
 *                   it takes all of w->pend, drops the lock, write()s it
 *                   to w->fd and fdatasync()s, retakes the lock, sets
 *                   w->durable to the batch's last seq, broadcasts
 *                                                         -> durable
 *   (error)         a failed write or fdatasync sets w->err: the batch's
 *                   appenders get that error; everything queued after
 *                   it and every later call gets ES_E_WAL_CLOSED
 *                                                         -> poisoned
 *
 * Invariants:
 *  1. Sequence numbers are handed out under the lock in queueing order.
 *     w->pend holds exactly the records queued and not yet taken by a
 *     leader, in seq order, all of generation w->gen.
 *  2. At most one batch is in flight (w->syncing), and batches leave in
 *     seq order, each as one write then one fdatasync of the same fd.
 *     w->durable only grows, and only after both calls succeeded, so
 *     every record with seq <= w->durable is on disk.
 *  3. es_wal_append returns 0 only once its seq <= w->durable. After the
 *     first I/O error nothing is ever written again: Linux may drop the
 *     dirty pages and clear the error when fdatasync fails, so a retry
 *     could succeed without the data. The file's tail may then hold an
 *     unacknowledged whole or torn record, which recovery keeps or cuts.
 *  4. w->fd and w->gen change only in es_wal_rotate, which holds the lock
 *     throughout, with no batch in flight, after flushing w->pend to the
 *     old generation. A record therefore lands in the generation that was
 *     current when it was queued, and a generation is reported closed
 *     only when every record queued into it is durable: no record lands
 *     in a generation after it was reported closed.
 *  5. Generation g + 1 is created (O_EXCL, directory fsynced before its
 *     first write) only when everything written to g is durable and the
 *     log is not poisoned; a failure once it may exist poisons the log.
 *     So every generation but the newest ends with a whole record, and
 *     drop_through unlinks oldest first (directory fsynced after each),
 *     so the generations present at or above min_gen are consecutive.
 *
 * fdatasync is enough for a file that only grows by appending: it skips
 * timestamps but flushes the metadata needed to read the data back, which
 * includes the new size and block allocation (fdatasync(2); ext4 and XFS
 * commit the inode when i_size grew). The directory entry is covered by
 * the directory fsync at creation (5) and at open.
 *
 * Recovery (es_wal_open):
 *  - the newest generation (the only one that can hold bytes nobody
 *    fdatasynced, by 5) is fsynced before it is read, so what replay
 *    receives is durable even if a killed process wrote it and never
 *    acknowledged it; the directory is fsynced before the first append
 *    (a killed process may have created the newest, still empty, and
 *    died before its directory fsync);
 *  - generations >= min_gen must be consecutive, else ES_E_WAL_CORRUPT;
 *  - each is scanned in order through a 1 MiB buffer; the first record
 *    that is short, larger than ES_WAL_MAX_RECORD, runs past the end of
 *    the file or fails its CRC ends the scan. In an older generation that
 *    is corruption (5). In the newest it is a torn tail, unless a whole
 *    valid record starts at any later byte (corruption again); the tail
 *    is cut with ftruncate + fsync;
 *  - the tail is cut and the generations below min_gen are deleted only
 *    after every generation replayed cleanly: when es_wal_open fails,
 *    nothing on disk has changed.
 *  - the resync search behind "any later byte" runs only on a bad record;
 *    it reads the tail about twice however many offsets' len fields fit
 *    (more only for a tail made so that most of them do; valid_after).
 *    A power loss that persisted pages of the unsynced
 *    last batch out of order (a hole, then whole records of that batch)
 *    would be reported as corruption, as the header asks: the log cannot
 *    tell batch boundaries.
 * Guarantee: every acknowledged record is replayed exactly once and whole,
 * in seq order (so each thread's records in the order it appended them);
 * a record whose append failed or was cut short by a crash may be
 * replayed or not, but never in part.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "edgesync/crc32c.h"
#include "edgesync/wal.h"
#include "edgesync/dirs.h"
#include "io_util.h"
#include "edgesync/le.h"
#include "wal_impl.h"

#define WAL_HDR	      8u
#define WAL_NAME_LEN  24u	  /* "wal-" + 16 hex digits + ".log" */
#define WAL_READ_BUF  (1u << 20)  /* replay reads this much at a time */
#define WAL_IDLE_KEEP (4u << 20)  /* a larger spare batch buffer is freed */
#define WAL_BUF_FIRST (64u << 10) /* first allocation of a batch buffer */

static int sys_fdatasync(int fd)
{
	return fdatasync(fd) < 0 ? -errno : 0;
}

const struct wal_sys wal_sys_default = {
    .write_all = io_write_all,
    .fdatasync = sys_fdatasync,
};

struct wal_sys wal_sys = {
    .write_all = io_write_all,
    .fdatasync = sys_fdatasync,
};

struct wal_buf {
	unsigned char *p;
	size_t len, cap;
};

struct es_wal {
	pthread_mutex_t lock; /* everything below up to drop_lock */
	pthread_cond_t cond;  /* a batch finished or a rotation ended */
	int dirfd;
	int fd; /* generation gen, O_APPEND */
	uint64_t gen;
	struct wal_buf pend; /* queued records (1) */
	struct wal_buf idle; /* spare buffer, swapped with pend by a leader */
	uint64_t next_seq;   /* seq of the last record queued */
	uint64_t durable;    /* every seq <= durable is on disk (2) */
	uint64_t fail_seq;   /* with err: last seq of the failed batch */
	int err;	     /* first I/O error; the log is poisoned (3) */
	int syncing;	     /* a leader's batch is in flight */
	int rotating;	     /* a rotation waits for the batch in flight */

	pthread_mutex_t drop_lock; /* serializes es_wal_drop_through */
	uint64_t oldest;	   /* no generation below this exists */
};

static void wal_name(char name[WAL_NAME_LEN + 1], uint64_t gen)
{
	snprintf(name, WAL_NAME_LEN + 1, "wal-%016llx.log",
		 (unsigned long long)gen);
}

/* Parses a name wal_name would give; 0 and *gen, or -1. */
static int wal_parse_name(const char *s, uint64_t *gen)
{
	uint64_t g = 0;

	if (strlen(s) != WAL_NAME_LEN || memcmp(s, "wal-", 4) != 0 ||
	    memcmp(s + 20, ".log", 4) != 0)
		return -1;
	for (int i = 4; i < 20; i++) {
		int c = s[i];

		if (c >= '0' && c <= '9')
			g = g << 4 | (uint64_t)(c - '0');
		else if (c >= 'a' && c <= 'f')
			g = g << 4 | (uint64_t)(c - 'a' + 10);
		else
			return -1;
	}
	*gen = g;
	return 0;
}

/* Fills hdr with the record's len and CRC32C (of len's bytes, payload). */
static void wal_frame(unsigned char hdr[WAL_HDR], const void *data,
		      uint32_t len)
{
	uint32_t crc;

	le32_store(hdr, len);
	crc = es_crc32c(0, hdr, 4);
	if (len)
		crc = es_crc32c(crc, data, len);
	le32_store(hdr + 4, crc);
}

static int buf_put(struct wal_buf *b, const unsigned char *hdr,
		   const void *data, uint32_t len)
{
	size_t need = WAL_HDR + (size_t)len;

	if (b->cap - b->len < need) {
		size_t cap = b->cap ? b->cap : WAL_BUF_FIRST;
		unsigned char *p;

		while (cap - b->len < need)
			cap *= 2;
		p = realloc(b->p, cap);
		if (!p)
			return -ENOMEM;
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, hdr, WAL_HDR);
	if (len)
		memcpy(b->p + b->len + WAL_HDR, data, len);
	b->len += need;
	return 0;
}

/*
 * wal_flush writes all of w->pend to the current generation and syncs it.
 * Called with the lock held, no batch in flight and w->pend not empty;
 * returns with the lock held. With unlock, the lock is dropped during the
 * I/O so that appenders keep queueing (2); es_wal_rotate keeps it (4).
 */
static int wal_flush(struct es_wal *w, int unlock)
{
	struct wal_buf batch = w->pend;
	uint64_t last = w->next_seq;
	int fd = w->fd, rc;

	w->pend = w->idle;
	w->idle = (struct wal_buf){0};
	w->syncing = 1;
	if (unlock)
		pthread_mutex_unlock(&w->lock);
	rc = wal_sys.write_all(fd, batch.p, batch.len);
	if (rc == 0)
		rc = wal_sys.fdatasync(fd);
	if (unlock)
		pthread_mutex_lock(&w->lock);
	w->syncing = 0;
	batch.len = 0;
	if (batch.cap > WAL_IDLE_KEEP) {
		free(batch.p);
		batch = (struct wal_buf){0};
	}
	w->idle = batch;
	if (rc == 0) {
		w->durable = last;
	} else {
		w->err = rc;
		w->fail_seq = last;
		w->pend.len = 0; /* queued after the batch: never written */
	}
	pthread_cond_broadcast(&w->cond);
	return rc;
}

int es_wal_append(struct es_wal *w, const void *data, uint32_t len)
{
	unsigned char hdr[WAL_HDR];
	uint64_t seq;
	int rc;

	if (len > ES_WAL_MAX_RECORD)
		return ES_E_WAL_TOO_BIG;
	if (!data && len)
		return -EINVAL;
	wal_frame(hdr, data, len);
	pthread_mutex_lock(&w->lock);
	if (w->err) {
		rc = ES_E_WAL_CLOSED;
		goto out;
	}
	rc = buf_put(&w->pend, hdr, data, len);
	if (rc < 0)
		goto out;
	seq = ++w->next_seq;
	for (;;) {
		if (w->durable >= seq) {
			rc = 0;
			break;
		}
		if (w->err) {
			rc = seq <= w->fail_seq ? w->err : ES_E_WAL_CLOSED;
			break;
		}
		if (!w->syncing && !w->rotating)
			wal_flush(w, 1);
		else
			pthread_cond_wait(&w->cond, &w->lock);
	}
out:
	pthread_mutex_unlock(&w->lock);
	return rc;
}

uint64_t es_wal_gen(struct es_wal *w)
{
	uint64_t gen;

	pthread_mutex_lock(&w->lock);
	gen = w->gen;
	pthread_mutex_unlock(&w->lock);
	return gen;
}

/*
 * gen_create creates generation gen, empty, and makes its name durable.
 * *made says whether the file may exist afterwards, even on failure.
 */
static int gen_create(int dirfd, uint64_t gen, int *fdp, int *made)
{
	char name[WAL_NAME_LEN + 1];
	int fd, rc;

	wal_name(name, gen);
	fd = openat(dirfd, name,
		    O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0600);
	if (fd < 0) {
		rc = -errno;
		*made = rc == -EEXIST;
		return rc;
	}
	*made = 1;
	if (fsync(dirfd) < 0) {
		rc = -errno;
		close(fd);
		return rc;
	}
	*fdp = fd;
	return 0;
}

int es_wal_rotate(struct es_wal *w, uint64_t *closed)
{
	int rc = 0, fd = -1, made;

	pthread_mutex_lock(&w->lock);
	while (w->rotating)
		pthread_cond_wait(&w->cond, &w->lock);
	w->rotating = 1; /* no new leader: the batch in flight is the last */
	while (w->syncing)
		pthread_cond_wait(&w->cond, &w->lock);
	w->rotating = 0; /* the lock is kept from here to the end */
	if (w->err) {
		rc = ES_E_WAL_CLOSED;
		goto out;
	}
	if (w->pend.len && (rc = wal_flush(w, 0)) < 0)
		goto out;
	if (w->gen == UINT64_MAX) {
		rc = -EOVERFLOW;
		goto out;
	}
	rc = gen_create(w->dirfd, w->gen + 1, &fd, &made);
	if (rc < 0) {
		if (made) { /* g + 1 may exist: g must stay whole (5) */
			w->err = rc;
			w->fail_seq = w->next_seq;
		}
		goto out;
	}
	close(w->fd);
	w->fd = fd;
	if (closed)
		*closed = w->gen;
	w->gen++;
out:
	pthread_cond_broadcast(&w->cond);
	pthread_mutex_unlock(&w->lock);
	return rc;
}

int es_wal_drop_through(struct es_wal *w, uint64_t gen)
{
	char name[WAL_NAME_LEN + 1];
	uint64_t cur = es_wal_gen(w);
	int rc = 0;

	if (gen >= cur)
		return -EINVAL;
	pthread_mutex_lock(&w->drop_lock);
	while (w->oldest <= gen) {
		wal_name(name, w->oldest);
		if (unlinkat(w->dirfd, name, 0) == 0) {
			/* Oldest first, one at a time: no gap survives (5). */
			if (fsync(w->dirfd) < 0) {
				rc = -errno;
				break;
			}
		} else if (errno != ENOENT) {
			rc = -errno;
			break;
		}
		w->oldest++;
	}
	pthread_mutex_unlock(&w->drop_lock);
	return rc;
}

void es_wal_close(struct es_wal *w)
{
	if (!w)
		return;
	if (w->fd >= 0)
		close(w->fd);
	if (w->dirfd >= 0)
		close(w->dirfd);
	free(w->pend.p);
	free(w->idle.p);
	pthread_mutex_destroy(&w->drop_lock);
	pthread_cond_destroy(&w->cond);
	pthread_mutex_destroy(&w->lock);
	free(w);
}

/* ---- recovery ---------------------------------------------------------- */

/* A window on one generation file, refilled WAL_READ_BUF at a time. */
struct wal_reader {
	int fd;
	uint64_t size;
	unsigned char *buf;
	size_t cap;
	uint64_t base; /* file offset of buf[0] */
	size_t len;    /* valid bytes in buf */
};

/* Points *p at bytes [off, off + n) of the file; off + n <= r->size. */
static int reader_get(struct wal_reader *r, uint64_t off, size_t n,
		      const unsigned char **p)
{
	size_t want = n > WAL_READ_BUF ? n : WAL_READ_BUF;
	int rc;

	if (off >= r->base && off - r->base + n <= r->len) {
		*p = r->buf + (off - r->base);
		return 0;
	}
	if (want > r->size - off)
		want = (size_t)(r->size - off);
	if (want > r->cap) {
		unsigned char *b = realloc(r->buf, want);

		if (!b)
			return -ENOMEM;
		r->buf = b;
		r->cap = want;
	}
	r->len = 0;
	rc = io_pread_all(r->fd, r->buf, want, (off_t)off);
	if (rc < 0)
		return rc;
	r->base = off;
	r->len = want;
	*p = r->buf;
	return 0;
}

/*
 * rec_check: 1 if a whole valid record starts at off (*lenp, *payload
 * valid until the next call), 0 if not, or a negative I/O error.
 */
static int rec_check(struct wal_reader *r, uint64_t off, uint32_t *lenp,
		     const unsigned char **payload)
{
	const unsigned char *p;
	uint32_t len, crc;
	int rc;

	if (r->size - off < WAL_HDR)
		return 0;
	rc = reader_get(r, off, WAL_HDR, &p);
	if (rc < 0)
		return rc;
	len = le32_load(p);
	if (len > ES_WAL_MAX_RECORD || len > r->size - off - WAL_HDR)
		return 0;
	rc = reader_get(r, off, WAL_HDR + (size_t)len, &p);
	if (rc < 0)
		return rc;
	crc = es_crc32c(es_crc32c(0, p, 4), p + WAL_HDR, len);
	if (crc != le32_load(p + 4))
		return 0;
	*lenp = len;
	*payload = p + WAL_HDR;
	return 1;
}

/*
 * The resync (valid_after) looks for a whole valid record at every byte
 * after a bad one. Checking each candidate (an offset whose len field
 * fits in the file) by reading its payload again costs the sum of their
 * lengths, about quadratic in the tail's size: one in a few hundred
 * offsets of float data fits, and a 32 MiB torn insert took 50 s. So
 * only short candidates are checked at once; the long ones are kept and
 * checked a batch at a time from prefix CRCs, in one pass over the bytes
 * they span (resync_batch).
 */
#define RESYNC_DIRECT 4096u	 /* payloads this short: checked at once */
#define RESYNC_BATCH  (1u << 20) /* long candidates checked per pass */

struct resync_cand {
	uint64_t off;	  /* its header's offset */
	uint32_t len;	  /* its len field */
	uint32_t crc;	  /* its CRC field */
	uint32_t len_crc; /* CRC32C of its 4 len bytes */
};

static int u64_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* The CRC32C of [pt[0], at) from the prefix CRCs pc at the points pt. */
static uint32_t prefix_at(const uint64_t *pt, const uint32_t *pc, size_t np,
			  uint64_t at)
{
	const uint64_t *k = bsearch(&at, pt, np, sizeof(*pt), u64_cmp);

	return pc[k - pt]; /* every point asked for is in pt */
}

/*
 * Whether one of the long candidates c[0..n) is a whole valid record: 1,
 * 0, or a negative error. One pass from the first payload's start to the
 * last payload's end takes the CRC of every prefix ending where a
 * payload starts or ends; a payload's CRC is then
 * CRC(B) = shift_|B|(CRC(A)) ^ CRC(A || B), which es_crc32c_combine
 * computes from the prefixes before and after it.
 */
static int resync_batch(struct wal_reader *r, const struct resync_cand *c,
			size_t n)
{
	uint64_t *pt = malloc(2 * n * sizeof(*pt)), pos;
	uint32_t *pc = malloc(2 * n * sizeof(*pc)), crc = 0;
	size_t np = 0, k;
	int rc = 0;

	if (!pt || !pc) {
		rc = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		pt[np++] = c[i].off + WAL_HDR;
		pt[np++] = c[i].off + WAL_HDR + c[i].len;
	}
	qsort(pt, np, sizeof(*pt), u64_cmp);
	for (size_t i = k = 1; i < np; i++)
		if (pt[i] != pt[k - 1])
			pt[k++] = pt[i];
	np = k;
	pos = pt[0];
	for (k = 0; k < np; k++) {
		while (pos < pt[k]) {
			uint64_t left = pt[k] - pos;
			size_t step =
			    left < WAL_READ_BUF ? (size_t)left : WAL_READ_BUF;
			const unsigned char *p;

			rc = reader_get(r, pos, step, &p);
			if (rc < 0)
				goto out;
			crc = es_crc32c(crc, p, step);
			pos += step;
		}
		pc[k] = crc;
	}
	for (size_t i = 0; i < n && rc == 0; i++) {
		uint64_t at = c[i].off + WAL_HDR;
		uint32_t body = es_crc32c_combine(
		    prefix_at(pt, pc, np, at),
		    prefix_at(pt, pc, np, at + c[i].len), c[i].len);

		rc =
		    es_crc32c_combine(c[i].len_crc, body, c[i].len) == c[i].crc;
	}
out:
	free(pt);
	free(pc);
	return rc;
}

/* Whether a whole valid record starts at any byte after bad: 1, 0, or a
 * negative error (see resync_batch above). */
static int valid_after(struct wal_reader *r, uint64_t bad)
{
	struct resync_cand *c = NULL;
	size_t n = 0, cap = 0;
	int rc = 0;

	for (uint64_t off = bad + 1; off + WAL_HDR <= r->size && rc == 0;
	     off++) {
		const unsigned char *p, *payload;
		uint32_t len;

		rc = reader_get(r, off, WAL_HDR, &p);
		if (rc < 0)
			break;
		len = le32_load(p);
		if (len > ES_WAL_MAX_RECORD || len > r->size - off - WAL_HDR)
			continue;
		if (len <= RESYNC_DIRECT) {
			rc = rec_check(r, off, &len, &payload);
			continue;
		}
		if (n == cap) {
			size_t ncap = cap ? 2 * cap : 4096;
			struct resync_cand *b = realloc(c, ncap * sizeof(*c));

			if (!b) {
				rc = -ENOMEM;
				break;
			}
			c = b;
			cap = ncap;
		}
		c[n++] = (struct resync_cand){.off = off,
					      .len = len,
					      .crc = le32_load(p + 4),
					      .len_crc = es_crc32c(0, p, 4)};
		if (n == RESYNC_BATCH) {
			rc = resync_batch(r, c, n);
			n = 0;
		}
	}
	if (rc == 0 && n)
		rc = resync_batch(r, c, n);
	free(c);
	return rc;
}

/*
 * gen_scan replays generation gen's records and sets *end to where the
 * valid ones stop; a bad record is a torn tail only in the newest.
 */
static int gen_scan(struct wal_reader *r, uint64_t gen, int newest,
		    es_wal_replay_fn replay, void *arg, uint64_t *end)
{
	const unsigned char *payload;
	uint64_t off = 0;
	uint32_t len;
	int rc;

	while ((rc = rec_check(r, off, &len, &payload)) > 0) {
		if (replay) {
			int cb = replay(arg, gen, payload, len);

			if (cb < 0)
				return cb;
		}
		off += WAL_HDR + (uint64_t)len;
	}
	if (rc < 0)
		return rc;
	*end = off;
	if (off == r->size)
		return 0;
	if (!newest)
		return ES_E_WAL_CORRUPT;
	rc = valid_after(r, off);
	if (rc < 0)
		return rc;
	return rc ? ES_E_WAL_CORRUPT : 0;
}

/* Opens a generation to replay: the newest read-write and fsynced. */
static int gen_open(int dirfd, uint64_t gen, int newest, int *fdp,
		    uint64_t *size)
{
	char name[WAL_NAME_LEN + 1];
	struct stat st;
	int fd, rc;

	wal_name(name, gen);
	fd = openat(dirfd, name,
		    (newest ? O_RDWR | O_APPEND : O_RDONLY) | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0 || (newest && fsync(fd) < 0)) {
		rc = -errno;
		goto err;
	}
	if (!S_ISREG(st.st_mode)) {
		rc = -EINVAL;
		goto err;
	}
	*fdp = fd;
	*size = (uint64_t)st.st_size;
	return 0;
err:
	close(fd);
	return rc;
}

static int gen_cut(int fd, uint64_t end)
{
	if (ftruncate(fd, (off_t)end) < 0 || fsync(fd) < 0)
		return -errno;
	return 0;
}

/*
 * replay_all replays generations gens[0..n) (those >= min_gen, sorted),
 * cuts the newest's torn tail and leaves it open as w->fd.
 */
static int replay_all(struct es_wal *w, const uint64_t *gens, size_t n,
		      es_wal_replay_fn replay, void *arg)
{
	struct wal_reader r = {.fd = -1};
	uint64_t end = 0;
	int rc = 0;

	for (size_t i = 1; i < n; i++)
		if (gens[i] != gens[i - 1] + 1)
			return ES_E_WAL_CORRUPT; /* a lost generation (5) */
	for (size_t i = 0; i < n && rc == 0; i++) {
		int newest = i == n - 1;

		rc = gen_open(w->dirfd, gens[i], newest, &r.fd, &r.size);
		if (rc < 0)
			break;
		r.base = 0;
		r.len = 0;
		rc = gen_scan(&r, gens[i], newest, replay, arg, &end);
		if (rc == 0 && newest && end < r.size)
			rc = gen_cut(r.fd, end);
		if (rc == 0 && newest) {
			w->fd = r.fd;
			w->gen = gens[i];
		} else {
			close(r.fd);
		}
	}
	free(r.buf);
	return rc;
}

static int gen_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Lists the generations in the directory, sorted; other names ignored. */
static int gens_list(int dirfd, uint64_t **gensp, size_t *np)
{
	uint64_t *gens = NULL, gen;
	size_t n = 0, cap = 0;
	struct dirent *e;
	int fd, rc = 0;
	DIR *d;

	fd = fcntl(dirfd, F_DUPFD_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	d = fdopendir(fd);
	if (!d) {
		rc = -errno;
		close(fd);
		return rc;
	}
	rewinddir(d);
	for (;;) {
		errno = 0;
		e = readdir(d);
		if (!e) {
			rc = -errno;
			break;
		}
		if (wal_parse_name(e->d_name, &gen) < 0)
			continue;
		if (n == cap) {
			uint64_t *g;

			cap = cap ? 2 * cap : 16;
			g = realloc(gens, cap * sizeof(*gens));
			if (!g) {
				rc = -ENOMEM;
				break;
			}
			gens = g;
		}
		gens[n++] = gen;
	}
	closedir(d);
	if (rc < 0) {
		free(gens);
		return rc;
	}
	if (n)
		qsort(gens, n, sizeof(*gens), gen_cmp);
	*gensp = gens;
	*np = n;
	return 0;
}

/* Deletes the n generations in gens (sealed ones), then fsyncs dirfd. */
static int gens_unlink(int dirfd, const uint64_t *gens, size_t n)
{
	char name[WAL_NAME_LEN + 1];

	for (size_t i = 0; i < n; i++) {
		wal_name(name, gens[i]);
		if (unlinkat(dirfd, name, 0) < 0 && errno != ENOENT)
			return -errno;
	}
	return fsync(dirfd) < 0 ? -errno : 0;
}

static int dir_open(const char *dir, int *dirfdp)
{
	int fd, rc;

	rc = es_mkdir_durable(dir);
	if (rc < 0)
		return rc;
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	*dirfdp = fd;
	return 0;
}

static int wal_alloc(struct es_wal **wp)
{
	struct es_wal *w = calloc(1, sizeof(*w));
	int rc;

	if (!w)
		return -ENOMEM;
	w->fd = -1;
	w->dirfd = -1;
	rc = pthread_mutex_init(&w->lock, NULL);
	if (rc)
		goto err_lock;
	rc = pthread_cond_init(&w->cond, NULL);
	if (rc)
		goto err_cond;
	rc = pthread_mutex_init(&w->drop_lock, NULL);
	if (rc)
		goto err_drop;
	*wp = w;
	return 0;
err_drop:
	pthread_cond_destroy(&w->cond);
err_cond:
	pthread_mutex_destroy(&w->lock);
err_lock:
	free(w);
	return -rc;
}

int es_wal_open(struct es_wal **wp, const char *dir, uint64_t min_gen,
		es_wal_replay_fn replay, void *arg)
{
	uint64_t *gens = NULL;
	size_t n = 0, first = 0;
	struct es_wal *w = NULL;
	int rc, made;

	*wp = NULL;
	if (!dir)
		return -EINVAL;
	if (min_gen == 0)
		min_gen = 1; /* generations count from 1 */
	rc = wal_alloc(&w);
	if (rc < 0)
		return rc;
	rc = dir_open(dir, &w->dirfd);
	if (rc < 0)
		goto err;
	rc = gens_list(w->dirfd, &gens, &n);
	if (rc < 0)
		goto err;
	while (first < n && gens[first] < min_gen)
		first++;
	rc = replay_all(w, gens + first, n - first, replay, arg);
	if (rc < 0)
		goto err;
	/* Also makes the newest's name durable before we append to it. */
	rc = gens_unlink(w->dirfd, gens, first);
	if (rc < 0)
		goto err;
	if (first == n) {
		rc = gen_create(w->dirfd, min_gen, &w->fd, &made);
		if (rc < 0)
			goto err;
		w->gen = min_gen;
	}
	w->oldest = first < n ? gens[first] : min_gen;
	free(gens);
	*wp = w;
	return 0;
err:
	free(gens);
	es_wal_close(w);
	return rc;
}
