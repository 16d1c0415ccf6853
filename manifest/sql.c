/*
 * The manifest's SQL: every statement's text in one table, prepared once
 * per handle and kept; transactions; SQLite result codes mapped to ours.
 *
 * Invariants:
 *   1. Every value reaches SQLite as a bound parameter; no statement text
 *      is ever built from data.
 *   2. A cached statement is reset and unbound before it is handed out
 *      and after it is used (manifest_step at the end, or the caller's
 *      manifest_release after the rows it wanted), so no read
 *      transaction stays open between calls, no binding outlives the
 *      text it points to (SQLITE_STATIC) and none leaks into the next use.
 *   3. Writes run in BEGIN IMMEDIATE transactions, so a busy database
 *      shows up at BEGIN (after busy_timeout) and never half-way.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "manifest_impl.h"

#define COLL_COLS "id, name, dim, metric, flags, version, created_hlc"
#define SEG_COLS                                                               \
	"id, collection_id, size, checksum, count, dim, index_size, "          \
	"index_checksum, state, origin, origin_seq, seal_hlc, wal_gen, "       \
	"superseded_by, add_version, change_version"
#define PEER_COLS                                                              \
	"device, role, address, identity, approved, first_seen, last_seen"
#define XFER_COLS                                                              \
	"collection_id, origin, origin_seq, peer, direction, byte_offset, "    \
	"staged, updated"
#define XFER_KEY                                                               \
	"collection_id = ?1 AND origin = ?2 AND origin_seq = ?3 AND "          \
	"peer = ?4 AND direction = ?5"

static const char *const sql_text[MS_COUNT] = {
    [MS_BEGIN] = "BEGIN IMMEDIATE",
    [MS_COMMIT] = "COMMIT",
    [MS_ROLLBACK] = "ROLLBACK",
    [MS_META_GET] = "SELECT value FROM meta WHERE key = ?1",
    [MS_META_PUT] = "INSERT INTO meta (key, value) VALUES (?1, ?2) "
		    "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
    [MS_COLL_INSERT] = "INSERT INTO collection (name, dim, metric, flags, "
		       "version, created_hlc) VALUES (?1, ?2, ?3, ?4, ?6, ?5)",
    [MS_COLL_BY_NAME] = "SELECT " COLL_COLS " FROM collection WHERE name = ?1",
    [MS_COLL_BY_ID] = "SELECT " COLL_COLS " FROM collection WHERE id = ?1",
    [MS_COLL_LIST] = "SELECT " COLL_COLS " FROM collection ORDER BY name",
    [MS_COLL_DELETE] = "DELETE FROM collection WHERE name = ?1",
    [MS_COLL_BUMP] = "UPDATE collection SET version = version + 1 "
		     "WHERE id = ?1",
    [MS_COLL_VERSION] = "SELECT version, dim FROM collection WHERE id = ?1",
    [MS_SEG_INSERT] = "INSERT INTO segment (" SEG_COLS ") VALUES (?1, ?2, "
		      "?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, "
		      "?14, ?15, ?16)",
    [MS_SEG_GET] = "SELECT " SEG_COLS " FROM segment WHERE id = ?1",
    [MS_SEG_FIND] = "SELECT " SEG_COLS " FROM segment WHERE "
		    "collection_id = ?1 AND origin = ?2 AND origin_seq = ?3",
    [MS_SEG_LIST] = "SELECT " SEG_COLS " FROM segment WHERE "
		    "collection_id = ?1 AND change_version > ?2 "
		    "ORDER BY add_version, id",
    [MS_SEG_SET_INDEX] = "UPDATE segment SET state = 2, index_size = ?2, "
			 "index_checksum = ?3, change_version = ?4 "
			 "WHERE id = ?1",
    [MS_SEG_SUPERSEDE] = "UPDATE segment SET state = 3, "
			 "superseded_by = ?2, change_version = ?3 "
			 "WHERE id = ?1",
    [MS_SEG_DELETE] = "DELETE FROM segment WHERE id = ?1",
    [MS_SEG_WAL_GEN] = "SELECT max(wal_gen) FROM segment "
		       "WHERE collection_id = ?1",
    /* The larger (hlc, origin) wins, as for every conflict. */
    [MS_TOMB_PUT] = "INSERT INTO tombstone (collection_id, id, hlc, "
		    "origin, add_version) VALUES (?1, ?2, ?3, ?4, ?5) "
		    "ON CONFLICT (collection_id, id) DO UPDATE SET "
		    "hlc = excluded.hlc, origin = excluded.origin, "
		    "add_version = excluded.add_version "
		    "WHERE excluded.hlc > tombstone.hlc OR "
		    "(excluded.hlc = tombstone.hlc AND "
		    "excluded.origin > tombstone.origin)",
    [MS_TOMB_LIST] = "SELECT id, hlc, origin, add_version FROM tombstone "
		     "WHERE collection_id = ?1 AND add_version > ?2 "
		     "ORDER BY add_version, id",
    [MS_TOMB_AT] = "SELECT id, hlc, origin, add_version FROM tombstone "
		   "WHERE collection_id = ?1 AND add_version = ?2 ORDER BY id",
    [MS_CLOCK_PUT] = "INSERT INTO segment_clock (segment_id, runs) "
		     "VALUES (?1, ?2)",
    /* A segment without a segment_clock row has one run (clocks.c). */
    [MS_CLOCK_GET] = "SELECT s.count, s.seal_hlc, c.runs FROM segment s "
		     "LEFT JOIN segment_clock c ON c.segment_id = s.id "
		     "WHERE s.id = ?1",
    [MS_CLOCK_AT] = "SELECT s.count, s.seal_hlc, c.runs FROM segment s "
		    "LEFT JOIN segment_clock c ON c.segment_id = s.id "
		    "WHERE s.collection_id = ?1 AND s.add_version = ?2",
    /* A known peer keeps what "" would erase; last_seen only grows. */
    [MS_PEER_UPSERT] = "INSERT INTO peer (" PEER_COLS ") VALUES (?1, ?2, "
		       "?3, ?4, 0, ?5, ?5) ON CONFLICT (device) DO UPDATE "
		       "SET role = excluded.role, "
		       "address = CASE WHEN excluded.address = '' THEN "
		       "peer.address ELSE excluded.address END, "
		       "identity = CASE WHEN excluded.identity = '' THEN "
		       "peer.identity ELSE excluded.identity END, "
		       "last_seen = max(peer.last_seen, excluded.last_seen)",
    [MS_PEER_GET] = "SELECT " PEER_COLS " FROM peer WHERE device = ?1",
    [MS_PEER_LIST] = "SELECT " PEER_COLS " FROM peer ORDER BY device",
    [MS_PEER_APPROVE] = "UPDATE peer SET approved = ?2 WHERE device = ?1",
    [MS_ACK_GET] = "SELECT version FROM ack WHERE collection_id = ?1 AND "
		   "direction = ?2 AND peer = ?3",
    [MS_ACK_PUT] = "INSERT INTO ack (collection_id, direction, peer, "
		   "version) VALUES (?1, ?2, ?3, ?4) ON CONFLICT "
		   "(collection_id, direction, peer) DO UPDATE SET "
		   "version = excluded.version "
		   "WHERE excluded.version > ack.version",
    [MS_ACK_MIN] = "SELECT count(*), min(version) FROM ack WHERE "
		   "collection_id = ?1 AND direction = ?2",
    [MS_ACK_FORGET] = "DELETE FROM ack WHERE peer = ?1",
    [MS_XFER_PUT] = "INSERT INTO transfer (" XFER_COLS ") VALUES (?1, ?2, "
		    "?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT (collection_id, "
		    "origin, origin_seq, peer, direction) DO UPDATE SET "
		    "byte_offset = excluded.byte_offset, "
		    "staged = excluded.staged, updated = excluded.updated",
    [MS_XFER_GET] = "SELECT " XFER_COLS " FROM transfer WHERE " XFER_KEY,
    [MS_XFER_DELETE] = "DELETE FROM transfer WHERE " XFER_KEY,
    [MS_XFER_LIST] = "SELECT " XFER_COLS " FROM transfer WHERE ?1 IS NULL "
		     "OR peer = ?1 ORDER BY peer, collection_id, origin, "
		     "origin_seq, direction",
};

