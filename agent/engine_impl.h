/*
 * Private to the agent: the engine's state, shared by engine.c,
 * engine_peers.c (sync's status and admission for the API) and
 * sync_host.c (the engine as sync's host).
 *
 * Invariants:
 *   1. Every collection in colls[] has a manifest row and a directory;
 *      at open, a directory without a row (a drop cut short) is removed.
 *   2. The manifest handle is used under m_mu only (one connection).
 *   3. A coll_entry is freed only after it left colls[] and its last
 *      reference was dropped (refs, under refs_mu).
 *   4. The background thread is the only caller of es_collection_maintain.
 */
#ifndef EDGESYNC_ENGINE_IMPL_H
#define EDGESYNC_ENGINE_IMPL_H

#include <pthread.h>
#include <stdatomic.h>

#include "edgesync/collection.h"
#include "edgesync/manifest.h"
#include "engine.h"

struct coll_entry {
	struct es_engine *e;
	struct es_manifest_collection row;
	struct es_collection *c;
	unsigned refs; /* under e->refs_mu */
	int dropped;
};

struct es_engine {
	struct es_engine_config cfg;
	char *data_dir;
	struct es_manifest *m;
	pthread_mutex_t m_mu;
	pthread_rwlock_t colls_lock; /* the array */
	pthread_mutex_t refs_mu;
	pthread_cond_t refs_cv;
	struct coll_entry **colls;
	size_t n_colls;
	int lock_fd; /* DATA_DIR/lock, flock'ed while open; -1: none */
	/* Set at close: an index build in progress gives up (it is built
	 * again at the next start), so that stopping does not wait for it. */
	atomic_int stop_builds;
	pthread_t maint;
	int maint_started;
	pthread_mutex_t maint_mu;
	pthread_cond_t maint_cv;
	int maint_wake;
	int stopping;
	atomic_uint_fast64_t inserts, searches;
	char device_id[65];
	pthread_rwlock_t sync_lock; /* sync: written by attach only */
	struct es_sync *sync; /* set once sync runs; status and sync-now */
};

/* A log line from any thread, through the configured callback. */
void engine_log(struct es_engine *e, enum es_log_level level, const char *fmt,
		...) __attribute__((format(printf, 3, 4)));

/* Finds name and takes a reference (NULL if absent); drop it with unref. */
struct coll_entry *engine_coll_ref(struct es_engine *e, const char *name);
void engine_coll_unref(struct coll_entry *ce);

#endif
