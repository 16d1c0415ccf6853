/*
 * Vamana build: graph quality (recall of a greedy walk against brute
 * force), graph invariants, the same graph whatever the thread count,
 * tiny and empty sets, refused parameters, and whole builds to a file
 * checked byte by byte against the in-memory graph.
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
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

#include "edgesync/crc32c.h"
#include "edgesync/ndvs.h"
#include "edgesync/store_error.h"
#include "edgesync/vamana.h"
#include "edgesync/le.h"
#include "vamana_build.h"
#include "vamana_format.h"

#define DIM	 32
#define N	 2000
#define NQ	 100
#define CLUSTERS 20
#define K	 10

static char dir[64];

static int setup(void **state)
{
	strcpy(dir, "/tmp/es-test-vamana-build-XXXXXX");
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

#define PATH_SIZE 128

static char *path_of(char buf[PATH_SIZE], const char *name)
{
	snprintf(buf, PATH_SIZE, "%s/%s", dir, name);
	return buf;
}

static int exists(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0;
}

/* ---- data ------------------------------------------------------------- */

static uint64_t rng_next(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static float gauss(uint64_t *s)
{
	double u = ((rng_next(s) >> 11) + 1.0) / 9007199254740993.0;
	double v = (rng_next(s) >> 11) / 9007199254740992.0;

	return (float)(sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v));
}

/*
 * n base rows then nq query rows of dim floats around CLUSTERS centres,
 * all from one fixed stream.
 */
static float *clustered(uint32_t n, uint32_t nq, uint32_t dim)
{
	uint64_t s = 0x9E3779B97F4A7C15ull;
	float *c = malloc((size_t)CLUSTERS * dim * sizeof(float));
	float *v = malloc(((size_t)(n + nq) * dim + 1) * sizeof(float));

	assert_non_null(c);
	assert_non_null(v);
	for (uint32_t i = 0; i < CLUSTERS * dim; i++)
		c[i] = 1.0f * gauss(&s);
	for (uint32_t i = 0; i < n + nq; i++) {
		uint32_t k = (uint32_t)(rng_next(&s) % CLUSTERS);

		for (uint32_t j = 0; j < dim; j++)
			v[(size_t)i * dim + j] =
			    c[k * dim + j] + 1.0f * gauss(&s);
	}
	free(c);
	return v;
}

static void normalize_all(float *v, uint32_t n, uint32_t dim)
{
	for (uint32_t i = 0; i < n; i++)
		es_vector_normalize(v + (size_t)i * dim, dim);
}

/* The K nearest base rows of query q by brute force. */
static void brute_knn(const float *base, uint32_t n, uint32_t dim,
		      enum es_metric m, const float *q, uint32_t *out)
{
	es_distance_fn dist = es_distance_get(m);
	float best[K];
	uint32_t cnt = 0;

	for (uint32_t i = 0; i < n; i++) {
		float d = dist(q, base + (size_t)i * dim, dim);
		uint32_t pos;

		if (cnt == K && d >= best[K - 1])
			continue;
		pos = cnt < K ? cnt++ : K - 1;
		for (; pos > 0 && best[pos - 1] > d; pos--) {
			best[pos] = best[pos - 1];
			out[pos] = out[pos - 1];
		}
		best[pos] = d;
		out[pos] = i;
	}
}

static void params(struct es_vamana_build_params *p, enum es_metric m,
		   unsigned threads)
{
	es_vamana_build_defaults(p);
	p->R = 24;
	p->L = 50;
	p->metric = m;
	p->threads = threads;
	p->seed = 7;
}

/* ---- checks ----------------------------------------------------------- */

