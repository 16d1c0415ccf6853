/*
 * edgesync store: one collection's vectors in one directory, the unit the
 * agent serves and sync ships.
 *
 *   <dir>/wal/              the write-ahead log (wal.h)
 *   <dir>/seg-<id>.ndvs     sealed segments (ndvs.h), immutable
 *   <dir>/seg-<id>.vamana   their indexes (vamana.h), built in background
 *
 * A collection is a set of parts: the growing buffer (inserts land there
 * once their log record is durable; searched exactly), frozen buffers
 * (sealing; immutable; searched exactly) and segments (searched through
 * their index once it is built, exactly until then). Which copy of an id
 * is live is kept in one map, so a search drops superseded and deleted
 * copies wherever they are.
 *
 * The collection does not know the manifest: durable facts go through the
 * catalog callbacks the caller supplies (the agent wires its manifest in),
 * and at open the caller hands back what its catalog recorded.
 *
 * Versions: a write carries the hybrid logical clock of its batch, and
 * keeps it when sealed: a segment records its rows' clocks as runs
 * (clock_runs.h), and a sealed row's version is (its clock, the segment's
 * origin). The larger version wins, for inserts and deletes alike, in
 * memory, at recovery and for segments from peers.
 */
#ifndef EDGESYNC_COLLECTION_H
#define EDGESYNC_COLLECTION_H

#include <stddef.h>
#include <stdint.h>

#include "edgesync/clock_runs.h"
#include "edgesync/distance.h"
#include "edgesync/vamana.h"

#define ES_ORIGIN_MAX 64

/* What the catalog records about a segment, and hands back at open. */
struct es_segment_meta {
	int64_t id;
	uint64_t count;
	uint32_t dim;
	uint64_t size;	   /* NDVS bytes */
	uint32_t checksum; /* NDVS footer CRC32C */
	uint64_t seal_hlc; /* the newest of its rows' clocks */
	char origin[ES_ORIGIN_MAX + 1];
	uint64_t origin_seq; /* the origin's sequence; 0 for local: id */
	uint64_t wal_gen;    /* local log generation it holds; 0 if none */
	int indexed;	     /* its index file is durable */
	uint64_t index_size;
	uint32_t index_checksum;
};

struct es_tombstone {
	uint64_t id;
	uint64_t hlc;
	char origin[ES_ORIGIN_MAX + 1];
};

/*
 * The catalog: how the collection makes facts durable beyond its files.
 * Every callback returns 0 or a negative code and may be called from any
 * thread (the collection never calls two at once for itself).
 */
struct es_collection_catalog {
	/* A fresh segment id, never handed out before. */
	int (*reserve_id)(void *arg, int64_t *id);
	/* The current hybrid logical clock, strictly increasing. */
	int (*hlc_now)(void *arg, uint64_t *hlc);
	/*
	 * A segment file is durable: record it with its rows' clock runs
	 * and the tombstones sealed with it; the record must be durable
	 * when this returns 0.
	 */
	int (*sealed)(void *arg, const struct es_segment_meta *seg,
		      const struct es_clock_run *runs, size_t n_runs,
		      const struct es_tombstone *tombs, size_t n_tombs);
	/*
	 * The clock runs recorded with segment seg, malloc'ed (the
	 * collection frees them); none (*n 0) for a segment recorded
	 * without, whose rows all take its seal_hlc. Required.
	 */
	int (*clocks)(void *arg, const struct es_segment_meta *seg,
		      struct es_clock_run **runs, size_t *n);
	/* An index file is durable: record it. */
	int (*indexed)(void *arg, const struct es_segment_meta *seg);
	/* Work is waiting: call es_collection_maintain soon. */
	void (*wake)(void *arg);
	void *arg;
};

struct es_collection_params {
	uint32_t dim;
	enum es_metric metric;
	uint64_t seal_threshold; /* seal the growing buffer at this size */
	struct es_vamana_build_params build;
	const char *origin;	/* this device's id */
	uint32_t open_segments; /* segment handles kept open when idle */
	/* clock runs a segment may have, 1 .. ES_CLOCK_RUNS_MAX (0: that);
	 * a smaller value is for tests */
	uint32_t clock_runs_max;
};

struct es_collection;

/*
 * es_collection_open opens the collection in dir (creating it if needed)
 * from what the catalog recorded: segs (in the order they were added) and
 * tombs. It checks that each segment file exists with the recorded size,
 * removes files in dir that no record names (and temporary files), and
 * replays the write-ahead log generations no segment holds.
 */
int es_collection_open(struct es_collection **cp, const char *dir,
		       const struct es_collection_params *p,
		       const struct es_collection_catalog *cat,
		       const struct es_segment_meta *segs, size_t n_segs,
		       const struct es_tombstone *tombs, size_t n_tombs);

/* es_collection_close frees everything; no call may be in flight. */
void es_collection_close(struct es_collection *c);

