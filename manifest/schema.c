/*
 * The manifest's schema, as an ordered list of forward migrations.
 *
 * migrations[i] takes a database from user_version i to i + 1 and sets
 * user_version itself, so a migration and its version stamp commit
 * together. manifest_migrate applies them one per transaction (BEGIN
 * IMMEDIATE: a second process opening the same file waits, then sees the
 * new version and skips what is done).
 *
 * Invariants:
 *   1. A migration, once released, never changes; a new schema is a new
 *      entry at the end (MANIFEST_SCHEMA grows with it).
 *   2. user_version > MANIFEST_SCHEMA is refused (ES_E_MANIFEST_NEWER)
 *      before anything is written.
 *   3. Only a file that is empty (user_version 0, no tables) or carries
 *      MANIFEST_APP_ID is touched; any other database is someone else's
 *      (ES_E_MANIFEST_FOREIGN).
 *
 * Integers that are unsigned in the API (sizes, versions, HLCs, vector
 * ids) are stored in SQLite's signed 64-bit integers; the API keeps them
 * below 2^63, except vector ids, which round-trip through the cast.
 */
#include <errno.h>

#include "manifest_impl.h"

static const char *const migrations[MANIFEST_SCHEMA] = {
    /* 1: identity, clock and collections. */
    "PRAGMA application_id = 1163087174;" /* MANIFEST_APP_ID */
    "CREATE TABLE meta ("
    "  key TEXT PRIMARY KEY NOT NULL,"
    "  value"
    ") WITHOUT ROWID;"
    "CREATE TABLE collection ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT," /* ids never reused */
    "  name TEXT NOT NULL UNIQUE,"
    "  dim INTEGER NOT NULL CHECK (dim BETWEEN 1 AND 4096),"
    "  metric INTEGER NOT NULL CHECK (metric BETWEEN 0 AND 2),"
    "  flags INTEGER NOT NULL DEFAULT 0,"
    "  version INTEGER NOT NULL DEFAULT 0 CHECK (version >= 0),"
    "  created_hlc INTEGER NOT NULL"
    ");"
    "PRAGMA user_version = 1;",

    /* 2: segments and tombstones. */
    "CREATE TABLE segment ("
    "  id INTEGER PRIMARY KEY,"
    "  collection_id INTEGER NOT NULL"
    "    REFERENCES collection (id) ON DELETE CASCADE,"
    "  size INTEGER NOT NULL,"
    "  checksum INTEGER NOT NULL,"
    "  count INTEGER NOT NULL,"
    "  dim INTEGER NOT NULL,"
    "  index_size INTEGER NOT NULL DEFAULT 0,"
    "  index_checksum INTEGER NOT NULL DEFAULT 0,"
    "  state INTEGER NOT NULL CHECK (state BETWEEN 1 AND 3),"
    "  origin TEXT NOT NULL,"
    "  origin_seq INTEGER NOT NULL,"
    "  seal_hlc INTEGER NOT NULL,"
    "  wal_gen INTEGER NOT NULL DEFAULT 0,"
    "  superseded_by INTEGER NOT NULL DEFAULT 0,"
    "  add_version INTEGER NOT NULL,"
    "  change_version INTEGER NOT NULL,"
    "  UNIQUE (collection_id, origin, origin_seq)"
    ");"
    "CREATE INDEX segment_changes ON segment (collection_id, "
    "  change_version);"
    "CREATE TABLE tombstone ("
    "  collection_id INTEGER NOT NULL"
    "    REFERENCES collection (id) ON DELETE CASCADE,"
    "  id INTEGER NOT NULL,"
    "  hlc INTEGER NOT NULL,"
    "  origin TEXT NOT NULL,"
    "  add_version INTEGER NOT NULL,"
    "  PRIMARY KEY (collection_id, id)"
    ") WITHOUT ROWID;"
    "CREATE INDEX tombstone_changes ON tombstone (collection_id, "
    "  add_version);"
    "PRAGMA user_version = 2;",

    /* 3: sync's peers, acknowledgements and transfers in progress. */
    "CREATE TABLE peer ("
    "  device TEXT PRIMARY KEY NOT NULL,"
    "  role INTEGER NOT NULL CHECK (role BETWEEN 1 AND 2),"
    "  address TEXT NOT NULL DEFAULT '',"
    "  identity TEXT NOT NULL DEFAULT '',"
    "  approved INTEGER NOT NULL DEFAULT 0 CHECK (approved IN (0, 1)),"
    "  first_seen INTEGER NOT NULL,"
    "  last_seen INTEGER NOT NULL"
    ") WITHOUT ROWID;"
    "CREATE TABLE ack ("
    "  collection_id INTEGER NOT NULL"
    "    REFERENCES collection (id) ON DELETE CASCADE,"
    "  direction INTEGER NOT NULL CHECK (direction BETWEEN 1 AND 2),"
    "  peer TEXT NOT NULL,"
    "  version INTEGER NOT NULL CHECK (version >= 0),"
    "  PRIMARY KEY (collection_id, direction, peer)"
    ") WITHOUT ROWID;"
    "CREATE TABLE transfer ("
    "  collection_id INTEGER NOT NULL"
    "    REFERENCES collection (id) ON DELETE CASCADE,"
    "  origin TEXT NOT NULL,"
    "  origin_seq INTEGER NOT NULL,"
    "  peer TEXT NOT NULL,"
    "  direction INTEGER NOT NULL CHECK (direction BETWEEN 1 AND 2),"
    "  byte_offset INTEGER NOT NULL CHECK (byte_offset >= 0),"
    "  staged TEXT NOT NULL DEFAULT '',"
    "  updated INTEGER NOT NULL,"
    "  PRIMARY KEY (collection_id, origin, origin_seq, peer, direction)"
    ") WITHOUT ROWID;"
    "PRAGMA user_version = 3;",

    /* 4: the clocks of a segment's rows (clocks.c), found by segment id
     * or by the version that added the segment. */
    "CREATE TABLE segment_clock ("
    "  segment_id INTEGER PRIMARY KEY"
    "    REFERENCES segment (id) ON DELETE CASCADE,"
    "  runs BLOB NOT NULL"
    ");"
    "CREATE INDEX segment_added ON segment (collection_id, add_version);"
    "PRAGMA user_version = 4;",
};

