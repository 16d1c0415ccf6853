/*
 * Index files travelling with their segment (PROTOCOL.md, changes'
 * index_size and index_checksum, fetch's part "index"): a real cloud and
 * real edges over 127.0.0.1 with the in-memory host of test_host.c. An
 * edge with fetch_indexes takes the cloud's index with the segment and
 * hands both to the host; one without does not ask for it; an index that
 * fails its size or CRC32C, or that the host refuses, is dropped with a
 * warning and the segment is installed all the same; a cut in the middle
 * of an index resumes at the staged length, nothing fetched twice; a
 * segment listed before the cloud indexed it waits for its index, up to
 * index_wait_ms.
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
#include "staging.h"
#include "sync_test.h"
#include "test_host.h"
#include "wire.h"

static char root[400];

/* th_node_init's chunk size, fetched in window pieces. */
#define PIECE (4096 / SYNC_WINDOW_DEFAULT)

/* What the edge fetched, piece by piece; a cut after cut_after index
 * pieces, once. */
static struct {
	pthread_mutex_t lock;
	uint64_t seg_off[256], index_off[256];
	size_t n_seg, n_index;
	size_t cut_after;
	int cut;
} hk = {.lock = PTHREAD_MUTEX_INITIALIZER};

static int hook_fetched(void *arg, int index, uint64_t off, size_t n)
{
	int cut = 0;

	(void)arg;
	(void)n;
	pthread_mutex_lock(&hk.lock);
	if (index && hk.n_index < 256)
		hk.index_off[hk.n_index++] = off;
	else if (!index && hk.n_seg < 256)
		hk.seg_off[hk.n_seg++] = off;
	if (index && hk.cut_after && hk.n_index == hk.cut_after && !hk.cut)
		cut = hk.cut = 1;
	pthread_mutex_unlock(&hk.lock);
	return cut;
}

static void hooks_reset(size_t cut_after)
{
	pthread_mutex_lock(&hk.lock);
	hk.n_seg = hk.n_index = 0;
	hk.cut_after = cut_after;
	hk.cut = 0;
	pthread_mutex_unlock(&hk.lock);
	sync_test_hooks.fetched = hook_fetched;
}

static size_t pieces(uint64_t size)
{
	return (size_t)((size + PIECE - 1) / PIECE);
}

static void cloud_init(struct th_node *n, const char *name)
{
	th_node_init(n, root, name, "cloud-1", ES_SYNC_CLOUD);
	snprintf(n->url, sizeof(n->url), "tcp://127.0.0.1:%d", th_free_port());
	th_add_collection(&n->h, "pub", 16, ES_SYNC_FLAG_DOWNLOAD);
}

static void edge_init(struct th_node *n, const char *name,
		      const struct th_node *cloud, int fetch_indexes)
{
	th_node_init(n, root, name, "edge-1", ES_SYNC_EDGE);
	snprintf(n->peer_url, sizeof(n->peer_url), "%s", cloud->url);
	n->c.fetch_indexes = fetch_indexes;
}

static uint64_t seq_of(struct test_host *h, size_t i)
{
	struct th_seg seg;

	assert_int_equal(th_segment(h, "pub", i, &seg), 0);
	return seg.s.origin_seq;
}

static uint64_t index_size_of(struct test_host *h, size_t i)
{
	struct th_seg seg;

	assert_int_equal(th_segment(h, "pub", i, &seg), 0);
	return seg.s.index_size;
}

static void stop_all(struct th_node *edge, struct th_node *cloud)
{
	th_node_stop(edge);
	th_node_stop(cloud);
	memset(&sync_test_hooks, 0, sizeof(sync_test_hooks));
	/* nothing left staged, segment or index */
	assert_int_equal(th_files(edge->staging, ".part", NULL), 0);
	assert_int_equal(th_files(edge->staging, ".meta", NULL), 0);
	th_fini(&edge->h);
	th_fini(&cloud->h);
}

/* Configured: the index comes with its segment, fetched once; a segment
 * without an index comes alone. */
