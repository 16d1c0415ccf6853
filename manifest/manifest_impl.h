/*
 * Private to the manifest: the handle, the cached statements and the
 * helpers every file of the module shares.
 */
#ifndef EDGESYNC_MANIFEST_IMPL_H
#define EDGESYNC_MANIFEST_IMPL_H

#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>

#include "edgesync/manifest.h"

/* The schema this edgesync writes (schema.c holds one migration each). */
#define MANIFEST_SCHEMA 4

/* PRAGMA application_id of a manifest: "ESMF". */
#define MANIFEST_APP_ID 0x45534d46

/* Statements prepared once and kept (sql.c holds their text). */
enum manifest_sql {
	MS_BEGIN,
	MS_COMMIT,
	MS_ROLLBACK,
	MS_META_GET,
	MS_META_PUT,
	MS_COLL_INSERT,
	MS_COLL_BY_NAME,
	MS_COLL_BY_ID,
	MS_COLL_LIST,
	MS_COLL_DELETE,
	MS_COLL_BUMP,
	MS_COLL_VERSION,
	MS_SEG_INSERT,
	MS_SEG_GET,
	MS_SEG_FIND,
	MS_SEG_LIST,
	MS_SEG_SET_INDEX,
	MS_SEG_SUPERSEDE,
	MS_SEG_DELETE,
	MS_SEG_WAL_GEN,
	MS_TOMB_PUT,
	MS_TOMB_LIST,
	MS_TOMB_AT,
	MS_CLOCK_PUT,
	MS_CLOCK_GET,
	MS_CLOCK_AT,
	MS_PEER_UPSERT,
	MS_PEER_GET,
	MS_PEER_LIST,
	MS_PEER_APPROVE,
	MS_ACK_GET,
	MS_ACK_PUT,
	MS_ACK_MIN,
	MS_ACK_FORGET,
	MS_XFER_PUT,
	MS_XFER_GET,
	MS_XFER_DELETE,
	MS_XFER_LIST,
	MS_COUNT
};

struct es_manifest {
	sqlite3 *db;
	sqlite3_stmt *stmt[MS_COUNT];
	char device_id[ES_MANIFEST_DEVICE_MAX + 1];
	uint64_t hlc_last;    /* largest HLC issued or observed */
	uint64_t hlc_ceiling; /* persisted; hlc_last never passes it */
	uint64_t (*clock_ms)(void *arg);
	void *clock_arg;
	char errmsg[256];
};

/* Meta table keys. */
#define META_DEVICE_ID	 "device_id"
#define META_HLC_CEILING "hlc_ceiling"
#define META_SEGMENT_ID	 "segment_id"
/* "version_floor/<name>": the version a dropped collection of that name
 * had reached, where one created again starts (collections.c). */
#define META_VERSION_FLOOR "version_floor/"

/* ---- sql.c: statements, transactions, error mapping -------------------- */

/* Maps a SQLite result code to ours, keeping SQLite's message. */
int manifest_sqlerr(struct es_manifest *m, int src);
/* Records a reason for es_manifest_last_error and returns code. */
int manifest_fail(struct es_manifest *m, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The cached statement id, prepared on first use, reset and unbound. */
int manifest_stmt(struct es_manifest *m, enum manifest_sql id,
		  sqlite3_stmt **st);
void manifest_stmt_finalize(struct es_manifest *m);
/* Resets st and drops its bindings: done with it. */
void manifest_release(sqlite3_stmt *st);
/* Steps st to the end: 0 or a code. Releases st either way. */
int manifest_exec(struct es_manifest *m, sqlite3_stmt *st);
/*
 * Steps st once: 1 for a row (the caller reads it, then steps again or
 * calls manifest_release), 0 at the end or a code (st released).
 */
int manifest_step(struct es_manifest *m, sqlite3_stmt *st);
/* BEGIN IMMEDIATE / COMMIT / ROLLBACK (only if a transaction is open). */
int manifest_begin(struct es_manifest *m);
int manifest_commit(struct es_manifest *m);
void manifest_rollback(struct es_manifest *m);
/* Binds text that lives until the statement is reset. */
int manifest_bind_text(struct es_manifest *m, sqlite3_stmt *st, int i,
		       const char *text);
/* Column i as an unsigned number; -1 if stored negative or not integer. */
int manifest_column_u64(sqlite3_stmt *st, int i, uint64_t *v);
/* Grows *arr (of elem-sized entries) so it holds n + 1; 0 or -ENOMEM. */
int manifest_grow(void **arr, size_t *cap, size_t n, size_t elem);

/* ---- meta.c: the key-value meta table ---------------------------------- */

/* 1 and *v if key holds an integer >= 0, 0 if absent, or a code. */
int manifest_meta_get_u64(struct es_manifest *m, const char *key, uint64_t *v);
int manifest_meta_put_u64(struct es_manifest *m, const char *key, uint64_t v);

/* ---- schema.c ----------------------------------------------------------- */

/* Migrates the open database to version target (<= MANIFEST_SCHEMA). */
int manifest_migrate(struct es_manifest *m, int target);

/* ---- identity.c: device id (hlc.c reads what it loads) ------------------ */

/* Loads (or creates) the device id and the clock's persisted ceiling. */
int manifest_identity_load(struct es_manifest *m);
/* 0 if s is 1..max characters of 0x21..0x7e, else -EINVAL. */
int manifest_token_valid(const char *s, size_t max);
/* 0 if s is a device id: 1..ES_MANIFEST_DEVICE_MAX of 0x21..0x7e. */
int manifest_device_valid(const char *s);
/* Unix milliseconds of the wall clock (or the test hook's clock). */
uint64_t manifest_now_ms(struct es_manifest *m);

/* ---- collections.c ------------------------------------------------------ */

/* 0 if name matches [a-z0-9_-]{1,64}, else ES_E_MANIFEST_NAME. */
int manifest_name_valid(const char *name);
/*
 * Inside a transaction: bumps collection id's version by one and returns
 * the new version and the collection's dim; ES_E_MANIFEST_NOTFOUND.
 */
int manifest_coll_bump(struct es_manifest *m, int64_t id, uint64_t *version,
		       uint32_t *dim);

/* ---- clocks.c ------------------------------------------------------------ */

/* Inside segment_add's transaction: records s's clock runs (n >= 1). */
int manifest_clocks_put(struct es_manifest *m,
			const struct es_manifest_segment *s,
			const struct es_clock_run *runs, size_t n);

/* ---- tombstones.c ------------------------------------------------------- */

/* Checks tombstones from a caller before a transaction starts. */
int manifest_tombs_check(struct es_manifest *m,
			 const struct es_manifest_tombstone *tombs, size_t n);
/* Inside a transaction: stores tombstones at version (winner kept). */
int manifest_tombs_put(struct es_manifest *m, int64_t collection_id,
		       const struct es_manifest_tombstone *tombs, size_t n,
		       uint64_t version);

/* ---- peers.c, acks.c, transfers.c --------------------------------------- */

/* Checks a direction from a caller: 0 or -EINVAL. */
int manifest_direction_valid(struct es_manifest *m,
			     enum es_manifest_direction dir);
/* Checks a peer key (acks, transfers): 0 or -EINVAL. */
int manifest_peer_key_valid(struct es_manifest *m, const char *peer);

#endif
