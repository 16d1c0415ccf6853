/*
 * Sync end to end in one process: a real cloud es_sync and real edge
 * es_syncs talking nng over 127.0.0.1, each with the in-memory host of
 * test_host.c (real NDVS files, installs that move them). Upload,
 * download, duplicates, incremental rounds, resumption after the edge or
 * the cloud is stopped mid-transfer, an edge's stop that waits for the
 * reply in flight, a damaged chunk, a published segment that fails
 * verification, configurations refused, and TLS (certificates made with
 * openssl by make_certs.sh): the allowed device syncs, a device outside
 * the allow list and a device presenting another's certificate are
 * refused, and an edge refuses a cloud whose certificate another CA
 * signed.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "edgesync/sync.h"
#include "sync_impl.h"
#include "sync_test.h"
#include "test_host.h"
#include "wire.h"

static char root[400];

/* th_node_init's chunk size is 4096; the edge sends it in window pieces,
 * so that at most one chunk is in flight (PROTOCOL.md, "Window"). */
#define PIECE sync_piece_size(4096, SYNC_WINDOW_DEFAULT)

static void cloud_init(struct th_node *n, const char *name, int port)
{
	th_node_init(n, root, name, "cloud-1", ES_SYNC_CLOUD);
	snprintf(n->url, sizeof(n->url), "tcp://127.0.0.1:%d", port);
}

static void edge_init(struct th_node *n, const char *name, const char *dev,
		      const struct th_node *cloud)
{
	th_node_init(n, root, name, dev, ES_SYNC_EDGE);
	snprintf(n->peer_url, sizeof(n->peer_url), "%s", cloud->url);
}

static int has_error(struct th_node *n, const char *dev, const char *needle)
{
	struct es_sync_peer_status st;

	return th_status(n, dev, &st) == 0 && strstr(st.last_error, needle);
}

/* ---- configuration ---------------------------------------------------- */

static void test_config_refused(void **state)
{
	struct th_node n;
	int port = th_free_port();

	cloud_init(&n, "cfg", port);
	n.c.token = NULL;
	assert_int_equal(th_node_start(&n), ES_E_SYNC_CONFIG);
	assert_true(th_log_count(&n.h, "needs a token") == 1);
	n.c.token = "short";
	assert_int_equal(th_node_start(&n), ES_E_SYNC_CONFIG);
	n.c.token = NULL;
	snprintf(n.url, sizeof(n.url), "tls+tcp://127.0.0.1:%d", port);
	n.c.tls_cert = n.c.tls_key = n.c.tls_ca = "/nonexistent";
	assert_int_equal(th_node_start(&n), ES_E_SYNC_CONFIG);
	assert_true(th_log_count(&n.h, "needs allow_devices") == 1);
	snprintf(n.url, sizeof(n.url), "http://127.0.0.1:%d", port);
	n.c.token = "lab-token-0123456789";
	assert_int_equal(th_node_start(&n), ES_E_SYNC_CONFIG);
	n.c.device_id = "has space";
	snprintf(n.url, sizeof(n.url), "tcp://127.0.0.1:%d", port);
	assert_int_equal(th_node_start(&n), ES_E_SYNC_CONFIG);
	th_fini(&n.h);

	th_node_init(&n, root, "cfg-edge", "edge-x", ES_SYNC_EDGE);
	snprintf(n.peer_url, sizeof(n.peer_url), "tcp://127.0.0.1:%d", port);
	n.c.token = NULL;
	assert_int_equal(th_node_start(&n), ES_E_SYNC_CONFIG);
	n.c.token = "lab-token-0123456789";
	n.c.n_peers = 0;
	assert_int_equal(th_node_start(&n), ES_E_SYNC_CONFIG);
	th_fini(&n.h);
}

/* ---- upload and download ---------------------------------------------- */

