/*
 * Vamana (DiskANN) graph build, in memory (vamana_build.h); es_vamana_build
 * (vamana_build_file.c) turns a segment into an index file with it.
 *
 *   vamana_graph_build: scan() (finite check, mean, entry = the row
 *     nearest the mean by L2) -> random_graph() (min(R, N - 1) distinct
 *     out-neighbours per row, no self loop) -> run_pass() with alpha 1 ->
 *     run_pass() with p->alpha. Pass 1 takes the rows in a seeded random
 *     order; pass 2 in bfs_order() (seeded random blocks of a breadth-first
 *     order, for cache locality). A pass goes in batches of 1, 2, 4, ...
 *     rows, at most N / BATCH_DIV:
 *       a. node_item, in parallel: greedy search() for row p from the
 *          entry with list L; candidates = the expanded rows and out(p),
 *          with the distances the search computed; prune() -> the new
 *          out(p), into the batch buffer.
 *       b. batch_commit: the new out-lists replace the old ones; the
 *          reverse edges (q <- p) of the batch are sorted by (q, p).
 *       c. reverse_item, in parallel, one q per item: the new sources are
 *          appended to out(q), or out(q) and they are pruned when that
 *          would exceed R.
 *
 * Invariants:
 *   1. In (a) no one writes the graph; in (c) the item of q alone reads
 *      and writes row q. An item writes only its own slot or row, so the
 *      graph after each batch depends on the data and the seed only,
 *      never on the thread count or on which thread took which item.
 *   2. degree[i] <= R; row i's neighbours are distinct, < N and not i.
 *   3. In a worker, stamp[v] < gen: v unseen by the current search;
 *      == gen: seen, dist[v] is its distance to the query; == gen + 1:
 *      expanded (or already a prune candidate). gen grows by 2 per use;
 *      before it wraps, stamp is cleared.
 *   4. Every scratch is sized up front for L, R, N and the largest batch:
 *      nothing allocates once the passes start.
 *   5. progress runs on the calling thread only, between batches.
 *
 * Pruning. prune() keeps candidates nearest p first and drops c when a
 * kept c* has alpha * d'(c*, c) < d'(p, c), where d' = d + shift makes
 * every distance >= 0 so that alpha > 1 loosens the rule for every metric:
 * shift is 0 for L2 (d is squared L2, as DiskANN uses), 1 for cosine
 * (d' = 1 - cos, half the squared L2 of unit vectors: the L2 rule), and
 * max |x|^2 over the data for IP (d' >= 0 by Cauchy-Schwarz; at alpha 1
 * the shift cancels and the rule is HNSW's). The test is strict, as in
 * DiskANN, so a duplicate of p does not occlude the other candidates,
 * while duplicates of a kept row are dropped (d'(c*, c) = 0). As DiskANN
 * does, a first round applies alpha 1 and a second round with alpha fills
 * the slots left, so the most diverse edges (those leaving a tight
 * cluster) are never crowded out by near ones.
 */
#include <errno.h>
#include <float.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "edgesync/store_error.h"
#include "vamana_build.h"

#define BATCH_DIV     50 /* largest batch: 2% of the rows */
#define MAX_THREADS   256
#define MAX_R	      4096 /* as the file format allows */
#define PREFETCH_ROW  1024 /* bytes of a row prefetched; hardware streams on */
#define PREFETCH_SPAN 1024 /* bytes of rows prefetched ahead of use */
#define PROGRESS_NS   100000000LL
#define ORDER_BLOCK   256 /* rows per block of pass 2's order */

struct vb_cand {
	float d;
	uint32_t id;
};

struct vb_item {
	float d;
	uint32_t id;
	uint32_t done; /* expanded */
};

struct vb_ctx;

/* One thread's scratch (invariant 3). */
struct vb_worker {
	struct vb_ctx *b;
	uint32_t *stamp; /* n */
	float *dist;	 /* n */
	uint32_t gen;
	struct vb_item *list; /* L, sorted by (d, insertion) */
	uint32_t nlist;
	struct vb_cand *pool; /* expanded rows, then prune candidates */
	struct vb_cand *tmp;  /* merge sort scratch, as large as pool */
	float *occl;	      /* prune: occlusion factors, as large */
	uint32_t *chk;	      /* prune: kept rows compared, as large */
	uint32_t npool;
	uint32_t *todo; /* R */
	pthread_t tid;
};

typedef void (*vb_job_fn)(struct vb_ctx *b, struct vb_worker *w, uint32_t item);