int manifest_fail(struct es_manifest *m, int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(m->errmsg, sizeof(m->errmsg), fmt, ap);
	va_end(ap);
	return code;
}

static int constraint_err(int src)
{
	switch (src) {
	case SQLITE_CONSTRAINT_PRIMARYKEY:
	case SQLITE_CONSTRAINT_UNIQUE:
		return ES_E_MANIFEST_EXISTS;
	case SQLITE_CONSTRAINT_FOREIGNKEY:
		return ES_E_MANIFEST_NOTFOUND;
	default:
		return -EINVAL;
	}
}

/* For I/O failures SQLite keeps the errno of the system call that failed. */
static int system_err(struct es_manifest *m, int fallback)
{
	int e = m->db ? sqlite3_system_errno(m->db) : 0;

	return e > 0 ? -e : fallback;
}

int manifest_sqlerr(struct es_manifest *m, int src)
{
	const char *msg = m->db ? sqlite3_errmsg(m->db) : sqlite3_errstr(src);

	snprintf(m->errmsg, sizeof(m->errmsg), "sqlite: %s", msg);
	if (src == SQLITE_IOERR_CORRUPTFS)
		return ES_E_MANIFEST_CORRUPT;
	switch (src & 0xff) {
	case SQLITE_CORRUPT:
	case SQLITE_NOTADB:
		return ES_E_MANIFEST_CORRUPT;
	case SQLITE_NOMEM:
		return -ENOMEM;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return -EBUSY;
	case SQLITE_FULL:
		return -ENOSPC;
	case SQLITE_IOERR:
		return system_err(m, -EIO);
	case SQLITE_CANTOPEN:
		return system_err(m, -EACCES);
	case SQLITE_READONLY:
		return -EROFS;
	case SQLITE_PERM:
	case SQLITE_AUTH:
		return -EACCES;
	case SQLITE_TOOBIG:
		return -E2BIG;
	case SQLITE_CONSTRAINT:
		return constraint_err(src);
	default:
		return ES_E_MANIFEST_SQL;
	}
}

