/*
 * Segments and tombstones: add, the state machine and its refusals,
 * version bumps of exactly one per change, listing what changed since a
 * version, ids, duplicates, tombstone conflicts.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "edgesync/manifest.h"
#include "helpers.h"
#include "raw_sql.h"

#define DIM    16
#define REMOTE "cloud-0001"

struct fixture {
	struct tdir *t;
	struct es_manifest *m;
	int64_t coll;  /* collection "c", dim DIM */
	int64_t other; /* collection "o", dim DIM */
};

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

static struct es_manifest_segment seg(int64_t coll, uint64_t n)
{
	return (struct es_manifest_segment){
	    .collection_id = coll,
	    .size = 4096 + n,
	    .checksum = 0xdeadbeef,
	    .count = n,
	    .dim = DIM,
	    .seal_hlc = 1000 + n,
	    .wal_gen = n,
	};
}

static uint64_t version(struct fixture *f, int64_t coll)
{
	struct es_manifest_collection c;

	assert_int_equal(es_manifest_collection_get_id(f->m, coll, &c), 0);
	return c.version;
}

static int64_t add(struct fixture *f, uint64_t n)
{
	struct es_manifest_segment s = seg(f->coll, n);

	assert_int_equal(es_manifest_segment_add(f->m, &s, NULL, 0), 0);
	return s.id;
}

static enum es_segment_state state_of(struct fixture *f, int64_t id)
{
	struct es_manifest_segment s;

	assert_int_equal(es_manifest_segment_get(f->m, id, &s), 0);
	return s.state;
}

static void test_add_get(void **state)
{
	struct fixture *f = *state;
	struct es_manifest_segment s = seg(f->coll, 7), got;

	assert_int_equal(es_manifest_segment_add(f->m, &s, NULL, 0), 0);
	assert_true(s.id > 0);
	assert_int_equal(s.state, ES_SEGMENT_SEALED);
	assert_string_equal(s.origin, es_manifest_device_id(f->m));
	assert_int_equal(s.origin_seq, s.id);
	assert_int_equal(s.add_version, 1);
	assert_int_equal(s.change_version, 1);

	assert_int_equal(es_manifest_segment_get(f->m, s.id, &got), 0);
	assert_int_equal(got.id, s.id);
	assert_int_equal(got.collection_id, f->coll);
	assert_int_equal(got.size, 4096 + 7);
	assert_int_equal(got.checksum, 0xdeadbeef);
	assert_int_equal(got.count, 7);
	assert_int_equal(got.dim, DIM);
	assert_int_equal(got.index_size, 0);
	assert_int_equal(got.state, ES_SEGMENT_SEALED);
	assert_string_equal(got.origin, s.origin);
	assert_int_equal(got.origin_seq, s.id);
	assert_int_equal(got.seal_hlc, 1007);
	assert_int_equal(got.wal_gen, 7);
	assert_int_equal(got.superseded_by, 0);
	assert_int_equal(got.add_version, 1);

	assert_int_equal(es_manifest_segment_find(f->m, f->coll, got.origin,
						  got.origin_seq, &got),
			 0);
	assert_int_equal(got.id, s.id);
	assert_int_equal(
	    es_manifest_segment_find(f->m, f->other, got.origin, s.id, &got),
	    ES_E_MANIFEST_NOTFOUND);
	assert_int_equal(es_manifest_segment_get(f->m, s.id + 100, &got),
			 ES_E_MANIFEST_NOTFOUND);
}