static void test_upload_download(void **state)
{
	struct th_node cloud, edge;
	struct es_sync_peer_status st;
	struct th_seg seg;

	cloud_init(&cloud, "ud-cloud", th_free_port());
	th_add_collection(&cloud.h, "pub", 16, ES_SYNC_FLAG_DOWNLOAD);
	th_add_segment(&cloud.h, "pub", 100, 1, 5, NULL, 0);
	th_add_segment(&cloud.h, "pub", 700, 2, 0, NULL, 0); /* 9 chunks */
	/* The edge's own segment, published back: not sent to it. */
	th_add_segment(&cloud.h, "pub", 10, 3, 0, "edge-1", 777);
	th_add_collection(&cloud.h, "private", 4, 0);
	th_add_segment(&cloud.h, "private", 10, 4, 0, NULL, 0);

	edge_init(&edge, "ud-edge", "edge-1", &cloud);
	th_add_collection(&edge.h, "up", 8, ES_SYNC_FLAG_UPLOAD);
	th_add_segment(&edge.h, "up", 10, 11, 3, NULL, 0);
	th_add_segment(&edge.h, "up", 2000, 12, 0, NULL, 0);  /* 16 chunks */
	th_add_segment(&edge.h, "up", 50, 13, 2500, NULL, 0); /* 2 pages */

	assert_int_equal(th_node_start(&cloud), 0);
	assert_int_equal(th_node_start(&edge), 0);
	TH_WAIT(th_count(&cloud.h, "up") == 3 &&
		    th_ack_value(&edge.h, "pub", ES_SYNC_DOWN) == 3,
		"the first round");

	for (size_t i = 0; i < 3; i++) {
		assert_int_equal(th_segment(&edge.h, "up", i, &seg), 0);
		assert_true(th_same(&edge.h, &cloud.h, "up", "edge-1",
				    seg.s.origin_seq));
	}
	assert_int_equal(th_flags(&cloud.h, "up"), 0);
	assert_int_equal(th_count(&edge.h, "pub"), 2);
	assert_int_equal(th_flags(&edge.h, "pub"), ES_SYNC_FLAG_DOWNLOAD);
	assert_int_equal(th_count(&edge.h, "private"), 0);
	for (size_t i = 0; i < 2; i++) {
		assert_int_equal(th_segment(&cloud.h, "pub", i, &seg), 0);
		assert_true(th_same(&cloud.h, &edge.h, "pub", "cloud-1",
				    seg.s.origin_seq));
	}
	TH_WAIT(th_ack_value(&edge.h, "up", ES_SYNC_UP) == 3, "the ack");
	assert_int_equal(th_status(&edge, NULL, &st), 0);
	assert_int_equal(st.segments_sent, 3);
	assert_int_equal(st.segments_received, 2);
	assert_string_equal(st.device, "cloud-1");
	assert_int_equal(st.checksum_failures, 0);
	assert_true(st.bytes_sent > 2000 * 8 * 4);
	assert_int_equal(th_status(&cloud, "edge-1", &st), 0);
	assert_int_equal(st.segments_received, 3);
	assert_int_equal(st.segments_sent, 2);
	assert_true(st.connected);

	/* A new segment goes at the next round, alone. */
	th_add_segment(&edge.h, "up", 30, 14, 1, NULL, 0);
	es_sync_now(edge.s);
	TH_WAIT(th_count(&cloud.h, "up") == 4, "the new segment");
	TH_WAIT(th_ack_value(&edge.h, "up", ES_SYNC_UP) == 4, "its ack");
	TH_WAIT(th_status(&edge, NULL, &st) == 0 && st.last_success_ms &&
		    st.segments_pending == 0,
		"nothing pending");
	assert_int_equal(st.lag_s, 0);

	/* Acks lost: everything is offered again and acked as duplicate. */
	th_clear_acks(&edge.h);
	es_sync_now(edge.s);
	TH_WAIT(th_ack_value(&edge.h, "up", ES_SYNC_UP) == 4 &&
		    th_ack_value(&edge.h, "pub", ES_SYNC_DOWN) == 3,
		"the acks again");
	assert_int_equal(th_installs(&cloud.h), 4);
	assert_int_equal(th_installs(&edge.h), 2);
	assert_int_equal(th_status(&edge, NULL, &st), 0);
	assert_int_equal(st.segments_sent, 4);

	th_node_stop(&edge);
	th_node_stop(&cloud);
	assert_int_equal(th_files(cloud.staging, ".part", NULL), 0);
	assert_int_equal(th_files(edge.staging, ".part", NULL), 0);
	th_fini(&edge.h);
	th_fini(&cloud.h);
}

