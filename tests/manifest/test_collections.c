/*
 * Collections: create, get, list, drop (with its segments and tombstones),
 * name and field validation, duplicates.
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

struct fixture {
	struct tdir *t;
	struct es_manifest *m;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	void *t;

	if (!f || tdir_setup(&t))
		return -1;
	f->t = t;
	if (es_manifest_open(&f->m, f->t->db))
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

static int create(struct es_manifest *m, const char *name, uint32_t dim,
		  uint32_t metric, uint32_t flags,
		  struct es_manifest_collection *out)
{
	struct es_manifest_collection c = {
	    .dim = dim, .metric = metric, .flags = flags};

	assert_true(strlen(name) <= ES_MANIFEST_NAME_MAX);
	memcpy(c.name, name, strlen(name) + 1);
	if (out)
		*out = c;
	return es_manifest_collection_create(m, out ? out : &c);
}

static void test_crud(void **state)
{
	struct fixture *f = *state;
	struct es_manifest_collection a, b, got, *list;
	size_t n;

	assert_int_equal(es_manifest_collection_list(f->m, &list, &n), 0);
	assert_int_equal(n, 0);
	free(list);

	assert_int_equal(create(f->m, "zeta", 128, 0, ES_COLLECTION_UPLOAD, &a),
			 0);
	assert_int_equal(create(f->m, "alpha", 4096, 2,
				ES_COLLECTION_UPLOAD | ES_COLLECTION_DOWNLOAD,
				&b),
			 0);
	assert_true(a.id > 0 && b.id > 0 && a.id != b.id);
	assert_int_equal(a.version, 0);
	assert_true(a.created_hlc > 0 && b.created_hlc > a.created_hlc);

	assert_int_equal(es_manifest_collection_get(f->m, "zeta", &got), 0);
	assert_int_equal(got.id, a.id);
	assert_string_equal(got.name, "zeta");
	assert_int_equal(got.dim, 128);
	assert_int_equal(got.metric, 0);
	assert_int_equal(got.flags, ES_COLLECTION_UPLOAD);
	assert_int_equal(got.version, 0);
	assert_int_equal(got.created_hlc, a.created_hlc);
	assert_int_equal(es_manifest_collection_get_id(f->m, b.id, &got), 0);
	assert_string_equal(got.name, "alpha");
	assert_int_equal(got.dim, 4096);
	assert_int_equal(got.metric, 2);

	/* Ordered by name. */
	assert_int_equal(es_manifest_collection_list(f->m, &list, &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(list[0].name, "alpha");
	assert_string_equal(list[1].name, "zeta");
	free(list);

	assert_int_equal(es_manifest_collection_drop(f->m, "zeta"), 0);
	assert_int_equal(es_manifest_collection_get(f->m, "zeta", &got),
			 ES_E_MANIFEST_NOTFOUND);
	assert_int_equal(es_manifest_collection_get_id(f->m, a.id, &got),
			 ES_E_MANIFEST_NOTFOUND);
	assert_int_equal(es_manifest_collection_drop(f->m, "zeta"),
			 ES_E_MANIFEST_NOTFOUND);
	assert_int_equal(es_manifest_collection_list(f->m, &list, &n), 0);
	assert_int_equal(n, 1);
	free(list);
}

static void test_names(void **state)
{
	static const char *const good[] = {
	    "a", "0", "abc_1-2", "-", "_x_",
	};
	static const char *const bad[] = {
	    "",	  "A",		 "a b",	  "a/b", "a.b",
	    "..", "caf\xc3\xa9", "tab\t", "x\n", "a;DROP TABLE collection",
	};
	struct fixture *f = *state;
	struct es_manifest_collection c, got, *list;
	char longest[ES_MANIFEST_NAME_MAX + 2];
	size_t n;

	/* 64 characters is the limit, 65 one too many (and in the struct,
	 * with no room for the NUL, still refused). */
	memset(longest, 'x', ES_MANIFEST_NAME_MAX + 1);
	longest[ES_MANIFEST_NAME_MAX + 1] = '\0';
	assert_int_equal(es_manifest_collection_get(f->m, longest, &got),
			 ES_E_MANIFEST_NAME);
	memset(&c, 0, sizeof(c));
	memset(c.name, 'x', sizeof(c.name));
	c.dim = 4;
	assert_int_equal(es_manifest_collection_create(f->m, &c),
			 ES_E_MANIFEST_NAME);
	longest[ES_MANIFEST_NAME_MAX] = '\0';
	assert_int_equal(create(f->m, longest, 4, 0, 0, NULL), 0);
	assert_int_equal(es_manifest_collection_get(f->m, longest, &got), 0);
	assert_string_equal(got.name, longest);

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		assert_true(strlen(good[i]) <= ES_MANIFEST_NAME_MAX);
		assert_int_equal(create(f->m, good[i], 4, 0, 0, NULL), 0);
		assert_int_equal(
		    es_manifest_collection_get(f->m, good[i], &got), 0);
		assert_string_equal(got.name, good[i]);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(create(f->m, bad[i], 4, 0, 0, NULL),
				 ES_E_MANIFEST_NAME);
		assert_int_equal(es_manifest_collection_get(f->m, bad[i], &got),
				 ES_E_MANIFEST_NAME);
		assert_int_equal(es_manifest_collection_drop(f->m, bad[i]),
				 ES_E_MANIFEST_NAME);
	}
	assert_non_null(strstr(es_manifest_last_error(f->m), "name"));
	assert_int_equal(es_manifest_collection_list(f->m, &list, &n), 0);
	assert_int_equal(n, sizeof(good) / sizeof(good[0]) + 1);
	free(list);
}

