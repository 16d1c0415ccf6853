/*
 * Product quantization: training (k-means per subspace), encoding, the
 * query table, and the codebook's packed form.
 *
 * Layout. Subspace s covers floats [off(s), off(s) + len(s)) of a vector,
 * where the first dim % m subspaces have len dim / m + 1 and the rest
 * dim / m. The codebook of subspace s starts at float off(s) * 256 of two
 * arrays of dim * 256 floats:
 *   cent    centroid-major: centroid j at + j * len(s)  (the packed form)
 *   cent_t  transposed:     float t of centroid j at + t * 256 + j
 * and norm[s * 256 + j] is the squared length of centroid j. cent_t and
 * norm serve the nearest-centroid kernels (pq_impl.h), which minimize
 * |c|^2 - 2 x.c, that is |x - c|^2 less the constant |x|^2, with the
 * widest vectors the CPU has.
 *
 * Training. A sorted sample of at most `sample` rows is drawn with
 * selection sampling from a splitmix64 stream seeded by `seed`; the
 * initial centroids are 256 distinct sample rows (cycled when the sample
 * is smaller, so duplicates are allowed and every code is valid). Then up
 * to PQ_ITERS Lloyd iterations, all subspaces in lock step:
 *   assign  threads take contiguous slices of the sample and write only
 *           their slice of the code array;
 *   update  threads take contiguous runs of subspaces; each subspace sums
 *           its points in sample order in doubles, and re-seeds an empty
 *           cluster with a sample row drawn from a stream keyed by
 *           (seed, iteration, subspace).
 * Invariants:
 *   1. No floating-point sum depends on how work is split among threads,
 *      so a seed gives the same codebook for any thread count.
 *   2. Ties go to the lowest centroid index; NaN distances never win.
 *   3. cent, cent_t and norm always describe the same centroids.
 *   4. Every sampled value is finite (checked), so every centroid is.
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "edgesync/pq.h"
#include "edgesync/le.h"
#include "pq_impl.h"

#define K	       ES_PQ_CENTROIDS
#define PQ_ITERS       12
#define PQ_MAX_THREADS 64
#define PQ_ROW_BLOCK   64 /* rows encoded together, subspace by subspace */

struct es_pq {
	uint32_t dim;
	uint32_t m;
	float *cent;
	float *cent_t;
	float *norm;
	const struct pq_kernels *k;
};

static inline uint32_t sub_len(const struct es_pq *pq, uint32_t s)
{
	return pq->dim / pq->m + (s < pq->dim % pq->m);
}

static inline uint32_t sub_off(const struct es_pq *pq, uint32_t s)
{
	uint32_t r = pq->dim % pq->m;

	return s * (pq->dim / pq->m) + (s < r ? s : r);
}

/* ---- kernels ----------------------------------------------------------- */

typedef float pq_f4 __attribute__((vector_size(16)));
typedef int32_t pq_i4 __attribute__((vector_size(16)));

#define PQ_SET portable
#define PQ_ATTR
#define PQ_VF pq_f4
#define PQ_VI pq_i4
#include "pq_impl.h"

#if defined(__x86_64__)
typedef float pq_f8 __attribute__((vector_size(32)));
typedef int32_t pq_i8 __attribute__((vector_size(32)));
typedef float pq_f16 __attribute__((vector_size(64)));
typedef int32_t pq_i16 __attribute__((vector_size(64)));

#define PQ_SET	avx2
#define PQ_ATTR __attribute__((target("avx2")))
#define PQ_VF	pq_f8
#define PQ_VI	pq_i8
#include "pq_impl.h"

#define PQ_SET	avx512
#define PQ_ATTR __attribute__((target("avx512f")))
#define PQ_VF	pq_f16
#define PQ_VI	pq_i16
#include "pq_impl.h"
#endif

const struct pq_kernels *pq_kernels_get(enum es_simd s)
{
	if (s == ES_SIMD_PORTABLE)
		return &pq_kernels_portable;
#if defined(__x86_64__)
	__builtin_cpu_init();
	if (s == ES_SIMD_AVX512 && __builtin_cpu_supports("avx512f"))
		return &pq_kernels_avx512;
	if (s == ES_SIMD_AVX2 && __builtin_cpu_supports("avx2"))
		return &pq_kernels_avx2;
#endif
	return NULL;
}