struct vb_ctx {
	struct vamana_graph *g;
	const struct es_vamana_build_params *p;
	es_distance_fn dist;
	float shift, alpha;
	uint32_t L, exp_cap, pool_cap, bcap;
	struct vb_worker *w;
	unsigned nw;
	/* the current batch */
	const uint32_t *batch;
	uint32_t nb;
	uint32_t *bout;		/* bcap x R */
	uint32_t *bdeg;		/* bcap */
	uint64_t *edges, *etmp; /* bcap x R: q << 32 | p */
	uint32_t *runs;		/* bcap x R + 1: where each q's edges start */
	uint32_t nruns;
	uint32_t *order; /* n: the pass's order */
	uint32_t *bfs;	 /* n + blocks: bfs_order's scratch */
	/* the thread pool */
	pthread_mutex_t mu;
	pthread_cond_t start, idle;
	uint64_t round;
	unsigned busy, started;
	int quit;
	vb_job_fn fn;
	uint32_t items;
	atomic_uint next;
};

/* ---- small helpers ---------------------------------------------------- */

static uint64_t splitmix64(uint64_t *s)
{
	uint64_t z = (*s += 0x9E3779B97F4A7C15ull);

	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

/* Uniform in [0, n), n >= 1 (multiply-shift; bias below 2^-32 n). */
static uint32_t rand_below(uint64_t *s, uint32_t n)
{
	return (uint32_t)(((splitmix64(s) >> 32) * (uint64_t)n) >> 32);
}

static inline const float *row(const struct vamana_graph *g, uint32_t i)
{
	return g->vectors + (size_t)i * g->dim;
}

static inline void prefetch_row(const float *v, uint32_t bytes)
{
	const char *c = (const char *)v;

	if (bytes > PREFETCH_ROW)
		bytes = PREFETCH_ROW;
	for (uint32_t off = 0; off < bytes; off += 64)
		__builtin_prefetch(c + off);
}

static inline int cand_less(const struct vb_cand *a, const struct vb_cand *b)
{
	return a->d < b->d || (a->d == b->d && a->id < b->id);
}

/* Stable merge sort by (d, id); memory-safe whatever the floats hold. */
static void cand_sort(struct vb_cand *a, struct vb_cand *tmp, uint32_t n)
{
	struct vb_cand *src = a, *dst = tmp, *t;

	for (uint32_t lo = 0; lo < n; lo += 16) {
		uint32_t hi = n - lo < 16 ? n : lo + 16;

		for (uint32_t i = lo + 1; i < hi; i++) {
			struct vb_cand x = a[i];
			uint32_t j = i;

			for (; j > lo && cand_less(&x, &a[j - 1]); j--)
				a[j] = a[j - 1];
			a[j] = x;
		}
	}
	for (uint32_t wd = 16; wd < n; wd *= 2) {
		for (uint32_t lo = 0; lo < n; lo += 2 * wd) {
			uint32_t mid = n - lo < wd ? n : lo + wd;
			uint32_t hi = n - lo < 2 * wd ? n : lo + 2 * wd;
			uint32_t i = lo, j = mid, k = lo;

			while (i < mid && j < hi)
				dst[k++] = cand_less(&src[j], &src[i])
					       ? src[j++]
					       : src[i++];
			while (i < mid)
				dst[k++] = src[i++];
			while (j < hi)
				dst[k++] = src[j++];
		}
		t = src;
		src = dst;
		dst = t;
	}
	if (src != a)
		memcpy(a, src, n * sizeof(*a));
}

/* LSD radix sort of n keys, skipping the bytes all keys share. */
static void key_sort(uint64_t *a, uint64_t *tmp, uint32_t n)
{
	static const uint32_t zero[256];
	uint32_t cnt[8][256];
	uint64_t *src = a, *dst = tmp, *t;

	if (n < 2)
		return;
	for (int b = 0; b < 8; b++)
		memcpy(cnt[b], zero, sizeof(zero));
	for (uint32_t i = 0; i < n; i++)
		for (int b = 0; b < 8; b++)
			cnt[b][(a[i] >> (8 * b)) & 255]++;
	for (int b = 0; b < 8; b++) {
		uint32_t sum = 0;

		if (cnt[b][(a[0] >> (8 * b)) & 255] == n)
			continue;
		for (int d = 0; d < 256; d++) {
			uint32_t c = cnt[b][d];

			cnt[b][d] = sum;
			sum += c;
		}
		for (uint32_t i = 0; i < n; i++)
			dst[cnt[b][(src[i] >> (8 * b)) & 255]++] = src[i];
		t = src;
		src = dst;
		dst = t;
	}
	if (src != a)
		memcpy(a, src, n * sizeof(*a));
}

/* ---- workers ------------------------------------------------------------ */

static void worker_fini(struct vb_worker *w)
{
	free(w->stamp);
	free(w->dist);
	free(w->list);
	free(w->pool);
	free(w->tmp);
	free(w->occl);
	free(w->chk);
	free(w->todo);
}

static int worker_init(struct vb_worker *w, uint32_t n, uint32_t L, uint32_t R,
		       uint32_t pool_cap)
{
	memset(w, 0, sizeof(*w));
	w->stamp = calloc(n, sizeof(*w->stamp));
	w->dist = malloc(n * sizeof(*w->dist));
	w->list = malloc(L * sizeof(*w->list));
	w->pool = malloc(pool_cap * sizeof(*w->pool));
	w->tmp = malloc(pool_cap * sizeof(*w->tmp));
	w->occl = malloc(pool_cap * sizeof(*w->occl));
	w->chk = malloc(pool_cap * sizeof(*w->chk));
	w->todo = malloc(R * sizeof(*w->todo));
	if (!w->stamp || !w->dist || !w->list || !w->pool || !w->tmp ||
	    !w->occl || !w->chk || !w->todo) {
		worker_fini(w);
		return -ENOMEM;
	}
	return 0;
}

/* Starts a search (or another use of stamp); returns the new gen. */
static uint32_t next_gen(struct vb_worker *w, uint32_t n)
{
	if (w->gen >= UINT32_MAX - 4) {
		memset(w->stamp, 0, n * sizeof(*w->stamp));
		w->gen = 0;
	}
	w->gen += 2;
	return w->gen;
}

/* Upper bound on the rows one search expands (then it stops). */
static uint32_t expand_cap(uint32_t L, uint32_t R)
{
	return 4 * L + R + 16;
}

/* ---- search and prune ----------------------------------------------- */

/* Inserts (d, id) in the sorted list; returns its position. */
static uint32_t list_insert(struct vb_worker *w, uint32_t L, float d,
			    uint32_t id)
{
	struct vb_item *list = w->list;
	uint32_t lo = 0, hi = w->nlist, keep;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;

		if (d < list[mid].d)
			hi = mid;
		else
			lo = mid + 1;
	}
	keep = w->nlist < L ? w->nlist : L - 1;
	memmove(&list[lo + 1], &list[lo], (keep - lo) * sizeof(*list));
	list[lo] = (struct vb_item){.d = d, .id = id, .done = 0};
	if (w->nlist < L)
		w->nlist++;
	return lo;
}

