/*
 * The API server with the C client, against an in-memory engine
 * (fake_engine.c) so that the server's own behaviour can be held still:
 * socket files and modes, stale and live sockets, every op and its error
 * codes, parallel requests while others block in the engine, 1,000 idle
 * connections, size limits, refused peers (the test re-executes itself as
 * user nobody), a stop that lets a request in flight finish, a request
 * racing a drop and create, and the listener watchdog: peers that hang up
 * before nng's handshake freeze an nng 1.5.2 listener (nng #1518), and the
 * server must recover on its own (those run in a child process, see
 * test_listener_watchdog). ES_TEST_NO_WATCHDOG=1 runs listener_freeze with
 * the watchdog off, to show that it catches the freeze (it fails then).
 * ES_TEST_FILTER=<cmocka pattern> runs only some tests.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <math.h>
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

static void log_clear(void)
{
	pthread_mutex_lock(&log_mu);
	log_text[0] = '\0';
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
	unsigned watchdog_ms; /* 0: the default */
	struct es_engine *e;
	struct es_api_server *s;
	struct es_client *c;
};

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
	ac.watchdog_ms = f->watchdog_ms;
	ac.log = test_log;
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
	struct api_span f[3], ef[2];
	struct api_reader r, sub;
	char url[160], err[API_ERR_MAX];
	nng_socket sock;
	nng_msg *m;
	uint64_t v;
	int ok;

	snprintf(url, sizeof(url), "ipc://%s", path);
	/*
	 * A few tries on fresh connections: on a loaded machine the server's
	 * watchdog may be replacing a listener that nng bug #1518 froze.
	 */
	for (int attempt = 0;; attempt++) {
		int rc;

		assert_int_equal(nng_req0_open(&sock), 0);
		nng_socket_set_ms(sock, NNG_OPT_RECVTIMEO, 10000);
		nng_socket_set_ms(sock, NNG_OPT_SENDTIMEO, 10000);
		assert_int_equal(nng_dial(sock, url, NULL, 0), 0);
		rc = nng_send(sock, (void *)req, len, 0);
		if (rc == 0)
			rc = nng_recvmsg(sock, &m, 0);
		if (rc == 0)
			break;
		nng_close(sock);
		assert_int_equal(rc, NNG_ETIMEDOUT);
		assert_true(attempt < 3);
	}
	api_reader_init(&r, nng_msg_body(m), nng_msg_len(m), err);
	assert_int_equal(api_map_index(&r, keys, 3, f, 0, "reply"), 0);
	api_reader_span(&sub, &r, &f[0]);
	assert_int_equal(api_get_bool(&sub, "ok", &ok), 0);
	api_reader_span(&sub, &r, &f[2]);
	assert_int_equal(api_get_uint(&sub, "v", &v), 0);
	assert_int_equal(v, 1);
	if (!ok) {
		api_reader_span(&sub, &r, &f[1]);
		assert_int_equal(api_map_index(&sub, ekeys, 2, ef, 0, "e"), 0);
		api_reader_span(&sub, &r, &ef[0]);
		assert_int_equal(api_get_text(&sub, "code", code, 32), 0);
		api_reader_span(&sub, &r, &ef[1]);
		assert_int_equal(
		    api_get_text(&sub, "msg", msg, API_ERR_MAX + 32), 0);
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
	struct es_client_stats st;
	struct es_client_hit hits[10];
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
	assert_int_equal(segs[1].id, -2);
	assert_int_equal(segs[1].indexed, 0);
	free(segs);

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
	struct api_enc e;
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
	api_enc_init(&e);
	api_enc_map(&e, 2);
	api_enc_kv_uint(&e, "v", 1);
	api_enc_kv_text(&e, "op", "compact");
	assert_int_equal(raw_call(f->path, e.buf, e.len, code, msg), 0);
	assert_string_equal(code, "unknown_op");
	assert_string_equal(msg, "unknown op 'compact'");
	assert_int_equal(raw_call(f->path, "\xff\xfe", 2, code, msg), 0);
	assert_string_equal(code, "bad_request");
	assert_string_equal(msg, "request must be a map, not a break");
	api_enc_reset(&e, 0);
	api_enc_map(&e, 2);
	api_enc_kv_uint(&e, "v", 7);
	api_enc_kv_text(&e, "op", "ping");
	assert_int_equal(raw_call(f->path, e.buf, e.len, code, msg), 0);
	assert_string_equal(code, "bad_request");
	api_enc_reset(&e, 0);
	api_enc_map(&e, 3);
	api_enc_kv_uint(&e, "v", 1);
	api_enc_kv_text(&e, "op", "insert");
	api_enc_kv_text(&e, "collection", "faces");
	assert_int_equal(raw_call(f->path, e.buf, e.len, code, msg), 0);
	assert_string_equal(code, "bad_request");
	assert_string_equal(msg, "insert: missing field 'ids'");
	api_enc_fini(&e);

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
	assert_int_equal(es_client_ping(f->c), 0);
	/*
	 * Hanging up the 200 now would freeze nng 1.5.2's listener (see
	 * listener_freeze, which runs where nng's leaks from that are
	 * expected): stop first.
	 */
	fx_stop(f);
	for (int i = 0; i < 200; i++)
		close(raw[i]);
}

