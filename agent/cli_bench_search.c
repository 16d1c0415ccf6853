/*
 * edgesync bench search (cli_bench_api.h says what and how): QPS and
 * latency through the agent's socket and, with --inproc, through an
 * engine in this process.
 */
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "cli_bench_api.h"
#include "edgesync/client.h"
#include "edgesync/store_error.h"
#include "edgesync/vecs_file.h"
#include "engine.h"

/* ---- search ------------------------------------------------------------ */

static const char search_usage[] =
    "edgesync bench search --queries Q.fvecs [-s SOCKET --collection "
    "NAME]\n       [--inproc DIR --base BASE.fvecs [--metric l2]] "
    "[--truth GT.ivecs]\n       [--clients 1,8] [--k 10] [--L 64] "
    "[--seconds 3] [--json]";
static const char search_help[] =
    "Runs the queries of --queries for --seconds per run from each "
    "number of\n--clients at once (a thread each, cycling through the "
    "queries) and prints\nQPS and the p50 and p99 latency of one "
    "search, for each path given:\n\n"
    "  --collection NAME  through the agent's socket (es_client_search, "
    "a\n                     connection per client) on its collection "
    "NAME\n"
    "  --inproc DIR       es_engine_search on an engine opened in this "
    "process on\n                     DIR (absent or empty; left for "
    "you to remove), loaded\n                     with the rows of "
    "--base (ids 0, 1, ..., as `edgesync\n                     import` "
    "gives), flushed and indexed before the clock\n"
    "                     starts; the agent's defaults for the index\n\n"
    "With both, load the agent's collection from the same --base, and "
    "the ratio\nof the two is the socket's overhead; the metric is then "
    "the collection's.\nA pass over the queries on one client warms "
    "each path first; its answers\ngive recall@k against --truth (row "
    "numbers of --base, as texmex has them)\nand how often the two "
    "paths gave the same ids.";

struct search_result {
	const char *path;
	unsigned clients;
	double seconds, qps, p50_us, p99_us;
	uint64_t done;
};

/* One search on j's path; the hits' ids to ids when not NULL. */
static int job_search(struct job *j, const float *q, uint64_t *ids)
{
	uint32_t k = (uint32_t)j->o->k, L = (uint32_t)j->o->L;
	int n;

	if (j->engine) {
		n = es_engine_search(j->engine, j->name, q, j->dim, k, L,
				     j->ehits);
		for (int i = 0; ids && i < n; i++)
			ids[i] = j->ehits[i].id;
	} else {
		n = es_client_search(j->client, j->name, q, j->dim, k, L,
				     j->chits);
		for (int i = 0; ids && i < n; i++)
			ids[i] = j->chits[i].id;
	}
	for (int i = n < 0 ? 0 : n; ids && i < (int)k; i++)
		ids[i] = UINT64_MAX;
	if (n < 0)
		bench_job_fail(j, n, "search");
	return n;
}

/* Connects j's client (the socket path) and sizes its hits. */
static int job_connect(struct job *j)
{
	int rc;

	j->chits = calloc(j->o->k, sizeof(*j->chits));
	j->ehits = calloc(j->o->k, sizeof(*j->ehits));
	if (!j->chits || !j->ehits) {
		bench_job_fail(j, -ENOMEM, "search");
		return -ENOMEM;
	}
	if (j->engine)
		return 0;
	rc = es_client_open(&j->client, j->o->socket, 0);
	if (rc < 0) {
		j->client = NULL;
		snprintf(j->err, sizeof(j->err), "%s: %s", j->o->socket,
			 es_client_strerror(rc));
		j->rc = rc;
	}
	return rc;
}