/* Distances to the unseen neighbours of u; returns the lowest insertion. */
static uint32_t expand(const struct vamana_graph *g, es_distance_fn dist,
		       struct vb_worker *w, const float *q, uint32_t L,
		       uint32_t u)
{
	const uint32_t *nbr = g->adj + (size_t)u * g->R;
	uint32_t deg = g->degree[u], m = 0, lo = UINT32_MAX, gen = w->gen;
	uint32_t bytes = g->dim * (uint32_t)sizeof(float);
	uint32_t ahead = bytes < PREFETCH_SPAN ? PREFETCH_SPAN / bytes : 1;

	for (uint32_t j = 0; j < deg; j++) {
		uint32_t v = nbr[j];

		if (w->stamp[v] < gen) {
			w->stamp[v] = gen;
			w->todo[m++] = v;
		}
	}
	for (uint32_t j = 0; j < m && j < ahead; j++)
		prefetch_row(row(g, w->todo[j]), bytes);
	for (uint32_t j = 0; j < m; j++) {
		uint32_t v = w->todo[j], pos;
		float d;

		if (j + ahead < m)
			prefetch_row(row(g, w->todo[j + ahead]), bytes);
		d = dist(q, row(g, v), g->dim);
		w->dist[v] = d;
		if (w->nlist == L && !(d < w->list[L - 1].d))
			continue;
		pos = list_insert(w, L, d, v);
		if (pos < lo)
			lo = pos;
	}
	return lo;
}

/*
 * Greedy search for q from the entry with list size L: w->list holds the
 * L nearest rows seen, w->pool every expanded row with its distance.
 */