static void test_index_fetched(void **state)
{
	struct th_node cloud, edge;
	uint64_t isize;

	(void)state;
	cloud_init(&cloud, "if-cloud");
	th_add_segment(&cloud.h, "pub", 300, 1, 2, NULL, 0);
	th_add_index(&cloud.h, "pub", 0, 5 * PIECE + 123, 1);
	th_add_segment(&cloud.h, "pub", 50, 2, 0, NULL, 0);
	edge_init(&edge, "if-edge", &cloud, 1);
	hooks_reset(0);
	assert_int_equal(th_node_start(&cloud), 0);
	assert_int_equal(th_node_start(&edge), 0);
	TH_WAIT(th_ack_value(&edge.h, "pub", ES_SYNC_DOWN) == 2, "the round");

	assert_int_equal(th_count(&edge.h, "pub"), 2);
	assert_true(
	    th_same(&cloud.h, &edge.h, "pub", "cloud-1", seq_of(&cloud.h, 0)));
	assert_int_equal(th_same_index(&cloud.h, &edge.h, "pub", "cloud-1",
				       seq_of(&cloud.h, 0)),
			 1);
	assert_int_equal(th_same_index(&cloud.h, &edge.h, "pub", "cloud-1",
				       seq_of(&cloud.h, 1)),
			 -1);
	assert_int_equal(edge.h.indexed_installs, 1);
	isize = index_size_of(&cloud.h, 0);
	assert_int_equal(hk.n_index, pieces(isize));
	for (size_t i = 0; i < hk.n_index; i++)
		assert_int_equal(hk.index_off[i], i * PIECE);
	assert_int_equal(th_log_count(&edge.h, "dropped"), 0);
	stop_all(&edge, &cloud);
}

/* Not configured (the default): no index is asked for. */
static void test_index_not_configured(void **state)
{
	struct th_node cloud, edge;

	(void)state;
	cloud_init(&cloud, "in-cloud");
	th_add_segment(&cloud.h, "pub", 300, 3, 0, NULL, 0);
	th_add_index(&cloud.h, "pub", 0, 3 * PIECE, 3);
	edge_init(&edge, "in-edge", &cloud, 0);
	hooks_reset(0);
	assert_int_equal(th_node_start(&cloud), 0);
	assert_int_equal(th_node_start(&edge), 0);
	TH_WAIT(th_ack_value(&edge.h, "pub", ES_SYNC_DOWN) == 1, "the round");
	assert_int_equal(th_count(&edge.h, "pub"), 1);
	assert_int_equal(th_same_index(&cloud.h, &edge.h, "pub", "cloud-1",
				       seq_of(&cloud.h, 0)),
			 -1);
	assert_int_equal(hk.n_index, 0);
	assert_int_equal(edge.h.indexed_installs, 0);
	stop_all(&edge, &cloud);
}

/* Damages byte at of path (flip) or cuts the file to at bytes (trunc). */
static void damage(struct test_host *h, size_t i, long at, int trunc)
{
	struct th_seg seg;
	FILE *f;
	int c;

	assert_int_equal(th_segment(h, "pub", i, &seg), 0);
	if (trunc) {
		assert_int_equal(truncate(seg.index_path, at), 0);
		return;
	}
	f = fopen(seg.index_path, "r+b");
	assert_non_null(f);
	fseek(f, at, SEEK_SET);
	c = fgetc(f);
	fseek(f, at, SEEK_SET);
	fputc(c ^ 0x01, f);
	fclose(f);
}

/*
 * An index whose bytes no longer have the CRC32C announced (every piece
 * passes its own CRC, computed from the bad bytes), and one shorter than
 * announced (the cloud refuses to serve it): both dropped with a
 * warning, their segments installed; the good index after them is kept.
 */
static void test_index_bad(void **state)
{
	struct th_node cloud, edge;

	(void)state;
	cloud_init(&cloud, "ib-cloud");
	for (uint32_t i = 0; i < 3; i++) {
		th_add_segment(&cloud.h, "pub", 200, 10 + i, 1, NULL, 0);
		th_add_index(&cloud.h, "pub", i, 2 * PIECE + 7, 10 + i);
	}
	damage(&cloud.h, 0, PIECE + 3, 0);
	damage(&cloud.h, 1, PIECE, 1);
	edge_init(&edge, "ib-edge", &cloud, 1);
	hooks_reset(0);
	assert_int_equal(th_node_start(&cloud), 0);
	assert_int_equal(th_node_start(&edge), 0);
	TH_WAIT(th_ack_value(&edge.h, "pub", ES_SYNC_DOWN) == 3, "the round");

	assert_int_equal(th_count(&edge.h, "pub"), 3);
	for (size_t i = 0; i < 3; i++)
		assert_true(th_same(&cloud.h, &edge.h, "pub", "cloud-1",
				    seq_of(&cloud.h, i)));
	assert_int_equal(th_same_index(&cloud.h, &edge.h, "pub", "cloud-1",
				       seq_of(&cloud.h, 0)),
			 -1);
	assert_int_equal(th_same_index(&cloud.h, &edge.h, "pub", "cloud-1",
				       seq_of(&cloud.h, 1)),
			 -1);
	assert_int_equal(th_same_index(&cloud.h, &edge.h, "pub", "cloud-1",
				       seq_of(&cloud.h, 2)),
			 1);
	assert_int_equal(th_log_count(&edge.h, "dropped"), 2);
	assert_int_equal(th_log_count(&edge.h, "CRC32C is"), 1);
	assert_int_equal(th_log_count(&edge.h, "has not the size"), 1);
	stop_all(&edge, &cloud);
}

