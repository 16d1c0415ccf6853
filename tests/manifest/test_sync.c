/*
 * What sync's host reads and writes in the manifest: acknowledgements
 * (only growing, per peer key, collection and direction), their minimum
 * and forgetting a peer, transfers in progress, the tombstones recorded
 * with a segment, and drop cascading to all of them.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "edgesync/manifest.h"
#include "helpers.h"
#include "raw_sql.h"
#include "manifest_test.h"

#define DIM   8
#define CLOUD "tls+tcp://cloud.example:7447"
#define EDGE  "0123456789abcdef0123456789abcdef"

struct fixture {
	struct tdir *t;
	struct es_manifest *m;
	int64_t coll;  /* collection "c" */
	int64_t other; /* collection "o" */
	uint64_t now;
};

static uint64_t fake_clock(void *arg)
{
	return *(uint64_t *)arg;
}

static int64_t make_collection(struct es_manifest *m, const char *name)
{
	struct es_manifest_collection c = {.dim = DIM};

	strcpy(c.name, name);
	if (es_manifest_collection_create(m, &c))
		return -1;
	return c.id;
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	void *t;

	if (!f || tdir_setup(&t))
		return -1;
	f->t = t;
	if (es_manifest_open(&f->m, f->t->db))
		return -1;
	f->now = 1700000000000ull;
	manifest_set_clock(f->m, fake_clock, &f->now);
	f->coll = make_collection(f->m, "c");
	f->other = make_collection(f->m, "o");
	if (f->coll < 0 || f->other < 0)
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	void *t = f->t;

	es_manifest_close(f->m);
	tdir_teardown(&t);
	free(f);
	return 0;
}

static uint64_t ack(struct fixture *f, const char *peer, int64_t coll,
		    enum es_manifest_direction dir)
{
	uint64_t v = 12345;

	assert_int_equal(es_manifest_ack_get(f->m, peer, coll, dir, &v), 0);
	return v;
}

static void test_ack_grows(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(ack(f, CLOUD, f->coll, ES_MANIFEST_UP), 0);
	assert_int_equal(
	    es_manifest_ack_put(f->m, CLOUD, f->coll, ES_MANIFEST_UP, 5), 0);
	assert_int_equal(ack(f, CLOUD, f->coll, ES_MANIFEST_UP), 5);
	/* Smaller or equal: ignored, not an error. */
	assert_int_equal(
	    es_manifest_ack_put(f->m, CLOUD, f->coll, ES_MANIFEST_UP, 3), 0);
	assert_int_equal(
	    es_manifest_ack_put(f->m, CLOUD, f->coll, ES_MANIFEST_UP, 5), 0);
	assert_int_equal(ack(f, CLOUD, f->coll, ES_MANIFEST_UP), 5);
	assert_int_equal(
	    es_manifest_ack_put(f->m, CLOUD, f->coll, ES_MANIFEST_UP, 9), 0);
	assert_int_equal(ack(f, CLOUD, f->coll, ES_MANIFEST_UP), 9);
	assert_int_equal(es_manifest_ack_put(f->m, CLOUD, f->coll,
					     ES_MANIFEST_UP, INT64_MAX),
			 0);
	assert_true(ack(f, CLOUD, f->coll, ES_MANIFEST_UP) == INT64_MAX);

	/* Each (peer, collection, direction) is its own. */
	assert_int_equal(ack(f, CLOUD, f->coll, ES_MANIFEST_DOWN), 0);
	assert_int_equal(ack(f, CLOUD, f->other, ES_MANIFEST_UP), 0);
	assert_int_equal(ack(f, EDGE, f->coll, ES_MANIFEST_UP), 0);
	assert_int_equal(
	    es_manifest_ack_put(f->m, EDGE, f->coll, ES_MANIFEST_DOWN, 2), 0);
	assert_int_equal(ack(f, EDGE, f->coll, ES_MANIFEST_DOWN), 2);
	assert_int_equal(ack(f, CLOUD, f->coll, ES_MANIFEST_DOWN), 0);

	/* Durable. */
	es_manifest_close(f->m);
	assert_int_equal(es_manifest_open(&f->m, f->t->db), 0);
	assert_true(ack(f, CLOUD, f->coll, ES_MANIFEST_UP) == INT64_MAX);
	assert_int_equal(ack(f, EDGE, f->coll, ES_MANIFEST_DOWN), 2);
}