static void search(const struct vamana_graph *g, es_distance_fn dist,
		   struct vb_worker *w, const float *q, uint32_t L,
		   uint32_t exp_cap)
{
	uint32_t gen = next_gen(w, g->n), cur = 0, e = g->entry;
	float d = dist(q, row(g, e), g->dim);

	w->stamp[e] = gen;
	w->dist[e] = d;
	w->list[0] = (struct vb_item){.d = d, .id = e, .done = 0};
	w->nlist = 1;
	w->npool = 0;
	while (cur < w->nlist && w->npool < exp_cap) {
		struct vb_item *it = &w->list[cur];
		uint32_t lo, nx = cur + 1;

		it->done = 1;
		w->stamp[it->id] = gen + 1;
		w->pool[w->npool++] =
		    (struct vb_cand){.d = it->d, .id = it->id};
		/* The next row to expand, unless this one finds better. */
		while (nx < w->nlist && w->list[nx].done)
			nx++;
		if (nx < w->nlist) {
			__builtin_prefetch(g->adj +
					   (size_t)w->list[nx].id * g->R);
			__builtin_prefetch(g->degree + w->list[nx].id);
		}
		lo = expand(g, dist, w, q, L, it->id);
		cur = lo <= cur ? lo : cur + 1;
		while (cur < w->nlist && w->list[cur].done)
			cur++;
	}
}

/*
 * RobustPrune of the n candidates c (d = shifted distance to the row
 * being pruned, distinct ids, the row itself excluded) into out; returns
 * the new degree (<= R). As DiskANN does, a first round keeps what alpha 1
 * keeps and a second round with b->alpha fills the remaining slots, so
 * the most diverse edges (those that leave a tight cluster) come first.
 * f[i] is the occlusion factor of candidate i, the largest d'(p, i) /
 * d'(s, i) over the first chk[i] kept rows s; chk[i] is UINT32_MAX once i
 * is kept. No pair's distance is computed twice.
 */
static uint32_t prune(const struct vb_ctx *b, struct vb_worker *w,
		      struct vb_cand *c, uint32_t n, uint32_t *out)
{
	const struct vamana_graph *g = b->g;
	uint32_t k = 0, R = g->R, *chk = w->chk;
	float *f = w->occl, a = 1.0f;

	cand_sort(c, w->tmp, n);
	for (uint32_t i = 0; i < n; i++) {
		f[i] = 0;
		chk[i] = 0;
	}
	for (int round = 0; round < 2 && k < R; round++, a = b->alpha) {
		if (round == 1 && !(b->alpha > 1.0f))
			break;
		for (uint32_t i = 0; i < n && k < R; i++) {
			const float *vc = row(g, c[i].id);

			if (chk[i] == UINT32_MAX || f[i] > a)
				continue;
			while (chk[i] < k && f[i] <= a) {
				float djk =
				    b->dist(row(g, out[chk[i]++]), vc, g->dim) +
				    b->shift;
				float r = djk > 0 ? c[i].d / djk : INFINITY;

				if (r > f[i])
					f[i] = r;
			}
			if (f[i] <= a) {
				out[k++] = c[i].id;
				chk[i] = UINT32_MAX;
			}
		}
	}
	return k;
}

/* Step a: search for batch row i and prune its new out-list. */
static void node_item(struct vb_ctx *b, struct vb_worker *w, uint32_t i)
{
	const struct vamana_graph *g = b->g;
	uint32_t p = b->batch[i], n = 0, gen;
	const uint32_t *out = g->adj + (size_t)p * g->R;
	const float *vp = row(g, p);

	search(g, b->dist, w, vp, b->L, b->exp_cap);
	gen = w->gen;
	for (uint32_t j = 0; j < w->npool; j++)
		if (w->pool[j].id != p)
			w->pool[n++] = (struct vb_cand){
			    .d = w->pool[j].d + b->shift, .id = w->pool[j].id};
	for (uint32_t j = 0; j < g->degree[p]; j++) {
		uint32_t v = out[j];
		float d;

		if (w->stamp[v] == gen + 1)
			continue;
		d = w->stamp[v] == gen ? w->dist[v]
				       : b->dist(vp, row(g, v), g->dim);
		w->stamp[v] = gen + 1;
		w->pool[n++] = (struct vb_cand){.d = d + b->shift, .id = v};
	}
	b->bdeg[i] = prune(b, w, w->pool, n, b->bout + (size_t)i * g->R);
}

