/*
 * edgesync store: the Vamana (DiskANN) index of one NDVS segment, its file
 * (store/vamana_format.md), its build and its search.
 *
 * Build: medoid entry, random start graph, two passes (alpha 1, then the
 * configured alpha), reverse edges with re-pruning, in batches whose
 * searches run in parallel against a frozen graph and whose updates are
 * applied in a fixed order, so the result depends on the seed only, never
 * on the thread count. Then PQ codes for the in-memory steering.
 *
 * Search has two regimes (es_vamana_open flags):
 *   memory  the file is mapped; the walk scores neighbours with their full
 *           vectors, as an in-memory graph does. For indexes that fit.
 *   disk    only ids and PQ codes are in memory; the walk scores
 *           neighbours from their codes and reads nodes through io_uring
 *           (one aligned read each, bringing vector and neighbours): the
 *           best candidate alone while the walk descends, the W best
 *           unexpanded ones once it has arrived; it re-ranks the
 *           candidates with the full vectors those reads brought. pread
 *           replaces io_uring where the kernel refuses it; O_DIRECT on
 *           request; an optional cache keeps the nodes nearest the entry.
 */
#ifndef EDGESYNC_VAMANA_H
#define EDGESYNC_VAMANA_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "edgesync/distance.h"
#include "edgesync/ndvs.h"

#define ES_VAMANA_FORMAT_VERSION 1
#define ES_VAMANA_SECTOR	 4096
#define ES_VAMANA_HEADER_SIZE	 4096
#define ES_VAMANA_FOOTER_SIZE	 16
#define ES_VAMANA_NO_NEIGHBOUR	 0xFFFFFFFFu
#define ES_VAMANA_MAX_K		 1000
#define ES_VAMANA_MAX_L		 4096
#define ES_VAMANA_MAX_W		 64

/* Index errors, in the store's reserved range (store_error.h). */
enum es_vamana_err {
	ES_E_VAMANA_SHORT = -5050,    /* smaller than header + footer */
	ES_E_VAMANA_MAGIC = -5051,    /* header or footer magic wrong */
	ES_E_VAMANA_VERSION = -5052,  /* unsupported format version */
	ES_E_VAMANA_HEADER = -5053,   /* header fields inconsistent */
	ES_E_VAMANA_SIZE = -5054,     /* file size disagrees with header */
	ES_E_VAMANA_FOOTER = -5055,   /* footer_size wrong */
	ES_E_VAMANA_CHECKSUM = -5056, /* CRC32C mismatch */
	ES_E_VAMANA_GRAPH = -5057,    /* a degree or neighbour out of range */
	ES_E_VAMANA_SEGMENT = -5058,  /* index names another segment */
	ES_E_VAMANA_PARAM = -5059,    /* a build or search parameter invalid */
};

/* ---- build ------------------------------------------------------------ */

struct es_vamana_build_params {
	uint32_t R;	  /* max out-degree, default 64 */
	uint32_t L;	  /* build search list, default 100 */
	float alpha;	  /* second-pass alpha, default 1.2 */
	unsigned threads; /* 0: every core */
	enum es_metric metric;
	uint64_t seed;	     /* default 1 */
	uint32_t pq_m;	     /* PQ bytes per vector; 0: min(dim, 64) */
	uint64_t segment_id; /* recorded in the header; 0 offline */
	/* Called from the building thread with work done out of total. */
	void (*progress)(void *arg, uint64_t done, uint64_t total);
	void *progress_arg;
	/* If set and nonzero, the build gives up at its next batch or step
	 * (an agent stopping): -ECANCELED, nothing written. */
	const atomic_int *stop;
};

/* es_vamana_build_defaults fills p with the defaults above. */
void es_vamana_build_defaults(struct es_vamana_build_params *p);

/*
 * es_vamana_build builds the index of the segment at segment_path and
 * writes it crash-safely (temporary file, fsync, rename, directory fsync)
 * to out_path. Returns 0 or a negative code (-ECANCELED: p->stop).
 */
int es_vamana_build(const char *segment_path, const char *out_path,
		    const struct es_vamana_build_params *p);

/* ---- open, verify ----------------------------------------------------- */

enum es_vamana_open_flags {
	ES_VAMANA_OPEN_MEMORY = 1 << 0, /* map the file, exact walk */
	ES_VAMANA_OPEN_DIRECT = 1 << 1, /* disk regime with O_DIRECT */
	ES_VAMANA_OPEN_PREAD = 1 << 2,	/* disk regime without io_uring */
	ES_VAMANA_OPEN_VERIFY = 1 << 3, /* full checksum and graph check */
};

/* What an index file's header says. */
struct es_vamana_info {
	enum es_metric metric;
	uint32_t dim, R, build_L, pq_m;
	float alpha;
	uint64_t num_nodes, entry, seed, file_size;
	uint64_t segment_id, segment_count, segment_size;
	uint32_t segment_checksum, checksum;
};

struct es_vamana;

/*
 * es_vamana_open opens the index at path. cache_nodes (disk regime) keeps
 * that many nodes nearest the entry (breadth-first) in memory. info, if
 * not NULL, receives the header even when the open fails.
 */
int es_vamana_open(struct es_vamana **vp, const char *path, unsigned flags,
		   uint32_t cache_nodes, struct es_vamana_info *info);
void es_vamana_close(struct es_vamana *v);
const struct es_vamana_info *es_vamana_get_info(const struct es_vamana *v);

/* es_vamana_match: 0 if the index was built from that segment. */
int es_vamana_match(const struct es_vamana_info *info,
		    const struct es_ndvs_info *segment);

/*
 * es_vamana_file_crc: the CRC32C of a whole index file whose footer
 * checksum (es_vamana_info.checksum: every byte before the footer) is
 * checksum. The footer follows from it, so this costs no I/O.
 */
uint32_t es_vamana_file_crc(uint32_t checksum);

/* es_vamana_uses_uring: 1 if disk reads go through io_uring. */
int es_vamana_uses_uring(const struct es_vamana *v);

/* ---- search ----------------------------------------------------------- */

struct es_vamana_hit {
	uint64_t id;	/* the user's id, from the segment */
	uint32_t row;	/* row in the segment */
	float distance; /* in the metric's sense: smaller is closer */
};

struct es_vamana_stats {
	uint32_t reads; /* sector reads issued (disk regime) */
	uint32_t hops;	/* nodes expanded */
	uint32_t cmps;	/* distances computed (full or PQ) */
};

/*
 * A searcher holds one thread's scratch space and, in the disk regime, its
 * io_uring ring and read buffers. Use one per thread; any number of
 * searchers share one es_vamana.
 */
struct es_vamana_searcher;
int es_vamana_searcher_create(struct es_vamana *v,
			      struct es_vamana_searcher **sp);
void es_vamana_searcher_destroy(struct es_vamana_searcher *s);

/*
 * es_vamana_search finds the k (1..1000) nearest rows to query (dim
 * floats; normalized inside for cosine) with search list L (>= k) and W
 * reads in flight (1..64, disk regime). Writes up to k hits, nearest
 * first, and returns how many, or a negative code. stats may be NULL.
 */
int es_vamana_search(struct es_vamana_searcher *s, const float *query,
		     uint32_t k, uint32_t L, uint32_t W,
		     struct es_vamana_hit *hits, struct es_vamana_stats *stats);

#endif