/* No room for the index (it would leave the edge's disk less than its
 * keep_free): dropped, and the segment installed alone, not held back
 * for it round after round. */
static void test_index_no_room(void **state)
{
	struct th_node cloud, edge;
	struct sync_staging st;
	struct th_seg seg;
	char dir[700];

	(void)state;
	cloud_init(&cloud, "in-cloud");
	th_add_segment(&cloud.h, "pub", 300, 1, 0, NULL, 0);
	th_add_index(&cloud.h, "pub", 0, 200 * PIECE, 1);
	assert_int_equal(th_segment(&cloud.h, "pub", 0, &seg), 0);
	edge_init(&edge, "in-edge", &cloud, 1);
	snprintf(dir, sizeof(dir), "%s/keep", root);
	assert_int_equal(sync_staging_init(&st, dir), 0);
	/* room for the segment, not for its index */
	sync_test_hooks.staging_avail =
	    sync_staging_keep_free(&st) + seg.s.size + 8192;
	sync_staging_fini(&st);
	assert_int_equal(th_node_start(&cloud), 0);
	assert_int_equal(th_node_start(&edge), 0);
	TH_WAIT(th_count(&edge.h, "pub") == 1, "the segment");
	assert_true(
	    th_same(&cloud.h, &edge.h, "pub", "cloud-1", seq_of(&cloud.h, 0)));
	assert_int_equal(th_same_index(&cloud.h, &edge.h, "pub", "cloud-1",
				       seq_of(&cloud.h, 0)),
			 -1);
	assert_true(th_log_count(&edge.h, "no room to stage the index of") >=
		    1);
	sync_test_hooks.staging_avail = 0;
	stop_all(&edge, &cloud);
}

/* The host refuses the index (as the store refuses one built from
 * another segment): the segment is installed alone, with a warning. */
static void test_index_host_refuses(void **state)
{
	struct th_node cloud, edge;

	(void)state;
	cloud_init(&cloud, "ih-cloud");
	th_add_segment(&cloud.h, "pub", 100, 20, 0, NULL, 0);
	th_add_index(&cloud.h, "pub", 0, PIECE + 1, 20);
	edge_init(&edge, "ih-edge", &cloud, 1);
	edge.h.refuse_index = ES_E_SYNC_CHECKSUM;
	hooks_reset(0);
	assert_int_equal(th_node_start(&cloud), 0);
	assert_int_equal(th_node_start(&edge), 0);
	TH_WAIT(th_ack_value(&edge.h, "pub", ES_SYNC_DOWN) == 1, "the round");
	assert_int_equal(th_count(&edge.h, "pub"), 1);
	assert_int_equal(th_same_index(&cloud.h, &edge.h, "pub", "cloud-1",
				       seq_of(&cloud.h, 0)),
			 -1);
	assert_int_equal(hk.n_index, 2);
	assert_int_equal(th_log_count(&edge.h, "dropped"), 1);
	stop_all(&edge, &cloud);
}

/*
 * A cut after 4 of the index's 10 pieces: the segment is not installed
 * before its index is whole, and the next round fetches neither the
 * segment nor the 4 pieces again.
 */
