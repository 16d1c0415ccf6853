/*
 * The engine: the data directory, its manifest and its collections, and
 * the background thread that seals and indexes.
 *
 *   <data_dir>/manifest.db        the manifest (SQLite)
 *   <data_dir>/collections/<id>/  one collection (collection.h), named by
 *                                 its manifest id, never by its name
 *
 * The state and its invariants are in engine_impl.h.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "edgesync/collection.h"
#include "edgesync/crc32c.h"
#include "edgesync/dirs.h"
#include "edgesync/le.h"
#include "edgesync/manifest.h"
#include "edgesync/store_error.h"
#include "edgesync/sync.h"
#include "engine.h"
#include "engine_impl.h"

void engine_log(struct es_engine *e, enum es_log_level level, const char *fmt,
		...)
{
	char msg[512];
	va_list ap;

	if (!e->cfg.log)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	e->cfg.log(e->cfg.log_arg, level, msg);
}

const char *es_engine_strerror(int err)
{
	switch (err) {
	case ES_E_ENGINE_NOCOLL:
		return "no such collection";
	case ES_E_ENGINE_EXISTS:
		return "collection exists already";
	case ES_E_ENGINE_DIM:
		return "vector has the wrong dimension";
	case ES_E_ENGINE_VALUE:
		return "vector holds a NaN or infinite value";
	case ES_E_ENGINE_NOTFOUND:
		return "no vector with that id";
	case ES_E_ENGINE_ARG:
		return "argument out of range";
	case ES_E_ENGINE_CLOSING:
		return "the agent is shutting down";
	case ES_E_ENGINE_NOSYNC:
		return "this agent does not sync (no role configured)";
	case ES_E_ENGINE_NOTCLOUD:
		return "only a cloud admits devices; this agent is an edge";
	}
	if (err <= -5100 && err > -5200)
		return es_manifest_strerror(err);
	if (err <= -5200 && err > -5300)
		return es_sync_strerror(err);
	return es_store_strerror(err);
}

void es_engine_config_defaults(struct es_engine_config *c)
{
	struct es_vamana_build_params b;

	es_vamana_build_defaults(&b);
	memset(c, 0, sizeof(*c));
	c->data_dir = "/var/lib/edgesync";
	c->seal_threshold = 65536;
	c->index_R = b.R;
	c->index_L = b.L;
	c->index_alpha = b.alpha;
	c->build_threads = 0;
	c->open_segments = 64;
}

/* ---- the catalog: a collection's durable facts, into the manifest ---- */

static int cat_reserve_id(void *arg, int64_t *id)
{
	struct coll_entry *ce = arg;
	int rc;

	pthread_mutex_lock(&ce->e->m_mu);
	rc = es_manifest_segment_reserve(ce->e->m, id);
	pthread_mutex_unlock(&ce->e->m_mu);
	return rc;
}

static int cat_hlc_now(void *arg, uint64_t *hlc)
{
	struct coll_entry *ce = arg;
	int rc;

	pthread_mutex_lock(&ce->e->m_mu);
	rc = es_manifest_hlc_now(ce->e->m, hlc);
	pthread_mutex_unlock(&ce->e->m_mu);
	return rc;
}

static void meta_to_row(const struct coll_entry *ce,
			const struct es_segment_meta *seg,
			struct es_manifest_segment *s)
{
	memset(s, 0, sizeof(*s));
	s->id = seg->id;
	s->collection_id = ce->row.id;
	s->size = seg->size;
	s->checksum = seg->checksum;
	s->count = seg->count;
	s->dim = seg->dim;
	s->state = ES_SEGMENT_SEALED;
	snprintf(s->origin, sizeof(s->origin), "%s", seg->origin);
	s->origin_seq = seg->origin_seq ? seg->origin_seq : (uint64_t)seg->id;
	s->seal_hlc = seg->seal_hlc;
	s->wal_gen = seg->wal_gen;
}

