/*
 * Opening a manifest: schema creation and reopen, migration from an older
 * schema, refusal of newer, foreign and damaged files, the device id.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "edgesync/manifest.h"
#include "helpers.h"
#include "raw_sql.h"
#include "manifest_test.h"

static void assert_hex32(const char *id)
{
	assert_int_equal(strlen(id), 32);
	for (int i = 0; i < 32; i++)
		assert_non_null(strchr("0123456789abcdef", id[i]));
}

static void test_create_reopen(void **state)
{
	static const char *const tables[] = {
	    "meta", "collection", "segment",  "tombstone",
	    "peer", "ack",	  "transfer", "segment_clock"};
	struct tdir *t = *state;
	char device[ES_MANIFEST_DEVICE_MAX + 1];
	struct es_manifest *m;

	assert_int_equal(es_manifest_schema_version(), 4);
	assert_int_equal(es_manifest_open(&m, t->db), 0);
	assert_hex32(es_manifest_device_id(m));
	strcpy(device, es_manifest_device_id(m));
	assert_string_equal(es_manifest_last_error(m), "");
	assert_int_equal(es_manifest_check(m), 0);
	es_manifest_close(m);

	assert_int_equal(raw_int(t->db, "PRAGMA user_version"), 4);
	assert_int_equal(raw_int(t->db, "PRAGMA application_id"), 0x45534d46);
	for (size_t i = 0; i < sizeof(tables) / sizeof(tables[0]); i++)
		assert_int_equal(table_count(t->db, tables[i]), 1);

	/* Reopen: nothing to migrate, same identity, WAL kept. */
	assert_int_equal(es_manifest_open(&m, t->db), 0);
	assert_string_equal(es_manifest_device_id(m), device);
	es_manifest_close(m);
	assert_int_equal(es_manifest_open(&m, t->db), 0);
	assert_string_equal(es_manifest_device_id(m), device);
	es_manifest_close(m);
	assert_int_equal(raw_int(t->db, "PRAGMA user_version"), 4);
}

static void test_device_ids_differ(void **state)
{
	struct tdir *t = *state;
	char other[128];
	struct es_manifest *a, *b;

	snprintf(other, sizeof(other), "%s/other.db", t->dir);
	assert_int_equal(es_manifest_open(&a, t->db), 0);
	assert_int_equal(es_manifest_open(&b, other), 0);
	assert_string_not_equal(es_manifest_device_id(a),
				es_manifest_device_id(b));
	es_manifest_close(a);
	es_manifest_close(b);
	unlink(other);
	snprintf(other, sizeof(other), "%s/other.db-wal", t->dir);
	unlink(other);
	snprintf(other, sizeof(other), "%s/other.db-shm", t->dir);
	unlink(other);
}

static void test_migrate_from_v1(void **state)
{
	struct tdir *t = *state;
	struct es_manifest_collection c = {.name = "old", .dim = 8};
	struct es_manifest_segment s = {.size = 100, .dim = 8};
	char device[ES_MANIFEST_DEVICE_MAX + 1];
	struct es_manifest_collection got;
	struct es_manifest *m;

	/* A version 1 database, as the first edgesync wrote it. */
	assert_int_equal(manifest_open_version(&m, t->db, 1), 0);
	assert_int_equal(es_manifest_collection_create(m, &c), 0);
	strcpy(device, es_manifest_device_id(m));
	es_manifest_close(m);
	assert_int_equal(raw_int(t->db, "PRAGMA user_version"), 1);
	assert_int_equal(table_count(t->db, "segment"), 0);

	assert_int_equal(es_manifest_open(&m, t->db), 0);
	assert_int_equal(raw_int(t->db, "PRAGMA user_version"), 4);
	assert_int_equal(table_count(t->db, "ack"), 1);
	assert_string_equal(es_manifest_device_id(m), device);
	assert_int_equal(es_manifest_collection_get(m, "old", &got), 0);
	assert_int_equal(got.id, c.id);
	assert_int_equal(got.dim, 8);
	assert_int_equal(got.created_hlc, c.created_hlc);
	s.collection_id = c.id;
	assert_int_equal(es_manifest_segment_add(m, &s, NULL, 0), 0);
	assert_int_equal(s.add_version, 1);
	assert_int_equal(es_manifest_check(m), 0);
	es_manifest_close(m);
}