static void test_transitions(void **state)
{
	struct fixture *f = *state;
	int64_t a = add(f, 1), b = add(f, 2), c = add(f, 3), d = add(f, 4);
	int64_t olds[2] = {a, b}, self[1] = {c}, twice[2] = {d, d};
	struct es_manifest_segment s;

	/* SEALED -> INDEXED, once. */
	assert_int_equal(es_manifest_segment_set_index(f->m, a, 500, 0x1234),
			 0);
	assert_int_equal(es_manifest_segment_get(f->m, a, &s), 0);
	assert_int_equal(s.state, ES_SEGMENT_INDEXED);
	assert_int_equal(s.index_size, 500);
	assert_int_equal(s.index_checksum, 0x1234);
	assert_int_equal(es_manifest_segment_set_index(f->m, a, 600, 1),
			 ES_E_MANIFEST_STATE);
	assert_non_null(strstr(es_manifest_last_error(f->m), "INDEXED"));
	assert_int_equal(es_manifest_segment_set_index(f->m, b, 0, 1), -EINVAL);
	assert_int_equal(es_manifest_segment_set_index(f->m, 999, 1, 1),
			 ES_E_MANIFEST_NOTFOUND);

	/* Only SUPERSEDED rows go. */
	assert_int_equal(es_manifest_segment_remove(f->m, a),
			 ES_E_MANIFEST_STATE);
	assert_int_equal(es_manifest_segment_remove(f->m, b),
			 ES_E_MANIFEST_STATE);
	assert_int_equal(es_manifest_segment_remove(f->m, 999),
			 ES_E_MANIFEST_NOTFOUND);

	/* c replaces an INDEXED and a SEALED segment. */
	assert_int_equal(es_manifest_segment_supersede(f->m, c, self, 1),
			 -EINVAL);
	assert_int_equal(es_manifest_segment_supersede(f->m, c, olds, 0),
			 -EINVAL);
	assert_int_equal(es_manifest_segment_supersede(f->m, c, twice, 2),
			 ES_E_MANIFEST_STATE);
	assert_int_equal(state_of(f, d), ES_SEGMENT_SEALED); /* rolled back */
	assert_int_equal(es_manifest_segment_supersede(f->m, c, olds, 2), 0);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(es_manifest_segment_get(f->m, olds[i], &s), 0);
		assert_int_equal(s.state, ES_SEGMENT_SUPERSEDED);
		assert_int_equal(s.superseded_by, c);
	}
	assert_int_equal(state_of(f, c), ES_SEGMENT_SEALED);

	/* Nothing moves out of SUPERSEDED but removal. */
	assert_int_equal(es_manifest_segment_set_index(f->m, b, 10, 1),
			 ES_E_MANIFEST_STATE);
	assert_int_equal(es_manifest_segment_supersede(f->m, c, olds, 1),
			 ES_E_MANIFEST_STATE);
	assert_int_equal(es_manifest_segment_supersede(f->m, a, self, 1),
			 ES_E_MANIFEST_STATE);
	assert_int_equal(state_of(f, c), ES_SEGMENT_SEALED);

	/* A superseded segment with a live one in the list: all or nothing. */
	olds[0] = d;
	olds[1] = a;
	assert_int_equal(es_manifest_segment_supersede(f->m, c, olds, 2),
			 ES_E_MANIFEST_STATE);
	assert_int_equal(state_of(f, d), ES_SEGMENT_SEALED);

	assert_int_equal(es_manifest_segment_remove(f->m, a), 0);
	assert_int_equal(es_manifest_segment_get(f->m, a, &s),
			 ES_E_MANIFEST_NOTFOUND);
	assert_int_equal(es_manifest_segment_remove(f->m, a),
			 ES_E_MANIFEST_NOTFOUND);
	assert_int_equal(es_manifest_segment_remove(f->m, b), 0);
	assert_int_equal(es_manifest_check(f->m), 0);
}

static void test_cross_collection_refused(void **state)
{
	struct fixture *f = *state;
	struct es_manifest_segment o = seg(f->other, 1);
	int64_t mine = add(f, 1);

	assert_int_equal(es_manifest_segment_add(f->m, &o, NULL, 0), 0);
	assert_int_equal(es_manifest_segment_supersede(f->m, mine, &o.id, 1),
			 -EINVAL);
	assert_int_equal(state_of(f, o.id), ES_SEGMENT_SEALED);
}

