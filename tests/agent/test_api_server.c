/*
 * The API server with the C client, against an in-memory engine
 * (fake_engine.c) so that the server's own behaviour can be held still:
 * socket files and modes, stale and live sockets, every op and its error
 * codes, parallel requests while others block in the engine, 1,000 idle
 * connections, size limits, refused peers (the test re-executes itself as
 * user nobody), a stop that lets a request in flight finish, a request
 * racing a drop and create, and the SP wire spoken by hand: backtrace
 * headers, requests in flight side by side, and hostile peers (hang-ups
 * before the handshake, which froze nng 1.5.2's own ipc listener, bad
 * handshakes, bad frames, oversized messages).
 * ES_TEST_FILTER=<cmocka pattern> runs only some tests.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/protocol/reqrep0/req.h>

#include "api_codec.h"
#include "api_server.h"
#include "edgesync/client.h"
#include "fake_engine.h"

#define NOBODY 65534

static char self_exe[4096];

/* ---- log capture ------------------------------------------------------- */

static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static char log_text[1 << 16];

static void test_log(void *arg, enum es_log_level level, const char *msg)
{
	pthread_mutex_lock(&log_mu);
	if (strlen(log_text) + strlen(msg) + 2 < sizeof(log_text)) {
		strcat(log_text, msg);
		strcat(log_text, "\n");
	}
	pthread_mutex_unlock(&log_mu);
}

static int log_has(const char *s)
{
	int found;

	pthread_mutex_lock(&log_mu);
	found = strstr(log_text, s) != NULL;
	pthread_mutex_unlock(&log_mu);
	return found;
}

/* ---- fixture ------------------------------------------------------------ */

struct fx {
	char dir[64];
	char path[128];
	struct es_engine *e;
	struct es_api_server *s;
	struct es_client *c;
};

/* For the next fx_start: max_clients and send_timeout_ms (0: defaults). */
static unsigned fx_max_clients, fx_send_timeout_ms;

