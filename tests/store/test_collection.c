/*
 * A collection through its public API: writes, upserts, deletes, seals,
 * index builds, and recovery from what its catalog recorded plus its log.
 * The catalog here keeps its records in memory, the way the agent's keeps
 * them in the manifest; reopening hands them back as the agent does.
 */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "edgesync/collection.h"
#include "edgesync/crc32c.h"
#include "edgesync/ndvs.h"
#include "edgesync/store_error.h"
#include "edgesync/vamana.h"

#define DIM 8

struct memcat {
	int64_t next_id;
	uint64_t clock;
	struct es_segment_meta segs[64];
	struct es_clock_run *runs[64]; /* each segment's, as recorded */
	size_t n_runs[64];
	size_t n_segs;
	struct es_tombstone tombs[4096];
	size_t n_tombs;
	int wakes;
	/* the next sealed fails with -EIO: 1 having recorded it (a commit
	 * that reached the disk, its error notwithstanding), 2 without */
	int fail_sealed;
	int fail_indexed; /* the same for the next indexed */
};

static int mc_reserve(void *arg, int64_t *id)
{
	*id = ++((struct memcat *)arg)->next_id;
	return 0;
}

static int mc_hlc(void *arg, uint64_t *hlc)
{
	*hlc = ++((struct memcat *)arg)->clock;
	return 0;
}

static int mc_sealed(void *arg, const struct es_segment_meta *seg,
		     const struct es_clock_run *runs, size_t n_runs,
		     const struct es_tombstone *tombs, size_t n)
{
	struct memcat *m = arg;
	int fail = m->fail_sealed;

	m->fail_sealed = 0;
	if (fail == 2)
		return -EIO;
	m->runs[m->n_segs] = malloc((n_runs + 1) * sizeof(*runs));
	memcpy(m->runs[m->n_segs], runs, n_runs * sizeof(*runs));
	m->n_runs[m->n_segs] = n_runs;
	m->segs[m->n_segs++] = *seg;
	for (size_t i = 0; i < n; i++)
		m->tombs[m->n_tombs++] = tombs[i];
	return fail ? -EIO : 0;
}

static int mc_clocks(void *arg, const struct es_segment_meta *seg,
		     struct es_clock_run **runs, size_t *n)
{
	struct memcat *m = arg;

	for (size_t i = 0; i < m->n_segs; i++) {
		if (m->segs[i].id != seg->id)
			continue;
		*n = m->n_runs[i];
		*runs = malloc((*n + 1) * sizeof(**runs));
		memcpy(*runs, m->runs[i], *n * sizeof(**runs));
		return 0;
	}
	return -ENOENT;
}

static int mc_indexed(void *arg, const struct es_segment_meta *seg)
{
	struct memcat *m = arg;
	int fail = m->fail_indexed;

	m->fail_indexed = 0;
	if (fail == 2)
		return -EIO;
	for (size_t i = 0; i < m->n_segs; i++)
		if (m->segs[i].id == seg->id)
			m->segs[i] = *seg;
	return fail ? -EIO : 0;
}

static void mc_wake(void *arg)
{
	((struct memcat *)arg)->wakes++;
}

static char dir[64];
static struct memcat cat;
static uint32_t runs_max; /* clock_runs_max of the next open_coll */

static struct es_collection *open_coll(uint64_t threshold)
{
	struct es_collection_catalog c = {
	    .reserve_id = mc_reserve,
	    .hlc_now = mc_hlc,
	    .sealed = mc_sealed,
	    .clocks = mc_clocks,
	    .indexed = mc_indexed,
	    .wake = mc_wake,
	    .arg = &cat,
	};
	struct es_collection_params p = {
	    .dim = DIM,
	    .metric = ES_METRIC_L2,
	    .seal_threshold = threshold,
	    .origin = "dev-a",
	    .open_segments = 2,
	    .clock_runs_max = runs_max,
	};
	struct es_collection *coll;

	es_vamana_build_defaults(&p.build);
	p.build.R = 16;
	p.build.L = 32;
	p.build.threads = 2;
	assert_int_equal(es_collection_open(&coll, dir, &p, &c, cat.segs,
					    cat.n_segs, cat.tombs, cat.n_tombs),
			 0);
	return coll;
}

