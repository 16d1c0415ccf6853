/*
 * edgesync index search: measures what a user of the index sees, per
 * search list L: recall@k against exact ground truth (rows of the
 * segment), queries per second, mean and p99 latency, and the 4 KiB
 * sectors read per query. With --threads T, T threads each own a
 * searcher and a contiguous share of the queries and run them one at a
 * time; QPS is the number of queries over the wall time from the first
 * thread's start to the last one's end. Hits are stored and scored after
 * the clock stops, so recall costs the timed loop nothing.
 *
 * Regimes: --memory maps the index; the default is the disk regime (PQ
 * codes in memory, node sectors read through io_uring, or pread with
 * --pread, the 1/CACHE_DIV of the nodes nearest the entry cached unless
 * --cache says otherwise); --cold adds O_DIRECT and drops the index file
 * from the page cache before each L.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "cli_index.h"
#include "edgesync/store_error.h"
#include "edgesync/vamana.h"
#include "edgesync/vecs_file.h"

#define MAX_LS	  256
#define CACHE_DIV 20 /* the default cache: 5% of the nodes */

static const char search_usage[] =
    "edgesync index search FILE.vamana [--segment SEG.ndvs] "
    "--queries Q.fvecs [--gt GT.ivecs] [--k 10] [--L 10,20,40,80] "
    "[--W 4] [--threads 1] [--limit N] [--memory | [--cold] [--pread] "
    "[--cache N]] [--warmup] [--json]";

/* Parses "10,20,40" into at most MAX_LS values of [min, max]. */
static int parse_list(const char *opt, const char *text, uint64_t min,
		      uint64_t max, uint32_t *vals, unsigned *n)
{
	char *copy = strdup(text), *save = NULL, *tok;
	int rc = copy ? 0 : -1;

	*n = 0;
	for (tok = copy ? strtok_r(copy, ",", &save) : NULL; tok && !rc;
	     tok = strtok_r(NULL, ",", &save)) {
		uint64_t v;

		if (*n == MAX_LS) {
			cli_error("%s: at most %d values", opt, MAX_LS);
			rc = -1;
		} else if (cli_index_parse_range(opt, tok, min, max, &v)) {
			rc = -1;
		} else {
			vals[(*n)++] = (uint32_t)v;
		}
	}
	if (!rc && *n == 0) {
		cli_error("%s '%s': a comma-separated list is needed", opt,
			  text);
		rc = -1;
	}
	free(copy);
	return rc;
}

/* ---- search: options and inputs -------------------------------------- */

struct search_opts {
	const char *index, *segment, *queries, *gt;
	uint64_t k, W, threads, cache, limit;
	uint32_t Ls[MAX_LS];
	unsigned nL;
	int cold, memory, pread, warmup, json;
	int cache_set; /* --cache given */
};

static const char search_help[] =
    "Runs the queries against the index for each search list L and "
    "prints recall@k\n(with --gt: ground truth rows of the segment, "
    "at least k per query), queries\nper second, mean and p99 latency "
    "in microseconds and 4 KiB reads per query.\n"
    "  --memory    map the index (memory regime); the default is the "
    "disk regime\n"
    "  --cold      disk regime with O_DIRECT, the index dropped from "
    "the page cache\n"
    "  --pread     disk regime without io_uring\n"
    "  --cache N   keep the N nodes nearest the entry in memory (disk "
    "regime;\n              default: 5% of the nodes; 0: none)\n"
    "  --W N       reads in flight per query (1..64, default 4)\n"
    "  --threads T T threads, a searcher each, the queries split "
    "between them\n"
    "  --limit N   use only the first N queries\n"
    "  --warmup    run every query once, untimed, before measuring\n"
    "  --segment   refuse the index unless it was built from that "
    "segment\n"
    "  --json      one JSON object per L: L, recall, qps, mean_us, "
    "p99_us,\n              reads_per_query, then more keys";