int manifest_stmt(struct es_manifest *m, enum manifest_sql id,
		  sqlite3_stmt **st)
{
	int src;

	if (!m->stmt[id]) {
		src = sqlite3_prepare_v3(m->db, sql_text[id], -1,
					 SQLITE_PREPARE_PERSISTENT,
					 &m->stmt[id], NULL);
		if (src != SQLITE_OK)
			return manifest_sqlerr(m, src);
	}
	sqlite3_reset(m->stmt[id]);
	sqlite3_clear_bindings(m->stmt[id]);
	*st = m->stmt[id];
	return 0;
}

void manifest_stmt_finalize(struct es_manifest *m)
{
	for (int i = 0; i < MS_COUNT; i++) {
		sqlite3_finalize(m->stmt[i]);
		m->stmt[i] = NULL;
	}
}

void manifest_release(sqlite3_stmt *st)
{
	if (!st)
		return;
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
}

int manifest_step(struct es_manifest *m, sqlite3_stmt *st)
{
	int src = sqlite3_step(st);

	if (src == SQLITE_ROW)
		return 1;
	manifest_release(st);
	if (src == SQLITE_DONE)
		return 0;
	return manifest_sqlerr(m, src);
}

int manifest_exec(struct es_manifest *m, sqlite3_stmt *st)
{
	int rc;

	while ((rc = manifest_step(m, st)) == 1)
		;
	return rc;
}

static int run(struct es_manifest *m, enum manifest_sql id)
{
	sqlite3_stmt *st = NULL;
	int rc = manifest_stmt(m, id, &st);

	return rc ? rc : manifest_exec(m, st);
}

int manifest_begin(struct es_manifest *m)
{
	return run(m, MS_BEGIN);
}

int manifest_commit(struct es_manifest *m)
{
	return run(m, MS_COMMIT);
}

void manifest_rollback(struct es_manifest *m)
{
	char keep[sizeof(m->errmsg)];

	/* A failed COMMIT may have rolled back already. */
	if (sqlite3_get_autocommit(m->db))
		return;
	memcpy(keep, m->errmsg, sizeof(keep));
	run(m, MS_ROLLBACK);
	memcpy(m->errmsg, keep, sizeof(keep));
}

int manifest_bind_text(struct es_manifest *m, sqlite3_stmt *st, int i,
		       const char *text)
{
	int src = sqlite3_bind_text(st, i, text, -1, SQLITE_STATIC);

	return src == SQLITE_OK ? 0 : manifest_sqlerr(m, src);
}

int manifest_column_u64(sqlite3_stmt *st, int i, uint64_t *v)
{
	sqlite3_int64 x;

	if (sqlite3_column_type(st, i) != SQLITE_INTEGER)
		return -1;
	x = sqlite3_column_int64(st, i);
	if (x < 0)
		return -1;
	*v = (uint64_t)x;
	return 0;
}

int manifest_grow(void **arr, size_t *cap, size_t n, size_t elem)
{
	size_t want;
	void *p;

	if (n < *cap)
		return 0;
	want = *cap ? *cap * 2 : 16;
	if (want > SIZE_MAX / elem)
		return -ENOMEM;
	p = realloc(*arr, want * elem);
	if (!p)
		return -ENOMEM;
	*arr = p;
	*cap = want;
	return 0;
}