/* Step c: add the batch's new edges into row q (run r of the edges). */
static void reverse_item(struct vb_ctx *b, struct vb_worker *w, uint32_t r)
{
	const struct vamana_graph *g = b->g;
	uint32_t lo = b->runs[r], hi = b->runs[r + 1], m = 0;
	uint32_t q = (uint32_t)(b->edges[lo] >> 32), deg = g->degree[q];
	uint32_t *out = g->adj + (size_t)q * g->R;
	uint32_t gen = next_gen(w, g->n);
	struct vb_cand *c = w->pool;

	for (uint32_t j = 0; j < deg; j++)
		w->stamp[out[j]] = gen;
	for (uint32_t e = lo; e < hi; e++) {
		uint32_t p = (uint32_t)b->edges[e];

		if (w->stamp[p] != gen) {
			w->stamp[p] = gen;
			c[m++].id = p;
		}
	}
	if (deg + m <= g->R) {
		for (uint32_t j = 0; j < m; j++)
			out[deg + j] = c[j].id;
		g->degree[q] = deg + m;
		return;
	}
	for (uint32_t j = 0; j < deg; j++)
		c[m + j].id = out[j];
	for (uint32_t j = 0; j < m + deg; j++)
		c[j].d = b->dist(row(g, q), row(g, c[j].id), g->dim) + b->shift;
	g->degree[q] = prune(b, w, c, m + deg, out);
}

/* ---- thread pool -------------------------------------------------------- */

static void run_items(struct vb_ctx *b, struct vb_worker *w)
{
	for (;;) {
		uint32_t i = atomic_fetch_add(&b->next, 1);

		if (i >= b->items)
			return;
		b->fn(b, w, i);
	}
}

static void *worker_main(void *arg)
{
	struct vb_worker *w = arg;
	struct vb_ctx *b = w->b;
	uint64_t seen = 0;

	pthread_mutex_lock(&b->mu);
	for (;;) {
		while (!b->quit && b->round == seen)
			pthread_cond_wait(&b->start, &b->mu);
		if (b->quit)
			break;
		seen = b->round;
		pthread_mutex_unlock(&b->mu);
		run_items(b, w);
		pthread_mutex_lock(&b->mu);
		if (--b->busy == 0)
			pthread_cond_signal(&b->idle);
	}
	pthread_mutex_unlock(&b->mu);
	return NULL;
}

/* Runs fn on items 0..items-1 on every worker; the caller is worker 0. */
static void run_job(struct vb_ctx *b, vb_job_fn fn, uint32_t items)
{
	b->fn = fn;
	b->items = items;
	atomic_store(&b->next, 0);
	if (b->started == 0 || items < 2) {
		run_items(b, &b->w[0]);
		return;
	}
	pthread_mutex_lock(&b->mu);
	b->busy = b->started;
	b->round++;
	pthread_cond_broadcast(&b->start);
	pthread_mutex_unlock(&b->mu);
	run_items(b, &b->w[0]);
	pthread_mutex_lock(&b->mu);
	while (b->busy)
		pthread_cond_wait(&b->idle, &b->mu);
	pthread_mutex_unlock(&b->mu);
}

/* Starts workers 1..nw-1; with fewer threads the result is the same. */
static void pool_start(struct vb_ctx *b)
{
	pthread_mutex_init(&b->mu, NULL);
	pthread_cond_init(&b->start, NULL);
	pthread_cond_init(&b->idle, NULL);
	for (unsigned i = 1; i < b->nw; i++) {
		if (pthread_create(&b->w[i].tid, NULL, worker_main, &b->w[i]))
			break;
		b->started++;
	}
}

static void pool_stop(struct vb_ctx *b)
{
	pthread_mutex_lock(&b->mu);
	b->quit = 1;
	pthread_cond_broadcast(&b->start);
	pthread_mutex_unlock(&b->mu);
	for (unsigned i = 1; i <= b->started; i++)
		pthread_join(b->w[i].tid, NULL);
	pthread_cond_destroy(&b->idle);
	pthread_cond_destroy(&b->start);
	pthread_mutex_destroy(&b->mu);
}

/* ---- the passes ------------------------------------------------------- */