/* ---- resumption ------------------------------------------------------- */

static struct {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int hold;      /* after the cut, chunks wait until hold is cleared */
	int cut_after; /* chunks; 0: never */
	int acked;
	int cut;
	uint64_t offsets[512];
	size_t n;
	uint64_t flip_at; /* damage the chunk at this offset once */
	int flipped;
	uint64_t in_at;	      /* the cloud holds the chunk at this offset */
	int in_held;	      /* ... and is holding it */
	struct es_sync *edge; /* ... until this edge is stopping */
} hk = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};

static void hook_out(void *arg, uint64_t off, unsigned char *data, size_t n)
{
	pthread_mutex_lock(&hk.lock);
	if (hk.n < 512)
		hk.offsets[hk.n++] = off;
	if (hk.flip_at && off == hk.flip_at && !hk.flipped) {
		data[n / 2] ^= 0x10;
		hk.flipped = 1;
	}
	while (hk.cut && hk.hold)
		pthread_cond_wait(&hk.cond, &hk.lock);
	pthread_mutex_unlock(&hk.lock);
}

static int hook_acked(void *arg, uint64_t off, uint64_t size)
{
	int cut = 0;

	pthread_mutex_lock(&hk.lock);
	hk.acked++;
	if (hk.cut_after && hk.acked == hk.cut_after && !hk.cut)
		cut = hk.cut = 1;
	pthread_mutex_unlock(&hk.lock);
	return cut;
}

static void hooks_reset(int cut_after)
{
	pthread_mutex_lock(&hk.lock);
	hk.cut_after = cut_after;
	hk.acked = hk.cut = 0;
	hk.n = 0;
	hk.flip_at = 0;
	hk.flipped = 0;
	hk.hold = 0;
	hk.in_at = 0;
	hk.in_held = 0;
	hk.edge = NULL;
	pthread_mutex_unlock(&hk.lock);
	sync_test_hooks.chunk_out = hook_out;
	sync_test_hooks.chunk_acked = hook_acked;
}

static void hook_hold(int on)
{
	pthread_mutex_lock(&hk.lock);
	hk.hold = on;
	pthread_cond_broadcast(&hk.cond);
	pthread_mutex_unlock(&hk.lock);
}

/* The cloud, before it writes a chunk: the one at hk.in_at waits until
 * hk.edge is stopping, and a little more, so the edge stops with that
 * chunk's reply due (an edge that closed its socket at once would have
 * closed it by then). */
static void hook_in(void *arg, uint64_t off)
{
	struct es_sync *edge = NULL;

	pthread_mutex_lock(&hk.lock);
	if (!hk.in_at || off != hk.in_at || hk.in_held) {
		pthread_mutex_unlock(&hk.lock);
		return;
	}
	hk.in_held = 1;
	pthread_mutex_unlock(&hk.lock);
	/* Bounded, so that an edge that no longer waits (and is freed)
	 * fails the test instead of hanging it. */
	for (int i = 0; i < 30000 && (!edge || !sync_is_stopping(edge)); i++) {
		usleep(1000);
		pthread_mutex_lock(&hk.lock);
		edge = hk.edge;
		pthread_mutex_unlock(&hk.lock);
	}
	usleep(300 * 1000);
}

static uint64_t chunks(struct test_host *h, const char *coll)
{
	struct th_seg seg;

	assert_int_equal(th_segment(h, coll, 0, &seg), 0);
	return (seg.s.size + (PIECE - 1)) / PIECE;
}

/* A field of hk, read under its lock. */
static int hk_int(const int *field)
{
	int v;

	pthread_mutex_lock(&hk.lock);
	v = *field;
	pthread_mutex_unlock(&hk.lock);
	return v;
}

static int hook_cut(void)
{
	return hk_int(&hk.cut);
}

