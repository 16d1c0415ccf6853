/*
 * The local API end to end: a real engine on a temporary data directory,
 * the API server on a socket beside it, and the C client library and the
 * Python example (agent/examples/client.py, run with /usr/bin/python3)
 * talking to it; the engine's dim checks, alone and racing drops. ES_PYTHON and ES_CLIENT_PY name the interpreter and the
 * example (set by tests/agent/CMakeLists.txt). Run-time approval of
 * devices (peers.approve) on a cloud sync attached to the engine.
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
#include <sys/wait.h>
#include <arpa/inet.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>

#include "api_codec.h"
#include "api_server.h"
#include "edgesync/client.h"
#include "edgesync/sync.h"

#define DIM 32
#define N   2000

struct fx {
	char dir[64];
	char data[128];
	char path[128];
	struct es_engine *e;
	struct es_api_server *s;
	struct es_client *c;
};

static void quiet_log(void *arg, enum es_log_level level, const char *msg)
{
	if (level <= ES_LOG_WARN)
		fprintf(stderr, "[%s] %s\n", (const char *)arg, msg);
}

static int start(struct fx *f)
{
	struct es_engine_config ec;
	struct es_api_config ac = {0};

	es_engine_config_defaults(&ec);
	ec.data_dir = f->data;
	ec.seal_threshold = 1500; /* a seal happens during the test */
	ec.build_threads = 1;
	ec.log = quiet_log;
	ec.log_arg = "engine";
	if (es_engine_open(&f->e, &ec))
		return -1;
	ac.socket_path = f->path;
	ac.workers = 4;
	ac.log = quiet_log;
	ac.log_arg = "api";
	if (es_api_server_start(&f->s, f->e, &ac))
		return -1;
	return es_client_open(&f->c, f->path, 60000);
}