static void check_graph(const struct vamana_graph *g)
{
	uint8_t *seen = calloc(g->n + 1, 1);

	assert_non_null(seen);
	if (g->n)
		assert_true(g->entry < g->n);
	for (uint32_t i = 0; i < g->n; i++) {
		const uint32_t *nb = g->adj + (size_t)i * g->R;

		assert_true(g->degree[i] <= g->R);
		for (uint32_t j = 0; j < g->degree[i]; j++) {
			assert_true(nb[j] < g->n);
			assert_int_not_equal(nb[j], i);
			assert_int_equal(seen[nb[j]], 0); /* distinct */
			seen[nb[j]] = 1;
		}
		for (uint32_t j = 0; j < g->degree[i]; j++)
			seen[nb[j]] = 0;
	}
	free(seen);
}

static double recall(const struct vamana_graph *g, const float *queries,
		     enum es_metric m, uint32_t L)
{
	struct vamana_walker *w;
	uint32_t rows[K], truth[K], hits = 0;

	assert_int_equal(vamana_walker_create(&w, g, m, L), 0);
	for (uint32_t q = 0; q < NQ; q++) {
		const float *qv = queries + (size_t)q * g->dim;
		uint32_t got = vamana_walker_search(w, qv, K, rows, NULL);

		assert_int_equal(got, K);
		brute_knn(g->vectors, g->n, g->dim, m, qv, truth);
		for (uint32_t i = 0; i < K; i++)
			for (uint32_t j = 0; j < K; j++)
				if (rows[i] == truth[j]) {
					hits++;
					break;
				}
	}
	vamana_walker_destroy(w);
	return (double)hits / (NQ * K);
}

static void same_graph(const struct vamana_graph *a,
		       const struct vamana_graph *b)
{
	assert_int_equal(a->n, b->n);
	assert_int_equal(a->entry, b->entry);
	assert_memory_equal(a->degree, b->degree, a->n * sizeof(uint32_t));
	for (uint32_t i = 0; i < a->n; i++)
		assert_memory_equal(a->adj + (size_t)i * a->R,
				    b->adj + (size_t)i * b->R,
				    a->degree[i] * sizeof(uint32_t));
}

/* ---- graph tests ------------------------------------------------------- */

static void recall_metric(enum es_metric m)
{
	struct es_vamana_build_params p;
	struct vamana_graph g;
	float *v = clustered(N, NQ, DIM);
	double r50, r10;

	if (m == ES_METRIC_COSINE)
		normalize_all(v, N + NQ, DIM);
	params(&p, m, 2);
	assert_int_equal(vamana_graph_build(&g, v, N, DIM, &p), 0);
	check_graph(&g);
	r50 = recall(&g, v + (size_t)N * DIM, m, 50);
	r10 = recall(&g, v + (size_t)N * DIM, m, 10);
	print_message("metric %s: recall@10 %.3f at L 50, %.3f at L 10\n",
		      es_metric_name(m), r50, r10);
	assert_true(r50 >= 0.95);
	assert_true(r10 >= 0.90);
	vamana_graph_free(&g);
	free(v);
}

static void test_recall_l2(void **state)
{
	recall_metric(ES_METRIC_L2);
}

static void test_recall_cosine(void **state)
{
	recall_metric(ES_METRIC_COSINE);
}

static void test_recall_ip(void **state)
{
	recall_metric(ES_METRIC_IP);
}

static void test_threads_same_graph(void **state)
{
	struct es_vamana_build_params p;
	struct vamana_graph g1, g2, g3;
	float *v = clustered(N, 0, DIM);

	params(&p, ES_METRIC_L2, 1);
	assert_int_equal(vamana_graph_build(&g1, v, N, DIM, &p), 0);
	p.threads = 2;
	assert_int_equal(vamana_graph_build(&g2, v, N, DIM, &p), 0);
	p.threads = 3; /* more threads than cores still gives the same */
	assert_int_equal(vamana_graph_build(&g3, v, N, DIM, &p), 0);
	same_graph(&g1, &g2);
	same_graph(&g1, &g3);
	vamana_graph_free(&g3);
	p.seed = 8; /* another seed, another graph */
	assert_int_equal(vamana_graph_build(&g3, v, N, DIM, &p), 0);
	check_graph(&g3);
	assert_memory_not_equal(g1.degree, g3.degree, N * sizeof(uint32_t));
	vamana_graph_free(&g1);
	vamana_graph_free(&g2);
	vamana_graph_free(&g3);
	free(v);
}