static void fx_start(struct fx *f, unsigned workers, size_t max_message,
		     const uid_t *uids, size_t nu, const gid_t *gids, size_t ng)
{
	struct es_engine_config ec;
	struct es_api_config ac = {0};

	es_engine_config_defaults(&ec);
	assert_int_equal(es_engine_open(&f->e, &ec), 0);
	ac.socket_path = f->path;
	ac.workers = workers;
	ac.max_message = max_message;
	ac.allow_uids = uids;
	ac.n_allow_uids = nu;
	ac.allow_gids = gids;
	ac.n_allow_gids = ng;
	ac.log = test_log;
	ac.max_clients = fx_max_clients;
	ac.send_timeout_ms = fx_send_timeout_ms;
	assert_int_equal(es_api_server_start(&f->s, f->e, &ac), 0);
	assert_int_equal(es_client_open(&f->c, f->path, 10000), 0);
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	strcpy(f->dir, "/tmp/es-api-test-XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	/* run/ does not exist: the server makes it, 0750 */
	snprintf(f->path, sizeof(f->path), "%s/run/agent.sock", f->dir);
	fx_start(f, 4, 0, NULL, 0, NULL, 0);
	*state = f;
	return 0;
}

static void fx_stop(struct fx *f)
{
	es_client_close(f->c);
	es_api_server_stop(f->s);
	es_engine_close(f->e);
	f->c = NULL;
	f->s = NULL;
	f->e = NULL;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	char cmd[128];

	if (f->e)
		fake_engine_release(f->e); /* a failed test may hold one */
	if (f->s)
		fx_stop(f);
	fx_max_clients = fx_send_timeout_ms = 0;
	snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
	if (system(cmd) != 0)
		return -1;
	free(f);
	return 0;
}

/* Sends raw bytes; fills code/message of an error reply. 1 ok, 0 error. */
static int raw_call(const char *path, const void *req, size_t len, char *code,
		    char *msg)
{
	static const char *const keys[] = {"ok", "error", "v"};
	static const char *const ekeys[] = {"code", "message"};
	struct es_cbor_span f[3], ef[2];
	struct es_cbor_reader r, sub;
	char url[160], err[API_ERR_MAX];
	nng_socket sock;
	nng_msg *m;
	uint64_t v;
	int ok;

	snprintf(url, sizeof(url), "ipc://%s", path);
	assert_int_equal(nng_req0_open(&sock), 0);
	nng_socket_set_ms(sock, NNG_OPT_RECVTIMEO, 10000);
	nng_socket_set_ms(sock, NNG_OPT_SENDTIMEO, 10000);
	assert_int_equal(nng_dial(sock, url, NULL, 0), 0);
	assert_int_equal(nng_send(sock, (void *)req, len, 0), 0);
	assert_int_equal(nng_recvmsg(sock, &m, 0), 0);
	es_cbor_reader_init(&r, nng_msg_body(m), nng_msg_len(m), err);
	assert_int_equal(es_cbor_map_index(&r, keys, 3, f, 0, "reply"), 0);
	es_cbor_reader_span(&sub, &r, &f[0]);
	assert_int_equal(es_cbor_get_bool(&sub, "ok", &ok), 0);
	es_cbor_reader_span(&sub, &r, &f[2]);
	assert_int_equal(es_cbor_get_uint(&sub, "v", &v), 0);
	assert_int_equal(v, 1);
	if (!ok) {
		es_cbor_reader_span(&sub, &r, &f[1]);
		assert_int_equal(es_cbor_map_index(&sub, ekeys, 2, ef, 0, "e"),
				 0);
		es_cbor_reader_span(&sub, &r, &ef[0]);
		assert_int_equal(es_cbor_get_text(&sub, "code", code, 32), 0);
		es_cbor_reader_span(&sub, &r, &ef[1]);
		assert_int_equal(
		    es_cbor_get_text(&sub, "msg", msg, API_ERR_MAX + 32), 0);
	}
	nng_msg_free(m);
	nng_close(sock);
	return ok;
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

/* A new connection's ping: 0 if answered within ms. */
static int fresh_ping(const char *path, unsigned ms)
{
	struct es_client *c;
	int rc = es_client_open(&c, path, ms);

	if (rc == 0) {
		rc = es_client_ping(c);
		es_client_close(c);
	}
	return rc;
}

/* ---- tests -------------------------------------------------------------- */

static void test_socket_files(void **state)
{
	struct fx *f = *state;
	char dir[160];
	struct stat st;

	snprintf(dir, sizeof(dir), "%s/run", f->dir);
	assert_int_equal(stat(dir, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0750);
	assert_int_equal(lstat(f->path, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0660);
	assert_int_equal(es_client_ping(f->c), 0);
}

static void fill(float *v, size_t n, uint32_t dim)
{
	for (size_t i = 0; i < n; i++)
		for (uint32_t j = 0; j < dim; j++)
			v[i * dim + j] = (float)(i * 10 + j);
}

static void test_every_op(void **state)
{
	struct fx *f = *state;
	struct es_client_collection ci, *list;
	struct es_client_segment *segs;
	struct es_client_verified ver;
	struct es_client_stats st;
	struct es_client_hit hits[10];
	char problem[256];
	uint64_t ids[100];
	float v[100 * 4], got[8];
	uint32_t dim;
	size_t n;
	int rc;

	assert_int_equal(
	    es_client_collection_create(f->c, "faces", 4, "l2", "upload"), 0);
	assert_int_equal(
	    es_client_collection_create(f->c, "other", 2, NULL, NULL), 0);
	rc = es_client_collection_create(f->c, "faces", 4, NULL, NULL);
	expect_remote(f->c, rc, "exists",
		      "collection.create: collection 'faces' exists already");
	for (int i = 0; i < 100; i++)
		ids[i] = 1000 + (uint64_t)i;
	fill(v, 100, 4);
	assert_int_equal(es_client_insert(f->c, "faces", ids, v, 100, 4), 0);

	assert_int_equal(es_client_collection_info(f->c, "faces", &ci), 0);
	assert_string_equal(ci.name, "faces");
	assert_int_equal(ci.dim, 4);
	assert_string_equal(ci.metric, "l2");
	assert_string_equal(ci.sync, "upload");
	assert_int_equal(ci.vectors, 100);
	assert_int_equal(es_client_collection_list(f->c, &list, &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(list[1].name, "other");
	assert_string_equal(list[1].sync, "none");
	free(list);

	assert_int_equal(es_client_get(f->c, "faces", 1007, got, 8, &dim), 0);
	assert_int_equal(dim, 4);
	assert_memory_equal(got, v + 7 * 4, 4 * sizeof(float));
	assert_int_equal(es_client_get(f->c, "faces", 1007, got, 3, &dim),
			 -ERANGE);
	assert_int_equal(dim, 4);
	rc = es_client_get(f->c, "faces", 5, got, 8, &dim);
	expect_remote(f->c, rc, "not_found",
		      "get: collection 'faces' has no vector with id 5");

	rc = es_client_search(f->c, "faces", v + 7 * 4, 4, 5, 0, hits);
	assert_int_equal(rc, 5);
	assert_int_equal(hits[0].id, 1007);
	assert_true(hits[0].distance == 0.0f);
	for (int i = 1; i < 5; i++)
		assert_true(hits[i].distance >= hits[i - 1].distance);

	assert_int_equal(es_client_delete(f->c, "faces", ids + 7, 1), 0);
	rc = es_client_get(f->c, "faces", 1007, got, 8, &dim);
	assert_int_equal(rc, ES_E_CLIENT_REMOTE);
	assert_int_equal(es_client_flush(f->c, "faces"), 0);

	assert_int_equal(es_client_segments(f->c, "faces", &segs, &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(segs[0].id, 1);
	assert_int_equal(segs[0].checksum, 0xdeadbeef);
	assert_int_equal(segs[0].indexed, 1);
	assert_int_equal(segs[0].index_size, 8192);
	assert_int_equal(segs[0].seal_hlc, 77);
	assert_string_equal(segs[0].origin, "dev-a");
	assert_int_equal(segs[0].clock_runs, 3);
	assert_int_equal(segs[0].clocks_crc, 0xfeedface);
	assert_int_equal(segs[1].id, -2);
	assert_int_equal(segs[1].indexed, 0);
	free(segs);

	/* verify: a finding is a reply, not an error */
	assert_int_equal(es_client_verify(f->c, "faces", 1, &ver), 0);
	assert_int_equal(ver.bytes, 4096 + 8192);
	assert_int_equal(ver.indexed, 1);
	assert_string_equal(ver.problem, "");
	assert_int_equal(es_client_verify(f->c, "faces", 2, &ver), 0);
	assert_non_null(strstr(ver.problem, "segment file: "));
	assert_int_equal(es_client_verify(f->c, "faces", 3, &ver),
			 ES_E_CLIENT_REMOTE);
	assert_string_equal(es_client_error_code(f->c), "not_found");
	assert_non_null(strstr(es_client_error(f->c), "has no segment 3"));
	assert_int_equal(es_client_verify(f->c, "nope", 1, &ver),
			 ES_E_CLIENT_REMOTE);
	assert_string_equal(es_client_error_code(f->c), "not_found");
	assert_int_equal(
	    es_client_verify_manifest(f->c, problem, sizeof(problem)), 0);
	assert_string_equal(problem, "");

	assert_int_equal(es_client_stats(f->c, &st), 0);
	assert_int_equal(st.collections, 2);
	assert_int_equal(st.vectors, 99);
	assert_int_equal(st.inserts, 100);
	assert_string_equal(st.device_id, "fake-device");
	assert_string_equal(st.version, ES_VERSION);

	assert_int_equal(es_client_collection_drop(f->c, "faces"), 0);
	rc = es_client_collection_info(f->c, "faces", &ci);
	expect_remote(f->c, rc, "not_found",
		      "collection.info: collection 'faces' does not exist");
	rc = es_client_flush(f->c, "faces");
	expect_remote(f->c, rc, "not_found",
		      "flush: collection 'faces' does not exist");
}

static void test_errors(void **state)
{
	struct fx *f = *state;
	struct es_client_hit hits[4];
	struct es_cbor_enc e;
	uint64_t ids[2] = {1, 2};
	float v[8] = {0};
	char code[32], msg[API_ERR_MAX + 32];
	int rc;

	assert_int_equal(
	    es_client_collection_create(f->c, "faces", 4, NULL, NULL), 0);
	rc = es_client_insert(f->c, "faces", ids, v, 2, 3);
	expect_remote(f->c, rc, "dim_mismatch",
		      "insert: vectors has 24 bytes for 2 ids; collection "
		      "'faces' has dim 4, so 32 bytes (n x dim x 4) were "
		      "expected");
	rc = es_client_search(f->c, "faces", v, 3, 4, 0, hits);
	expect_remote(f->c, rc, "dim_mismatch",
		      "search: vector has 3 values, collection 'faces' has "
		      "dim 4");
	v[1] = NAN;
	rc = es_client_search(f->c, "faces", v, 4, 4, 0, hits);
	expect_remote(f->c, rc, "bad_value", "search: vector value 1 is NaN");
	rc = es_client_search(f->c, "faces", v, 4, 1001, 0, hits);
	expect_remote(f->c, rc, "too_large", "search: k is 1001, at most 1000");
	rc = es_client_collection_create(f->c, "x", 4, "hamming", NULL);
	expect_remote(f->c, rc, "bad_value",
		      "collection.create: metric must be one of l2, ip, "
		      "cosine");
	rc = es_client_collection_create(f->c, "Bad Name", 4, NULL, NULL);
	expect_remote(f->c, rc, "bad_value",
		      "collection.create: collection name 'Bad Name' is not "
		      "1 to 64 characters of a-z, 0-9, _ and -");

	/* what the client library would never send */
	es_cbor_enc_init(&e);
	es_cbor_enc_map(&e, 2);
	es_cbor_enc_kv_uint(&e, "v", 1);
	es_cbor_enc_kv_text(&e, "op", "compact");
	assert_int_equal(raw_call(f->path, e.buf, e.len, code, msg), 0);
	assert_string_equal(code, "unknown_op");
	assert_string_equal(msg, "unknown op 'compact'");
	assert_int_equal(raw_call(f->path, "\xff\xfe", 2, code, msg), 0);
	assert_string_equal(code, "bad_request");
	assert_string_equal(msg, "request must be a map, not a break");
	es_cbor_enc_reset(&e, 0);
	es_cbor_enc_map(&e, 2);
	es_cbor_enc_kv_uint(&e, "v", 7);
	es_cbor_enc_kv_text(&e, "op", "ping");
	assert_int_equal(raw_call(f->path, e.buf, e.len, code, msg), 0);
	assert_string_equal(code, "bad_request");
	es_cbor_enc_reset(&e, 0);
	es_cbor_enc_map(&e, 3);
	es_cbor_enc_kv_uint(&e, "v", 1);
	es_cbor_enc_kv_text(&e, "op", "insert");
	es_cbor_enc_kv_text(&e, "collection", "faces");
	assert_int_equal(raw_call(f->path, e.buf, e.len, code, msg), 0);
	assert_string_equal(code, "bad_request");
	assert_string_equal(msg, "insert: missing field 'ids'");
	es_cbor_enc_fini(&e);

	/* the engine failing: internal, logged; closing: shutting_down */
	fake_engine_fail(f->e, -EIO);
	rc = es_client_collection_create(f->c, "y", 4, NULL, NULL);
	expect_remote(f->c, rc, "internal",
		      "collection.create: Input/output error");
	assert_true(log_has("collection.create on 'y' failed: Input/output "
			    "error"));
	fake_engine_fail(f->e, ES_E_ENGINE_CLOSING);
	rc = es_client_collection_create(f->c, "y", 4, NULL, NULL);
	expect_remote(f->c, rc, "shutting_down",
		      "collection.create: the agent is shutting down");
	fake_engine_fail(f->e, 0);
	assert_int_equal(es_client_ping(f->c), 0);
}

struct slow_arg {
	const char *path;
	int rc;
	struct es_client_hit hits[2];
};

static void *slow_search(void *p)
{
	struct slow_arg *a = p;
	struct es_client *c;
	float q[2] = {0, 0};

	a->rc = es_client_open(&c, a->path, 60000);
	if (a->rc == 0) {
		a->rc = es_client_search(c, "slow", q, 2, 2, 0, a->hits);
		if (a->rc < 0)
			print_message("slow search: %s\n", es_client_error(c));
		es_client_close(c);
	}
	return NULL;
}

/* Three of four workers stuck in the engine; the fourth serves others. */
static void test_parallel(void **state)
{
	struct fx *f = *state;
	struct slow_arg a[3];
	pthread_t t[3];
	uint64_t ids[2] = {1, 2};
	float v[4] = {1, 1, 0, 0}, q[2] = {1, 1};
	struct es_client_hit hits[2];

	assert_int_equal(
	    es_client_collection_create(f->c, "slow", 2, NULL, NULL), 0);
	assert_int_equal(
	    es_client_collection_create(f->c, "fast", 2, NULL, NULL), 0);
	assert_int_equal(es_client_insert(f->c, "slow", ids, v, 2, 2), 0);
	assert_int_equal(es_client_insert(f->c, "fast", ids, v, 2, 2), 0);
	for (int i = 0; i < 3; i++) {
		a[i].path = f->path;
		pthread_create(&t[i], NULL, slow_search, &a[i]);
	}
	fake_engine_wait_slow(f->e, 3);
	for (int i = 0; i < 50; i++) {
		assert_int_equal(es_client_ping(f->c), 0);
		assert_int_equal(
		    es_client_search(f->c, "fast", q, 2, 1, 0, hits), 1);
		assert_int_equal(hits[0].id, 1);
	}
	assert_int_equal(fake_engine_slow_entered(f->e), 3);
	fake_engine_release(f->e);
	for (int i = 0; i < 3; i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(a[i].rc, 2);
		assert_int_equal(a[i].hits[0].id, 2);
	}
}

/* 1,000 idle clients and 200 that never finish the SP handshake. */
static void test_idle_connections(void **state)
{
	struct fx *f = *state;
	struct es_client **idle = calloc(1000, sizeof(*idle));
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct rlimit rl;
	int raw[200];
	float v[2] = {3, 4};
	uint64_t id = 9;
	struct es_client_hit hit;

	getrlimit(RLIMIT_NOFILE, &rl);
	if (rl.rlim_cur < 4096 && rl.rlim_max >= 4096) {
		rl.rlim_cur = 4096;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	if (rl.rlim_cur < 4096) {
		print_message("RLIMIT_NOFILE %lu is too low: skipped\n",
			      (unsigned long)rl.rlim_cur);
		free(idle);
		return;
	}
	strcpy(sa.sun_path, f->path);
	for (int i = 0; i < 1000; i++)
		assert_int_equal(es_client_open(&idle[i], f->path, 10000), 0);
	for (int i = 0; i < 200; i++) {
		raw[i] = socket(AF_UNIX, SOCK_STREAM, 0);
		assert_int_equal(
		    connect(raw[i], (struct sockaddr *)&sa, sizeof(sa)), 0);
	}
	/* the idle ones that did connect still work, and so do new ones */
	assert_int_equal(es_client_ping(idle[0]), 0);
	assert_int_equal(es_client_ping(idle[999]), 0);
	assert_int_equal(
	    es_client_collection_create(f->c, "busy", 2, NULL, NULL), 0);
	assert_int_equal(es_client_insert(f->c, "busy", &id, v, 1, 2), 0);
	assert_int_equal(es_client_search(f->c, "busy", v, 2, 1, 0, &hit), 1);
	assert_int_equal(hit.id, 9);
	for (int i = 0; i < 1000; i++)
		es_client_close(idle[i]);
	free(idle);
	for (int i = 0; i < 200; i++) /* hang-ups: harmless */
		close(raw[i]);
	assert_int_equal(es_client_ping(f->c), 0);
	assert_int_equal(fresh_ping(f->path, 10000), 0);
}

static void test_limits(void **state)
{
	struct fx *f = *state;
	size_t n = 300000;
	uint64_t *ids = calloc(n, sizeof(*ids));
	float *v = calloc(n * 2, sizeof(*v));
	char code[32], msg[API_ERR_MAX + 32];
	struct es_cbor_enc e;
	int rc;

	fx_stop(f);
	fx_start(f, 2, 2 << 20, NULL, 0, NULL, 0); /* 2 MiB messages */
	assert_int_equal(es_client_collection_create(f->c, "c", 16, NULL, NULL),
			 0);
	/* 300,000 x 2 floats: 2.4 MB of floats, over 2 MiB */
	rc = es_client_insert(f->c, "c", ids, v, n, 2);
	assert_int_equal(rc, ES_E_CLIENT_TOO_BIG);
	assert_non_null(strstr(es_client_error(f->c), "the agent accepts at "
						      "most 2097152"));
	/* the connection is still good */
	assert_int_equal(es_client_ping(f->c), 0);
	rc = es_client_insert(f->c, "c", ids, v, API_MAX_BATCH + 1, 0);
	assert_int_equal(rc, -EINVAL);
	rc = es_client_insert(f->c, "c", ids, v, API_MAX_BATCH + 1, 2);
	expect_remote(f->c, rc, "too_large",
		      "insert: ids has 100001 entries, at most 100000 per "
		      "request");

	/* small on the wire, 6.4 MB once decoded: refused before decoding */
	es_cbor_enc_init(&e);
	es_cbor_enc_map(&e, 5);
	es_cbor_enc_kv_uint(&e, "v", 1);
	es_cbor_enc_kv_text(&e, "op", "insert");
	es_cbor_enc_kv_text(&e, "collection", "c");
	es_cbor_enc_text(&e, "ids");
	es_cbor_enc_array(&e, API_MAX_BATCH);
	for (int i = 0; i < API_MAX_BATCH; i++)
		es_cbor_enc_uint(&e, (uint64_t)i % 20);
	es_cbor_enc_text(&e, "vectors");
	es_cbor_enc_array(&e, API_MAX_BATCH);
	for (int i = 0; i < API_MAX_BATCH; i++) {
		es_cbor_enc_array(&e, 16);
		for (int j = 0; j < 16; j++)
			es_cbor_enc_uint(&e, 0);
	}
	assert_true(e.len < (2 << 20));
	assert_int_equal(raw_call(f->path, e.buf, e.len, code, msg), 0);
	assert_string_equal(code, "too_large");
	assert_string_equal(msg, "insert: 100000 vectors of dim 16 take "
				 "6400000 bytes, more than the 2097152 a "
				 "request may carry");
	es_cbor_enc_fini(&e);

	/*
	 * A message past the limit drops its connection and nobody else's
	 * (test_hostile_peers sends one by hand: an nng 1.5.2 client whose
	 * connection is closed in the middle of a large send can hang in
	 * nng_close, so this test does not use one for that).
	 */
	assert_int_equal(es_client_ping(f->c), 0);
	free(ids);
	free(v);
}

static void test_stale_and_live(void **state)
{
	struct fx *f = *state;
	struct es_api_server *s2;
	struct es_api_config ac = {0};
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	char path[160];
	struct stat st;
	int fd;

	/* a live agent on the path: refused, and the first keeps serving */
	ac.socket_path = f->path;
	assert_int_equal(es_api_server_start(&s2, f->e, &ac), -EADDRINUSE);
	assert_null(s2);
	assert_int_equal(es_client_ping(f->c), 0);

	/* a stale socket file (bound, nobody listening) is replaced */
	snprintf(path, sizeof(path), "%s/stale.sock", f->dir);
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	close(fd);
	ac.socket_path = path;
	assert_int_equal(es_api_server_start(&s2, f->e, &ac), 0);
	es_api_server_stop(s2);
	assert_int_equal(lstat(path, &st), -1); /* removed at stop */

	/* a file that is not a socket is left alone */
	fd = open(path, O_CREAT | O_WRONLY, 0600);
	close(fd);
	assert_int_equal(es_api_server_start(&s2, f->e, &ac), -EEXIST);
	assert_int_equal(lstat(path, &st), 0);
	assert_true(S_ISREG(st.st_mode));

	/* a path too long for sockaddr_un */
	memset(path, 'a', sizeof(path) - 1);
	path[0] = '/';
	path[sizeof(path) - 1] = '\0';
	assert_int_equal(es_api_server_start(&s2, f->e, &ac), -ENAMETOOLONG);
}

/* Runs this program as nobody pinging path: 10 if answered, 11 if not. */
static int ping_as_nobody(const char *path)
{
	pid_t pid = fork();
	int status;

	assert_true(pid >= 0);
	if (pid == 0) {
		execl(self_exe, self_exe, "--ping-as-nobody", path,
		      (char *)NULL);
		_exit(127);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	return WEXITSTATUS(status);
}

static int child_ping(const char *path)
{
	struct es_client *c;
	gid_t g = NOBODY;

	if (setgroups(1, &g) || setgid(NOBODY) || setuid(NOBODY))
		return 2;
	if (es_client_open(&c, path, 1500))
		return 11;
	if (es_client_ping(c)) {
		es_client_close(c);
		return 11;
	}
	es_client_close(c);
	return 10;
}

static void test_peer_credentials(void **state)
{
	struct fx *f = *state;
	uid_t uid = NOBODY;
	gid_t gid = NOBODY;
	char dir[160];

	if (geteuid() != 0) {
		print_message("not root: cannot run a client as nobody\n");
		return;
	}
	/* let nobody reach the socket, so that only the uid check stands */
	snprintf(dir, sizeof(dir), "%s/run", f->dir);
	assert_int_equal(chmod(f->dir, 0755), 0);
	assert_int_equal(chmod(dir, 0755), 0);
	assert_int_equal(chmod(f->path, 0666), 0);
	assert_int_equal(ping_as_nobody(f->path), 11);
	assert_true(log_has("refused a connection from uid 65534 gid 65534"));
	assert_int_equal(es_client_ping(f->c), 0);

	fx_stop(f);
	fx_start(f, 2, 0, &uid, 1, NULL, 0);
	assert_int_equal(chmod(f->path, 0666), 0);
	assert_int_equal(ping_as_nobody(f->path), 10);

	fx_stop(f);
	fx_start(f, 2, 0, NULL, 0, &gid, 1);
	assert_int_equal(chmod(f->path, 0666), 0);
	assert_int_equal(ping_as_nobody(f->path), 10);

	/* without the chmod, the file mode keeps nobody out first */
	fx_stop(f);
	fx_start(f, 2, 0, &uid, 1, NULL, 0);
	assert_int_equal(chmod(dir, 0750), 0);
	assert_int_equal(ping_as_nobody(f->path), 11);
}

/* No agent: open fails at once; an agent gone: requests fail at once. */
static void test_no_agent(void **state)
{
	struct fx *f = *state;
	struct es_client *c;
	char path[160];
	int rc;

	snprintf(path, sizeof(path), "%s/none.sock", f->dir);
	assert_int_equal(es_client_open(&c, path, 300), ES_E_CLIENT_CONNECT);
	assert_null(c);
	assert_int_equal(es_client_open(&c, f->path, 300), 0);
	assert_int_equal(es_client_ping(c), 0);
	fx_stop(f);
	/* the connection is gone: said at once (seen before the request
	 * was sent, or while it was on its way), never a timeout */
	rc = es_client_ping(c);
	assert_int_equal(rc, ES_E_CLIENT_CONNECT);
	if (!strstr(es_client_error(c), "ping: the agent closed the connection "
					"before answering") &&
	    !strstr(es_client_error(c), "ping: the connection to the agent "
					"has closed"))
		fail_msg("ping after stop: %s", es_client_error(c));
	es_client_close(c);
}

struct pinger {
	struct es_client *c;
	int rc;
};

static void *ping_main(void *p)
{
	struct pinger *a = p;

	a->rc = es_client_ping(a->c);
	return NULL;
}

/*
 * The connection closing under a request (the agent stopping): the client
 * says so at once, and that the request may or may not have been
 * applied, instead of waiting out its timeout with the request kept to
 * send again; and the request is not sent again to the next agent that
 * listens on the socket.
 */
static void test_closed_under_request(void **state)
{
	struct fx *f = *state;
	struct pinger a = {0};
	char path[160], url[200];
	nng_socket rep;
	pthread_t t;
	nng_msg *m;

	snprintf(path, sizeof(path), "%s/raw.sock", f->dir);
	snprintf(url, sizeof(url), "ipc://%s", path);
	assert_int_equal(nng_rep0_open(&rep), 0);
	assert_int_equal(nng_listen(rep, url, NULL, 0), 0);
	assert_int_equal(es_client_open(&a.c, path, 20000), 0);
	assert_int_equal(pthread_create(&t, NULL, ping_main, &a), 0);
	assert_int_equal(nng_recvmsg(rep, &m, 0), 0); /* the request */
	nng_msg_free(m);
	nng_close(rep); /* gone without an answer */
	pthread_join(t, NULL);
	assert_int_equal(a.rc, ES_E_CLIENT_CONNECT);
	assert_non_null(strstr(es_client_error(a.c), "may or may not"));
	/* the client is done: a next request fails at once, unsent */
	assert_int_equal(es_client_ping(a.c), ES_E_CLIENT_CONNECT);
	assert_non_null(strstr(es_client_error(a.c), "nothing was sent"));

	assert_int_equal(nng_rep0_open(&rep), 0);
	assert_int_equal(nng_listen(rep, url, NULL, 0), 0);
	assert_int_equal(nng_socket_set_ms(rep, NNG_OPT_RECVTIMEO, 1000), 0);
	assert_int_equal(nng_recvmsg(rep, &m, 0), NNG_ETIMEDOUT);
	es_client_close(a.c);
	nng_close(rep);
}

struct stopper {
	struct es_api_server *s;
};

static void *stop_server(void *p)
{
	es_api_server_stop(((struct stopper *)p)->s);
	return NULL;
}

/*
 * A search in flight when stop begins gets its answer; requests that
 * arrive while stop waits for it are answered shutting_down.
 */
static void test_stop_in_flight(void **state)
{
	struct fx *f = *state;
	struct slow_arg a = {.path = f->path};
	struct stopper st = {.s = f->s};
	uint64_t ids[2] = {1, 2};
	float v[4] = {1, 1, 0, 0};
	pthread_t t, ts;
	struct stat sb;

	assert_int_equal(
	    es_client_collection_create(f->c, "slow", 2, NULL, NULL), 0);
	assert_int_equal(es_client_insert(f->c, "slow", ids, v, 2, 2), 0);
	pthread_create(&t, NULL, slow_search, &a);
	fake_engine_wait_slow(f->e, 1);
	pthread_create(&ts, NULL, stop_server, &st);
	/* once stop waits for the search, requests are answered late */
	for (int i = 0;; i++) {
		int rc = es_client_ping(f->c);

		if (rc == 0 && i < 1000) {
			usleep(10000);
			continue;
		}
		expect_remote(f->c, rc, "shutting_down",
			      "ping: the agent is shutting down");
		break;
	}
	fake_engine_release(f->e);
	pthread_join(t, NULL);
	pthread_join(ts, NULL);
	f->s = NULL;
	assert_int_equal(a.rc, 2);
	assert_int_equal(a.hits[0].id, 2);
	assert_int_equal(lstat(f->path, &sb), -1);
	es_client_close(f->c);
	es_engine_close(f->e);
	f->c = NULL;
	f->e = NULL;
}

/* A collection dropped and created with another dim mid-request. */
static void test_dim_race(void **state)
{
	struct fx *f = *state;
	struct es_client_collection ci;
	struct es_client_hit hits[2];
	uint64_t ids[2] = {1, 2};
	float v[8] = {1, 2, 3, 4, 5, 6, 7, 8}, got[8];
	uint32_t dim;
	int rc;

	assert_int_equal(
	    es_client_collection_create(f->c, "flip", 4, NULL, NULL), 0);
	assert_int_equal(es_client_insert(f->c, "flip", ids, v, 2, 4), 0);
	fake_engine_redim_after_dim(f->e, "flip", 8);
	rc = es_client_insert(f->c, "flip", ids, v, 2, 4);
	expect_remote(f->c, rc, "dim_mismatch",
		      "insert: collection 'flip' was created again with "
		      "another dim while the request ran");
	assert_int_equal(es_client_collection_info(f->c, "flip", &ci), 0);
	assert_int_equal(ci.dim, 8);
	assert_int_equal(ci.vectors, 0); /* nothing of it went in */

	assert_int_equal(es_client_insert(f->c, "flip", ids, v, 1, 8), 0);
	fake_engine_redim_after_dim(f->e, "flip", 2);
	rc = es_client_search(f->c, "flip", v, 8, 2, 0, hits);
	assert_int_equal(rc, ES_E_CLIENT_REMOTE);
	assert_string_equal(es_client_error_code(f->c), "dim_mismatch");
	assert_int_equal(es_client_insert(f->c, "flip", ids, v, 1, 2), 0);
	fake_engine_redim_after_dim(f->e, "flip", 3);
	rc = es_client_get(f->c, "flip", 1, got, 8, &dim);
	assert_int_equal(rc, ES_E_CLIENT_REMOTE);
	assert_string_equal(es_client_error_code(f->c), "dim_mismatch");
}

/* ---- the SP wire by hand ------------------------------------------------ */

static const uint8_t req0_hs[8] = {0, 'S', 'P', 0, 0, 0x30, 0, 0};

static ssize_t read_full(int fd, void *buf, size_t n)
{
	size_t got = 0;

	while (got < n) {
		ssize_t r = read(fd, (char *)buf + got, n - got);

		if (r <= 0)
			return r;
		got += (size_t)r;
	}
	return (ssize_t)got;
}

/* A raw connection that got the server's handshake (rep0); hs, if any,
 * is sent as ours. Reads time out after 10 s, so nothing here hangs. */
static int sp_connect(const char *path, const uint8_t *hs)
{
	static const uint8_t rep0[8] = {0, 'S', 'P', 0, 0, 0x31, 0, 0};
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct timeval tv = {.tv_sec = 10};
	uint8_t got[8];
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);

	assert_true(fd >= 0);
	strcpy(sa.sun_path, path);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	assert_int_equal(read_full(fd, got, 8), 8);
	assert_memory_equal(got, rep0, 8);
	if (hs)
		assert_int_equal(write(fd, hs, 8), 8);
	return fd;
}

/* Sends a frame: type, a declared length, and the bytes given. */
static void sp_send(int fd, uint8_t type, uint64_t declared, const void *p,
		    size_t n)
{
	uint8_t head[9];

	head[0] = type;
	for (int i = 0; i < 8; i++)
		head[1 + i] = (uint8_t)(declared >> (56 - 8 * i));
	assert_int_equal(send(fd, head, 9, MSG_NOSIGNAL), 9);
	/* the server may have closed on the head alone (a bad type or
	 * length): the rest then fails, and the caller sees the close */
	if (n && send(fd, p, n, MSG_NOSIGNAL) != (ssize_t)n)
		print_message(
		    "(the server closed before the message's body)\n");
}

/* Reads one reply frame into body (at most cap bytes): its length. */
static size_t read_frame(int fd, uint8_t *body, size_t cap)
{
	uint8_t head[9];
	uint64_t len = 0;

	assert_int_equal(read_full(fd, head, 9), 9);
	assert_int_equal(head[0], 1);
	for (int i = 0; i < 8; i++)
		len = len << 8 | head[1 + i];
	assert_true(len <= cap);
	assert_int_equal(read_full(fd, body, len), (ssize_t)len);
	return (size_t)len;
}

/* The ping request's body. */
static size_t ping_body(uint8_t *buf, size_t cap)
{
	struct es_cbor_enc e;
	size_t n;

	es_cbor_enc_init(&e);
	es_cbor_enc_map(&e, 2);
	es_cbor_enc_kv_uint(&e, "v", 1);
	es_cbor_enc_kv_text(&e, "op", "ping");
	assert_true(e.len <= cap);
	memcpy(buf, e.buf, e.len);
	n = e.len;
	es_cbor_enc_fini(&e);
	return n;
}

/* Reads one reply frame: checks its header words, returns ok. */
static int sp_reply(int fd, const uint8_t *hdr, size_t hl)
{
	static const char *const keys[] = {"ok", "error", "v"};
	struct es_cbor_span f[3];
	struct es_cbor_reader r, sub;
	char err[API_ERR_MAX];
	uint8_t body[512];
	size_t len = read_frame(fd, body, sizeof(body));
	int ok = 0;

	assert_true(len > hl);
	assert_memory_equal(body, hdr, hl);
	es_cbor_reader_init(&r, body + hl, len - hl, err);
	assert_int_equal(es_cbor_map_index(&r, keys, 3, f, 0, "reply"), 0);
	es_cbor_reader_span(&sub, &r, &f[0]);
	assert_int_equal(es_cbor_get_bool(&sub, "ok", &ok), 0);
	return ok;
}

/* Whether the server closed fd (end of stream before the read timeout). */
static int closed_by_server(int fd)
{
	char b[256];
	ssize_t n;

	while ((n = read(fd, b, sizeof(b))) > 0)
		;
	return n == 0 || (n < 0 && errno == ECONNRESET);
}

/* Connects with a plain Unix socket and hangs up at once. */
static void hang_up(const char *path, int times)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};

	strcpy(sa.sun_path, path);
	for (int i = 0; i < times; i++) {
		int fd = socket(AF_UNIX, SOCK_STREAM, 0);

		assert_true(fd >= 0);
		assert_int_equal(
		    connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
		close(fd);
	}
}

/*
 * The wire itself: a request with a backtrace (a hop and the request
 * id) gets both words echoed; two requests in flight on one connection
 * get their own replies.
 */
static void test_sp_wire(void **state)
{
	struct fx *f = *state;
	uint8_t msg[256], seen = 0;
	size_t n;
	int fd = sp_connect(f->path, req0_hs);

	static const uint8_t hop_and_id[8] = {0, 0, 0, 7, 0x80, 0, 0, 0x2a};
	n = ping_body(msg + 8, sizeof(msg) - 8);
	memcpy(msg, hop_and_id, 8);
	sp_send(fd, 1, 8 + n, msg, 8 + n);
	assert_true(sp_reply(fd, hop_and_id, 8));

	for (uint8_t id = 1; id <= 2; id++) {
		uint8_t h[4] = {0x80, 0, 0, id};

		memcpy(msg, h, 4);
		n = ping_body(msg + 4, sizeof(msg) - 4);
		sp_send(fd, 1, 4 + n, msg, 4 + n);
	}
	for (int i = 0; i < 2; i++) { /* either order */
		uint8_t body[256];

		read_frame(fd, body, sizeof(body));
		assert_true(body[0] == 0x80 && body[3] >= 1 && body[3] <= 2);
		seen |= (uint8_t)(1 << body[3]);
	}
	assert_int_equal(seen, 6);
	close(fd);
}

/*
 * Peers that break the protocol lose their own connection, and nobody
 * else notices: a request in flight gets its answer, accepted clients
 * and new ones are served at once (no restart, no retry). Hang-ups
 * before the handshake are what froze nng 1.5.2's own ipc listener.
 */
static void test_hostile_peers(void **state)
{
	struct fx *f = *state;
	static struct slow_arg a; /* outlives a failed test's frame */
	static const uint8_t http[8] = {'G', 'E', 'T', ' ', '/', ' ', 'H', 'T'};
	static const uint8_t rep0_hs[8] = {0, 'S', 'P', 0, 0, 0x31, 0, 0};
	uint64_t ids[2] = {1, 2};
	float v[4] = {1, 1, 0, 0};
	uint8_t zeros[64] = {0}, msg[256];
	pthread_t t;
	int fd;

	a.path = f->path;
	assert_int_equal(
	    es_client_collection_create(f->c, "slow", 2, NULL, NULL), 0);
	assert_int_equal(es_client_insert(f->c, "slow", ids, v, 2, 2), 0);
	pthread_create(&t, NULL, slow_search, &a);
	fake_engine_wait_slow(f->e, 1); /* a request in flight */

	for (int round = 0; round < 10; round++) {
		hang_up(f->path, 5);
		assert_int_equal(fresh_ping(f->path, 10000), 0);
	}

	fd = sp_connect(f->path, http); /* not SP at all */
	assert_true(closed_by_server(fd));
	close(fd);
	fd = sp_connect(f->path, rep0_hs); /* SP, but not a REQ peer */
	assert_true(closed_by_server(fd));
	close(fd);
	fd = sp_connect(f->path, req0_hs); /* a frame type ipc lacks */
	sp_send(fd, 2, 4, "\x80\0\0\1", 4);
	assert_true(closed_by_server(fd));
	close(fd);
	fd = sp_connect(f->path, req0_hs); /* 1 TiB announced */
	sp_send(fd, 1, (uint64_t)1 << 40, zeros, 16);
	assert_true(closed_by_server(fd));
	close(fd);
	fd = sp_connect(f->path, req0_hs); /* no request id in 8 words */
	sp_send(fd, 1, 36, zeros, 36);
	assert_true(closed_by_server(fd));
	close(fd);
	fd = sp_connect(f->path, req0_hs); /* an empty message */
	sp_send(fd, 1, 0, NULL, 0);
	assert_true(closed_by_server(fd));
	close(fd);
	fd = sp_connect(f->path, req0_hs); /* half a message, then gone */
	memcpy(msg, "\x80\0\0\1", 4);
	sp_send(fd, 1, 1000, msg, 4);
	close(fd);
	fd = sp_connect(f->path, NULL); /* half a handshake, then gone */
	assert_int_equal(write(fd, req0_hs, 3), 3);
	close(fd);

	assert_int_equal(es_client_ping(f->c), 0); /* accepted before */
	assert_int_equal(fresh_ping(f->path, 10000), 0);
	fake_engine_release(f->e);
	pthread_join(t, NULL);
	assert_int_equal(a.rc, 2);
	assert_int_equal(a.hits[0].id, 2);
}

/* A plain connection: whether the server closed it without a handshake. */
static int refused_at_accept(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct timeval tv = {.tv_sec = 10};
	int fd = socket(AF_UNIX, SOCK_STREAM, 0), closed;
	char b[8];

	assert_true(fd >= 0);
	strcpy(sa.sun_path, path);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	closed = read(fd, b, sizeof(b)) == 0;
	close(fd);
	return closed;
}

/*
 * max_clients: past it a new connection is closed at accept, and said
 * so in the log; the clients already in keep working, and once one
 * leaves a new one is let in.
 */
static void test_max_clients(void **state)
{
	struct fx *f = *state;
	int fd[3], tries = 0;

	fx_stop(f);
	fx_max_clients = 4;
	fx_start(f, 2, 0, NULL, 0, NULL, 0); /* f->c is one */
	for (int i = 0; i < 3; i++)
		fd[i] = sp_connect(f->path, req0_hs);
	assert_true(refused_at_accept(f->path));
	assert_true(refused_at_accept(f->path));
	assert_true(log_has("API socket: refused 1 connection: 4 clients are "
			    "connected"));
	assert_int_equal(es_client_ping(f->c), 0);
	close(fd[0]);
	/* the server sees the hang-up as soon as its loop wakes */
	while (fresh_ping(f->path, 10000) != 0 && ++tries < 100)
		usleep(50 * 1000);
	assert_true(tries < 100);
	close(fd[1]);
	close(fd[2]);
}

/*
 * A client that sends requests and never reads the replies: once about
 * 4 MiB of its replies wait, its requests are no longer read, so its
 * sending stops (the socket fills), while everyone else is served.
 */
static void test_unread_replies(void **state)
{
	struct fx *f = *state;
	uint8_t msg[64], frame[73];
	size_t n = 0, sent = 0, total;
	int fd = sp_connect(f->path, req0_hs), stopped = 0;
	struct pollfd p = {.fd = fd, .events = POLLOUT};

	memcpy(msg, "\x80\0\0\1", 4);
	n = 4 + ping_body(msg + 4, sizeof(msg) - 4);
	frame[0] = 1;
	for (int i = 0; i < 8; i++)
		frame[1 + i] = (uint8_t)((uint64_t)n >> (56 - 8 * i));
	memcpy(frame + 9, msg, n);
	/* 400,000 pings' replies would be 40 MB and more */
	total = (size_t)400000 * (9 + n);
	while (sent < total) {
		ssize_t k =
		    send(fd, frame + sent % (9 + n), (9 + n) - sent % (9 + n),
			 MSG_NOSIGNAL | MSG_DONTWAIT);

		if (k > 0) {
			sent += (size_t)k;
			continue;
		}
		assert_true(k < 0 && (errno == EAGAIN || errno == EINTR));
		if (poll(&p, 1, 3000) == 0) { /* the server stopped reading */
			stopped = 1;
			break;
		}
	}
	assert_true(stopped);
	assert_int_equal(es_client_ping(f->c), 0);
	assert_int_equal(fresh_ping(f->path, 10000), 0);
	close(fd);
	assert_int_equal(es_client_ping(f->c), 0);
}

/*
 * A request that stops arriving half-way, in its body or its frame
 * header: its connection is closed after send_timeout_ms (its buffer
 * with it), and said so in the log.
 */
static void test_partial_request(void **state)
{
	struct fx *f = *state;
	uint8_t msg[64];
	int fd;

	fx_stop(f);
	fx_send_timeout_ms = 300;
	fx_start(f, 2, 0, NULL, 0, NULL, 0);
	fd = sp_connect(f->path, req0_hs);
	memcpy(msg, "\x80\0\0\1", 4);
	sp_send(fd, 1, 100000, msg, 64); /* 64 of 100,000 bytes */
	assert_true(closed_by_server(fd));
	close(fd);
	assert_true(log_has("64 of a 100000-byte message came, then nothing "
			    "for 300 ms"));
	fd = sp_connect(f->path, req0_hs); /* 3 of a frame header's 9 */
	assert_int_equal(write(fd, "\x01\0\0", 3), 3);
	assert_true(closed_by_server(fd));
	close(fd);
	assert_true(log_has("3 bytes of a message's 9-byte frame header came"));
	assert_int_equal(es_client_ping(f->c), 0);
}

/*
 * max_message bounds the request, not nng's header before it: a request
 * of exactly max_message bytes is read (and answered), one byte more
 * closes its connection; the client library refuses the same one.
 */
static void test_limit_is_the_request(void **state)
{
	struct fx *f = *state;
	static uint8_t msg[4 + 65537];
	static const uint8_t id[4] = {0x80, 0, 0, 1};
	size_t n = 30000;
	uint64_t *ids = calloc(n, sizeof(*ids));
	float *v = calloc(n, sizeof(*v));
	int fd, rc;

	fx_stop(f);
	fx_start(f, 2, 65536, NULL, 0, NULL, 0);
	memcpy(msg, id, 4);
	memset(msg + 4, 0xff, sizeof(msg) - 4); /* not CBOR: an error reply */
	fd = sp_connect(f->path, req0_hs);
	sp_send(fd, 1, 4 + 65536, msg, 4 + 65536);
	assert_int_equal(sp_reply(fd, id, 4), 0);
	sp_send(fd, 1, 4 + 65537, msg, 4 + 65537);
	assert_true(closed_by_server(fd));
	close(fd);
	/* 30,000 vectors of dim 1: 120 KB, refused before sending */
	assert_int_equal(es_client_collection_create(f->c, "c", 1, NULL, NULL),
			 0);
	rc = es_client_insert(f->c, "c", ids, v, n, 1);
	assert_int_equal(rc, ES_E_CLIENT_TOO_BIG);
	assert_int_equal(es_client_ping(f->c), 0);
	free(ids);
	free(v);
}

/* Sends a search on "slow" (request id) over a raw SP connection. */
static void slow_search_raw(int fd, uint8_t id)
{
	uint8_t msg[128] = {0x80, 0, 0, id};
	float q[2] = {1, 1};
	struct es_cbor_enc e;

	es_cbor_enc_init(&e);
	es_cbor_enc_map(&e, 5);
	es_cbor_enc_kv_uint(&e, "v", 1);
	es_cbor_enc_kv_text(&e, "op", "search");
	es_cbor_enc_kv_text(&e, "collection", "slow");
	es_cbor_enc_kv_bytes(&e, "vector", q, sizeof(q));
	es_cbor_enc_kv_uint(&e, "k", 1);
	assert_true(e.len <= sizeof(msg) - 4);
	memcpy(msg + 4, e.buf, e.len);
	sp_send(fd, 1, 4 + e.len, msg, 4 + e.len);
	es_cbor_enc_fini(&e);
}

struct other_arg {
	const char *path;
	int rc;
};

/* Another client's request, made while the worker is held. */
static void *other_create(void *p)
{
	struct other_arg *a = p;
	struct es_client *b;

	a->rc = es_client_open(&b, a->path, 5000);
	if (a->rc == 0) {
		a->rc = es_client_collection_create(b, "other", 2, NULL, NULL);
		es_client_close(b);
	}
	return NULL;
}

/*
 * Connections take turns: with one worker, a client with three searches
 * waiting does not hold up another's request for all three. The worker
 * is held in the first client's first search while its three others and
 * the second client's request wait; let two searches through, one at a
 * time: the second client's request comes right after the first of the
 * three (in arrival order it would wait behind all three, and time out).
 */
static void test_turns(void **state)
{
	struct fx *f = *state;
	static struct other_arg a; /* outlives a failed test's frame */
	uint64_t ids[2] = {1, 2};
	float v[4] = {1, 1, 0, 0};
	pthread_t t;
	int fd;

	fx_stop(f);
	fx_start(f, 1, 0, NULL, 0, NULL, 0);
	assert_int_equal(
	    es_client_collection_create(f->c, "slow", 2, NULL, NULL), 0);
	assert_int_equal(es_client_insert(f->c, "slow", ids, v, 2, 2), 0);
	fd = sp_connect(f->path, req0_hs);
	slow_search_raw(fd, 1);
	fake_engine_wait_slow(f->e, 1); /* the worker is held */
	for (uint8_t id = 2; id <= 4; id++)
		slow_search_raw(fd, id);
	for (int i = 0; es_api_server_waiting(f->s) < 3; i++) {
		assert_true(i < 10000); /* queued before the other's */
		usleep(1000);
	}
	a.path = f->path;
	a.rc = -1;
	pthread_create(&t, NULL, other_create, &a);
	for (int i = 0; es_api_server_waiting(f->s) < 4; i++) {
		assert_true(i < 10000); /* the other's too */
		usleep(1000);
	}
	fake_engine_permit(f->e, 1); /* search 1 ends, search 2 begins */
	fake_engine_wait_slow(f->e, 2);
	fake_engine_permit(f->e, 1); /* search 2 ends: the other's turn */
	pthread_join(t, NULL);
	assert_int_equal(a.rc, 0);
	fake_engine_release(f->e);
	for (int i = 0; i < 4; i++) {
		uint8_t body[512];

		read_frame(fd, body, sizeof(body));
	}
	close(fd);
}

/* Starting a second server on a live socket never disturbs the first. */
static void test_second_start(void **state)
{
	struct fx *f = *state;
	struct es_api_server *s2;
	struct es_api_config ac = {0};

	ac.socket_path = f->path;
	for (int i = 0; i < 20; i++) {
		assert_int_equal(es_api_server_start(&s2, f->e, &ac),
				 -EADDRINUSE);
		assert_int_equal(fresh_ping(f->path, 10000), 0);
	}
	assert_int_equal(es_client_ping(f->c), 0);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_socket_files, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_every_op, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_errors, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_parallel, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_idle_connections, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_limits, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_stale_and_live, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_peer_credentials, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_no_agent, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_stop_in_flight, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_dim_race, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_sp_wire, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_hostile_peers, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_second_start, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_max_clients, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_turns, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_closed_under_request, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_unread_replies, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_partial_request, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_limit_is_the_request, setup,
					    teardown),
	};
	ssize_t n;

	if (argc == 3 && !strcmp(argv[1], "--ping-as-nobody"))
		_exit(child_ping(argv[2]));
	n = readlink("/proc/self/exe", self_exe, sizeof(self_exe) - 1);
	if (n > 0)
		self_exe[n] = '\0';
	if (getenv("ES_TEST_FILTER")) /* e.g. test_hostile_peers */
		cmocka_set_test_filter(getenv("ES_TEST_FILTER"));
	return cmocka_run_group_tests(tests, NULL, NULL);
}