static void test_ack_refused(void **state)
{
	struct fixture *f = *state;
	char key[ES_MANIFEST_PEER_MAX + 2];
	uint64_t v = 7;

	assert_int_equal(
	    es_manifest_ack_put(f->m, CLOUD, 12345, ES_MANIFEST_UP, 1),
	    ES_E_MANIFEST_NOTFOUND);
	assert_int_equal(
	    es_manifest_ack_get(f->m, CLOUD, 12345, ES_MANIFEST_UP, &v),
	    ES_E_MANIFEST_NOTFOUND);
	assert_int_equal(es_manifest_ack_put(f->m, CLOUD, f->coll, 0, 1),
			 -EINVAL);
	assert_int_equal(es_manifest_ack_put(f->m, CLOUD, f->coll, 3, 1),
			 -EINVAL);
	assert_int_equal(es_manifest_ack_get(f->m, CLOUD, f->coll, 3, &v),
			 -EINVAL);
	assert_int_equal(
	    es_manifest_ack_put(f->m, "", f->coll, ES_MANIFEST_UP, 1), -EINVAL);
	assert_int_equal(
	    es_manifest_ack_put(f->m, NULL, f->coll, ES_MANIFEST_UP, 1),
	    -EINVAL);
	assert_int_equal(
	    es_manifest_ack_put(f->m, "a b", f->coll, ES_MANIFEST_UP, 1),
	    -EINVAL);
	assert_int_equal(es_manifest_ack_put(f->m, CLOUD, f->coll,
					     ES_MANIFEST_UP,
					     (uint64_t)INT64_MAX + 1),
			 -ERANGE);

	/* Peer keys of 255 characters are the limit. */
	memset(key, 'k', sizeof(key) - 1);
	key[sizeof(key) - 1] = '\0';
	assert_int_equal(
	    es_manifest_ack_put(f->m, key, f->coll, ES_MANIFEST_UP, 1),
	    -EINVAL);
	key[ES_MANIFEST_PEER_MAX] = '\0';
	assert_int_equal(
	    es_manifest_ack_put(f->m, key, f->coll, ES_MANIFEST_UP, 1), 0);
	assert_int_equal(ack(f, key, f->coll, ES_MANIFEST_UP), 1);
	assert_int_equal(ack(f, CLOUD, f->coll, ES_MANIFEST_UP), 0);
}