static int search_opt(int c, struct search_opts *o)
{
	switch (c) {
	case 's':
		o->segment = optarg;
		return 0;
	case 'q':
		o->queries = optarg;
		return 0;
	case 'g':
		o->gt = optarg;
		return 0;
	case 'k':
		return cli_index_parse_range("--k", optarg, 1, ES_VAMANA_MAX_K,
					     &o->k);
	case 'L':
		return parse_list("--L", optarg, 1, ES_VAMANA_MAX_L, o->Ls,
				  &o->nL);
	case 'W':
		return cli_index_parse_range("--W", optarg, 1, ES_VAMANA_MAX_W,
					     &o->W);
	case 't':
		return cli_index_parse_range(
		    "--threads", optarg, 1, CLI_INDEX_MAX_THREADS, &o->threads);
	case 'c':
		o->cache_set = 1;
		return cli_index_parse_range("--cache", optarg, 0, UINT32_MAX,
					     &o->cache);
	case 'n':
		return cli_index_parse_range("--limit", optarg, 1, UINT64_MAX,
					     &o->limit);
	case 'C':
		o->cold = 1;
		return 0;
	case 'M':
		o->memory = 1;
		return 0;
	case 'P':
		o->pread = 1;
		return 0;
	case 'w':
		o->warmup = 1;
		return 0;
	case 'j':
		o->json = 1;
		return 0;
	}
	return -1;
}

static int parse_search(int argc, char **argv, struct search_opts *o)
{
	static const struct option opts[] = {
	    {"segment", required_argument, NULL, 's'},
	    {"queries", required_argument, NULL, 'q'},
	    {"gt", required_argument, NULL, 'g'},
	    {"k", required_argument, NULL, 'k'},
	    {"L", required_argument, NULL, 'L'},
	    {"W", required_argument, NULL, 'W'},
	    {"threads", required_argument, NULL, 't'},
	    {"cache", required_argument, NULL, 'c'},
	    {"limit", required_argument, NULL, 'n'},
	    {"cold", no_argument, NULL, 'C'},
	    {"memory", no_argument, NULL, 'M'},
	    {"pread", no_argument, NULL, 'P'},
	    {"warmup", no_argument, NULL, 'w'},
	    {"json", no_argument, NULL, 'j'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c == 'h') {
			printf("usage: %s\n\n%s\n", search_usage, search_help);
			return CLI_OK;
		}
		if (c == '?' || c == ':')
			return cli_usage(search_usage, NULL);
		if (search_opt(c, o))
			return CLI_USAGE;
	}
	if (argc - optind != 1)
		return cli_usage(search_usage, "one index file is needed");
	o->index = argv[optind];
	if (!o->queries)
		return cli_usage(search_usage, "--queries is needed");
	if (o->memory && (o->cold || o->pread || o->cache_set))
		return cli_usage(search_usage,
				 "--cold, --pread and --cache "
				 "are for the disk regime, not --memory");
	for (unsigned i = 0; i < o->nL; i++)
		if (o->Ls[i] < o->k)
			return cli_usage(search_usage,
					 "--L %u: must be at least --k (%llu)",
					 o->Ls[i], (unsigned long long)o->k);
	return -1;
}

/* What search reads before it starts: queries and ground truth. */
struct search_input {
	float *queries;
	uint64_t nq;
	int32_t *gt; /* nq rows of gt_dim, or NULL */
	uint32_t gt_dim;
};

static int load_queries(const struct search_opts *o,
			const struct es_vamana_info *info,
			struct search_input *in)
{
	uint64_t n;
	uint32_t dim;
	void *data;
	int rc = es_vecs_load(o->queries, ES_VECS_FLOAT, &data, &dim, &n);

	if (rc < 0) {
		cli_error("%s: %s", o->queries, es_store_strerror(rc));
		return CLI_FAIL;
	}
	in->queries = data;
	if (dim != info->dim) {
		cli_error("%s: queries have dim %u, the index has dim %u",
			  o->queries, dim, info->dim);
		return CLI_FAIL;
	}
	in->nq = o->limit && o->limit < n ? o->limit : n;
	return CLI_OK;
}

/* Ground truth: at least nq rows of at least k rows of the index each. */
static int load_gt(const struct search_opts *o,
		   const struct es_vamana_info *info, struct search_input *in)
{
	uint64_t n;
	void *data;
	int rc = es_vecs_load(o->gt, ES_VECS_INT, &data, &in->gt_dim, &n);

	if (rc < 0) {
		cli_error("%s: %s", o->gt, es_store_strerror(rc));
		return CLI_FAIL;
	}
	in->gt = data;
	if (n < in->nq) {
		cli_error("%s: %llu ground truth rows for %llu queries", o->gt,
			  (unsigned long long)n, (unsigned long long)in->nq);
		return CLI_FAIL;
	}
	if (in->gt_dim < o->k) {
		cli_error("%s: %u neighbours per query, --k %llu needs at "
			  "least as many",
			  o->gt, in->gt_dim, (unsigned long long)o->k);
		return CLI_FAIL;
	}
	for (uint64_t q = 0; q < in->nq; q++) {
		for (uint64_t j = 0; j < o->k; j++) {
			int32_t r = in->gt[q * in->gt_dim + j];

			if (r < 0 || (uint64_t)r >= info->num_nodes) {
				cli_error("%s: query %llu: neighbour %d is "
					  "not a row of the index (%llu "
					  "rows)",
					  o->gt, (unsigned long long)q, r,
					  (unsigned long long)info->num_nodes);
				return CLI_FAIL;
			}
		}
	}
	return CLI_OK;
}

