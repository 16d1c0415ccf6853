/*
 * The meta table: a few named values of the data directory (device id,
 * the clock's ceiling, the last segment id handed out), one row each.
 */
#include "manifest_impl.h"

int manifest_meta_get_u64(struct es_manifest *m, const char *key, uint64_t *v)
{
	sqlite3_stmt *st;
	int rc, bad;

	rc = manifest_stmt(m, MS_META_GET, &st);
	if (rc == 0)
		rc = manifest_bind_text(m, st, 1, key);
	if (rc == 0)
		rc = manifest_step(m, st);
	if (rc != 1)
		return rc;
	bad = manifest_column_u64(st, 0, v);
	manifest_release(st);
	if (bad)
		return manifest_fail(m, ES_E_MANIFEST_CORRUPT,
				     "meta %s is not a number >= 0", key);
	return 1;
}

int manifest_meta_put_u64(struct es_manifest *m, const char *key, uint64_t v)
{
	sqlite3_stmt *st;
	int rc;

	rc = manifest_stmt(m, MS_META_PUT, &st);
	if (rc == 0)
		rc = manifest_bind_text(m, st, 1, key);
	if (rc)
		return rc;
	sqlite3_bind_int64(st, 2, (sqlite3_int64)v);
	return manifest_exec(m, st);
}
