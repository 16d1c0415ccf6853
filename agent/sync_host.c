/*
 * The engine as sync's host (sync.h): what sync reads comes from the
 * manifest, what it installs goes through the collection, so a received
 * segment follows the same rules as a local seal (collection_install.c).
 * Every manifest call is made under m_mu (engine_impl.h, invariant 2).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edgesync/collection.h"
#include "edgesync/manifest.h"
#include "edgesync/sync.h"
#include "edgesync/vamana.h"
#include "engine_impl.h"

static int host_list_collections(void *arg, struct es_sync_collection **out,
				 size_t *n)
{
	struct es_engine *e = arg;
	struct es_manifest_collection *rows;
	int rc;

	pthread_mutex_lock(&e->m_mu);
	rc = es_manifest_collection_list(e->m, &rows, n);
	pthread_mutex_unlock(&e->m_mu);
	if (rc < 0)
		return rc;
	*out = calloc(*n + 1, sizeof(**out));
	for (size_t i = 0; *out && i < *n; i++) {
		snprintf((*out)[i].name, sizeof((*out)[i].name), "%s",
			 rows[i].name);
		(*out)[i].dim = rows[i].dim;
		(*out)[i].metric = rows[i].metric;
		(*out)[i].flags = rows[i].flags;
		(*out)[i].version = rows[i].version;
	}
	free(rows);
	return *out ? 0 : -ENOMEM;
}

static int host_ensure_collection(void *arg, const struct es_sync_collection *c)
{
	struct es_engine *e = arg;
	struct es_collection_info info;
	int rc = es_engine_collection_info(e, c->name, &info);

	if (rc == ES_E_ENGINE_NOCOLL) {
		rc = es_engine_collection_create(
		    e, c->name, c->dim, (enum es_metric)c->metric, c->flags);
		if (rc == ES_E_ENGINE_EXISTS) /* a racing create */
			rc = es_engine_collection_info(e, c->name, &info);
		else
			return rc;
	}
	if (rc < 0)
		return rc;
	if (info.dim != c->dim || (uint32_t)info.metric != c->metric)
		return ES_E_SYNC_MISMATCH;
	return 0;
}

/* The manifest id of a collection by name, under m_mu. */
static int coll_id(struct es_engine *e, const char *name, int64_t *id)
{
	struct es_manifest_collection row;
	int rc = es_manifest_collection_get(e->m, name, &row);

	if (rc == 0)
		*id = row.id;
	return rc == ES_E_MANIFEST_NOTFOUND ? ES_E_ENGINE_NOCOLL : rc;
}

static int host_list_segments(void *arg, const char *coll, uint64_t since,
			      struct es_sync_segment **out, size_t *n)
{
	struct es_engine *e = arg;
	struct es_manifest_segment *rows = NULL;
	size_t n_rows = 0, k = 0;
	int64_t id = 0;
	int rc;

	pthread_mutex_lock(&e->m_mu);
	rc = coll_id(e, coll, &id);
	if (rc == 0)
		rc = es_manifest_segment_list(e->m, id, since, &rows, &n_rows);
	pthread_mutex_unlock(&e->m_mu);
	if (rc < 0)
		return rc;
	*out = calloc(n_rows + 1, sizeof(**out));
	for (size_t i = 0; *out && i < n_rows; i++) {
		struct es_sync_segment *s = &(*out)[k];

		/* the list holds segments changed since; sync wants added */
		if (rows[i].state == ES_SEGMENT_SUPERSEDED ||
		    rows[i].add_version <= since)
			continue;
		s->id = rows[i].id;
		snprintf(s->origin, sizeof(s->origin), "%s", rows[i].origin);
		s->origin_seq = rows[i].origin_seq;
		s->seal_hlc = rows[i].seal_hlc;
		s->count = rows[i].count;
		s->dim = rows[i].dim;
		s->size = rows[i].size;
		s->checksum = rows[i].checksum;
		s->add_version = rows[i].add_version;
		/* the manifest keeps the footer's CRC: the whole file's
		 * follows from it without reading the index */
		if (rows[i].state == ES_SEGMENT_INDEXED) {
			s->index_size = rows[i].index_size;
			s->index_checksum =
			    es_vamana_file_crc(rows[i].index_checksum);
		}
		k++;
	}
	free(rows);
	*n = k;
	return *out ? 0 : -ENOMEM;
}

static int host_segment_tombstones(void *arg, const char *coll,
				   uint64_t add_version,
				   struct es_sync_tombstone **out, size_t *n)
{
	struct es_engine *e = arg;
	struct es_manifest_tombstone *rows = NULL;
	int64_t id = 0;
	int rc;

