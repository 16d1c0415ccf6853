/*
 * Segments: the rows that name NDVS files and their indexes. This file
 * adds, reads and lists them; segment_state.c moves them along the state
 * machine of manifest.c, one transaction per transition:
 *
 *   (none) --es_manifest_segment_add--------> SEALED | INDEXED
 *   SEALED --es_manifest_segment_set_index--> INDEXED
 *   SEALED | INDEXED --es_manifest_segment_supersede--> SUPERSEDED
 *   SUPERSEDED --es_manifest_segment_remove--> (none)
 *
 * Invariants:
 *   1. Each transition reads the row's state inside its transaction, and
 *      refuses (ES_E_MANIFEST_STATE) before writing anything.
 *   2. Each transition bumps the collection's version once and stamps
 *      change_version (and add_version at add) with it.
 *   3. Ids come from meta.segment_id (never reused); a local segment's
 *      origin_seq defaults to its id, so (origin, origin_seq) names one
 *      segment everywhere; (collection, origin, origin_seq) is unique.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "manifest_impl.h"

/* Columns of SEG_COLS (sql.c), in order. */
enum seg_col {
	C_ID,
	C_COLL,
	C_SIZE,
	C_CRC,
	C_COUNT,
	C_DIM,
	C_ISIZE,
	C_ICRC,
	C_STATE,
	C_ORIGIN,
	C_SEQ,
	C_HLC,
	C_WAL,
	C_SUPER,
	C_ADDV,
	C_CHGV,
	C_NCOLS
};

/* Reads the current row of st into s, checking every field. */
static int seg_read(struct es_manifest *m, sqlite3_stmt *st,
		    struct es_manifest_segment *s)
{
	const unsigned char *origin = sqlite3_column_text(st, C_ORIGIN);
	uint64_t v[C_NCOLS] = {0};
	int bad = 0;

	for (int i = 0; i < C_NCOLS; i++)
		if (i != C_ORIGIN)
			bad |= manifest_column_u64(st, i, &v[i]);
	if (bad || v[C_CRC] > UINT32_MAX || v[C_ICRC] > UINT32_MAX ||
	    v[C_DIM] == 0 || v[C_DIM] > ES_MANIFEST_DIM_MAX ||
	    v[C_STATE] < ES_SEGMENT_SEALED ||
	    v[C_STATE] > ES_SEGMENT_SUPERSEDED || !origin ||
	    sqlite3_column_type(st, C_ORIGIN) != SQLITE_TEXT ||
	    manifest_device_valid((const char *)origin))
		return manifest_fail(m, ES_E_MANIFEST_CORRUPT,
				     "segment row has a bad field");
	s->id = (int64_t)v[C_ID];
	s->collection_id = (int64_t)v[C_COLL];
	s->size = v[C_SIZE];
	s->checksum = (uint32_t)v[C_CRC];
	s->count = v[C_COUNT];
	s->dim = (uint32_t)v[C_DIM];
	s->index_size = v[C_ISIZE];
	s->index_checksum = (uint32_t)v[C_ICRC];
	s->state = (enum es_segment_state)v[C_STATE];
	strcpy(s->origin, (const char *)origin);
	s->origin_seq = v[C_SEQ];
	s->seal_hlc = v[C_HLC];
	s->wal_gen = v[C_WAL];
	s->superseded_by = (int64_t)v[C_SUPER];
	s->add_version = v[C_ADDV];
	s->change_version = v[C_CHGV];
	return 0;
}

/* Steps st for one segment row. */
static int seg_one(struct es_manifest *m, sqlite3_stmt *st,
		   struct es_manifest_segment *s)
{
	int rc = manifest_step(m, st);

	if (rc == 0)
		return manifest_fail(m, ES_E_MANIFEST_NOTFOUND,
				     "no such segment");
	if (rc < 0)
		return rc;
	rc = seg_read(m, st, s);
	manifest_release(st);
	return rc;
}

int es_manifest_segment_get(struct es_manifest *m, int64_t segment_id,
			    struct es_manifest_segment *s)
{
	sqlite3_stmt *st;
	int rc = manifest_stmt(m, MS_SEG_GET, &st);

	if (rc)
		return rc;
	sqlite3_bind_int64(st, 1, segment_id);
	return seg_one(m, st, s);
}

int es_manifest_segment_find(struct es_manifest *m, int64_t collection_id,
			     const char *origin, uint64_t origin_seq,
			     struct es_manifest_segment *s)
{
	sqlite3_stmt *st;
	int rc;

