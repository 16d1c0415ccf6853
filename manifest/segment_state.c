/*
 * The segment transitions after add (segments.c has the table):
 *
 *   SEALED --es_manifest_segment_set_index--> INDEXED
 *   SEALED | INDEXED --es_manifest_segment_supersede--> SUPERSEDED
 *   SUPERSEDED --es_manifest_segment_remove--> (none)
 *
 * Each reads the rows it changes inside its BEGIN IMMEDIATE transaction,
 * refuses a transition the state does not allow (ES_E_MANIFEST_STATE)
 * before writing, bumps the collection's version once, and stamps
 * change_version with it. Any failure rolls everything back.
 */
#include <errno.h>

#include "manifest_impl.h"

static const char *state_name(enum es_segment_state state)
{
	switch (state) {
	case ES_SEGMENT_SEALED:
		return "SEALED";
	case ES_SEGMENT_INDEXED:
		return "INDEXED";
	case ES_SEGMENT_SUPERSEDED:
		return "SUPERSEDED";
	}
	return "?";
}

static int refuse(struct es_manifest *m, const struct es_manifest_segment *s,
		  const char *what)
{
	return manifest_fail(m, ES_E_MANIFEST_STATE,
			     "segment %lld is %s: cannot %s", (long long)s->id,
			     state_name(s->state), what);
}

/* Ends the transaction: commit if rc is 0, else roll back. */
static int finish(struct es_manifest *m, int rc)
{
	if (rc == 0)
		rc = manifest_commit(m);
	if (rc)
		manifest_rollback(m);
	return rc;
}

static int set_index_tx(struct es_manifest *m, int64_t id, uint64_t size,
			uint32_t checksum)
{
	struct es_manifest_segment s;
	sqlite3_stmt *st;
	uint64_t version;
	uint32_t dim;
	int rc;

	rc = es_manifest_segment_get(m, id, &s);
	if (rc)
		return rc;
	if (s.state != ES_SEGMENT_SEALED)
		return refuse(m, &s, "record an index");
	rc = manifest_coll_bump(m, s.collection_id, &version, &dim);
	if (rc == 0)
		rc = manifest_stmt(m, MS_SEG_SET_INDEX, &st);
	if (rc)
		return rc;
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)size);
	sqlite3_bind_int64(st, 3, checksum);
	sqlite3_bind_int64(st, 4, (sqlite3_int64)version);
	return manifest_exec(m, st);
}

int es_manifest_segment_set_index(struct es_manifest *m, int64_t segment_id,
				  uint64_t index_size, uint32_t index_checksum)
{
	int rc;

	if (index_size == 0 || index_size > INT64_MAX)
		return manifest_fail(m, -EINVAL, "bad index size");
	rc = manifest_begin(m);
	if (rc)
		return rc;
	return finish(m,
		      set_index_tx(m, segment_id, index_size, index_checksum));
}

static int supersede_one(struct es_manifest *m,
			 const struct es_manifest_segment *new_seg,
			 int64_t old_id, uint64_t version)
{
	struct es_manifest_segment s;
	sqlite3_stmt *st;
	int rc;

	if (old_id == new_seg->id)
		return manifest_fail(m, -EINVAL,
				     "segment %lld cannot supersede itself",
				     (long long)old_id);
	rc = es_manifest_segment_get(m, old_id, &s);
	if (rc)
		return rc;
	if (s.collection_id != new_seg->collection_id)
		return manifest_fail(m, -EINVAL,
				     "segment %lld is in another collection",
				     (long long)old_id);
	/* Also refuses an id listed twice: the first made it SUPERSEDED. */
	if (s.state == ES_SEGMENT_SUPERSEDED)
		return refuse(m, &s, "be superseded again");
	rc = manifest_stmt(m, MS_SEG_SUPERSEDE, &st);
	if (rc)
		return rc;
	sqlite3_bind_int64(st, 1, old_id);
	sqlite3_bind_int64(st, 2, new_seg->id);
	sqlite3_bind_int64(st, 3, (sqlite3_int64)version);
	return manifest_exec(m, st);
}

static int supersede_tx(struct es_manifest *m, int64_t new_segment,
			const int64_t *old, size_t n)
{
	struct es_manifest_segment s;
	uint64_t version;
	uint32_t dim;
	int rc;

	rc = es_manifest_segment_get(m, new_segment, &s);
	if (rc)
		return rc;
	if (s.state == ES_SEGMENT_SUPERSEDED)
		return refuse(m, &s, "supersede others");
	rc = manifest_coll_bump(m, s.collection_id, &version, &dim);
	for (size_t i = 0; rc == 0 && i < n; i++)
		rc = supersede_one(m, &s, old[i], version);
	return rc;
}

int es_manifest_segment_supersede(struct es_manifest *m, int64_t new_segment,
				  const int64_t *old, size_t n)
{
	int rc;

	if (n == 0 || !old)
		return manifest_fail(m, -EINVAL, "nothing to supersede");
	rc = manifest_begin(m);
	if (rc)
		return rc;
	return finish(m, supersede_tx(m, new_segment, old, n));
}

static int remove_tx(struct es_manifest *m, int64_t id)
{
	struct es_manifest_segment s;
	sqlite3_stmt *st;
	uint64_t version;
	uint32_t dim;
	int rc;

	rc = es_manifest_segment_get(m, id, &s);
	if (rc)
		return rc;
	if (s.state != ES_SEGMENT_SUPERSEDED)
		return refuse(m, &s, "be removed");
	rc = manifest_coll_bump(m, s.collection_id, &version, &dim);
	if (rc == 0)
		rc = manifest_stmt(m, MS_SEG_DELETE, &st);
	if (rc)
		return rc;
	sqlite3_bind_int64(st, 1, id);
	return manifest_exec(m, st);
}

int es_manifest_segment_remove(struct es_manifest *m, int64_t segment_id)
{
	int rc = manifest_begin(m);

	if (rc)
		return rc;
	return finish(m, remove_tx(m, segment_id));
}