static void *search_client(void *arg)
{
	struct job *j = arg;
	int rc = job_connect(j);
	uint64_t q = j->first;
	double start, t;

	if (bench_gate_pass(j->gate) < 0 || rc < 0)
		goto out;
	start = cli_now();
	for (;;) {
		t = cli_now();
		if (t - start >= j->deadline)
			break;
		if (job_search(j, j->rows + q * j->dim, NULL) < 0)
			break;
		if (bench_lat_add(&j->lat, cli_now() - t) < 0) {
			bench_job_fail(j, -ENOMEM, "search");
			break;
		}
		j->done++;
		q = q + 1 == j->count ? 0 : q + 1;
	}
	j->end = cli_now();
out:
	if (j->client)
		es_client_close(j->client);
	j->client = NULL;
	return NULL;
}

struct search_set {
	float *queries;
	uint64_t nq;
	uint32_t dim;
	int32_t *truth;
	uint32_t truth_dim;
	uint64_t *ids[2]; /* the warm-up answers of each path, nq x k */
};

/* One pass over the queries on one client; the ids into ids. */
static int search_warm(const struct api_opts *o, struct job *proto,
		       const struct search_set *s, uint64_t *ids)
{
	struct job j = *proto;
	int rc = job_connect(&j);

	for (uint64_t q = 0; rc >= 0 && q < s->nq; q++)
		rc = job_search(&j, s->queries + q * s->dim, ids + q * o->k);
	if (rc < 0)
		cli_error("%s", j.err);
	if (j.client)
		es_client_close(j.client);
	free(j.chits);
	free(j.ehits);
	return rc < 0 ? rc : 0;
}

/* Warm-up, then one timed run per number of clients, into r. */
static int search_path(const struct api_opts *o, const char *path,
		       struct job *proto, struct search_set *s, int which,
		       struct search_result *r)
{
	struct job jobs[MAX_CLIENTS];
	int rc = search_warm(o, proto, s, s->ids[which]);

	for (int i = 0; rc == 0 && i < o->nruns; i++) {
		unsigned c = o->clients[i];
		struct lat all = {0};

		for (unsigned t = 0; t < c; t++) {
			jobs[t] = *proto;
			jobs[t].first = s->nq * t / c;
		}
		rc = bench_run_jobs(jobs, c, search_client, &r[i].seconds);
		if (rc == 0)
			rc = bench_lat_merge(jobs, c, &all);
		r[i].path = path;
		r[i].clients = c;
		r[i].done = 0;
		for (unsigned t = 0; t < c; t++)
			r[i].done += jobs[t].done;
		r[i].qps = (double)r[i].done / r[i].seconds;
		r[i].p50_us = bench_pct(&all, 0.50);
		r[i].p99_us = bench_pct(&all, 0.99);
		free(all.v);
		bench_jobs_free(jobs, c);
	}
	return rc;
}

/* ---- search: the two paths' set-up ------------------------------------- */

static void inproc_log(void *arg, enum es_log_level level, const char *msg)
{
	if (level <= ES_LOG_WARN)
		cli_error("in-process engine: %s", msg);
}