static void test_min_ack(void **state)
{
	struct fixture *f = *state;
	uint64_t v = 0;

	/* No peer syncs it: nothing holds removals back. */
	assert_int_equal(es_manifest_min_ack(f->m, f->coll, ES_MANIFEST_UP, &v),
			 0);
	assert_true(v == UINT64_MAX);

	/* A peer registered with 0 holds everything back. */
	assert_int_equal(
	    es_manifest_ack_put(f->m, "p1", f->coll, ES_MANIFEST_UP, 0), 0);
	assert_int_equal(es_manifest_min_ack(f->m, f->coll, ES_MANIFEST_UP, &v),
			 1);
	assert_int_equal(v, 0);

	assert_int_equal(
	    es_manifest_ack_put(f->m, "p1", f->coll, ES_MANIFEST_UP, 8), 0);
	assert_int_equal(
	    es_manifest_ack_put(f->m, "p2", f->coll, ES_MANIFEST_UP, 4), 0);
	assert_int_equal(
	    es_manifest_ack_put(f->m, "p3", f->coll, ES_MANIFEST_UP, 6), 0);
	/* Other directions and collections do not count. */
	assert_int_equal(
	    es_manifest_ack_put(f->m, "p4", f->coll, ES_MANIFEST_DOWN, 1), 0);
	assert_int_equal(
	    es_manifest_ack_put(f->m, "p4", f->other, ES_MANIFEST_UP, 2), 0);
	assert_int_equal(es_manifest_min_ack(f->m, f->coll, ES_MANIFEST_UP, &v),
			 3);
	assert_int_equal(v, 4);
	assert_int_equal(
	    es_manifest_min_ack(f->m, f->coll, ES_MANIFEST_DOWN, &v), 1);
	assert_int_equal(v, 1);
	assert_int_equal(
	    es_manifest_min_ack(f->m, f->other, ES_MANIFEST_DOWN, &v), 0);
	assert_true(v == UINT64_MAX);

	/* The laggard catches up. */
	assert_int_equal(
	    es_manifest_ack_put(f->m, "p2", f->coll, ES_MANIFEST_UP, 10), 0);
	assert_int_equal(es_manifest_min_ack(f->m, f->coll, ES_MANIFEST_UP, &v),
			 3);
	assert_int_equal(v, 6);

	/* A peer gone for good is forgotten, everywhere. */
	assert_int_equal(es_manifest_ack_forget(f->m, "p3"), 1);
	assert_int_equal(es_manifest_min_ack(f->m, f->coll, ES_MANIFEST_UP, &v),
			 2);
	assert_int_equal(v, 8);
	assert_int_equal(es_manifest_ack_forget(f->m, "p4"), 2);
	assert_int_equal(
	    es_manifest_min_ack(f->m, f->coll, ES_MANIFEST_DOWN, &v), 0);
	assert_int_equal(es_manifest_ack_forget(f->m, "p4"), 0);
	assert_int_equal(es_manifest_ack_forget(f->m, ""), -EINVAL);

	assert_int_equal(es_manifest_min_ack(f->m, 12345, ES_MANIFEST_UP, &v),
			 ES_E_MANIFEST_NOTFOUND);
	assert_int_equal(es_manifest_min_ack(f->m, f->coll, 0, &v), -EINVAL);
}

/* Invariant 4 as a caller enforces it, with a compaction. */
static void test_min_ack_guards_removal(void **state)
{
	struct fixture *f = *state;
	struct es_manifest_segment a = {
	    .collection_id = f->coll, .size = 10, .dim = DIM};
	struct es_manifest_segment b = a, c = a, got;
	uint64_t v;

	assert_int_equal(es_manifest_segment_add(f->m, &a, NULL, 0), 0);
	assert_int_equal(es_manifest_segment_add(f->m, &b, NULL, 0), 0);
	assert_int_equal(
	    es_manifest_ack_put(f->m, CLOUD, f->coll, ES_MANIFEST_UP, 2), 0);
	assert_int_equal(es_manifest_segment_add(f->m, &c, NULL, 0), 0);
	assert_int_equal(es_manifest_segment_supersede(
			     f->m, c.id, (int64_t[]){a.id, b.id}, 2),
			 0);
	assert_int_equal(es_manifest_segment_get(f->m, a.id, &got), 0);
	assert_int_equal(got.change_version, 4);
	assert_int_equal(es_manifest_min_ack(f->m, f->coll, ES_MANIFEST_UP, &v),
			 1);
	assert_false(got.change_version <= v); /* must stay */
	assert_int_equal(
	    es_manifest_ack_put(f->m, CLOUD, f->coll, ES_MANIFEST_UP, 4), 0);
	assert_int_equal(es_manifest_min_ack(f->m, f->coll, ES_MANIFEST_UP, &v),
			 1);
	assert_true(got.change_version <= v); /* may go */
	assert_int_equal(es_manifest_segment_remove(f->m, a.id), 0);
}

static struct es_manifest_transfer xfer(int64_t coll, uint64_t seq,
					const char *peer,
					enum es_manifest_direction dir)
{
	struct es_manifest_transfer t = {
	    .collection_id = coll, .origin_seq = seq, .direction = dir};

	strcpy(t.origin, EDGE);
	strcpy(t.peer, peer);
	return t;
}