static void test_limits(void **state)
{
	struct fx *f = *state;
	size_t n = 300000;
	uint64_t *ids = calloc(n, sizeof(*ids));
	float *v = calloc(n * 2, sizeof(*v));
	char code[32], msg[API_ERR_MAX + 32];
	struct api_enc e;
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
	api_enc_init(&e);
	api_enc_map(&e, 5);
	api_enc_kv_uint(&e, "v", 1);
	api_enc_kv_text(&e, "op", "insert");
	api_enc_kv_text(&e, "collection", "c");
	api_enc_text(&e, "ids");
	api_enc_array(&e, API_MAX_BATCH);
	for (int i = 0; i < API_MAX_BATCH; i++)
		api_enc_uint(&e, (uint64_t)i % 20);
	api_enc_text(&e, "vectors");
	api_enc_array(&e, API_MAX_BATCH);
	for (int i = 0; i < API_MAX_BATCH; i++) {
		api_enc_array(&e, 16);
		for (int j = 0; j < 16; j++)
			api_enc_uint(&e, 0);
	}
	assert_true(e.len < (2 << 20));
	assert_int_equal(raw_call(f->path, e.buf, e.len, code, msg), 0);
	assert_string_equal(code, "too_large");
	assert_string_equal(msg, "insert: 100000 vectors of dim 16 take "
				 "6400000 bytes, more than the 2097152 a "
				 "request may carry");
	api_enc_fini(&e);

	/* past the client's check: no reply, the others carry on */
	{
		size_t big = 3 << 20;
		char *junk = calloc(1, big), url[160];
		nng_socket sock;
		nng_msg *m;

		snprintf(url, sizeof(url), "ipc://%s", f->path);
		assert_int_equal(nng_req0_open(&sock), 0);
		nng_socket_set_ms(sock, NNG_OPT_RECVTIMEO, 500);
		/* the agent drops the connection, maybe while this is sent */
		nng_socket_set_ms(sock, NNG_OPT_SENDTIMEO, 2000);
		assert_int_equal(nng_dial(sock, url, NULL, 0), 0);
		if (nng_send(sock, junk, big, 0) == 0)
			assert_int_not_equal(nng_recvmsg(sock, &m, 0), 0);
		nng_close(sock);
		free(junk);
	}
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

/* No agent: open fails at once; an agent gone: requests time out. */
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
	/* the request times out, or nng sees the connection go first */
	rc = es_client_ping(c);
	if (rc == ES_E_CLIENT_TIMEOUT)
		assert_string_equal(es_client_error(c),
				    "ping: no reply within 300 ms");
	else if (rc == ES_E_CLIENT_CONNECT)
		assert_non_null(strstr(es_client_error(c),
				       "ping: the agent closed the connection "
				       "before answering"));
	else
		fail_msg("ping after stop: %d %s", rc, es_client_error(c));
	es_client_close(c);
}

struct stopper {
	struct es_api_server *s;
};

static void *stop_server(void *p)
{
	es_api_server_stop(((struct stopper *)p)->s);
	return NULL;
}

/* A search in flight when stop begins gets its answer. */
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
	usleep(100000); /* stop is waiting for the search (or about to) */
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

/* ---- the listener watchdog (nng #1518) -------------------------------- */

/* Connects with a plain Unix socket and hangs up: what trips nng #1518. */
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

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

#define RECOVER_MS 20000 /* a bound, not a figure: the check is every 2 s */

/* Pings with c (NULL: a new connection each time) until answered. */
static int ping_until(struct es_client *c, const char *path)
{
	uint64_t t0 = now_ms();
	int rc;

	do {
		rc = c ? es_client_ping(c) : fresh_ping(path, 500);
		if (rc == 0)
			return 0;
		usleep(100000);
	} while (now_ms() - t0 < RECOVER_MS);
	return rc;
}

