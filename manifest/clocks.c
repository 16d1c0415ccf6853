/*
 * The clocks of a segment's rows (edgesync/clock_runs.h), one
 * segment_clock row per segment that has them: a blob of runs, each the
 * run's first row and clock as two little-endian u64.
 *
 * Invariants:
 *   1. A segment_clock row is written with its segment, in the
 *      transaction that adds it, and goes with it (ON DELETE CASCADE).
 *   2. What a row holds is a valid list for its segment's count and
 *      seal_hlc (checked at add); a read checks it again and calls
 *      anything else corrupt.
 *   3. A segment without a row has one run {0, seal_hlc}: every row at the
 *      segment's clock (segments recorded before schema 4, and those
 *      added by segment_add without runs; the agent always gives them).
 */
#include <errno.h>
#include <stdlib.h>

#include "edgesync/le.h"
#include "manifest_impl.h"

#define RUN_BYTES 16

int manifest_clocks_put(struct es_manifest *m,
			const struct es_manifest_segment *s,
			const struct es_clock_run *runs, size_t n)
{
	unsigned char *blob = malloc(n * RUN_BYTES);
	sqlite3_stmt *st;
	int rc;

	if (!blob)
		return manifest_fail(m, -ENOMEM, "clock runs: no memory");
	for (size_t i = 0; i < n; i++) {
		le64_store(blob + i * RUN_BYTES, runs[i].row);
		le64_store(blob + i * RUN_BYTES + 8, runs[i].hlc);
	}
	rc = manifest_stmt(m, MS_CLOCK_PUT, &st);
	if (rc == 0) {
		sqlite3_bind_int64(st, 1, s->id);
		sqlite3_bind_blob64(st, 2, blob,
				    (sqlite3_uint64)(n * RUN_BYTES),
				    SQLITE_STATIC);
		rc = manifest_exec(m, st);
	}
	free(blob);
	return rc;
}

/* Reads the row st stepped to: count, seal_hlc, runs (or NULL). */
static int clocks_read(struct es_manifest *m, sqlite3_stmt *st,
		       struct es_clock_run **out, size_t *n)
{
	int type = sqlite3_column_type(st, 2); /* before any conversion */
	const unsigned char *blob = sqlite3_column_blob(st, 2);
	size_t len = (size_t)sqlite3_column_bytes(st, 2), k;
	uint64_t count, seal_hlc;

	if (manifest_column_u64(st, 0, &count) ||
	    manifest_column_u64(st, 1, &seal_hlc))
		return manifest_fail(m, ES_E_MANIFEST_CORRUPT,
				     "segment row has a bad field");
	if (type == SQLITE_NULL) {
		blob = NULL;
		k = count ? 1 : 0; /* invariant 3 */
	} else if (type != SQLITE_BLOB || !blob || len % RUN_BYTES) {
		return manifest_fail(m, ES_E_MANIFEST_CORRUPT,
				     "segment clocks are not a list of runs");
	} else {
		k = len / RUN_BYTES;
	}
	if (k && !(*out = malloc(k * sizeof(**out))))
		return manifest_fail(m, -ENOMEM, "clock runs: no memory");
	for (size_t i = 0; i < k; i++) {
		(*out)[i].row = blob ? le64_load(blob + i * RUN_BYTES) : 0;
		(*out)[i].hlc =
		    blob ? le64_load(blob + i * RUN_BYTES + 8) : seal_hlc;
	}
	*n = k;
	if (es_clock_runs_check(*out, k, count, seal_hlc)) {
		free(*out);
		*out = NULL;
		*n = 0;
		return manifest_fail(m, ES_E_MANIFEST_CORRUPT,
				     "segment clocks do not fit the segment");
	}
	return 0;
}

static int clocks_get(struct es_manifest *m, sqlite3_stmt *st,
		      struct es_clock_run **out, size_t *n)
{
	int rc = manifest_step(m, st);

	if (rc == 0)
		return manifest_fail(m, ES_E_MANIFEST_NOTFOUND,
				     "no such segment");
	if (rc < 0)
		return rc;
	rc = clocks_read(m, st, out, n);
	manifest_release(st);
	return rc;
}

int es_manifest_segment_clocks(struct es_manifest *m, int64_t segment_id,
			       struct es_clock_run **runs, size_t *n)
{
	sqlite3_stmt *st;
	int rc;

	*runs = NULL;
	*n = 0;
	rc = manifest_stmt(m, MS_CLOCK_GET, &st);
	if (rc)
		return rc;
	sqlite3_bind_int64(st, 1, segment_id);
	return clocks_get(m, st, runs, n);
}

int es_manifest_segment_clocks_at(struct es_manifest *m, int64_t collection_id,
				  uint64_t add_version,
				  struct es_clock_run **runs, size_t *n)
{
	sqlite3_stmt *st;
	int rc;

	*runs = NULL;
	*n = 0;
	if (add_version > INT64_MAX)
		return manifest_fail(m, ES_E_MANIFEST_NOTFOUND,
				     "no such segment");
	rc = manifest_stmt(m, MS_CLOCK_AT, &st);
	if (rc)
		return rc;
	sqlite3_bind_int64(st, 1, collection_id);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)add_version);
	return clocks_get(m, st, runs, n);
}