static uint64_t hook_first_offset(size_t from)
{
	uint64_t v;

	pthread_mutex_lock(&hk.lock);
	v = from < hk.n ? hk.offsets[from] : UINT64_MAX;
	pthread_mutex_unlock(&hk.lock);
	return v;
}

static size_t hook_count(void)
{
	size_t n;

	pthread_mutex_lock(&hk.lock);
	n = hk.n;
	pthread_mutex_unlock(&hk.lock);
	return n;
}

/* The end of a resumption test: edge and cloud hold the same "big"
 * segment of dev; both are stopped and freed, the hooks cleared. */
static void resume_done(struct th_node *edge, struct th_node *cloud,
			const char *dev)
{
	struct th_seg seg;

	assert_int_equal(th_segment(&edge->h, "big", 0, &seg), 0);
	assert_true(th_same(&edge->h, &cloud->h, "big", dev, seg.s.origin_seq));
	th_node_stop(edge);
	th_node_stop(cloud);
	memset(&sync_test_hooks, 0, sizeof(sync_test_hooks));
	th_fini(&edge->h);
	th_fini(&cloud->h);
}

static void test_resume_edge_restart(void **state)
{
	struct th_node cloud, edge;
	uint64_t size = 0, n, first;

	cloud_init(&cloud, "re-cloud", th_free_port());
	edge_init(&edge, "re-edge", "edge-r", &cloud);
	th_add_collection(&edge.h, "big", 32, ES_SYNC_FLAG_UPLOAD);
	th_add_segment(&edge.h, "big", 1500, 21, 7, NULL, 0);
	n = chunks(&edge.h, "big");
	hooks_reset(10);
	assert_int_equal(th_node_start(&cloud), 0);
	assert_int_equal(th_node_start(&edge), 0);
	TH_WAIT(hook_cut(), "the cut");
	th_node_stop(&edge);

	/* The cloud holds the 10 acknowledged chunks, and at most the
	 * window's others that were in flight. */
	assert_int_equal(th_files(cloud.staging, ".part", &size), 1);
	assert_true(size >= 10 * PIECE);
	assert_true(size <= (10 + SYNC_WINDOW_DEFAULT - 1) * PIECE);
	assert_int_equal(th_count(&cloud.h, "big"), 0);

	hooks_reset(0);
	assert_int_equal(th_node_start(&edge), 0);
	TH_WAIT(th_count(&cloud.h, "big") == 1, "the upload");
	/* The restarted edge began at the staged length and sent nothing
	 * below it. */
	first = hook_first_offset(0);
	assert_true(first >= 10 * PIECE && first % PIECE == 0);
	assert_true(first <= (10 + SYNC_WINDOW_DEFAULT - 1) * PIECE);
	assert_int_equal(hook_count(), n - first / PIECE);
	resume_done(&edge, &cloud, "edge-r");
}

/*
 * A collection the cloud refuses (here: another dim) fails alone: the
 * upload collections after it still upload, and the edge's status says
 * which one was refused and why.
 */
static void test_mismatch_skipped(void **state)
{
	struct th_node cloud, edge;
	struct es_sync_peer_status st;

	cloud_init(&cloud, "mm-cloud", th_free_port());
	th_add_collection(&cloud.h, "a", 16, 0);
	edge_init(&edge, "mm-edge", "edge-m", &cloud);
	th_add_collection(&edge.h, "a", 8, ES_SYNC_FLAG_UPLOAD);
	th_add_collection(&edge.h, "b", 8, ES_SYNC_FLAG_UPLOAD);
	th_add_segment(&edge.h, "a", 100, 1, 0, NULL, 0);
	th_add_segment(&edge.h, "b", 100, 2, 0, NULL, 0);
	assert_int_equal(th_node_start(&cloud), 0);
	assert_int_equal(th_node_start(&edge), 0);
	TH_WAIT(th_count(&cloud.h, "b") == 1, "the upload of b");
	TH_WAIT(has_error(&edge, NULL, "mismatch"), "the refusal of a");
	assert_int_equal(th_count(&cloud.h, "a"), 0);
	assert_int_equal(th_status(&edge, NULL, &st), 0);
	assert_non_null(strstr(st.last_error, "collection 'a'"));
	th_node_stop(&edge);
	th_node_stop(&cloud);
	th_fini(&edge.h);
	th_fini(&cloud.h);
}