/* ---- search: the timed runs ------------------------------------------ */

/* One L: what the threads share, and what they bring back. */
struct search_run {
	const struct search_input *in;
	uint32_t dim, k, L, W;
	struct es_vamana_hit *hits; /* nq x k */
	uint32_t *nhits;	    /* nq */
	double *lat_us;		    /* nq */
};

struct search_worker {
	struct search_run *run;
	struct es_vamana_searcher *s;
	uint64_t first, n;
	double t0, t1;
	uint64_t reads, hops, cmps;
	uint64_t failed; /* query that failed, when rc < 0 */
	int rc;
	pthread_t tid;
};

static void *search_thread(void *arg)
{
	struct search_worker *w = arg;
	struct search_run *r = w->run;

	w->reads = w->hops = w->cmps = 0;
	w->rc = 0;
	w->t0 = cli_now();
	for (uint64_t q = w->first; q < w->first + w->n; q++) {
		struct es_vamana_stats st = {0};
		double t = cli_now();
		int got =
		    es_vamana_search(w->s, r->in->queries + q * r->dim, r->k,
				     r->L, r->W, r->hits + q * r->k, &st);

		r->lat_us[q] = (cli_now() - t) * 1e6;
		if (got < 0) {
			w->rc = got;
			w->failed = q;
			break;
		}
		r->nhits[q] = (uint32_t)got;
		w->reads += st.reads;
		w->hops += st.hops;
		w->cmps += st.cmps;
	}
	w->t1 = cli_now();
	return NULL;
}

/*
 * Runs every query once with nw workers; the wall time is from the
 * first start to the last end. Returns 0 or the first failure.
 */
