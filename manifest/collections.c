/*
 * Collections: create, read, list, drop, and the per-collection version
 * that every change to a collection's segments or tombstones bumps.
 *
 * Invariants:
 *   1. A stored name matches [a-z0-9_-]{1,64}, dim is 1..4096 and metric
 *      0..2; a row that does not is reported as corruption.
 *   2. version starts at 0 and only manifest_coll_bump changes it, by
 *      one, inside the transaction of the change it counts. Versions of a
 *      name never go back: a drop keeps the version it had reached (meta
 *      version_floor/<name>, in the drop's transaction) and a collection
 *      created again under that name starts there. A peer's
 *      acknowledgement of the old one (the version it has seen) then
 *      never hides the new one's segments: they count on from there.
 *   3. Dropping a collection deletes its segment, tombstone, ack and
 *      transfer rows in the same statement (ON DELETE CASCADE), hence the
 *      same transaction.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edgesync/name.h"
#include "manifest_impl.h"

#define METRIC_MAX  2 /* ES_METRIC_COSINE of the store */
#define FLAGS_KNOWN (ES_COLLECTION_UPLOAD | ES_COLLECTION_DOWNLOAD)

_Static_assert(ES_MANIFEST_NAME_MAX == ES_NAME_MAX, "one name rule");

int manifest_name_valid(const char *name)
{
	return es_name_valid(name) ? 0 : ES_E_MANIFEST_NAME;
}

static int name_check(struct es_manifest *m, const char *name)
{
	if (manifest_name_valid(name) == 0)
		return 0;
	return manifest_fail(m, ES_E_MANIFEST_NAME,
			     "collection name is not [a-z0-9_-]{1,%d}",
			     ES_MANIFEST_NAME_MAX);
}

/* Reads the current row (COLL_COLS) of st into c, checking every field. */
static int coll_read(struct es_manifest *m, sqlite3_stmt *st,
		     struct es_manifest_collection *c)
{
	const unsigned char *name = sqlite3_column_text(st, 1);
	uint64_t id, dim, metric, flags;
	int bad;

	bad = manifest_column_u64(st, 0, &id) |
	      manifest_column_u64(st, 2, &dim) |
	      manifest_column_u64(st, 3, &metric) |
	      manifest_column_u64(st, 4, &flags) |
	      manifest_column_u64(st, 5, &c->version) |
	      manifest_column_u64(st, 6, &c->created_hlc);
	if (bad || !name || sqlite3_column_type(st, 1) != SQLITE_TEXT ||
	    manifest_name_valid((const char *)name) || dim == 0 ||
	    dim > ES_MANIFEST_DIM_MAX || metric > METRIC_MAX ||
	    flags > UINT32_MAX)
		return manifest_fail(m, ES_E_MANIFEST_CORRUPT,
				     "collection row has a bad field");
	c->id = (int64_t)id;
	strcpy(c->name, (const char *)name);
	c->dim = (uint32_t)dim;
	c->metric = (uint32_t)metric;
	c->flags = (uint32_t)flags;
	return 0;
}

/* The meta key of name's version floor (invariant 2). */
static void floor_key(char *key, size_t size, const char *name)
{
	snprintf(key, size, "%s%s", META_VERSION_FLOOR, name);
}

/* name's version floor, 0 if it was never dropped; in a transaction. */
static int floor_get(struct es_manifest *m, const char *name, uint64_t *v)
{
	char key[sizeof(META_VERSION_FLOOR) + ES_MANIFEST_NAME_MAX];
	int rc;

	floor_key(key, sizeof(key), name);
	*v = 0;
	rc = manifest_meta_get_u64(m, key, v);
	return rc < 0 ? rc : 0;
}

int es_manifest_collection_create(struct es_manifest *m,
				  struct es_manifest_collection *c)
{
	sqlite3_stmt *st;
	uint64_t hlc, floor = 0;
	int rc;

	rc = name_check(m, c->name);
	if (rc)
		return rc;
	if (c->dim == 0 || c->dim > ES_MANIFEST_DIM_MAX ||
	    c->metric > METRIC_MAX || (c->flags & ~(uint32_t)FLAGS_KNOWN))
		return manifest_fail(m, -EINVAL,
				     "dim, metric or flags out of range");
	rc = es_manifest_hlc_now(m, &hlc);
	if (rc == 0)
		rc = manifest_begin(m);
	if (rc)
		return rc;
	rc = floor_get(m, c->name, &floor);
	if (rc == 0)
		rc = manifest_stmt(m, MS_COLL_INSERT, &st);
	if (rc == 0)
		rc = manifest_bind_text(m, st, 1, c->name);
	if (rc == 0) {
		sqlite3_bind_int64(st, 2, c->dim);
		sqlite3_bind_int64(st, 3, c->metric);
		sqlite3_bind_int64(st, 4, c->flags);
		sqlite3_bind_int64(st, 5, (sqlite3_int64)hlc);
		sqlite3_bind_int64(st, 6, (sqlite3_int64)floor);
		rc = manifest_exec(m, st);
	}
	if (rc == 0)
		rc = manifest_commit(m);
	if (rc) {
		manifest_rollback(m);
		if (rc == ES_E_MANIFEST_EXISTS)
			return manifest_fail(m, rc, "collection %s exists",
					     c->name);
		return rc;
	}
	c->id = sqlite3_last_insert_rowid(m->db);
	c->version = floor;
	c->created_hlc = hlc;
	return 0;
}