static void test_index_cut_resumes(void **state)
{
	struct th_node cloud, edge;
	struct th_seg seg;

	(void)state;
	cloud_init(&cloud, "ic-cloud");
	th_add_segment(&cloud.h, "pub", 300, 30, 3, NULL, 0);
	th_add_index(&cloud.h, "pub", 0, 10 * PIECE, 30);
	edge_init(&edge, "ic-edge", &cloud, 1);
	hooks_reset(4);
	assert_int_equal(th_node_start(&cloud), 0);
	assert_int_equal(th_node_start(&edge), 0);
	TH_WAIT(th_ack_value(&edge.h, "pub", ES_SYNC_DOWN) == 1, "the round");
	assert_true(hk.cut);
	assert_true(th_log_count(&edge.h, "cut by a test hook") >= 1);

	assert_int_equal(th_segment(&cloud.h, "pub", 0, &seg), 0);
	assert_int_equal(hk.n_seg, pieces(seg.s.size));
	assert_int_equal(hk.n_index, 10);
	for (size_t i = 0; i < hk.n_index; i++)
		assert_int_equal(hk.index_off[i], i * PIECE);
	assert_int_equal(th_same_index(&cloud.h, &edge.h, "pub", "cloud-1",
				       seq_of(&cloud.h, 0)),
			 1);
	assert_true(
	    th_same(&cloud.h, &edge.h, "pub", "cloud-1", seq_of(&cloud.h, 0)));
	assert_int_equal(th_installs(&edge.h), 1);
	stop_all(&edge, &cloud);
}

/*
 * With index_wait_ms, a segment listed without an index waits for it:
 * nothing of the collection is taken meanwhile; once the cloud lists the
 * index, segment and index come together.
 */
static void test_index_awaited(void **state)
{
	struct th_node cloud, edge;

	(void)state;
	cloud_init(&cloud, "iw-cloud");
	th_add_segment(&cloud.h, "pub", 300, 40, 0, NULL, 0);
	edge_init(&edge, "iw-edge", &cloud, 1);
	edge.c.index_wait_ms = 3600 * 1000;
	hooks_reset(0);
	assert_int_equal(th_node_start(&cloud), 0);
	assert_int_equal(th_node_start(&edge), 0);
	TH_WAIT(th_log_count(&edge.h, "has no index yet") == 1, "the wait");
	assert_int_equal(th_count(&edge.h, "pub"), 0);
	assert_int_equal(th_ack_value(&edge.h, "pub", ES_SYNC_DOWN), 0);
	assert_int_equal(hk.n_seg, 0);

	th_add_index(&cloud.h, "pub", 0, 2 * PIECE, 40);
	es_sync_now(edge.s);
	TH_WAIT(th_ack_value(&edge.h, "pub", ES_SYNC_DOWN) == 1, "the round");
	assert_int_equal(th_same_index(&cloud.h, &edge.h, "pub", "cloud-1",
				       seq_of(&cloud.h, 0)),
			 1);
	assert_int_equal(th_log_count(&edge.h, "has no index yet"), 1);
	assert_int_equal(th_log_count(&edge.h, "taking it alone"), 0);
	stop_all(&edge, &cloud);
}

/* The cloud never indexes it: after index_wait_ms the segment comes
 * alone, once, and the wait is over for it. */
static void test_index_wait_expires(void **state)
{
	struct th_node cloud, edge;

	(void)state;
	cloud_init(&cloud, "ie-cloud");
	th_add_segment(&cloud.h, "pub", 300, 41, 0, NULL, 0);
	th_add_segment(&cloud.h, "pub", 0, 42, 0, NULL, 0); /* never indexed */
	edge_init(&edge, "ie-edge", &cloud, 1);
	edge.c.index_wait_ms = 300;
	hooks_reset(0);
	assert_int_equal(th_node_start(&cloud), 0);
	assert_int_equal(th_node_start(&edge), 0);
	TH_WAIT(th_ack_value(&edge.h, "pub", ES_SYNC_DOWN) == 2, "the round");
	assert_int_equal(th_count(&edge.h, "pub"), 2);
	assert_int_equal(th_same_index(&cloud.h, &edge.h, "pub", "cloud-1",
				       seq_of(&cloud.h, 0)),
			 -1);
	/* the empty segment is never awaited */
	assert_int_equal(th_log_count(&edge.h, "has no index yet"), 1);
	assert_int_equal(th_log_count(&edge.h, "taking it alone"), 1);
	stop_all(&edge, &cloud);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_index_fetched),
	    cmocka_unit_test(test_index_not_configured),
	    cmocka_unit_test(test_index_bad),
	    cmocka_unit_test(test_index_no_room),
	    cmocka_unit_test(test_index_host_refuses),
	    cmocka_unit_test(test_index_cut_resumes),
	    cmocka_unit_test(test_index_awaited),
	    cmocka_unit_test(test_index_wait_expires),
	};

	return TH_RUN(tests, root, "index");
}