static int run_workers(struct search_worker *w, unsigned nw, double *wall)
{
	double t0 = 0, t1 = 0;
	unsigned started;
	int rc = 0;

	for (started = 0; started < nw; started++) {
		rc = -pthread_create(&w[started].tid, NULL, search_thread,
				     &w[started]);
		if (rc < 0) {
			cli_error("cannot start a search thread: %s",
				  strerror(-rc));
			break;
		}
	}
	for (unsigned i = 0; i < started; i++) {
		pthread_join(w[i].tid, NULL);
		if (i == 0 || w[i].t0 < t0)
			t0 = w[i].t0;
		if (i == 0 || w[i].t1 > t1)
			t1 = w[i].t1;
		if (w[i].rc < 0 && rc == 0) {
			cli_error("query %llu: %s",
				  (unsigned long long)w[i].failed,
				  es_store_strerror(w[i].rc));
			rc = w[i].rc;
		}
	}
	*wall = t1 - t0;
	return rc;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return (x > y) - (x < y);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* Mean over the queries of (hits among the first k of gt) / k. */
static double recall_at_k(const struct search_run *r)
{
	const struct search_input *in = r->in;
	uint32_t *a = malloc(2 * sizeof(uint32_t) * r->k), *b = a + r->k;
	double sum = 0;

	if (!a)
		return NAN;
	for (uint64_t q = 0; q < in->nq; q++) {
		uint32_t n = r->nhits[q], found = 0;

		for (uint32_t j = 0; j < n; j++)
			a[j] = r->hits[q * r->k + j].row;
		for (uint32_t j = 0; j < r->k; j++)
			b[j] = (uint32_t)in->gt[q * in->gt_dim + j];
		qsort(a, n, sizeof(*a), cmp_u32);
		qsort(b, r->k, sizeof(*b), cmp_u32);
		for (uint32_t i = 0, j = 0; i < n && j < r->k;) {
			if (a[i] == b[j]) {
				found++;
				i++;
				j++;
			} else if (a[i] < b[j]) {
				i++;
			} else {
				j++;
			}
		}
		sum += (double)found / r->k;
	}
	free(a);
	return sum / (double)in->nq;
}

/* The figures of one L. */
struct search_result {
	uint32_t L;
	double recall, qps, mean_us, p99_us;
	double reads, ios, hops, cmps; /* per query */
};

static void summarize(struct search_run *r, struct search_worker *w,
		      unsigned nw, double wall, uint32_t spn,
		      struct search_result *res)
{
	uint64_t nq = r->in->nq, reads = 0, hops = 0, cmps = 0;
	double sum = 0;

	for (unsigned i = 0; i < nw; i++) {
		reads += w[i].reads;
		hops += w[i].hops;
		cmps += w[i].cmps;
	}
	for (uint64_t q = 0; q < nq; q++)
		sum += r->lat_us[q];
	qsort(r->lat_us, nq, sizeof(double), cmp_double);
	res->L = r->L;
	res->recall = r->in->gt ? recall_at_k(r) : NAN;
	res->qps = wall > 0 ? (double)nq / wall : 0;
	res->mean_us = sum / (double)nq;
	res->p99_us = r->lat_us[(uint64_t)ceil(0.99 * (double)nq) - 1];
	res->ios = (double)reads / (double)nq;
	res->reads = res->ios * spn;
	res->hops = (double)hops / (double)nq;
	res->cmps = (double)cmps / (double)nq;
}

/* ---- search: output --------------------------------------------------- */

struct search_ctx {
	const struct search_opts *o;
	struct es_vamana *v;
	const struct es_vamana_info *info;
	const char *regime, *io;
	unsigned nw;
};

static void print_header(const struct search_ctx *c,
			 const struct search_input *in)
{
	const struct search_opts *o = c->o;

	printf("%s: %llu nodes of dim %u, R %u, %s; %s regime (%s%s), "
	       "cache %llu\n%llu queries, k %llu, W %llu, %u thread%s\n\n",
	       o->index, (unsigned long long)c->info->num_nodes, c->info->dim,
	       c->info->R, es_metric_name(c->info->metric), c->regime, c->io,
	       o->cold ? ", O_DIRECT, cold" : "", (unsigned long long)o->cache,
	       (unsigned long long)in->nq, (unsigned long long)o->k,
	       (unsigned long long)o->W, c->nw, c->nw == 1 ? "" : "s");
	printf("%6s %9s %11s %10s %10s %9s %8s\n", "L", "recall", "QPS",
	       "mean us", "p99 us", "reads/q", "hops/q");
}

static void print_result(const struct search_ctx *c,
			 const struct search_input *in,
			 const struct search_result *r)
{
	const struct search_opts *o = c->o;

	if (!o->json) {
		if (isnan(r->recall))
			printf("%6u %9s", r->L, "-");
		else
			printf("%6u %9.4f", r->L, r->recall);
		printf(" %11.1f %10.1f %10.1f %9.2f %8.1f\n", r->qps,
		       r->mean_us, r->p99_us, r->reads, r->hops);
		return;
	}
	printf("{\"L\":%u,\"recall\":", r->L);
	if (isnan(r->recall))
		printf("null");
	else
		printf("%.6f", r->recall);
	printf(",\"qps\":%.2f,\"mean_us\":%.2f,\"p99_us\":%.2f,"
	       "\"reads_per_query\":%.3f,\"k\":%llu,\"W\":%llu,"
	       "\"threads\":%u,\"queries\":%llu,\"regime\":\"%s\","
	       "\"io\":\"%s\",\"cold\":%s,\"cache\":%llu,"
	       "\"ios_per_query\":%.3f,\"hops_per_query\":%.2f,"
	       "\"cmps_per_query\":%.1f}\n",
	       r->qps, r->mean_us, r->p99_us, r->reads,
	       (unsigned long long)o->k, (unsigned long long)o->W, c->nw,
	       (unsigned long long)in->nq, c->regime, c->io,
	       o->cold ? "true" : "false", (unsigned long long)o->cache, r->ios,
	       r->hops, r->cmps);
	fflush(stdout);
}

/* ---- search: the command ---------------------------------------------- */

static void drop_cache(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd >= 0) {
		posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
		close(fd);
	}
}

/* Creates nw searchers and splits the nq queries between them. */
static int make_workers(struct es_vamana *v, struct search_worker *w,
			unsigned nw, uint64_t nq)
{
	for (unsigned i = 0; i < nw; i++) {
		int rc = es_vamana_searcher_create(v, &w[i].s);

		if (rc < 0) {
			cli_error("cannot create a searcher: %s",
				  es_store_strerror(rc));
			return rc;
		}
		w[i].first = nq * i / nw;
		w[i].n = nq * (i + 1) / nw - w[i].first;
	}
	return 0;
}

/* Runs every L of the options; prints a line for each. */
static int run_all(const struct search_ctx *c, struct search_input *in,
		   struct search_worker *w)
{
	const struct search_opts *o = c->o;
	uint32_t spn = cli_index_sectors_per_node(c->info);
	struct search_run r = {
	    .in = in,
	    .dim = c->info->dim,
	    .k = (uint32_t)o->k,
	    .W = (uint32_t)o->W,
	};
	struct search_result res;
	double wall;
	int rc = -ENOMEM;

