/*
 * Private to the store: an in-memory buffer of vectors, the growing part
 * of a collection and, once frozen for sealing, an immutable one. Row r
 * holds ids[r], the hlc of the write, its vector and whether it is still
 * the live copy of its id. An id appears in at most one row: a second
 * write of it overwrites that row. Deletes applied while the buffer grew
 * are kept as tombstones, to be sealed with it. Not thread-safe.
 */
#ifndef EDGESYNC_MEMBUF_H
#define EDGESYNC_MEMBUF_H

#include <stdint.h>

#include "edgesync/collection.h"
#include "idmap.h"

struct membuf {
	uint32_t dim;
	uint64_t n, cap;
	uint64_t *ids;
	uint64_t *hlc;
	float *vec;
	uint8_t *alive;
	uint64_t live;	   /* rows with alive set */
	uint64_t writes;   /* puts in a row with one clock count once */
	uint64_t last_hlc; /* the clock of the last put */
	struct idmap rows; /* id -> row */
	struct es_tombstone *tombs;
	uint64_t n_tombs, cap_tombs;
};

void membuf_init(struct membuf *b, uint32_t dim);
void membuf_fini(struct membuf *b);

/* Writes id's vector (new row or the id's row); *row receives it. */
int membuf_put(struct membuf *b, uint64_t id, uint64_t hlc, const float *v,
	       uint64_t *row);
/* Marks row dead (superseded or deleted). */
void membuf_kill(struct membuf *b, uint64_t row);
int membuf_add_tomb(struct membuf *b, const struct es_tombstone *t);

static inline const float *membuf_row(const struct membuf *b, uint64_t row)
{
	return b->vec + row * b->dim;
}

#endif