static void assert_xfer_equal(const struct es_manifest_transfer *a,
			      const struct es_manifest_transfer *b)
{
	assert_int_equal(a->collection_id, b->collection_id);
	assert_string_equal(a->origin, b->origin);
	assert_int_equal(a->origin_seq, b->origin_seq);
	assert_string_equal(a->peer, b->peer);
	assert_int_equal(a->direction, b->direction);
	assert_int_equal(a->offset, b->offset);
	assert_string_equal(a->staged, b->staged);
	assert_int_equal(a->updated_ms, b->updated_ms);
}

static void test_transfers(void **state)
{
	struct fixture *f = *state;
	struct es_manifest_transfer t, got, *list;
	size_t n;

	t = xfer(f->coll, 3, CLOUD, ES_MANIFEST_UP);
	got = t;
	assert_int_equal(es_manifest_transfer_get(f->m, &got),
			 ES_E_MANIFEST_NOTFOUND);
	t.offset = 1 << 20;
	assert_int_equal(es_manifest_transfer_put(f->m, &t), 0);
	assert_int_equal(t.updated_ms, f->now);
	got = xfer(f->coll, 3, CLOUD, ES_MANIFEST_UP);
	assert_int_equal(es_manifest_transfer_get(f->m, &got), 0);
	assert_xfer_equal(&got, &t);

	/* Replaced whole; the offset may go back (a restart). */
	f->now += 1000;
	strcpy(t.staged, "seg-c-3.part");
	t.offset = 4096;
	t.updated_ms = 0; /* now */
	assert_int_equal(es_manifest_transfer_put(f->m, &t), 0);
	got = xfer(f->coll, 3, CLOUD, ES_MANIFEST_UP);
	assert_int_equal(es_manifest_transfer_get(f->m, &got), 0);
	assert_int_equal(got.offset, 4096);
	assert_string_equal(got.staged, "seg-c-3.part");
	assert_int_equal(got.updated_ms, f->now);
	t.updated_ms = 77; /* a caller's time is taken as it is */
	assert_int_equal(es_manifest_transfer_put(f->m, &t), 0);
	assert_int_equal(es_manifest_transfer_get(f->m, &got), 0);
	assert_int_equal(got.updated_ms, 77);

	/* Every key field tells transfers apart. */
	got = xfer(f->coll, 3, CLOUD, ES_MANIFEST_DOWN);
	assert_int_equal(es_manifest_transfer_put(f->m, &got), 0);
	got = xfer(f->coll, 4, CLOUD, ES_MANIFEST_UP);
	assert_int_equal(es_manifest_transfer_put(f->m, &got), 0);
	got = xfer(f->other, 3, CLOUD, ES_MANIFEST_UP);
	assert_int_equal(es_manifest_transfer_put(f->m, &got), 0);
	got = xfer(f->coll, 3, "another", ES_MANIFEST_UP);
	assert_int_equal(es_manifest_transfer_put(f->m, &got), 0);
	got = xfer(f->coll, 3, CLOUD, ES_MANIFEST_UP);
	strcpy(got.origin, "other-device");
	assert_int_equal(es_manifest_transfer_put(f->m, &got), 0);

	assert_int_equal(es_manifest_transfer_list(f->m, NULL, &list, &n), 0);
	assert_int_equal(n, 6);
	assert_string_equal(list[0].peer, "another");
	for (size_t i = 1; i < n; i++)
		assert_string_equal(list[i].peer, CLOUD);
	free(list);
	assert_int_equal(es_manifest_transfer_list(f->m, CLOUD, &list, &n), 0);
	assert_int_equal(n, 5);
	/* By collection, origin, origin_seq, direction. */
	assert_int_equal(list[0].collection_id, f->coll);
	assert_string_equal(list[0].origin, EDGE);
	assert_int_equal(list[0].origin_seq, 3);
	assert_int_equal(list[0].direction, ES_MANIFEST_UP);
	assert_int_equal(list[0].offset, 4096);
	assert_int_equal(list[1].direction, ES_MANIFEST_DOWN);
	assert_int_equal(list[2].origin_seq, 4);
	assert_string_equal(list[3].origin, "other-device");
	assert_int_equal(list[4].collection_id, f->other);
	free(list);
	assert_int_equal(es_manifest_transfer_list(f->m, "nobody", &list, &n),
			 0);
	assert_int_equal(n, 0);
	assert_null(list);

	/* Done: deleted, once. */
	assert_int_equal(es_manifest_transfer_delete(f->m, &t), 0);
	assert_int_equal(es_manifest_transfer_delete(f->m, &t),
			 ES_E_MANIFEST_NOTFOUND);
	got = t;
	assert_int_equal(es_manifest_transfer_get(f->m, &got),
			 ES_E_MANIFEST_NOTFOUND);
	assert_int_equal(es_manifest_transfer_list(f->m, CLOUD, &list, &n), 0);
	assert_int_equal(n, 4);
	free(list);
}