static int cat_sealed(void *arg, const struct es_segment_meta *seg,
		      const struct es_clock_run *runs, size_t n_runs,
		      const struct es_tombstone *tombs, size_t n_tombs)
{
	struct coll_entry *ce = arg;
	struct es_manifest_tombstone *mt = NULL;
	struct es_manifest_segment s;
	int rc;

	if (n_tombs && !(mt = calloc(n_tombs, sizeof(*mt))))
		return -ENOMEM;
	for (size_t i = 0; i < n_tombs; i++) {
		mt[i].id = tombs[i].id;
		mt[i].hlc = tombs[i].hlc;
		snprintf(mt[i].origin, sizeof(mt[i].origin), "%s",
			 tombs[i].origin);
	}
	meta_to_row(ce, seg, &s);
	pthread_mutex_lock(&ce->e->m_mu);
	rc = es_manifest_segment_add_clocked(ce->e->m, &s, runs, n_runs, mt,
					     n_tombs);
	pthread_mutex_unlock(&ce->e->m_mu);
	free(mt);
	if (rc == 0)
		engine_log(
		    ce->e, ES_LOG_INFO,
		    "collection %s: sealed segment %lld (%llu vectors, %llu "
		    "tombstones)",
		    ce->row.name, (long long)seg->id,
		    (unsigned long long)seg->count,
		    (unsigned long long)n_tombs);
	return rc;
}

static int cat_clocks(void *arg, const struct es_segment_meta *seg,
		      struct es_clock_run **runs, size_t *n)
{
	struct coll_entry *ce = arg;
	int rc;

	pthread_mutex_lock(&ce->e->m_mu);
	rc = es_manifest_segment_clocks(ce->e->m, seg->id, runs, n);
	pthread_mutex_unlock(&ce->e->m_mu);
	return rc;
}

static int cat_indexed(void *arg, const struct es_segment_meta *seg)
{
	struct coll_entry *ce = arg;
	int rc;

	pthread_mutex_lock(&ce->e->m_mu);
	rc = es_manifest_segment_set_index(ce->e->m, seg->id, seg->index_size,
					   seg->index_checksum);
	pthread_mutex_unlock(&ce->e->m_mu);
	if (rc == 0)
		engine_log(ce->e, ES_LOG_INFO,
			   "collection %s: segment %lld indexed (%llu bytes)",
			   ce->row.name, (long long)seg->id,
			   (unsigned long long)seg->index_size);
	return rc;
}

static void engine_wake(struct es_engine *e)
{
	pthread_mutex_lock(&e->maint_mu);
	e->maint_wake = 1;
	pthread_cond_signal(&e->maint_cv);
	pthread_mutex_unlock(&e->maint_mu);
}

static void cat_wake(void *arg)
{
	engine_wake(((struct coll_entry *)arg)->e);
}

/* ---- collections ------------------------------------------------------ */

static char *coll_dir(const struct es_engine *e, int64_t id)
{
	char *dir;

	if (asprintf(&dir, "%s/collections/%lld", e->data_dir, (long long)id) <
	    0)
		return NULL;
	return dir;
}

static void params_of(const struct es_engine *e, const struct coll_entry *ce,
		      struct es_collection_params *p)
{
	memset(p, 0, sizeof(*p));
	p->dim = ce->row.dim;
	p->metric = (enum es_metric)ce->row.metric;
	p->seal_threshold = e->cfg.seal_threshold;
	es_vamana_build_defaults(&p->build);
	p->build.R = e->cfg.index_R;
	p->build.L = e->cfg.index_L;
	p->build.alpha = e->cfg.index_alpha;
	p->build.threads = e->cfg.build_threads;
	p->build.stop = &e->stop_builds;
	p->origin = e->device_id;
	p->open_segments = e->cfg.open_segments;
}