static void test_resume_cloud_restart(void **state)
{
	struct th_node cloud, edge;
	struct es_sync_peer_status st;
	uint64_t size = 0, n;
	struct th_seg seg;
	size_t before;

	cloud_init(&cloud, "rc-cloud", th_free_port());
	edge_init(&edge, "rc-edge", "edge-c", &cloud);
	th_add_collection(&edge.h, "big", 32, ES_SYNC_FLAG_UPLOAD);
	th_add_segment(&edge.h, "big", 1000, 31, 0, NULL, 0);
	n = chunks(&edge.h, "big");
	assert_int_equal(th_segment(&edge.h, "big", 0, &seg), 0);
	hooks_reset(5);
	hook_hold(1); /* the edge's next chunk waits for the new cloud */
	assert_int_equal(th_node_start(&cloud), 0);
	assert_int_equal(th_node_start(&edge), 0);
	TH_WAIT(hook_cut(), "the cut");
	before = hook_count();
	/* While the edge waits: one segment pending, sealed a minute ago. */
	TH_WAIT(th_status(&edge, NULL, &st) == 0 && st.segments_pending == 1,
		"the pending count");
	assert_int_equal(st.bytes_pending, seg.s.size);
	assert_true(st.lag_s >= 59 && st.lag_s < 3600);
	/* The cloud goes away and comes back on the same port. */
	th_node_stop(&cloud);
	assert_int_equal(th_files(cloud.staging, ".part", &size), 1);
	assert_true(size >= 5 * PIECE && size % PIECE == 0);
	assert_true(size <= (5 + SYNC_WINDOW_DEFAULT - 1) * PIECE);
	assert_int_equal(th_node_start(&cloud), 0);
	hook_hold(0);
	TH_WAIT(th_count(&cloud.h, "big") == 1, "the upload");
	/* Resumed at the staged length: nothing acknowledged was sent
	 * again, and at most the window (what was in flight when the
	 * connection changed) was sent twice. */
	assert_true(hook_first_offset(before) >= 5 * PIECE);
	assert_true(hook_count() - before >= n - size / PIECE);
	assert_true(hook_count() - before <=
		    n - size / PIECE + SYNC_WINDOW_DEFAULT);
	resume_done(&edge, &cloud, "edge-c");
}

/*
 * An edge stopped with a chunk's reply due waits for that reply before it
 * closes its socket (closing nng 1.5.2's socket as a reply arrives can
 * wedge it), and sends nothing after it: the cloud holds exactly the
 * chunks the edge saw acknowledged. Started again, the edge finishes.
 */
static void test_stop_waits_for_reply(void **state)
{
	struct th_node cloud, edge;
	uint64_t size = 0;

	cloud_init(&cloud, "sw-cloud", th_free_port());
	edge_init(&edge, "sw-edge", "edge-s", &cloud);
	th_add_collection(&edge.h, "big", 32, ES_SYNC_FLAG_UPLOAD);
	th_add_segment(&edge.h, "big", 1000, 41, 0, NULL, 0);
	hooks_reset(0);
	hk.in_at = 3 * PIECE;
	sync_test_hooks.chunk_in = hook_in;
	sync_test_hooks.stop_grace_ms = 60000; /* the test ends the wait */
	assert_int_equal(th_node_start(&cloud), 0);
	assert_int_equal(th_node_start(&edge), 0);
	pthread_mutex_lock(&hk.lock);
	hk.edge = edge.s;
	pthread_mutex_unlock(&hk.lock);
	TH_WAIT(hk_int(&hk.in_held), "the cloud holding the fourth chunk");
	th_node_stop(&edge);
	assert_int_equal(hk_int(&hk.acked), 4);
	assert_int_equal(th_files(cloud.staging, ".part", &size), 1);
	assert_int_equal(size, 4 * PIECE);

	hooks_reset(0);
	assert_int_equal(th_node_start(&edge), 0);
	TH_WAIT(th_count(&cloud.h, "big") == 1, "the upload");
	assert_int_equal(hook_first_offset(0), 4 * PIECE);
	resume_done(&edge, &cloud, "edge-s");
}