static void test_transfer_refused(void **state)
{
	static const char *const bad_staged[] = {
	    ".", "..", ".hidden", "a/b", "../x", "a b", "x\n",
	};
	struct fixture *f = *state;
	struct es_manifest_transfer t, *list;
	size_t n;

	t = xfer(12345, 1, CLOUD, ES_MANIFEST_UP);
	assert_int_equal(es_manifest_transfer_put(f->m, &t),
			 ES_E_MANIFEST_NOTFOUND);
	t = xfer(f->coll, 0, CLOUD, ES_MANIFEST_UP);
	assert_int_equal(es_manifest_transfer_put(f->m, &t), -EINVAL);
	t = xfer(f->coll, (uint64_t)INT64_MAX + 1, CLOUD, ES_MANIFEST_UP);
	assert_int_equal(es_manifest_transfer_put(f->m, &t), -ERANGE);
	t = xfer(f->coll, 1, "", ES_MANIFEST_UP);
	assert_int_equal(es_manifest_transfer_put(f->m, &t), -EINVAL);
	t = xfer(f->coll, 1, CLOUD, 0);
	assert_int_equal(es_manifest_transfer_put(f->m, &t), -EINVAL);
	t = xfer(f->coll, 1, CLOUD, ES_MANIFEST_UP);
	t.origin[0] = '\0';
	assert_int_equal(es_manifest_transfer_put(f->m, &t), -EINVAL);
	t = xfer(f->coll, 1, CLOUD, ES_MANIFEST_UP);
	t.offset = (uint64_t)INT64_MAX + 1;
	assert_int_equal(es_manifest_transfer_put(f->m, &t), -ERANGE);
	for (size_t i = 0; i < sizeof(bad_staged) / sizeof(bad_staged[0]);
	     i++) {
		t = xfer(f->coll, 1, CLOUD, ES_MANIFEST_UP);
		strcpy(t.staged, bad_staged[i]);
		assert_int_equal(es_manifest_transfer_put(f->m, &t), -EINVAL);
	}
	t = xfer(f->coll, 1, CLOUD, ES_MANIFEST_UP);
	memset(t.staged, 's', sizeof(t.staged));
	assert_int_equal(es_manifest_transfer_put(f->m, &t), -EINVAL);
	t.staged[ES_MANIFEST_STAGED_MAX] = '\0';
	assert_int_equal(es_manifest_transfer_put(f->m, &t), 0);
	assert_int_equal(es_manifest_transfer_list(f->m, NULL, &list, &n), 0);
	assert_int_equal(n, 1);
	free(list);
	assert_int_equal(es_manifest_transfer_list(f->m, "a b", &list, &n),
			 -EINVAL);
	t = xfer(f->coll, 0, CLOUD, ES_MANIFEST_UP);
	assert_int_equal(es_manifest_transfer_get(f->m, &t),
			 ES_E_MANIFEST_NOTFOUND);
	assert_int_equal(es_manifest_transfer_delete(f->m, &t),
			 ES_E_MANIFEST_NOTFOUND);
}