/* Reads what the manifest recorded for ce and opens its collection. */
static int coll_open(struct es_engine *e, struct coll_entry *ce)
{
	struct es_collection_catalog cat = {
	    .reserve_id = cat_reserve_id,
	    .hlc_now = cat_hlc_now,
	    .sealed = cat_sealed,
	    .clocks = cat_clocks,
	    .indexed = cat_indexed,
	    .wake = cat_wake,
	    .arg = ce,
	};
	struct es_manifest_segment *rows = NULL;
	struct es_manifest_tombstone *mt = NULL;
	struct es_segment_meta *segs = NULL;
	struct es_tombstone *tombs = NULL;
	struct es_collection_params p;
	size_t n_rows = 0, n_segs = 0, n_tombs = 0;
	char *dir = coll_dir(e, ce->row.id);
	int rc;

	if (!dir)
		return -ENOMEM;
	pthread_mutex_lock(&e->m_mu);
	rc = es_manifest_segment_list(e->m, ce->row.id, 0, &rows, &n_rows);
	if (rc == 0)
		rc = es_manifest_tombstone_list(e->m, ce->row.id, 0, &mt,
						&n_tombs);
	pthread_mutex_unlock(&e->m_mu);
	if (rc == 0 && !(segs = calloc(n_rows + 1, sizeof(*segs))))
		rc = -ENOMEM;
	if (rc == 0 && !(tombs = calloc(n_tombs + 1, sizeof(*tombs))))
		rc = -ENOMEM;
	for (size_t i = 0; rc == 0 && i < n_rows; i++) {
		struct es_segment_meta *s = &segs[n_segs];

		if (rows[i].state == ES_SEGMENT_SUPERSEDED)
			continue;
		s->id = rows[i].id;
		s->count = rows[i].count;
		s->dim = rows[i].dim;
		s->size = rows[i].size;
		s->checksum = rows[i].checksum;
		s->seal_hlc = rows[i].seal_hlc;
		snprintf(s->origin, sizeof(s->origin), "%s", rows[i].origin);
		s->origin_seq = rows[i].origin_seq;
		s->wal_gen = rows[i].wal_gen;
		s->indexed = rows[i].state == ES_SEGMENT_INDEXED;
		s->index_size = rows[i].index_size;
		s->index_checksum = rows[i].index_checksum;
		n_segs++;
	}
	for (size_t i = 0; rc == 0 && i < n_tombs; i++) {
		tombs[i].id = mt[i].id;
		tombs[i].hlc = mt[i].hlc;
		snprintf(tombs[i].origin, sizeof(tombs[i].origin), "%s",
			 mt[i].origin);
	}
	params_of(e, ce, &p);
	if (rc == 0)
		rc = es_collection_open(&ce->c, dir, &p, &cat, segs, n_segs,
					tombs, n_tombs);
	if (rc < 0)
		engine_log(e, ES_LOG_ERROR, "collection %s: cannot open %s: %s",
			   ce->row.name, dir, es_engine_strerror(rc));
	free(rows);
	free(mt);
	free(segs);
	free(tombs);
	free(dir);
	return rc;
}

static int colls_append(struct es_engine *e, struct coll_entry *ce)
{
	struct coll_entry **colls =
	    realloc(e->colls, (e->n_colls + 1) * sizeof(*colls));

	if (!colls)
		return -ENOMEM;
	e->colls = colls;
	e->colls[e->n_colls++] = ce;
	return 0;
}

/* Finds name and takes a reference; NULL if absent. */
struct coll_entry *engine_coll_ref(struct es_engine *e, const char *name)
{
	struct coll_entry *found = NULL;

	pthread_rwlock_rdlock(&e->colls_lock);
	for (size_t i = 0; i < e->n_colls; i++) {
		if (!strcmp(e->colls[i]->row.name, name)) {
			found = e->colls[i];
			pthread_mutex_lock(&e->refs_mu);
			found->refs++;
			pthread_mutex_unlock(&e->refs_mu);
			break;
		}
	}
	pthread_rwlock_unlock(&e->colls_lock);
	return found;
}

void engine_coll_unref(struct coll_entry *ce)
{
	struct es_engine *e = ce->e;

	pthread_mutex_lock(&e->refs_mu);
	if (--ce->refs == 0)
		pthread_cond_broadcast(&e->refs_cv);
	pthread_mutex_unlock(&e->refs_mu);
}

/* Removes a directory tree (ours: flat files and the wal directory). */
static int remove_tree(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *ent;

	if (!d)
		return errno == ENOENT ? 0 : -errno;
	while ((ent = readdir(d)) != NULL) {
		char *child;

		if (!strcmp(ent->d_name, ".") || !strcmp(ent->d_name, ".."))
			continue;
		if (asprintf(&child, "%s/%s", path, ent->d_name) < 0)
			break;
		if (ent->d_type == DT_DIR)
			remove_tree(child);
		else
			unlink(child);
		free(child);
	}
	closedir(d);
	return rmdir(path) < 0 && errno != ENOENT ? -errno : 0;
}