static void test_tiny_sets(void **state)
{
	struct es_vamana_build_params p;
	struct vamana_graph g;
	float *v = clustered(7, 0, 4);
	uint32_t rows[8];

	params(&p, ES_METRIC_L2, 2);
	p.R = 16; /* R > N throughout */
	for (uint32_t n = 1; n <= 7; n++) {
		struct vamana_walker *w;

		assert_int_equal(vamana_graph_build(&g, v, n, 4, &p), 0);
		check_graph(&g);
		if (n == 1)
			assert_int_equal(g.degree[0], 0);
		if (n == 2)
			assert_true(g.degree[0] == 1 && g.degree[1] == 1);
		/* every row is found from the entry */
		assert_int_equal(vamana_walker_create(&w, &g, p.metric, 8), 0);
		for (uint32_t i = 0; i < n; i++) {
			uint32_t got =
			    vamana_walker_search(w, v + i * 4, 8, rows, NULL);

			assert_int_equal(got, n);
			assert_int_equal(rows[0], i);
		}
		vamana_walker_destroy(w);
		vamana_graph_free(&g);
	}
	assert_int_equal(vamana_graph_build(&g, NULL, 0, 4, &p), 0);
	assert_int_equal(g.n, 0);
	assert_int_equal(g.entry, 0);
	vamana_graph_free(&g);
	free(v);
}

/* Many equal rows: each distinct point is still reached. */
static void test_duplicates(void **state)
{
	struct es_vamana_build_params p;
	struct vamana_graph g;
	struct vamana_walker *w;
	float *v = calloc(300 * 8, sizeof(float));
	uint32_t rows[K];

	assert_non_null(v);
	for (uint32_t i = 0; i < 300; i++)
		v[i * 8] = (float)(i / 100); /* three points, 100 copies */
	params(&p, ES_METRIC_L2, 2);
	p.R = 8;
	assert_int_equal(vamana_graph_build(&g, v, 300, 8, &p), 0);
	check_graph(&g);
	assert_int_equal(vamana_walker_create(&w, &g, p.metric, 20), 0);
	for (uint32_t k = 0; k < 3; k++) {
		assert_int_equal(
		    vamana_walker_search(w, v + k * 800, K, rows, NULL), K);
		assert_int_equal(rows[0] / 100, k);
	}
	vamana_walker_destroy(w);
	vamana_graph_free(&g);
	free(v);
}

static void test_bad_values(void **state)
{
	struct es_vamana_build_params p;
	struct vamana_graph g;
	float *v = clustered(50, 0, 4);

	params(&p, ES_METRIC_L2, 1);
	v[77] = NAN;
	assert_int_equal(vamana_graph_build(&g, v, 50, 4, &p),
			 ES_E_VECS_NONFINITE);
	v[77] = INFINITY;
	assert_int_equal(vamana_graph_build(&g, v, 50, 4, &p),
			 ES_E_VECS_NONFINITE);
	free(v);
}

/* ---- progress --------------------------------------------------------- */

struct progress_log {
	pthread_t caller;
	uint64_t calls, last_done, total;
	int wrong_thread, backwards;
};

static void on_progress(void *arg, uint64_t done, uint64_t total)
{
	struct progress_log *log = arg;

	if (!pthread_equal(pthread_self(), log->caller))
		log->wrong_thread = 1;
	if (done < log->last_done)
		log->backwards = 1;
	log->calls++;
	log->last_done = done;
	log->total = total;
}

