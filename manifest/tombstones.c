/*
 * Tombstones: one row per (collection, vector id) deleted, with the HLC
 * and device of the delete.
 *
 * Invariants:
 *   1. Of two tombstones for one id, the row keeps the larger
 *      (hlc, origin), the rule every conflict follows; a loser changes
 *      nothing (not even add_version).
 *   2. A row written or replaced carries the version of the transaction
 *      that wrote it, so tombstone_list(since) is "add_version > since"
 *      and segment_tombstones(v) is "add_version = v": the tombstones
 *      that the segment added at v brought and that still win.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "manifest_impl.h"

int manifest_tombs_check(struct es_manifest *m,
			 const struct es_manifest_tombstone *tombs, size_t n)
{
	if (n && !tombs)
		return manifest_fail(m, -EINVAL, "no tombstone array");
	for (size_t i = 0; i < n; i++) {
		if (tombs[i].origin[0] != '\0' &&
		    manifest_device_valid(tombs[i].origin))
			return manifest_fail(m, -EINVAL,
					     "bad tombstone origin");
		if (tombs[i].hlc > ES_MANIFEST_HLC_MAX)
			return manifest_fail(m, -ERANGE,
					     "tombstone clock above 2^63");
	}
	return 0;
}

int manifest_tombs_put(struct es_manifest *m, int64_t collection_id,
		       const struct es_manifest_tombstone *tombs, size_t n,
		       uint64_t version)
{
	const struct es_manifest_tombstone *t;
	sqlite3_stmt *st;
	int rc = 0;

	for (size_t i = 0; rc == 0 && i < n; i++) {
		t = &tombs[i];
		rc = manifest_stmt(m, MS_TOMB_PUT, &st);
		if (rc == 0)
			rc = manifest_bind_text(
			    m, st, 4, t->origin[0] ? t->origin : m->device_id);
		if (rc)
			break;
		sqlite3_bind_int64(st, 1, collection_id);
		/* Vector ids round-trip through the signed cast. */
		sqlite3_bind_int64(st, 2, (sqlite3_int64)t->id);
		sqlite3_bind_int64(st, 3, (sqlite3_int64)t->hlc);
		sqlite3_bind_int64(st, 5, (sqlite3_int64)version);
		rc = manifest_exec(m, st);
	}
	return rc;
}

static int tomb_add_tx(struct es_manifest *m, int64_t collection_id,
		       const struct es_manifest_tombstone *tombs, size_t n)
{
	uint64_t version;
	uint32_t dim;
	int rc;

	rc = manifest_coll_bump(m, collection_id, &version, &dim);
	if (rc == 0)
		rc = manifest_tombs_put(m, collection_id, tombs, n, version);
	return rc;
}

int es_manifest_tombstone_add(struct es_manifest *m, int64_t collection_id,
			      const struct es_manifest_tombstone *tombs,
			      size_t n)
{
	int rc;

	if (n == 0)
		return manifest_fail(m, -EINVAL, "no tombstones");
	rc = manifest_tombs_check(m, tombs, n);
	if (rc == 0)
		rc = manifest_begin(m);
	if (rc)
		return rc;
	rc = tomb_add_tx(m, collection_id, tombs, n);
	if (rc == 0)
		rc = manifest_commit(m);
	if (rc)
		manifest_rollback(m);
	return rc;
}

static int tomb_read(struct es_manifest *m, sqlite3_stmt *st,
		     struct es_manifest_tombstone *t)
{
	const unsigned char *origin = sqlite3_column_text(st, 2);

	if (sqlite3_column_type(st, 0) != SQLITE_INTEGER ||
	    manifest_column_u64(st, 1, &t->hlc) ||
	    manifest_column_u64(st, 3, &t->add_version) || !origin ||
	    sqlite3_column_type(st, 2) != SQLITE_TEXT ||
	    manifest_device_valid((const char *)origin))
		return manifest_fail(m, ES_E_MANIFEST_CORRUPT,
				     "tombstone row has a bad field");
	t->id = (uint64_t)sqlite3_column_int64(st, 0);
	strcpy(t->origin, (const char *)origin);
	return 0;
}

/* Reads every row of st (bound by the caller) into a malloc'ed array. */
static int tomb_rows(struct es_manifest *m, sqlite3_stmt *st,
		     struct es_manifest_tombstone **out, size_t *n)
{
	struct es_manifest_tombstone *arr = NULL;
	size_t cap = 0, count = 0;
	int rc;

	while ((rc = manifest_step(m, st)) == 1) {
		rc = manifest_grow((void **)&arr, &cap, count, sizeof(*arr));
		if (rc == 0)
			rc = tomb_read(m, st, &arr[count++]);
		if (rc)
			break;
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

/* Prepares statement id for collection_id and version v (as ?1, ?2). */
static int tomb_query(struct es_manifest *m, enum manifest_sql id,
		      int64_t collection_id, uint64_t v, sqlite3_stmt **st)
{
	struct es_manifest_collection c;
	int rc;

	rc = es_manifest_collection_get_id(m, collection_id, &c);
	if (rc == 0)
		rc = manifest_stmt(m, id, st);
	if (rc)
		return rc;
	sqlite3_bind_int64(*st, 1, collection_id);
	sqlite3_bind_int64(*st, 2,
			   v > INT64_MAX ? INT64_MAX : (sqlite3_int64)v);
	return 0;
}

int es_manifest_tombstone_list(struct es_manifest *m, int64_t collection_id,
			       uint64_t since,
			       struct es_manifest_tombstone **out, size_t *n)
{
	sqlite3_stmt *st;
	int rc;

	*out = NULL;
	*n = 0;
	rc = tomb_query(m, MS_TOMB_LIST, collection_id, since, &st);
	return rc ? rc : tomb_rows(m, st, out, n);
}

int es_manifest_segment_tombstones(struct es_manifest *m, int64_t collection_id,
				   uint64_t add_version,
				   struct es_manifest_tombstone **out,
				   size_t *n)
{
	sqlite3_stmt *st;
	int rc;

	*out = NULL;
	*n = 0;
	/* No version above 2^63 - 1 is ever stamped. */
	if (add_version > INT64_MAX)
		add_version = 0;
	rc = tomb_query(m, MS_TOMB_AT, collection_id, add_version, &st);
	return rc ? rc : tomb_rows(m, st, out, n);
}