/* ---- damage ----------------------------------------------------------- */

static void test_corrupt_chunk(void **state)
{
	struct th_node cloud, edge;
	struct es_sync_peer_status st;
	struct th_seg seg;

	cloud_init(&cloud, "cc-cloud", th_free_port());
	edge_init(&edge, "cc-edge", "edge-k", &cloud);
	th_add_collection(&edge.h, "c", 16, ES_SYNC_FLAG_UPLOAD);
	th_add_segment(&edge.h, "c", 600, 41, 2, NULL, 0);
	hooks_reset(0);
	hk.flip_at = 2 * 4096;
	assert_int_equal(th_node_start(&cloud), 0);
	assert_int_equal(th_node_start(&edge), 0);
	TH_WAIT(th_count(&cloud.h, "c") == 1, "the upload");
	assert_int_equal(th_segment(&edge.h, "c", 0, &seg), 0);
	assert_true(
	    th_same(&edge.h, &cloud.h, "c", "edge-k", seg.s.origin_seq));
	TH_WAIT(th_status(&edge, NULL, &st) == 0 && st.segments_sent == 1,
		"the edge's count");
	assert_int_equal(st.checksum_failures, 1);
	assert_int_equal(th_status(&cloud, "edge-k", &st), 0);
	assert_int_equal(st.checksum_failures, 1);
	th_node_stop(&edge);
	th_node_stop(&cloud);
	memset(&sync_test_hooks, 0, sizeof(sync_test_hooks));
	th_fini(&edge.h);
	th_fini(&cloud.h);
}

/* A published file damaged on the cloud's disk: every chunk passes its
 * CRC (computed from the bad bytes), the whole file does not; the edge
 * never installs it and says why. */
static void test_download_verify_fails(void **state)
{
	struct th_node cloud, edge;
	struct th_seg seg;
	FILE *f;
	int c;

	cloud_init(&cloud, "vf-cloud", th_free_port());
	th_add_collection(&cloud.h, "pub", 8, ES_SYNC_FLAG_DOWNLOAD);
	th_add_segment(&cloud.h, "pub", 300, 51, 0, NULL, 0);
	assert_int_equal(th_segment(&cloud.h, "pub", 0, &seg), 0);
	f = fopen(seg.path, "r+b");
	assert_non_null(f);
	fseek(f, 5000, SEEK_SET);
	c = fgetc(f);
	fseek(f, 5000, SEEK_SET);
	fputc(c ^ 0x01, f);
	fclose(f);
	edge_init(&edge, "vf-edge", "edge-v", &cloud);
	assert_int_equal(th_node_start(&cloud), 0);
	assert_int_equal(th_node_start(&edge), 0);
	TH_WAIT(has_error(&edge, NULL, "restarted 5 times"), "the refusal");
	assert_int_equal(th_count(&edge.h, "pub"), 0);
	assert_true(th_log_count(&edge.h, "does not match its footer") >= 1);
	th_node_stop(&edge);
	th_node_stop(&cloud);
	th_fini(&edge.h);
	th_fini(&cloud.h);
}

/* ---- TLS -------------------------------------------------------------- */

static char certs[500];

static const char *cert(const char *name, const char *ext)
{
	static char buf[16][600];
	static int k;
	char *b = buf[k++ % 16];

	snprintf(b, 600, "%s/%s.%s", certs, name, ext);
	return b;
}

static void tls_node(struct th_node *n, const char *name, const char *ca)
{
	n->c.tls_cert = cert(name, "crt");
	n->c.tls_key = cert(name, "key");
	n->c.tls_ca = cert(ca, "crt");
	n->c.token = NULL;
}