/* A staged name damaged on disk never reaches sync. */
static void test_transfer_bad_rows(void **state)
{
	static const char *const damage[] = {
	    "UPDATE transfer SET staged = '../../etc/passwd'",
	    "UPDATE transfer SET staged = '..'",
	    "UPDATE transfer SET origin = ''",
	    "UPDATE transfer SET peer = 'a b'",
	    "UPDATE transfer SET origin_seq = 0",
	    "UPDATE transfer SET updated = 'x'",
	};
	struct fixture *f = *state;
	struct es_manifest_transfer t = xfer(f->coll, 1, CLOUD, ES_MANIFEST_UP);
	struct es_manifest_transfer *list;
	uint64_t v;
	size_t n;

	assert_int_equal(es_manifest_transfer_put(f->m, &t), 0);
	assert_int_equal(
	    es_manifest_ack_put(f->m, CLOUD, f->coll, ES_MANIFEST_UP, 3), 0);
	es_manifest_close(f->m);
	for (size_t i = 0; i < sizeof(damage) / sizeof(damage[0]); i++) {
		raw_exec(f->t->db, damage[i]);
		assert_int_equal(es_manifest_open(&f->m, f->t->db), 0);
		assert_int_equal(
		    es_manifest_transfer_list(f->m, NULL, &list, &n),
		    ES_E_MANIFEST_CORRUPT);
		assert_null(list);
		es_manifest_close(f->m);
		raw_exec(f->t->db, "UPDATE transfer SET staged = '', "
				   "origin = '" EDGE "', peer = '" CLOUD "', "
				   "origin_seq = 1, updated = 5");
	}
	raw_exec(f->t->db, "UPDATE ack SET version = 'many'");
	assert_int_equal(es_manifest_open(&f->m, f->t->db), 0);
	assert_int_equal(
	    es_manifest_ack_get(f->m, CLOUD, f->coll, ES_MANIFEST_UP, &v),
	    ES_E_MANIFEST_CORRUPT);
	assert_int_equal(es_manifest_transfer_list(f->m, NULL, &list, &n), 0);
	assert_int_equal(n, 1);
	free(list);
}