static void test_versions(void **state)
{
	struct fixture *f = *state;
	struct es_manifest_tombstone tomb = {.id = 42, .hlc = 9};
	struct es_manifest_segment s = seg(f->coll, 1);
	uint64_t other = version(f, f->other);
	int64_t a, b, c;

	assert_int_equal(version(f, f->coll), 0);
	a = add(f, 1);
	assert_int_equal(version(f, f->coll), 1);
	assert_int_equal(es_manifest_segment_add(f->m, &s, &tomb, 1), 0);
	b = s.id;
	assert_int_equal(version(f, f->coll), 2);
	assert_int_equal(es_manifest_segment_set_index(f->m, a, 1, 1), 0);
	assert_int_equal(version(f, f->coll), 3);
	c = add(f, 3);
	assert_int_equal(version(f, f->coll), 4);
	assert_int_equal(
	    es_manifest_segment_supersede(f->m, c, (int64_t[]){a, b}, 2), 0);
	assert_int_equal(version(f, f->coll), 5);
	assert_int_equal(es_manifest_segment_remove(f->m, a), 0);
	assert_int_equal(version(f, f->coll), 6);
	assert_int_equal(es_manifest_tombstone_add(f->m, f->coll, &tomb, 1), 0);
	assert_int_equal(version(f, f->coll), 7);

	/* Refused changes bump nothing. */
	assert_int_equal(es_manifest_segment_set_index(f->m, a, 1, 1),
			 ES_E_MANIFEST_NOTFOUND);
	assert_int_equal(es_manifest_segment_set_index(f->m, b, 1, 1),
			 ES_E_MANIFEST_STATE);
	assert_int_equal(es_manifest_segment_remove(f->m, c),
			 ES_E_MANIFEST_STATE);
	s = seg(f->coll, 9);
	s.dim = DIM + 1;
	assert_int_equal(es_manifest_segment_add(f->m, &s, NULL, 0), -EINVAL);
	assert_int_equal(version(f, f->coll), 7);

	/* The other collection never moved. */
	assert_int_equal(version(f, f->other), other);

	/* Versions survive reopen. */
	es_manifest_close(f->m);
	assert_int_equal(es_manifest_open(&f->m, f->t->db), 0);
	assert_int_equal(version(f, f->coll), 7);
	add(f, 10);
	assert_int_equal(version(f, f->coll), 8);
}

static void test_list_since(void **state)
{
	struct fixture *f = *state;
	struct es_manifest_segment *list;
	int64_t s1, s2, s3;
	size_t n;

	assert_int_equal(es_manifest_segment_list(f->m, f->coll, 0, &list, &n),
			 0);
	assert_int_equal(n, 0);
	assert_null(list);

	s1 = add(f, 1); /* v1 */
	s2 = add(f, 2); /* v2 */
	add(f, 99);	/* v3 */
	assert_int_equal(es_manifest_segment_set_index(f->m, s1, 8, 8), 0);
	s3 = add(f, 3); /* v5 */

	assert_int_equal(es_manifest_segment_list(f->m, f->coll, 0, &list, &n),
			 0);
	assert_int_equal(n, 4);
	assert_int_equal(list[0].id, s1);
	assert_int_equal(list[0].add_version, 1);
	assert_int_equal(list[0].change_version, 4);
	assert_int_equal(list[0].state, ES_SEGMENT_INDEXED);
	assert_int_equal(list[1].id, s2);
	assert_int_equal(list[3].id, s3);
	assert_int_equal(list[3].add_version, 5);
	free(list);

	/* Since 2: s1 changed at 4, the third added at 3, s3 at 5. */
	assert_int_equal(es_manifest_segment_list(f->m, f->coll, 2, &list, &n),
			 0);
	assert_int_equal(n, 3);
	assert_int_equal(list[0].id, s1);
	assert_int_equal(list[2].id, s3);
	free(list);

	assert_int_equal(es_manifest_segment_list(f->m, f->coll, 4, &list, &n),
			 0);
	assert_int_equal(n, 1);
	assert_int_equal(list[0].id, s3);
	free(list);

	assert_int_equal(es_manifest_segment_list(f->m, f->coll, 5, &list, &n),
			 0);
	assert_int_equal(n, 0);
	assert_int_equal(
	    es_manifest_segment_list(f->m, f->coll, UINT64_MAX, &list, &n), 0);
	assert_int_equal(n, 0);

	/* Supersede: the old ones show up again, as changed. */
	assert_int_equal(
	    es_manifest_segment_supersede(f->m, s3, (int64_t[]){s1, s2}, 2), 0);
	assert_int_equal(es_manifest_segment_list(f->m, f->coll, 5, &list, &n),
			 0);
	assert_int_equal(n, 2);
	assert_int_equal(list[0].id, s1);
	assert_int_equal(list[0].state, ES_SEGMENT_SUPERSEDED);
	assert_int_equal(list[0].change_version, 6);
	assert_int_equal(list[1].id, s2);
	free(list);

	/* Collections do not mix. */
	assert_int_equal(es_manifest_segment_list(f->m, f->other, 0, &list, &n),
			 0);
	assert_int_equal(n, 0);
	assert_int_equal(es_manifest_segment_list(f->m, 12345, 0, &list, &n),
			 ES_E_MANIFEST_NOTFOUND);
}

