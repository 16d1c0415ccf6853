/*
 * Private to the store: what the Vamana search shares between files: the
 * whole-file checks (in vamana_format.c, beside the header checks) and
 * the bounded candidate list both search regimes walk with.
 */
#ifndef EDGESYNC_VAMANA_INDEX_H
#define EDGESYNC_VAMANA_INDEX_H

#include <stdint.h>
#include <string.h>

#include "vamana_format.h"

/*
 * vamana_check_record checks one node record: degree at most R and every
 * neighbour row below num_nodes; with strict, also every slot past the
 * degree 0xFFFFFFFF. Returns 0 or ES_E_VAMANA_GRAPH.
 */
int vamana_check_record(const struct vamana_layout *l, const unsigned char *rec,
			int strict);

/*
 * vamana_file_verify runs the checks `index verify` runs: the CRC32C of
 * every byte before the footer against checksum, then every node record
 * strictly. Reads through map when not NULL (the whole file), else with
 * pread from fd. Returns 0, ES_E_VAMANA_CHECKSUM, ES_E_VAMANA_GRAPH or a
 * read error.
 */
int vamana_file_verify(int fd, const unsigned char *map,
		       const struct vamana_layout *l, uint32_t checksum);

/*
 * A candidate list: at most cap entries sorted by (dist, row), a total
 * order, so the list after a set of insertions does not depend on their
 * order (the io_uring and pread searches agree exactly). Every entry
 * before cursor is expanded.
 */
struct vamana_cand {
	float dist;
	uint32_t row;
	uint32_t done;
};

struct vamana_list {
	struct vamana_cand *c; /* cap + 1 entries */
	uint32_t n, cap, cursor;
};

static inline void vamana_list_reset(struct vamana_list *l, uint32_t cap)
{
	l->n = 0;
	l->cap = cap;
	l->cursor = 0;
}

static inline int vamana_cand_before(float d, uint32_t row,
				     const struct vamana_cand *c)
{
	return d < c->dist || (d == c->dist && row < c->row);
}

/* vamana_list_rejects: 1 if (d, row) cannot enter the (full) list. */
static inline int vamana_list_rejects(const struct vamana_list *l, float d,
				      uint32_t row)
{
	return l->n == l->cap && !vamana_cand_before(d, row, &l->c[l->n - 1]);
}

/* Inserts (d, row) unexpanded unless the list rejects it. */
static inline void vamana_list_insert(struct vamana_list *l, float d,
				      uint32_t row)
{
	uint32_t lo = 0, hi = l->n;

	if (vamana_list_rejects(l, d, row))
		return;
	while (lo < hi) {
		uint32_t mid = (lo + hi) / 2;

		if (vamana_cand_before(d, row, &l->c[mid]))
			hi = mid;
		else
			lo = mid + 1;
	}
	memmove(&l->c[lo + 1], &l->c[lo], (l->n - lo) * sizeof(l->c[0]));
	l->c[lo].dist = d;
	l->c[lo].row = row;
	l->c[lo].done = 0;
	if (l->n < l->cap)
		l->n++;
	if (lo < l->cursor)
		l->cursor = lo;
}

/* Index of the best unexpanded entry, or l->n if there is none. */
static inline uint32_t vamana_list_next(struct vamana_list *l)
{
	while (l->cursor < l->n && l->c[l->cursor].done)
		l->cursor++;
	return l->cursor;
}

#endif
