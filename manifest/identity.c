/*
 * This data directory's identity: the device id, created once from
 * getrandom() and kept in the meta table, and the state the clock
 * (hlc.c) resumes from.
 */
#include <errno.h>
#include <string.h>
#include <sys/random.h>

#include "manifest_impl.h"

#define DEVICE_ID_BYTES 16 /* 32 hex digits */

int manifest_token_valid(const char *s, size_t max)
{
	size_t len = strnlen(s, max + 1);

	if (len == 0 || len > max)
		return -EINVAL;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f)
			return -EINVAL;
	return 0;
}

int manifest_device_valid(const char *s)
{
	return manifest_token_valid(s, ES_MANIFEST_DEVICE_MAX);
}

static int random_bytes(unsigned char *buf, size_t len)
{
	size_t got = 0;

	while (got < len) {
		ssize_t n = getrandom(buf + got, len - got, 0);

		if (n < 0 && errno != EINTR)
			return -errno;
		if (n > 0)
			got += (size_t)n;
	}
	return 0;
}

static int device_id_create(struct es_manifest *m)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char raw[DEVICE_ID_BYTES];
	sqlite3_stmt *st;
	int rc;

	rc = random_bytes(raw, sizeof(raw));
	if (rc)
		return manifest_fail(m, rc, "getrandom failed");
	for (size_t i = 0; i < sizeof(raw); i++) {
		m->device_id[2 * i] = hex[raw[i] >> 4];
		m->device_id[2 * i + 1] = hex[raw[i] & 15];
	}
	m->device_id[2 * sizeof(raw)] = '\0';
	rc = manifest_stmt(m, MS_META_PUT, &st);
	if (rc == 0)
		rc = manifest_bind_text(m, st, 1, META_DEVICE_ID);
	if (rc == 0)
		rc = manifest_bind_text(m, st, 2, m->device_id);
	if (rc == 0)
		rc = manifest_exec(m, st);
	return rc;
}

/* Inside a transaction: reads the device id, creating it the first time. */
static int device_id_load(struct es_manifest *m)
{
	const unsigned char *text;
	sqlite3_stmt *st;
	int rc;

	rc = manifest_stmt(m, MS_META_GET, &st);
	if (rc == 0)
		rc = manifest_bind_text(m, st, 1, META_DEVICE_ID);
	if (rc == 0)
		rc = manifest_step(m, st);
	if (rc == 0)
		return device_id_create(m);
	if (rc < 0)
		return rc;
	text = sqlite3_column_text(st, 0);
	rc = -EINVAL;
	if (sqlite3_column_type(st, 0) == SQLITE_TEXT && text)
		rc = manifest_device_valid((const char *)text);
	if (rc == 0)
		strcpy(m->device_id, (const char *)text);
	manifest_release(st);
	if (rc)
		return manifest_fail(m, ES_E_MANIFEST_CORRUPT,
				     "stored device id is not 1..%d printable "
				     "characters",
				     ES_MANIFEST_DEVICE_MAX);
	return 0;
}

int manifest_identity_load(struct es_manifest *m)
{
	uint64_t ceiling = 0;
	int rc;

	rc = manifest_begin(m);
	if (rc)
		return rc;
	rc = device_id_load(m);
	if (rc == 0)
		rc = manifest_meta_get_u64(m, META_HLC_CEILING, &ceiling);
	if (rc >= 0)
		rc = manifest_commit(m);
	if (rc) {
		manifest_rollback(m);
		return rc;
	}
	/* Every HLC issued before was <= the ceiling: resume above it. */
	m->hlc_ceiling = ceiling;
	m->hlc_last = ceiling;
	return 0;
}

const char *es_manifest_device_id(const struct es_manifest *m)
{
	return m->device_id;
}
