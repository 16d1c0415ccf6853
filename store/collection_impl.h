/*
 * Private to the store: the state of a collection, shared by
 * collection.c (open, recovery, writes), collection_seal.c (seal, index,
 * handles) and collection_search.c.
 *
 * Locks, always taken in this order:
 *   seal_mu   one seal at a time (the background thread or a flush)
 *   index_mu  one index build at a time
 *   ingest    rwlock: inserts and deletes hold it shared from log append
 *             to apply; a freeze holds it exclusively, so a log generation
 *             holds exactly the writes of the buffer frozen with it
 *   state     rwlock: searches and gets hold it shared; applying a write
 *             and swapping parts hold it exclusively
 *   part->mu  a segment's open handles and searchers
 *
 * Invariants (under state):
 *   1. live maps every visible id to (handle << 32 | row) of the one part
 *      row holding its newest version; an id without an entry is absent.
 *   2. A buffer row is alive exactly when live points at it.
 *   3. tombs maps every deleted id to the hlc of its newest delete, and no
 *      live version of it is older than that.
 *   4. parts[growing] is a buffer; parts[frozen] is a buffer or frozen is
 *      PART_NONE; every other non-NULL part is a segment, listed in
 *      segments[] in the order it was added.
 */
#ifndef EDGESYNC_COLLECTION_IMPL_H
#define EDGESYNC_COLLECTION_IMPL_H

#include <pthread.h>
#include <stdatomic.h>

#include "edgesync/collection.h"
#include "edgesync/ndvs.h"
#include "edgesync/vamana.h"
#include "edgesync/wal.h"
#include "idmap.h"
#include "membuf.h"

#define PART_NONE UINT32_MAX

enum part_kind { PART_BUFFER, PART_SEGMENT };

struct part {
	enum part_kind kind;
	struct membuf buf;	     /* PART_BUFFER */
	struct es_segment_meta meta; /* PART_SEGMENT */
	struct es_clock_run *runs;   /* PART_SEGMENT: its rows' clocks */
	size_t n_runs;
	atomic_uint_fast64_t dead; /* its rows no longer live */
	char *path;		   /* seg-<id>.ndvs */
	char *index_path;	   /* seg-<id>.vamana */
	pthread_mutex_t mu;
	unsigned refs;		 /* searches using the handles */
	uint64_t last_used;	 /* collection tick of the last release */
	struct es_ndvs *ndvs;	 /* opened lazily */
	struct es_vamana *index; /* opened lazily once indexed */
	struct es_vamana_searcher **idle;
	size_t n_idle, cap_idle;
};

struct es_collection {
	char *dir;
	struct es_collection_params p;
	char origin[ES_ORIGIN_MAX + 1];
	struct es_collection_catalog cat;
	es_distance_fn dist;
	struct es_wal *wal;
	pthread_mutex_t seal_mu;
	pthread_mutex_t index_mu;
	pthread_rwlock_t ingest;
	pthread_rwlock_t state;
	struct part **parts;
	uint32_t n_parts;
	uint32_t growing;
	uint32_t frozen;
	uint64_t frozen_gen; /* log generation of the frozen buffer */
	uint64_t frozen_hlc; /* the seal clock, taken at the freeze */
	uint32_t *segments;
	uint32_t n_segments, cap_segments;
	struct idmap live;
	struct idmap tombs;
	atomic_uint_fast64_t tick; /* counts handle releases, for LRU */
};

static inline uint64_t loc_pack(uint32_t handle, uint64_t row)
{
	return (uint64_t)handle << 32 | row;
}

static inline uint32_t loc_part(uint64_t loc)
{
	return (uint32_t)(loc >> 32);
}

static inline uint32_t loc_row(uint64_t loc)
{
	return (uint32_t)loc;
}

/*
 * A growing buffer is due to seal at seal_threshold live rows, or at
 * clock_runs_max writes: its rows are sealed grouped by write, one clock
 * run per write, and a segment may have at most that many runs (a seal
 * that comes later than due merges runs: see collection_seal.c).
 */
static inline int coll_buffer_full(const struct es_collection *c,
				   const struct membuf *b)
{
	return b->live >= c->p.seal_threshold ||
	       b->writes >= c->p.clock_runs_max;
}

/* collection.c */
int coll_part_add(struct es_collection *c, struct part *pt, uint32_t *h);
/*
 * Gives segment part pt (its meta set) its rows' clocks: a copy of runs,
 * or one run at its seal_hlc when there are none; -EINVAL if runs is not
 * a valid list for it (es_clock_runs_check).
 */
int coll_part_set_runs(struct part *pt, const struct es_clock_run *runs,
		       size_t n);
void coll_part_free(struct part *pt);
struct part *coll_segment_part(struct es_collection *c,
			       const struct es_segment_meta *m);
/*
 * coll_wins says whether a copy of id with version (hlc, origin) beats
 * its tombstone and its live copy (returned in *cur, or ES_IDMAP_NONE).
 * coll_set_live makes loc id's live copy, killing the buffer row cur.
 */
int coll_wins(const struct es_collection *c, uint64_t id, uint64_t hlc,
	      const char *origin, uint64_t *cur);
int coll_set_live(struct es_collection *c, uint64_t id, uint64_t loc,
		  uint64_t cur);
/* coll_kill: the copy at loc stops being live (buffer row or segment). */
void coll_kill(struct es_collection *c, uint64_t loc);
/* A delete at hlc: removes an older live copy, remembers the tombstone. */
int coll_apply_tombstone(struct es_collection *c, uint64_t id, uint64_t hlc);
/* The ids of the segment file at path, checked against its record. */
int coll_read_ids(const char *path, const struct es_segment_meta *m,
		  uint32_t dim, uint64_t **ids);
/* Rows of segment part h go live where their version wins (state held). */
int coll_rows_live(struct es_collection *c, uint32_t h, const uint64_t *ids);

/* collection_verify.c */
/* The index at path, checked whole (ES_VAMANA_OPEN_VERIFY: every field,
 * the graph, the CRC32C), against the segment m and the metric. */
int coll_index_check(struct es_collection *c, const struct es_segment_meta *m,
		     const char *path, struct es_vamana_info *info);

/* collection_seal.c: segment handles */
/*
 * Records m (indexed, with its index's size and checksum) and shows it.
 * When the record fails, the caller keeps the index file: a manifest
 * commit that reported an error may still have reached the disk (its
 * fsync failed) and come back after a crash, naming the file; one that
 * did not leaves a file that the next open removes (remove_strays), and
 * until then the segment stays unindexed here and is built again.
 */
int coll_mark_indexed(struct es_collection *c, const struct es_segment_meta *m);
int coll_part_acquire(struct es_collection *c, struct part *pt);
void coll_part_release(struct es_collection *c, struct part *pt);
int coll_searcher_get(struct part *pt, struct es_vamana_searcher **s);
void coll_searcher_put(struct part *pt, struct es_vamana_searcher *s);
void coll_part_close_handles(struct part *pt);

#endif