	r.hits = calloc(in->nq * o->k, sizeof(*r.hits));
	r.nhits = calloc(in->nq, sizeof(*r.nhits));
	r.lat_us = calloc(in->nq, sizeof(*r.lat_us));
	if (!r.hits || !r.nhits || !r.lat_us) {
		cli_error("%s", strerror(ENOMEM));
		goto out;
	}
	for (unsigned i = 0; i < c->nw; i++)
		w[i].run = &r;
	if (o->warmup) {
		r.L = o->Ls[o->nL - 1];
		rc = run_workers(w, c->nw, &wall);
		if (rc < 0)
			goto out;
	}
	if (!o->json)
		print_header(c, in);
	for (unsigned i = 0; i < o->nL; i++) {
		r.L = o->Ls[i];
		if (o->cold)
			drop_cache(o->index);
		rc = run_workers(w, c->nw, &wall);
		if (rc < 0)
			goto out;
		summarize(&r, w, c->nw, wall, spn, &res);
		print_result(c, in, &res);
	}
	rc = 0;
out:
	free(r.hits);
	free(r.nhits);
	free(r.lat_us);
	return rc;
}

static unsigned search_flags(const struct search_opts *o)
{
	if (o->memory)
		return ES_VAMANA_OPEN_MEMORY;
	return (o->cold ? ES_VAMANA_OPEN_DIRECT : 0) |
	       (o->pread ? ES_VAMANA_OPEN_PREAD : 0);
}

/*
 * Opens the index. Without --cache the disk regime caches 1/CACHE_DIV of
 * the nodes, a number the header gives: the first open, which reads no
 * node, learns it and a second one fills the cache.
 */
static int open_for_search(struct search_opts *o, struct es_vamana **vp,
			   struct es_vamana_info *info)
{
	unsigned flags = search_flags(o);
	int rc = es_vamana_open(vp, o->index, flags, (uint32_t)o->cache, info);

	if (rc < 0 || o->memory || o->cache_set)
		return rc;
	o->cache = info->num_nodes / CACHE_DIV;
	if (o->cache == 0)
		return 0;
	es_vamana_close(*vp);
	return es_vamana_open(vp, o->index, flags, (uint32_t)o->cache, info);
}

static int search_with(struct search_ctx *c, struct search_input *in)
{
	struct search_worker *w;
	int rc;

	rc = load_queries(c->o, c->info, in);
	if (rc == CLI_OK && c->o->gt)
		rc = load_gt(c->o, c->info, in);
	if (rc != CLI_OK)
		return rc;
	c->nw = (unsigned)c->o->threads;
	if (c->nw > in->nq)
		c->nw = (unsigned)in->nq;
	c->regime = c->o->memory ? "memory" : "disk";
	c->io = c->o->memory		     ? "mmap"
		: es_vamana_uses_uring(c->v) ? "io_uring"
					     : "pread";
	w = calloc(c->nw, sizeof(*w));
	if (!w) {
		cli_error("%s", strerror(ENOMEM));
		return CLI_FAIL;
	}
	rc = make_workers(c->v, w, c->nw, in->nq);
	if (rc == 0)
		rc = run_all(c, in, w);
	for (unsigned i = 0; i < c->nw; i++)
		if (w[i].s)
			es_vamana_searcher_destroy(w[i].s);
	free(w);
	return rc < 0 ? CLI_FAIL : CLI_OK;
}

int cli_index_search(int argc, char **argv)
{
	struct search_opts o = {
	    .k = 10,
	    .W = 4,
	    .threads = 1,
	    .Ls = {10, 20, 40, 80},
	    .nL = 4,
	};
	struct search_input in = {.queries = NULL};
	struct search_ctx c = {.o = &o};
	struct es_vamana_info info;
	int rc = parse_search(argc, argv, &o);

	if (rc >= 0)
		return rc;
	if (o.cold)
		drop_cache(o.index);
	rc = open_for_search(&o, &c.v, &info);
	if (rc < 0) {
		cli_index_report_bad(o.index, rc);
		return CLI_FAIL;
	}
	c.info = es_vamana_get_info(c.v);
	rc = o.segment ? cli_index_check_segment(o.index, c.info, o.segment, 0)
		       : CLI_OK;
	if (rc == CLI_OK)
		rc = search_with(&c, &in);
	es_vamana_close(c.v);
	free(in.queries);
	free(in.gt);
	return rc;
}
