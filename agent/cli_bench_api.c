/*
 * edgesync bench ingest | search: figures of the local API (issue 4),
 * printed, never asserted.
 *
 *   ingest  vectors/s of es_client_insert, batches acknowledged durably,
 *           from each number of clients of --clients (a thread and a
 *           connection each) into a fresh collection per run, dropped
 *           after it.
 *   search  QPS and latency percentiles of es_client_search from each
 *           number of clients against the agent's collection; with
 *           --inproc, the same queries through es_engine_search on an
 *           engine this process opens on a fresh data directory loaded
 *           with --base, whose ratio to the socket's is the socket's cost.
 *
 * Invariants:
 *   1. Generated vectors depend on --seed only: every run, whatever its
 *      number of clients, inserts the same rows with the same ids.
 *   2. The clock starts when every client is connected and waiting at the
 *      gate, and stops when the last one finishes: connecting, data
 *      generation and loading are never timed.
 *   3. Ingest client t of C inserts rows [t*N/C, (t+1)*N/C), ids the row
 *      numbers; search client t starts at query t*Q/C and cycles through
 *      the queries until the run's time is up.
 *   4. The in-process engine never opens a directory with anything in it
 *      (the engine removes files its manifest does not name, so a live
 *      agent's directory would be damaged).
 */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "config.h"
#include "edgesync/client.h"
#include "edgesync/store_error.h"
#include "edgesync/vecs_file.h"
#include "engine.h"

#define MAX_RUNS    8
#define MAX_CLIENTS 256
#define MAX_K	    1024
#define MAX_FLOATS  (1ull << 31)

struct api_opts {
	const char *socket, *collection, *queries, *base, *truth, *inproc;
	const char *from, *metric;
	unsigned clients[MAX_RUNS];
	int nruns, json, keep;
	uint64_t dim, batch, vectors, k, L, seed, seconds_ms;
};

/* ---- timing: per-thread latencies and a start gate --------------------- */

struct lat {
	float *v; /* microseconds */
	size_t n, cap;
};

static int lat_add(struct lat *l, double seconds)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 4096;
		float *v = realloc(l->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		l->v = v;
		l->cap = cap;
	}
	l->v[l->n++] = (float)(seconds * 1e6);
	return 0;
}

static int cmp_float(const void *a, const void *b)
{
	float x = *(const float *)a, y = *(const float *)b;

	return (x > y) - (x < y);
}

/* Nearest-rank percentile p (0..1) of sorted values; 0 when empty. */
static double pct(const struct lat *l, double p)
{
	size_t i = (size_t)(p * (double)l->n + 0.999999);

	if (l->n == 0)
		return 0;
	return l->v[i == 0 ? 0 : (i > l->n ? l->n - 1 : i - 1)];
}

/* Where the clients wait until every one is ready: 1 go, -1 abandon. */
struct gate {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	unsigned ready;
	int state;
};

static int gate_pass(struct gate *g)
{
	int state;

	pthread_mutex_lock(&g->mu);
	g->ready++;
	pthread_cond_broadcast(&g->cv);
	while (g->state == 0)
		pthread_cond_wait(&g->cv, &g->mu);
	state = g->state;
	pthread_mutex_unlock(&g->mu);
	return state;
}

/* One client: its connection (or the engine), its work, what it saw. */
struct job {
	const struct api_opts *o;
	struct gate *gate;
	const char *name; /* collection */
	uint32_t dim;
	const float *rows;     /* ingest: all rows; search: the queries */
	uint64_t first, count; /* ingest: its rows; search: start, total */
	double deadline;       /* search: seconds after the gate opens */
	struct es_client *client;
	struct es_engine *engine; /* the in-process path when set */
	struct es_client_hit *chits;
	struct es_engine_hit *ehits;
	uint64_t done;
	struct lat lat;
	double end;
	int rc;
	char err[160];
};

/* What went wrong with the last request on c. */
static const char *client_why(const struct es_client *c, int rc)
{
	return rc == ES_E_CLIENT_REMOTE ? es_client_error(c)
					: es_client_strerror(rc);
}

static void job_fail(struct job *j, int rc, const char *what)
{
	const char *why =
	    j->engine ? es_engine_strerror(rc) : client_why(j->client, rc);

	j->rc = rc;
	snprintf(j->err, sizeof(j->err), "%s: %s", what, why);
}