	if (manifest_device_valid(origin) || origin_seq > INT64_MAX)
		return manifest_fail(m, ES_E_MANIFEST_NOTFOUND,
				     "no such segment");
	rc = manifest_stmt(m, MS_SEG_FIND, &st);
	if (rc == 0)
		rc = manifest_bind_text(m, st, 2, origin);
	if (rc)
		return rc;
	sqlite3_bind_int64(st, 1, collection_id);
	sqlite3_bind_int64(st, 3, (sqlite3_int64)origin_seq);
	return seg_one(m, st, s);
}

/*
 * Inside a transaction: takes the next segment id, or records that the
 * caller used want (reserved earlier, or chosen by it), so meta.segment_id
 * stays the largest id ever handed out.
 */
static int seg_id_take(struct es_manifest *m, int64_t want, int64_t *id)
{
	uint64_t last = 0;
	int rc;

	rc = manifest_meta_get_u64(m, META_SEGMENT_ID, &last);
	if (rc < 0)
		return rc;
	if (want > 0 && (uint64_t)want <= last) {
		*id = want;
		return 0;
	}
	if (want == 0 && last >= INT64_MAX)
		return manifest_fail(m, -EOVERFLOW, "segment ids exhausted");
	*id = want > 0 ? want : (int64_t)last + 1;
	return manifest_meta_put_u64(m, META_SEGMENT_ID, (uint64_t)*id);
}

int es_manifest_segment_reserve(struct es_manifest *m, int64_t *id)
{
	int rc = manifest_begin(m);

	if (rc)
		return rc;
	rc = seg_id_take(m, 0, id);
	if (rc == 0)
		rc = manifest_commit(m);
	if (rc)
		manifest_rollback(m);
	return rc;
}

/* Checks a segment from a caller and completes what defaults. */
static int seg_check(struct es_manifest *m, struct es_manifest_segment *s)
{
	int local;

	if (s->origin[0] == '\0')
		strcpy(s->origin, m->device_id);
	else if (manifest_device_valid(s->origin))
		return manifest_fail(m, -EINVAL, "bad segment origin");
	local = strcmp(s->origin, m->device_id) == 0;
	if (s->state == 0)
		s->state = ES_SEGMENT_SEALED;
	if (s->state != ES_SEGMENT_SEALED && s->state != ES_SEGMENT_INDEXED)
		return manifest_fail(m, ES_E_MANIFEST_STATE,
				     "a segment is added SEALED or INDEXED");
	if (s->state == ES_SEGMENT_SEALED
		? s->index_size != 0 || s->index_checksum != 0
		: s->index_size == 0)
		return manifest_fail(m, -EINVAL,
				     "index size disagrees with the state");
	if (s->id < 0 || s->superseded_by != 0 || s->size == 0 || s->dim == 0 ||
	    s->dim > ES_MANIFEST_DIM_MAX || (!local && s->origin_seq == 0))
		return manifest_fail(m, -EINVAL, "bad segment field");
	if (s->size > INT64_MAX || s->count > INT64_MAX ||
	    s->index_size > INT64_MAX || s->origin_seq > INT64_MAX ||
	    s->seal_hlc > ES_MANIFEST_HLC_MAX || s->wal_gen > INT64_MAX)
		return manifest_fail(m, -ERANGE,
				     "segment field above 2^63 - 1");
	return 0;
}

static int seg_insert(struct es_manifest *m,
		      const struct es_manifest_segment *s)
{
	const sqlite3_int64 v[C_NCOLS] = {
	    [C_ID] = s->id,
	    [C_COLL] = s->collection_id,
	    [C_SIZE] = (sqlite3_int64)s->size,
	    [C_CRC] = s->checksum,
	    [C_COUNT] = (sqlite3_int64)s->count,
	    [C_DIM] = s->dim,
	    [C_ISIZE] = (sqlite3_int64)s->index_size,
	    [C_ICRC] = s->index_checksum,
	    [C_STATE] = s->state,
	    [C_SEQ] = (sqlite3_int64)s->origin_seq,
	    [C_HLC] = (sqlite3_int64)s->seal_hlc,
	    [C_WAL] = (sqlite3_int64)s->wal_gen,
	    [C_SUPER] = s->superseded_by,
	    [C_ADDV] = (sqlite3_int64)s->add_version,
	    [C_CHGV] = (sqlite3_int64)s->change_version,
	};
	sqlite3_stmt *st;
	int rc;

	rc = manifest_stmt(m, MS_SEG_INSERT, &st);
	if (rc == 0)
		rc = manifest_bind_text(m, st, C_ORIGIN + 1, s->origin);
	if (rc)
		return rc;
	for (int i = 0; i < C_NCOLS; i++)
		if (i != C_ORIGIN)
			sqlite3_bind_int64(st, i + 1, v[i]);
	rc = manifest_exec(m, st);
	if (rc == ES_E_MANIFEST_EXISTS)
		return manifest_fail(m, rc,
				     "segment %lld or %s/%llu is recorded",
				     (long long)s->id, s->origin,
				     (unsigned long long)s->origin_seq);
	return rc;
}