/* Step b: install the batch's out-lists, gather its reverse edges. */
static void batch_commit(struct vb_ctx *b)
{
	struct vamana_graph *g = b->g;
	uint32_t R = g->R, ne = 0;

	for (uint32_t i = 0; i < b->nb; i++) {
		uint32_t p = b->batch[i];
		const uint32_t *src = b->bout + (size_t)i * R;

		memcpy(g->adj + (size_t)p * R, src, b->bdeg[i] * sizeof(*src));
		g->degree[p] = b->bdeg[i];
		for (uint32_t j = 0; j < b->bdeg[i]; j++)
			b->edges[ne++] = (uint64_t)src[j] << 32 | p;
	}
	key_sort(b->edges, b->etmp, ne);
	b->nruns = 0;
	for (uint32_t e = 0; e < ne; e++)
		if (e == 0 || b->edges[e] >> 32 != b->edges[e - 1] >> 32)
			b->runs[b->nruns++] = e;
	b->runs[b->nruns] = ne;
}

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void report(struct vb_ctx *b, uint64_t done, uint64_t total,
		   int64_t *last)
{
	int64_t t;

	if (!b->p->progress)
		return;
	t = now_ns();
	if (done == total || t - *last >= PROGRESS_NS) {
		b->p->progress(b->p->progress_arg, done, total);
		*last = t;
	}
}

static void shuffle(uint32_t *a, uint32_t n, uint64_t seed)
{
	for (uint32_t i = 0; i < n; i++)
		a[i] = i;
	for (uint32_t i = n; i > 1; i--) {
		uint32_t j = rand_below(&seed, i), t = a[i - 1];

		a[i - 1] = a[j];
		a[j] = t;
	}
}

/*
 * Pass 2's order: breadth first from the entry over the pass-1 graph
 * (then from each row not reached, in row order), cut into blocks of
 * ORDER_BLOCK rows taken in a seeded random order. Consecutive searches
 * then end in the same neighbourhood, whose rows are still in the cache,
 * while each batch still mixes blocks from all over the data.
 */
static void bfs_order(struct vb_ctx *b, uint64_t seed)
{
	const struct vamana_graph *g = b->g;
	struct vb_worker *w = &b->w[0];
	uint32_t n = g->n, gen = next_gen(w, n), head = 0, tail = 0, next = 0;
	uint32_t *q = b->bfs, *blk = b->bfs + n, o = 0;
	uint32_t nblk = (n + ORDER_BLOCK - 1) / ORDER_BLOCK;

	while (tail < n) {
		uint32_t u;

		if (head == tail) {
			u = g->entry;
			if (tail) {
				while (w->stamp[next] == gen)
					next++;
				u = next;
			}
			w->stamp[u] = gen;
			q[tail++] = u;
		}
		u = q[head++];
		for (uint32_t j = 0; j < g->degree[u]; j++) {
			uint32_t v = g->adj[(size_t)u * g->R + j];

			if (w->stamp[v] != gen) {
				w->stamp[v] = gen;
				q[tail++] = v;
			}
		}
	}
	shuffle(blk, nblk, seed);
	for (uint32_t i = 0; i < nblk; i++) {
		uint32_t lo = blk[i] * ORDER_BLOCK;
		uint32_t hi = n - lo < ORDER_BLOCK ? n : lo + ORDER_BLOCK;

		for (uint32_t j = lo; j < hi; j++)
			b->order[o++] = q[j];
	}
}

static void run_pass(struct vb_ctx *b, int pass, float alpha, int64_t *last)
{
	uint32_t n = b->g->n, bs = 1;
	uint64_t total = 2 * (uint64_t)n;
	uint64_t seed = b->p->seed ^ (0xA5A5A5A5ull + (uint64_t)pass);

	b->alpha = alpha;
	if (pass == 0)
		shuffle(b->order, n, seed);
	else
		bfs_order(b, seed);
	for (uint32_t start = 0; start < n; start += b->nb) {
		if (vamana_build_stopped(b->p))
			return;
		b->batch = b->order + start;
		b->nb = n - start < bs ? n - start : bs;
		run_job(b, node_item, b->nb);
		batch_commit(b);
		run_job(b, reverse_item, b->nruns);
		report(b, (uint64_t)pass * n + start + b->nb, total, last);
		if (bs < b->bcap)
			bs = bs * 2 < b->bcap ? bs * 2 : b->bcap;
	}
}

/* ---- graph build -------------------------------------------------------- */

/*
 * Checks every value is finite, finds the row nearest the mean (L2) and,
 * for IP, the largest squared norm (the prune shift).
 */