static const struct pq_kernels *kernels_pick(void)
{
	const struct pq_kernels *k = pq_kernels_get(ES_SIMD_AVX512);

	if (!k)
		k = pq_kernels_get(ES_SIMD_AVX2);
	return k ? k : &pq_kernels_portable;
}

/* ---- codebook ---------------------------------------------------------- */

static struct es_pq *pq_alloc(uint32_t dim, uint32_t m)
{
	struct es_pq *pq = calloc(1, sizeof(*pq));

	if (!pq)
		return NULL;
	pq->dim = dim;
	pq->m = m;
	pq->cent = malloc((size_t)dim * K * sizeof(float));
	pq->cent_t = malloc((size_t)dim * K * sizeof(float));
	pq->norm = malloc((size_t)m * K * sizeof(float));
	pq->k = kernels_pick();
	if (!pq->cent || !pq->cent_t || !pq->norm) {
		es_pq_destroy(pq);
		return NULL;
	}
	return pq;
}

void es_pq_destroy(struct es_pq *pq)
{
	if (!pq)
		return;
	free(pq->cent);
	free(pq->cent_t);
	free(pq->norm);
	free(pq);
}

uint32_t es_pq_dim(const struct es_pq *pq)
{
	return pq->dim;
}

uint32_t es_pq_m(const struct es_pq *pq)
{
	return pq->m;
}

/* Rebuilds cent_t and norm of subspace s from cent (invariant 3). */
static void sub_derive(struct es_pq *pq, uint32_t s)
{
	uint32_t len = sub_len(pq, s);
	const float *c = pq->cent + (size_t)sub_off(pq, s) * K;
	float *ct = pq->cent_t + (size_t)sub_off(pq, s) * K;

	for (size_t j = 0; j < K; j++) {
		float nrm = 0;

		for (size_t t = 0; t < len; t++) {
			float v = c[j * len + t];

			ct[t * K + j] = v;
			nrm += v * v;
		}
		pq->norm[(size_t)s * K + j] = nrm;
	}
}

/* Codes of cnt rows (row pointers), subspace by subspace for locality. */
static void encode_rows(const struct es_pq *pq, const float *const *rows,
			size_t cnt, uint8_t *codes)
{
	for (uint32_t s = 0; s < pq->m; s++) {
		uint32_t len = sub_len(pq, s), off = sub_off(pq, s);
		const float *ct = pq->cent_t + (size_t)off * K;
		const float *cn = pq->norm + (size_t)s * K;

		for (size_t i = 0; i < cnt; i++)
			codes[i * pq->m + s] =
			    (uint8_t)pq->k->nearest(rows[i] + off, len, ct, cn);
	}
}

/* ---- threads ----------------------------------------------------------- */

typedef void (*pq_work_fn)(void *arg, unsigned tid, unsigned nt);

struct pq_worker {
	pthread_t th;
	pq_work_fn fn;
	void *arg;
	unsigned tid;
	unsigned nt;
	int started;
};

static void *worker_main(void *p)
{
	struct pq_worker *w = p;

	w->fn(w->arg, w->tid, w->nt);
	return NULL;
}

/*
 * Runs fn(arg, tid, nt) for every tid < nt, on nt threads when it can; a
 * share whose thread cannot start runs on the caller, so the result never
 * depends on how many threads started.
 */
static void run_parallel(pq_work_fn fn, void *arg, unsigned nt)
{
	struct pq_worker w[PQ_MAX_THREADS];

	for (unsigned i = 1; i < nt; i++) {
		w[i] = (struct pq_worker){
		    .fn = fn, .arg = arg, .tid = i, .nt = nt};
		w[i].started =
		    pthread_create(&w[i].th, NULL, worker_main, &w[i]) == 0;
	}
	fn(arg, 0, nt);
	for (unsigned i = 1; i < nt; i++) {
		if (w[i].started)
			pthread_join(w[i].th, NULL);
		else
			fn(arg, i, nt);
	}
}