static void tls_edge(struct th_node *n, const char *node, const char *dev,
		     const char *certname, const struct th_node *cloud)
{
	edge_init(n, node, dev, cloud);
	tls_node(n, certname, "ca");
	th_add_collection(&n->h, "t", 8, ES_SYNC_FLAG_UPLOAD);
	th_add_segment(&n->h, "t", 20, 61, 1, NULL, 0);
}

static void test_tls(void **state)
{
	struct th_node cloud, rogue, a, b, c, d;
	char cmd[1200];

	snprintf(certs, sizeof(certs), "%s/certs", root);
	snprintf(cmd, sizeof(cmd), "mkdir -p '%s' && sh '%s' '%s'", certs,
		 getenv("ES_MAKE_CERTS") ? getenv("ES_MAKE_CERTS")
					 : ES_SYNC_TEST_DIR "/make_certs.sh",
		 certs);
	assert_int_equal(system(cmd), 0);
	sync_test_hooks.send_timeout_ms = 1000;

	cloud_init(&cloud, "tls-cloud", th_free_port());
	snprintf(cloud.url, sizeof(cloud.url), "tls+tcp://127.0.0.1:%d",
		 th_free_port());
	tls_node(&cloud, "cloud", "ca");
	cloud.allow[0] = "dev-a";
	cloud.c.n_allow_devices = 1;
	assert_int_equal(th_node_start(&cloud), 0);

	/* The allowed device with its own certificate. */
	tls_edge(&a, "tls-a", "dev-a", "dev-a", &cloud);
	assert_int_equal(th_node_start(&a), 0);
	TH_WAIT(th_count(&cloud.h, "t") == 1, "dev-a's upload");
	/* A device the CA signed but the cloud does not admit. */
	tls_edge(&b, "tls-b", "dev-b", "dev-b", &cloud);
	assert_int_equal(th_node_start(&b), 0);
	TH_WAIT(has_error(&b, NULL, "not in allow_devices"), "dev-b refused");
	/* dev-b's certificate claiming to be dev-a. */
	tls_edge(&c, "tls-c", "dev-a", "dev-b", &cloud);
	assert_int_equal(th_node_start(&c), 0);
	TH_WAIT(has_error(&c, NULL, "CN is not the device id"),
		"the impostor refused");
	assert_int_equal(th_count(&cloud.h, "t"), 1);
	assert_int_equal(th_installs(&cloud.h), 1);

	/* A cloud whose certificate another CA signed: no connection. */
	cloud_init(&rogue, "tls-rogue", th_free_port());
	snprintf(rogue.url, sizeof(rogue.url), "tls+tcp://127.0.0.1:%d",
		 th_free_port());
	tls_node(&rogue, "rogue-cloud", "rogue-ca");
	rogue.c.token = "lab-token-0123456789";
	assert_int_equal(th_node_start(&rogue), 0);
	tls_edge(&d, "tls-d", "dev-a", "dev-a", &rogue);
	assert_int_equal(th_node_start(&d), 0);
	TH_WAIT(has_error(&d, NULL, "not connected"), "the rogue refused");
	assert_int_equal(th_installs(&rogue.h), 0);

	th_node_stop(&d);
	th_node_stop(&rogue);
	th_node_stop(&c);
	th_node_stop(&b);
	th_node_stop(&a);
	th_node_stop(&cloud);
	assert_true(th_log_count(&cloud.h, "plain tcp") == 0);
	memset(&sync_test_hooks, 0, sizeof(sync_test_hooks));
	th_fini(&d.h);
	th_fini(&rogue.h);
	th_fini(&c.h);
	th_fini(&b.h);
	th_fini(&a.h);
	th_fini(&cloud.h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_config_refused),
	    cmocka_unit_test(test_upload_download),
	    cmocka_unit_test(test_resume_edge_restart),
	    cmocka_unit_test(test_mismatch_skipped),
	    cmocka_unit_test(test_resume_cloud_restart),
	    cmocka_unit_test(test_stop_waits_for_reply),
	    cmocka_unit_test(test_corrupt_chunk),
	    cmocka_unit_test(test_download_verify_fails),
	    cmocka_unit_test(test_tls),
	};

	return TH_RUN(tests, root, "protocol");
}