/*
 * es_collection_insert makes n vectors (n x dim, finite) with their ids
 * durable, then visible; returns 0 only after both. Thread-safe; concurrent
 * callers share log syncs.
 */
int es_collection_insert(struct es_collection *c, const uint64_t *ids,
			 const float *vectors, size_t n);
int es_collection_delete(struct es_collection *c, const uint64_t *ids,
			 size_t n);
/* 0 and the vector, or -ENOENT. */
int es_collection_get(struct es_collection *c, uint64_t id, float *out);

struct es_collection_hit {
	uint64_t id;
	float distance;
};

/*
 * es_collection_search: the k nearest live vectors, nearest first, over a
 * consistent snapshot of every part. L is the Vamana search list.
 */
int es_collection_search(struct es_collection *c, const float *query,
			 uint32_t k, uint32_t L,
			 struct es_collection_hit *hits);

/*
 * es_collection_seal turns the growing buffer into a durable segment:
 * freeze (new writes go to a new buffer and log generation), write the
 * NDVS file, record it through the catalog, drop the log generation.
 * With force 0 it seals only at the threshold. Returns once durable.
 */
int es_collection_seal(struct es_collection *c, int force);

/*
 * es_collection_install adds a segment that came from a peer. The caller
 * has verified the file at staged_path against meta (whole-file checksum,
 * dim, count). It is linked into the collection under a fresh id,
 * recorded through catalog->sealed with meta's origin, origin_seq and
 * seal_hlc, its rows' clock runs (none: every row at seal_hlc; else
 * -EINVAL unless es_clock_runs_check passes) and the tombstones, and made
 * visible: each row goes live where its version wins, each tombstone
 * removes older copies. staged_path is left in place for the caller to
 * remove once this returns 0; a crash before the record leaves it whole,
 * so the install can be retried.
 */
int es_collection_install(struct es_collection *c, const char *staged_path,
			  const struct es_segment_meta *meta,
			  const struct es_clock_run *runs, size_t n_runs,
			  const struct es_tombstone *tombs, size_t n_tombs);

/*
 * es_collection_install_indexed installs as es_collection_install, with
 * the segment's index file that came from the same peer: checked whole
 * (as es_collection_adopt_index does) before anything is linked, then
 * linked and recorded through catalog->indexed before the segment is
 * visible, so no index build of it ever starts here. An index refused
 * does not fail the segment: it is installed alone (indexed here later)
 * and *index_rc says why (an ES_E_VAMANA_* code, or -errno); 0 when the
 * index was kept. Returns what es_collection_install returns; both
 * staged files stay for the caller to remove.
 */
int es_collection_install_indexed(
    struct es_collection *c, const char *staged_path,
    const struct es_segment_meta *meta, const struct es_clock_run *runs,
    size_t n_runs, const struct es_tombstone *tombs, size_t n_tombs,
    const char *staged_index, int *index_rc);

/*
 * es_collection_adopt_index takes an index file that came from a peer for
 * the installed segment (origin, origin_seq): the whole file is verified
 * and must have been built from that segment with the collection's
 * metric; it is then linked as the segment's index (staged_path stays
 * for the caller to remove) and recorded through catalog->indexed.
 * Returns 0; 1 if the segment has its index already (built here); -ENOENT
 * if no such segment is installed; an ES_E_VAMANA_* code if the file is
 * damaged or belongs to another segment.
 */
int es_collection_adopt_index(struct es_collection *c, const char *origin,
			      uint64_t origin_seq, const char *staged_path);

/*
 * es_collection_maintain does the background work one step at a time:
 * a seal that is due, then one missing index build, then closing idle
 * segment handles. *more is set when work remains. Call it from one
 * background thread.
 */
int es_collection_maintain(struct es_collection *c, int *more);

struct es_collection_stats {
	uint64_t vectors; /* live */
	uint64_t growing; /* in buffers, not yet sealed */
	uint64_t segments;
	uint64_t indexed;
	uint64_t bytes; /* segment and index files */
	uint64_t open_handles;
};
void es_collection_stats(struct es_collection *c,
			 struct es_collection_stats *s);

/* What es_collection_verify found of one segment. */
struct es_collection_verified {
	uint64_t bytes; /* read: the files that verified */
	int indexed;
	int segment_rc; /* 0, or the ES_E_NDVS_* code of its file */
	int index_rc;	/* 0, or the ES_E_VAMANA_* code of its index */
};

/*
 * es_collection_verify reads segment id's file whole and checks it
 * against its record (CRC32C, size, count, dim), and its index file, if
 * it has one, whole and against the segment and the metric. Returns 0
 * with the findings in *v, or -ENOENT if there is no such segment. Safe
 * beside every other call.
 */
int es_collection_verify(struct es_collection *c, int64_t id,
			 struct es_collection_verified *v);

/* *out malloc'ed copy of the segment list (free() it). */
int es_collection_segments(struct es_collection *c,
			   struct es_segment_meta **out, size_t *n);

#endif