int es_engine_collection_create(struct es_engine *e, const char *name,
				uint32_t dim, enum es_metric metric,
				uint32_t flags)
{
	struct coll_entry *ce;
	struct coll_entry *exists = engine_coll_ref(e, name);
	char *dir;
	int rc;

	if (exists) {
		engine_coll_unref(exists);
		return ES_E_ENGINE_EXISTS;
	}
	if (dim == 0 || dim > 4096 || (unsigned)metric > ES_METRIC_COSINE)
		return ES_E_ENGINE_ARG;
	if (flags == ES_ENGINE_FLAGS_DEFAULT)
		flags = e->cfg.default_flags;
	ce = calloc(1, sizeof(*ce));
	if (!ce)
		return -ENOMEM;
	ce->e = e;
	snprintf(ce->row.name, sizeof(ce->row.name), "%s", name);
	ce->row.dim = dim;
	ce->row.metric = (uint32_t)metric;
	ce->row.flags = flags;
	pthread_rwlock_wrlock(&e->colls_lock);
	pthread_mutex_lock(&e->m_mu);
	rc = es_manifest_collection_create(e->m, &ce->row);
	pthread_mutex_unlock(&e->m_mu);
	if (rc == ES_E_MANIFEST_EXISTS)
		rc = ES_E_ENGINE_EXISTS;
	dir = rc == 0 ? coll_dir(e, ce->row.id) : NULL;
	if (rc == 0 && !dir)
		rc = -ENOMEM;
	if (rc == 0)
		remove_tree(dir); /* a leftover of a crashed drop */
	if (rc == 0)
		rc = coll_open(e, ce);
	if (rc == 0)
		rc = colls_append(e, ce);
	if (rc < 0 && ce->row.id > 0 && rc != ES_E_ENGINE_EXISTS) {
		pthread_mutex_lock(&e->m_mu);
		es_manifest_collection_drop(e->m, name); /* undo the row */
		pthread_mutex_unlock(&e->m_mu);
	}
	pthread_rwlock_unlock(&e->colls_lock);
	free(dir);
	if (rc < 0) {
		es_collection_close(ce->c);
		free(ce);
		return rc;
	}
	engine_log(e, ES_LOG_INFO, "collection %s created (dim %u, %s)", name,
		   dim, es_metric_name(metric));
	return 0;
}

int es_engine_collection_drop(struct es_engine *e, const char *name)
{
	struct coll_entry *ce = NULL;
	char *dir;
	int rc;

	pthread_rwlock_wrlock(&e->colls_lock);
	for (size_t i = 0; i < e->n_colls; i++) {
		if (!strcmp(e->colls[i]->row.name, name)) {
			ce = e->colls[i];
			e->colls[i] = e->colls[--e->n_colls];
			break;
		}
	}
	pthread_rwlock_unlock(&e->colls_lock);
	if (!ce)
		return ES_E_ENGINE_NOCOLL;
	pthread_mutex_lock(&e->refs_mu);
	ce->dropped = 1;
	while (ce->refs)
		pthread_cond_wait(&e->refs_cv, &e->refs_mu);
	pthread_mutex_unlock(&e->refs_mu);
	pthread_mutex_lock(&e->m_mu);
	rc = es_manifest_collection_drop(e->m, name);
	pthread_mutex_unlock(&e->m_mu);
	if (rc) {
		/* Nothing changed on disk: the collection stays, as it was. */
		pthread_mutex_lock(&e->refs_mu);
		ce->dropped = 0;
		pthread_mutex_unlock(&e->refs_mu);
		pthread_rwlock_wrlock(&e->colls_lock);
		if (colls_append(e, ce) == 0)
			ce = NULL;
		pthread_rwlock_unlock(&e->colls_lock);
		if (!ce)
			return rc;
		/* no memory to list it again: closed, and back at restart */
		es_collection_close(ce->c);
		free(ce);
		return rc;
	}
	/* The row is gone, so a crash from here on leaves only files,
	 * which the next start removes (remove_orphans). */
	es_collection_close(ce->c);
	dir = coll_dir(e, ce->row.id);
	if (dir)
		remove_tree(dir);
	free(dir);
	free(ce);
	engine_log(e, ES_LOG_INFO, "collection %s dropped", name);
	return rc;
}

static void info_of(struct coll_entry *ce, struct es_collection_info *info)
{
	struct es_collection_stats s;
	struct es_manifest_collection row;
	struct es_engine *e = ce->e;

	es_collection_stats(ce->c, &s);
	memset(info, 0, sizeof(*info));
	snprintf(info->name, sizeof(info->name), "%s", ce->row.name);
	info->dim = ce->row.dim;
	info->metric = (enum es_metric)ce->row.metric;
	info->flags = ce->row.flags;
	info->vectors = s.vectors;
	info->growing = s.growing;
	info->segments = s.segments;
	info->indexed = s.indexed;
	info->bytes = s.bytes;
	pthread_mutex_lock(&e->m_mu);
	if (es_manifest_collection_get(e->m, ce->row.name, &row) == 0)
		info->version = row.version;
	pthread_mutex_unlock(&e->m_mu);
}