static unsigned clamp_threads(unsigned threads, uint64_t units)
{
	uint64_t nt = threads ? threads : 1;

	if (nt > PQ_MAX_THREADS)
		nt = PQ_MAX_THREADS;
	if (nt > units)
		nt = units ? units : 1;
	return (unsigned)nt;
}

static inline uint64_t share(uint64_t n, unsigned tid, unsigned nt)
{
	return n / nt * tid + n % nt * tid / nt;
}

/* ---- training ---------------------------------------------------------- */

struct pq_train {
	struct es_pq *pq;
	const float *data;
	uint64_t *rows; /* sampled row numbers, ascending */
	uint64_t ns;
	uint8_t *codes; /* ns x m, this iteration */
	uint8_t *prev;	/* ns x m, the previous one */
	uint64_t changed[PQ_MAX_THREADS];
	double *sums;	  /* per thread, K x the longest subspace */
	uint64_t *counts; /* per thread, K */
	uint64_t seed;
	unsigned iter;
};

static uint64_t splitmix64(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* Selection sampling: k distinct values of [0, n), ascending, into out. */
static void pick_sorted(uint64_t *out, uint64_t k, uint64_t n, uint64_t *rng)
{
	uint64_t got = 0;

	for (uint64_t i = 0; i < n && got < k; i++)
		if (k >= n || splitmix64(rng) % (n - i) < k - got)
			out[got++] = i;
}

static const float *train_row(const struct pq_train *tr, uint64_t i)
{
	return tr->data + tr->rows[i] * tr->pq->dim;
}

static int sample_finite(const struct pq_train *tr)
{
	for (uint64_t i = 0; i < tr->ns; i++) {
		const float *x = train_row(tr, i);

		for (uint32_t t = 0; t < tr->pq->dim; t++)
			if (!isfinite(x[t]))
				return -EINVAL;
	}
	return 0;
}

/* Centroid j of subspace s becomes the subvector of sample row i. */
static void set_centroid(struct pq_train *tr, uint32_t s, unsigned j,
			 uint64_t i)
{
	struct es_pq *pq = tr->pq;
	uint32_t len = sub_len(pq, s), off = sub_off(pq, s);

	memcpy(pq->cent + (size_t)off * K + (size_t)j * len,
	       train_row(tr, i) + off, len * sizeof(float));
}

/* 256 distinct sample rows (all of them, cycled, when fewer). */
static void train_init(struct pq_train *tr, uint64_t *rng)
{
	uint64_t pick[K];
	uint64_t k = tr->ns < K ? tr->ns : K;

	pick_sorted(pick, k, tr->ns, rng);
	for (unsigned j = 0; j < K; j++)
		for (uint32_t s = 0; s < tr->pq->m; s++)
			set_centroid(tr, s, j, pick[j % k]);
	for (uint32_t s = 0; s < tr->pq->m; s++)
		sub_derive(tr->pq, s);
}

static void assign_work(void *arg, unsigned tid, unsigned nt)
{
	struct pq_train *tr = arg;
	const float *rows[PQ_ROW_BLOCK];
	uint64_t lo = share(tr->ns, tid, nt), hi = share(tr->ns, tid + 1, nt);
	uint32_t m = tr->pq->m;
	uint64_t changed = 0;

	for (uint64_t b = lo; b < hi; b += PQ_ROW_BLOCK) {
		size_t cnt = hi - b < PQ_ROW_BLOCK ? hi - b : PQ_ROW_BLOCK;

		for (size_t i = 0; i < cnt; i++)
			rows[i] = train_row(tr, b + i);
		encode_rows(tr->pq, rows, cnt, tr->codes + b * m);
	}
	for (uint64_t i = lo * m; i < hi * m; i++)
		changed += tr->codes[i] != tr->prev[i];
	tr->changed[tid] = changed;
}

/* New centroids of subspace s: the means, in sample order (invariant 1). */
static void update_sub(struct pq_train *tr, uint32_t s, double *sums,
		       uint64_t *counts)
{
	struct es_pq *pq = tr->pq;
	uint32_t len = sub_len(pq, s), off = sub_off(pq, s), m = pq->m;
	float *c = pq->cent + (size_t)off * K;
	uint64_t rng = tr->seed ^ (0xd1b54a32d192ed03ull * (tr->iter + 1)) ^
		       (0x8cb92ba72f3d8dd7ull * (s + 1));

	memset(sums, 0, (size_t)K * len * sizeof(double));
	memset(counts, 0, K * sizeof(uint64_t));
	for (uint64_t i = 0; i < tr->ns; i++) {
		size_t j = tr->codes[i * m + s];
		const float *x = train_row(tr, i) + off;

		counts[j]++;
		for (size_t t = 0; t < len; t++)
			sums[j * len + t] += x[t];
	}
	for (size_t j = 0; j < K; j++) {
		if (!counts[j]) {
			set_centroid(tr, s, (unsigned)j,
				     splitmix64(&rng) % tr->ns);
			continue;
		}
		for (size_t t = 0; t < len; t++)
			c[j * len + t] = (float)(sums[j * len + t] / counts[j]);
	}
	sub_derive(pq, s);
}

static void update_work(void *arg, unsigned tid, unsigned nt)
{
	struct pq_train *tr = arg;
	uint32_t m = tr->pq->m;
	uint32_t lo = (uint32_t)share(m, tid, nt);
	uint32_t hi = (uint32_t)share(m, tid + 1, nt);
	size_t longest = (size_t)K * sub_len(tr->pq, 0);

	for (uint32_t s = lo; s < hi; s++)
		update_sub(tr, s, tr->sums + tid * longest,
			   tr->counts + (size_t)tid * K);
}

static void train_lloyd(struct pq_train *tr, unsigned threads)
{
	unsigned na = clamp_threads(threads, tr->ns);
	unsigned nu = clamp_threads(threads, tr->pq->m);
	uint8_t *swap;

	for (tr->iter = 0; tr->iter < PQ_ITERS; tr->iter++) {
		uint64_t changed = 0;

		run_parallel(assign_work, tr, na);
		for (unsigned i = 0; i < na; i++)
			changed += tr->changed[i];
		if (tr->iter > 0 && changed == 0)
			break;
		run_parallel(update_work, tr, nu);
		swap = tr->prev;
		tr->prev = tr->codes;
		tr->codes = swap;
	}
}

static int train_alloc(struct pq_train *tr, unsigned threads)
{
	unsigned nt = clamp_threads(threads, tr->pq->m);
	size_t codes = (size_t)tr->ns * tr->pq->m;

	if (tr->ns > SIZE_MAX / sizeof(uint64_t) / tr->pq->dim)
		return -ENOMEM;
	tr->rows = malloc(tr->ns * sizeof(uint64_t));
	tr->codes = calloc(codes, 1);
	tr->prev = calloc(codes, 1);
	tr->sums = malloc((size_t)nt * K * sub_len(tr->pq, 0) * sizeof(double));
	tr->counts = malloc((size_t)nt * K * sizeof(uint64_t));
	if (!tr->rows || !tr->codes || !tr->prev || !tr->sums || !tr->counts)
		return -ENOMEM;
	return 0;
}

static void train_free(struct pq_train *tr)
{
	free(tr->counts);
	free(tr->sums);
	free(tr->prev);
	free(tr->codes);
	free(tr->rows);
}

/* sample 0 means every row. */
int es_pq_train(struct es_pq **pqp, const float *data, uint64_t n, uint32_t dim,
		uint32_t m, uint64_t sample, uint64_t seed, unsigned threads)
{
	struct pq_train tr = {.data = data, .seed = seed};
	uint64_t rng = seed;
	int rc;

	if (!pqp)
		return -EINVAL;
	*pqp = NULL;
	if (!data || n == 0 || dim == 0 || m == 0 || m > dim)
		return -EINVAL;
	tr.ns = sample == 0 || sample > n ? n : sample;
	tr.pq = pq_alloc(dim, m);
	if (!tr.pq)
		return -ENOMEM;
	rc = train_alloc(&tr, threads);
	if (rc < 0)
		goto err;
	pick_sorted(tr.rows, tr.ns, n, &rng);
	rc = sample_finite(&tr);
	if (rc < 0)
		goto err;
	train_init(&tr, &rng);
	train_lloyd(&tr, threads);
	train_free(&tr);
	*pqp = tr.pq;
	return 0;
err:
	train_free(&tr);
	es_pq_destroy(tr.pq);
	return rc;
}

/* ---- encoding and queries ---------------------------------------------- */

struct pq_encode {
	const struct es_pq *pq;
	const float *data;
	uint64_t n;
	uint8_t *codes;
};

static void encode_work(void *arg, unsigned tid, unsigned nt)
{
	struct pq_encode *en = arg;
	const float *rows[PQ_ROW_BLOCK];
	uint64_t lo = share(en->n, tid, nt), hi = share(en->n, tid + 1, nt);
	uint32_t dim = en->pq->dim;

	for (uint64_t b = lo; b < hi; b += PQ_ROW_BLOCK) {
		size_t cnt = hi - b < PQ_ROW_BLOCK ? hi - b : PQ_ROW_BLOCK;

		for (size_t i = 0; i < cnt; i++)
			rows[i] = en->data + (b + i) * dim;
		encode_rows(en->pq, rows, cnt, en->codes + b * en->pq->m);
	}
}

int es_pq_encode(const struct es_pq *pq, const float *data, uint64_t n,
		 uint8_t *codes, unsigned threads)
{
	struct pq_encode en = {.pq = pq, .data = data, .n = n, .codes = codes};

	if (!pq || (n && (!data || !codes)))
		return -EINVAL;
	if (n)
		run_parallel(encode_work, &en, clamp_threads(threads, n));
	return 0;
}

/*
 * L2: |q|^2 + |c|^2 - 2 q.c, clamped at 0 against rounding; IP and
 * COSINE: -q.c.
 */
void es_pq_table(const struct es_pq *pq, enum es_metric metric,
		 const float *query, float *table)
{
	float init[K];

	for (uint32_t s = 0; s < pq->m; s++) {
		uint32_t len = sub_len(pq, s), off = sub_off(pq, s);
		const float *q = query + off;
		const float *ct = pq->cent_t + (size_t)off * K;
		float *out = table + (size_t)s * K;
		float qq = 0;

		if (metric != ES_METRIC_L2) {
			memset(init, 0, sizeof(init));
			pq->k->scores(q, len, ct, init, -1.0f, out);
			continue;
		}
		for (uint32_t t = 0; t < len; t++)
			qq += q[t] * q[t];
		for (unsigned j = 0; j < K; j++)
			init[j] = qq + pq->norm[(size_t)s * K + j];
		pq->k->scores(q, len, ct, init, -2.0f, out);
		for (unsigned j = 0; j < K; j++)
			out[j] = out[j] > 0 ? out[j] : 0;
	}
}

/* ---- packed form: float32 LE, subspace after subspace ------------------ */

size_t es_pq_packed_size(const struct es_pq *pq)
{
	return (size_t)4 * K * pq->dim;
}

void es_pq_pack(const struct es_pq *pq, void *buf)
{
	unsigned char *p = buf;
	size_t count = (size_t)K * pq->dim;
	uint32_t bits;

	for (size_t i = 0; i < count; i++, p += 4) {
		memcpy(&bits, &pq->cent[i], 4);
		le32_store(p, bits);
	}
}

int es_pq_unpack(struct es_pq **pqp, const void *buf, size_t len, uint32_t dim,
		 uint32_t m)
{
	const unsigned char *p = buf;
	struct es_pq *pq;
	size_t count;
	uint32_t bits;

	if (!pqp)
		return -EINVAL;
	*pqp = NULL;
	if (!buf || dim == 0 || m == 0 || m > dim)
		return -EINVAL;
	count = (size_t)K * dim;
	if (len / 4 != count || len % 4)
		return -EINVAL;
	pq = pq_alloc(dim, m);
	if (!pq)
		return -ENOMEM;
	for (size_t i = 0; i < count; i++, p += 4) {
		bits = le32_load(p);
		memcpy(&pq->cent[i], &bits, 4);
		if (!isfinite(pq->cent[i])) {
			es_pq_destroy(pq);
			return -EINVAL;
		}
	}
	for (uint32_t s = 0; s < m; s++)
		sub_derive(pq, s);
	*pqp = pq;
	return 0;
}
