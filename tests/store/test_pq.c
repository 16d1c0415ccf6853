/*
 * Product quantization: reconstruction error and distance estimates on
 * clustered data (L2 and IP), neighbour ranking, determinism across
 * thread counts, the packed codebook's layout and validation, odd shapes
 * (m = 1, m = dim, dim % m != 0, fewer than 256 vectors), argument checks,
 * and every kernel set agreeing with a scalar reference.
 */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "edgesync/pq.h"
#include "pq_impl.h"

#define K ES_PQ_CENTROIDS

static uint64_t rng;

static uint64_t next_u64(void)
{
	uint64_t z = (rng += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* Uniform in [0, 1). */
static double uniform(void)
{
	return (double)(next_u64() >> 11) * 0x1p-53;
}

static float gauss(void)
{
	double u = uniform() + 0x1p-60, v = uniform();

	return (float)(sqrt(-2 * log(u)) * cos(2 * M_PI * v));
}

/*
 * n points around `clusters` centres drawn uniformly in [-spread,
 * spread]^dim, with Gaussian noise of deviation sigma; the first n_out
 * rows are those points, written from seed.
 */
static float *clustered(uint64_t n, uint32_t dim, unsigned clusters,
			float spread, float sigma, uint64_t seed)
{
	float *centres = malloc(sizeof(float) * clusters * dim);
	float *data = malloc(sizeof(float) * n * dim);

	assert_non_null(centres);
	assert_non_null(data);
	rng = seed;
	for (size_t i = 0; i < (size_t)clusters * dim; i++)
		centres[i] = (float)((2 * uniform() - 1) * spread);
	for (uint64_t i = 0; i < n; i++) {
		unsigned c = (unsigned)(next_u64() % clusters);

		for (uint32_t t = 0; t < dim; t++)
			data[i * dim + t] =
			    centres[c * dim + t] + sigma * gauss();
	}
	free(centres);
	return data;
}

static double l2(const float *a, const float *b, uint32_t dim)
{
	double d = 0;

	for (uint32_t t = 0; t < dim; t++)
		d += ((double)a[t] - b[t]) * ((double)a[t] - b[t]);
	return d;
}

static double dot(const float *a, const float *b, uint32_t dim)
{
	double d = 0;

	for (uint32_t t = 0; t < dim; t++)
		d += (double)a[t] * b[t];
	return d;
}

/* The packed codebook, read back as floats (the host is little-endian). */
static float *packed(const struct es_pq *pq)
{
	size_t size = es_pq_packed_size(pq);
	float *book = malloc(size);

	assert_int_equal(size, 4 * K * es_pq_dim(pq));
	assert_non_null(book);
	es_pq_pack(pq, book);
	return book;
}

/* Decodes code with book, following vamana_format.md's layout. */
static void decode(const float *book, uint32_t dim, uint32_t m,
		   const uint8_t *code, float *out)
{
	uint32_t off = 0;

	for (uint32_t s = 0; s < m; s++) {
		uint32_t len = dim / m + (s < dim % m);

		memcpy(out + off, book + (size_t)off * K + code[s] * len,
		       len * sizeof(float));
		off += len;
	}
	assert_int_equal(off, dim);
}

static struct es_pq *train(const float *data, uint64_t n, uint32_t dim,
			   uint32_t m, uint64_t sample, unsigned threads)
{
	struct es_pq *pq = NULL;

	assert_int_equal(
	    es_pq_train(&pq, data, n, dim, m, sample, 1234, threads), 0);
	assert_non_null(pq);
	assert_int_equal(es_pq_dim(pq), dim);
	assert_int_equal(es_pq_m(pq), m);
	return pq;
}

static uint8_t *encode(const struct es_pq *pq, const float *data, uint64_t n,
		       unsigned threads)
{
	uint8_t *codes = malloc(n * es_pq_m(pq) + 1);

	assert_non_null(codes);
	assert_int_equal(es_pq_encode(pq, data, n, codes, threads), 0);
	return codes;
}

/*
 * For every row: the L2 table of the row itself gives its distance to its
 * decoding, and that distance is small next to the data's spread.
 */
static void check_reconstruction(const float *data, uint64_t n, uint32_t dim,
				 uint32_t m, double max_ratio)
{
	struct es_pq *pq = train(data, n, dim, m, 0, 2);
	uint8_t *codes = encode(pq, data, n, 2);
	float *book = packed(pq), *rec = malloc(sizeof(float) * dim);
	float *table = malloc(sizeof(float) * m * K), *mean;
	double err = 0, var = 0;

	mean = calloc(dim, sizeof(float));
	for (uint64_t i = 0; i < n; i++)
		for (uint32_t t = 0; t < dim; t++)
			mean[t] += data[i * dim + t] / (float)n;
	for (uint64_t i = 0; i < n; i++) {
		const float *x = data + i * dim;
		double e;

		decode(book, dim, m, codes + i * m, rec);
		e = l2(x, rec, dim);
		es_pq_table(pq, ES_METRIC_L2, x, table);
		assert_float_equal(es_pq_distance(table, codes + i * m, m), e,
				   1e-3 * dot(x, x, dim) + 1e-6);
		err += e;
		var += l2(x, mean, dim);
	}
	print_message("dim %u m %u: reconstruction error / variance %.5f\n",
		      dim, m, err / var);
	assert_true(err / var <= max_ratio);
	free(mean);
	free(table);
	free(rec);
	free(book);
	free(codes);
	es_pq_destroy(pq);
}

static void test_reconstruction(void **state)
{
	float *data = clustered(3000, 32, 16, 10, 0.5f, 1);

	check_reconstruction(data, 3000, 32, 8, 0.01);
	free(data);
}

/*
 * Queries from the same clusters: the PQ estimate is exactly the distance
 * to the decoded vector (up to float rounding), and close to the true one.
 */
static void check_estimates(enum es_metric metric)
{
	const uint32_t n = 2000, nq = 20, dim = 32, m = 8;
	float *data = clustered(n + nq, dim, 16, 10, 0.5f, 2);
	struct es_pq *pq = train(data, n, dim, m, 0, 1);
	uint8_t *codes = encode(pq, data, n, 1);
	float *book = packed(pq), *rec = malloc(sizeof(float) * dim);
	float *table = malloc(sizeof(float) * m * K);
	double abs_err = 0, scale = 0;

	for (uint32_t qi = 0; qi < nq; qi++) {
		const float *q = data + (size_t)(n + qi) * dim;

		es_pq_table(pq, metric, q, table);
		for (uint32_t i = 0; i < n; i++) {
			const float *x = data + (size_t)i * dim;
			double est = es_pq_distance(table, codes + i * m, m);
			double exact, to_rec;

			decode(book, dim, m, codes + i * m, rec);
			if (metric == ES_METRIC_L2) {
				exact = l2(q, x, dim);
				to_rec = l2(q, rec, dim);
			} else {
				exact = -dot(q, x, dim);
				to_rec = -dot(q, rec, dim);
			}
			assert_true(fabs(est - to_rec) <=
				    1e-4 * dot(q, q, dim) + 1e-3);
			abs_err += fabs(est - exact);
			/* The natural scale: distance for L2, |q||x| for IP. */
			scale += metric == ES_METRIC_L2
				     ? exact
				     : sqrt(dot(q, q, dim) * dot(x, x, dim));
		}
	}
	print_message("%s: mean |estimate - exact| / mean scale = %.4f\n",
		      es_metric_name(metric), abs_err / scale);
	assert_true(abs_err / scale < 0.02);
	free(table);
	free(rec);
	free(book);
	free(codes);
	es_pq_destroy(pq);
	free(data);
}

static void test_estimate_l2(void **state)
{
	check_estimates(ES_METRIC_L2);
}

static void test_estimate_ip(void **state)
{
	check_estimates(ES_METRIC_IP);
}

/*
 * For each query, the true nearest neighbour's rank under the PQ estimate:
 * small on clustered data.
 */
static void test_ranking(void **state)
{
	const uint32_t n = 2000, nq = 50, dim = 32, m = 16;
	float *data = clustered(n + nq, dim, 20, 10, 1.0f, 3);
	struct es_pq *pq = train(data, n, dim, m, 0, 2);
	uint8_t *codes = encode(pq, data, n, 2);
	float *table = malloc(sizeof(float) * m * K);
	unsigned top1 = 0, top10 = 0;

	for (uint32_t qi = 0; qi < nq; qi++) {
		const float *q = data + (size_t)(n + qi) * dim;
		uint32_t nn = 0, rank = 0;
		float nn_est;

		for (uint32_t i = 1; i < n; i++)
			if (l2(q, data + (size_t)i * dim, dim) <
			    l2(q, data + (size_t)nn * dim, dim))
				nn = i;
		es_pq_table(pq, ES_METRIC_L2, q, table);
		nn_est = es_pq_distance(table, codes + (size_t)nn * m, m);
		for (uint32_t i = 0; i < n; i++)
			rank += es_pq_distance(table, codes + (size_t)i * m,
					       m) < nn_est;
		top1 += rank == 0;
		top10 += rank < 10;
	}
	print_message("true neighbour PQ rank: 0 for %u/%u, <10 for %u/%u\n",
		      top1, nq, top10, nq);
	assert_true(top1 >= nq / 2);
	assert_true(top10 >= nq * 9 / 10);
	free(table);
	free(codes);
	es_pq_destroy(pq);
	free(data);
}

/* Same seed: the same bytes whatever the thread count; seeds matter. */
static void test_deterministic(void **state)
{
	const uint32_t n = 3000, dim = 24, m = 6;
	float *data = clustered(n, dim, 10, 5, 1.0f, 4);
	struct es_pq *pq[4];
	float *book[4];
	uint8_t *codes[4];
	size_t size;

	for (unsigned i = 0; i < 3; i++) {
		assert_int_equal(
		    es_pq_train(&pq[i], data, n, dim, m, 2500, 99, i + 1), 0);
		book[i] = packed(pq[i]);
		codes[i] = encode(pq[i], data, n, 3 - i);
	}
	assert_int_equal(es_pq_train(&pq[3], data, n, dim, m, 2500, 100, 2), 0);
	book[3] = packed(pq[3]);
	size = es_pq_packed_size(pq[0]);
	for (unsigned i = 1; i < 3; i++) {
		assert_memory_equal(book[0], book[i], size);
		assert_memory_equal(codes[0], codes[i], (size_t)n * m);
	}
	assert_memory_not_equal(book[0], book[3], size);
	for (unsigned i = 0; i < 4; i++) {
		free(book[i]);
		es_pq_destroy(pq[i]);
	}
	for (unsigned i = 0; i < 3; i++)
		free(codes[i]);
	free(data);
}

/* pack -> unpack -> pack gives the same bytes and the same behaviour. */
static void test_pack_roundtrip(void **state)
{
	const uint32_t n = 1000, dim = 20, m = 6;
	float *data = clustered(n, dim, 8, 5, 1.0f, 5);
	struct es_pq *pq = train(data, n, dim, m, 0, 2), *back = NULL;
	float *book = packed(pq), *book2, t1[6 * K], t2[6 * K];
	uint8_t *c1 = encode(pq, data, n, 1), *c2;
	unsigned char *raw = (unsigned char *)book;

	/* Float 0 of subspace 0, centroid 0, little-endian. */
	assert_memory_equal(raw, &book[0], 4);
	assert_int_equal(
	    es_pq_unpack(&back, book, es_pq_packed_size(pq), dim, m), 0);
	assert_int_equal(es_pq_dim(back), dim);
	assert_int_equal(es_pq_m(back), m);
	book2 = packed(back);
	assert_memory_equal(book, book2, es_pq_packed_size(pq));
	c2 = encode(back, data, n, 2);
	assert_memory_equal(c1, c2, (size_t)n * m);
	for (int metric = ES_METRIC_L2; metric <= ES_METRIC_COSINE; metric++) {
		es_pq_table(pq, metric, data, t1);
		es_pq_table(back, metric, data, t2);
		assert_memory_equal(t1, t2, sizeof(t1));
	}
	free(c2);
	free(c1);
	free(book2);
	free(book);
	es_pq_destroy(back);
	es_pq_destroy(pq);
	free(data);
}

static void test_unpack_rejects(void **state)
{
	const uint32_t dim = 8, m = 4;
	size_t size = 4 * K * dim;
	float *book = calloc(1, size + 8);
	struct es_pq *pq = (struct es_pq *)&pq; /* not NULL until reset */
	const size_t bad_len[] = {0, 1, size - 4, size - 1, size + 1, size + 4};
	const float bad_val[] = {NAN, INFINITY, -INFINITY};

	for (size_t i = 0; i < sizeof(bad_len) / sizeof(*bad_len); i++) {
		assert_int_equal(es_pq_unpack(&pq, book, bad_len[i], dim, m),
				 -EINVAL);
		assert_null(pq);
	}
	/* The same length with another dim is wrong too. */
	assert_int_equal(es_pq_unpack(&pq, book, size, dim + 1, m), -EINVAL);
	assert_int_equal(es_pq_unpack(&pq, book, size, dim, 0), -EINVAL);
	assert_int_equal(es_pq_unpack(&pq, book, size, dim, dim + 1), -EINVAL);
	assert_int_equal(es_pq_unpack(&pq, book, 0, 0, 0), -EINVAL);
	assert_int_equal(es_pq_unpack(&pq, NULL, size, dim, m), -EINVAL);
	for (size_t i = 0; i < sizeof(bad_val) / sizeof(*bad_val); i++) {
		for (size_t at = 0; at < (size_t)K * dim; at += 677) {
			book[at] = bad_val[i];
			assert_int_equal(es_pq_unpack(&pq, book, size, dim, m),
					 -EINVAL);
			assert_null(pq);
			book[at] = 0;
		}
		book[K * dim - 1] = bad_val[i];
		assert_int_equal(es_pq_unpack(&pq, book, size, dim, m),
				 -EINVAL);
		book[K * dim - 1] = 0;
	}
	/* All zero is a valid, if useless, codebook. */
	assert_int_equal(es_pq_unpack(&pq, book, size, dim, m), 0);
	assert_non_null(pq);
	es_pq_destroy(pq);
	free(book);
}

/* m = 1, m = dim and uneven splits: layout and table agree everywhere. */
static void test_shapes(void **state)
{
	static const uint32_t shapes[][2] = {
	    {10, 1}, {10, 10}, {10, 4}, {13, 5}, {7, 3}, {3, 2}, {1, 1},
	};

	for (size_t i = 0; i < sizeof(shapes) / sizeof(*shapes); i++) {
		uint32_t dim = shapes[i][0], m = shapes[i][1];
		float *data = clustered(1500, dim, 12, 8, 0.5f, 6 + i);
		/* One float per subspace: 256 levels for 12 clusters. */
		double ratio = m == dim ? 0.002 : 0.05;

		check_reconstruction(data, 1500, dim, m, ratio);
		free(data);
	}
}

/*
 * Fewer vectors than centroids: still 256 centroids, and every training
 * vector decodes to itself. A sample smaller than 256 works too.
 */
static void test_small_n(void **state)
{
	static const uint64_t sizes[] = {1, 2, 10, 255, 256, 300};

	for (size_t i = 0; i < sizeof(sizes) / sizeof(*sizes); i++) {
		uint64_t n = sizes[i];
		uint32_t dim = 12, m = 3;
		float *data = clustered(n, dim, 4, 5, 1.0f, 20 + i);
		struct es_pq *pq = train(data, n, dim, m, 0, 2);
		uint8_t *codes = encode(pq, data, n, 2);
		float *book = packed(pq), rec[12];

		for (uint64_t r = 0; r < n && n < K; r++) {
			decode(book, dim, m, codes + r * m, rec);
			assert_memory_equal(rec, data + r * dim, sizeof(rec));
		}
		free(book);
		free(codes);
		es_pq_destroy(pq);
		pq = train(data, n, dim, m, 50, 1);
		es_pq_destroy(pq);
		free(data);
	}
}

static void test_invalid_args(void **state)
{
	float data[64] = {0};
	uint8_t codes[16];
	struct es_pq *pq = (struct es_pq *)&pq; /* not NULL until reset */

	assert_int_equal(es_pq_train(NULL, data, 4, 16, 4, 0, 1, 1), -EINVAL);
	assert_int_equal(es_pq_train(&pq, NULL, 4, 16, 4, 0, 1, 1), -EINVAL);
	assert_null(pq);
	assert_int_equal(es_pq_train(&pq, data, 0, 16, 4, 0, 1, 1), -EINVAL);
	assert_int_equal(es_pq_train(&pq, data, 4, 0, 0, 0, 1, 1), -EINVAL);
	assert_int_equal(es_pq_train(&pq, data, 4, 16, 0, 0, 1, 1), -EINVAL);
	assert_int_equal(es_pq_train(&pq, data, 4, 16, 17, 0, 1, 1), -EINVAL);
	data[37] = NAN;
	assert_int_equal(es_pq_train(&pq, data, 4, 16, 4, 0, 1, 1), -EINVAL);
	data[37] = INFINITY;
	assert_int_equal(es_pq_train(&pq, data, 4, 16, 4, 0, 1, 1), -EINVAL);
	assert_null(pq);
	data[37] = 0;
	/* threads 0 means 1; more threads than rows is fine. */
	assert_int_equal(es_pq_train(&pq, data, 4, 16, 4, 0, 1, 0), 0);
	es_pq_destroy(pq);
	assert_int_equal(es_pq_train(&pq, data, 4, 16, 4, 0, 1, 1000), 0);
	assert_int_equal(es_pq_encode(pq, data, 4, codes, 1000), 0);
	assert_int_equal(es_pq_encode(pq, data, 0, NULL, 2), 0);
	assert_int_equal(es_pq_encode(pq, NULL, 4, codes, 2), -EINVAL);
	assert_int_equal(es_pq_encode(pq, data, 4, NULL, 2), -EINVAL);
	assert_int_equal(es_pq_encode(NULL, data, 4, codes, 2), -EINVAL);
	es_pq_destroy(pq);
	es_pq_destroy(NULL);
}

/* The scalar reference of pq_impl.h's kernels. */
static void ref_scores(const float *x, uint32_t len, const float *ct,
		       const float *init, float mul, float *out)
{
	for (unsigned j = 0; j < K; j++) {
		float a = init[j];

		for (uint32_t t = 0; t < len; t++)
			a += mul * x[t] * ct[t * K + j];
		out[j] = a;
	}
}

static void check_kernel(const struct pq_kernels *k, uint32_t len)
{
	float x[40], ct[40 * K], cn[K], out[K], ref[K], lo;
	unsigned best;

	for (uint32_t t = 0; t < len; t++)
		x[t] = gauss();
	for (size_t i = 0; i < (size_t)len * K; i++)
		ct[i] = gauss();
	for (unsigned j = 0; j < K; j++) {
		cn[j] = 0;
		for (uint32_t t = 0; t < len; t++)
			cn[j] += ct[t * K + j] * ct[t * K + j];
	}
	ref_scores(x, len, ct, cn, -1.5f, ref);
	k->scores(x, len, ct, cn, -1.5f, out);
	for (unsigned j = 0; j < K; j++)
		assert_float_equal(out[j], ref[j], 1e-4 * (1 + fabsf(ref[j])));
	ref_scores(x, len, ct, cn, -2.0f, ref);
	best = k->nearest(x, len, ct, cn);
	lo = ref[0];
	for (unsigned j = 1; j < K; j++)
		lo = ref[j] < lo ? ref[j] : lo;
	assert_true(ref[best] <= lo + 1e-4f * (1 + fabsf(lo)));
	if (len == 0)
		return;
	/* A tie goes to the lower index, whichever lane it is in. */
	for (uint32_t t = 0; t < len; t++) {
		ct[t * K + 9] = x[t];
		ct[t * K + 201] = x[t];
		ct[t * K + 130] = x[t];
	}
	cn[9] = cn[201] = cn[130] = (float)dot(x, x, len);
	assert_int_equal(k->nearest(x, len, ct, cn), 9);
	/* A NaN score never wins. */
	cn[9] = NAN;
	assert_int_equal(k->nearest(x, len, ct, cn), 130);
	for (uint32_t t = 0; t < len; t++)
		x[t] = NAN;
	assert_int_equal(k->nearest(x, len, ct, cn), 0);
}

static void test_kernels(void **state)
{
	static const enum es_simd sets[] = {ES_SIMD_PORTABLE, ES_SIMD_AVX2,
					    ES_SIMD_AVX512, ES_SIMD_NEON};
	static const uint32_t lens[] = {0, 1, 2, 3, 7, 16, 25, 40};

	assert_non_null(pq_kernels_get(ES_SIMD_PORTABLE));
	rng = 77;
	for (size_t s = 0; s < sizeof(sets) / sizeof(*sets); s++) {
		const struct pq_kernels *k = pq_kernels_get(sets[s]);

		if (!k)
			continue;
		for (size_t l = 0; l < sizeof(lens) / sizeof(*lens); l++)
			check_kernel(k, lens[l]);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_reconstruction),
	    cmocka_unit_test(test_estimate_l2),
	    cmocka_unit_test(test_estimate_ip),
	    cmocka_unit_test(test_ranking),
	    cmocka_unit_test(test_deterministic),
	    cmocka_unit_test(test_pack_roundtrip),
	    cmocka_unit_test(test_unpack_rejects),
	    cmocka_unit_test(test_shapes),
	    cmocka_unit_test(test_small_n),
	    cmocka_unit_test(test_invalid_args),
	    cmocka_unit_test(test_kernels),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