/* The body of segment_add's transaction. */
static int seg_add_tx(struct es_manifest *m, struct es_manifest_segment *s,
		      const struct es_clock_run *runs, size_t n_runs,
		      const struct es_manifest_tombstone *tombs, size_t n_tombs)
{
	uint64_t version;
	uint32_t dim;
	int rc;

	rc = manifest_coll_bump(m, s->collection_id, &version, &dim);
	if (rc)
		return rc;
	if (dim != s->dim)
		return manifest_fail(m, -EINVAL,
				     "segment dim %u, collection dim %u",
				     s->dim, dim);
	rc = seg_id_take(m, s->id, &s->id);
	if (rc)
		return rc;
	if (s->origin_seq == 0)
		s->origin_seq = (uint64_t)s->id;
	s->add_version = version;
	s->change_version = version;
	rc = seg_insert(m, s);
	if (rc == 0 && n_runs)
		rc = manifest_clocks_put(m, s, runs, n_runs);
	if (rc == 0)
		rc = manifest_tombs_put(m, s->collection_id, tombs, n_tombs,
					version);
	return rc;
}

int es_manifest_segment_add(struct es_manifest *m,
			    struct es_manifest_segment *s,
			    const struct es_manifest_tombstone *tombs,
			    size_t n_tombs)
{
	return es_manifest_segment_add_clocked(m, s, NULL, 0, tombs, n_tombs);
}

int es_manifest_segment_add_clocked(struct es_manifest *m,
				    struct es_manifest_segment *s,
				    const struct es_clock_run *runs,
				    size_t n_runs,
				    const struct es_manifest_tombstone *tombs,
				    size_t n_tombs)
{
	struct es_manifest_segment row = *s;
	size_t bad;
	int rc;

	rc = seg_check(m, &row);
	if (rc == 0 && n_runs &&
	    (bad = es_clock_runs_check(runs, n_runs, row.count, row.seal_hlc)))
		rc = manifest_fail(m, -EINVAL,
				   "clock run %zu of %zu is not valid for a "
				   "segment of %llu rows",
				   bad - 1, n_runs,
				   (unsigned long long)row.count);
	if (rc == 0)
		rc = manifest_tombs_check(m, tombs, n_tombs);
	if (rc == 0)
		rc = manifest_begin(m);
	if (rc)
		return rc;
	rc = seg_add_tx(m, &row, runs, n_runs, tombs, n_tombs);
	if (rc == 0)
		rc = manifest_commit(m);
	if (rc) {
		manifest_rollback(m);
		return rc;
	}
	*s = row;
	return 0;
}

int es_manifest_segment_list(struct es_manifest *m, int64_t collection_id,
			     uint64_t since, struct es_manifest_segment **out,
			     size_t *n)
{
	struct es_manifest_segment *arr = NULL;
	struct es_manifest_collection c;
	size_t cap = 0, count = 0;
	sqlite3_stmt *st = NULL;
	int rc;

	*out = NULL;
	*n = 0;
	rc = es_manifest_collection_get_id(m, collection_id, &c);
	if (rc == 0)
		rc = manifest_stmt(m, MS_SEG_LIST, &st);
	if (rc)
		return rc;
	sqlite3_bind_int64(st, 1, collection_id);
	sqlite3_bind_int64(
	    st, 2, since > INT64_MAX ? INT64_MAX : (sqlite3_int64)since);
	while ((rc = manifest_step(m, st)) == 1) {
		rc = manifest_grow((void **)&arr, &cap, count, sizeof(*arr));
		if (rc == 0)
			rc = seg_read(m, st, &arr[count++]);
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

int es_manifest_sealed_wal_gen(struct es_manifest *m, int64_t collection_id,
			       uint64_t *gen)
{
	struct es_manifest_collection c;
	sqlite3_stmt *st;
	int rc, bad;

	rc = es_manifest_collection_get_id(m, collection_id, &c);
	if (rc == 0)
		rc = manifest_stmt(m, MS_SEG_WAL_GEN, &st);
	if (rc)
		return rc;
	sqlite3_bind_int64(st, 1, collection_id);
	rc = manifest_step(m, st);
	if (rc < 0)
		return rc;
	*gen = 0;
	/* max() of no rows is NULL: no segment, generation 0. */
	bad = rc == 1 && sqlite3_column_type(st, 0) != SQLITE_NULL &&
	      manifest_column_u64(st, 0, gen);
	manifest_release(st);
	if (bad)
		return manifest_fail(m, ES_E_MANIFEST_CORRUPT,
				     "segment wal_gen is not a number >= 0");
	return 0;
}