static void test_progress(void **state)
{
	struct es_vamana_build_params p;
	struct vamana_graph g;
	struct progress_log log = {.caller = pthread_self()};
	float *v = clustered(N, 0, DIM);

	params(&p, ES_METRIC_L2, 2);
	p.progress = on_progress;
	p.progress_arg = &log;
	assert_int_equal(vamana_graph_build(&g, v, N, DIM, &p), 0);
	assert_true(log.calls >= 1);
	assert_int_equal(log.total, 2 * N);
	assert_int_equal(log.last_done, 2 * N);
	assert_false(log.wrong_thread);
	assert_false(log.backwards);
	vamana_graph_free(&g);
	free(v);
}

/* ---- whole builds ------------------------------------------------------ */

static unsigned char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	unsigned char *buf;
	long size;

	assert_non_null(f);
	assert_int_equal(fseek(f, 0, SEEK_END), 0);
	size = ftell(f);
	assert_true(size > 0);
	rewind(f);
	buf = malloc((size_t)size);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)size, f), (size_t)size);
	fclose(f);
	*len = (size_t)size;
	return buf;
}

static uint64_t *make_ids(uint32_t n)
{
	uint64_t *ids = malloc((n + 1) * sizeof(uint64_t));

	assert_non_null(ids);
	for (uint32_t i = 0; i < n; i++)
		ids[i] = 0xABCDEF0000ull + 3ull * i;
	return ids;
}

/*
 * The file at path holds the graph vamana_graph_build makes from v (rows
 * normalized for cosine) with p, the rows, the ids, and a valid checksum.
 */
static void check_file(const char *path, const char *seg_path, const float *v,
		       uint32_t n, uint32_t dim, const uint64_t *ids,
		       const struct es_vamana_build_params *p)
{
	struct es_ndvs_info si;
	struct es_ndvs *seg;
	struct vamana_layout l;
	struct vamana_graph g;
	uint32_t crc;
	size_t len;
	unsigned char *f = slurp(path, &len);

	assert_int_equal(es_ndvs_open(&seg, seg_path, 0, &si), 0);
	es_ndvs_close(seg);
	assert_int_equal(vamana_header_parse(f, len, &l), 0);
	assert_int_equal(vamana_footer_parse(f + len - 16, &crc), 0);
	assert_int_equal(es_crc32c(0, f, len - 16), crc);
	assert_int_equal(l.info.num_nodes, n);
	assert_int_equal(l.info.dim, dim);
	assert_int_equal(l.info.R, p->R);
	assert_int_equal(l.info.build_L, p->L);
	assert_int_equal(l.info.metric, p->metric);
	assert_int_equal(l.info.seed, p->seed);
	assert_int_equal(l.info.segment_id, p->segment_id);
	assert_int_equal(l.info.segment_checksum, si.checksum);
	assert_int_equal(l.info.segment_size, si.file_size);
	assert_int_equal(l.info.pq_m,
			 p->pq_m ? p->pq_m : (dim < 64 ? dim : 64));
	assert_int_equal(vamana_graph_build(&g, v, n, dim, p), 0);
	assert_int_equal(l.info.entry, g.entry);
	for (uint32_t i = 0; i < n; i++) {
		const unsigned char *rec = f + vamana_node_offset(&l, i);
		uint32_t deg = le32_load(rec + 4 * dim);

		assert_memory_equal(rec, v + (size_t)i * dim, 4 * dim);
		assert_int_equal(deg, g.degree[i]);
		for (uint32_t j = 0; j < p->R; j++)
			assert_int_equal(le32_load(rec + 4 * dim + 4 + 4 * j),
					 j < deg ? g.adj[(size_t)i * p->R + j]
						 : ES_VAMANA_NO_NEIGHBOUR);
		assert_int_equal(le64_load(f + l.ids_offset + 8 * i), ids[i]);
	}
	vamana_graph_free(&g);
	free(f);
}