	*n = 0;
	pthread_mutex_lock(&e->m_mu);
	rc = coll_id(e, coll, &id);
	if (rc == 0)
		rc = es_manifest_segment_tombstones(e->m, id, add_version,
						    &rows, n);
	pthread_mutex_unlock(&e->m_mu);
	if (rc < 0)
		return rc;
	*out = calloc(*n + 1, sizeof(**out));
	for (size_t i = 0; *out && i < *n; i++) {
		(*out)[i].id = rows[i].id;
		(*out)[i].hlc = rows[i].hlc;
		snprintf((*out)[i].origin, sizeof((*out)[i].origin), "%s",
			 rows[i].origin);
	}
	free(rows);
	return *out ? 0 : -ENOMEM;
}

static int host_segment_clocks(void *arg, const char *coll,
			       uint64_t add_version, struct es_clock_run **out,
			       size_t *n)
{
	struct es_engine *e = arg;
	int64_t id = 0;
	int rc;

	*out = NULL;
	*n = 0;
	pthread_mutex_lock(&e->m_mu);
	rc = coll_id(e, coll, &id);
	if (rc == 0)
		rc = es_manifest_segment_clocks_at(e->m, id, add_version, out,
						   n);
	pthread_mutex_unlock(&e->m_mu);
	return rc;
}

/* The path of file ext ("ndvs", "vamana") of segment seg_id in coll. */
static int seg_file(struct es_engine *e, const char *coll, int64_t seg_id,
		    const char *ext, char **path)
{
	int64_t id = 0;
	int rc;

	pthread_mutex_lock(&e->m_mu);
	rc = coll_id(e, coll, &id);
	pthread_mutex_unlock(&e->m_mu);
	if (rc < 0)
		return rc;
	if (asprintf(path, "%s/collections/%lld/seg-%lld.%s", e->data_dir,
		     (long long)id, (long long)seg_id, ext) < 0)
		return -ENOMEM;
	return 0;
}

static int host_segment_path(void *arg, const char *coll, int64_t seg_id,
			     char **path)
{
	return seg_file(arg, coll, seg_id, "ndvs", path);
}

/* Only an index the manifest records (list_segments said so) is served;
 * it is never rewritten once recorded. */
static int host_index_path(void *arg, const char *coll, int64_t seg_id,
			   char **path)
{
	return seg_file(arg, coll, seg_id, "vamana", path);
}

static int host_has_segment(void *arg, const char *coll, const char *origin,
			    uint64_t origin_seq, uint32_t *checksum)
{
	struct es_engine *e = arg;
	struct es_manifest_segment s;
	int64_t id = 0;
	int rc;

	pthread_mutex_lock(&e->m_mu);
	rc = coll_id(e, coll, &id);
	if (rc == 0)
		rc = es_manifest_segment_find(e->m, id, origin, origin_seq, &s);
	pthread_mutex_unlock(&e->m_mu);
	/* a collection not there yet holds nothing (sync.h) */
	if (rc == ES_E_MANIFEST_NOTFOUND || rc == ES_E_ENGINE_NOCOLL)
		return 0;
	if (rc == 0 && checksum)
		*checksum = s.checksum;
	return rc < 0 ? rc : 1;
}

/* install and install_indexed (index NULL: none). */
static int install(struct es_engine *e, const char *coll,
		   const char *staged_path, const char *index,
		   const struct es_sync_segment *seg,
		   const struct es_sync_tombstone *tombs, size_t n,
		   const struct es_clock_run *clocks, size_t n_clocks,
		   int *index_rc)
{
	struct coll_entry *ce = engine_coll_ref(e, coll);
	struct es_tombstone *t = NULL;
	struct es_segment_meta m = {0};
	int rc = 0;

	if (!ce)
		return ES_E_ENGINE_NOCOLL;
	if (seg->count && !n_clocks)
		rc = -EINVAL; /* sync gives every segment of rows its runs */
	if (rc == 0 && n && !(t = calloc(n, sizeof(*t))))
		rc = -ENOMEM;
	for (size_t i = 0; rc == 0 && i < n; i++) {
		t[i].id = tombs[i].id;
		t[i].hlc = tombs[i].hlc;
		snprintf(t[i].origin, sizeof(t[i].origin), "%s",
			 tombs[i].origin);
	}
	m.count = seg->count;
	m.dim = seg->dim;
	m.size = seg->size;
	m.checksum = seg->checksum;
	m.seal_hlc = seg->seal_hlc;
	snprintf(m.origin, sizeof(m.origin), "%s", seg->origin);
	m.origin_seq = seg->origin_seq;
	if (rc == 0 && index)
		rc = es_collection_install_indexed(ce->c, staged_path, &m,
						   clocks, n_clocks, t, n,
						   index, index_rc);
	else if (rc == 0)
		rc = es_collection_install(ce->c, staged_path, &m, clocks,
					   n_clocks, t, n);
	engine_coll_unref(ce);
	free(t);
	if (rc == 0)
		engine_log(
		    e, ES_LOG_INFO,
		    "collection %s: installed segment %s/%llu from a "
		    "peer (%llu vectors, %zu tombstones, %zu clock runs%s)",
		    coll, seg->origin, (unsigned long long)seg->origin_seq,
		    (unsigned long long)seg->count, n, n_clocks,
		    index && !*index_rc ? ", with its peer's index" : "");
	return rc;
}