/*
 * Runs fn on n jobs at once: each connects, passes the gate, works and
 * sets its end time. *seconds is from the gate to the last end; 0, or the
 * first job's failure (its message printed).
 */
static int run_jobs(struct job *jobs, unsigned n, void *(*fn)(void *),
		    double *seconds)
{
	struct gate g = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0,
			 0};
	pthread_t tid[MAX_CLIENTS];
	unsigned made = 0;
	double t0, end = 0;
	int rc = 0;

	for (; made < n; made++) {
		jobs[made].gate = &g;
		if (pthread_create(&tid[made], NULL, fn, &jobs[made]) != 0)
			break;
	}
	pthread_mutex_lock(&g.mu);
	while (g.ready < made)
		pthread_cond_wait(&g.cv, &g.mu);
	g.state = made == n ? 1 : -1;
	t0 = cli_now();
	pthread_cond_broadcast(&g.cv);
	pthread_mutex_unlock(&g.mu);
	for (unsigned i = 0; i < made; i++) {
		pthread_join(tid[i], NULL);
		if (jobs[i].end > end)
			end = jobs[i].end;
		if (jobs[i].rc < 0 && rc == 0) {
			cli_error("client %u: %s", i + 1, jobs[i].err);
			rc = jobs[i].rc;
		}
	}
	if (made < n && rc == 0) {
		cli_error("cannot start client threads");
		rc = -EAGAIN;
	}
	*seconds = end - t0;
	return rc;
}

/* Merges the jobs' latencies into all, sorted; 0 or -ENOMEM. */
static int lat_merge(struct job *jobs, unsigned n, struct lat *all)
{
	size_t total = 0;

	for (unsigned i = 0; i < n; i++)
		total += jobs[i].lat.n;
	all->v = malloc((total ? total : 1) * sizeof(float));
	if (!all->v)
		return -ENOMEM;
	all->n = 0;
	for (unsigned i = 0; i < n; i++) {
		memcpy(all->v + all->n, jobs[i].lat.v,
		       jobs[i].lat.n * sizeof(float));
		all->n += jobs[i].lat.n;
	}
	qsort(all->v, all->n, sizeof(float), cmp_float);
	return 0;
}

static void jobs_free(struct job *jobs, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		free(jobs[i].lat.v);
		free(jobs[i].chits);
		free(jobs[i].ehits);
		memset(&jobs[i].lat, 0, sizeof(jobs[i].lat));
	}
}

/* ---- options ----------------------------------------------------------- */

/* "1,8" into o->clients; 0 or -1 after a message. */
static int parse_clients(const char *text, struct api_opts *o)
{
	const char *p = text;

	o->nruns = 0;
	while (*p) {
		char *end;
		unsigned long v = strtoul(p, &end, 10);

		if (end == p || v < 1 || v > MAX_CLIENTS ||
		    o->nruns == MAX_RUNS || (*end && *end != ',')) {
			cli_error("--clients: '%s' is not up to %d numbers "
				  "1..%d, comma-separated",
				  text, MAX_RUNS, MAX_CLIENTS);
			return -1;
		}
		o->clients[o->nruns++] = (unsigned)v;
		p = *end ? end + 1 : end;
	}
	return o->nruns ? 0 : -1;
}