static void test_fields(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(create(f->m, "d0", 0, 0, 0, NULL), -EINVAL);
	assert_int_equal(create(f->m, "d1", 1, 0, 0, NULL), 0);
	assert_int_equal(create(f->m, "d4096", 4096, 0, 0, NULL), 0);
	assert_int_equal(create(f->m, "d4097", 4097, 0, 0, NULL), -EINVAL);
	assert_int_equal(create(f->m, "m2", 8, 2, 0, NULL), 0);
	assert_int_equal(create(f->m, "m3", 8, 3, 0, NULL), -EINVAL);
	assert_int_equal(create(f->m, "f4", 8, 0, 4, NULL), -EINVAL);
}

static void test_duplicate(void **state)
{
	struct fixture *f = *state;
	struct es_manifest_collection got;

	assert_int_equal(create(f->m, "dup", 8, 0, 0, NULL), 0);
	assert_int_equal(create(f->m, "dup", 16, 1, 0, NULL),
			 ES_E_MANIFEST_EXISTS);
	assert_non_null(strstr(es_manifest_last_error(f->m), "exists"));
	assert_int_equal(es_manifest_collection_get(f->m, "dup", &got), 0);
	assert_int_equal(got.dim, 8);
}

static int64_t rows(const char *path, const char *sql, int64_t id)
{
	sqlite3_stmt *st;
	sqlite3 *db;
	int64_t v;

	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	sqlite3_bind_int64(st, 1, id);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return v;
}

static void test_drop_cascades(void **state)
{
	struct fixture *f = *state;
	struct es_manifest_tombstone tombs[2] = {{.id = 1, .hlc = 5},
						 {.id = 2, .hlc = 6}};
	struct es_manifest_collection a, b, again, got_c;
	struct es_manifest_segment s[3], got;

	assert_int_equal(create(f->m, "gone", 4, 0, 0, &a), 0);
	assert_int_equal(create(f->m, "kept", 4, 0, 0, &b), 0);
	for (int i = 0; i < 3; i++) {
		s[i] = (struct es_manifest_segment){.collection_id =
							i < 2 ? a.id : b.id,
						    .size = 1000,
						    .dim = 4};
		assert_int_equal(es_manifest_segment_add(f->m, &s[i], tombs, 2),
				 0);
	}
	assert_int_equal(es_manifest_segment_set_index(f->m, s[0].id, 10, 1),
			 0);
	assert_int_equal(
	    rows(f->t->db,
		 "SELECT count(*) FROM segment WHERE collection_id = ?1", a.id),
	    2);

	assert_int_equal(es_manifest_collection_drop(f->m, "gone"), 0);
	assert_int_equal(es_manifest_segment_get(f->m, s[0].id, &got),
			 ES_E_MANIFEST_NOTFOUND);
	assert_int_equal(es_manifest_segment_get(f->m, s[1].id, &got),
			 ES_E_MANIFEST_NOTFOUND);
	assert_int_equal(es_manifest_segment_get(f->m, s[2].id, &got), 0);
	assert_int_equal(
	    rows(f->t->db,
		 "SELECT count(*) FROM segment WHERE collection_id = ?1", a.id),
	    0);
	assert_int_equal(
	    rows(f->t->db,
		 "SELECT count(*) FROM tombstone WHERE collection_id = ?1",
		 a.id),
	    0);
	assert_int_equal(
	    rows(f->t->db,
		 "SELECT count(*) FROM tombstone WHERE collection_id = ?1",
		 b.id),
	    2);

	/* The name can be used again, with an id never used before, even
	 * when the largest one was dropped; its version counts on from the
	 * dropped one's (3: two segments and an index), so a peer that saw
	 * the old one misses nothing of the new. Other names start at 0. */
	assert_int_equal(b.version, 0);
	assert_int_equal(create(f->m, "gone", 8, 1, 0, &again), 0);
	assert_true(again.id > b.id);
	assert_int_equal(again.version, 3);
	s[0] = (struct es_manifest_segment){
	    .collection_id = again.id, .size = 1000, .dim = 8};
	assert_int_equal(es_manifest_segment_add(f->m, &s[0], NULL, 0), 0);
	assert_int_equal(es_manifest_collection_get(f->m, "gone", &got_c), 0);
	assert_int_equal(got_c.version, 4);
	assert_int_equal(es_manifest_collection_drop(f->m, "gone"), 0);
	assert_int_equal(create(f->m, "gone", 8, 1, 0, &a), 0);
	assert_true(a.id > again.id);
	assert_int_equal(a.version, 4);
	assert_int_equal(es_manifest_collection_get(f->m, "gone", &got_c), 0);
	assert_int_equal(got_c.version, 4);
	/* a drop that finds nothing changes nothing */
	assert_int_equal(es_manifest_collection_drop(f->m, "never"),
			 ES_E_MANIFEST_NOTFOUND);
	assert_int_equal(es_manifest_check(f->m), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_crud, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_names, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_fields, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_duplicate, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_drop_cascades, setup,
					    teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