static int host_install(void *arg, const char *coll, const char *staged_path,
			const struct es_sync_segment *seg,
			const struct es_sync_tombstone *tombs, size_t n,
			const struct es_clock_run *clocks, size_t n_clocks)
{
	return install(arg, coll, staged_path, NULL, seg, tombs, n, clocks,
		       n_clocks, NULL);
}

static int host_install_indexed(void *arg, const char *coll,
				const char *staged_path, const char *index,
				const struct es_sync_segment *seg,
				const struct es_sync_tombstone *tombs, size_t n,
				const struct es_clock_run *clocks,
				size_t n_clocks, int *index_rc)
{
	return install(arg, coll, staged_path, index, seg, tombs, n, clocks,
		       n_clocks, index_rc);
}

static int host_ack_get(void *arg, const char *peer, const char *coll,
			enum es_sync_direction dir, uint64_t *version)
{
	struct es_engine *e = arg;
	int64_t id = 0;
	int rc;

	pthread_mutex_lock(&e->m_mu);
	rc = coll_id(e, coll, &id);
	if (rc == 0)
		rc = es_manifest_ack_get(
		    e->m, peer, id, (enum es_manifest_direction)dir, version);
	pthread_mutex_unlock(&e->m_mu);
	return rc;
}

static int host_ack_put(void *arg, const char *peer, const char *coll,
			enum es_sync_direction dir, uint64_t version)
{
	struct es_engine *e = arg;
	int64_t id = 0;
	int rc;

	pthread_mutex_lock(&e->m_mu);
	rc = coll_id(e, coll, &id);
	if (rc == 0)
		rc = es_manifest_ack_put(
		    e->m, peer, id, (enum es_manifest_direction)dir, version);
	pthread_mutex_unlock(&e->m_mu);
	return rc;
}

static int host_hlc_observe(void *arg, uint64_t remote_hlc)
{
	struct es_engine *e = arg;
	int rc;

	pthread_mutex_lock(&e->m_mu);
	rc = es_manifest_hlc_observe(e->m, remote_hlc);
	pthread_mutex_unlock(&e->m_mu);
	return rc;
}

/*
 * A device that proved its identity but is not in allow-devices: recorded
 * as seen (an edge awaiting approval until `edgesync peers approve`), and
 * answered from the row written, in the same transaction.
 */
static int host_device_approved(void *arg, const char *device)
{
	struct es_engine *e = arg;
	struct es_manifest_peer p = {.role = ES_MANIFEST_EDGE};
	int rc;

	if (strlen(device) > ES_MANIFEST_DEVICE_MAX)
		return -EINVAL;
	memcpy(p.device, device, strlen(device) + 1);
	pthread_mutex_lock(&e->m_mu);
	rc = es_manifest_peer_upsert(e->m, &p);
	pthread_mutex_unlock(&e->m_mu);
	if (rc < 0)
		return rc;
	if (!p.approved && p.first_seen_ms == p.last_seen_ms)
		engine_log(e, ES_LOG_WARN,
			   "sync: device %s is new and not approved: "
			   "`edgesync peers approve %s` admits it",
			   device, device);
	return p.approved ? 1 : 0;
}

static void host_log(void *arg, int level, const char *msg)
{
	engine_log(arg, (enum es_log_level)level, "sync: %s", msg);
}

void es_engine_sync_host(struct es_engine *e, struct es_sync_host *h)
{
	memset(h, 0, sizeof(*h));
	h->list_collections = host_list_collections;
	h->ensure_collection = host_ensure_collection;
	h->list_segments = host_list_segments;
	h->segment_tombstones = host_segment_tombstones;
	h->segment_clocks = host_segment_clocks;
	h->segment_path = host_segment_path;
	h->has_segment = host_has_segment;
	h->install = host_install;
	h->install_indexed = host_install_indexed;
	h->index_path = host_index_path;
	h->ack_get = host_ack_get;
	h->ack_put = host_ack_put;
	h->hlc_observe = host_hlc_observe;
	h->device_approved = host_device_approved;
	h->log = host_log;
	h->arg = e;
}