static int setup(void **state)
{
	memset(&cat, 0, sizeof(cat));
	runs_max = 0;
	strcpy(dir, "/tmp/es-test-coll-XXXXXX");
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[128];

	for (size_t i = 0; i < cat.n_segs; i++)
		free(cat.runs[i]);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

/* Vector of id: a point on a line, so the nearest ids are predictable. */
static void vec_of(uint64_t id, float shift, float *v)
{
	for (int j = 0; j < DIM; j++)
		v[j] = (float)id + shift + (float)j * 0.001f;
}

static void insert_range(struct es_collection *c, uint64_t from, uint64_t n,
			 float shift)
{
	uint64_t *ids = malloc(n * sizeof(*ids));
	float *v = malloc(n * DIM * sizeof(float));

	for (uint64_t i = 0; i < n; i++) {
		ids[i] = from + i;
		vec_of(from + i, shift, v + i * DIM);
	}
	assert_int_equal(es_collection_insert(c, ids, v, n), 0);
	free(ids);
	free(v);
}

static uint64_t nearest(struct es_collection *c, uint64_t id, float shift)
{
	struct es_collection_hit hit[3];
	float q[DIM];

	vec_of(id, shift, q);
	assert_true(es_collection_search(c, q, 1, 0, hit) >= 1);
	return hit[0].id;
}

/* 1 if id's live copy is the peer's (written with shift 9000), 0 if not. */
static int peer_copy(struct es_collection *c, uint64_t id)
{
	float v[DIM];

	assert_int_equal(es_collection_get(c, id, v), 0);
	return v[0] > 4000;
}

static void drain(struct es_collection *c)
{
	int more = 1;

	while (more)
		assert_int_equal(es_collection_maintain(c, &more), 0);
}

static void test_write_read(void **state)
{
	struct es_collection *c = open_coll(1000);
	struct es_collection_hit hits[5];
	float v[DIM], q[DIM];

	insert_range(c, 100, 50, 0);
	assert_int_equal(es_collection_get(c, 120, v), 0);
	vec_of(120, 0, q);
	assert_memory_equal(v, q, sizeof(v));
	assert_int_equal(es_collection_get(c, 7, v), -ENOENT);
	assert_int_equal(es_collection_search(c, q, 5, 0, hits), 5);
	assert_int_equal(hits[0].id, 120);
	assert_true(hits[0].distance <= hits[1].distance);
	/* NaN refused, nothing written */
	uint64_t id = 999;
	v[3] = NAN;
	assert_int_not_equal(es_collection_insert(c, &id, v, 1), 0);
	assert_int_equal(es_collection_get(c, 999, v), -ENOENT);
	es_collection_close(c);
}

static void test_upsert_and_delete(void **state)
{
	struct es_collection *c = open_coll(1000);
	struct es_collection_stats s;
	uint64_t del[] = {110, 111};

	insert_range(c, 100, 20, 0);
	insert_range(c, 105, 1, 1000); /* id 105 moves far away */
	assert_int_not_equal(nearest(c, 105, 0), 105);
	assert_int_equal(nearest(c, 105, 1000), 105);
	assert_int_equal(es_collection_delete(c, del, 2), 0);
	assert_int_not_equal(nearest(c, 110, 0), 110);
	es_collection_stats(c, &s);
	assert_int_equal(s.vectors, 18);
	es_collection_close(c);
}

/* The same answers before a seal, after it, and after its index. */
static void test_seal_and_index(void **state)
{
	struct es_collection *c = open_coll(100000);
	struct es_collection_stats s;
	uint64_t del = 250;

	insert_range(c, 0, 500, 0);
	assert_int_equal(es_collection_seal(c, 1), 0);
	assert_int_equal(cat.n_segs, 1);
	assert_int_equal(cat.segs[0].count, 500);
	assert_int_equal(nearest(c, 321, 0), 321);
	/* writes after the seal supersede sealed copies */
	insert_range(c, 10, 1, 5000);
	assert_int_equal(es_collection_delete(c, &del, 1), 0);
	assert_int_equal(nearest(c, 10, 5000), 10);
	assert_int_not_equal(nearest(c, 10, 0), 10);
	assert_int_not_equal(nearest(c, 250, 0), 250);
	drain(c);
	assert_true(cat.segs[0].indexed);
	es_collection_stats(c, &s);
	assert_int_equal(s.indexed, 1);
	assert_int_equal(s.vectors, 499);
	for (uint64_t id = 0; id < 500; id += 37)
		if (id != 10 && id != 250)
			assert_int_equal(nearest(c, id, 0), id);
	assert_int_not_equal(nearest(c, 250, 0), 250);
	assert_int_equal(nearest(c, 10, 5000), 10);
	es_collection_close(c);
}

/* Reopen from the catalog's records and the log: nothing lost. */
static void test_recovery(void **state)
{
	struct es_collection *c = open_coll(100000);
	struct es_collection_stats s;
	uint64_t del[] = {3, 401};
	char stray[128];
	float v[DIM];
	FILE *f;

	insert_range(c, 0, 300, 0);
	assert_int_equal(es_collection_seal(c, 1), 0);
	insert_range(c, 300, 200, 0); /* only in the log */
	insert_range(c, 5, 1, 7000);  /* supersedes a sealed copy */
	assert_int_equal(es_collection_delete(c, del, 2), 0);
	es_collection_close(c);

	/* a half-done seal's file and a temporary file are swept away */
	snprintf(stray, sizeof(stray), "%s/seg-99.ndvs", dir);
	f = fopen(stray, "w");
	fclose(f);
	snprintf(stray, sizeof(stray), "%s/seg-1.ndvs.tmp.abc", dir);
	f = fopen(stray, "w");
	fclose(f);

	c = open_coll(100000);
	es_collection_stats(c, &s);
	assert_int_equal(s.vectors, 498);
	assert_int_equal(es_collection_get(c, 3, v), -ENOENT);
	assert_int_equal(es_collection_get(c, 401, v), -ENOENT);
	assert_int_equal(es_collection_get(c, 5, v), 0);
	assert_true(v[0] > 6000);
	assert_int_equal(nearest(c, 450, 0), 450);
	assert_int_equal(access(stray, F_OK), -1);
	/* seal what the log held, reopen again: the log is cut */
	assert_int_equal(es_collection_seal(c, 1), 0);
	es_collection_close(c);
	c = open_coll(100000);
	es_collection_stats(c, &s);
	assert_int_equal(s.vectors, 498);
	assert_int_equal(s.growing, 0);
	assert_int_equal(s.segments, 2);
	assert_int_equal(es_collection_get(c, 3, v), -ENOENT);
	assert_int_equal(nearest(c, 5, 7000), 5);
	es_collection_close(c);
}

/*
 * A seal whose record fails: its file stays, so a record that did reach
 * the disk still names a file and the next open succeeds with every
 * vector; one that did not leaves a file that the next open removes,
 * the vectors coming back from the log.
 */
static void test_sealed_failed(void **state)
{
	struct es_collection *c = open_coll(100000);
	struct es_collection_stats s;
	char path[128];
	float v[DIM];

	for (int mode = 1; mode <= 2; mode++) {
		insert_range(c, 1000 * (uint64_t)mode, 100, 0);
		cat.fail_sealed = mode;
		assert_int_equal(es_collection_seal(c, 1), -EIO);
		snprintf(path, sizeof(path), "%s/seg-%lld.ndvs", dir,
			 (long long)cat.next_id);
		assert_int_equal(access(path, F_OK), 0);
		es_collection_close(c);
		c = open_coll(100000);
		es_collection_stats(c, &s);
		assert_int_equal(s.vectors, 100 * (uint64_t)mode);
		assert_int_equal(
		    es_collection_get(c, 1000 * (uint64_t)mode + 7, v), 0);
		assert_int_equal(access(path, F_OK), mode == 1 ? 0 : -1);
	}
	assert_int_equal(cat.n_segs, 1);
	es_collection_close(c);
}

/*
 * An index whose record fails: its file stays, so a record that did
 * reach the disk still names it after a restart (the segment searched
 * through it); one that did not leaves a file that the next open
 * removes, the index then built again.
 */
static void test_indexed_failed(void **state)
{
	struct es_collection *c = open_coll(100000);
	struct es_collection_stats s;
	char path[128];
	int more;

	for (int mode = 1; mode <= 2; mode++) {
		insert_range(c, 1000 * (uint64_t)mode, 100, 0);
		assert_int_equal(es_collection_seal(c, 1), 0);
		snprintf(path, sizeof(path), "%s/seg-%lld.vamana", dir,
			 (long long)cat.next_id);
		cat.fail_indexed = mode;
		assert_int_equal(es_collection_maintain(c, &more), -EIO);
		assert_int_equal(access(path, F_OK), 0);
		es_collection_close(c);
		c = open_coll(100000);
		es_collection_stats(c, &s);
		assert_int_equal(s.indexed, 1);
		assert_int_equal(access(path, F_OK), mode == 1 ? 0 : -1);
		assert_int_equal(nearest(c, 1000 * (uint64_t)mode + 42, 0),
				 1000 * (uint64_t)mode + 42);
	}
	drain(c);
	es_collection_stats(c, &s);
	assert_int_equal(s.indexed, 2);
	assert_int_equal(access(path, F_OK), 0);
	es_collection_close(c);
}

/* Installs a peer's (dev-b) segment of n rows (ids, v) with its clock,
 * its rows' clocks (none: all at hlc) and tombstones, as sync does:
 * staged, then handed over. */
static int install_peer_runs(struct es_collection *c, const uint64_t *ids,
			     const float *v, uint64_t n, uint64_t seq,
			     uint64_t hlc, const struct es_clock_run *runs,
			     size_t n_runs, const struct es_tombstone *t,
			     size_t n_t)
{
	struct es_segment_meta m = {0};
	struct es_ndvs_info info;
	char staged[128];
	int rc;

	snprintf(staged, sizeof(staged), "%s/staged.ndvs", dir);
	assert_int_equal(es_ndvs_write(staged, DIM, n, v, ids, &info), 0);
	m.count = n;
	m.dim = DIM;
	m.size = info.file_size;
	m.checksum = info.checksum;
	snprintf(m.origin, sizeof(m.origin), "dev-b");
	m.origin_seq = seq;
	m.seal_hlc = hlc;
	rc = es_collection_install(c, staged, &m, runs, n_runs, t, n_t);
	unlink(staged);
	return rc;
}

static void install_peer(struct es_collection *c, const uint64_t *ids,
			 const float *v, uint64_t n, uint64_t seq, uint64_t hlc,
			 const struct es_tombstone *t, size_t n_t)
{
	assert_int_equal(
	    install_peer_runs(c, ids, v, n, seq, hlc, NULL, 0, t, n_t), 0);
}

/*
 * A segment's clock is its newest write's, not the time of its seal: a
 * peer's copy written after the local write but before the local seal
 * wins over it, as it does on every replica (with the seal's time the
 * local copy won here and everywhere). A later local write wins again.
 */
static void test_segment_clock(void **state)
{
	struct es_collection *c = open_coll(100000);
	uint64_t id = 3, w;
	float v[DIM];

	insert_range(c, 0, 10, 0);
	w = cat.clock;	   /* the write's clock */
	cat.clock += 1000; /* time passes before the seal */
	assert_int_equal(es_collection_seal(c, 1), 0);
	assert_int_equal(cat.segs[0].seal_hlc, w);
	vec_of(id, 9000, v);
	/* written after the local write, before its seal */
	install_peer(c, &id, v, 1, 1, w + 500, NULL, 0);
	assert_int_equal(nearest(c, 3, 9000), 3);
	assert_int_not_equal(nearest(c, 3, 0), 3);
	insert_range(c, 3, 1, 0); /* a later local write */
	assert_int_equal(nearest(c, 3, 0), 3);
	es_collection_close(c);
}

/*
 * Each sealed row keeps its own write's clock. Local writes at w1 (ids
 * 0..9), then at w2 (ids 10..19), then id 5 again at w3; the seal orders
 * rows by write, one run each: [0, w1) [9, w2) [19, w3). A peer's copies
 * of 3 and 13 written between w1 and w2 win over 3 (older) and lose to
 * 13 (newer), here and after a reopen (with one clock per segment, its
 * newest write's, both local copies would have won).
 */
static void test_row_clocks(void **state)
{
	struct es_collection *c = open_coll(100000);
	uint64_t ids[2] = {3, 13}, w1, w2, w3;
	float v[2 * DIM];

	insert_range(c, 0, 10, 0);
	w1 = cat.clock;
	cat.clock += 1000;
	insert_range(c, 10, 10, 0);
	w2 = cat.clock;
	insert_range(c, 5, 1, 0);
	w3 = cat.clock;
	assert_int_equal(es_collection_seal(c, 1), 0);
	assert_int_equal(cat.segs[0].seal_hlc, w3);
	assert_int_equal(cat.n_runs[0], 3);
	assert_int_equal(cat.runs[0][0].row, 0);
	assert_int_equal(cat.runs[0][0].hlc, w1);
	assert_int_equal(cat.runs[0][1].row, 9);
	assert_int_equal(cat.runs[0][1].hlc, w2);
	assert_int_equal(cat.runs[0][2].row, 19);
	assert_int_equal(cat.runs[0][2].hlc, w3);
	vec_of(3, 9000, v);
	vec_of(13, 9000, v + DIM);
	install_peer(c, ids, v, 2, 1, w1 + 500, NULL, 0);
	for (int pass = 0; pass < 2; pass++) {
		assert_true(peer_copy(c, 3));
		assert_false(peer_copy(c, 13));
		assert_false(peer_copy(c, 5));
		assert_int_equal(nearest(c, 3, 9000), 3);
		assert_int_equal(nearest(c, 13, 0), 13);
		es_collection_close(c);
		c = open_coll(100000);
	}
	es_collection_close(c);
}

/*
 * A peer's segment with its rows' clocks: each row wins or loses by its
 * own. Row 0 (id 40) at p1, row 1 (id 41) at p2; local copies written
 * between them: 40 stays local, 41 becomes the peer's. A list that does
 * not fit the segment is refused before anything is installed.
 */
static void test_install_row_clocks(void **state)
{
	struct es_collection *c = open_coll(100000);
	uint64_t ids[2] = {40, 41}, p1, p2;
	struct es_clock_run runs[2], bad[2];
	struct es_collection_stats s;
	float v[2 * DIM];

	p1 = ++cat.clock;
	insert_range(c, 40, 2, 0);
	p2 = ++cat.clock;
	runs[0] = (struct es_clock_run){.row = 0, .hlc = p1};
	runs[1] = (struct es_clock_run){.row = 1, .hlc = p2};
	vec_of(40, 9000, v);
	vec_of(41, 9000, v + DIM);
	/* not starting at row 0; rows, then clocks, not increasing; the
	 * last clock not the segment's; more runs than rows */
	bad[0] = runs[1];
	bad[1] = runs[0];
	assert_int_equal(
	    install_peer_runs(c, ids, v, 2, 1, p2, bad, 2, NULL, 0), -EINVAL);
	bad[0] = runs[0];
	bad[1] = (struct es_clock_run){.row = 0, .hlc = p2};
	assert_int_equal(
	    install_peer_runs(c, ids, v, 2, 1, p2, bad, 2, NULL, 0), -EINVAL);
	bad[1] = (struct es_clock_run){.row = 1, .hlc = p1};
	assert_int_equal(
	    install_peer_runs(c, ids, v, 2, 1, p1, bad, 2, NULL, 0), -EINVAL);
	assert_int_equal(
	    install_peer_runs(c, ids, v, 2, 1, p2 + 1, runs, 2, NULL, 0),
	    -EINVAL);
	assert_int_equal(
	    install_peer_runs(c, ids, v, 2, 1, p1, runs, 2, NULL, 0), -EINVAL);
	assert_int_equal(
	    install_peer_runs(c, ids, v, 1, 1, p2, runs, 2, NULL, 0), -EINVAL);
	assert_int_equal(cat.n_segs, 0);
	assert_int_equal(cat.next_id, 0); /* refused before taking an id */
	assert_int_equal(
	    install_peer_runs(c, ids, v, 2, 1, p2, runs, 2, NULL, 0), 0);
	assert_int_equal(cat.n_runs[0], 2);
	for (int pass = 0; pass < 2; pass++) {
		assert_false(peer_copy(c, 40));
		assert_true(peer_copy(c, 41));
		es_collection_stats(c, &s);
		assert_int_equal(s.vectors, 2);
		es_collection_close(c);
		c = open_coll(100000);
	}
	es_collection_close(c);
}

/*
 * A seal reorders rows by write: id 5, written again last, becomes the
 * segment's last row, and its live copy (and id 6's, which moves into
 * row 5) follows, before and after a reopen.
 */
static void test_seal_reorders(void **state)
{
	struct es_collection *c = open_coll(100000);
	float v[DIM], want[DIM];

	insert_range(c, 0, 10, 0);
	insert_range(c, 5, 1, 500); /* id 5 again, another vector */
	assert_int_equal(es_collection_seal(c, 1), 0);
	vec_of(5, 500, want);
	for (int pass = 0; pass < 2; pass++) {
		assert_int_equal(es_collection_get(c, 5, v), 0);
		assert_memory_equal(v, want, sizeof(v));
		assert_int_equal(es_collection_get(c, 6, v), 0);
		assert_true(v[0] < 7);
		assert_int_equal(nearest(c, 5, 500), 5);
		es_collection_close(c);
		c = open_coll(100000);
	}
	es_collection_close(c);
}

/*
 * At most clock_runs_max runs per segment (4 here): a buffer is due at 4
 * writes; a seal that comes after 10 merges them into groups of 3, each
 * at its newest clock (rows 0..2 at w3, 3..5 at w6, 6..8 at w9, 9 at
 * w10), the same after a reopen.
 */
static void test_runs_bounded(void **state)
{
	struct es_collection *c;
	uint64_t w[10];
	int wakes;

	runs_max = 4;
	c = open_coll(100000);
	wakes = cat.wakes;
	for (uint64_t i = 0; i < 10; i++) {
		insert_range(c, i, 1, 0);
		w[i] = cat.clock;
		if (i == 2)
			assert_int_equal(cat.wakes, wakes);
		if (i == 3)
			assert_true(cat.wakes > wakes); /* due at 4 writes */
	}
	assert_int_equal(es_collection_seal(c, 1), 0);
	assert_int_equal(cat.n_runs[0], 4);
	for (size_t g = 0; g < 4; g++) {
		assert_int_equal(cat.runs[0][g].row, 3 * g);
		assert_int_equal(cat.runs[0][g].hlc, w[g < 3 ? 3 * g + 2 : 9]);
	}
	assert_int_equal(cat.segs[0].seal_hlc, w[9]);
	es_collection_close(c);
	c = open_coll(100000);
	assert_int_equal(nearest(c, 4, 0), 4);
	es_collection_close(c);
}

/*
 * es_collection_verify reads a segment and its index whole: both verify;
 * a flipped byte in either is named; a whole segment that is not the one
 * recorded is told apart from a damaged one; an unknown id is -ENOENT.
 */
static void test_verify(void **state)
{
	struct es_collection *c = open_coll(100000);
	struct es_collection_verified v;
	char seg[128], idx[128], other[128];
	struct es_ndvs_info info;
	FILE *f;

	insert_range(c, 0, 300, 0);
	assert_int_equal(es_collection_seal(c, 1), 0);
	drain(c); /* its index */
	snprintf(seg, sizeof(seg), "%s/seg-1.ndvs", dir);
	snprintf(idx, sizeof(idx), "%s/seg-1.vamana", dir);
	assert_int_equal(es_collection_verify(c, 1, &v), 0);
	assert_int_equal(v.segment_rc, 0);
	assert_int_equal(v.index_rc, 0);
	assert_int_equal(v.indexed, 1);
	assert_int_equal(v.bytes, cat.segs[0].size + cat.segs[0].index_size);
	assert_int_equal(es_collection_verify(c, 99, &v), -ENOENT);
	for (int which = 0; which < 2; which++) {
		const char *path = which ? idx : seg;
		int ch;

		f = fopen(path, "r+b");
		assert_non_null(f);
		fseek(f, 5000, SEEK_SET);
		ch = fgetc(f);
		fseek(f, 5000, SEEK_SET);
		fputc(ch ^ 0x40, f);
		fclose(f);
		assert_int_equal(es_collection_verify(c, 1, &v), 0);
		assert_true(which ? v.segment_rc == 0 && v.index_rc < 0
				  : v.segment_rc == ES_E_NDVS_CHECKSUM);
		f = fopen(path, "r+b");
		fseek(f, 5000, SEEK_SET);
		fputc(ch, f);
		fclose(f);
	}
	assert_int_equal(es_collection_verify(c, 1, &v), 0);
	assert_int_equal(v.segment_rc | v.index_rc, 0);
	/* another whole segment of the same size in its place */
	snprintf(other, sizeof(other), "%s/other.ndvs", dir);
	{
		uint64_t *ids = malloc(300 * sizeof(*ids));
		float *vs = malloc(300 * DIM * sizeof(float));

		for (uint64_t i = 0; i < 300; i++) {
			ids[i] = 1000 + i;
			vec_of(i, 1, vs + i * DIM);
		}
		assert_int_equal(es_ndvs_write(other, DIM, 300, vs, ids, &info),
				 0);
		free(ids);
		free(vs);
	}
	assert_int_equal(rename(other, seg), 0);
	assert_int_equal(es_collection_verify(c, 1, &v), 0);
	assert_int_equal(v.segment_rc, ES_E_NDVS_RECORD);
	es_collection_close(c);
}

/* A seal at the threshold happens in the background step. */
static void test_threshold(void **state)
{
	struct es_collection *c = open_coll(64);

	insert_range(c, 0, 100, 0);
	assert_true(cat.wakes > 0);
	drain(c);
	assert_int_equal(cat.n_segs, 1);
	assert_int_equal(cat.segs[0].count, 100);
	es_collection_close(c);
}

/* A peer's segment: its rows and tombstones win or lose by version. */
static void test_install(void **state)
{
	struct es_collection *c = open_coll(100000);
	struct es_tombstone t = {.id = 20, .origin = "dev-b"};
	struct es_collection_stats s;
	uint64_t ids[3] = {10, 11, 500};
	float v[3 * DIM], got[DIM];

	insert_range(c, 0, 30, 0); /* local writes at clock 1 */
	for (int i = 0; i < 3; i++)
		vec_of(ids[i], 9000, v + i * DIM);
	t.hlc = cat.clock + 50;
	/* newer than every local write */
	install_peer(c, ids, v, 3, 7, cat.clock + 100, &t, 1);
	assert_int_equal(cat.segs[cat.n_segs - 1].origin_seq, 7);
	assert_int_equal(nearest(c, 10, 9000), 10);
	assert_int_not_equal(nearest(c, 10, 0), 10);
	assert_int_equal(es_collection_get(c, 500, got), 0);
	assert_int_equal(es_collection_get(c, 20, got), -ENOENT);
	/* an older copy from another peer loses */
	vec_of(11, -9000, v);
	install_peer(c, &ids[1], v, 1, 8, 1, NULL, 0);
	assert_int_equal(nearest(c, 11, 9000), 11);
	es_collection_stats(c, &s);
	assert_int_equal(s.vectors, 30);
	es_collection_close(c);
	/* the same after a restart */
	c = open_coll(100000);
	es_collection_stats(c, &s);
	assert_int_equal(s.vectors, 30);
	assert_int_equal(nearest(c, 11, 9000), 11);
	assert_int_equal(es_collection_get(c, 20, got), -ENOENT);
	es_collection_close(c);
}

/* Writes a peer's segment of n vectors (ids from first) to path. */
static void peer_segment(const char *path, uint64_t first, uint64_t n,
			 struct es_segment_meta *m, uint64_t seq)
{
	uint64_t *ids = malloc(n * sizeof(*ids));
	float *v = malloc(n * DIM * sizeof(float));
	struct es_ndvs_info info;

	for (uint64_t i = 0; i < n; i++) {
		ids[i] = first + i;
		vec_of(first + i, 0, v + i * DIM);
	}
	assert_int_equal(es_ndvs_write(path, DIM, n, v, ids, &info), 0);
	memset(m, 0, sizeof(*m));
	m->count = n;
	m->dim = DIM;
	m->size = info.file_size;
	m->checksum = info.checksum;
	snprintf(m->origin, sizeof(m->origin), "dev-b");
	m->origin_seq = seq;
	m->seal_hlc = 1;
	free(ids);
	free(v);
}

/*
 * A peer's segment larger than the lookahead of coll_rows_live, over
 * local rows and a tombstone: each row goes live only where it wins, at
 * install and again when the segment is loaded at the next open.
 */
static void test_install_many(void **state)
{
	struct es_collection *c = open_coll(100000);
	struct es_collection_stats s;
	struct es_segment_meta m;
	uint64_t gone = 4000;
	char staged[128];
	float got[DIM];

	cat.clock = 10;		       /* the peer's rows are at clock 1 */
	insert_range(c, 0, 1000, 500); /* so these win over them */
	assert_int_equal(es_collection_delete(c, &gone, 1), 0);
	snprintf(staged, sizeof(staged), "%s/staged.ndvs", dir);
	peer_segment(staged, 500, 5000, &m, 9); /* ids 500..5499 */
	assert_int_equal(es_collection_install(c, staged, &m, NULL, 0, NULL, 0),
			 0);
	unlink(staged);
	for (int round = 0; round < 2; round++) {
		es_collection_stats(c, &s);
		assert_int_equal(s.vectors, 5499); /* 0..5499 but 4000 */
		assert_int_equal(es_collection_get(c, 700, got), 0);
		assert_true(got[0] > 1100.0f); /* the local copy */
		assert_int_equal(es_collection_get(c, 4000, got), -ENOENT);
		assert_int_equal(es_collection_get(c, 5499, got), 0);
		assert_true(got[0] < 5500.0f); /* the peer's */
		assert_int_equal(es_collection_seal(c, 1), 0);
		es_collection_close(c);
		c = open_coll(100000);
	}
	es_collection_close(c);
}

static void build_index(const char *seg, const char *out, enum es_metric mt)
{
	struct es_vamana_build_params bp;

	es_vamana_build_defaults(&bp);
	bp.R = 16;
	bp.L = 32;
	bp.threads = 1;
	bp.metric = mt;
	assert_int_equal(es_vamana_build(seg, out, &bp), 0);
}

/*
 * An index built by a peer for a segment it sent: adopted only whole,
 * for that very segment and metric; then the segment is indexed (now and
 * after a restart) and nothing is built for it here.
 */
static void test_adopt_index(void **state)
{
	struct es_collection *c = open_coll(100000);
	struct es_segment_meta m, other;
	char seg[128], seg2[128], idx[128], bad[128], cmd[400];
	FILE *f;

	snprintf(seg, sizeof(seg), "%s/peer.ndvs", dir);
	snprintf(seg2, sizeof(seg2), "%s/other.ndvs", dir);
	snprintf(idx, sizeof(idx), "%s/peer.vamana", dir);
	snprintf(bad, sizeof(bad), "%s/bad.vamana", dir);
	peer_segment(seg, 1000, 300, &m, 9);
	peer_segment(seg2, 5000, 300, &other, 10);
	build_index(seg, idx, ES_METRIC_L2);
	assert_int_equal(es_collection_install(c, seg, &m, NULL, 0, NULL, 0),
			 0);
	assert_int_equal(es_collection_adopt_index(c, "dev-c", 9, idx),
			 -ENOENT);
	/* another segment's index, the wrong metric, a flipped byte */
	build_index(seg2, bad, ES_METRIC_L2);
	assert_int_equal(es_collection_adopt_index(c, "dev-b", 9, bad),
			 ES_E_VAMANA_SEGMENT);
	unlink(bad);
	build_index(seg, bad, ES_METRIC_IP);
	assert_int_equal(es_collection_adopt_index(c, "dev-b", 9, bad),
			 ES_E_VAMANA_SEGMENT);
	snprintf(cmd, sizeof(cmd), "cp %s %s", idx, bad);
	assert_int_equal(system(cmd), 0);
	f = fopen(bad, "r+b");
	assert_non_null(f);
	fseek(f, 4096 + 100, SEEK_SET);
	fputc(0x5a ^ fgetc(f), f);
	fclose(f);
	assert_true(es_collection_adopt_index(c, "dev-b", 9, bad) < 0);
	assert_false(cat.segs[cat.n_segs - 1].indexed);
	/* a record that fails keeps the linked file (test_indexed_failed) */
	cat.fail_indexed = 1;
	assert_int_equal(es_collection_adopt_index(c, "dev-b", 9, idx), -EIO);
	snprintf(cmd, sizeof(cmd), "%s/seg-%lld.vamana", dir,
		 (long long)cat.segs[cat.n_segs - 1].id);
	assert_int_equal(access(cmd, F_OK), 0);

	assert_int_equal(es_collection_adopt_index(c, "dev-b", 9, idx), 0);
	assert_true(cat.segs[cat.n_segs - 1].indexed);
	assert_int_equal(es_collection_adopt_index(c, "dev-b", 9, idx), 1);
	assert_int_equal(nearest(c, 1100, 0), 1100);
	es_collection_close(c);
	c = open_coll(100000);
	assert_true(cat.segs[cat.n_segs - 1].indexed);
	assert_int_equal(nearest(c, 1200, 0), 1200);
	es_collection_close(c);
}

/* The CRC32C of the whole file at path. */
static uint32_t file_crc(const char *path)
{
	unsigned char b[4096];
	uint32_t crc = 0;
	size_t n;
	FILE *f = fopen(path, "rb");

	assert_non_null(f);
	while ((n = fread(b, 1, sizeof(b), f)) > 0)
		crc = es_crc32c(crc, b, n);
	fclose(f);
	return crc;
}

/*
 * A segment installed with its peer's index: recorded indexed before it
 * is visible, so maintain finds nothing to build; a refused index (built
 * from another segment) leaves the segment installed, unindexed.
 */
static void test_install_indexed(void **state)
{
	struct es_collection *c = open_coll(100000);
	struct es_segment_meta m, other;
	struct es_vamana_info info;
	struct es_vamana *v;
	char seg[128], seg2[128], idx[128], idx2[128];
	int index_rc = -1, more = 1;

	snprintf(seg, sizeof(seg), "%s/peer.ndvs", dir);
	snprintf(seg2, sizeof(seg2), "%s/other.ndvs", dir);
	snprintf(idx, sizeof(idx), "%s/peer.vamana", dir);
	snprintf(idx2, sizeof(idx2), "%s/other.vamana", dir);
	peer_segment(seg, 1000, 300, &m, 9);
	peer_segment(seg2, 5000, 300, &other, 10);
	build_index(seg, idx, ES_METRIC_L2);
	build_index(seg2, idx2, ES_METRIC_L2);

	/* the whole file's CRC32C follows from the footer's */
	assert_int_equal(es_vamana_open(&v, idx, 0, 0, &info), 0);
	es_vamana_close(v);
	assert_int_equal(es_vamana_file_crc(info.checksum), file_crc(idx));

	assert_int_equal(es_collection_install_indexed(c, seg, &m, NULL, 0,
						       NULL, 0, idx, &index_rc),
			 0);
	assert_int_equal(index_rc, 0);
	assert_true(cat.segs[cat.n_segs - 1].indexed);
	assert_int_equal(cat.segs[cat.n_segs - 1].index_checksum,
			 info.checksum);
	assert_int_equal(es_collection_maintain(c, &more), 0);
	assert_int_equal(more, 0);
	assert_int_equal(es_collection_adopt_index(c, "dev-b", 9, idx), 1);

	/* seg2 with seg's index: refused, seg2 installed all the same */
	assert_int_equal(es_collection_install_indexed(c, seg2, &other, NULL, 0,
						       NULL, 0, idx, &index_rc),
			 0);
	assert_int_equal(index_rc, ES_E_VAMANA_SEGMENT);
	assert_false(cat.segs[cat.n_segs - 1].indexed);
	assert_int_equal(nearest(c, 5100, 0), 5100);
	es_collection_close(c);
	c = open_coll(100000);
	assert_true(cat.segs[cat.n_segs - 2].indexed);
	assert_int_equal(nearest(c, 1200, 0), 1200);
	es_collection_close(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_write_read, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_upsert_and_delete, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_seal_and_index, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_recovery, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_indexed_failed, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_sealed_failed, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_segment_clock, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_threshold, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_install, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_row_clocks, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_seal_reorders, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_verify, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_runs_bounded, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_install_row_clocks, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_install_many, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_adopt_index, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_install_indexed, setup,
					    teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