/* 0 when path is absent or an empty directory. */
static int dir_fresh(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *e;
	int rc = 0;

	if (!d)
		return errno == ENOENT ? 0 : -errno;
	while (rc == 0 && (e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			rc = -ENOTEMPTY;
	closedir(d);
	return rc;
}

/* Waits until every segment of the collection has its index. */
static int inproc_wait_index(struct es_engine *e, const char *name)
{
	double until = cli_now() + 600;
	int rc;

	for (;;) {
		struct es_segment_info *segs = NULL;
		size_t n = 0, ready = 0;

		rc = es_engine_segments(e, name, &segs, &n);
		for (size_t i = 0; rc == 0 && i < n; i++)
			ready += segs[i].indexed != 0;
		free(segs);
		if (rc < 0 || (n > 0 && ready == n))
			return rc;
		if (cli_now() > until)
			return -ETIMEDOUT;
		usleep(20000);
	}
}

/* Loads the rows of --base (ids their row numbers), flushes, indexes. */
static int inproc_load(struct es_engine *e, const struct api_opts *o,
		       uint32_t want_dim, enum es_metric metric)
{
	uint64_t count, ids[1000];
	float *rows = NULL;
	uint32_t dim;
	int rc =
	    es_vecs_load(o->base, ES_VECS_FLOAT, (void **)&rows, &dim, &count);

	if (rc < 0) {
		cli_error("%s: %s", o->base, es_store_strerror(rc));
		return rc;
	}
	if (dim != want_dim) {
		cli_error("%s has dim %u, the queries %u", o->base, dim,
			  want_dim);
		free(rows);
		return -EINVAL;
	}
	rc = es_engine_collection_create(e, "bench", dim, metric, 0);
	for (uint64_t r = 0; rc == 0 && r < count; r += 1000) {
		size_t n = count - r < 1000 ? (size_t)(count - r) : 1000;

		for (size_t i = 0; i < n; i++)
			ids[i] = r + i;
		rc = es_engine_insert(e, "bench", ids, rows + r * dim, n, dim);
	}
	if (rc == 0)
		rc = es_engine_flush(e, "bench");
	if (rc == 0)
		rc = inproc_wait_index(e, "bench");
	if (rc < 0)
		cli_error("in-process %s: %s", o->inproc,
			  es_engine_strerror(rc));
	free(rows);
	return rc;
}

/* Opens the in-process engine on a fresh --inproc and loads it. */
static int inproc_open(const struct api_opts *o, uint32_t dim,
		       enum es_metric metric, struct es_engine **ep)
{
	struct es_engine_config c;
	double t = cli_now();
	int rc = dir_fresh(o->inproc);

	if (rc < 0) {
		cli_error("--inproc %s: %s (it must be absent or empty)",
			  o->inproc, strerror(-rc));
		return rc;
	}
	es_engine_config_defaults(&c);
	c.data_dir = o->inproc;
	c.log = inproc_log;
	rc = es_engine_open(ep, &c);
	if (rc < 0) {
		cli_error("in-process %s: %s", o->inproc,
			  es_engine_strerror(rc));
		return rc;
	}
	rc = inproc_load(*ep, o, dim, metric);
	if (rc < 0) {
		es_engine_close(*ep);
		*ep = NULL;
		return rc;
	}
	fprintf(stderr,
		"in-process: %s loaded, flushed and indexed in %.1f s\n",
		o->base, cli_now() - t);
	return 0;
}

/* Checks the agent's collection: its dim, metric, and that it is indexed. */
static int socket_check(const struct api_opts *o, uint32_t dim,
			enum es_metric *metric)
{
	struct es_client_collection k;
	struct es_client *c;
	int rc = es_client_open(&c, o->socket, 0);

	if (rc < 0) {
		cli_error("%s: %s (is the agent running?)", o->socket,
			  es_client_strerror(rc));
		return rc;
	}
	rc = es_client_collection_info(c, o->collection, &k);
	if (rc < 0)
		cli_error("%s: %s", o->collection, bench_client_why(c, rc));
	else if (k.dim != dim)
		cli_error("%s has dim %u, the queries %u", o->collection, k.dim,
			  dim);
	else if (es_metric_parse(k.metric, metric) < 0)
		cli_error("%s: unknown metric '%s'", o->collection, k.metric);
	else if (k.growing || k.indexed < k.segments)
		fprintf(stderr,
			"edgesync: note: %s has %llu vectors not "
			"sealed and %llu segments not indexed: searches scan "
			"them\n",
			o->collection, (unsigned long long)k.growing,
			(unsigned long long)(k.segments - k.indexed));
	if (rc == 0 && (k.dim != dim || es_metric_parse(k.metric, metric)))
		rc = -EINVAL;
	es_client_close(c);
	return rc;
}

/* ---- search: figures --------------------------------------------------- */

/* Recall@k of the warm-up answers ids against the truth; -1 without. */
static double recall(const struct api_opts *o, const struct search_set *s,
		     const uint64_t *ids)
{
	uint64_t hit = 0;

	if (!s->truth || !ids)
		return -1;
	for (uint64_t q = 0; q < s->nq; q++)
		for (uint64_t i = 0; i < o->k; i++)
			for (uint64_t t = 0; t < o->k; t++)
				hit += ids[q * o->k + i] ==
				       (uint64_t)s->truth[q * s->truth_dim + t];
	return (double)hit / (double)(s->nq * o->k);
}

/* Queries the two paths answered with the same ids in the same order. */
static uint64_t same_ids(const struct api_opts *o, const struct search_set *s)
{
	uint64_t same = 0;

	for (uint64_t q = 0; q < s->nq; q++)
		same += !memcmp(s->ids[0] + q * o->k, s->ids[1] + q * o->k,
				o->k * sizeof(uint64_t));
	return same;
}

static void search_print_json(const struct api_opts *o,
			      const struct search_set *s,
			      const struct search_result *r, int n)
{
	printf("{\"bench\":\"search\",\"collection\":");
	cli_json_string(stdout, o->collection ? o->collection : "");
	printf(",\"queries\":%llu,\"dim\":%u,\"k\":%llu,\"L\":%llu,"
	       "\"seconds\":%.1f,\"runs\":[",
	       (unsigned long long)s->nq, s->dim, (unsigned long long)o->k,
	       (unsigned long long)o->L, (double)o->seconds_ms / 1000);
	for (int i = 0; i < n; i++) {
		double rec = recall(o, s, s->ids[r[i].path[0] == 'i']);

		printf("%s{\"path\":\"%s\",\"clients\":%u,\"searches\":%llu,"
		       "\"qps\":%.0f,\"p50_us\":%.1f,\"p99_us\":%.1f",
		       i ? "," : "", r[i].path, r[i].clients,
		       (unsigned long long)r[i].done, r[i].qps, r[i].p50_us,
		       r[i].p99_us);
		if (rec >= 0)
			printf(",\"recall\":%.4f", rec);
		putchar('}');
	}
	printf("]");
	if (o->collection && o->inproc)
		printf(",\"same_ids\":%llu",
		       (unsigned long long)same_ids(o, s));
	printf("}\n");
}

static void search_print(const struct api_opts *o, const struct search_set *s,
			 const struct search_result *r, int n)
{
	int both = o->collection && o->inproc;

	if (o->json) {
		search_print_json(o, s, r, n);
		return;
	}
	printf("search: %llu queries x %u dims, k %llu, L %llu, %.1f s a "
	       "run\n%-11s %7s %10s %9s %9s %10s\n",
	       (unsigned long long)s->nq, s->dim, (unsigned long long)o->k,
	       (unsigned long long)o->L, (double)o->seconds_ms / 1000, "path",
	       "clients", "QPS", "p50 us", "p99 us", "recall@k");
	for (int i = 0; i < n; i++) {
		double rec = recall(o, s, s->ids[r[i].path[0] == 'i']);

		printf("%-11s %7u %10.0f %9.1f %9.1f", r[i].path, r[i].clients,
		       r[i].qps, r[i].p50_us, r[i].p99_us);
		if (rec >= 0)
			printf(" %10.4f\n", rec);
		else
			printf(" %10s\n", "-");
	}
	if (!both)
		return;
	printf("same top-%llu ids on both paths: %llu of %llu queries\n",
	       (unsigned long long)o->k, (unsigned long long)same_ids(o, s),
	       (unsigned long long)s->nq);
	for (int i = 0; i < o->nruns; i++)
		printf("socket overhead, %u client(s): in-process QPS %.0f / "
		       "socket %.0f = %.2fx; p99 %+.1f us\n",
		       r[i].clients, r[i + o->nruns].qps, r[i].qps,
		       r[i + o->nruns].qps / r[i].qps,
		       r[i].p99_us - r[i + o->nruns].p99_us);
}

/* ---- search: the command ----------------------------------------------- */

/* The queries, the truth if any, and room for each path's answers. */
static int search_load(const struct api_opts *o, struct search_set *s)
{
	uint64_t n;
	int rc = es_vecs_load(o->queries, ES_VECS_FLOAT, (void **)&s->queries,
			      &s->dim, &s->nq);

	if (rc < 0) {
		cli_error("%s: %s", o->queries, es_store_strerror(rc));
		return rc;
	}
	if (o->truth) {
		rc = es_vecs_load(o->truth, ES_VECS_INT, (void **)&s->truth,
				  &s->truth_dim, &n);
		if (rc < 0) {
			cli_error("%s: %s", o->truth, es_store_strerror(rc));
			return rc;
		}
		if (n < s->nq || s->truth_dim < o->k) {
			cli_error("%s: %llu rows of %u, not %llu of %llu or "
				  "more",
				  o->truth, (unsigned long long)n, s->truth_dim,
				  (unsigned long long)s->nq,
				  (unsigned long long)o->k);
			return -EINVAL;
		}
	}
	s->ids[0] = calloc(s->nq * o->k, sizeof(uint64_t));
	s->ids[1] = calloc(s->nq * o->k, sizeof(uint64_t));
	if (!s->ids[0] || !s->ids[1]) {
		cli_error("%s", strerror(ENOMEM));
		return -ENOMEM;
	}
	return 0;
}

static int search_check_opts(struct api_opts *o, enum es_metric *metric)
{
	if (!o->queries)
		return cli_usage(search_usage, "--queries is required");
	if (!o->collection && !o->inproc)
		return cli_usage(search_usage,
				 "--collection, --inproc or both are needed");
	if (o->inproc && !o->base)
		return cli_usage(search_usage, "--inproc needs --base");
	if (o->k < 1 || o->k > MAX_K || o->L > 4096)
		return cli_usage(search_usage, "--k is 1..%d, --L 0..4096",
				 MAX_K);
	if (es_metric_parse(o->metric, metric) < 0)
		return cli_usage(search_usage, "--metric is l2, ip or cosine");
	return -1;
}

int cli_bench_search(int argc, char **argv)
{
	struct api_opts o = {.k = 10,
			     .L = 64,
			     .seconds_ms = 3000,
			     .clients = {1, 8},
			     .nruns = 2,
			     .metric = "l2"};
	struct search_result res[2 * MAX_RUNS];
	struct search_set s = {0};
	struct job proto = {0};
	struct es_engine *engine = NULL;
	enum es_metric metric;
	int rc = bench_parse_opts(argc, argv, "scCqBtimkLTj", search_usage,
				  search_help, &o),
	    n = 0;

	if (rc >= 0 || (rc = search_check_opts(&o, &metric)) >= 0)
		return rc;
	rc = search_load(&o, &s);
	if (rc == 0 && o.collection)
		rc = socket_check(&o, s.dim, &metric);
	proto.o = &o;
	proto.dim = s.dim;
	proto.rows = s.queries;
	proto.count = s.nq;
	proto.deadline = (double)o.seconds_ms / 1000;
	if (rc == 0 && o.collection) {
		proto.name = o.collection;
		rc = search_path(&o, "socket", &proto, &s, 0, res);
		n += o.nruns;
	}
	if (rc == 0 && o.inproc)
		rc = inproc_open(&o, s.dim, metric, &engine);
	if (rc == 0 && o.inproc) {
		proto.name = "bench";
		proto.engine = engine;
		rc = search_path(&o, "in-process", &proto, &s, 1, res + n);
		n += o.nruns;
	}
	if (rc == 0)
		search_print(&o, &s, res, n);
	if (engine)
		es_engine_close(engine);
	free(s.queries);
	free(s.truth);
	free(s.ids[0]);
	free(s.ids[1]);
	return rc < 0 ? CLI_FAIL : CLI_OK;
}
