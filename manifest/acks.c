/*
 * Acknowledgements: per (collection, direction, peer key) the collection
 * version that peer has acknowledged, and the smallest of them, which
 * bounds what may be forgotten (invariant 4 of the public header).
 *
 * Invariants:
 *   1. A stored version only grows: es_manifest_ack_put writes only a
 *      larger one (one statement, so one transaction), and a smaller or
 *      equal one changes nothing and is not an error, since replies may
 *      arrive out of order.
 *   2. A row exists from the first put (even of 0) until its collection
 *      is dropped (ON DELETE CASCADE) or es_manifest_ack_forget; the rows
 *      of a (collection, direction) are the peers that sync it, and
 *      es_manifest_min_ack is the minimum over exactly those.
 *   3. Acknowledgements change no segment or tombstone, so they do not
 *      bump the collection's version.
 */
#include <errno.h>

#include "manifest_impl.h"

int manifest_direction_valid(struct es_manifest *m,
			     enum es_manifest_direction dir)
{
	if (dir == ES_MANIFEST_UP || dir == ES_MANIFEST_DOWN)
		return 0;
	return manifest_fail(m, -EINVAL, "direction %d is not up or down",
			     (int)dir);
}

int manifest_peer_key_valid(struct es_manifest *m, const char *peer)
{
	if (peer && manifest_token_valid(peer, ES_MANIFEST_PEER_MAX) == 0)
		return 0;
	return manifest_fail(m, -EINVAL,
			     "peer key is not 1..%d printable characters",
			     ES_MANIFEST_PEER_MAX);
}

static int key_check(struct es_manifest *m, const char *peer,
		     enum es_manifest_direction dir)
{
	int rc = manifest_peer_key_valid(m, peer);

	return rc ? rc : manifest_direction_valid(m, dir);
}

/* ES_E_MANIFEST_NOTFOUND unless the collection is recorded. */
static int coll_exists(struct es_manifest *m, int64_t collection_id)
{
	struct es_manifest_collection c;

	return es_manifest_collection_get_id(m, collection_id, &c);
}

int es_manifest_ack_get(struct es_manifest *m, const char *peer,
			int64_t collection_id, enum es_manifest_direction dir,
			uint64_t *version)
{
	sqlite3_stmt *st;
	int rc, bad;

	rc = key_check(m, peer, dir);
	if (rc == 0)
		rc = manifest_stmt(m, MS_ACK_GET, &st);
	if (rc == 0)
		rc = manifest_bind_text(m, st, 3, peer);
	if (rc)
		return rc;
	sqlite3_bind_int64(st, 1, collection_id);
	sqlite3_bind_int64(st, 2, dir);
	rc = manifest_step(m, st);
	if (rc < 0)
		return rc;
	if (rc == 0) {
		*version = 0;
		return coll_exists(m, collection_id);
	}
	bad = manifest_column_u64(st, 0, version);
	manifest_release(st);
	if (bad)
		return manifest_fail(m, ES_E_MANIFEST_CORRUPT,
				     "ack version is not a number >= 0");
	return 0;
}

int es_manifest_ack_put(struct es_manifest *m, const char *peer,
			int64_t collection_id, enum es_manifest_direction dir,
			uint64_t version)
{
	sqlite3_stmt *st;
	int rc;

	rc = key_check(m, peer, dir);
	if (rc)
		return rc;
	if (version > INT64_MAX)
		return manifest_fail(m, -ERANGE, "ack version above 2^63 - 1");
	rc = manifest_stmt(m, MS_ACK_PUT, &st);
	if (rc == 0)
		rc = manifest_bind_text(m, st, 3, peer);
	if (rc)
		return rc;
	sqlite3_bind_int64(st, 1, collection_id);
	sqlite3_bind_int64(st, 2, dir);
	sqlite3_bind_int64(st, 4, (sqlite3_int64)version);
	/* One statement: its own transaction. */
	rc = manifest_exec(m, st);
	if (rc == ES_E_MANIFEST_NOTFOUND) /* the foreign key */
		return manifest_fail(m, rc, "no collection with id %lld",
				     (long long)collection_id);
	return rc;
}

int es_manifest_min_ack(struct es_manifest *m, int64_t collection_id,
			enum es_manifest_direction dir, uint64_t *version)
{
	uint64_t count, min = UINT64_MAX;
	sqlite3_stmt *st;
	int rc, bad;

	rc = manifest_direction_valid(m, dir);
	if (rc == 0)
		rc = coll_exists(m, collection_id);
	if (rc == 0)
		rc = manifest_stmt(m, MS_ACK_MIN, &st);
	if (rc)
		return rc;
	sqlite3_bind_int64(st, 1, collection_id);
	sqlite3_bind_int64(st, 2, dir);
	rc = manifest_step(m, st);
	if (rc < 0)
		return rc;
	/* An aggregate has one row; min() of no rows is NULL. */
	bad = rc == 0 || manifest_column_u64(st, 0, &count) ||
	      count > INT32_MAX ||
	      (count > 0 && manifest_column_u64(st, 1, &min));
	manifest_release(st);
	if (bad)
		return manifest_fail(m, ES_E_MANIFEST_CORRUPT,
				     "ack version is not a number >= 0");
	*version = min;
	return (int)count;
}

int es_manifest_ack_forget(struct es_manifest *m, const char *peer)
{
	sqlite3_stmt *st;
	int rc;

	rc = manifest_peer_key_valid(m, peer);
	if (rc == 0)
		rc = manifest_stmt(m, MS_ACK_FORGET, &st);
	if (rc == 0)
		rc = manifest_bind_text(m, st, 1, peer);
	if (rc == 0)
		rc = manifest_exec(m, st);
	if (rc)
		return rc;
	return sqlite3_changes(m->db);
}
