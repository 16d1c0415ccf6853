/*
 * Peers: the other agents this one has seen, one row per device id, with
 * their role, where they were last reached or came from, the identity
 * they presented, whether an operator approved them, and when they were
 * first and last seen.
 *
 *   es_manifest_peer_upsert   (none) -> row (approved 0); row -> row
 *   es_manifest_peer_approve  approved 0 <-> 1 (an operator's decision)
 *
 * Invariants:
 *   1. Only es_manifest_peer_approve changes approved: whatever a peer
 *      says about itself (upsert) never approves it.
 *   2. first_seen is written once, at insert; last_seen only grows, so
 *      first_seen <= last_seen in every row (a row that breaks it, or
 *      any other field check, is reported as corruption).
 *   3. Upsert and the read of the stored row are one transaction, so the
 *      row returned is the row written.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "manifest_impl.h"

/* Columns of PEER_COLS (sql.c), in order. */
enum peer_col {
	P_DEVICE,
	P_ROLE,
	P_ADDRESS,
	P_IDENTITY,
	P_APPROVED,
	P_FIRST,
	P_LAST,
};

/* 0 if s is 0..max characters of 0x21..0x7e (an address). */
static int address_valid(const char *s)
{
	return s[0] == '\0' ? 0
			    : manifest_token_valid(s, ES_MANIFEST_ADDRESS_MAX);
}

/* 0 if s is 0..max bytes with no control character (an identity). */
static int identity_valid(const char *s)
{
	size_t len = strnlen(s, ES_MANIFEST_IDENTITY_MAX + 1);

	if (len > ES_MANIFEST_IDENTITY_MAX)
		return -EINVAL;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] == 0x7f)
			return -EINVAL;
	return 0;
}

static int role_valid(uint64_t role)
{
	return role == ES_MANIFEST_EDGE || role == ES_MANIFEST_CLOUD ? 0
								     : -EINVAL;
}

/* Column i as text of a stored row, or NULL if it is not text. */
static const char *column_text(sqlite3_stmt *st, int i)
{
	if (sqlite3_column_type(st, i) != SQLITE_TEXT)
		return NULL;
	return (const char *)sqlite3_column_text(st, i);
}

/* Reads the current row (PEER_COLS) of st into p, checking every field. */
static int peer_read(struct es_manifest *m, sqlite3_stmt *st,
		     struct es_manifest_peer *p)
{
	const char *device = column_text(st, P_DEVICE);
	const char *address = column_text(st, P_ADDRESS);
	const char *identity = column_text(st, P_IDENTITY);
	uint64_t role, approved;
	int bad;

	memset(p, 0, sizeof(*p));
	bad = manifest_column_u64(st, P_ROLE, &role) |
	      manifest_column_u64(st, P_APPROVED, &approved) |
	      manifest_column_u64(st, P_FIRST, &p->first_seen_ms) |
	      manifest_column_u64(st, P_LAST, &p->last_seen_ms);
	if (bad || !device || !address || !identity ||
	    manifest_device_valid(device) || address_valid(address) ||
	    identity_valid(identity) || role_valid(role) || approved > 1 ||
	    p->first_seen_ms > p->last_seen_ms)
		return manifest_fail(m, ES_E_MANIFEST_CORRUPT,
				     "peer row has a bad field");
	strcpy(p->device, device);
	strcpy(p->address, address);
	strcpy(p->identity, identity);
	p->role = (enum es_manifest_role)role;
	p->approved = (int)approved;
	return 0;
}

/* Steps st for one peer row. */
static int peer_one(struct es_manifest *m, sqlite3_stmt *st,
		    struct es_manifest_peer *p)
{
	int rc = manifest_step(m, st);

	if (rc == 0)
		return manifest_fail(m, ES_E_MANIFEST_NOTFOUND, "no such peer");
	if (rc < 0)
		return rc;
	rc = peer_read(m, st, p);
	manifest_release(st);
	return rc;
}

int es_manifest_peer_get(struct es_manifest *m, const char *device,
			 struct es_manifest_peer *p)
{
	sqlite3_stmt *st;
	int rc;