static void test_segment_tombstones(void **state)
{
	struct fixture *f = *state;
	struct es_manifest_tombstone with_a[3] = {{.id = 30, .hlc = 100},
						  {.id = 10, .hlc = 100},
						  {.id = 20, .hlc = 1}};
	struct es_manifest_tombstone with_b[1] = {{.id = 20, .hlc = 50}};
	struct es_manifest_tombstone lone = {.id = 99, .hlc = 7};
	struct es_manifest_segment a = {
	    .collection_id = f->coll, .size = 10, .dim = DIM};
	struct es_manifest_segment b = a, c = a;
	struct es_manifest_tombstone *list;
	size_t n;

	assert_int_equal(es_manifest_segment_add(f->m, &a, with_a, 3), 0);
	assert_int_equal(es_manifest_segment_tombstones(
			     f->m, f->coll, a.add_version, &list, &n),
			 0);
	assert_int_equal(n, 3);
	assert_int_equal(list[0].id, 10);
	assert_int_equal(list[1].id, 20);
	assert_int_equal(list[2].id, 30);
	assert_int_equal(list[0].hlc, 100);
	assert_string_equal(list[0].origin, es_manifest_device_id(f->m));
	assert_int_equal(list[0].add_version, a.add_version);
	free(list);

	/* A later delete of 20 wins: it travels with b, no longer with a. */
	assert_int_equal(es_manifest_segment_add(f->m, &b, with_b, 1), 0);
	assert_int_equal(es_manifest_segment_tombstones(
			     f->m, f->coll, a.add_version, &list, &n),
			 0);
	assert_int_equal(n, 2);
	assert_int_equal(list[0].id, 10);
	assert_int_equal(list[1].id, 30);
	free(list);
	assert_int_equal(es_manifest_segment_tombstones(
			     f->m, f->coll, b.add_version, &list, &n),
			 0);
	assert_int_equal(n, 1);
	assert_int_equal(list[0].id, 20);
	assert_int_equal(list[0].hlc, 50);
	free(list);

	/* A losing tombstone is not recorded with its segment at all. */
	with_b[0] = (struct es_manifest_tombstone){.id = 10, .hlc = 99};
	assert_int_equal(es_manifest_segment_add(f->m, &c, with_b, 1), 0);
	assert_int_equal(es_manifest_segment_tombstones(
			     f->m, f->coll, c.add_version, &list, &n),
			 0);
	assert_int_equal(n, 0);
	assert_null(list);

	/* Tombstones without a segment carry a version no segment has. */
	assert_int_equal(es_manifest_tombstone_add(f->m, f->coll, &lone, 1), 0);
	assert_int_equal(
	    es_manifest_segment_tombstones(f->m, f->coll, 4, &list, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(list[0].id, 99);
	free(list);

	assert_int_equal(
	    es_manifest_segment_tombstones(f->m, f->coll, 0, &list, &n), 0);
	assert_int_equal(n, 0);
	assert_int_equal(es_manifest_segment_tombstones(f->m, f->coll,
							UINT64_MAX, &list, &n),
			 0);
	assert_int_equal(n, 0);
	assert_int_equal(es_manifest_segment_tombstones(
			     f->m, f->other, a.add_version, &list, &n),
			 0);
	assert_int_equal(n, 0);
	assert_int_equal(
	    es_manifest_segment_tombstones(f->m, 12345, 1, &list, &n),
	    ES_E_MANIFEST_NOTFOUND);
}

static int64_t count(const char *path, const char *table)
{
	char sql[96];
	sqlite3_stmt *st;
	sqlite3 *db;
	int64_t v;

	snprintf(sql, sizeof(sql), "SELECT count(*) FROM %s", table);
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return v;
}

static void test_drop_cascades(void **state)
{
	struct fixture *f = *state;
	struct es_manifest_transfer t = xfer(f->coll, 1, CLOUD, ES_MANIFEST_UP);
	struct es_manifest_transfer u =
	    xfer(f->other, 1, CLOUD, ES_MANIFEST_UP);
	struct es_manifest_peer p = {.device = "edge",
				     .role = ES_MANIFEST_EDGE};
	struct es_manifest_transfer *list;
	uint64_t v;
	size_t n;
	int64_t again;

	assert_int_equal(es_manifest_peer_upsert(f->m, &p), 0);
	assert_int_equal(
	    es_manifest_ack_put(f->m, CLOUD, f->coll, ES_MANIFEST_UP, 3), 0);
	assert_int_equal(
	    es_manifest_ack_put(f->m, CLOUD, f->coll, ES_MANIFEST_DOWN, 2), 0);
	assert_int_equal(
	    es_manifest_ack_put(f->m, CLOUD, f->other, ES_MANIFEST_UP, 1), 0);
	assert_int_equal(es_manifest_transfer_put(f->m, &t), 0);
	assert_int_equal(es_manifest_transfer_put(f->m, &u), 0);

	assert_int_equal(es_manifest_collection_drop(f->m, "c"), 0);
	assert_int_equal(count(f->t->db, "ack"), 1);
	assert_int_equal(count(f->t->db, "transfer"), 1);
	assert_int_equal(count(f->t->db, "peer"), 1); /* peers stay */
	assert_int_equal(es_manifest_transfer_list(f->m, NULL, &list, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(list[0].collection_id, f->other);
	free(list);
	assert_int_equal(ack(f, CLOUD, f->other, ES_MANIFEST_UP), 1);
	assert_int_equal(
	    es_manifest_ack_get(f->m, CLOUD, f->coll, ES_MANIFEST_UP, &v),
	    ES_E_MANIFEST_NOTFOUND);

	/* The name again: a new collection, nothing acknowledged. */
	again = make_collection(f->m, "c");
	assert_true(again > f->other);
	assert_int_equal(ack(f, CLOUD, again, ES_MANIFEST_UP), 0);
	assert_int_equal(es_manifest_min_ack(f->m, again, ES_MANIFEST_UP, &v),
			 0);
	assert_int_equal(es_manifest_check(f->m), 0);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
	    T(test_ack_grows),	       T(test_ack_refused),
	    T(test_min_ack),	       T(test_min_ack_guards_removal),
	    T(test_transfers),	       T(test_transfer_refused),
	    T(test_transfer_bad_rows), T(test_segment_tombstones),
	    T(test_drop_cascades),
	};
#undef T
	return cmocka_run_group_tests(tests, NULL, NULL);
}
