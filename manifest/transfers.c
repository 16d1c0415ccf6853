/*
 * Transfers in progress: for one segment (collection, origin,
 * origin_seq), one peer and one direction, how many bytes the receiver
 * holds and the name of the partial file in sync's staging directory.
 *
 * Invariants:
 *   1. (collection, origin, origin_seq, peer, direction) names at most
 *      one row; put replaces it whole (the offset may go down when a
 *      transfer restarts), in one statement, hence one transaction.
 *   2. A staged name is a plain file name ([A-Za-z0-9._-], no leading
 *      dot, so never "." or ".." nor a path), checked on the way in and
 *      on the way out: a row can never point sync outside its staging
 *      directory.
 *   3. Rows belong to their collection (ON DELETE CASCADE); they record
 *      no segment or tombstone change and bump no version.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "manifest_impl.h"

/* Columns of XFER_COLS (sql.c), in order; the key is the first five. */
enum xfer_col {
	X_COLL,
	X_ORIGIN,
	X_SEQ,
	X_PEER,
	X_DIR,
	X_OFFSET,
	X_STAGED,
	X_UPDATED,
	X_NCOLS
};

static int staged_valid(const char *s)
{
	size_t len = strnlen(s, ES_MANIFEST_STAGED_MAX + 1);

	if (len > ES_MANIFEST_STAGED_MAX || s[0] == '.')
		return -EINVAL;
	for (size_t i = 0; i < len; i++) {
		char ch = s[i];

		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		      (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' ||
		      ch == '-'))
			return -EINVAL;
	}
	return 0;
}

static int key_check(struct es_manifest *m,
		     const struct es_manifest_transfer *t)
{
	int rc;

	if (manifest_device_valid(t->origin))
		return manifest_fail(m, -EINVAL, "bad transfer origin");
	if (t->origin_seq == 0)
		return manifest_fail(m, -EINVAL, "transfer origin_seq is 0");
	if (t->origin_seq > INT64_MAX)
		return manifest_fail(m, -ERANGE,
				     "transfer origin_seq above 2^63 - 1");
	rc = manifest_peer_key_valid(m, t->peer);
	return rc ? rc : manifest_direction_valid(m, t->direction);
}

/* Prepares statement id with t's key bound to ?1..?5. */
static int key_bind(struct es_manifest *m, enum manifest_sql id,
		    const struct es_manifest_transfer *t, sqlite3_stmt **st)
{
	int rc;

	rc = manifest_stmt(m, id, st);
	if (rc == 0)
		rc = manifest_bind_text(m, *st, X_ORIGIN + 1, t->origin);
	if (rc == 0)
		rc = manifest_bind_text(m, *st, X_PEER + 1, t->peer);
	if (rc)
		return rc;
	sqlite3_bind_int64(*st, X_COLL + 1, t->collection_id);
	sqlite3_bind_int64(*st, X_SEQ + 1, (sqlite3_int64)t->origin_seq);
	sqlite3_bind_int64(*st, X_DIR + 1, t->direction);
	return 0;
}

static const char *column_text(sqlite3_stmt *st, int i)
{
	if (sqlite3_column_type(st, i) != SQLITE_TEXT)
		return NULL;
	return (const char *)sqlite3_column_text(st, i);
}

/* Reads the current row (XFER_COLS) of st into t, checking every field. */
static int xfer_read(struct es_manifest *m, sqlite3_stmt *st,
		     struct es_manifest_transfer *t)
{
	const char *origin = column_text(st, X_ORIGIN);
	const char *peer = column_text(st, X_PEER);
	const char *staged = column_text(st, X_STAGED);
	uint64_t coll, dir;
	int bad;

	memset(t, 0, sizeof(*t));
	bad = manifest_column_u64(st, X_COLL, &coll) |
	      manifest_column_u64(st, X_SEQ, &t->origin_seq) |
	      manifest_column_u64(st, X_DIR, &dir) |
	      manifest_column_u64(st, X_OFFSET, &t->offset) |
	      manifest_column_u64(st, X_UPDATED, &t->updated_ms);
	if (bad || !origin || !peer || !staged ||
	    manifest_device_valid(origin) ||
	    manifest_token_valid(peer, ES_MANIFEST_PEER_MAX) ||
	    staged_valid(staged) || t->origin_seq == 0 ||
	    (dir != ES_MANIFEST_UP && dir != ES_MANIFEST_DOWN))
		return manifest_fail(m, ES_E_MANIFEST_CORRUPT,
				     "transfer row has a bad field");
	t->collection_id = (int64_t)coll;
	strcpy(t->origin, origin);
	strcpy(t->peer, peer);
	t->direction = (enum es_manifest_direction)dir;
	strcpy(t->staged, staged);
	return 0;
}