int es_engine_collection_info(struct es_engine *e, const char *name,
			      struct es_collection_info *info)
{
	struct coll_entry *ce = engine_coll_ref(e, name);

	if (!ce)
		return ES_E_ENGINE_NOCOLL;
	info_of(ce, info);
	engine_coll_unref(ce);
	return 0;
}

int es_engine_collection_dim(struct es_engine *e, const char *name,
			     uint32_t *dim)
{
	struct coll_entry *ce = engine_coll_ref(e, name);

	if (!ce)
		return ES_E_ENGINE_NOCOLL;
	*dim = ce->row.dim;
	engine_coll_unref(ce);
	return 0;
}

static int name_cmp(const void *a, const void *b)
{
	return strcmp(((const struct es_collection_info *)a)->name,
		      ((const struct es_collection_info *)b)->name);
}

int es_engine_collection_list(struct es_engine *e,
			      struct es_collection_info **out, size_t *n)
{
	struct coll_entry **refs;
	size_t count;

	pthread_rwlock_rdlock(&e->colls_lock);
	count = e->n_colls;
	refs = calloc(count + 1, sizeof(*refs));
	*out = calloc(count + 1, sizeof(**out));
	for (size_t i = 0; refs && *out && i < count; i++) {
		refs[i] = e->colls[i];
		pthread_mutex_lock(&e->refs_mu);
		refs[i]->refs++;
		pthread_mutex_unlock(&e->refs_mu);
	}
	pthread_rwlock_unlock(&e->colls_lock);
	if (!refs || !*out) {
		free(refs);
		free(*out);
		*out = NULL;
		return -ENOMEM;
	}
	for (size_t i = 0; i < count; i++) {
		info_of(refs[i], &(*out)[i]);
		engine_coll_unref(refs[i]);
	}
	free(refs);
	qsort(*out, count, sizeof(**out), name_cmp);
	*n = count;
	return 0;
}

/* ---- data ------------------------------------------------------------- */

int es_engine_insert(struct es_engine *e, const char *name, const uint64_t *ids,
		     const float *vectors, size_t n, uint32_t dim)
{
	struct coll_entry *ce = engine_coll_ref(e, name);
	int rc;

	if (!ce)
		return ES_E_ENGINE_NOCOLL;
	/* the row's dim is fixed while we hold ce (a drop waits for us) */
	rc = dim == ce->row.dim ? es_collection_insert(ce->c, ids, vectors, n)
				: ES_E_ENGINE_DIM;
	engine_coll_unref(ce);
	if (rc == ES_E_VECS_NONFINITE)
		return ES_E_ENGINE_VALUE;
	if (rc == 0)
		atomic_fetch_add(&e->inserts, n);
	return rc;
}

int es_engine_delete(struct es_engine *e, const char *name, const uint64_t *ids,
		     size_t n)
{
	struct coll_entry *ce = engine_coll_ref(e, name);
	int rc;

	if (!ce)
		return ES_E_ENGINE_NOCOLL;
	rc = es_collection_delete(ce->c, ids, n);
	engine_coll_unref(ce);
	return rc;
}

int es_engine_get(struct es_engine *e, const char *name, uint64_t id,
		  float *out, uint32_t dim)
{
	struct coll_entry *ce = engine_coll_ref(e, name);
	int rc;

	if (!ce)
		return ES_E_ENGINE_NOCOLL;
	rc = dim == ce->row.dim ? es_collection_get(ce->c, id, out)
				: ES_E_ENGINE_DIM;
	engine_coll_unref(ce);
	return rc == -ENOENT ? ES_E_ENGINE_NOTFOUND : rc;
}

int es_engine_search(struct es_engine *e, const char *name, const float *query,
		     uint32_t dim, uint32_t k, uint32_t L,
		     struct es_engine_hit *hits)
{
	struct coll_entry *ce;
	int rc;