static const struct option api_long[] = {
    {"socket", required_argument, NULL, 's'},
    {"clients", required_argument, NULL, 'c'},
    {"dim", required_argument, NULL, 'd'},
    {"batch", required_argument, NULL, 'b'},
    {"vectors", required_argument, NULL, 'n'},
    {"seed", required_argument, NULL, 'S'},
    {"from", required_argument, NULL, 'f'},
    {"keep", no_argument, NULL, 'K'},
    {"collection", required_argument, NULL, 'C'},
    {"queries", required_argument, NULL, 'q'},
    {"base", required_argument, NULL, 'B'},
    {"truth", required_argument, NULL, 't'},
    {"inproc", required_argument, NULL, 'i'},
    {"metric", required_argument, NULL, 'm'},
    {"k", required_argument, NULL, 'k'},
    {"L", required_argument, NULL, 'L'},
    {"seconds", required_argument, NULL, 'T'},
    {"json", no_argument, NULL, 'j'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

/* One option of either command; 0, or -1 after a message. */
static int take_opt(struct api_opts *o, int c, const char *arg)
{
	double secs;
	char *end;

	switch (c) {
	case 's':
		o->socket = arg;
		return 0;
	case 'c':
		return parse_clients(arg, o);
	case 'd':
		return cli_parse_u64("--dim", arg, &o->dim);
	case 'b':
		return cli_parse_u64("--batch", arg, &o->batch);
	case 'n':
		return cli_parse_u64("--vectors", arg, &o->vectors);
	case 'S':
		return cli_parse_u64("--seed", arg, &o->seed);
	case 'k':
		return cli_parse_u64("--k", arg, &o->k);
	case 'L':
		return cli_parse_u64("--L", arg, &o->L);
	case 'f':
		o->from = arg;
		return 0;
	case 'K':
		o->keep = 1;
		return 0;
	case 'C':
		o->collection = arg;
		return 0;
	case 'q':
		o->queries = arg;
		return 0;
	case 'B':
		o->base = arg;
		return 0;
	case 't':
		o->truth = arg;
		return 0;
	case 'i':
		o->inproc = arg;
		return 0;
	case 'm':
		o->metric = arg;
		return 0;
	case 'j':
		o->json = 1;
		return 0;
	case 'T':
		secs = strtod(arg, &end);
		if (end == arg || *end || !(secs >= 0.1 && secs <= 3600)) {
			cli_error("--seconds: '%s' is not 0.1..3600", arg);
			return -1;
		}
		o->seconds_ms = (uint64_t)(secs * 1000);
		return 0;
	}
	return -1;
}

/*
 * Parses argv with the options named in allowed (their short letters);
 * -1 to go on, or an exit code.
 */
static int parse_api_opts(int argc, char **argv, const char *allowed,
			  const char *usage, const char *help,
			  struct api_opts *o)
{
	const char *env = getenv("EDGESYNC_SOCKET");
	int c, li = 0;

	o->socket = env && *env ? env : ES_CONFIG_DEFAULT_SOCKET;
	optind = 1;
	while ((c = getopt_long(argc, argv, "hs:", api_long, &li)) != -1) {
		if (c == 'h') {
			printf("usage: %s\n\n%s\n", usage, help);
			return CLI_OK;
		}
		if (c == '?')
			return cli_usage(usage, NULL);
		if (!strchr(allowed, c))
			return cli_usage(usage, "--%s is not an option of %s",
					 api_long[li].name, argv[0]);
		if (take_opt(o, c, optarg) < 0)
			return cli_usage(usage, NULL);
	}
	if (optind != argc)
		return cli_usage(usage, "unexpected argument '%s'",
				 argv[optind]);
	return -1;
}

/* ---- ingest ------------------------------------------------------------ */

static const char ingest_usage[] =
    "edgesync bench ingest [-s SOCKET] [--clients 1,8] [--dim 128]\n"
    "       [--batch 1000] [--vectors 50000] [--seed 42] [--from FILE.fvecs]\n"
    "       [--keep] [--json]";
static const char ingest_help[] =
    "Inserts --vectors vectors through the agent's socket in batches "
    "of --batch,\neach acknowledged only once durable, from each number "
    "of --clients at once\n(a thread and a connection each), into a "
    "fresh collection per run\n(bench-ingest-PID-CLIENTS, l2, sync none, "
    "dropped after unless --keep), and\nprints vectors/s and the batch "
    "latency. The vectors are --dim-d, uniform in\n[0, 1) from --seed, "
    "or the rows of --from (repeated to reach --vectors).\nThe default "
    "stays under the agent's default seal threshold (65536), so no\n"
    "seal or index build runs during a measurement.";

/* xorshift64*: seeded, the same stream on every machine. */
static uint64_t api_rand(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 2685821657736338717ull;
}

/* The rows to insert: generated from the seed, or --from cycled. */
static int ingest_rows(struct api_opts *o, float **rows)
{
	uint64_t count, seed = o->seed ? o->seed : 1;
	float *file = NULL;
	uint32_t dim;
	int rc;

	if (o->from) {
		rc = es_vecs_load(o->from, ES_VECS_FLOAT, (void **)&file, &dim,
				  &count);
		if (rc < 0) {
			cli_error("%s: %s", o->from, es_store_strerror(rc));
			return rc;
		}
		o->dim = dim;
		if (!o->vectors)
			o->vectors = count;
	}
	if (!o->vectors || o->vectors > MAX_FLOATS / o->dim ||
	    (file && !count)) {
		cli_error("--vectors x --dim must be 1 to 2^31 values");
		free(file);
		return -EINVAL;
	}
	*rows = malloc(o->vectors * o->dim * sizeof(float));
	if (!*rows) {
		cli_error("%s", strerror(ENOMEM));
		free(file);
		return -ENOMEM;
	}
	for (uint64_t r = 0; r < o->vectors; r++) {
		float *v = *rows + r * o->dim;

		if (file) {
			memcpy(v, file + (r % count) * o->dim,
			       o->dim * sizeof(float));
			continue;
		}
		for (uint64_t j = 0; j < o->dim; j++)
			v[j] = (float)(api_rand(&seed) >> 40) / 16777216.0f;
	}
	free(file);
	return 0;
}

static void *ingest_client(void *arg)
{
	struct job *j = arg;
	uint64_t *ids = malloc(j->o->batch * sizeof(*ids));
	int rc = ids ? es_client_open(&j->client, j->o->socket, 0) : -ENOMEM;

	if (rc < 0) {
		j->client = NULL;
		snprintf(j->err, sizeof(j->err), "%s: %s", j->o->socket,
			 es_client_strerror(rc));
		j->rc = rc;
	}
	if (gate_pass(j->gate) < 0 || rc < 0)
		goto out;
	while (j->done < j->count) {
		uint64_t n = j->count - j->done, row = j->first + j->done;
		double t;

		n = n < j->o->batch ? n : j->o->batch;
		for (uint64_t i = 0; i < n; i++)
			ids[i] = row + i;
		t = cli_now();
		rc =
		    es_client_insert(j->client, j->name, ids,
				     j->rows + row * j->dim, (size_t)n, j->dim);
		if (rc < 0) {
			job_fail(j, rc, "insert");
			break;
		}
		if (lat_add(&j->lat, cli_now() - t) < 0) {
			job_fail(j, -ENOMEM, "insert");
			break;
		}
		j->done += n;
	}
	j->end = cli_now();
out:
	if (j->client)
		es_client_close(j->client);
	j->client = NULL;
	free(ids);
	return NULL;
}

struct ingest_result {
	unsigned clients;
	double seconds, p50_ms, p99_ms;
};

/* One run: a fresh collection, C clients, the figures into *r. */
static int ingest_run(const struct api_opts *o, struct es_client *admin,
		      const float *rows, unsigned c, struct ingest_result *r)
{
	struct job jobs[MAX_CLIENTS];
	struct lat all = {0};
	char name[ES_ENGINE_NAME_MAX + 1];
	int rc;

	snprintf(name, sizeof(name), "bench-ingest-%d-%u", (int)getpid(), c);
	rc = es_client_collection_create(admin, name, (uint32_t)o->dim, "l2",
					 "none");
	if (rc < 0) {
		cli_error("create %s: %s", name, client_why(admin, rc));
		return rc;
	}
	memset(jobs, 0, sizeof(jobs));
	for (unsigned t = 0; t < c; t++) {
		jobs[t].o = o;
		jobs[t].name = name;
		jobs[t].dim = (uint32_t)o->dim;
		jobs[t].rows = rows;
		jobs[t].first = o->vectors * t / c;
		jobs[t].count = o->vectors * (t + 1) / c - jobs[t].first;
	}
	rc = run_jobs(jobs, c, ingest_client, &r->seconds);
	if (rc == 0)
		rc = lat_merge(jobs, c, &all);
	r->clients = c;
	r->p50_ms = pct(&all, 0.50) / 1000;
	r->p99_ms = pct(&all, 0.99) / 1000;
	free(all.v);
	jobs_free(jobs, c);
	if (!o->keep) {
		int drc = es_client_collection_drop(admin, name);

		if (drc < 0)
			cli_error("drop %s: %s", name, client_why(admin, drc));
	}
	return rc;
}

static void ingest_print(const struct api_opts *o,
			 const struct ingest_result *r, int n)
{
	double mb = (double)o->vectors * (double)o->dim * 4 / 1e6;

	if (o->json) {
		printf("{\"bench\":\"ingest\",\"vectors\":%llu,\"dim\":%llu,"
		       "\"batch\":%llu,\"runs\":[",
		       (unsigned long long)o->vectors,
		       (unsigned long long)o->dim,
		       (unsigned long long)o->batch);
		for (int i = 0; i < n; i++)
			printf("%s{\"clients\":%u,\"seconds\":%.3f,"
			       "\"vectors_per_s\":%.0f,\"mb_per_s\":%.1f,"
			       "\"batch_p50_ms\":%.2f,\"batch_p99_ms\":%.2f}",
			       i ? "," : "", r[i].clients, r[i].seconds,
			       (double)o->vectors / r[i].seconds,
			       mb / r[i].seconds, r[i].p50_ms, r[i].p99_ms);
		printf("]}\n");
		return;
	}
	printf("ingest through %s: %llu vectors x %llu dims, batches of "
	       "%llu, durable acks\n%7s %12s %9s %13s %13s %9s\n",
	       o->socket, (unsigned long long)o->vectors,
	       (unsigned long long)o->dim, (unsigned long long)o->batch,
	       "clients", "vectors/s", "MB/s", "batch p50 ms", "batch p99 ms",
	       "seconds");
	for (int i = 0; i < n; i++)
		printf("%7u %12.0f %9.1f %13.2f %13.2f %9.2f\n", r[i].clients,
		       (double)o->vectors / r[i].seconds, mb / r[i].seconds,
		       r[i].p50_ms, r[i].p99_ms, r[i].seconds);
}

int cli_bench_ingest(int argc, char **argv)
{
	struct api_opts o = {.dim = 128,
			     .batch = 1000,
			     .seed = 42,
			     .clients = {1, 8},
			     .nruns = 2};
	struct ingest_result res[MAX_RUNS];
	struct es_client *admin = NULL;
	float *rows = NULL;
	int rc = parse_api_opts(argc, argv, "scdbnSfKj", ingest_usage,
				ingest_help, &o),
	    n = 0;

	if (rc >= 0)
		return rc;
	if (o.dim < 1 || o.dim > 4096 || o.batch < 1 || o.batch > 1000000)
		return cli_usage(ingest_usage,
				 "--dim is 1..4096, --batch 1..1000000");
	if (!o.from && !o.vectors)
		o.vectors = 50000;
	if (ingest_rows(&o, &rows) < 0)
		return CLI_FAIL;
	rc = es_client_open(&admin, o.socket, 0);
	if (rc == 0)
		rc = es_client_ping(admin);
	if (rc < 0) {
		cli_error("%s: %s (is the agent running?)", o.socket,
			  es_client_strerror(rc));
		goto out;
	}
	for (; n < o.nruns; n++) {
		rc = ingest_run(&o, admin, rows, o.clients[n], &res[n]);
		if (rc < 0)
			goto out;
	}
	ingest_print(&o, res, n);
out:
	if (admin)
		es_client_close(admin);
	free(rows);
	return rc < 0 ? CLI_FAIL : CLI_OK;
}

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
		job_fail(j, n, "search");
	return n;
}

/* Connects j's client (the socket path) and sizes its hits. */
static int job_connect(struct job *j)
{
	int rc;

	j->chits = calloc(j->o->k, sizeof(*j->chits));
	j->ehits = calloc(j->o->k, sizeof(*j->ehits));
	if (!j->chits || !j->ehits) {
		job_fail(j, -ENOMEM, "search");
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

	if (gate_pass(j->gate) < 0 || rc < 0)
		goto out;
	start = cli_now();
	for (;;) {
		t = cli_now();
		if (t - start >= j->deadline)
			break;
		if (job_search(j, j->rows + q * j->dim, NULL) < 0)
			break;
		if (lat_add(&j->lat, cli_now() - t) < 0) {
			job_fail(j, -ENOMEM, "search");
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
		rc = run_jobs(jobs, c, search_client, &r[i].seconds);
		if (rc == 0)
			rc = lat_merge(jobs, c, &all);
		r[i].path = path;
		r[i].clients = c;
		r[i].done = 0;
		for (unsigned t = 0; t < c; t++)
			r[i].done += jobs[t].done;
		r[i].qps = (double)r[i].done / r[i].seconds;
		r[i].p50_us = pct(&all, 0.50);
		r[i].p99_us = pct(&all, 0.99);
		free(all.v);
		jobs_free(jobs, c);
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
		cli_error("%s: %s", o->collection, client_why(c, rc));
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
	int rc = parse_api_opts(argc, argv, "scCqBtimkLTj", search_usage,
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