static void test_add_refused(void **state)
{
	struct fixture *f = *state;
	struct es_manifest_segment s = seg(f->coll, 1), dup;

	s.collection_id = 12345;
	assert_int_equal(es_manifest_segment_add(f->m, &s, NULL, 0),
			 ES_E_MANIFEST_NOTFOUND);
	assert_int_equal(s.id, 0); /* untouched on failure */
	s = seg(f->coll, 1);
	s.size = 0;
	assert_int_equal(es_manifest_segment_add(f->m, &s, NULL, 0), -EINVAL);
	s = seg(f->coll, 1);
	s.state = ES_SEGMENT_SUPERSEDED;
	assert_int_equal(es_manifest_segment_add(f->m, &s, NULL, 0),
			 ES_E_MANIFEST_STATE);
	s = seg(f->coll, 1);
	s.state = ES_SEGMENT_INDEXED;
	assert_int_equal(es_manifest_segment_add(f->m, &s, NULL, 0), -EINVAL);
	s.index_checksum = 3;
	assert_int_equal(es_manifest_segment_add(f->m, &s, NULL, 0), -EINVAL);
	s = seg(f->coll, 1);
	s.index_size = 10;
	assert_int_equal(es_manifest_segment_add(f->m, &s, NULL, 0), -EINVAL);
	s = seg(f->coll, 1);
	s.seal_hlc = (uint64_t)INT64_MAX + 1;
	assert_int_equal(es_manifest_segment_add(f->m, &s, NULL, 0), -ERANGE);
	s = seg(f->coll, 1);
	strcpy(s.origin, "bad origin");
	assert_int_equal(es_manifest_segment_add(f->m, &s, NULL, 0), -EINVAL);
	/* A peer's segment must say which of its segments it is. */
	s = seg(f->coll, 1);
	strcpy(s.origin, REMOTE);
	assert_int_equal(es_manifest_segment_add(f->m, &s, NULL, 0), -EINVAL);
	assert_int_equal(version(f, f->coll), 0);

	/* A peer's segment, arriving with its index. */
	s.origin_seq = 17;
	s.state = ES_SEGMENT_INDEXED;
	s.index_size = 777;
	s.index_checksum = 5;
	assert_int_equal(es_manifest_segment_add(f->m, &s, NULL, 0), 0);
	assert_int_equal(s.state, ES_SEGMENT_INDEXED);
	assert_int_equal(s.origin_seq, 17);
	assert_int_equal(
	    es_manifest_segment_find(f->m, f->coll, REMOTE, 17, &dup), 0);
	assert_int_equal(dup.id, s.id);
	assert_int_equal(dup.index_size, 777);

	/* Resent: refused as a duplicate, by origin or by id. */
	dup = seg(f->coll, 1);
	strcpy(dup.origin, REMOTE);
	dup.origin_seq = 17;
	assert_int_equal(es_manifest_segment_add(f->m, &dup, NULL, 0),
			 ES_E_MANIFEST_EXISTS);
	dup = seg(f->coll, 1);
	dup.id = s.id;
	assert_int_equal(es_manifest_segment_add(f->m, &dup, NULL, 0),
			 ES_E_MANIFEST_EXISTS);
	/* The same origin sequence in another collection is another one. */
	dup = seg(f->other, 1);
	strcpy(dup.origin, REMOTE);
	dup.origin_seq = 17;
	assert_int_equal(es_manifest_segment_add(f->m, &dup, NULL, 0), 0);
	assert_int_equal(version(f, f->coll), 1);
}