static int scan(struct vb_ctx *b)
{
	struct vamana_graph *g = b->g;
	uint32_t dim = g->dim, best = 0;
	es_distance_fn l2 = es_distance_get(ES_METRIC_L2);
	double *sum = calloc(dim, sizeof(*sum));
	float *mean = malloc(dim * sizeof(*mean)), bestd = INFINITY;
	double maxnorm = 0;

	if (!sum || !mean) {
		free(sum);
		free(mean);
		return -ENOMEM;
	}
	for (uint32_t i = 0; i < g->n; i++) {
		const float *v = row(g, i);
		double norm = 0;

		for (uint32_t j = 0; j < dim; j++) {
			if (!isfinite(v[j])) {
				free(sum);
				free(mean);
				return ES_E_VECS_NONFINITE;
			}
			sum[j] += v[j];
			norm += (double)v[j] * v[j];
		}
		if (norm > maxnorm)
			maxnorm = norm;
	}
	for (uint32_t j = 0; j < dim; j++)
		mean[j] = (float)(sum[j] / g->n);
	for (uint32_t i = 0; i < g->n; i++) {
		float d = l2(mean, row(g, i), dim);

		if (d < bestd) {
			bestd = d;
			best = i;
		}
	}
	g->entry = best;
	if (maxnorm > FLT_MAX)
		maxnorm = FLT_MAX;
	b->shift = b->p->metric == ES_METRIC_L2	      ? 0.0f
		   : b->p->metric == ES_METRIC_COSINE ? 1.0f
						      : (float)maxnorm;
	free(sum);
	free(mean);
	return 0;
}

/* The start graph: min(R, n - 1) distinct random neighbours per row. */
static void random_graph(struct vb_ctx *b)
{
	struct vamana_graph *g = b->g;
	struct vb_worker *w = &b->w[0];
	uint32_t n = g->n, k = g->R < n - 1 ? g->R : n - 1;
	uint64_t seed = b->p->seed;

	for (uint32_t i = 0; i < n; i++) {
		uint32_t *out = g->adj + (size_t)i * g->R, gen, m = 0;

		gen = next_gen(w, n);
		/* Floyd's sample of k from [0, n - 1), shifted past i. */
		for (uint32_t j = n - 1 - k; j < n - 1; j++) {
			uint32_t t = rand_below(&seed, j + 1);
			uint32_t v = t < i ? t : t + 1;

			if (w->stamp[v] == gen) {
				t = j;
				v = t < i ? t : t + 1;
			}
			w->stamp[v] = gen;
			out[m++] = v;
		}
		g->degree[i] = m;
	}
}

unsigned vamana_build_threads(const struct es_vamana_build_params *p)
{
	long t = p->threads ? (long)p->threads : sysconf(_SC_NPROCESSORS_ONLN);

	if (t < 1)
		t = 1;
	return t > MAX_THREADS ? MAX_THREADS : (unsigned)t;
}

int vamana_build_params_check(const struct es_vamana_build_params *p)
{
	if (!p || p->R < 1 || p->R > MAX_R || p->L < 1 ||
	    p->L > ES_VAMANA_MAX_L || !isfinite(p->alpha) || p->alpha < 1.0f)
		return ES_E_VAMANA_PARAM;
	if (p->metric != ES_METRIC_L2 && p->metric != ES_METRIC_IP &&
	    p->metric != ES_METRIC_COSINE)
		return ES_E_VAMANA_PARAM;
	return 0;
}

static void ctx_fini(struct vb_ctx *b)
{
	for (unsigned i = 0; b->w && i < b->nw; i++)
		worker_fini(&b->w[i]);
	free(b->w);
	free(b->bout);
	free(b->bdeg);
	free(b->edges);
	free(b->etmp);
	free(b->runs);
	free(b->order);
	free(b->bfs);
}

static int ctx_init(struct vb_ctx *b, struct vamana_graph *g,
		    const struct es_vamana_build_params *p)
{
	uint32_t n = g->n, R = g->R;
	size_t ecap;

	b->g = g;
	b->p = p;
	b->dist = es_distance_get(p->metric);
	b->L = p->L;
	b->bcap = n / BATCH_DIV ? n / BATCH_DIV : 1;
	if ((uint64_t)b->bcap * R >= UINT32_MAX)
		b->bcap = (UINT32_MAX - 1) / R;
	ecap = (size_t)b->bcap * R;
	b->exp_cap = expand_cap(p->L, R);
	b->pool_cap =
	    b->exp_cap + R > R + b->bcap ? b->exp_cap + R : R + b->bcap;
	b->nw = vamana_build_threads(p);
	b->w = calloc(b->nw, sizeof(*b->w));
	b->bout = malloc(ecap * sizeof(*b->bout));
	b->bdeg = malloc(b->bcap * sizeof(*b->bdeg));
	b->edges = malloc(ecap * sizeof(*b->edges));
	b->etmp = malloc(ecap * sizeof(*b->etmp));
	b->runs = malloc((ecap + 1) * sizeof(*b->runs));
	b->order = malloc((size_t)n * sizeof(*b->order));
	b->bfs = malloc(((size_t)n + n / ORDER_BLOCK + 1) * sizeof(*b->bfs));
	if (!b->w || !b->bout || !b->bdeg || !b->edges || !b->etmp ||
	    !b->runs || !b->order || !b->bfs)
		goto err;
	for (unsigned i = 0; i < b->nw; i++) {
		if (worker_init(&b->w[i], n, p->L, R, b->pool_cap) < 0) {
			b->nw = i;
			goto err;
		}
		b->w[i].b = b;
	}
	return 0;
err:
	ctx_fini(b);
	return -ENOMEM;
}

