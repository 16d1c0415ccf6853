/*
 * Vamana index open, verify and search. The index files are written here
 * with vamana_file_write from a brute-force graph (nearest neighbours plus
 * a few random long edges, so it is connected) on clustered data, so these
 * tests do not depend on the build.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "edgesync/crc32c.h"
#include "edgesync/ndvs.h"
#include "edgesync/pq.h"
#include "edgesync/store_error.h"
#include "edgesync/vamana.h"
#include "edgesync/le.h"
#include "uring_fetch.h"
#include "vamana_format.h"

#define N    1000
#define DIM  16
#define DEG  16
#define NQ   100
#define K    10
#define NEAR (DEG - 4) /* nearest neighbours per node; the rest random */
#define PQ_M 8

static char dir[64];
static char seg_path[128], idx_path[128], other_seg_path[128];
static float *data, *queries;
static uint32_t *truth; /* NQ x K exact nearest rows */
static struct es_ndvs_info seg_info, other_info;

static uint64_t rng_next(uint64_t *s)
{
	uint64_t z = (*s += 0x9E3779B97F4A7C15ull);

	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

static float rng_float(uint64_t *s) /* [-1, 1) */
{
	return (float)(rng_next(s) >> 40) / (float)(1u << 23) - 1.0f;
}

static void clustered(float *out, uint32_t n, uint32_t dim, uint64_t seed)
{
	uint64_t s = seed;
	float centres[10][64];

	for (int c = 0; c < 10; c++)
		for (uint32_t d = 0; d < dim; d++)
			centres[c][d] = 10.0f * rng_float(&s);
	for (uint32_t i = 0; i < n; i++) {
		int c = (int)(rng_next(&s) % 10);

		for (uint32_t d = 0; d < dim; d++)
			out[(size_t)i * dim + d] =
			    centres[c][d] + rng_float(&s);
	}
}

static float l2(const float *a, const float *b, uint32_t dim)
{
	float d = 0;

	for (uint32_t i = 0; i < dim; i++)
		d += (a[i] - b[i]) * (a[i] - b[i]);
	return d;
}

/* The k nearest rows of x among n (sorted insertion, ties by row). */
static void knn(const float *x, const float *pts, uint32_t n, uint32_t dim,
		uint32_t skip, uint32_t k, uint32_t *out)
{
	float best[64];
	uint32_t cnt = 0;

	if (k == 0)
		return;
	for (uint32_t i = 0; i < n; i++) {
		float d = l2(x, pts + (size_t)i * dim, dim);
		uint32_t p;

		if (i == skip || (cnt == k && d >= best[k - 1]))
			continue;
		p = cnt < k ? cnt++ : k - 1;
		for (; p > 0 && best[p - 1] > d; p--) {
			best[p] = best[p - 1];
			out[p] = out[p - 1];
		}
		best[p] = d;
		out[p] = i;
	}
}

/*
 * Writes an index of n rows of data: NEAR nearest neighbours plus random
 * ones up to DEG (degree DEG - 2 for row 5, to exercise the padding), entry
 * the row nearest the mean.
 */
static void write_index(const char *path, const float *pts, uint32_t n,
			const struct es_ndvs_info *si, enum es_metric metric)
{
	struct vamana_layout l = {0};
	uint32_t *adj = calloc((size_t)n * DEG + 1, 4);
	uint32_t *deg = calloc(n + 1, 4);
	uint64_t *ids = calloc(n + 1, 8);
	uint8_t *codes = calloc((size_t)n * PQ_M + 1, 1);
	float mean[DIM] = {0};
	struct es_pq *pq = NULL;
	uint64_t s = 99;
	uint32_t entry = 0;

	assert_non_null(adj);
	for (uint32_t i = 0; i < n; i++) {
		uint32_t near = n - 1 < NEAR ? n - 1 : NEAR;

		knn(pts + (size_t)i * DIM, pts, n, DIM, i, near, adj + i * DEG);
		deg[i] = near;
		while (n > DEG + 1 && deg[i] < (i == 5 ? DEG - 2 : DEG)) {
			uint32_t u = (uint32_t)(rng_next(&s) % n), dup = u == i;

			for (uint32_t j = 0; j < deg[i]; j++)
				dup |= adj[i * DEG + j] == u;
			if (!dup)
				adj[i * DEG + deg[i]++] = u;
		}
		ids[i] = 1000000 + 7ull * i;
		for (int d = 0; d < DIM; d++)
			mean[d] += pts[(size_t)i * DIM + d] / (float)n;
	}
	if (n) {
		knn(mean, pts, n, DIM, UINT32_MAX, 1, &entry);
		assert_int_equal(es_pq_train(&pq, pts, n, DIM, PQ_M, 0, 5, 1),
				 0);
		assert_int_equal(es_pq_encode(pq, pts, n, codes, 1), 0);
	}
	l.info.metric = metric;
	l.info.dim = DIM;
	l.info.R = DEG;
	l.info.build_L = 50;
	l.info.alpha = 1.2f;
	l.info.num_nodes = n;
	l.info.entry = entry;
	l.info.pq_m = PQ_M;
	l.info.seed = 5;
	l.info.segment_count = si->count;
	l.info.segment_size = si->file_size;
	l.info.segment_checksum = si->checksum;
	assert_int_equal(
	    vamana_file_write(path, &l, pts, adj, deg, ids, pq, codes), 0);
	es_pq_destroy(pq);
	free(codes);
	free(ids);
	free(deg);
	free(adj);
}

static void write_segment(const char *path, const float *pts, uint32_t n,
			  struct es_ndvs_info *si)
{
	uint64_t *ids = calloc(n + 1, 8);

	for (uint32_t i = 0; i < n; i++)
		ids[i] = 1000000 + 7ull * i;
	assert_int_equal(es_ndvs_write(path, DIM, n, pts, ids, si), 0);
	free(ids);
}

static int setup(void **state)
{
	uint64_t s = 7;

	strcpy(dir, "/tmp/test_vamana_search.XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	snprintf(seg_path, sizeof(seg_path), "%s/seg.ndvs", dir);
	snprintf(other_seg_path, sizeof(other_seg_path), "%s/other.ndvs", dir);
	snprintf(idx_path, sizeof(idx_path), "%s/seg.vamana", dir);
	data = malloc(sizeof(float) * N * DIM);
	queries = malloc(sizeof(float) * NQ * DIM);
	truth = malloc(sizeof(uint32_t) * NQ * K);
	clustered(data, N, DIM, 1);
	for (int q = 0; q < NQ; q++) /* near a data point, not on it */
		for (int d = 0; d < DIM; d++)
			queries[q * DIM + d] = data[(size_t)(q * 7) * DIM + d] +
					       0.5f * rng_float(&s);
	for (int q = 0; q < NQ; q++)
		knn(queries + q * DIM, data, N, DIM, UINT32_MAX, K,
		    truth + q * K);
	write_segment(seg_path, data, N, &seg_info);
	data[0] += 1.0f; /* same count and dim, other bytes */
	write_segment(other_seg_path, data, N, &other_info);
	data[0] -= 1.0f;
	write_index(idx_path, data, N, &seg_info, ES_METRIC_L2);
	(void)state;
	return 0;
}

static int teardown(void **state)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	free(data);
	free(queries);
	free(truth);
	(void)state;
	return system(cmd) == 0 ? 0 : -1;
}

/* Runs every query; returns recall@K; checks hits are sorted. */
static double run_queries(struct es_vamana_searcher *s, uint32_t L, uint32_t W,
			  struct es_vamana_stats *sum)
{
	struct es_vamana_hit hits[K];
	struct es_vamana_stats st;
	int found = 0;

	memset(sum, 0, sizeof(*sum));
	for (int q = 0; q < NQ; q++) {
		int n =
		    es_vamana_search(s, queries + q * DIM, K, L, W, hits, &st);

		assert_int_equal(n, K);
		for (int i = 0; i < n; i++) {
			assert_int_equal(hits[i].id,
					 1000000 + 7ull * hits[i].row);
			assert_true(i == 0 ||
				    hits[i - 1].distance <= hits[i].distance);
			assert_float_equal(hits[i].distance,
					   l2(queries + q * DIM,
					      data + (size_t)hits[i].row * DIM,
					      DIM),
					   1e-3);
			for (int j = 0; j < K; j++)
				found += hits[i].row == truth[q * K + j];
		}
		sum->reads += st.reads;
		sum->hops += st.hops;
		sum->cmps += st.cmps;
	}
	return (double)found / (NQ * K);
}

static void test_recall_memory(void **state)
{
	struct es_vamana *v;
	struct es_vamana_searcher *s;
	struct es_vamana_stats sum;
	struct es_vamana_info info;
	double recall;

	assert_int_equal(
	    es_vamana_open(&v, idx_path,
			   ES_VAMANA_OPEN_MEMORY | ES_VAMANA_OPEN_VERIFY, 0,
			   &info),
	    0);
	assert_int_equal(info.num_nodes, N);
	assert_int_equal(info.dim, DIM);
	assert_int_equal(es_vamana_match(&info, &seg_info), 0);
	assert_int_equal(es_vamana_searcher_create(v, &s), 0);
	recall = run_queries(s, 40, 1, &sum);
	print_message("memory L=40 recall %.3f hops %u cmps %u\n", recall,
		      sum.hops / NQ, sum.cmps / NQ);
	assert_true(recall >= 0.95);
	assert_int_equal(sum.reads, 0);
	es_vamana_searcher_destroy(s);
	es_vamana_close(v);
	(void)state;
}

static void test_recall_disk(void **state)
{
	struct es_vamana *v;
	struct es_vamana_searcher *s;
	struct es_vamana_stats sum;
	double recall;

	assert_int_equal(
	    es_vamana_open(&v, idx_path, ES_VAMANA_OPEN_VERIFY, 0, NULL), 0);
	print_message("io_uring: %s\n",
		      es_vamana_uses_uring(v) ? "yes" : "no (pread)");
	assert_int_equal(es_vamana_searcher_create(v, &s), 0);
	recall = run_queries(s, 40, 4, &sum);
	print_message("disk L=40 W=4 recall %.3f reads %u hops %u\n", recall,
		      sum.reads / NQ, sum.hops / NQ);
	assert_true(recall >= 0.9);
	assert_int_equal(sum.reads, sum.hops); /* no cache: a read a hop */
	es_vamana_searcher_destroy(s);
	es_vamana_close(v);
	(void)state;
}

/* Searches every query with s and t; the hits must be identical. */
static void same_results(struct es_vamana_searcher *s,
			 struct es_vamana_searcher *t, uint32_t L, uint32_t W,
			 int same_reads)
{
	struct es_vamana_hit a[K], b[K];
	struct es_vamana_stats sa, sb;

	for (int q = 0; q < NQ; q++) {
		int na =
		    es_vamana_search(s, queries + q * DIM, K, L, W, a, &sa);
		int nb =
		    es_vamana_search(t, queries + q * DIM, K, L, W, b, &sb);

		assert_int_equal(na, nb);
		assert_memory_equal(a, b, sizeof(a[0]) * (size_t)na);
		assert_int_equal(sa.hops, sb.hops);
		assert_int_equal(sa.cmps, sb.cmps);
		if (same_reads)
			assert_int_equal(sa.reads, sb.reads);
	}
}

static void test_pread_uring_identical(void **state)
{
	struct es_vamana *vp, *vu;
	struct es_vamana_searcher *sp, *su;
	static const uint32_t ws[] = {1, 2, 4, 8, 64};

	assert_int_equal(
	    es_vamana_open(&vp, idx_path, ES_VAMANA_OPEN_PREAD, 0, NULL), 0);
	assert_int_equal(es_vamana_open(&vu, idx_path, 0, 0, NULL), 0);
	assert_int_equal(es_vamana_uses_uring(vp), 0);
	if (!es_vamana_uses_uring(vu))
		print_message("io_uring refused here: comparing pread with "
			      "pread\n");
	assert_int_equal(es_vamana_searcher_create(vp, &sp), 0);
	assert_int_equal(es_vamana_searcher_create(vu, &su), 0);
	for (size_t i = 0; i < sizeof(ws) / sizeof(ws[0]); i++)
		same_results(sp, su, 50, ws[i], 1);
	es_vamana_searcher_destroy(su);
	es_vamana_searcher_destroy(sp);
	es_vamana_close(vu);
	es_vamana_close(vp);
	(void)state;
}

static void test_cache_and_direct(void **state)
{
	struct es_vamana *v0, *vc, *vd;
	struct es_vamana_searcher *s0, *sc, *sd;
	struct es_vamana_stats a, b;
	int rc;

	assert_int_equal(es_vamana_open(&v0, idx_path, 0, 0, NULL), 0);
	assert_int_equal(es_vamana_open(&vc, idx_path, 0, 200, NULL), 0);
	assert_int_equal(es_vamana_searcher_create(v0, &s0), 0);
	assert_int_equal(es_vamana_searcher_create(vc, &sc), 0);
	same_results(s0, sc, 50, 8, 0);
	run_queries(s0, 50, 8, &a);
	run_queries(sc, 50, 8, &b);
	assert_int_equal(a.hops, b.hops);
	assert_true(b.reads < a.reads);
	rc = es_vamana_open(&vd, idx_path, ES_VAMANA_OPEN_DIRECT, 100, NULL);
	if (rc == -EINVAL) {
		print_message(
		    "O_DIRECT refused by this file system: skipped\n");
	} else {
		assert_int_equal(rc, 0);
		assert_int_equal(es_vamana_searcher_create(vd, &sd), 0);
		same_results(s0, sd, 50, 8, 0);
		es_vamana_searcher_destroy(sd);
		es_vamana_close(vd);
	}
	es_vamana_searcher_destroy(sc);
	es_vamana_searcher_destroy(s0);
	es_vamana_close(vc);
	es_vamana_close(v0);
	(void)state;
}

/*
 * Which rows the cache holds does not depend on how they were read:
 * io_uring and pread fills give the same reads per query, and so does
 * O_DIRECT. A cache of every node (or more) reads nothing and answers as
 * no cache does.
 */
static void test_cache_fill(void **state)
{
	struct es_vamana *v[5];
	struct es_vamana_searcher *s[5];
	struct es_vamana_stats st;
	int rc;

	assert_int_equal(es_vamana_open(&v[0], idx_path, 0, 0, NULL), 0);
	assert_int_equal(es_vamana_open(&v[1], idx_path, 0, 300, NULL), 0);
	assert_int_equal(
	    es_vamana_open(&v[2], idx_path, ES_VAMANA_OPEN_PREAD, 300, NULL),
	    0);
	assert_int_equal(es_vamana_open(&v[3], idx_path, 0, N + 100, NULL), 0);
	rc = es_vamana_open(&v[4], idx_path, ES_VAMANA_OPEN_DIRECT, 300, NULL);
	if (rc == -EINVAL)
		v[4] = NULL; /* O_DIRECT refused by this file system */
	else
		assert_int_equal(rc, 0);
	for (int i = 0; i < 5; i++)
		if (v[i])
			assert_int_equal(es_vamana_searcher_create(v[i], &s[i]),
					 0);
	same_results(s[1], s[2], 50, 8, 1);
	if (v[4])
		same_results(s[1], s[4], 50, 8, 1);
	same_results(s[0], s[3], 50, 8, 0);
	run_queries(s[3], 50, 8, &st);
	assert_int_equal(st.reads, 0);
	run_queries(s[1], 50, 8, &st);
	assert_true(st.reads > 0 && st.reads < st.hops);
	for (int i = 4; i >= 0; i--) {
		if (!v[i])
			continue;
		es_vamana_searcher_destroy(s[i]);
		es_vamana_close(v[i]);
	}
	(void)state;
}

/*
 * The beam reads beside the best candidate only once the walk has
 * stopped descending, so a wide beam reads about what W = 1 reads, and
 * finds as much.
 */
static void test_reads_per_width(void **state)
{
	static const uint32_t ws[] = {1, 2, 4, 8};
	struct es_vamana *v;
	struct es_vamana_searcher *s;
	struct es_vamana_stats st;
	uint32_t hops[4];
	double recall[4];

	assert_int_equal(es_vamana_open(&v, idx_path, 0, 0, NULL), 0);
	assert_int_equal(es_vamana_searcher_create(v, &s), 0);
	for (int i = 0; i < 4; i++) {
		recall[i] = run_queries(s, 20, ws[i], &st);
		hops[i] = st.hops;
		assert_int_equal(st.reads, st.hops);
		print_message("disk L=20 W=%u recall %.3f reads %.1f\n", ws[i],
			      recall[i], (double)st.reads / NQ);
	}
	for (int i = 1; i < 4; i++) {
		assert_true(hops[i] <= hops[0] + hops[0] / 4);
		assert_true(recall[i] >= recall[0] - 0.02);
	}
	es_vamana_searcher_destroy(s);
	es_vamana_close(v);
	(void)state;
}

struct worker {
	struct es_vamana *v;
	const struct es_vamana_hit *want; /* NQ x K, from one thread */
	int id, rc;
};

static void *worker_run(void *arg)
{
	struct worker *w = arg;
	struct es_vamana_searcher *s;
	struct es_vamana_hit hits[K];

	w->rc = es_vamana_searcher_create(w->v, &s);
	for (int round = 0; w->rc == 0 && round < 3; round++) {
		for (int q = 0; q < NQ; q++) {
			uint32_t W = 1u
				     << ((q + w->id + round) % 7); /* 1..64 */
			int n = es_vamana_search(s, queries + q * DIM, K, 64, W,
						 hits, NULL);

			if (n != K ||
			    memcmp(hits, w->want + q * K, sizeof(hits)) != 0) {
				w->rc = n < 0 ? n : -EBADMSG;
				break;
			}
		}
	}
	es_vamana_searcher_destroy(s);
	return NULL;
}

static void threads_on(unsigned flags)
{
	struct es_vamana *v;
	struct es_vamana_searcher *s;
	struct es_vamana_hit *want = malloc(sizeof(*want) * NQ * K);
	struct worker w[4];
	pthread_t t[4];

	assert_int_equal(es_vamana_open(&v, idx_path, flags, 50, NULL), 0);
	assert_int_equal(es_vamana_searcher_create(v, &s), 0);
	for (int q = 0; q < NQ; q++) /* W does not change the answer here */
		assert_int_equal(es_vamana_search(s, queries + q * DIM, K, 64,
						  64, want + q * K, NULL),
				 K);
	es_vamana_searcher_destroy(s);
	for (int i = 0; i < 4; i++) {
		w[i] = (struct worker){.v = v, .want = want, .id = i};
		assert_int_equal(pthread_create(&t[i], NULL, worker_run, &w[i]),
				 0);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(w[i].rc, 0);
	}
	es_vamana_close(v);
	free(want);
}

static void test_threads(void **state)
{
	threads_on(ES_VAMANA_OPEN_MEMORY);
	(void)state;
}

/*
 * The disk regime's answer may depend on W (rounds differ), so each
 * thread compares against its own first pass with the same W schedule
 * instead: run every query at W 1..64 once, then again on 4 threads.
 */
struct dworker {
	struct es_vamana *v;
	int rc;
	struct es_vamana_hit want[7][NQ][K];
};

static void *dworker_run(void *arg)
{
	struct dworker *w = arg;
	struct es_vamana_searcher *s;
	struct es_vamana_hit hits[K];

	w->rc = es_vamana_searcher_create(w->v, &s);
	for (int pass = 0; w->rc == 0 && pass < 2; pass++) {
		for (int q = 0; q < NQ && w->rc == 0; q++) {
			for (int b = 0; b < 7; b++) {
				int n =
				    es_vamana_search(s, queries + q * DIM, K,
						     64, 1u << b, hits, NULL);

				if (n != K) {
					w->rc = n < 0 ? n : -EBADMSG;
					break;
				}
				if (pass == 0)
					memcpy(w->want[b][q], hits,
					       sizeof(hits));
				else if (memcmp(w->want[b][q], hits,
						sizeof(hits)) != 0)
					w->rc = -EBADMSG;
			}
		}
	}
	es_vamana_searcher_destroy(s);
	return NULL;
}

static void test_threads_disk(void **state)
{
	struct es_vamana *v;
	struct dworker *w = calloc(4, sizeof(*w));
	pthread_t t[4];

	assert_int_equal(es_vamana_open(&v, idx_path, 0, 50, NULL), 0);
	for (int i = 0; i < 4; i++) {
		w[i].v = v;
		assert_int_equal(
		    pthread_create(&t[i], NULL, dworker_run, &w[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(w[i].rc, 0);
	}
	for (int i = 1; i < 4; i++)
		assert_memory_equal(w[0].want, w[i].want, sizeof(w[0].want));
	es_vamana_close(v);
	free(w);
	(void)state;
}

/* ---- corruption --------------------------------------------------------- */

static unsigned char *load(const char *path, size_t *len)
{
	struct stat st;
	unsigned char *buf;
	int fd = open(path, O_RDONLY);

	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	buf = malloc((size_t)st.st_size);
	assert_int_equal(pread(fd, buf, (size_t)st.st_size, 0), st.st_size);
	close(fd);
	*len = (size_t)st.st_size;
	return buf;
}

static void store_file(const char *path, const void *buf, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, buf, len), (ssize_t)len);
	close(fd);
}

/* Fixes the footer's checksum after a change. */
static void reseal(unsigned char *buf, size_t len)
{
	le32_store(buf + len - 16, es_crc32c(0, buf, len - 16));
}

static int open_code(const void *buf, size_t len, unsigned flags)
{
	char path[160];
	struct es_vamana *v;
	int rc;

	snprintf(path, sizeof(path), "%s/bad.vamana", dir);
	store_file(path, buf, len);
	rc = es_vamana_open(&v, path, flags, 0, NULL);
	if (rc == 0)
		es_vamana_close(v);
	return rc;
}

static const char *dir_bad(void)
{
	static char path[160];

	snprintf(path, sizeof(path), "%s/bad.vamana", dir);
	return path;
}

static struct vamana_layout layout_of(const unsigned char *buf, size_t len)
{
	struct vamana_layout l;

	assert_int_equal(vamana_header_parse(buf, len, &l), 0);
	return l;
}

static void test_corrupt_header_footer(void **state)
{
	size_t len;
	unsigned char *good = load(idx_path, &len);
	unsigned char *b = malloc(len);
	struct es_vamana_info info;
	static const struct {
		size_t off;
		unsigned char bit;
		int want;
	} flips[] = {
	    {0, 1, ES_E_VAMANA_MAGIC},	    {8, 2, ES_E_VAMANA_VERSION},
	    {12, 1, ES_E_VAMANA_HEADER},    {16, 4, ES_E_VAMANA_HEADER},
	    {20, 1, ES_E_VAMANA_HEADER},    {24, 1, ES_E_VAMANA_HEADER},
	    {35, 0x80, ES_E_VAMANA_HEADER}, {36, 1, ES_E_VAMANA_HEADER},
	    {48, 1, ES_E_VAMANA_HEADER},    {63, 0x01, ES_E_VAMANA_HEADER},
	    {72, 1, ES_E_VAMANA_HEADER},    {88, 1, ES_E_VAMANA_HEADER},
	    {112, 1, ES_E_VAMANA_HEADER},   {120, 1, ES_E_VAMANA_HEADER},
	    {132, 1, ES_E_VAMANA_HEADER},   {137, 1, ES_E_VAMANA_HEADER},
	    {150, 1, ES_E_VAMANA_HEADER},   {4000, 1, ES_E_VAMANA_HEADER},
	};

	for (size_t i = 0; i < sizeof(flips) / sizeof(flips[0]); i++) {
		memcpy(b, good, len);
		b[flips[i].off] ^= flips[i].bit;
		assert_int_equal(open_code(b, len, 0), flips[i].want);
	}
	/* A flipped seed or segment checksum: only the CRC notices. */
	memcpy(b, good, len);
	b[96] ^= 1;
	assert_int_equal(open_code(b, len, 0), 0);
	assert_int_equal(open_code(b, len, ES_VAMANA_OPEN_VERIFY),
			 ES_E_VAMANA_CHECKSUM);
	memcpy(b, good, len);
	b[len - 1] ^= 1;
	assert_int_equal(open_code(b, len, 0), ES_E_VAMANA_MAGIC);
	memcpy(b, good, len);
	b[len - 12] ^= 1;
	assert_int_equal(open_code(b, len, 0), ES_E_VAMANA_FOOTER);
	memcpy(b, good, len);
	b[len - 16] ^= 1;
	assert_int_equal(open_code(b, len, 0), 0);
	assert_int_equal(
	    open_code(b, len, ES_VAMANA_OPEN_MEMORY | ES_VAMANA_OPEN_VERIFY),
	    ES_E_VAMANA_CHECKSUM);
	/* Truncated, extended, tiny; the header is reported all the same. */
	assert_int_equal(open_code(good, len - 4096, 0), ES_E_VAMANA_SIZE);
	assert_int_equal(
	    es_vamana_open(&(struct es_vamana *){NULL}, dir_bad(), 0, 0, &info),
	    ES_E_VAMANA_SIZE);
	assert_int_equal(info.dim, DIM);
	assert_int_equal(info.num_nodes, N);
	assert_int_equal(open_code(good, len - 1, 0), ES_E_VAMANA_SIZE);
	assert_int_equal(open_code(good, 8192, 0), ES_E_VAMANA_SIZE);
	b = realloc(b, len + 4096);
	memcpy(b, good, len);
	memset(b + len, 0, 4096);
	assert_int_equal(open_code(b, len + 4096, 0), ES_E_VAMANA_SIZE);
	assert_int_equal(open_code(good, 4111, 0), ES_E_VAMANA_SHORT);
	assert_int_equal(open_code(good, 4000, 0), ES_E_VAMANA_SHORT);
	assert_int_equal(open_code(good, 0, 0), ES_E_VAMANA_SHORT);
	free(b);
	free(good);
	(void)state;
}

/* Neighbour slot j of row in buf. */
static unsigned char *slot_of(unsigned char *buf, const struct vamana_layout *l,
			      uint32_t row, uint32_t j)
{
	return buf + vamana_node_offset(l, row) + 4 * DIM + 4 + 4 * j;
}

static void test_corrupt_graph(void **state)
{
	size_t len;
	unsigned char *good = load(idx_path, &len);
	unsigned char *b = malloc(len);
	struct vamana_layout l = layout_of(good, len);
	uint32_t entry = (uint32_t)l.info.entry;
	unsigned flags[] = {0, ES_VAMANA_OPEN_MEMORY, ES_VAMANA_OPEN_PREAD};
	char path[160];

	/* A bit flip in a vector: CRC. */
	memcpy(b, good, len);
	b[vamana_node_offset(&l, 3) + 5] ^= 0x10;
	assert_int_equal(open_code(b, len, ES_VAMANA_OPEN_VERIFY),
			 ES_E_VAMANA_CHECKSUM);
	/* A neighbour out of range, checksum fixed: the graph check. */
	memcpy(b, good, len);
	le32_store(slot_of(b, &l, entry, 0), N);
	reseal(b, len);
	for (int i = 0; i < 3; i++) {
		struct es_vamana *v;
		struct es_vamana_searcher *s;
		struct es_vamana_hit hits[K];

		assert_int_equal(
		    open_code(b, len, flags[i] | ES_VAMANA_OPEN_VERIFY),
		    ES_E_VAMANA_GRAPH);
		/* Unverified, the search meets it at the entry. */
		snprintf(path, sizeof(path), "%s/bad.vamana", dir);
		assert_int_equal(es_vamana_open(&v, path, flags[i], 0, NULL),
				 0);
		assert_int_equal(es_vamana_searcher_create(v, &s), 0);
		assert_int_equal(
		    es_vamana_search(s, queries, K, 20, 4, hits, NULL),
		    ES_E_VAMANA_GRAPH);
		es_vamana_searcher_destroy(s);
		es_vamana_close(v);
	}
	/* The cache walks the graph at open and meets it too. */
	assert_int_equal(
	    es_vamana_open(&(struct es_vamana *){NULL}, path, 0, 10, NULL),
	    ES_E_VAMANA_GRAPH);
	/*
	 * Every neighbour of the entry broken: the error comes with other
	 * reads in flight, which the search waits for; the searcher stays
	 * usable.
	 */
	memcpy(b, good, len);
	for (uint32_t j = 0; j < DEG; j++) {
		uint32_t u = le32_load(slot_of(b, &l, entry, j));

		if (u != ES_VAMANA_NO_NEIGHBOUR)
			le32_store(slot_of(b, &l, u, 1), 0x7FFFFFFF);
	}
	reseal(b, len);
	assert_int_equal(open_code(b, len, ES_VAMANA_OPEN_VERIFY),
			 ES_E_VAMANA_GRAPH);
	/* The cache's second batch fails with reads in flight. */
	for (int i = 0; i < 3; i += 2)
		assert_int_equal(es_vamana_open(&(struct es_vamana *){NULL},
						path, flags[i], 10, NULL),
				 ES_E_VAMANA_GRAPH);
	for (int i = 0; i < 3; i++) {
		struct es_vamana *v;
		struct es_vamana_searcher *s;
		struct es_vamana_hit hits[K];
		struct es_vamana_stats st;

		assert_int_equal(es_vamana_open(&v, path, flags[i], 0, NULL),
				 0);
		assert_int_equal(es_vamana_searcher_create(v, &s), 0);
		for (int rep = 0; rep < 3; rep++) {
			assert_int_equal(
			    es_vamana_search(s, queries, K, 64, 64, hits, &st),
			    ES_E_VAMANA_GRAPH);
			assert_true(st.hops >= 1);
			/* From the entry, no descent: a whole beam is read. */
			assert_int_equal(
			    es_vamana_search(s, data + (size_t)entry * DIM, K,
					     64, 64, hits, &st),
			    ES_E_VAMANA_GRAPH);
			if (!(flags[i] & ES_VAMANA_OPEN_MEMORY))
				assert_true(st.reads > 2);
		}
		es_vamana_searcher_destroy(s);
		es_vamana_close(v);
	}
	/* Degree above DEG. */
	memcpy(b, good, len);
	le32_store(b + vamana_node_offset(&l, 7) + 4 * DIM, DEG + 1);
	reseal(b, len);
	assert_int_equal(open_code(b, len, ES_VAMANA_OPEN_VERIFY),
			 ES_E_VAMANA_GRAPH);
	/* Row 5 has degree DEG - 2: its last slot must stay unused. */
	memcpy(b, good, len);
	assert_int_equal(le32_load(slot_of(b, &l, 5, DEG - 1)),
			 ES_VAMANA_NO_NEIGHBOUR);
	le32_store(slot_of(b, &l, 5, DEG - 1), 0);
	reseal(b, len);
	assert_int_equal(open_code(b, len, 0), 0);
	assert_int_equal(open_code(b, len, ES_VAMANA_OPEN_VERIFY),
			 ES_E_VAMANA_GRAPH);
	free(b);
	free(good);
	(void)state;
}

static void test_segment_match(void **state)
{
	struct es_vamana_info info, bad;
	struct es_vamana *v;

	assert_int_equal(es_vamana_open(&v, idx_path, 0, 0, &info), 0);
	assert_int_equal(es_vamana_match(es_vamana_get_info(v), &seg_info), 0);
	assert_int_equal(es_vamana_match(&info, &other_info),
			 ES_E_VAMANA_SEGMENT);
	bad = info;
	bad.segment_size++;
	assert_int_equal(es_vamana_match(&bad, &seg_info), ES_E_VAMANA_SEGMENT);
	bad = info;
	bad.dim++;
	assert_int_equal(es_vamana_match(&bad, &seg_info), ES_E_VAMANA_SEGMENT);
	bad = info;
	bad.segment_count--;
	assert_int_equal(es_vamana_match(&bad, &seg_info), ES_E_VAMANA_SEGMENT);
	es_vamana_close(v);
	(void)state;
}

/* Indexes of 0, 1 and 2 rows answer with what they have. */
static void test_tiny(void **state)
{
	unsigned modes[] = {0, ES_VAMANA_OPEN_MEMORY, ES_VAMANA_OPEN_PREAD};
	char sp[160], ip[160];

	for (uint32_t n = 0; n <= 2; n++) {
		struct es_ndvs_info si;

		snprintf(sp, sizeof(sp), "%s/tiny%u.ndvs", dir, n);
		snprintf(ip, sizeof(ip), "%s/tiny%u.vamana", dir, n);
		write_segment(sp, data, n, &si);
		write_index(ip, data, n, &si, ES_METRIC_L2);
		for (int m = 0; m < 3; m++) {
			struct es_vamana *v;
			struct es_vamana_searcher *s;
			struct es_vamana_hit hits[K];
			struct es_vamana_info info;

			assert_int_equal(
			    es_vamana_open(&v, ip,
					   modes[m] | ES_VAMANA_OPEN_VERIFY, 5,
					   &info),
			    0);
			assert_int_equal(info.num_nodes, n);
			assert_int_equal(es_vamana_match(&info, &si), 0);
			assert_int_equal(es_vamana_searcher_create(v, &s), 0);
			assert_int_equal(
			    es_vamana_search(s, queries, K, K, 1, hits, NULL),
			    (int)n);
			if (n == 2)
				assert_true(hits[0].distance <=
					    hits[1].distance);
			for (uint32_t i = 0; i < n; i++)
				assert_int_equal(hits[i].id,
						 1000000 + 7ull * hits[i].row);
			es_vamana_searcher_destroy(s);
			es_vamana_close(v);
		}
	}
	(void)state;
}

/* k = L = 1000 over 1000 rows: every row, each once, sorted. */
static void test_k_max(void **state)
{
	unsigned modes[] = {0, ES_VAMANA_OPEN_MEMORY};
	struct es_vamana_hit *hits = malloc(sizeof(*hits) * 1000);
	unsigned char *seen = malloc(N);

	for (int m = 0; m < 2; m++) {
		struct es_vamana *v;
		struct es_vamana_searcher *s;

		assert_int_equal(
		    es_vamana_open(&v, idx_path, modes[m], 0, NULL), 0);
		assert_int_equal(es_vamana_searcher_create(v, &s), 0);
		assert_int_equal(
		    es_vamana_search(s, queries, 1000, 1000, 64, hits, NULL),
		    1000);
		memset(seen, 0, N);
		for (int i = 0; i < 1000; i++) {
			assert_true(hits[i].row < N);
			assert_int_equal(seen[hits[i].row], 0);
			seen[hits[i].row] = 1;
			assert_true(i == 0 ||
				    hits[i - 1].distance <= hits[i].distance);
		}
		es_vamana_searcher_destroy(s);
		es_vamana_close(v);
	}
	free(seen);
	free(hits);
	(void)state;
}

static void test_params(void **state)
{
	struct es_vamana *v;
	struct es_vamana_searcher *s;
	struct es_vamana_hit hits[K];
	float q[DIM];
	static const uint32_t bad[][3] = {
	    {0, 10, 1},	   {1001, 2000, 1}, {10, 9, 1},
	    {10, 4097, 1}, {10, 10, 0},	    {10, 10, 65},
	};

	assert_int_equal(
	    es_vamana_open(&v, idx_path,
			   ES_VAMANA_OPEN_MEMORY | ES_VAMANA_OPEN_PREAD, 0,
			   NULL),
	    ES_E_VAMANA_PARAM);
	assert_int_equal(es_vamana_open(&v, idx_path, 1u << 20, 0, NULL),
			 ES_E_VAMANA_PARAM);
	assert_int_equal(es_vamana_open(&v, "/nonexistent/x", 0, 0, NULL),
			 -ENOENT);
	assert_int_equal(es_vamana_open(&v, idx_path, 0, 0, NULL), 0);
	assert_int_equal(es_vamana_searcher_create(v, &s), 0);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(es_vamana_search(s, queries, bad[i][0],
						  bad[i][1], bad[i][2], hits,
						  NULL),
				 ES_E_VAMANA_PARAM);
	memcpy(q, queries, sizeof(q));
	q[3] = NAN;
	assert_int_equal(es_vamana_search(s, q, K, K, 1, hits, NULL),
			 ES_E_VAMANA_PARAM);
	assert_int_equal(es_vamana_search(s, queries, 1, 1, 1, hits, NULL), 1);
	assert_int_equal(es_vamana_search(s, queries, K, 4096, 64, hits, NULL),
			 K);
	es_vamana_searcher_destroy(s);
	es_vamana_close(v);
	for (int e = ES_E_VAMANA_PARAM; e <= ES_E_VAMANA_SHORT; e++)
		assert_string_not_equal(es_store_strerror(e), "unknown error");
	(void)state;
}

/* Cosine and inner product: the index answers in the metric's sense. */
static void test_metric_cosine(void **state)
{
	char sp[160], ip[160];
	struct es_ndvs_info si;
	struct es_vamana *v;
	struct es_vamana_searcher *s;
	struct es_vamana_hit hits[K];
	float *unit = malloc(sizeof(float) * N * DIM);

	memcpy(unit, data, sizeof(float) * N * DIM);
	for (int i = 0; i < N; i++)
		es_vector_normalize(unit + i * DIM, DIM);
	snprintf(sp, sizeof(sp), "%s/cos.ndvs", dir);
	snprintf(ip, sizeof(ip), "%s/cos.vamana", dir);
	write_segment(sp, data, N, &si);
	write_index(ip, unit, N, &si, ES_METRIC_COSINE);
	assert_int_equal(es_vamana_open(&v, ip, ES_VAMANA_OPEN_MEMORY, 0, NULL),
			 0);
	assert_int_equal(es_vamana_searcher_create(v, &s), 0);
	assert_int_equal(
	    es_vamana_search(s, data + 11 * DIM, K, 40, 1, hits, NULL), K);
	assert_int_equal(hits[0].row, 11);
	assert_float_equal(hits[0].distance, -1.0f, 1e-4);
	es_vamana_searcher_destroy(s);
	es_vamana_close(v);
	assert_int_equal(es_vamana_open(&v, ip, 0, 0, NULL), 0);
	assert_int_equal(es_vamana_searcher_create(v, &s), 0);
	assert_int_equal(
	    es_vamana_search(s, data + 11 * DIM, K, 40, 4, hits, NULL), K);
	assert_int_equal(hits[0].row, 11);
	es_vamana_searcher_destroy(s);
	es_vamana_close(v);
	free(unit);
	(void)state;
}

/* ---- the fetcher on its own --------------------------------------------- */

/* A file of 80 sectors, sector i filled with byte i. */
static int sector_file(char *path, size_t size)
{
	unsigned char sec[4096];
	int fd;

	snprintf(path, size, "%s/sectors", dir);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	for (int i = 0; i < 80; i++) {
		memset(sec, i, sizeof(sec));
		assert_int_equal(write(fd, sec, sizeof(sec)), sizeof(sec));
	}
	return fd;
}

static void fetch_round(struct uring_fetch *f, uint32_t first)
{
	unsigned char seen[64] = {0};
	uint32_t slot;

	for (uint32_t i = 0; i < 64; i++)
		assert_int_equal(uring_fetch_start(f, i, (first + i) * 4096ull),
				 0);
	assert_int_equal(uring_fetch_start(f, 3, 0), -EBUSY);
	for (uint32_t i = 0; i < 64; i++) {
		const unsigned char *b;

		assert_int_equal(uring_fetch_reap(f, &slot), 0);
		assert_true(slot < 64 && !seen[slot]);
		seen[slot] = 1;
		b = uring_fetch_buf(f, slot);
		assert_int_equal(b[0], first + slot);
		assert_int_equal(b[4095], first + slot);
		uring_fetch_release(f, slot);
	}
	assert_int_equal(uring_fetch_reap(f, &slot), -ENOENT);
}

static void test_uring_fetch(void **state)
{
	char path[160];
	int fd = sector_file(path, sizeof(path));
	uint32_t slot;

	for (int mode = 0; mode < 2; mode++) {
		struct uring_fetch f;

		assert_int_equal(uring_fetch_init(&f, fd, 64, 4096, mode), 0);
		if (mode && !f.uring)
			print_message("io_uring refused: fetcher uses pread\n");
		fetch_round(&f, 0);
		fetch_round(&f, 16);
		/* Past the end: that slot fails, the others still arrive. */
		assert_int_equal(uring_fetch_start(&f, 0, 79 * 4096ull), 0);
		assert_int_equal(uring_fetch_start(&f, 1, 80 * 4096ull), 0);
		for (int i = 0; i < 2; i++) {
			int rc = uring_fetch_reap(&f, &slot);

			assert_int_equal(rc, slot == 1 ? -EIO : 0);
			uring_fetch_release(&f, slot);
		}
		/* Torn down with reads in flight: waited for, then freed. */
		for (uint32_t i = 0; i < 64; i++)
			assert_int_equal(uring_fetch_start(&f, i, i * 4096ull),
					 0);
		uring_fetch_fini(&f);
	}
	close(fd);
	(void)state;
}

static int tmp_files(void)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	assert_non_null(d);
	while ((e = readdir(d)))
		n += strstr(e->d_name, ".tmp.") != NULL;
	closedir(d);
	return n;
}

/* The writer refuses what the reader would refuse, and leaves nothing. */
static void test_writer_refuses(void **state)
{
	float vec[3 * DIM] = {0};
	uint32_t adj[3 * DEG] = {1, 0, 0}, deg[3] = {1, 1, 1};
	uint64_t ids[3] = {1, 2, 3};
	uint8_t codes[3 * PQ_M] = {0};
	struct vamana_layout l;
	struct es_pq *pq;
	char path[160];
	struct stat st;

	adj[DEG] = 2;
	adj[2 * DEG] = 0;
	assert_int_equal(es_pq_train(&pq, data, 300, DIM, PQ_M, 0, 1, 1), 0);
	snprintf(path, sizeof(path), "%s/w.vamana", dir);
	for (int c = 0; c < 7; c++) {
		memset(&l, 0, sizeof(l));
		l.info.dim = DIM;
		l.info.R = DEG;
		l.info.alpha = 1.2f;
		l.info.num_nodes = 3;
		l.info.pq_m = PQ_M;
		l.info.segment_count = 3;
		assert_int_equal(
		    es_ndvs_file_size(DIM, 3, &l.info.segment_size), 0);
		switch (c) {
		case 1:
			adj[DEG] = 3; /* neighbour out of range */
			break;
		case 2:
			deg[1] = DEG + 1;
			break;
		case 3:
			l.info.entry = 3;
			break;
		case 4:
			l.info.segment_size++;
			break;
		case 5:
			l.info.alpha = 0.5f;
			break;
		case 6:
			l.info.pq_m = DIM + 1;
			break;
		}
		assert_int_equal(vamana_file_write(path, &l, vec, adj, deg, ids,
						   c == 0 ? NULL : pq, codes),
				 ES_E_VAMANA_PARAM);
		adj[DEG] = 2;
		deg[1] = 1;
	}
	assert_int_equal(stat(path, &st), -1);
	assert_int_equal(tmp_files(), 0);
	assert_int_equal(
	    vamana_file_write(path, &l, vec, adj, deg, ids, pq, codes),
	    ES_E_VAMANA_PARAM); /* l is still case 6 */
	l.info.pq_m = PQ_M;
	assert_int_equal(
	    vamana_file_write(path, &l, vec, adj, deg, ids, pq, codes), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal((uint64_t)st.st_size, l.info.file_size);
	assert_int_equal(st.st_size % 4096, 0);
	es_pq_destroy(pq);
	(void)state;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_recall_memory),
	    cmocka_unit_test(test_recall_disk),
	    cmocka_unit_test(test_pread_uring_identical),
	    cmocka_unit_test(test_cache_and_direct),
	    cmocka_unit_test(test_cache_fill),
	    cmocka_unit_test(test_reads_per_width),
	    cmocka_unit_test(test_threads),
	    cmocka_unit_test(test_threads_disk),
	    cmocka_unit_test(test_corrupt_header_footer),
	    cmocka_unit_test(test_corrupt_graph),
	    cmocka_unit_test(test_segment_match),
	    cmocka_unit_test(test_tiny),
	    cmocka_unit_test(test_k_max),
	    cmocka_unit_test(test_params),
	    cmocka_unit_test(test_metric_cosine),
	    cmocka_unit_test(test_uring_fetch),
	    cmocka_unit_test(test_writer_refuses),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