	if (k == 0 || k > ES_VAMANA_MAX_K || L > ES_VAMANA_MAX_L)
		return ES_E_ENGINE_ARG;
	ce = engine_coll_ref(e, name);
	if (!ce)
		return ES_E_ENGINE_NOCOLL;
	_Static_assert(sizeof(struct es_engine_hit) ==
			   sizeof(struct es_collection_hit),
		       "hit layouts agree");
	rc = dim == ce->row.dim
		 ? es_collection_search(ce->c, query, k, L,
					(struct es_collection_hit *)hits)
		 : ES_E_ENGINE_DIM;
	engine_coll_unref(ce);
	if (rc >= 0)
		atomic_fetch_add(&e->searches, 1);
	return rc;
}

int es_engine_flush(struct es_engine *e, const char *name)
{
	struct coll_entry *ce = engine_coll_ref(e, name);
	int rc;

	if (!ce)
		return ES_E_ENGINE_NOCOLL;
	rc = es_collection_seal(ce->c, 1);
	engine_coll_unref(ce);
	if (rc == 0)
		engine_wake(e); /* build the new segment's index */
	return rc;
}

/* The number and CRC32C of segment s's clock runs (es_segment_info). */
static int segment_clocks(struct es_engine *e, struct es_segment_info *s)
{
	struct es_clock_run *runs = NULL;
	unsigned char pair[16];
	size_t n = 0;
	int rc;

	pthread_mutex_lock(&e->m_mu);
	rc = es_manifest_segment_clocks(e->m, s->id, &runs, &n);
	pthread_mutex_unlock(&e->m_mu);
	s->clock_runs = n;
	s->clocks_crc = 0;
	for (size_t i = 0; rc == 0 && i < n; i++) {
		le64_store(pair, runs[i].row);
		le64_store(pair + 8, runs[i].hlc);
		s->clocks_crc = es_crc32c(s->clocks_crc, pair, sizeof(pair));
	}
	free(runs);
	return rc;
}

int es_engine_segments(struct es_engine *e, const char *name,
		       struct es_segment_info **out, size_t *n)
{
	struct coll_entry *ce = engine_coll_ref(e, name);
	struct es_segment_meta *segs;
	int rc;

	if (!ce)
		return ES_E_ENGINE_NOCOLL;
	rc = es_collection_segments(ce->c, &segs, n);
	if (rc < 0) {
		engine_coll_unref(ce);
		return rc;
	}
	*out = calloc(*n + 1, sizeof(**out));
	if (!*out)
		rc = -ENOMEM;
	for (size_t i = 0; rc == 0 && i < *n; i++) {
		struct es_segment_info *s = &(*out)[i];

		s->id = segs[i].id;
		s->count = segs[i].count;
		s->size = segs[i].size;
		s->checksum = segs[i].checksum;
		s->indexed = segs[i].indexed;
		s->index_size = segs[i].index_size;
		s->seal_hlc = segs[i].seal_hlc;
		snprintf(s->origin, sizeof(s->origin), "%s", segs[i].origin);
		rc = segment_clocks(e, s);
	}
	engine_coll_unref(ce); /* held: a drop now would take the rows */
	free(segs);
	if (rc < 0) {
		free(*out);
		*out = NULL;
		*n = 0;
	}
	return rc;
}

int es_engine_verify_segment(struct es_engine *e, const char *name, int64_t id,
			     struct es_collection_verified *v)
{
	struct coll_entry *ce = engine_coll_ref(e, name);
	int rc;

	if (!ce)
		return ES_E_ENGINE_NOCOLL;
	rc = es_collection_verify(ce->c, id, v);
	engine_coll_unref(ce);
	return rc;
}

int es_engine_verify_manifest(struct es_engine *e, char *why, size_t size)
{
	int rc;

	pthread_mutex_lock(&e->m_mu);
	rc = es_manifest_check(e->m);
	snprintf(why, size, "%s", rc ? es_manifest_last_error(e->m) : "");
	pthread_mutex_unlock(&e->m_mu);
	return rc;
}

int es_engine_stats(struct es_engine *e, struct es_engine_stats *s)
{
	struct es_collection_info *infos;
	size_t n;
	int rc = es_engine_collection_list(e, &infos, &n);

	if (rc < 0)
		return rc;
	memset(s, 0, sizeof(*s));
	s->collections = n;
	for (size_t i = 0; i < n; i++) {
		s->vectors += infos[i].vectors;
		s->segments += infos[i].segments;
		s->bytes += infos[i].bytes;
		s->seals_pending += infos[i].segments - infos[i].indexed;
	}
	free(infos);
	s->inserts = atomic_load(&e->inserts);
	s->searches = atomic_load(&e->searches);
	snprintf(s->device_id, sizeof(s->device_id), "%s", e->device_id);
	return 0;
}

