/*
 * Write-ahead log: round trips across reopen, rotation and dropping, torn
 * tails cut at every byte, corruption refused, concurrent appenders,
 * kill -9 at random moments, and injected I/O errors poisoning the log.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "edgesync/crc32c.h"
#include "edgesync/store_error.h"
#include "edgesync/wal.h"
#include "edgesync/le.h"
#include "wal_impl.h"

static char dir[64];

static int setup(void **state)
{
	strcpy(dir, "/tmp/es-test-wal-XXXXXX");
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[128];

	wal_sys = wal_sys_default;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

/* The log directory of this test (created by es_wal_open). */
static const char *log_dir(void)
{
	static char buf[96];

	snprintf(buf, sizeof(buf), "%s/log", dir);
	return buf;
}

static const char *gen_path(uint64_t gen)
{
	static char buf[128];

	snprintf(buf, sizeof(buf), "%s/wal-%016llx.log", log_dir(),
		 (unsigned long long)gen);
	return buf;
}

static int gen_exists(uint64_t gen)
{
	return access(gen_path(gen), F_OK) == 0;
}

static unsigned char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	unsigned char *buf;
	long size;

	assert_non_null(f);
	fseek(f, 0, SEEK_END);
	size = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = malloc((size_t)size + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)size, f), (size_t)size);
	fclose(f);
	*len = (size_t)size;
	return buf;
}