static void stop(struct fx *f)
{
	es_client_close(f->c);
	es_api_server_stop(f->s);
	es_engine_close(f->e);
	f->c = NULL;
	f->s = NULL;
	f->e = NULL;
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	strcpy(f->dir, "/tmp/es-api-engine-XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->data, sizeof(f->data), "%s/data", f->dir);
	snprintf(f->path, sizeof(f->path), "%s/run/agent.sock", f->dir);
	*state = f;
	return start(f);
}

static int teardown(void **state)
{
	struct fx *f = *state;
	char cmd[128];

	if (f->s)
		stop(f);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
	if (system(cmd) != 0)
		return -1;
	free(f);
	return 0;
}

static uint64_t rng = 42;

static float frand(void)
{
	rng = rng * 6364136223846793005ull + 1442695040888963407ull;
	return (float)(rng >> 40) / (float)(1u << 24) - 0.5f;
}

static void expect_remote(struct es_client *c, int rc, const char *code,
			  const char *msg)
{
	if (rc != ES_E_CLIENT_REMOTE || strcmp(es_client_error_code(c), code) ||
	    strcmp(es_client_error(c), msg))
		fail_msg("got %d %s '%s', wanted %s '%s'", rc,
			 es_client_error_code(c), es_client_error(c), code,
			 msg);
}

/* Each of ids' vectors finds itself first, at distance 0. */
static void find_selves(struct es_client *c, const float *v,
			const uint64_t *ids, int step)
{
	struct es_client_hit hits[10];

	for (int i = 0; i < N; i += step) {
		int n = es_client_search(c, "faces", v + (size_t)i * DIM, DIM,
					 10, 0, hits);

		assert_int_equal(n, 10);
		assert_int_equal(hits[0].id, ids[i]);
		assert_true(fabsf(hits[0].distance) < 1e-4f);
		for (int j = 1; j < n; j++)
			assert_true(hits[j].distance >= hits[j - 1].distance);
	}
}

static void test_round_trip(void **state)
{
	struct fx *f = *state;
	struct es_client_collection ci;
	struct es_client_segment *segs;
	struct es_client_stats st;
	uint64_t *ids = malloc(N * sizeof(*ids));
	float *v = malloc((size_t)N * DIM * sizeof(*v)), got[DIM];
	uint64_t rows = 0, runs = 0;
	uint32_t dim;
	size_t n;
	int rc;

	for (int i = 0; i < N; i++)
		ids[i] = 1000000007ull * (uint64_t)(i + 1);
	for (size_t i = 0; i < (size_t)N * DIM; i++)
		v[i] = frand();
	assert_int_equal(
	    es_client_collection_create(f->c, "faces", DIM, "l2", NULL), 0);
	for (int b = 0; b < N; b += 500)
		assert_int_equal(es_client_insert(f->c, "faces", ids + b,
						  v + (size_t)b * DIM, 500,
						  DIM),
				 0);
	assert_int_equal(es_client_collection_info(f->c, "faces", &ci), 0);
	assert_int_equal(ci.dim, DIM);
	assert_int_equal(ci.vectors, N);
	find_selves(f->c, v, ids, 97);

	assert_int_equal(es_client_get(f->c, "faces", ids[17], got, DIM, &dim),
			 0);
	assert_int_equal(dim, DIM);
	assert_memory_equal(got, v + 17 * DIM, sizeof(got));
	assert_int_equal(es_client_delete(f->c, "faces", ids + 17, 1), 0);
	rc = es_client_get(f->c, "faces", ids[17], got, DIM, &dim);
	assert_int_equal(rc, ES_E_CLIENT_REMOTE);
	assert_string_equal(es_client_error_code(f->c), "not_found");

	assert_int_equal(es_client_flush(f->c, "faces"), 0);
	assert_int_equal(es_client_segments(f->c, "faces", &segs, &n), 0);
	/* every row is in a segment now (the deleted one may or may not be,
	 * as it was sealed before or after the delete) */
	assert_true(n >= 1);
	for (size_t i = 0; i < n; i++) {
		rows += segs[i].count;
		runs += segs[i].clock_runs;
		assert_true(segs[i].size > 0);
		if (segs[i].count == 0) /* a flush found nothing growing */
			print_message("note: segment %lld is empty\n",
				      (long long)segs[i].id);
	}
	assert_true(rows == N || rows == N - 1);
	/* each insert of 500 is one write, its rows one run of its clock */
	assert_int_equal(runs, N / 500);
	free(segs);
	assert_int_equal(es_client_collection_info(f->c, "faces", &ci), 0);
	assert_int_equal(ci.vectors, N - 1);

	/* everything survives a restart of the agent */
	stop(f);
	assert_int_equal(start(f), 0);
	find_selves(f->c, v, ids, 211);
	assert_int_equal(es_client_get(f->c, "faces", ids[18], got, DIM, &dim),
			 0);
	assert_memory_equal(got, v + 18 * DIM, sizeof(got));
	assert_int_equal(es_client_stats(f->c, &st), 0);
	assert_int_equal(st.collections, 1);
	assert_int_equal(st.vectors, N - 1);
	assert_true(st.device_id[0] != '\0');
	assert_string_equal(st.version, ES_VERSION);
	free(ids);
	free(v);
}

/* Sends raw bytes; 1 ok, 0 error reply (message in msg). */
static int raw_call(const char *path, const void *req, size_t len, char *code,
		    char *msg)
{
	static const char *const keys[] = {"ok", "error"};
	static const char *const ekeys[] = {"code", "message"};
	struct es_cbor_span fs[2], ef[2];
	struct es_cbor_reader r, sub;
	char url[160], err[API_ERR_MAX];
	nng_socket sock;
	nng_msg *m;
	int ok;

	snprintf(url, sizeof(url), "ipc://%s", path);
	assert_int_equal(nng_req0_open(&sock), 0);
	nng_socket_set_ms(sock, NNG_OPT_RECVTIMEO, 30000);
	assert_int_equal(nng_dial(sock, url, NULL, 0), 0);
	assert_int_equal(nng_send(sock, (void *)req, len, 0), 0);
	assert_int_equal(nng_recvmsg(sock, &m, 0), 0);
	es_cbor_reader_init(&r, nng_msg_body(m), nng_msg_len(m), err);
	assert_int_equal(es_cbor_map_index(&r, keys, 2, fs, 0, "reply"), 0);
	es_cbor_reader_span(&sub, &r, &fs[0]);
	assert_int_equal(es_cbor_get_bool(&sub, "ok", &ok), 0);
	if (!ok) {
		es_cbor_reader_span(&sub, &r, &fs[1]);
		assert_int_equal(es_cbor_map_index(&sub, ekeys, 2, ef, 0, "e"),
				 0);
		es_cbor_reader_span(&sub, &r, &ef[0]);
		assert_int_equal(es_cbor_get_text(&sub, "code", code, 32), 0);
		es_cbor_reader_span(&sub, &r, &ef[1]);
		assert_int_equal(es_cbor_get_text(&sub, "m", msg, 300), 0);
	}
	nng_msg_free(m);
	nng_close(sock);
	return ok;
}

/*
 * A drop the manifest refuses (here: busy, another process holding its
 * write lock) changes nothing: the collection is still listed and
 * served, its files are all there after a restart, and a later drop
 * works. (It once deleted the files anyway, and the next start failed.)
 */
/*
 * One engine per data directory: a second one (another agent started on
 * the same directory) is refused while the first is open, since it would
 * seal and cut logs the first still appends to; once the first closes,
 * the directory opens again.
 */
static void test_data_dir_locked(void **state)
{
	struct fx *f = *state;
	struct es_engine_config ec;
	struct es_engine *e2 = NULL;

	es_engine_config_defaults(&ec);
	ec.data_dir = f->data;
	ec.log = quiet_log;
	ec.log_arg = "second";
	assert_int_equal(es_engine_open(&e2, &ec), -EBUSY);
	assert_null(e2);
	stop(f);
	assert_int_equal(es_engine_open(&e2, &ec), 0);
	es_engine_close(e2);
	assert_int_equal(start(f), 0);
}

static void test_drop_refused(void **state)
{
	struct fx *f = *state;
	float v[3 * 4] = {1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0}, got[4];
	uint64_t ids[3] = {7, 8, 9};
	char db[300];
	sqlite3 *h;
	uint32_t dim;
	int rc;

	assert_int_equal(
	    es_client_collection_create(f->c, "kept", 4, NULL, NULL), 0);
	assert_int_equal(es_client_insert(f->c, "kept", ids, v, 3, 4), 0);
	assert_int_equal(es_client_flush(f->c, "kept"), 0);
	snprintf(db, sizeof(db), "%s/manifest.db", f->data);
	assert_int_equal(sqlite3_open(db, &h), SQLITE_OK);
	assert_int_equal(sqlite3_exec(h, "BEGIN IMMEDIATE", NULL, NULL, NULL),
			 SQLITE_OK);
	rc = es_client_collection_drop(f->c, "kept");
	assert_int_equal(rc, ES_E_CLIENT_REMOTE);
	assert_string_equal(es_client_error_code(f->c), "internal");
	sqlite3_exec(h, "ROLLBACK", NULL, NULL, NULL);
	sqlite3_close(h);
	assert_int_equal(es_client_get(f->c, "kept", 8, got, 4, &dim), 0);
	assert_memory_equal(got, v + 4, sizeof(got));
	stop(f);
	assert_int_equal(start(f), 0);
	assert_int_equal(es_client_get(f->c, "kept", 9, got, 4, &dim), 0);
	assert_memory_equal(got, v + 8, sizeof(got));
	assert_int_equal(es_client_collection_drop(f->c, "kept"), 0);
	rc = es_client_get(f->c, "kept", 9, got, 4, &dim);
	assert_int_equal(rc, ES_E_CLIENT_REMOTE);
	assert_string_equal(es_client_error_code(f->c), "not_found");
	stop(f);
	assert_int_equal(start(f), 0);
}

static void test_errors(void **state)
{
	struct fx *f = *state;
	struct es_client_hit hits[4];
	char code[32], msg[300];
	float v[128 * 5] = {0};
	uint64_t ids[5] = {1, 2, 3, 4, 5};
	struct es_cbor_enc e;
	int rc;

	assert_int_equal(
	    es_client_collection_create(f->c, "faces", 128, NULL, NULL), 0);
	rc = es_client_collection_create(f->c, "faces", 128, NULL, NULL);
	expect_remote(f->c, rc, "exists",
		      "collection.create: collection 'faces' exists already");
	rc = es_client_insert(f->c, "nothere", ids, v, 1, 128);
	expect_remote(f->c, rc, "not_found",
		      "insert: collection 'nothere' does not exist");
	rc = es_client_search(f->c, "faces", v, 127, 4, 0, hits);
	expect_remote(f->c, rc, "dim_mismatch",
		      "search: vector has 127 values, collection 'faces' has "
		      "dim 128");
	assert_int_equal(es_client_search(f->c, "faces", v, 128, 4, 0, hits),
			 0); /* empty collection: no hits */

	/* the protocol's own example, with arrays of numbers */
	es_cbor_enc_init(&e);
	es_cbor_enc_map(&e, 5);
	es_cbor_enc_kv_uint(&e, "v", 1);
	es_cbor_enc_kv_text(&e, "op", "insert");
	es_cbor_enc_kv_text(&e, "collection", "faces");
	es_cbor_enc_text(&e, "ids");
	es_cbor_enc_array(&e, 5);
	for (int i = 0; i < 5; i++)
		es_cbor_enc_uint(&e, ids[i]);
	es_cbor_enc_text(&e, "vectors");
	es_cbor_enc_array(&e, 5);
	for (int i = 0; i < 5; i++) {
		es_cbor_enc_array(&e, i == 3 ? 127 : 128);
		for (int j = 0; j < (i == 3 ? 127 : 128); j++)
			es_cbor_enc_float(&e, 0.5f);
	}
	assert_int_equal(raw_call(f->path, e.buf, e.len, code, msg), 0);
	assert_string_equal(code, "dim_mismatch");
	assert_string_equal(msg, "insert: vector 3 has 127 values, collection "
				 "'faces' has dim 128");
	es_cbor_enc_fini(&e);

	/* nothing of the refused batch went in */
	assert_int_equal(es_client_search(f->c, "faces", v, 128, 4, 0, hits),
			 0);
	assert_int_equal(es_client_collection_drop(f->c, "faces"), 0);
	rc = es_client_collection_drop(f->c, "faces");
	expect_remote(f->c, rc, "not_found",
		      "collection.drop: collection 'faces' does not exist");
}

struct inserter {
	const char *path;
	int base;
	int rc;
};

static void *insert_main(void *p)
{
	struct inserter *a = p;
	struct es_client *c;
	uint64_t ids[100];
	float v[100 * 4];

	a->rc = es_client_open(&c, a->path, 60000);
	for (int b = 0; a->rc == 0 && b < 10; b++) {
		for (int i = 0; i < 100; i++) {
			ids[i] = (uint64_t)(a->base + b * 100 + i);
			for (int j = 0; j < 4; j++)
				v[i * 4 + j] = (float)ids[i] + (float)j;
		}
		a->rc = es_client_insert(c, "many", ids, v, 100, 4);
	}
	if (a->rc == 0)
		es_client_close(c);
	return NULL;
}

/* Four clients insert at once; every vector is there afterwards. */
static void test_concurrent_inserts(void **state)
{
	struct fx *f = *state;
	struct es_client_collection ci;
	struct inserter a[4];
	pthread_t t[4];
	float got[4];
	uint32_t dim;

	assert_int_equal(
	    es_client_collection_create(f->c, "many", 4, NULL, NULL), 0);
	for (int i = 0; i < 4; i++) {
		a[i] = (struct inserter){.path = f->path, .base = i * 1000};
		pthread_create(&t[i], NULL, insert_main, &a[i]);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(a[i].rc, 0);
	}
	assert_int_equal(es_client_collection_info(f->c, "many", &ci), 0);
	assert_int_equal(ci.vectors, 4000);
	assert_int_equal(es_client_get(f->c, "many", 3999, got, 4, &dim), 0);
	assert_true(got[0] == 3999.0f && got[3] == 4002.0f);
}

/* The Python example against this agent, then its work read back in C. */
static void test_python_example(void **state)
{
	struct fx *f = *state;
	const char *py = getenv("ES_PYTHON"), *script = getenv("ES_CLIENT_PY");
	struct es_client_collection ci;
	char out[160], line[256];
	int found = 0, status;
	float got[4];
	uint32_t dim;
	FILE *fp;
	pid_t pid;

	if (!py || !*py || !script) {
		fail_msg("ES_PYTHON and ES_CLIENT_PY are not set (run through "
			 "ctest)");
		return;
	}
	snprintf(out, sizeof(out), "%s/python.out", f->dir);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		if (!freopen(out, "w", stdout))
			_exit(126);
		execl(py, py, script, "--socket", f->path, "--collection",
		      "pyexample", (char *)NULL);
		_exit(127);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	fp = fopen(out, "r");
	assert_non_null(fp);
	while (fgets(line, sizeof(line), fp)) {
		print_message("python: %s", line);
		found += strstr(line, "id 2  distance 0.0200") != NULL;
		found +=
		    strstr(line, "vector 3 is [0.0, 2.0, 0.0, 0.0]") != NULL;
		found += strstr(line, "not_found") != NULL;
	}
	fclose(fp);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_int_equal(found, 3);

	assert_int_equal(es_client_collection_info(f->c, "pyexample", &ci), 0);
	assert_int_equal(ci.dim, 4);
	assert_int_equal(ci.vectors, 5);
	assert_int_equal(es_client_get(f->c, "pyexample", 5, got, 4, &dim), 0);
	assert_true(got[0] == 1.0f && got[3] == 1.0f);
}

/* The engine's dim checks, straight and through the API with races. */
static void test_engine_dim(void **state)
{
	struct fx *f = *state;
	struct es_engine_hit hit;
	uint64_t id = 7;
	float v[16] = {1, 2, 3, 4}, got[16];
	uint32_t dim = 0;

	assert_int_equal(es_engine_collection_dim(f->e, "d", &dim),
			 ES_E_ENGINE_NOCOLL);
	assert_int_equal(
	    es_engine_collection_create(f->e, "d", 4, ES_METRIC_L2, 0), 0);
	assert_int_equal(es_engine_collection_dim(f->e, "d", &dim), 0);
	assert_int_equal(dim, 4);
	assert_int_equal(es_engine_insert(f->e, "d", &id, v, 1, 16),
			 ES_E_ENGINE_DIM);
	assert_int_equal(es_engine_insert(f->e, "d", &id, v, 1, 4), 0);
	assert_int_equal(es_engine_get(f->e, "d", id, got, 16),
			 ES_E_ENGINE_DIM);
	assert_int_equal(es_engine_get(f->e, "d", id, got, 4), 0);
	assert_memory_equal(got, v, 4 * sizeof(float));
	assert_int_equal(es_engine_search(f->e, "d", v, 3, 1, 0, &hit),
			 ES_E_ENGINE_DIM);
	assert_int_equal(es_engine_search(f->e, "d", v, 4, 1, 0, &hit), 1);
	assert_int_equal(hit.id, 7);

	/* dropped and created again with another dim */
	assert_int_equal(es_engine_collection_drop(f->e, "d"), 0);
	assert_int_equal(
	    es_engine_collection_create(f->e, "d", 16, ES_METRIC_L2, 0), 0);
	assert_int_equal(es_engine_insert(f->e, "d", &id, v, 1, 4),
			 ES_E_ENGINE_DIM);
	assert_int_equal(es_engine_get(f->e, "d", id, got, 4), ES_E_ENGINE_DIM);
	assert_int_equal(es_engine_search(f->e, "d", v, 4, 1, 0, &hit),
			 ES_E_ENGINE_DIM);
	assert_int_equal(es_engine_collection_dim(f->e, "d", &dim), 0);
	assert_int_equal(dim, 16);
}

struct flipper {
	const char *path;
	volatile int done;
	int rc, answers[4]; /* ok, not_found, dim_mismatch, of which raced */
};

/* Inserts, searches and gets dim-4 vectors until told to stop. */
static void *use_flip(void *p)
{
	struct flipper *a = p;
	struct es_client_hit hits[2];
	struct es_client *c = NULL;
	float v[4] = {1, 0, 0, 1}, got[64];
	uint64_t ids[2] = {1, 2};
	uint32_t dim;

	a->rc = es_client_open(&c, a->path, 60000);
	for (int i = 0; a->rc == 0 && !a->done; i++) {
		int rc = i % 3 == 0 ? es_client_insert(c, "flip", ids, v, 1, 4)
			 : i % 3 == 1
			     ? es_client_search(c, "flip", v, 4, 2, 0, hits)
			     : es_client_get(c, "flip", 1, got, 64, &dim);

		if (rc >= 0)
			a->answers[0]++;
		else if (rc == ES_E_CLIENT_REMOTE &&
			 !strcmp(es_client_error_code(c), "not_found"))
			a->answers[1]++;
		else if (rc == ES_E_CLIENT_REMOTE &&
			 !strcmp(es_client_error_code(c), "dim_mismatch"))
			a->answers[2 + !!strstr(es_client_error(c),
						"created again")]++;
		else
			a->rc = rc;
	}
	if (c)
		es_client_close(c);
	return NULL;
}

/* Requests race drops and creates of their collection with other dims. */
static void test_dim_flips(void **state)
{
	struct fx *f = *state;
	struct flipper a = {.path = f->path};
	pthread_t t;

	assert_int_equal(
	    es_engine_collection_create(f->e, "flip", 4, ES_METRIC_L2, 0), 0);
	pthread_create(&t, NULL, use_flip, &a);
	for (int i = 0; i < 30; i++) {
		assert_int_equal(es_engine_collection_drop(f->e, "flip"), 0);
		assert_int_equal(es_engine_collection_create(f->e, "flip",
							     i % 2 ? 4 : 64,
							     ES_METRIC_L2, 0),
				 0);
		usleep(2000);
	}
	a.done = 1;
	pthread_join(t, NULL);
	assert_int_equal(a.rc, 0);
	print_message("answers: %d ok, %d not_found, %d dim_mismatch (%d "
		      "caught by the engine's own check)\n",
		      a.answers[0], a.answers[1], a.answers[2] + a.answers[3],
		      a.answers[3]);
}

/* ---- run-time approval of devices (peers.approve) -------------------- */

/* A cloud sync on f's engine, attached to it: tcp, token, allow list. */
static struct es_sync *start_cloud(struct fx *f, struct es_sync_host *h)
{
	static const char *const allow[] = {"listed-1"};
	struct es_sync_config sc = {0};
	struct es_sync *s = NULL;
	char url[64], staging[160];
	int port = 0;
	nng_socket probe;
	nng_listener l;
	nng_sockaddr sa;

	/* a free port: bind one with nng, read it, close it */
	assert_int_equal(nng_req0_open(&probe), 0);
	assert_int_equal(nng_listen(probe, "tcp://127.0.0.1:0", &l, 0), 0);
	assert_int_equal(nng_listener_get_addr(l, NNG_OPT_LOCADDR, &sa), 0);
	port = ntohs(sa.s_in.sa_port);
	nng_close(probe);
	snprintf(url, sizeof(url), "tcp://127.0.0.1:%d", port);
	snprintf(staging, sizeof(staging), "%s/staging", f->dir);
	es_engine_sync_host(f->e, h);
	sc.role = ES_SYNC_CLOUD;
	sc.device_id = es_engine_device_id(f->e);
	sc.listen_url = url;
	sc.token = "api-engine-token-0123456789";
	sc.allow_devices = allow;
	sc.n_allow_devices = 1;
	sc.staging_dir = staging;
	assert_int_equal(es_sync_start(&s, &sc, h), 0);
	es_engine_attach_sync(f->e, s);
	return s;
}

/* 1 if the peers list holds device, awaiting approval as want says. */
static int listed(struct es_client *c, const char *device, int want)
{
	struct es_client_peer *p = NULL;
	size_t n = 0;
	int found = 0;

	assert_int_equal(es_client_peers(c, &p, &n), 0);
	for (size_t i = 0; i < n; i++)
		if (!strcmp(p[i].device, device))
			found = p[i].awaiting_approval == want ? 1 : -1;
	free(p);
	return found == 1;
}

static void raw_approve(struct fx *f, const char *device, int bad_bool,
			const char *code, const char *msg)
{
	char got_code[32], got_msg[300];
	struct es_cbor_enc e;

	es_cbor_enc_init(&e);
	es_cbor_enc_map(&e, 2 + (device != NULL) + bad_bool);
	es_cbor_enc_kv_uint(&e, "v", 1);
	es_cbor_enc_kv_text(&e, "op", "peers.approve");
	if (device)
		es_cbor_enc_kv_text(&e, "device", device);
	if (bad_bool)
		es_cbor_enc_kv_uint(&e, "approve", 1);
	assert_int_equal(raw_call(f->path, e.buf, e.len, got_code, got_msg), 0);
	assert_string_equal(got_code, code);
	assert_string_equal(got_msg, msg);
	es_cbor_enc_fini(&e);
}

static void test_peers_approve(void **state)
{
	struct fx *f = *state;
	struct es_sync_host h;
	struct es_sync *s;
	int rc, allow_listed = -1;

	/* without sync: no_sync */
	rc = es_client_peer_approve(f->c, "new-1", 1, NULL);
	expect_remote(f->c, rc, "no_sync",
		      "peers.approve: this agent does not sync: its "
		      "configuration has no [sync] role");

	s = start_cloud(f, &h);
	assert_true(listed(f->c, "new-1", 1) == 0);
	/* a hello from a device outside allow_devices: seen, awaiting */
	assert_int_equal(h.device_approved(h.arg, "new-1"), 0);
	assert_true(listed(f->c, "new-1", 1));

	/* bad ids and requests, named */
	rc = es_client_peer_approve(f->c, "has space", 1, NULL);
	expect_remote(f->c, rc, "bad_value",
		      "peers.approve: device id 'has space' contains a space "
		      "(at 3)");
	rc = es_client_peer_approve(f->c, "", 1, NULL);
	expect_remote(f->c, rc, "bad_value",
		      "peers.approve: device id is empty: it must be 1 to 64 "
		      "printable ASCII characters without spaces");
	rc = es_client_peer_approve(f->c, "tab\there", 1, NULL);
	expect_remote(f->c, rc, "bad_value",
		      "peers.approve: device id 'tab?here' contains a byte "
		      "that is not printable ASCII (0x09 at 3)");
	rc = es_client_peer_approve(
	    f->c,
	    "x1234567890123456789012345678901234567890123456789012345678901234",
	    1, NULL);
	expect_remote(f->c, rc, "bad_value",
		      "peers.approve: field 'device' is longer than 64 bytes");
	raw_approve(f, NULL, 0, "bad_request",
		    "peers.approve: missing field 'device'");
	raw_approve(f, "new-1", 1, "bad_request",
		    "peers.approve: field 'approve' must be a boolean, not "
		    "an unsigned integer");
	rc = es_client_peer_approve(f->c, "never-1", 0, NULL);
	expect_remote(f->c, rc, "not_found",
		      "peers.approve: device 'never-1' is unknown to this "
		      "cloud: it never connected and was never approved");

	/* approve: the next hello is admitted, nothing awaits */
	assert_int_equal(
	    es_client_peer_approve(f->c, "new-1", 1, &allow_listed), 0);
	assert_int_equal(allow_listed, 0);
	assert_int_equal(h.device_approved(h.arg, "new-1"), 1);
	assert_false(listed(f->c, "new-1", 1));
	/* approving twice is no error */
	assert_int_equal(es_client_peer_approve(f->c, "new-1", 1, NULL), 0);
	/* pre-approval of a device never seen */
	assert_int_equal(es_client_peer_approve(f->c, "pre-1", 1, NULL), 0);
	assert_int_equal(h.device_approved(h.arg, "pre-1"), 1);
	assert_false(listed(f->c, "pre-1", 1));
	/* revoke: awaiting again, refused at its next hello */
	assert_int_equal(es_client_peer_approve(f->c, "new-1", 0, NULL), 0);
	assert_true(listed(f->c, "new-1", 1));
	assert_int_equal(h.device_approved(h.arg, "new-1"), 0);
	/* a device in allow_devices: admitted whatever its approval */
	assert_int_equal(
	    es_client_peer_approve(f->c, "listed-1", 1, &allow_listed), 0);
	assert_int_equal(allow_listed, 1);

	es_engine_attach_sync(f->e, NULL);
	es_sync_stop(s);
	/* the approvals are in the manifest: they outlive a restart */
	s = start_cloud(f, &h);
	assert_int_equal(h.device_approved(h.arg, "pre-1"), 1);
	assert_int_equal(h.device_approved(h.arg, "new-1"), 0);
	assert_true(listed(f->c, "new-1", 1));
	es_engine_attach_sync(f->e, NULL);
	es_sync_stop(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_errors, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_data_dir_locked, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_drop_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_concurrent_inserts, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_python_example, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_engine_dim, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_dim_flips, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_peers_approve, setup,
					    teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