int es_manifest_schema_version(void)
{
	return MANIFEST_SCHEMA;
}

static int pragma_int(struct es_manifest *m, const char *sql, int64_t *v)
{
	sqlite3_stmt *st;
	int src = sqlite3_prepare_v2(m->db, sql, -1, &st, NULL);

	if (src != SQLITE_OK)
		return manifest_sqlerr(m, src);
	src = sqlite3_step(st);
	if (src == SQLITE_ROW)
		*v = sqlite3_column_int64(st, 0);
	else if (src == SQLITE_DONE)
		*v = 0;
	sqlite3_finalize(st);
	if (src != SQLITE_ROW && src != SQLITE_DONE)
		return manifest_sqlerr(m, src);
	return 0;
}

/* Reads the version inside the open transaction and judges the file. */
static int schema_version(struct es_manifest *m, int64_t *version)
{
	int64_t app, tables;
	int rc;

	rc = pragma_int(m, "PRAGMA user_version", version);
	if (rc == 0)
		rc = pragma_int(m, "PRAGMA application_id", &app);
	if (rc == 0)
		rc = pragma_int(m, "SELECT count(*) FROM sqlite_master",
				&tables);
	if (rc)
		return rc;
	if (*version == 0 && app == 0 && tables == 0)
		return 0;
	if (app != MANIFEST_APP_ID || *version <= 0)
		return manifest_fail(m, ES_E_MANIFEST_FOREIGN,
				     "application_id %lld, user_version %lld: "
				     "not an edgesync manifest",
				     (long long)app, (long long)*version);
	if (*version > MANIFEST_SCHEMA)
		return manifest_fail(m, ES_E_MANIFEST_NEWER,
				     "schema version %lld, this edgesync "
				     "knows up to %d",
				     (long long)*version, MANIFEST_SCHEMA);
	return 0;
}

static int migrate_one(struct es_manifest *m, int target, int *done)
{
	int64_t version;
	int rc, src;

	rc = manifest_begin(m);
	if (rc)
		return rc;
	rc = schema_version(m, &version);
	if (rc)
		goto err;
	if (version >= target) {
		*done = 1;
		manifest_rollback(m);
		return 0;
	}
	src = sqlite3_exec(m->db, migrations[version], NULL, NULL, NULL);
	if (src != SQLITE_OK) {
		rc = manifest_sqlerr(m, src);
		goto err;
	}
	rc = manifest_commit(m);
	if (rc)
		goto err;
	return 0;
err:
	manifest_rollback(m);
	return rc;
}

int manifest_migrate(struct es_manifest *m, int target)
{
	int done = 0, rc = 0;

	if (target < 1 || target > MANIFEST_SCHEMA)
		return -EINVAL;
	while (rc == 0 && !done)
		rc = migrate_one(m, target, &done);
	return rc;
}