int es_manifest_transfer_put(struct es_manifest *m,
			     struct es_manifest_transfer *t)
{
	uint64_t updated = t->updated_ms;
	sqlite3_stmt *st;
	int rc;

	rc = key_check(m, t);
	if (rc)
		return rc;
	if (staged_valid(t->staged))
		return manifest_fail(m, -EINVAL,
				     "staged name is not a plain file name");
	if (t->offset > INT64_MAX || updated > INT64_MAX)
		return manifest_fail(m, -ERANGE,
				     "transfer offset or time above 2^63 - 1");
	if (updated == 0)
		updated = manifest_now_ms(m);
	if (updated > INT64_MAX)
		updated = INT64_MAX;
	rc = key_bind(m, MS_XFER_PUT, t, &st);
	if (rc == 0)
		rc = manifest_bind_text(m, st, X_STAGED + 1, t->staged);
	if (rc)
		return rc;
	sqlite3_bind_int64(st, X_OFFSET + 1, (sqlite3_int64)t->offset);
	sqlite3_bind_int64(st, X_UPDATED + 1, (sqlite3_int64)updated);
	rc = manifest_exec(m, st);
	if (rc == ES_E_MANIFEST_NOTFOUND) /* the foreign key */
		return manifest_fail(m, rc, "no collection with id %lld",
				     (long long)t->collection_id);
	if (rc == 0)
		t->updated_ms = updated;
	return rc;
}

int es_manifest_transfer_get(struct es_manifest *m,
			     struct es_manifest_transfer *t)
{
	struct es_manifest_transfer row;
	sqlite3_stmt *st;
	int rc;

	if (key_check(m, t))
		return manifest_fail(m, ES_E_MANIFEST_NOTFOUND,
				     "no such transfer");
	rc = key_bind(m, MS_XFER_GET, t, &st);
	if (rc == 0)
		rc = manifest_step(m, st);
	if (rc == 0)
		return manifest_fail(m, ES_E_MANIFEST_NOTFOUND,
				     "no such transfer");
	if (rc < 0)
		return rc;
	rc = xfer_read(m, st, &row);
	manifest_release(st);
	if (rc == 0)
		*t = row;
	return rc;
}

int es_manifest_transfer_delete(struct es_manifest *m,
				const struct es_manifest_transfer *t)
{
	sqlite3_stmt *st;
	int rc;

	if (key_check(m, t))
		return manifest_fail(m, ES_E_MANIFEST_NOTFOUND,
				     "no such transfer");
	rc = key_bind(m, MS_XFER_DELETE, t, &st);
	if (rc == 0)
		rc = manifest_exec(m, st);
	if (rc)
		return rc;
	if (sqlite3_changes(m->db) == 0)
		return manifest_fail(m, ES_E_MANIFEST_NOTFOUND,
				     "no such transfer");
	return 0;
}

int es_manifest_transfer_list(struct es_manifest *m, const char *peer,
			      struct es_manifest_transfer **out, size_t *n)
{
	struct es_manifest_transfer *arr = NULL;
	size_t cap = 0, count = 0;
	sqlite3_stmt *st = NULL;
	int rc;

	*out = NULL;
	*n = 0;
	if (peer && manifest_peer_key_valid(m, peer))
		return -EINVAL;
	rc = manifest_stmt(m, MS_XFER_LIST, &st);
	if (rc == 0 && peer) /* unbound ?1 is NULL: every peer */
		rc = manifest_bind_text(m, st, 1, peer);
	while (rc == 0 && (rc = manifest_step(m, st)) == 1) {
		rc = manifest_grow((void **)&arr, &cap, count, sizeof(*arr));
		if (rc == 0)
			rc = xfer_read(m, st, &arr[count++]);
	}
	if (rc) {
		manifest_release(st);
		free(arr);
		return rc;
	}
	*out = arr;
	*n = count;
	return 0;
}
