/*
 * edgesync bench ingest (cli_bench_api.h says what and how), and what it
 * shares with bench search: the clients' timing and the options.
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "cli_bench_api.h"
#include "config.h"
#include "edgesync/client.h"
#include "edgesync/store_error.h"
#include "edgesync/vecs_file.h"
#include "engine.h"

/* ---- timing: per-thread latencies and a start gate --------------------- */

int bench_lat_add(struct lat *l, double seconds)
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
double bench_pct(const struct lat *l, double p)
{
	size_t i = (size_t)(p * (double)l->n + 0.999999);

	if (l->n == 0)
		return 0;
	return l->v[i == 0 ? 0 : (i > l->n ? l->n - 1 : i - 1)];
}

int bench_gate_pass(struct gate *g)
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

/* What went wrong with the last request on c. */
const char *bench_client_why(const struct es_client *c, int rc)
{
	return rc == ES_E_CLIENT_REMOTE ? es_client_error(c)
					: es_client_strerror(rc);
}

void bench_job_fail(struct job *j, int rc, const char *what)
{
	const char *why = j->engine ? es_engine_strerror(rc)
				    : bench_client_why(j->client, rc);

	j->rc = rc;
	snprintf(j->err, sizeof(j->err), "%s: %s", what, why);
}

/*
 * Runs fn on n jobs at once: each connects, passes the gate, works and
 * sets its end time. *seconds is from the gate to the last end; 0, or the
 * first job's failure (its message printed).
 */
int bench_run_jobs(struct job *jobs, unsigned n, void *(*fn)(void *),
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
int bench_lat_merge(struct job *jobs, unsigned n, struct lat *all)
{
	size_t total = 0;

	for (unsigned i = 0; i < n; i++)
		total += jobs[i].lat.n;
	all->v = malloc((total ? total : 1) * sizeof(float));
	if (!all->v)
		return -ENOMEM;
	all->n = 0;
	for (unsigned i = 0; i < n; i++) {
		if (!jobs[i].lat.n) /* a job with nothing to do has no list */
			continue;
		memcpy(all->v + all->n, jobs[i].lat.v,
		       jobs[i].lat.n * sizeof(float));
		all->n += jobs[i].lat.n;
	}
	qsort(all->v, all->n, sizeof(float), cmp_float);
	return 0;
}

void bench_jobs_free(struct job *jobs, unsigned n)
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
int bench_parse_opts(int argc, char **argv, const char *allowed,
		     const char *usage, const char *help, struct api_opts *o)
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
	if (bench_gate_pass(j->gate) < 0 || rc < 0)
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
			bench_job_fail(j, rc, "insert");
			break;
		}
		if (bench_lat_add(&j->lat, cli_now() - t) < 0) {
			bench_job_fail(j, -ENOMEM, "insert");
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
		cli_error("create %s: %s", name, bench_client_why(admin, rc));
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
	rc = bench_run_jobs(jobs, c, ingest_client, &r->seconds);
	if (rc == 0)
		rc = bench_lat_merge(jobs, c, &all);
	r->clients = c;
	r->p50_ms = bench_pct(&all, 0.50) / 1000;
	r->p99_ms = bench_pct(&all, 0.99) / 1000;
	free(all.v);
	bench_jobs_free(jobs, c);
	if (!o->keep) {
		int drc = es_client_collection_drop(admin, name);

		if (drc < 0)
			cli_error("drop %s: %s", name,
				  bench_client_why(admin, drc));
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
	int rc = bench_parse_opts(argc, argv, "scdbnSfKj", ingest_usage,
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
