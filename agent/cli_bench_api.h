/*
 * Private to edgesync bench ingest | search (cli_bench_api.c and
 * cli_bench_search.c): figures of the local API (issue 4), printed, never
 * asserted, and what the two commands share: their options, the clients
 * (a job each, a thread each) and the timing of their runs.
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
#ifndef EDGESYNC_CLI_BENCH_API_H
#define EDGESYNC_CLI_BENCH_API_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "edgesync/client.h"
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

/* Adds a latency of seconds to l; 0 or -ENOMEM. */
int bench_lat_add(struct lat *l, double seconds);

/* Nearest-rank percentile p (0..1) of sorted values; 0 when empty. */
double bench_pct(const struct lat *l, double p);

/* Where the clients wait until every one is ready: 1 go, -1 abandon. */
struct gate {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	unsigned ready;
	int state;
};

/* Waits at g until the runner opens it: 1 go, -1 abandon. */
int bench_gate_pass(struct gate *g);

/* ---- clients ----------------------------------------------------------- */

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
const char *bench_client_why(const struct es_client *c, int rc);

/* Records j's failure: rc and "what: why" in j->err. */
void bench_job_fail(struct job *j, int rc, const char *what);

/*
 * Runs fn on n jobs at once: each connects, passes the gate, works and
 * sets its end time. *seconds is from the gate to the last end; 0, or the
 * first job's failure (its message printed).
 */
int bench_run_jobs(struct job *jobs, unsigned n, void *(*fn)(void *),
		   double *seconds);

/* Merges the jobs' latencies into all, sorted; 0 or -ENOMEM. */
int bench_lat_merge(struct job *jobs, unsigned n, struct lat *all);

/* Frees what the jobs gathered (latencies, hits). */
void bench_jobs_free(struct job *jobs, unsigned n);

/* ---- options ----------------------------------------------------------- */

/*
 * Parses argv with the options named in allowed (their short letters)
 * into o; -1 to go on, or an exit code.
 */
int bench_parse_opts(int argc, char **argv, const char *allowed,
		     const char *usage, const char *help, struct api_opts *o);

#endif