/*
 * Peers hang up before the handshake: new connections get answered again
 * within the watchdog's period, connections accepted before keep working
 * all along (one with a request in flight gets its answer), a client that
 * connected while the listener was stuck recovers, the socket file keeps
 * its mode and the size limit still holds. Runs in a child process (see
 * test_listener_watchdog).
 */
static void listener_freeze(void **state)
{
	struct fx *f = *state;
	const char *off = getenv("ES_TEST_NO_WATCHDOG");
	static struct slow_arg a; /* outlives a failed test's frame */
	struct es_client *stuck = NULL;
	uint64_t ids[2] = {1, 2};
	float v[4] = {1, 1, 0, 0};
	char tmp[160];
	struct stat st;
	int frozen = 0, rounds;
	uint64_t t0;
	pthread_t t;

	fx_stop(f);
	f->watchdog_ms = off && !strcmp(off, "1") ? ES_API_WATCHDOG_OFF : 0;
	fx_start(f, 4, 2 << 20, NULL, 0, NULL, 0);
	log_clear();
	a.path = f->path;
	assert_int_equal(
	    es_client_collection_create(f->c, "slow", 2, NULL, NULL), 0);
	assert_int_equal(es_client_insert(f->c, "slow", ids, v, 2, 2), 0);
	pthread_create(&t, NULL, slow_search, &a);
	fake_engine_wait_slow(f->e, 1); /* a request in flight */

	/* each round freezes nng 1.5.2 nine times in ten */
	for (rounds = 1; rounds <= 10 && !frozen; rounds++) {
		hang_up(f->path, 5);
		frozen = fresh_ping(f->path, 500) != 0;
	}
	print_message("%s after %d rounds of 5 hang-ups\n",
		      frozen ? "the listener froze" : "no freeze", rounds - 1);
	/* connects (nng completes its side of the handshake), then waits */
	assert_int_equal(es_client_open(&stuck, f->path, 500), 0);
	assert_int_equal(es_client_ping(f->c), 0); /* accepted before */
	t0 = now_ms();
	assert_int_equal(ping_until(NULL, f->path), 0);
	print_message("new connections answered again after %llu ms\n",
		      (unsigned long long)(now_ms() - t0));
	if (frozen)
		assert_true(log_has("API listener stopped accepting "
				    "connections (nng bug #1518); restarted "
				    "it"));
	assert_int_equal(es_client_ping(f->c), 0);

	/* the request in flight across the restart gets its answer */
	fake_engine_release(f->e);
	pthread_join(t, NULL);
	assert_int_equal(a.rc, 2);
	assert_int_equal(a.hits[0].id, 2);

	/* the stuck client is let go, and its nng reconnects */
	t0 = now_ms();
	assert_int_equal(ping_until(stuck, f->path), 0);
	print_message("the client stuck on the old listener answered after "
		      "%llu ms\n",
		      (unsigned long long)(now_ms() - t0));
	es_client_close(stuck);

	assert_int_equal(lstat(f->path, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0660);
	snprintf(tmp, sizeof(tmp), "%s.new", f->path);
	assert_int_equal(lstat(tmp, &st), -1);
	{ /* the new listener has the socket's size limit */
		size_t big = 3 << 20;
		char *junk = calloc(1, big), url[160];
		nng_socket sock;
		nng_msg *m;

		snprintf(url, sizeof(url), "ipc://%s", f->path);
		assert_int_equal(nng_req0_open(&sock), 0);
		nng_socket_set_ms(sock, NNG_OPT_RECVTIMEO, 500);
		/* the agent drops the connection, maybe while this is sent */
		nng_socket_set_ms(sock, NNG_OPT_SENDTIMEO, 2000);
		assert_int_equal(nng_dial(sock, url, NULL, 0), 0);
		if (nng_send(sock, junk, big, 0) == 0)
			assert_int_not_equal(nng_recvmsg(sock, &m, 0), 0);
		nng_close(sock);
		free(junk);
	}
	assert_int_equal(ping_until(f->c, f->path), 0);
	fx_stop(f);
	assert_int_equal(lstat(f->path, &st), -1); /* removed at stop */
}

/*
 * A connection that closes without having sent a request has the
 * listener checked at once, whatever the period: here an hour. Runs in
 * a child process (see test_listener_watchdog).
 */
static void watchdog_kick(void **state)
{
	struct fx *f = *state;
	struct es_client *idle;
	int frozen = 0;
	uint64_t t0;

	fx_stop(f);
	f->watchdog_ms = 3600 * 1000;
	fx_start(f, 2, 0, NULL, 0, NULL, 0);
	log_clear();
	assert_int_equal(es_client_open(&idle, f->path, 1000), 0);
	assert_int_equal(es_client_ping(f->c), 0); /* idle's pipe is in */
	for (int round = 0; round < 10 && !frozen; round++) {
		hang_up(f->path, 5);
		frozen = fresh_ping(f->path, 500) != 0;
	}
	es_client_close(idle); /* accepted before the freeze, never asked */
	if (!frozen) {
		print_message("the listener never froze: nothing to check\n");
		return;
	}
	t0 = now_ms();
	assert_int_equal(ping_until(NULL, f->path), 0);
	print_message("new connections answered again after %llu ms\n",
		      (unsigned long long)(now_ms() - t0));
	assert_true(log_has("restarted it"));
}

/*
 * listener_freeze and watchdog_kick, in a child process: nng 1.5.2 also
 * leaks a stuck listener when it is closed, with the connections that
 * reached it while it was stuck (their pipes and its endpoint, about 2 KB
 * each, allocated inside nng). The child's LeakSanitizer is told to ignore
 * leaks allocated within libnng; everything else in it, and every other
 * test, is checked.
 */
static void test_listener_watchdog(void **state)
{
	struct fx *f = *state;
	const char *old = getenv("LSAN_OPTIONS");
	char supp[160], opts[1024];
	int status, fd;
	pid_t pid;

	snprintf(supp, sizeof(supp), "%s/lsan.supp", f->dir);
	fd = open(supp, O_CREAT | O_WRONLY | O_TRUNC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "leak:libnng.so\n", 15), 15);
	close(fd);
	snprintf(opts, sizeof(opts), "%s%ssuppressions=%s", old ? old : "",
		 old && *old ? ":" : "", supp);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		setenv("LSAN_OPTIONS", opts, 1);
		execl(self_exe, self_exe, "--freezes", (char *)NULL);
		_exit(127);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

/*
 * Probing a live server, as a second start does and as the watchdog does
 * all the time, never freezes its listener.
 */
static void test_probe_live(void **state)
{
	struct fx *f = *state;
	struct es_api_server *s2;
	struct es_api_config ac = {0};

	fx_stop(f);
	f->watchdog_ms = ES_API_WATCHDOG_OFF; /* nothing would repair it */
	fx_start(f, 2, 0, NULL, 0, NULL, 0);
	ac.socket_path = f->path;
	ac.watchdog_ms = ES_API_WATCHDOG_OFF;
	for (int i = 0; i < 20; i++) {
		assert_int_equal(es_api_server_start(&s2, f->e, &ac),
				 -EADDRINUSE);
		assert_int_equal(fresh_ping(f->path, 2000), 0);
	}
	assert_int_equal(es_client_ping(f->c), 0);

	/* the watchdog's own probes, back to back: never a restart */
	fx_stop(f);
	f->watchdog_ms = 10;
	fx_start(f, 2, 0, NULL, 0, NULL, 0);
	log_clear();
	for (int i = 0; i < 50; i++) {
		assert_int_equal(es_client_ping(f->c), 0);
		usleep(20000);
	}
	assert_int_equal(fresh_ping(f->path, 2000), 0);
	assert_false(log_has("API listener"));
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
	    cmocka_unit_test_setup_teardown(test_listener_watchdog, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_probe_live, setup, teardown),
	};
	ssize_t n;

	/*
	 * _exit: the probe's exit code is all that counts. (nng 1.5.2 can
	 * leak a request that was being handed to a pipe the agent closed,
	 * which LeakSanitizer would turn into exit code 1.)
	 */
	const struct CMUnitTest freeze[] = {
	    cmocka_unit_test_setup_teardown(listener_freeze, setup, teardown),
	    cmocka_unit_test_setup_teardown(watchdog_kick, setup, teardown),
	};

	if (argc == 3 && !strcmp(argv[1], "--ping-as-nobody"))
		_exit(child_ping(argv[2]));
	if (argc == 2 && !strcmp(argv[1], "--freezes"))
		return cmocka_run_group_tests_name("freezes", freeze, NULL,
						   NULL);
	n = readlink("/proc/self/exe", self_exe, sizeof(self_exe) - 1);
	if (n > 0)
		self_exe[n] = '\0';
	if (getenv("ES_TEST_FILTER"))
		cmocka_set_test_filter(getenv("ES_TEST_FILTER"));
	if (getenv("ES_TEST_FILTER")) /* e.g. test_listener_watchdog */
		cmocka_set_test_filter(getenv("ES_TEST_FILTER"));
	return cmocka_run_group_tests(tests, NULL, NULL);
}