/* ---- background work ---------------------------------------------------- */

/* One pass over every collection; returns whether work remains. */
static int maintain_all(struct es_engine *e)
{
	int any_more = 0;

	for (size_t i = 0;; i++) {
		struct coll_entry *ce = NULL;
		int more = 0, rc;

		pthread_rwlock_rdlock(&e->colls_lock);
		if (i < e->n_colls) {
			ce = e->colls[i];
			pthread_mutex_lock(&e->refs_mu);
			ce->refs++;
			pthread_mutex_unlock(&e->refs_mu);
		}
		pthread_rwlock_unlock(&e->colls_lock);
		if (!ce)
			break;
		rc = es_collection_maintain(ce->c, &more);
		if (rc == -ECANCELED)
			engine_log(e, ES_LOG_INFO,
				   "collection %s: index build left off, the "
				   "agent is stopping (built again at the next "
				   "start)",
				   ce->row.name);
		else if (rc < 0)
			engine_log(
			    e, ES_LOG_ERROR,
			    "collection %s: background seal or index build "
			    "failed: %s (will retry)",
			    ce->row.name, es_engine_strerror(rc));
		any_more |= more && rc == 0;
		engine_coll_unref(ce);
		if (atomic_load(&e->stop_builds))
			break; /* the others' builds would only start to stop */
	}
	return any_more;
}

static void *maint_main(void *arg)
{
	struct es_engine *e = arg;
	int more = 1;

	pthread_mutex_lock(&e->maint_mu);
	while (!e->stopping) {
		if (!more && !e->maint_wake) {
			struct timespec ts;

			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_sec += 5; /* idle handles close even when quiet */
			pthread_cond_timedwait(&e->maint_cv, &e->maint_mu, &ts);
		}
		e->maint_wake = 0;
		pthread_mutex_unlock(&e->maint_mu);
		more = maintain_all(e);
		pthread_mutex_lock(&e->maint_mu);
	}
	pthread_mutex_unlock(&e->maint_mu);
	return NULL;
}

/* ---- open and close ---------------------------------------------------- */

/* Removes collection directories that no manifest row names. */
static void remove_orphans(struct es_engine *e, const char *root)
{
	DIR *d = opendir(root);
	struct dirent *ent;

	if (!d)
		return;
	while ((ent = readdir(d)) != NULL) {
		char *end, *path;
		long long id = strtoll(ent->d_name, &end, 10);
		int known = 0;

		if (ent->d_name[0] == '.')
			continue;
		for (size_t i = 0; *end == 0 && i < e->n_colls; i++)
			known |= e->colls[i]->row.id == id;
		if (known || asprintf(&path, "%s/%s", root, ent->d_name) < 0)
			continue;
		engine_log(e, ES_LOG_WARN, "removing %s: no collection owns it",
			   path);
		remove_tree(path);
		free(path);
	}
	closedir(d);
}

static int open_collections(struct es_engine *e)
{
	struct es_manifest_collection *rows;
	char *root;
	size_t n;
	int rc = es_manifest_collection_list(e->m, &rows, &n);

	if (rc < 0)
		return rc;
	for (size_t i = 0; rc == 0 && i < n; i++) {
		struct coll_entry *ce = calloc(1, sizeof(*ce));

		if (!ce) {
			rc = -ENOMEM;
			break;
		}
		ce->e = e;
		ce->row = rows[i];
		rc = coll_open(e, ce);
		if (rc == 0)
			rc = colls_append(e, ce);
		if (rc < 0) {
			es_collection_close(ce->c);
			free(ce);
		}
	}
	free(rows);
	if (rc == 0 && asprintf(&root, "%s/collections", e->data_dir) >= 0) {
		rc = es_mkdir_durable(root);
		if (rc == 0)
			remove_orphans(e, root);
		free(root);
	}
	return rc;
}

/*
 * Takes the data directory for this engine: DATA_DIR/lock, flock'ed for
 * as long as it is open. A second agent on the same directory would seal
 * and cut logs the first one still appends to, and writes the first one
 * acknowledged would be lost; it is refused, and told the holder's pid,
 * which the file holds.
 */
