/*
 * The engine's side of sync for the API: attaching the running sync, the
 * peers' status (on a cloud with the edges still awaiting approval, from
 * the manifest), approving and revoking devices, and sync-now. The lock
 * that keeps sync from stopping under these calls (sync_lock) is in
 * engine_impl.h.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edgesync/manifest.h"
#include "edgesync/sync.h"
#include "engine.h"
#include "engine_impl.h"

/*
 * sync_lock: detaching (NULL) waits for the status and sync-now calls in
 * flight, so es_sync_stop after it never frees what they use.
 */
void es_engine_attach_sync(struct es_engine *e, struct es_sync *s)
{
	pthread_rwlock_wrlock(&e->sync_lock);
	e->sync = s;
	pthread_rwlock_unlock(&e->sync_lock);
}

/*
 * Appends to *out the manifest's edges that nobody approved and that are
 * not in it yet (sync saw them refused in an earlier run, or never).
 */
static int add_awaiting(struct es_engine *e, struct es_sync_peer_status **out,
			size_t *n)
{
	struct es_manifest_peer *rows = NULL;
	struct es_sync_peer_status *grown;
	size_t n_rows = 0, k = *n;
	int rc;

	pthread_mutex_lock(&e->m_mu);
	rc = es_manifest_peer_list(e->m, &rows, &n_rows);
	pthread_mutex_unlock(&e->m_mu);
	if (rc < 0)
		return rc;
	grown = realloc(*out, (k + n_rows + 1) * sizeof(**out));
	if (!grown) {
		free(rows);
		return -ENOMEM;
	}
	*out = grown;
	for (size_t i = 0; i < n_rows; i++) {
		size_t j;

		if (rows[i].approved || rows[i].role != ES_MANIFEST_EDGE)
			continue;
		for (j = 0; j < *n; j++)
			if (!strcmp(grown[j].device, rows[i].device))
				break;
		if (j < *n)
			continue; /* sync knows it better */
		memset(&grown[k], 0, sizeof(grown[k]));
		snprintf(grown[k].peer, sizeof(grown[k].peer), "%s",
			 rows[i].device);
		snprintf(grown[k].device, sizeof(grown[k].device), "%s",
			 rows[i].device);
		grown[k].awaiting_approval = 1;
		k++;
	}
	free(rows);
	*n = k;
	return 0;
}

int es_engine_peers(struct es_engine *e, struct es_sync_peer_status **out,
		    size_t *n)
{
	int rc = ES_E_ENGINE_NOSYNC, cloud = 0;

	*out = NULL;
	*n = 0;
	pthread_rwlock_rdlock(&e->sync_lock);
	if (e->sync) {
		rc = es_sync_status(e->sync, out, n);
		cloud = es_sync_role(e->sync) == ES_SYNC_CLOUD;
	}
	pthread_rwlock_unlock(&e->sync_lock);
	if (rc == 0 && cloud)
		rc = add_awaiting(e, out, n);
	if (rc < 0) {
		free(*out);
		*out = NULL;
		*n = 0;
	}
	return rc;
}

/* 1 if s is a device id: 1..64 of ASCII 0x21..0x7e. */
static int device_valid(const char *s)
{
	size_t n = strnlen(s, ES_MANIFEST_DEVICE_MAX + 1);

	if (n == 0 || n > ES_MANIFEST_DEVICE_MAX)
		return 0;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e)
			return 0;
	return 1;
}

/* The manifest side of es_engine_peer_approve, under m_mu. */
static int approve_row(struct es_engine *e, const char *device, int approved)
{
	struct es_manifest_peer p = {.role = ES_MANIFEST_EDGE};
	int rc = es_manifest_peer_get(e->m, device, &p);

	if (rc == ES_E_MANIFEST_NOTFOUND && approved) {
		memset(&p, 0, sizeof(p));
		p.role = ES_MANIFEST_EDGE;
		snprintf(p.device, sizeof(p.device), "%s", device);
		rc = es_manifest_peer_upsert(e->m, &p);
	}
	if (rc < 0)
		return rc;
	if (p.approved == approved)
		return 0;
	return es_manifest_peer_approve(e->m, device, approved);
}

int es_engine_peer_approve(struct es_engine *e, const char *device,
			   int approved)
{
	int rc = ES_E_ENGINE_NOSYNC;

	if (!device || !device_valid(device))
		return ES_E_ENGINE_ARG;
	approved = !!approved;
	/* held throughout: sync cannot stop under es_sync_device_approval */
	pthread_rwlock_rdlock(&e->sync_lock);
	if (e->sync && es_sync_role(e->sync) != ES_SYNC_CLOUD)
		rc = ES_E_ENGINE_NOTCLOUD;
	else if (e->sync) {
		pthread_mutex_lock(&e->m_mu);
		rc = approve_row(e, device, approved);
		pthread_mutex_unlock(&e->m_mu);
		if (rc == 0)
			rc = es_sync_device_approval(e->sync, device, approved);
	}
	pthread_rwlock_unlock(&e->sync_lock);
	if (rc >= 0)
		engine_log(e, ES_LOG_INFO, "sync: device %s %s%s", device,
			   approved ? "approved" : "revoked",
			   rc == 1 ? " (allow-devices admits it anyway)" : "");
	return rc;
}

int es_engine_sync_now(struct es_engine *e)
{
	int rc = ES_E_ENGINE_NOSYNC;

	pthread_rwlock_rdlock(&e->sync_lock);
	if (e->sync) {
		es_sync_now(e->sync);
		rc = 0;
	}
	pthread_rwlock_unlock(&e->sync_lock);
	return rc;
}
