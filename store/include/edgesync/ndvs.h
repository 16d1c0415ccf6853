/*
 * edgesync store: NDVS vector segments, format version 1, byte-compatible
 * with NodeDB (spec/ndvs.md). A segment is immutable once written:
 *
 *   [header 32][vectors 4*D*N][pad 0|4][ids 8*N][footer 46]
 *
 * all little-endian; the footer's CRC32C covers every byte before it.
 *
 * When the full checksum runs: the writer computes it while writing (never
 * reading back); es_ndvs_verify() and ES_NDVS_OPEN_VERIFY run it over the
 * whole file (used by `edgesync segment verify`, by sync before installing
 * a segment from a peer, and by `edgesync verify`). A plain open, the one queries use,
 * checks every header and footer field, the exact size and the pad in O(1)
 * and leaves the body to those full checks.
 *
 * The footer's created_by is outside the checksum, so edgesync stamps its
 * own: "edgesync <version>#<tag>", tag being 8 lowercase hex digits of the
 * CRC32C of the text before '#'. A reader checks the tag of any created_by
 * that ends in one and refuses one that starts with "edgesync" without it,
 * so no single flipped bit anywhere in an edgesync segment goes unnoticed.
 * Other writers' names are accepted as any NUL-padded printable ASCII.
 */
#ifndef EDGESYNC_NDVS_H
#define EDGESYNC_NDVS_H

#include <stddef.h>
#include <stdint.h>

#define ES_NDVS_HEADER_SIZE	32
#define ES_NDVS_FOOTER_SIZE	46
#define ES_NDVS_FORMAT_VERSION	1
#define ES_NDVS_CREATED_BY_SIZE 32 /* field size; at most 31 characters */

/* What a segment's header and footer say. */
struct es_ndvs_info {
	uint32_t dim;
	uint64_t count;
	uint64_t file_size;
	uint32_t pad;	     /* 0 or 4 bytes between vectors and ids */
	uint64_t ids_offset; /* byte offset of the id block */
	uint32_t checksum;   /* the footer's CRC32C */
	char created_by[ES_NDVS_CREATED_BY_SIZE]; /* NUL-terminated */
};

/*
 * es_ndvs_file_size stores in *size the byte size of a segment of count
 * vectors of dim floats. Returns 0, or -EOVERFLOW if it exceeds 2^63.
 */
int es_ndvs_file_size(uint32_t dim, uint64_t count, uint64_t *size);

/*
 * es_ndvs_check_image validates a whole segment held in memory, checksum
 * included, and fills info (if not NULL) with as much as it read, even on
 * failure. Returns 0 or an ES_E_NDVS_* code.
 */
int es_ndvs_check_image(const void *buf, size_t len, struct es_ndvs_info *info);

/* ---- writing ---------------------------------------------------------- */

struct es_ndvs_writer;

/*
 * es_ndvs_writer_open starts a segment of count vectors of dim floats that
 * will appear at path. It writes to a temporary file in path's directory;
 * path itself is untouched until es_ndvs_writer_commit succeeds. The
 * writer holds the ids (8 bytes each) in memory until the commit.
 */
int es_ndvs_writer_open(struct es_ndvs_writer **wp, const char *path,
			uint32_t dim, uint64_t count);

/*
 * es_ndvs_writer_add appends n vectors (n * dim floats, row-major) and their
 * ids. Returns 0, -EINVAL past count, or a write error.
 */
int es_ndvs_writer_add(struct es_ndvs_writer *w, const float *vectors,
		       const uint64_t *ids, size_t n);

/*
 * es_ndvs_writer_commit writes pad, ids and footer, fsyncs the file, renames
 * it to path and fsyncs the directory. Once it returns 0 the segment is
 * durable. Whatever it returns, w is freed (and its temporary file removed
 * on failure). info, if not NULL, receives the segment's description.
 */
int es_ndvs_writer_commit(struct es_ndvs_writer *w, struct es_ndvs_info *info);

/* es_ndvs_writer_abort removes the temporary file and frees w. */
void es_ndvs_writer_abort(struct es_ndvs_writer *w);

/* es_ndvs_write writes a whole segment from memory in one call. */
int es_ndvs_write(const char *path, uint32_t dim, uint64_t count,
		  const float *vectors, const uint64_t *ids,
		  struct es_ndvs_info *info);

/* ---- reading ---------------------------------------------------------- */

enum es_ndvs_open_flags {
	ES_NDVS_OPEN_PREAD = 1 << 0,  /* read with pread, no mapping */
	ES_NDVS_OPEN_VERIFY = 1 << 1, /* run the full checksum at open */
};

struct es_ndvs;

/*
 * es_ndvs_open opens and validates the segment at path. By default it maps
 * the file (MADV_RANDOM) so es_ndvs_row() gives rows without copying; with
 * ES_NDVS_OPEN_PREAD it keeps only a descriptor and reads with pread.
 * info, if not NULL, receives what was read even when the open fails, so a
 * caller can say what was wrong. Returns 0 or a negative code.
 */
int es_ndvs_open(struct es_ndvs **segp, const char *path, unsigned flags,
		 struct es_ndvs_info *info);

/* es_ndvs_close unmaps and closes seg; pointers from es_ndvs_row die. */
void es_ndvs_close(struct es_ndvs *seg);

/* es_ndvs_get_info describes seg; valid until es_ndvs_close. */
const struct es_ndvs_info *es_ndvs_get_info(const struct es_ndvs *seg);

/* es_ndvs_verify runs the full checksum now: 0 or ES_E_NDVS_CHECKSUM. */
int es_ndvs_verify(struct es_ndvs *seg);

/*
 * es_ndvs_row returns vector row of a mapped segment (dim floats, valid
 * until es_ndvs_close), or NULL for a pread segment or a row out of range.
 */
const float *es_ndvs_row(const struct es_ndvs *seg, uint64_t row);

/*
 * es_ndvs_read_rows copies rows [first, first + n) into dst (n * dim
 * floats); es_ndvs_read_ids copies their ids. Both work in either mode.
 * Return 0, -ERANGE past the end, or a read error.
 */
int es_ndvs_read_rows(const struct es_ndvs *seg, uint64_t first, uint64_t n,
		      float *dst);
int es_ndvs_read_ids(const struct es_ndvs *seg, uint64_t first, uint64_t n,
		     uint64_t *dst);

#endif