static void spill(const char *path, const void *buf, size_t len)
{
	FILE *f = fopen(path, "wb");

	assert_non_null(f);
	assert_int_equal(fwrite(buf, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
}

static uint64_t file_size(const char *path)
{
	struct stat st;

	assert_int_equal(stat(path, &st), 0);
	return (uint64_t)st.st_size;
}

/* ---- records and a replay collector ---------------------------------- */

static void make_rec(unsigned char *buf, uint32_t id, uint32_t len)
{
	for (uint32_t j = 0; j < len; j++)
		buf[j] = (unsigned char)(id * 31u + j * 7u + (j >> 8));
}

struct rec {
	uint64_t gen;
	uint32_t len;
	unsigned char *data;
};

struct coll {
	struct rec *v;
	size_t n, cap;
	int stop_at; /* return -ECANCELED at this record (0: never) */
};

static int collect(void *arg, uint64_t gen, const void *data, uint32_t len)
{
	struct coll *c = arg;
	struct rec *r;

	if (c->stop_at && c->n + 1 == (size_t)c->stop_at)
		return -ECANCELED;
	if (c->n == c->cap) {
		c->cap = c->cap ? 2 * c->cap : 64;
		c->v = realloc(c->v, c->cap * sizeof(*c->v));
		assert_non_null(c->v);
	}
	r = &c->v[c->n++];
	r->gen = gen;
	r->len = len;
	r->data = malloc(len + 1);
	assert_non_null(r->data);
	memcpy(r->data, data, len);
	return 0;
}

static void coll_free(struct coll *c)
{
	for (size_t i = 0; i < c->n; i++)
		free(c->v[i].data);
	free(c->v);
	memset(c, 0, sizeof(*c));
}

static void check_rec(const struct rec *r, uint64_t gen, uint32_t id,
		      uint32_t len)
{
	unsigned char *want = malloc(len + 1);

	assert_non_null(want);
	make_rec(want, id, len);
	assert_int_equal(r->gen, gen);
	assert_int_equal(r->len, len);
	assert_memory_equal(r->data, want, len + 0);
	free(want);
}

static void append_rec(struct es_wal *w, uint32_t id, uint32_t len)
{
	unsigned char *buf = malloc(len + 1);

	assert_non_null(buf);
	make_rec(buf, id, len);
	assert_int_equal(es_wal_append(w, buf, len), 0);
	free(buf);
}

/* Opens the log and collects what it replays. */
static int open_collect(struct es_wal **w, uint64_t min_gen, struct coll *c)
{
	memset(c, 0, sizeof(*c));
	return es_wal_open(w, log_dir(), min_gen, collect, c);
}

/* ---- round trips, rotation, dropping ---------------------------------- */

static const uint32_t rt_len[] = {0, 1, 100, 5000, 3u << 19, 17, 1024};
#define RT_N (sizeof(rt_len) / sizeof(rt_len[0]))

static void test_round_trip(void **state)
{
	struct es_wal *w;
	struct coll c;
	unsigned char one = 1;

	assert_int_equal(open_collect(&w, 1, &c), 0);
	assert_int_equal(c.n, 0);
	assert_int_equal(es_wal_gen(w), 1);
	assert_true(gen_exists(1));
	for (uint32_t i = 0; i < RT_N; i++)
		append_rec(w, i, rt_len[i]);
	assert_int_equal(es_wal_append(w, &one, ES_WAL_MAX_RECORD + 1),
			 ES_E_WAL_TOO_BIG);
	assert_int_equal(es_wal_append(w, NULL, 3), -EINVAL);
	assert_int_equal(es_wal_append(w, NULL, 0), 0);
	es_wal_close(w);

	for (int round = 0; round < 2; round++) {
		assert_int_equal(open_collect(&w, 1, &c), 0);
		assert_int_equal(c.n, RT_N + 1 + round);
		for (uint32_t i = 0; i < RT_N; i++)
			check_rec(&c.v[i], 1, i, rt_len[i]);
		assert_int_equal(c.v[RT_N].len, 0);
		if (round)
			check_rec(&c.v[RT_N + 1], 1, 99, 33);
		else
			append_rec(w, 99, 33);
		coll_free(&c);
		es_wal_close(w);
	}

	/* A replay callback's error stops the replay and is returned. */
	memset(&c, 0, sizeof(c));
	c.stop_at = 3;
	assert_int_equal(es_wal_open(&w, log_dir(), 1, collect, &c),
			 -ECANCELED);
	assert_null(w);
	assert_int_equal(c.n, 2);
	coll_free(&c);

	/* No replay function: just recovery. */
	assert_int_equal(es_wal_open(&w, log_dir(), 0, NULL, NULL), 0);
	assert_int_equal(es_wal_gen(w), 1);
	es_wal_close(w);
	assert_string_not_equal(es_store_strerror(ES_E_WAL_CORRUPT),
				"unknown error");
	assert_string_not_equal(es_store_strerror(ES_E_WAL_CLOSED),
				"unknown error");
}

static void test_rotate_drop(void **state)
{
	char other[128];
	struct es_wal *w;
	struct coll c;
	uint64_t closed = 0;

	assert_int_equal(open_collect(&w, 1, &c), 0);
	append_rec(w, 1, 10);
	append_rec(w, 2, 20);
	assert_int_equal(es_wal_rotate(w, &closed), 0);
	assert_int_equal(closed, 1);
	assert_int_equal(es_wal_gen(w), 2);
	append_rec(w, 3, 30);
	assert_int_equal(es_wal_rotate(w, &closed), 0);
	assert_int_equal(closed, 2);
	assert_int_equal(es_wal_rotate(w, &closed), 0); /* gen 3 empty */
	assert_int_equal(closed, 3);
	append_rec(w, 4, 40);
	assert_int_equal(es_wal_gen(w), 4);
	assert_int_equal(es_wal_drop_through(w, 4), -EINVAL);
	assert_int_equal(es_wal_drop_through(w, 1), 0);
	assert_false(gen_exists(1));
	assert_true(gen_exists(2));
	assert_int_equal(es_wal_drop_through(w, 1), 0); /* again: nothing */
	es_wal_close(w);

	/* min_gen 1 with gen 1 gone: gens 2..4 replayed. */
	assert_int_equal(open_collect(&w, 1, &c), 0);
	assert_int_equal(c.n, 2);
	check_rec(&c.v[0], 2, 3, 30);
	check_rec(&c.v[1], 4, 4, 40);
	assert_int_equal(es_wal_gen(w), 4);
	coll_free(&c);
	es_wal_close(w);

	/* min_gen 3: gen 2 is sealed and deleted at open. */
	assert_int_equal(open_collect(&w, 3, &c), 0);
	assert_int_equal(c.n, 1);
	check_rec(&c.v[0], 4, 4, 40);
	assert_false(gen_exists(2));
	assert_true(gen_exists(3));
	append_rec(w, 5, 50);
	coll_free(&c);
	es_wal_close(w);

	/* min_gen above every generation: all deleted, min_gen created. */
	assert_int_equal(open_collect(&w, 9, &c), 0);
	assert_int_equal(c.n, 0);
	assert_int_equal(es_wal_gen(w), 9);
	assert_false(gen_exists(3));
	assert_false(gen_exists(4));
	assert_true(gen_exists(9));
	append_rec(w, 6, 60);
	assert_int_equal(es_wal_rotate(w, NULL), 0);
	append_rec(w, 7, 70);
	assert_int_equal(es_wal_drop_through(w, 9), 0);
	coll_free(&c);
	es_wal_close(w);

	/* A file that is not a generation is left alone. */
	snprintf(other, sizeof(other), "%s/wal-notes.txt", log_dir());
	spill(other, "x", 1);
	assert_int_equal(open_collect(&w, 1, &c), 0);
	assert_int_equal(access(other, F_OK), 0);
	assert_int_equal(c.n, 1);
	check_rec(&c.v[0], 10, 7, 70);
	coll_free(&c);
	es_wal_close(w);
}

/* ---- torn tails and corruption ---------------------------------------- */

/*
 * Builds gen 1 (records 0, 1) and gen 2 (records 2, 3, 4), 4 being
 * last_len long; returns both files' bytes and gen 2's last record offset.
 */
static void build_two_gens(unsigned char **g1, size_t *n1, unsigned char **g2,
			   size_t *n2, uint32_t last_len, size_t *last_off)
{
	struct es_wal *w;

	assert_int_equal(es_wal_open(&w, log_dir(), 1, NULL, NULL), 0);
	append_rec(w, 0, 50);
	append_rec(w, 1, 60);
	assert_int_equal(es_wal_rotate(w, NULL), 0);
	append_rec(w, 2, 70);
	append_rec(w, 3, 80);
	append_rec(w, 4, last_len);
	es_wal_close(w);
	*g1 = slurp(gen_path(1), n1);
	*g2 = slurp(gen_path(2), n2);
	*last_off = (8 + 70) + (8 + 80);
	assert_int_equal(*n2, *last_off + 8 + last_len);
}

/* Opens after a torn tail: records 0..3 survive, gen 2 is cut, then an
 * append lands after record 3 and survives a reopen. */
static void check_torn(size_t last_off, uint32_t id)
{
	struct es_wal *w;
	struct coll c;

	assert_int_equal(open_collect(&w, 1, &c), 0);
	assert_int_equal(c.n, 4);
	check_rec(&c.v[0], 1, 0, 50);
	check_rec(&c.v[1], 1, 1, 60);
	check_rec(&c.v[2], 2, 2, 70);
	check_rec(&c.v[3], 2, 3, 80);
	assert_int_equal(file_size(gen_path(2)), last_off);
	assert_int_equal(es_wal_gen(w), 2);
	append_rec(w, id, 25);
	coll_free(&c);
	es_wal_close(w);
	assert_int_equal(open_collect(&w, 1, &c), 0);
	assert_int_equal(c.n, 5);
	check_rec(&c.v[4], 2, id, 25);
	coll_free(&c);
	es_wal_close(w);
}

static void test_torn_tail(void **state)
{
	unsigned char *g1, *g2, *bad;
	size_t n1, n2, off;
	const uint32_t last = 37;

	build_two_gens(&g1, &n1, &g2, &n2, last, &off);
	/* Cut at every byte of the last record. */
	for (size_t cut = off; cut < n2; cut++) {
		spill(gen_path(1), g1, n1);
		spill(gen_path(2), g2, cut);
		check_torn(off, 1000 + (uint32_t)cut);
	}
	bad = malloc(n2 + 8192);
	assert_non_null(bad);
	/* Whole length, but a payload byte or the CRC is wrong. */
	for (size_t at = off + 4; at < n2; at += 9) {
		memcpy(bad, g2, n2);
		bad[at] ^= 0x10;
		spill(gen_path(1), g1, n1);
		spill(gen_path(2), bad, n2);
		check_torn(off, 2000 + (uint32_t)at);
	}
	/* Zeros after the last record, as a crash can leave: cut. */
	memcpy(bad, g2, off);
	memset(bad + off, 0, 8192);
	spill(gen_path(1), g1, n1);
	spill(gen_path(2), bad, off + 8192);
	check_torn(off, 3000);
	/* A len field far past the end, or above ES_WAL_MAX_RECORD. */
	for (int i = 0; i < 2; i++) {
		memcpy(bad, g2, n2);
		le32_store(bad + off, i ? 0xfffffff0u : (uint32_t)last + 100);
		spill(gen_path(1), g1, n1);
		spill(gen_path(2), bad, n2);
		check_torn(off, 4000 + (uint32_t)i);
	}
	free(bad);
	free(g1);
	free(g2);
}

static void expect_corrupt(const unsigned char *g1, size_t n1,
			   const unsigned char *g2, size_t n2,
			   uint64_t min_gen);

/* n pseudo-random bytes (xorshift), like float data to the resync. */
static void random_bytes(unsigned char *p, size_t n, uint64_t seed)
{
	for (size_t i = 0; i < n; i++) {
		seed ^= seed << 13;
		seed ^= seed >> 7;
		seed ^= seed << 17;
		p[i] = (unsigned char)(seed >> 32);
	}
}

/* A whole record framed as the log writes it, at p (8 + len bytes). */
static void frame_rec(unsigned char *p, const unsigned char *data, uint32_t len)
{
	le32_store(p, len);
	le32_store(p + 4, es_crc32c(es_crc32c(0, p, 4), data, len));
	memcpy(p + 8, data, len);
}

/*
 * The resync over long tails (valid_after's prefix CRCs): a torn 6 MiB
 * record of random bytes is cut (thousands of its offsets have a len
 * field that fits); a whole 2 MiB record behind 3 MiB of garbage, and
 * one behind a torn long record, are found, so the log is corrupt.
 */
static void test_long_resync(void **state)
{
	const uint32_t torn = 6u << 20, whole = 2u << 20;
	unsigned char *g1, *g2, *buf, *data;
	size_t n1, n2, off, at;

	build_two_gens(&g1, &n1, &g2, &n2, 40, &off);
	buf = malloc(off + 16 + torn + whole + (3u << 20));
	data = malloc(torn);
	assert_non_null(buf);
	assert_non_null(data);
	/* a torn record: its header says 6 MiB, 90% of it is there */
	random_bytes(data, torn, 7);
	memcpy(buf, g2, off);
	frame_rec(buf + off, data, torn);
	spill(gen_path(1), g1, n1);
	spill(gen_path(2), buf, off + 8 + torn / 10 * 9);
	check_torn(off, 5000);
	/* garbage, then a whole long record: found */
	memcpy(buf, g2, off);
	random_bytes(buf + off, 3u << 20, 11);
	random_bytes(data, whole, 13);
	frame_rec(buf + off + (3u << 20), data, whole);
	expect_corrupt(g1, n1, buf, off + (3u << 20) + 8 + whole, 1);
	/* a torn long record, then a whole long record: found too */
	random_bytes(data, torn, 17);
	memcpy(buf, g2, off);
	frame_rec(buf + off, data, torn);
	at = off + 8 + torn / 2;
	random_bytes(data, whole, 19);
	frame_rec(buf + at, data, whole);
	expect_corrupt(g1, n1, buf, at + 8 + whole, 1);
	free(data);
	free(buf);
	free(g1);
	free(g2);
}

/* es_wal_open must fail with ES_E_WAL_CORRUPT and change nothing. */
static void expect_corrupt(const unsigned char *g1, size_t n1,
			   const unsigned char *g2, size_t n2, uint64_t min_gen)
{
	struct es_wal *w;
	unsigned char *b;
	size_t n;

	spill(gen_path(1), g1, n1);
	spill(gen_path(2), g2, n2);
	assert_int_equal(es_wal_open(&w, log_dir(), min_gen, NULL, NULL),
			 ES_E_WAL_CORRUPT);
	assert_null(w);
	b = slurp(gen_path(1), &n);
	assert_int_equal(n, n1);
	assert_memory_equal(b, g1, n1);
	free(b);
	b = slurp(gen_path(2), &n);
	assert_int_equal(n, n2);
	assert_memory_equal(b, g2, n2);
	free(b);
}

static void test_corrupt(void **state)
{
	unsigned char *g1, *g2, *bad;
	size_t n1, n2, off;
	const size_t mid1 = 8 + 50; /* record 1 of gen 1 (its last) */
	const size_t mid2 = 8 + 70; /* record 3 of gen 2 (then record 4) */

	build_two_gens(&g1, &n1, &g2, &n2, 40, &off);
	bad = malloc(n1 > n2 ? n1 : n2);
	assert_non_null(bad);
	/* Any flipped bit in an older generation. */
	for (size_t at = 0; at < n1; at += 5) {
		memcpy(bad, g1, n1);
		bad[at] ^= (unsigned char)(1u << (at % 8));
		expect_corrupt(bad, n1, g2, n2, 1);
	}
	/* A truncated older generation, even by one byte. */
	expect_corrupt(g1, n1 - 1, g2, n2, 1);
	expect_corrupt(g1, mid1 + 3, g2, n2, 1);
	/* A bad middle record of the newest, whole records after it. */
	for (size_t at = mid2; at < off; at++) {
		memcpy(bad, g2, n2);
		bad[at] ^= (unsigned char)(1u << (at % 8));
		expect_corrupt(g1, n1, bad, n2, 1);
	}
	/* Corruption in gen 2 with min_gen 2: gen 1 is not deleted. */
	memcpy(bad, g2, n2);
	bad[mid2 + 20] ^= 1;
	expect_corrupt(g1, n1, bad, n2, 2);
	assert_true(gen_exists(1));
	free(bad);
	free(g1);
	free(g2);
}

static void test_gap(void **state)
{
	struct es_wal *w;

	assert_int_equal(es_wal_open(&w, log_dir(), 1, NULL, NULL), 0);
	append_rec(w, 1, 10);
	assert_int_equal(es_wal_rotate(w, NULL), 0);
	append_rec(w, 2, 10);
	assert_int_equal(es_wal_rotate(w, NULL), 0);
	append_rec(w, 3, 10);
	es_wal_close(w);
	assert_int_equal(unlink(gen_path(2)), 0);
	assert_int_equal(es_wal_open(&w, log_dir(), 1, NULL, NULL),
			 ES_E_WAL_CORRUPT);
	assert_true(gen_exists(1));
	assert_true(gen_exists(3));
	/* Generations below min_gen do not count. */
	assert_int_equal(es_wal_open(&w, log_dir(), 3, NULL, NULL), 0);
	assert_false(gen_exists(1));
	es_wal_close(w);
}

/* ---- concurrent appenders --------------------------------------------- */

#define CT_THREADS 8
#define CT_RECS	   500

struct ct_shared {
	struct es_wal *w;
	_Atomic uint64_t closed_max; /* highest generation reported closed */
	atomic_int appenders_left;
	atomic_int fails;
};

struct ct_arg {
	struct ct_shared *sh;
	uint32_t t;
};

static void *ct_append(void *p)
{
	struct ct_arg *a = p;
	unsigned char buf[16 + 64 * 16];

	for (uint32_t k = 0; k < CT_RECS; k++) {
		uint32_t len = 16 + (k % 64) * 16;

		make_rec(buf, a->t * 7919 + k, len);
		le32_store(buf, a->t);
		le32_store(buf + 4, k);
		le64_store(buf + 8, atomic_load(&a->sh->closed_max));
		if (es_wal_append(a->sh->w, buf, len) != 0)
			atomic_fetch_add(&a->sh->fails, 1); /* must stay 0 */
	}
	atomic_fetch_sub(&a->sh->appenders_left, 1);
	return NULL;
}

static void *ct_rotate(void *p)
{
	struct ct_shared *sh = p;
	uint64_t closed;

	for (int i = 0; i < 40 && atomic_load(&sh->appenders_left); i++) {
		usleep(2000);
		if (es_wal_rotate(sh->w, &closed) != 0) {
			atomic_fetch_add(&sh->fails, 1);
			break;
		}
		atomic_store(&sh->closed_max, closed);
	}
	return NULL;
}

static void test_concurrent(void **state)
{
	static uint8_t seen[CT_THREADS][CT_RECS];
	struct ct_arg args[CT_THREADS];
	pthread_t th[CT_THREADS], rot;
	struct ct_shared sh = {0};
	int32_t last[CT_THREADS];
	struct coll c;

	memset(seen, 0, sizeof(seen));
	assert_int_equal(es_wal_open(&sh.w, log_dir(), 1, NULL, NULL), 0);
	atomic_store(&sh.appenders_left, CT_THREADS);
	for (uint32_t t = 0; t < CT_THREADS; t++) {
		args[t] = (struct ct_arg){.sh = &sh, .t = t};
		assert_int_equal(
		    pthread_create(&th[t], NULL, ct_append, &args[t]), 0);
	}
	assert_int_equal(pthread_create(&rot, NULL, ct_rotate, &sh), 0);
	for (int t = 0; t < CT_THREADS; t++)
		pthread_join(th[t], NULL);
	pthread_join(rot, NULL);
	assert_int_equal(atomic_load(&sh.fails), 0);
	es_wal_close(sh.w);

	assert_int_equal(open_collect(&sh.w, 1, &c), 0);
	assert_int_equal(c.n, CT_THREADS * CT_RECS);
	for (int t = 0; t < CT_THREADS; t++)
		last[t] = -1;
	for (size_t i = 0; i < c.n; i++) {
		const struct rec *r = &c.v[i];
		uint32_t t = le32_load(r->data), k = le32_load(r->data + 4);

		assert_true(t < CT_THREADS && k < CT_RECS);
		assert_int_equal(r->len, 16 + (k % 64) * 16);
		assert_int_equal(seen[t][k]++, 0);
		assert_true((int32_t)k > last[t]); /* the thread's own order */
		last[t] = (int32_t)k;
		/* Never in a generation reported closed before the append. */
		assert_true(r->gen > le64_load(r->data + 8));
	}
	print_message("concurrent: %zu records over %llu generations\n", c.n,
		      (unsigned long long)es_wal_gen(sh.w));
	coll_free(&c);
	es_wal_close(sh.w);
}

/* ---- kill -9 at random moments ---------------------------------------- */

#define CR_ROUNDS  6
#define CR_THREADS 4
#define CR_KMAX	   (1u << 16)

static uint32_t cr_len(uint64_t num)
{
	return 8 + (uint32_t)((num * 2654435761u) % 700);
}

static void cr_make(unsigned char *buf, uint64_t num)
{
	uint32_t len = cr_len(num);

	le64_store(buf, num);
	make_rec(buf + 8, (uint32_t)num, len - 8);
}

struct cr_arg {
	struct es_wal *w;
	int pipe_fd;
	uint32_t round, t;
};

/* Child thread: append numbered records, report each acknowledged one. */
static void *cr_child_thread(void *p)
{
	struct cr_arg *a = p;
	unsigned char buf[8 + 700];

	for (uint32_t k = 0; k < CR_KMAX; k++) {
		uint64_t num =
		    ((uint64_t)a->round * CR_THREADS + a->t) * CR_KMAX + k;

		cr_make(buf, num);
		if (es_wal_append(a->w, buf, cr_len(num)) != 0)
			_exit(3);
		if (write(a->pipe_fd, &num, sizeof(num)) != sizeof(num))
			_exit(4);
		if (a->t == 0 && k % 64 == 63 && es_wal_rotate(a->w, NULL))
			_exit(5);
	}
	return NULL;
}

static void cr_child(uint32_t round, int pipe_fd)
{
	struct cr_arg args[CR_THREADS];
	pthread_t th[CR_THREADS];
	struct es_wal *w;

	if (es_wal_open(&w, log_dir(), 1, NULL, NULL) != 0)
		_exit(2);
	for (uint32_t t = 0; t < CR_THREADS; t++) {
		args[t] = (struct cr_arg){w, pipe_fd, round, t};
		if (pthread_create(&th[t], NULL, cr_child_thread, &args[t]))
			_exit(6);
	}
	for (int t = 0; t < CR_THREADS; t++)
		pthread_join(th[t], NULL);
	_exit(0);
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

struct cr_acks {
	uint64_t *v;
	size_t n, cap;
};

/* Reads acknowledged numbers: what arrives within timeout_ms, or (-1)
 * everything up to the end of the pipe. */
static void cr_read_acks(int fd, struct cr_acks *a, int timeout_ms)
{
	struct pollfd pfd = {.fd = fd, .events = POLLIN};
	uint64_t nums[512];
	ssize_t got;

	do {
		if (timeout_ms >= 0 && poll(&pfd, 1, timeout_ms) <= 0)
			return;
		got = read(fd, nums, sizeof(nums));
		assert_true(got >= 0);
		assert_int_equal(got % 8, 0); /* 8-byte pipe writes: whole */
		for (ssize_t i = 0; i < got / 8; i++) {
			if (a->n == a->cap) {
				a->cap = a->cap ? 2 * a->cap : 4096;
				a->v = realloc(a->v, a->cap * sizeof(*a->v));
				assert_non_null(a->v);
			}
			a->v[a->n++] = nums[i];
		}
	} while (timeout_ms < 0 && got > 0);
}

/* One round: a child appends until it is killed, at delay_ms. */
static void cr_round(uint32_t round, int delay_ms, struct cr_acks *acks)
{
	uint64_t deadline = now_ms() + (uint64_t)delay_ms;
	int fds[2], status;
	pid_t pid;

	assert_int_equal(pipe(fds), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(fds[0]);
		cr_child(round, fds[1]);
	}
	close(fds[1]);
	for (uint64_t t; (t = now_ms()) < deadline;)
		cr_read_acks(fds[0], acks, (int)(deadline - t));
	kill(pid, SIGKILL);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true((WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) ||
		    (WIFEXITED(status) && WEXITSTATUS(status) == 0));
	cr_read_acks(fds[0], acks, -1);
	close(fds[0]);
}

struct cr_check {
	uint8_t *count;
	int64_t last[CR_ROUNDS * CR_THREADS];
	size_t n;
};

static int cr_replay(void *arg, uint64_t gen, const void *data, uint32_t len)
{
	struct cr_check *c = arg;
	unsigned char want[8 + 700];
	uint64_t num, stream;

	assert_true(len >= 8);
	num = le64_load(data);
	stream = num / CR_KMAX;
	assert_true(stream < CR_ROUNDS * CR_THREADS);
	assert_int_equal(len, cr_len(num));
	cr_make(want, num);
	assert_memory_equal(data, want, len + 0); /* whole */
	assert_int_equal(c->count[num]++, 0);	  /* at most once */
	assert_true((int64_t)(num % CR_KMAX) > c->last[stream]);
	c->last[stream] = (int64_t)(num % CR_KMAX);
	c->n++;
	return 0;
}

static void test_crash(void **state)
{
	const size_t space = (size_t)CR_ROUNDS * CR_THREADS * CR_KMAX;
	struct cr_acks acks = {0};
	struct cr_check chk;
	uint32_t seed = 12345;
	struct es_wal *w;

	chk.count = malloc(space);
	assert_non_null(chk.count);
	for (uint32_t round = 0; round < CR_ROUNDS; round++) {
		seed = seed * 1103515245u + 12345u;
		cr_round(round, 5 + (int)((seed >> 16) % 60), &acks);

		memset(chk.count, 0, space);
		for (int s = 0; s < CR_ROUNDS * CR_THREADS; s++)
			chk.last[s] = -1;
		chk.n = 0;
		assert_int_equal(es_wal_open(&w, log_dir(), 1, cr_replay, &chk),
				 0);
		es_wal_close(w);
		for (size_t i = 0; i < acks.n; i++)
			assert_int_equal(chk.count[acks.v[i]], 1);
		print_message("crash round %u: %zu acknowledged, %zu "
			      "replayed\n",
			      round, acks.n, chk.n);
	}
	free(acks.v);
	free(chk.count);
}

/* ---- injected I/O errors ---------------------------------------------- */

static atomic_int hook_calls;
static atomic_int hook_fail_after; /* calls that succeed before failing */
static int hook_rc;

static int write_fail(int fd, const void *buf, size_t len)
{
	if (atomic_fetch_add(&hook_calls, 1) >= atomic_load(&hook_fail_after))
		return hook_rc;
	return wal_sys_default.write_all(fd, buf, len);
}

/* Writes half of the batch, then fails as a full disk would. */
static int write_half(int fd, const void *buf, size_t len)
{
	int rc = wal_sys_default.write_all(fd, buf, len / 2);

	return rc < 0 ? rc : -ENOSPC;
}

static int sync_fail(int fd)
{
	return -EIO;
}

/* Three records, then one append through the hooks fails with want. */
static void poison_once(struct wal_sys hooks, int want, size_t min_after,
			size_t max_after)
{
	struct es_wal *w;
	struct coll c;
	uint64_t size;

	assert_int_equal(es_wal_open(&w, log_dir(), 1, NULL, NULL), 0);
	for (uint32_t i = 0; i < 3; i++)
		append_rec(w, i, 100);
	size = file_size(gen_path(1));
	atomic_store(&hook_calls, 0);
	atomic_store(&hook_fail_after, 0);
	hook_rc = -EIO;
	wal_sys = hooks;
	assert_int_equal(es_wal_append(w, "abcd", 4), want);
	wal_sys = wal_sys_default;
	assert_int_equal(es_wal_append(w, "abcd", 4), ES_E_WAL_CLOSED);
	assert_int_equal(es_wal_rotate(w, NULL), ES_E_WAL_CLOSED);
	assert_int_equal(es_wal_gen(w), 1);
	es_wal_close(w);

	assert_int_equal(open_collect(&w, 1, &c), 0);
	assert_in_range(c.n, min_after, max_after);
	for (uint32_t i = 0; i < 3; i++)
		check_rec(&c.v[i], 1, i, 100);
	if (c.n == 3)
		assert_int_equal(file_size(gen_path(1)), size);
	coll_free(&c);
	es_wal_close(w);
	assert_int_equal(unlink(gen_path(1)), 0);
}

#define PT_THREADS 8
#define PT_RECS	   20

struct pt_arg {
	struct es_wal *w;
	uint32_t t;
	int rc[PT_RECS];
};

static void *pt_append(void *p)
{
	struct pt_arg *a = p;
	unsigned char buf[64];

	for (uint32_t k = 0; k < PT_RECS; k++) {
		make_rec(buf, a->t * 100 + k, sizeof(buf));
		le32_store(buf, a->t * 100 + k);
		a->rc[k] = es_wal_append(a->w, buf, sizeof(buf));
	}
	return NULL;
}

static void test_poison(void **state)
{
	struct wal_sys fail_write = {write_fail, wal_sys_default.fdatasync};
	struct wal_sys half_write = {write_half, wal_sys_default.fdatasync};
	struct wal_sys fail_sync = {wal_sys_default.write_all, sync_fail};
	static struct pt_arg args[PT_THREADS];
	pthread_t th[PT_THREADS];
	uint8_t acked[PT_THREADS * 100] = {0};
	int n_io = 0, n_ok = 0;
	struct es_wal *w;
	struct coll c;

	poison_once(fail_write, -EIO, 3, 3);
	poison_once(half_write, -ENOSPC, 3, 3); /* torn tail cut */
	poison_once(fail_sync, -EIO, 3, 4);	/* written: may replay */

	/* Eight appenders; the sixth batch's write fails. */
	assert_int_equal(es_wal_open(&w, log_dir(), 1, NULL, NULL), 0);
	atomic_store(&hook_calls, 0);
	atomic_store(&hook_fail_after, 5);
	hook_rc = -EIO;
	wal_sys = fail_write;
	for (uint32_t t = 0; t < PT_THREADS; t++) {
		args[t] = (struct pt_arg){.w = w, .t = t};
		assert_int_equal(
		    pthread_create(&th[t], NULL, pt_append, &args[t]), 0);
	}
	for (int t = 0; t < PT_THREADS; t++)
		pthread_join(th[t], NULL);
	wal_sys = wal_sys_default;
	es_wal_close(w);
	for (int t = 0; t < PT_THREADS; t++) {
		int failed = 0;

		for (int k = 0; k < PT_RECS; k++) {
			int rc = args[t].rc[k];

			if (rc == 0) {
				assert_false(failed); /* no success after */
				acked[t * 100 + k] = 1;
				n_ok++;
				continue;
			}
			assert_true(rc == -EIO || rc == ES_E_WAL_CLOSED);
			n_io += rc == -EIO;
			failed = 1;
		}
		assert_true(failed);
	}
	assert_true(n_io >= 1);
	assert_int_equal(open_collect(&w, 1, &c), 0);
	assert_int_equal(c.n, (size_t)n_ok); /* failed writes wrote nothing */
	for (size_t i = 0; i < c.n; i++)
		assert_true(acked[le32_load(c.v[i].data)]);
	coll_free(&c);
	es_wal_close(w);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_rotate_drop, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_torn_tail, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_long_resync, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_corrupt, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_gap, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_concurrent, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_crash, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_poison, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