static void build_file(enum es_metric m, uint32_t n)
{
	struct es_vamana_build_params p;
	char sb[PATH_SIZE], ib[PATH_SIZE];
	char *seg = path_of(sb, "seg.ndvs"), *idx = path_of(ib, "seg.vamana");
	float *v = clustered(n, 0, DIM);
	uint64_t *ids = make_ids(n);

	assert_int_equal(es_ndvs_write(seg, DIM, n, v, ids, NULL), 0);
	params(&p, m, 2);
	p.pq_m = 8;
	p.segment_id = 42;
	assert_int_equal(es_vamana_build(seg, idx, &p), 0);
	if (m == ES_METRIC_COSINE)
		normalize_all(v, n, DIM);
	p.threads = 1; /* the file's graph is the one-thread graph */
	check_file(idx, seg, v, n, DIM, ids, &p);
	unlink(idx);
	unlink(seg);
	free(ids);
	free(v);
}

static void test_build_file(void **state)
{
	build_file(ES_METRIC_L2, 500);
	build_file(ES_METRIC_COSINE, 300);
	build_file(ES_METRIC_IP, 3);
	build_file(ES_METRIC_L2, 1);
}

static void stop_at_first(void *arg, uint64_t done, uint64_t total)
{
	(void)done;
	(void)total;
	atomic_store((atomic_int *)arg, 1);
}

/* A build told to stop (an agent stopping) gives up within a batch:
 * -ECANCELED, and no index file, nor a temporary one, is left. */
static void test_build_stopped(void **state)
{
	struct es_vamana_build_params p;
	char sb[PATH_SIZE], ib[PATH_SIZE], cmd[2 * PATH_SIZE];
	char *seg = path_of(sb, "stop.ndvs"), *idx = path_of(ib, "stop.vamana");
	float *v = clustered(2000, 0, DIM);
	uint64_t *ids = make_ids(2000);
	atomic_int stop = 0;

	assert_int_equal(es_ndvs_write(seg, DIM, 2000, v, ids, NULL), 0);
	params(&p, ES_METRIC_L2, 2);
	p.stop = &stop;
	p.progress = stop_at_first;
	p.progress_arg = &stop;
	assert_int_equal(es_vamana_build(seg, idx, &p), -ECANCELED);
	assert_int_equal(access(idx, F_OK), -1);
	snprintf(cmd, sizeof(cmd),
		 "ls %s* 2>/dev/null | grep -v 'stop.ndvs$' | grep -q .", idx);
	assert_int_not_equal(system(cmd), 0);
	/* not stopped: the same build completes */
	stop = 0;
	p.progress = NULL;
	assert_int_equal(es_vamana_build(seg, idx, &p), 0);
	assert_int_equal(access(idx, F_OK), 0);
	unlink(idx);
	unlink(seg);
	free(ids);
	free(v);
}

static void test_build_empty(void **state)
{
	struct es_vamana_build_params p;
	char sb[PATH_SIZE], ib[PATH_SIZE];
	char *seg = path_of(sb, "empty.ndvs");
	char *idx = path_of(ib, "empty.vamana");
	struct vamana_layout l;
	size_t len;
	unsigned char *f;

	assert_int_equal(es_ndvs_write(seg, DIM, 0, NULL, NULL, NULL), 0);
	params(&p, ES_METRIC_L2, 0);
	assert_int_equal(es_vamana_build(seg, idx, &p), 0);
	f = slurp(idx, &len);
	assert_int_equal(vamana_header_parse(f, len, &l), 0);
	assert_int_equal(l.info.num_nodes, 0);
	assert_int_equal(l.info.entry, 0);
	assert_int_equal(l.info.pq_m, 32);
	free(f);
	unlink(idx);
	unlink(seg);
}