static void test_ids(void **state)
{
	struct fixture *f = *state;
	struct es_manifest_segment s = seg(f->coll, 1);
	int64_t r1, r2, r3, last;

	assert_int_equal(es_manifest_segment_reserve(f->m, &r1), 0);
	assert_int_equal(es_manifest_segment_reserve(f->m, &r2), 0);
	assert_true(r2 > r1 && r1 > 0);
	s.id = r1;
	assert_int_equal(es_manifest_segment_add(f->m, &s, NULL, 0), 0);
	assert_int_equal(s.id, r1);
	assert_int_equal(s.origin_seq, (uint64_t)r1);
	/* Automatic ids come after every reserved one. */
	last = add(f, 2);
	assert_true(last > r2);
	/* Removing the newest row does not free its id. */
	r3 = add(f, 3);
	assert_int_equal(es_manifest_segment_supersede(f->m, last, &r3, 1), 0);
	assert_int_equal(es_manifest_segment_remove(f->m, r3), 0);
	es_manifest_close(f->m);
	assert_int_equal(es_manifest_open(&f->m, f->t->db), 0);
	assert_true(add(f, 4) > r3);
	assert_int_equal(es_manifest_segment_reserve(f->m, &r1), 0);
	assert_true(r1 > r3 + 1);
	assert_int_equal(es_manifest_segment_add(f->m, &s, NULL, 0),
			 ES_E_MANIFEST_EXISTS);
}

static void test_wal_gen(void **state)
{
	struct fixture *f = *state;
	uint64_t gen = 99;

	assert_int_equal(es_manifest_sealed_wal_gen(f->m, f->coll, &gen), 0);
	assert_int_equal(gen, 0);
	add(f, 5);
	add(f, 12);
	add(f, 8);
	assert_int_equal(es_manifest_sealed_wal_gen(f->m, f->coll, &gen), 0);
	assert_int_equal(gen, 12);
	assert_int_equal(es_manifest_sealed_wal_gen(f->m, f->other, &gen), 0);
	assert_int_equal(gen, 0);
	assert_int_equal(es_manifest_sealed_wal_gen(f->m, 12345, &gen),
			 ES_E_MANIFEST_NOTFOUND);
}

static void test_tombstones_with_segment(void **state)
{
	struct fixture *f = *state;
	struct es_manifest_tombstone tombs[3] = {
	    {.id = 1, .hlc = 100},
	    {.id = UINT64_MAX, .hlc = 101},
	    {.id = 3, .hlc = 102, .origin = REMOTE},
	};
	struct es_manifest_segment s = seg(f->coll, 1);
	struct es_manifest_tombstone *list;
	size_t n;

	add(f, 0);
	assert_int_equal(es_manifest_segment_add(f->m, &s, tombs, 3), 0);
	assert_int_equal(
	    es_manifest_tombstone_list(f->m, f->coll, 0, &list, &n), 0);
	assert_int_equal(n, 3);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(list[i].add_version, s.add_version);
	/* Ordered by version, then by id as SQLite's signed integer. */
	assert_true(list[0].id == UINT64_MAX);
	assert_int_equal(list[0].hlc, 101);
	assert_string_equal(list[0].origin, es_manifest_device_id(f->m));
	assert_int_equal(list[1].id, 1);
	assert_int_equal(list[2].id, 3);
	assert_string_equal(list[2].origin, REMOTE);
	free(list);

	assert_int_equal(
	    es_manifest_tombstone_list(f->m, f->coll, s.add_version, &list, &n),
	    0);
	assert_int_equal(n, 0);
	assert_int_equal(
	    es_manifest_tombstone_list(f->m, f->other, 0, &list, &n), 0);
	assert_int_equal(n, 0);

	/* A bad tombstone refuses the whole segment. */
	s = seg(f->coll, 2);
	tombs[1].hlc = (uint64_t)INT64_MAX + 1;
	assert_int_equal(es_manifest_segment_add(f->m, &s, tombs, 3), -ERANGE);
	tombs[1].hlc = 5;
	strcpy(tombs[2].origin, "a b");
	assert_int_equal(es_manifest_segment_add(f->m, &s, tombs, 3), -EINVAL);
	assert_int_equal(s.id, 0);
	assert_int_equal(version(f, f->coll), 2);
}

