/*
 * The manifest: opening the database, its settings, its checks.
 *
 * Files of the module, one job each:
 *   manifest.c     open (settings, check, migrate, identity), close, check
 *   schema.c       the tables, as forward migrations
 *   sql.c          cached statements, transactions, error mapping
 *   meta.c         the key-value meta table
 *   identity.c     the device id
 *   hlc.c          the hybrid logical clock
 *   collections.c  collections, and the version bump
 *   segments.c     segment rows: add, read, list, ids
 *   segment_state.c  the transitions after add
 *   tombstones.c   tombstones
 *   clocks.c       the clocks of segments' rows
 *   peers.c        peers seen, their approval
 *   acks.c         acknowledgements, their minimum
 *   transfers.c    transfers in progress
 *   error.c        es_manifest_strerror
 *
 * Tables (schema.c): meta(key, value); collection(id, name, dim, metric,
 * flags, version, created_hlc); segment(id, collection_id, files' sizes
 * and checksums, count, dim, state, origin, origin_seq, seal_hlc, wal_gen,
 * superseded_by, add_version, change_version); tombstone(collection_id,
 * id, hlc, origin, add_version); since schema 3, for sync: peer(device,
 * role, address, identity, approved, first_seen, last_seen);
 * ack(collection_id, direction, peer, version); transfer(collection_id,
 * origin, origin_seq, peer, direction, byte_offset, staged, updated);
 * since schema 4: segment_clock(segment_id, runs), a segment's rows'
 * clocks. Segments, tombstones, acks and transfers belong to their
 * collection, clock runs to their segment (ON DELETE CASCADE); peers
 * stand alone.
 *
 * Segment states and the function for each transition (segments.c):
 *
 *   (none) --es_manifest_segment_add--------> SEALED | INDEXED
 *   SEALED --es_manifest_segment_set_index--> INDEXED
 *   SEALED | INDEXED --es_manifest_segment_supersede--> SUPERSEDED
 *   SUPERSEDED --es_manifest_segment_remove--> (none)
 *
 * Any other transition is ES_E_MANIFEST_STATE, and changes nothing.
 *
 * Invariants:
 *   1. Every public function that changes rows runs one transaction; a
 *      failure rolls all of it back, and in-memory state (the clock) is
 *      updated only after the commit.
 *   2. Each transaction that changes a collection's segments or
 *      tombstones bumps collection.version by exactly one first, and
 *      stamps every row it writes with the new version (add_version for
 *      new rows, change_version for segments), so "changed since v" is
 *      "stamped > v".
 *   3. Segment ids come from meta.segment_id, which only grows: an id is
 *      never given twice, even after its row is removed, so file names
 *      (seg-<id>.ndvs) are never reused.
 *   4. Every value read from the file is checked (types, ranges, names,
 *      states) before it reaches a caller: ES_E_MANIFEST_CORRUPT if not.
 *   5. The database runs in WAL mode with synchronous=FULL: a commit that
 *      returned is durable across kill -9 and power loss.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "manifest_impl.h"
#include "manifest_test.h"

#define BUSY_TIMEOUT_MS 5000

/* Runs a pragma and copies the text of its first row's column 0. */
static int pragma_text(struct es_manifest *m, const char *sql, char *out,
		       size_t len)
{
	const unsigned char *t;
	sqlite3_stmt *st;
	int src;

	src = sqlite3_prepare_v2(m->db, sql, -1, &st, NULL);
	if (src != SQLITE_OK)
		return manifest_sqlerr(m, src);
	src = sqlite3_step(st);
	out[0] = '\0';
	if (src == SQLITE_ROW && (t = sqlite3_column_text(st, 0)) != NULL) {
		strncpy(out, (const char *)t, len - 1);
		out[len - 1] = '\0';
	}
	sqlite3_finalize(st);
	if (src != SQLITE_ROW && src != SQLITE_DONE)
		return manifest_sqlerr(m, src);
	return 0;
}

static int exec(struct es_manifest *m, const char *sql)
{
	int src = sqlite3_exec(m->db, sql, NULL, NULL, NULL);

	return src == SQLITE_OK ? 0 : manifest_sqlerr(m, src);
}

static int settings(struct es_manifest *m)
{
	char mode[16];
	int rc;

	sqlite3_extended_result_codes(m->db, 1);
	sqlite3_busy_timeout(m->db, BUSY_TIMEOUT_MS);
	/* The file is data, not code: no schema tricks, no writable shadow
	 * tables, no SQL functions called from the schema. */
	sqlite3_db_config(m->db, SQLITE_DBCONFIG_DEFENSIVE, 1, NULL);
	sqlite3_db_config(m->db, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, NULL);
	/* The first read of the file: a non-database fails here. */
	rc = pragma_text(m, "PRAGMA journal_mode = WAL", mode, sizeof(mode));
	if (rc)
		return rc;
	if (strcmp(mode, "wal") != 0)
		return manifest_fail(m, -EOPNOTSUPP,
				     "journal_mode is %s, not wal", mode);
	rc = exec(m, "PRAGMA synchronous = FULL");
	if (rc == 0)
		rc = exec(m, "PRAGMA foreign_keys = ON");
	return rc;
}

/* PRAGMA quick_check(1) or integrity_check(1): "ok" or the first damage. */
static int check(struct es_manifest *m, const char *sql)
{
	char result[160];
	int rc = pragma_text(m, sql, result, sizeof(result));

	if (rc)
		return rc;
	if (strcmp(result, "ok") != 0)
		return manifest_fail(m, ES_E_MANIFEST_CORRUPT,
				     "sqlite check: %s", result);
	return 0;
}

int manifest_open_version(struct es_manifest **mp, const char *path,
			  int version)
{
	const int flags =
	    SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
	struct es_manifest *m;
	int rc, src;

	*mp = NULL;
	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	manifest_set_clock(m, NULL, NULL);
	src = sqlite3_open_v2(path, &m->db, flags, NULL);
	if (src != SQLITE_OK) {
		rc = m->db ? manifest_sqlerr(m, src) : -ENOMEM;
		goto err;
	}
	rc = settings(m);
	if (rc == 0)
		rc = check(m, "PRAGMA quick_check(1)");
	if (rc == 0)
		rc = manifest_migrate(m, version);
	if (rc == 0)
		rc = manifest_identity_load(m);
	if (rc)
		goto err;
	*mp = m;
	return 0;
err:
	es_manifest_close(m);
	return rc;
}

int es_manifest_open(struct es_manifest **mp, const char *path)
{
	return manifest_open_version(mp, path, MANIFEST_SCHEMA);
}

void es_manifest_close(struct es_manifest *m)
{
	if (!m)
		return;
	manifest_stmt_finalize(m);
	sqlite3_close(m->db);
	free(m);
}

const char *es_manifest_last_error(const struct es_manifest *m)
{
	return m->errmsg;
}

int es_manifest_check(struct es_manifest *m)
{
	int rc = check(m, "PRAGMA integrity_check(1)");
	sqlite3_stmt *st;
	int src;

	if (rc)
		return rc;
	src = sqlite3_prepare_v2(m->db, "PRAGMA foreign_key_check", -1, &st,
				 NULL);
	if (src != SQLITE_OK)
		return manifest_sqlerr(m, src);
	src = sqlite3_step(st);
	sqlite3_finalize(st);
	if (src == SQLITE_ROW)
		return manifest_fail(m, ES_E_MANIFEST_CORRUPT,
				     "sqlite check: a row names a missing "
				     "collection or segment");
	if (src != SQLITE_DONE)
		return manifest_sqlerr(m, src);
	return 0;
}