void vamana_graph_free(struct vamana_graph *g)
{
	if (!g)
		return;
	free(g->adj);
	free(g->degree);
	g->adj = NULL;
	g->degree = NULL;
}

int vamana_graph_build(struct vamana_graph *g, const float *vectors, uint32_t n,
		       uint32_t dim, const struct es_vamana_build_params *p)
{
	struct vb_ctx b;
	int64_t last = 0;
	int rc = vamana_build_params_check(p);

	memset(g, 0, sizeof(*g));
	memset(&b, 0, sizeof(b));
	if (rc == 0 && (dim == 0 || (n && !vectors)))
		rc = ES_E_VAMANA_PARAM;
	if (rc < 0)
		return rc;
	g->vectors = vectors;
	g->n = n;
	g->dim = dim;
	g->R = p->R;
	g->adj = malloc((size_t)(n ? n : 1) * p->R * sizeof(*g->adj));
	g->degree = calloc(n ? n : 1, sizeof(*g->degree));
	if (!g->adj || !g->degree) {
		rc = -ENOMEM;
		goto err;
	}
	if (n == 0) {
		if (p->progress)
			p->progress(p->progress_arg, 0, 0);
		return 0;
	}
	rc = ctx_init(&b, g, p);
	if (rc < 0)
		goto err;
	rc = scan(&b);
	if (rc < 0)
		goto err_ctx;
	random_graph(&b);
	pool_start(&b);
	run_pass(&b, 0, 1.0f, &last);
	run_pass(&b, 1, p->alpha, &last);
	pool_stop(&b);
	ctx_fini(&b);
	if (vamana_build_stopped(p)) {
		vamana_graph_free(g);
		return -ECANCELED;
	}
	return 0;
err_ctx:
	ctx_fini(&b);
err:
	vamana_graph_free(g);
	return rc;
}

/* ---- the walker (tests) ------------------------------------------------ */

struct vamana_walker {
	struct vb_worker w;
	const struct vamana_graph *g;
	es_distance_fn dist;
	uint32_t L, exp_cap;
};

int vamana_walker_create(struct vamana_walker **wp,
			 const struct vamana_graph *g, enum es_metric metric,
			 uint32_t L)
{
	struct vamana_walker *wk;

	*wp = NULL;
	if (L < 1 || L > ES_VAMANA_MAX_L ||
	    (metric != ES_METRIC_L2 && metric != ES_METRIC_IP &&
	     metric != ES_METRIC_COSINE))
		return ES_E_VAMANA_PARAM;
	wk = calloc(1, sizeof(*wk));
	if (!wk)
		return -ENOMEM;
	wk->g = g;
	wk->dist = es_distance_get(metric);
	wk->L = L;
	wk->exp_cap = expand_cap(L, g->R);
	if (worker_init(&wk->w, g->n ? g->n : 1, L, g->R, wk->exp_cap) < 0) {
		free(wk);
		return -ENOMEM;
	}
	*wp = wk;
	return 0;
}

void vamana_walker_destroy(struct vamana_walker *wk)
{
	if (!wk)
		return;
	worker_fini(&wk->w);
	free(wk);
}

uint32_t vamana_walker_search(struct vamana_walker *wk, const float *query,
			      uint32_t k, uint32_t *rows, float *dists)
{
	uint32_t m;

	if (wk->g->n == 0)
		return 0;
	search(wk->g, wk->dist, &wk->w, query, wk->L, wk->exp_cap);
	m = k < wk->w.nlist ? k : wk->w.nlist;
	for (uint32_t i = 0; i < m; i++) {
		rows[i] = wk->w.list[i].id;
		if (dists)
			dists[i] = wk->w.list[i].d;
	}
	return m;
}