	if (manifest_device_valid(device))
		return manifest_fail(m, ES_E_MANIFEST_NOTFOUND, "no such peer");
	rc = manifest_stmt(m, MS_PEER_GET, &st);
	if (rc == 0)
		rc = manifest_bind_text(m, st, 1, device);
	return rc ? rc : peer_one(m, st, p);
}

static int upsert_check(struct es_manifest *m, const struct es_manifest_peer *p)
{
	if (manifest_device_valid(p->device))
		return manifest_fail(m, -EINVAL, "bad peer device id");
	if (role_valid(p->role))
		return manifest_fail(m, -EINVAL, "bad peer role");
	if (address_valid(p->address))
		return manifest_fail(m, -EINVAL, "bad peer address");
	if (identity_valid(p->identity))
		return manifest_fail(m, -EINVAL, "bad peer identity");
	if (p->last_seen_ms > INT64_MAX)
		return manifest_fail(m, -ERANGE, "peer last seen above 2^63");
	return 0;
}

static int upsert_tx(struct es_manifest *m, const struct es_manifest_peer *p,
		     uint64_t seen, struct es_manifest_peer *out)
{
	sqlite3_stmt *st;
	int rc;

	rc = manifest_stmt(m, MS_PEER_UPSERT, &st);
	if (rc == 0)
		rc = manifest_bind_text(m, st, 1, p->device);
	if (rc == 0)
		rc = manifest_bind_text(m, st, 3, p->address);
	if (rc == 0)
		rc = manifest_bind_text(m, st, 4, p->identity);
	if (rc) {
		manifest_release(st);
		return rc;
	}
	sqlite3_bind_int64(st, 2, p->role);
	sqlite3_bind_int64(st, 5, (sqlite3_int64)seen);
	rc = manifest_exec(m, st);
	return rc ? rc : es_manifest_peer_get(m, p->device, out);
}

int es_manifest_peer_upsert(struct es_manifest *m, struct es_manifest_peer *p)
{
	struct es_manifest_peer row;
	uint64_t seen;
	int rc;

	rc = upsert_check(m, p);
	if (rc)
		return rc;
	seen = p->last_seen_ms ? p->last_seen_ms : manifest_now_ms(m);
	if (seen > INT64_MAX)
		seen = INT64_MAX;
	rc = manifest_begin(m);
	if (rc)
		return rc;
	rc = upsert_tx(m, p, seen, &row);
	if (rc == 0)
		rc = manifest_commit(m);
	if (rc) {
		manifest_rollback(m);
		return rc;
	}
	*p = row;
	return 0;
}

int es_manifest_peer_list(struct es_manifest *m, struct es_manifest_peer **out,
			  size_t *n)
{
	struct es_manifest_peer *arr = NULL;
	size_t cap = 0, count = 0;
	sqlite3_stmt *st = NULL;
	int rc;

	*out = NULL;
	*n = 0;
	rc = manifest_stmt(m, MS_PEER_LIST, &st);
	while (rc == 0 && (rc = manifest_step(m, st)) == 1) {
		rc = manifest_grow((void **)&arr, &cap, count, sizeof(*arr));
		if (rc == 0)
			rc = peer_read(m, st, &arr[count++]);
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

int es_manifest_peer_approve(struct es_manifest *m, const char *device,
			     int approved)
{
	sqlite3_stmt *st;
	int rc;

	if (manifest_device_valid(device))
		return manifest_fail(m, ES_E_MANIFEST_NOTFOUND, "no such peer");
	if (approved != 0 && approved != 1)
		return manifest_fail(m, -EINVAL, "approved is 0 or 1");
	rc = manifest_stmt(m, MS_PEER_APPROVE, &st);
	if (rc == 0)
		rc = manifest_bind_text(m, st, 1, device);
	if (rc)
		return rc;
	sqlite3_bind_int64(st, 2, approved);
	/* One statement: its own transaction. */
	rc = manifest_exec(m, st);
	if (rc)
		return rc;
	if (sqlite3_changes(m->db) == 0)
		return manifest_fail(m, ES_E_MANIFEST_NOTFOUND,
				     "no peer %s was ever seen", device);
	return 0;
}