static void test_tombstone_conflicts(void **state)
{
	struct fixture *f = *state;
	struct es_manifest_tombstone t = {.id = 7, .hlc = 500}, *list;
	struct es_manifest_tombstone two[2] = {
	    {.id = 7, .hlc = 900, .origin = "dev-a"},
	    {.id = 8, .hlc = 1},
	};
	size_t n;

	assert_int_equal(es_manifest_tombstone_add(f->m, f->coll, &t, 0),
			 -EINVAL);
	assert_int_equal(es_manifest_tombstone_add(f->m, 12345, &t, 1),
			 ES_E_MANIFEST_NOTFOUND);
	strcpy(t.origin, "dev-b");
	assert_int_equal(es_manifest_tombstone_add(f->m, f->coll, &t, 1), 0);
	assert_int_equal(version(f, f->coll), 1);

	/* Older clock: loses, the row keeps its version. */
	t.hlc = 499;
	strcpy(t.origin, "dev-z");
	assert_int_equal(es_manifest_tombstone_add(f->m, f->coll, &t, 1), 0);
	/* Same clock, smaller device id: loses. */
	t.hlc = 500;
	strcpy(t.origin, "dev-a");
	assert_int_equal(es_manifest_tombstone_add(f->m, f->coll, &t, 1), 0);
	assert_int_equal(version(f, f->coll), 3);
	assert_int_equal(
	    es_manifest_tombstone_list(f->m, f->coll, 0, &list, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(list[0].hlc, 500);
	assert_string_equal(list[0].origin, "dev-b");
	assert_int_equal(list[0].add_version, 1);
	free(list);

	/* Same clock, larger device id: wins, and lists as changed. */
	strcpy(t.origin, "dev-c");
	assert_int_equal(es_manifest_tombstone_add(f->m, f->coll, &t, 1), 0);
	assert_int_equal(
	    es_manifest_tombstone_list(f->m, f->coll, 3, &list, &n), 0);
	assert_int_equal(n, 1);
	assert_string_equal(list[0].origin, "dev-c");
	assert_int_equal(list[0].add_version, 4);
	free(list);

	/* Newer clock wins; several in one call are one change. */
	assert_int_equal(es_manifest_tombstone_add(f->m, f->coll, two, 2), 0);
	assert_int_equal(version(f, f->coll), 5);
	assert_int_equal(
	    es_manifest_tombstone_list(f->m, f->coll, 4, &list, &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(list[0].id, 7);
	assert_int_equal(list[0].hlc, 900);
	assert_int_equal(list[1].id, 8);
	free(list);
}

/*
 * A segment's rows' clocks: recorded with it in its transaction, read
 * back by id and by add_version; a segment added without them reads as
 * one run at its seal_hlc (none with no rows); a list that does not fit
 * the segment is refused before anything is written; a damaged record is
 * called corrupt; the runs go with their segment.
 */
static void test_clocks(void **state)
{
	struct fixture *f = *state;
	struct es_manifest_segment s = seg(f->coll, 10),
				   plain = seg(f->coll, 4),
				   empty = seg(f->coll, 0),
				   bad = seg(f->coll, 5);
	const struct es_clock_run runs[3] = {{.row = 0, .hlc = 7},
					     {.row = 4, .hlc = 900},
					     {.row = 9, .hlc = 1010}};
	struct es_clock_run *got;
	uint64_t v;
	size_t n;

	assert_int_equal(
	    es_manifest_segment_add_clocked(f->m, &s, runs, 3, NULL, 0), 0);
	assert_int_equal(es_manifest_segment_clocks(f->m, s.id, &got, &n), 0);
	assert_int_equal(n, 3);
	assert_memory_equal(got, runs, sizeof(runs));
	free(got);
	assert_int_equal(es_manifest_segment_clocks_at(f->m, f->coll,
						       s.add_version, &got, &n),
			 0);
	assert_int_equal(n, 3);
	assert_int_equal(got[2].hlc, 1010);
	free(got);

	assert_int_equal(es_manifest_segment_add(f->m, &plain, NULL, 0), 0);
	assert_int_equal(es_manifest_segment_clocks(f->m, plain.id, &got, &n),
			 0);
	assert_int_equal(n, 1);
	assert_int_equal(got[0].row, 0);
	assert_int_equal(got[0].hlc, plain.seal_hlc);
	free(got);
	assert_int_equal(es_manifest_segment_add(f->m, &empty, NULL, 0), 0);
	assert_int_equal(es_manifest_segment_clocks(f->m, empty.id, &got, &n),
			 0);
	assert_int_equal(n, 0);
	assert_null(got);

	/* rows past the segment's 5; a clock above its seal_hlc (1005) */
	v = version(f, f->coll);
	assert_int_equal(
	    es_manifest_segment_add_clocked(f->m, &bad, runs, 3, NULL, 0),
	    -EINVAL);
	assert_non_null(strstr(es_manifest_last_error(f->m), "clock run 2"));
	bad.count = 10;
	assert_int_equal(
	    es_manifest_segment_add_clocked(f->m, &bad, runs, 3, NULL, 0),
	    -EINVAL);
	assert_int_equal(version(f, f->coll), v);
	assert_int_equal(
	    es_manifest_segment_clocks_at(f->m, f->coll, v + 1, &got, &n),
	    ES_E_MANIFEST_NOTFOUND);
	assert_int_equal(es_manifest_segment_clocks(f->m, 999, &got, &n),
			 ES_E_MANIFEST_NOTFOUND);

	/* damaged records: cut short, empty, text, a number, rows going
	 * backwards; and runs for a segment of no rows */
	static const char *const damage[] = {
	    "UPDATE segment_clock SET runs = substr(runs, 1, 20)",
	    "UPDATE segment_clock SET runs = x''",
	    "UPDATE segment_clock SET runs = 'abcdefghijklmnop'",
	    "UPDATE segment_clock SET runs = 7",
	    "UPDATE segment_clock SET runs = "
	    "x'00000000000000000700000000000000"
	    "00000000000000000800000000000000'",
	};
	for (size_t i = 0; i < sizeof(damage) / sizeof(damage[0]); i++) {
		raw_exec(f->t->db, damage[i]);
		assert_int_equal(
		    es_manifest_segment_clocks(f->m, s.id, &got, &n),
		    ES_E_MANIFEST_CORRUPT);
		assert_null(got);
	}
	raw_exec(f->t->db, "INSERT INTO segment_clock (segment_id, runs) "
			   "SELECT id, x'00000000000000000000000000000000' "
			   "FROM segment WHERE count = 0");
	assert_int_equal(es_manifest_segment_clocks(f->m, empty.id, &got, &n),
			 ES_E_MANIFEST_CORRUPT);
	raw_exec(f->t->db, "DELETE FROM segment_clock WHERE segment_id != "
			   "(SELECT min(segment_id) FROM segment_clock)");

	/* superseded and removed: its runs go with it */
	assert_int_equal(
	    es_manifest_segment_supersede(f->m, plain.id, &s.id, 1), 0);
	assert_int_equal(es_manifest_segment_remove(f->m, s.id), 0);
	assert_int_equal(
	    raw_int(f->t->db, "SELECT count(*) FROM segment_clock"), 0);
	assert_int_equal(es_manifest_check(f->m), 0);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
	    T(test_add_get),
	    T(test_transitions),
	    T(test_cross_collection_refused),
	    T(test_versions),
	    T(test_list_since),
	    T(test_add_refused),
	    T(test_ids),
	    T(test_wal_gen),
	    T(test_tombstones_with_segment),
	    T(test_tombstone_conflicts),
	    T(test_clocks),
	};
#undef T
	return cmocka_run_group_tests(tests, NULL, NULL);
}