static int lock_data_dir(struct es_engine *e)
{
	char *path = NULL, pid[24] = "";
	ssize_t n;
	int fd, err;

	if (asprintf(&path, "%s/lock", e->data_dir) < 0)
		return -ENOMEM;
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	err = errno;
	free(path);
	if (fd < 0)
		return -err;
	if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		err = errno == EWOULDBLOCK ? EBUSY : errno;
		n = pread(fd, pid, sizeof(pid) - 1, 0);
		pid[n > 0 ? n : 0] = '\0';
		pid[strcspn(pid, "\n")] = '\0';
		close(fd);
		if (err == EBUSY)
			engine_log(e, ES_LOG_ERROR,
				   "data directory %s is in use by another "
				   "agent (pid %s)",
				   e->data_dir, *pid ? pid : "unknown");
		return -err;
	}
	n = snprintf(pid, sizeof(pid), "%d\n", (int)getpid());
	if (ftruncate(fd, 0) != 0 || pwrite(fd, pid, (size_t)n, 0) != n) {
		/* the pid is for messages only */
	}
	e->lock_fd = fd;
	return 0;
}

int es_engine_open(struct es_engine **ep, const struct es_engine_config *c)
{
	struct es_engine *e = calloc(1, sizeof(*e));
	char *db = NULL;
	int rc;

	*ep = NULL;
	if (!e)
		return -ENOMEM;
	e->cfg = *c;
	e->lock_fd = -1;
	e->data_dir = strdup(c->data_dir);
	e->cfg.data_dir = e->data_dir;
	pthread_mutex_init(&e->m_mu, NULL);
	pthread_rwlock_init(&e->sync_lock, NULL);
	pthread_rwlock_init(&e->colls_lock, NULL);
	pthread_mutex_init(&e->refs_mu, NULL);
	pthread_cond_init(&e->refs_cv, NULL);
	pthread_mutex_init(&e->maint_mu, NULL);
	pthread_cond_init(&e->maint_cv, NULL);
	if (!e->data_dir || asprintf(&db, "%s/manifest.db", c->data_dir) < 0) {
		db = NULL;
		rc = -ENOMEM;
		goto err;
	}
	rc = es_mkdir_durable(c->data_dir);
	if (rc == 0)
		rc = lock_data_dir(e);
	if (rc < 0)
		goto err;
	rc = es_manifest_open(&e->m, db);
	if (rc < 0)
		goto err;
	snprintf(e->device_id, sizeof(e->device_id), "%s",
		 es_manifest_device_id(e->m));
	rc = open_collections(e);
	if (rc < 0)
		goto err;
	rc = -pthread_create(&e->maint, NULL, maint_main, e);
	if (rc < 0)
		goto err;
	e->maint_started = 1;
	free(db);
	engine_log(e, ES_LOG_INFO,
		   "data directory %s: %zu collections, device %s", c->data_dir,
		   e->n_colls, e->device_id);
	*ep = e;
	return 0;
err:
	free(db);
	es_engine_close(e);
	return rc;
}

const char *es_engine_device_id(struct es_engine *e)
{
	return e->device_id;
}

void es_engine_close(struct es_engine *e)
{
	if (!e)
		return;
	atomic_store(&e->stop_builds, 1);
	if (e->maint_started) {
		pthread_mutex_lock(&e->maint_mu);
		e->stopping = 1;
		pthread_cond_signal(&e->maint_cv);
		pthread_mutex_unlock(&e->maint_mu);
		pthread_join(e->maint, NULL);
	}
	for (size_t i = 0; i < e->n_colls; i++) {
		es_collection_close(e->colls[i]->c);
		free(e->colls[i]);
	}
	free(e->colls);
	es_manifest_close(e->m);
	pthread_mutex_destroy(&e->m_mu);
	pthread_rwlock_destroy(&e->sync_lock);
	pthread_rwlock_destroy(&e->colls_lock);
	pthread_mutex_destroy(&e->refs_mu);
	pthread_cond_destroy(&e->refs_cv);
	pthread_mutex_destroy(&e->maint_mu);
	pthread_cond_destroy(&e->maint_cv);
	if (e->lock_fd >= 0)
		close(e->lock_fd); /* the lock goes with it */
	free(e->data_dir);
	free(e);
}