static void test_build_refused(void **state)
{
	struct es_vamana_build_params p, bad;
	char sb[PATH_SIZE], ib[PATH_SIZE], mb[PATH_SIZE];
	char *seg = path_of(sb, "r.ndvs"), *idx = path_of(ib, "r.vamana");
	float *v = clustered(40, 0, 8);
	uint64_t *ids = make_ids(40);
	struct vamana_graph g;

	assert_int_equal(es_ndvs_write(seg, 8, 40, v, ids, NULL), 0);
	params(&p, ES_METRIC_L2, 1);
	for (int i = 0; i < 10; i++) {
		bad = p;
		switch (i) {
		case 0:
			bad.R = 0;
			break;
		case 1:
			bad.L = 0;
			break;
		case 2:
			bad.alpha = 0.99f;
			break;
		case 3:
			bad.alpha = NAN;
			break;
		case 4:
			bad.metric = (enum es_metric)3;
			break;
		case 5:
			bad.R = 4097;
			break;
		case 6:
			bad.L = ES_VAMANA_MAX_L + 1;
			break;
		case 7:
			bad.pq_m = 9;
			break; /* more than dim */
		case 8:
			bad.alpha = INFINITY;
			break;
		case 9:
			bad.metric = (enum es_metric) - 1;
			break;
		}
		assert_int_equal(es_vamana_build(seg, idx, &bad),
				 ES_E_VAMANA_PARAM);
		assert_false(exists(idx));
		if (i != 7)
			assert_int_equal(vamana_graph_build(&g, v, 40, 8, &bad),
					 ES_E_VAMANA_PARAM);
	}
	assert_int_equal(es_vamana_build(seg, idx, NULL), ES_E_VAMANA_PARAM);
	assert_int_equal(es_vamana_build(NULL, idx, &p), ES_E_VAMANA_PARAM);
	assert_int_equal(es_vamana_build(seg, NULL, &p), ES_E_VAMANA_PARAM);
	assert_int_equal(vamana_graph_build(&g, v, 40, 0, &p),
			 ES_E_VAMANA_PARAM);
	assert_int_equal(es_vamana_build(path_of(mb, "missing.ndvs"), idx, &p),
			 -ENOENT);
	assert_false(exists(idx));
	/* a corrupt segment is refused before anything is written */
	{
		FILE *f = fopen(seg, "r+b");

		assert_non_null(f);
		assert_int_equal(fseek(f, 100, SEEK_SET), 0);
		assert_int_equal(fputc(0x5A, f), 0x5A);
		fclose(f);
	}
	assert_int_equal(es_vamana_build(seg, idx, &p), ES_E_NDVS_CHECKSUM);
	assert_false(exists(idx));
	unlink(seg);
	free(ids);
	free(v);
}

static void test_defaults(void **state)
{
	struct es_vamana_build_params p;

	memset(&p, 0xFF, sizeof(p));
	es_vamana_build_defaults(&p);
	assert_int_equal(p.R, 64);
	assert_int_equal(p.L, 100);
	assert_true(p.alpha == 1.2f);
	assert_int_equal(p.threads, 0);
	assert_int_equal(p.metric, ES_METRIC_L2);
	assert_int_equal(p.seed, 1);
	assert_int_equal(p.pq_m, 0);
	assert_int_equal(p.segment_id, 0);
	assert_null(p.progress);
	assert_null(p.progress_arg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_defaults),
	    cmocka_unit_test(test_recall_l2),
	    cmocka_unit_test(test_recall_cosine),
	    cmocka_unit_test(test_recall_ip),
	    cmocka_unit_test(test_threads_same_graph),
	    cmocka_unit_test(test_tiny_sets),
	    cmocka_unit_test(test_duplicates),
	    cmocka_unit_test(test_bad_values),
	    cmocka_unit_test(test_progress),
	    cmocka_unit_test(test_build_file),
	    cmocka_unit_test(test_build_empty),
	    cmocka_unit_test(test_build_stopped),
	    cmocka_unit_test(test_build_refused),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