/* Steps st for one collection row. */
static int coll_one(struct es_manifest *m, sqlite3_stmt *st,
		    struct es_manifest_collection *c)
{
	int rc = manifest_step(m, st);

	if (rc == 0)
		return manifest_fail(m, ES_E_MANIFEST_NOTFOUND,
				     "no such collection");
	if (rc < 0)
		return rc;
	rc = coll_read(m, st, c);
	manifest_release(st);
	return rc;
}

int es_manifest_collection_get(struct es_manifest *m, const char *name,
			       struct es_manifest_collection *c)
{
	sqlite3_stmt *st;
	int rc;

	rc = name_check(m, name);
	if (rc == 0)
		rc = manifest_stmt(m, MS_COLL_BY_NAME, &st);
	if (rc == 0)
		rc = manifest_bind_text(m, st, 1, name);
	return rc ? rc : coll_one(m, st, c);
}

int es_manifest_collection_get_id(struct es_manifest *m, int64_t id,
				  struct es_manifest_collection *c)
{
	sqlite3_stmt *st;
	int rc = manifest_stmt(m, MS_COLL_BY_ID, &st);

	if (rc)
		return rc;
	sqlite3_bind_int64(st, 1, id);
	return coll_one(m, st, c);
}

int es_manifest_collection_list(struct es_manifest *m,
				struct es_manifest_collection **out, size_t *n)
{
	struct es_manifest_collection *arr = NULL;
	size_t cap = 0, count = 0;
	sqlite3_stmt *st = NULL;
	int rc;

	*out = NULL;
	*n = 0;
	rc = manifest_stmt(m, MS_COLL_LIST, &st);
	while (rc == 0 && (rc = manifest_step(m, st)) == 1) {
		rc = manifest_grow((void **)&arr, &cap, count, sizeof(*arr));
		if (rc == 0)
			rc = coll_read(m, st, &arr[count]);
		count++;
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

int es_manifest_collection_drop(struct es_manifest *m, const char *name)
{
	char key[sizeof(META_VERSION_FLOOR) + ES_MANIFEST_NAME_MAX];
	struct es_manifest_collection c;
	sqlite3_stmt *st;
	uint64_t floor;
	int rc;

	rc = name_check(m, name);
	if (rc == 0)
		rc = manifest_begin(m);
	if (rc)
		return rc;
	/* the version reached stays as the name's floor (invariant 2) */
	rc = es_manifest_collection_get(m, name, &c);
	if (rc == 0)
		rc = floor_get(m, name, &floor);
	floor_key(key, sizeof(key), name);
	if (rc == 0 && c.version > floor)
		rc = manifest_meta_put_u64(m, key, c.version);
	if (rc == 0)
		rc = manifest_stmt(m, MS_COLL_DELETE, &st);
	if (rc == 0)
		rc = manifest_bind_text(m, st, 1, name);
	if (rc == 0)
		rc = manifest_exec(m, st);
	if (rc == 0)
		rc = manifest_commit(m);
	if (rc)
		manifest_rollback(m);
	return rc;
}

int manifest_coll_bump(struct es_manifest *m, int64_t id, uint64_t *version,
		       uint32_t *dim)
{
	sqlite3_stmt *st;
	uint64_t d;
	int rc, bad;

	rc = manifest_stmt(m, MS_COLL_BUMP, &st);
	if (rc)
		return rc;
	sqlite3_bind_int64(st, 1, id);
	rc = manifest_exec(m, st);
	if (rc)
		return rc;
	if (sqlite3_changes(m->db) == 0)
		return manifest_fail(m, ES_E_MANIFEST_NOTFOUND,
				     "no collection with id %lld",
				     (long long)id);
	rc = manifest_stmt(m, MS_COLL_VERSION, &st);
	if (rc)
		return rc;
	sqlite3_bind_int64(st, 1, id);
	rc = manifest_step(m, st);
	if (rc < 0)
		return rc;
	bad = rc == 0 || manifest_column_u64(st, 0, version) ||
	      manifest_column_u64(st, 1, &d) || d == 0 ||
	      d > ES_MANIFEST_DIM_MAX;
	manifest_release(st);
	if (bad)
		return manifest_fail(m, ES_E_MANIFEST_CORRUPT,
				     "collection row has a bad version or dim");
	*dim = (uint32_t)d;
	return 0;
}