/* Version 2, as the edgesync before sync wrote it, with rows in it. */
static void make_v2(const char *path, struct es_manifest_collection *c,
		    struct es_manifest_segment *s, char *device)
{
	struct es_manifest_tombstone tomb = {.id = 77, .hlc = 5};
	struct es_manifest *m;

	assert_int_equal(manifest_open_version(&m, path, 2), 0);
	assert_int_equal(es_manifest_collection_create(m, c), 0);
	s->collection_id = c->id;
	assert_int_equal(es_manifest_segment_add(m, s, &tomb, 1), 0);
	strcpy(device, es_manifest_device_id(m));
	es_manifest_close(m);
	assert_int_equal(raw_int(path, "PRAGMA user_version"), 2);
	assert_int_equal(table_count(path, "segment"), 1);
	assert_int_equal(table_count(path, "peer"), 0);
	assert_int_equal(table_count(path, "ack"), 0);
	assert_int_equal(table_count(path, "transfer"), 0);
}

static void test_migrate_from_v2(void **state)
{
	struct tdir *t = *state;
	struct es_manifest_collection c = {.name = "old", .dim = 8}, got;
	struct es_manifest_segment s = {.size = 100,
					.dim = 8,
					.count = 3,
					.seal_hlc = 42},
				   sg;
	struct es_manifest_peer p = {.device = "edge-1", .role = 1};
	char device[ES_MANIFEST_DEVICE_MAX + 1];
	struct es_manifest_tombstone *tombs;
	struct es_clock_run *runs;
	struct es_manifest *m;
	uint64_t v;
	size_t n;

	make_v2(t->db, &c, &s, device);
	assert_int_equal(es_manifest_open(&m, t->db), 0);
	assert_int_equal(raw_int(t->db, "PRAGMA user_version"), 4);
	assert_int_equal(table_count(t->db, "peer"), 1);
	assert_int_equal(table_count(t->db, "ack"), 1);
	assert_int_equal(table_count(t->db, "transfer"), 1);

	/* What version 2 held is all there. */
	assert_string_equal(es_manifest_device_id(m), device);
	assert_int_equal(es_manifest_collection_get(m, "old", &got), 0);
	assert_int_equal(got.id, c.id);
	assert_int_equal(got.version, 1);
	assert_int_equal(es_manifest_segment_get(m, s.id, &sg), 0);
	assert_int_equal(sg.add_version, 1);
	assert_int_equal(es_manifest_segment_tombstones(m, c.id, 1, &tombs, &n),
			 0);
	assert_int_equal(n, 1);
	assert_int_equal(tombs[0].id, 77);
	free(tombs);
	/* its rows at its segment's clock (schema 4) */
	assert_int_equal(es_manifest_segment_clocks(m, s.id, &runs, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(runs[0].row, 0);
	assert_int_equal(runs[0].hlc, s.seal_hlc);
	free(runs);

	/* And the new tables work. */
	assert_int_equal(es_manifest_peer_upsert(m, &p), 0);
	assert_int_equal(
	    es_manifest_ack_put(m, "edge-1", c.id, ES_MANIFEST_DOWN, 1), 0);
	assert_int_equal(
	    es_manifest_ack_get(m, "edge-1", c.id, ES_MANIFEST_DOWN, &v), 0);
	assert_int_equal(v, 1);
	assert_int_equal(es_manifest_check(m), 0);
	es_manifest_close(m);

	/* Reopen: nothing left to migrate. */
	assert_int_equal(es_manifest_open(&m, t->db), 0);
	assert_int_equal(es_manifest_peer_get(m, "edge-1", &p), 0);
	es_manifest_close(m);
	assert_int_equal(raw_int(t->db, "PRAGMA user_version"), 4);
}

/* A migration that fails leaves the file at the version before it. */
static void test_migration_rolled_back(void **state)
{
	struct tdir *t = *state;
	struct es_manifest_collection c = {.name = "old", .dim = 8};
	struct es_manifest_segment s = {.size = 100, .dim = 8};
	char device[ES_MANIFEST_DEVICE_MAX + 1];
	struct es_manifest *m;

	make_v2(t->db, &c, &s, device);
	/* A table in the way of migration 3's last CREATE. */
	raw_exec(t->db, "CREATE TABLE transfer (x INTEGER)");
	m = (struct es_manifest *)&m;
	assert_int_equal(es_manifest_open(&m, t->db), ES_E_MANIFEST_SQL);
	assert_null(m);
	assert_int_equal(raw_int(t->db, "PRAGMA user_version"), 2);
	assert_int_equal(table_count(t->db, "peer"), 0);
	assert_int_equal(table_count(t->db, "ack"), 0);

	/* Out of the way, the same file migrates. */
	raw_exec(t->db, "DROP TABLE transfer");
	assert_int_equal(es_manifest_open(&m, t->db), 0);
	assert_int_equal(raw_int(t->db, "PRAGMA user_version"), 4);
	assert_int_equal(es_manifest_check(m), 0);
	es_manifest_close(m);
}

static void test_newer_refused(void **state)
{
	struct tdir *t = *state;
	struct es_manifest *m;

	assert_int_equal(es_manifest_open(&m, t->db), 0);
	es_manifest_close(m);
	raw_exec(t->db, "PRAGMA user_version = 5");
	m = (struct es_manifest *)&m;
	assert_int_equal(es_manifest_open(&m, t->db), ES_E_MANIFEST_NEWER);
	assert_null(m);
	/* Refused before anything was written. */
	assert_int_equal(raw_int(t->db, "PRAGMA user_version"), 5);
	/* The test hook cannot ask for a version this edgesync lacks. */
	assert_int_equal(manifest_open_version(&m, t->db, 5), -EINVAL);
	assert_null(m);
}

static void test_foreign_refused(void **state)
{
	struct tdir *t = *state;
	struct es_manifest *m;

	raw_exec(t->db, "CREATE TABLE notes (x TEXT)");
	assert_int_equal(es_manifest_open(&m, t->db), ES_E_MANIFEST_FOREIGN);
	raw_exec(t->db, "PRAGMA user_version = 1");
	assert_int_equal(es_manifest_open(&m, t->db), ES_E_MANIFEST_FOREIGN);
	assert_int_equal(table_count(t->db, "collection"), 0);
}

static void write_garbage(int fd, off_t off, size_t len, uint32_t seed)
{
	unsigned char buf[4096];

	while (len) {
		size_t n = len < sizeof(buf) ? len : sizeof(buf);

		for (size_t i = 0; i < n; i++) {
			seed = seed * 1103515245u + 12345u;
			buf[i] = (unsigned char)(seed >> 16);
		}
		assert_int_equal(pwrite(fd, buf, n, off), (ssize_t)n);
		off += (off_t)n;
		len -= n;
	}
}

static void test_garbage_corrupt(void **state)
{
	struct tdir *t = *state;
	struct es_manifest *m;
	int fd;

	fd = open(t->db, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	write_garbage(fd, 0, 16384, 7);
	close(fd);
	assert_int_equal(es_manifest_open(&m, t->db), ES_E_MANIFEST_CORRUPT);
	assert_null(m);
}

/* A real manifest whose pages after the first are overwritten. */
static void test_damaged_pages_corrupt(void **state)
{
	struct tdir *t = *state;
	struct es_manifest_collection c = {.dim = 4};
	struct es_manifest *m;
	struct stat st;
	int fd;

	assert_int_equal(es_manifest_open(&m, t->db), 0);
	for (int i = 0; i < 300; i++) {
		snprintf(c.name, sizeof(c.name), "collection-%04d", i);
		assert_int_equal(es_manifest_collection_create(m, &c), 0);
	}
	es_manifest_close(m); /* last connection: checkpoints the WAL */
	assert_int_equal(stat(t->db, &st), 0);
	assert_true(st.st_size > 3 * 4096);

	fd = open(t->db, O_WRONLY);
	assert_true(fd >= 0);
	write_garbage(fd, 4096, (size_t)st.st_size - 4096, 11);
	close(fd);
	assert_int_equal(es_manifest_open(&m, t->db), ES_E_MANIFEST_CORRUPT);
}

/* Rows that SQLite accepts but the manifest must not hand out. */
static void test_bad_rows_corrupt(void **state)
{
	struct tdir *t = *state;
	struct es_manifest_collection c = {.name = "c", .dim = 4}, got;
	struct es_manifest_segment s = {.size = 1, .dim = 4}, sg;
	struct es_manifest *m;

	assert_int_equal(es_manifest_open(&m, t->db), 0);
	assert_int_equal(es_manifest_collection_create(m, &c), 0);
	s.collection_id = c.id;
	assert_int_equal(es_manifest_segment_add(m, &s, NULL, 0), 0);
	es_manifest_close(m);

	/* Values no CHECK constraint covers: the manifest's reads refuse. */
	raw_exec(t->db, "UPDATE segment SET checksum = -1;"
			"UPDATE collection SET name = 'Not/Valid';");
	assert_int_equal(es_manifest_open(&m, t->db), 0);
	assert_int_equal(es_manifest_segment_get(m, s.id, &sg),
			 ES_E_MANIFEST_CORRUPT);
	assert_int_equal(es_manifest_collection_get_id(m, c.id, &got),
			 ES_E_MANIFEST_CORRUPT);
	es_manifest_close(m);
	raw_exec(t->db, "UPDATE segment SET checksum = 1, origin = 'a b';"
			"UPDATE collection SET name = 'c';");
	assert_int_equal(es_manifest_open(&m, t->db), 0);
	assert_int_equal(es_manifest_segment_get(m, s.id, &sg),
			 ES_E_MANIFEST_CORRUPT);
	assert_int_equal(es_manifest_collection_get_id(m, c.id, &got), 0);
	es_manifest_close(m);

	/* Values a CHECK constraint forbids: open's quick_check refuses. */
	raw_exec(t->db, "PRAGMA ignore_check_constraints = ON;"
			"UPDATE segment SET state = 9, origin = 'x';");
	assert_int_equal(es_manifest_open(&m, t->db), ES_E_MANIFEST_CORRUPT);
	raw_exec(t->db, "PRAGMA ignore_check_constraints = ON;"
			"UPDATE segment SET state = 1;");

	raw_exec(t->db,
		 "UPDATE meta SET value = 'a b' WHERE key = 'device_id'");
	assert_int_equal(es_manifest_open(&m, t->db), ES_E_MANIFEST_CORRUPT);
	raw_exec(t->db, "UPDATE meta SET value = 'x' WHERE key = 'device_id';"
			"UPDATE meta SET value = 'soon' WHERE key = "
			"'hlc_ceiling'");
	assert_int_equal(es_manifest_open(&m, t->db), ES_E_MANIFEST_CORRUPT);
}

static void test_missing_directory(void **state)
{
	struct es_manifest *m;
	int rc;

	(void)state;
	rc = es_manifest_open(&m, "/tmp/es-manifest-no-such-dir/x/m.db");
	assert_int_equal(rc, -ENOENT);
	assert_null(m);
}

static void test_strerror(void **state)
{
	const int codes[] = {
	    ES_E_MANIFEST_NEWER,    ES_E_MANIFEST_CORRUPT, ES_E_MANIFEST_EXISTS,
	    ES_E_MANIFEST_NOTFOUND, ES_E_MANIFEST_STATE,   ES_E_MANIFEST_NAME,
	    ES_E_MANIFEST_SQL,	    ES_E_MANIFEST_FOREIGN,
	};

	(void)state;
	for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
		assert_null(strstr(es_manifest_strerror(codes[i]), "unknown"));
	assert_string_equal(es_manifest_strerror(-ENOENT),
			    "No such file or directory");
	assert_string_equal(es_manifest_strerror(-5199), "unknown error");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_create_reopen, tdir_setup,
					    tdir_teardown),
	    cmocka_unit_test_setup_teardown(test_device_ids_differ, tdir_setup,
					    tdir_teardown),
	    cmocka_unit_test_setup_teardown(test_migrate_from_v1, tdir_setup,
					    tdir_teardown),
	    cmocka_unit_test_setup_teardown(test_migrate_from_v2, tdir_setup,
					    tdir_teardown),
	    cmocka_unit_test_setup_teardown(test_migration_rolled_back,
					    tdir_setup, tdir_teardown),
	    cmocka_unit_test_setup_teardown(test_newer_refused, tdir_setup,
					    tdir_teardown),
	    cmocka_unit_test_setup_teardown(test_foreign_refused, tdir_setup,
					    tdir_teardown),
	    cmocka_unit_test_setup_teardown(test_garbage_corrupt, tdir_setup,
					    tdir_teardown),
	    cmocka_unit_test_setup_teardown(test_damaged_pages_corrupt,
					    tdir_setup, tdir_teardown),
	    cmocka_unit_test_setup_teardown(test_bad_rows_corrupt, tdir_setup,
					    tdir_teardown),
	    cmocka_unit_test(test_missing_directory),
	    cmocka_unit_test(test_strerror),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
