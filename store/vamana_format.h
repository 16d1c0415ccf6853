/*
 * Private to the store: the Vamana index file layout (vamana_format.md),
 * the one place that knows where each byte goes. The build writes through
 * vamana_file_write(); the search and verify read through
 * vamana_header_parse() and vamana_node_offset().
 */
#ifndef EDGESYNC_VAMANA_FORMAT_H
#define EDGESYNC_VAMANA_FORMAT_H

#include <stdint.h>

#include "edgesync/pq.h"
#include "edgesync/vamana.h"

struct vamana_layout {
	struct es_vamana_info info; /* the header's fields */
	uint32_t node_size;	    /* 4*dim + 4 + 4*R */
	uint32_t nodes_per_sector;  /* 0 when a node needs several */
	uint32_t sectors_per_node;  /* 1 unless nodes_per_sector is 0 */
	uint64_t nodes_offset;	    /* 4096 */
	uint64_t nodes_bytes;	    /* whole sectors */
	uint64_t ids_offset;
	uint64_t pq_offset;
	uint64_t pq_codebook_bytes;
	uint64_t codes_offset;
	uint64_t footer_offset; /* file_size - 16 */
};

/*
 * vamana_layout_compute derives every size and offset (and
 * info.file_size) from info.dim, info.R, info.num_nodes and info.pq_m.
 * Returns 0 or ES_E_VAMANA_PARAM (zero or out-of-range values, overflow).
 */
int vamana_layout_compute(struct vamana_layout *l);

void vamana_header_pack(unsigned char hdr[ES_VAMANA_HEADER_SIZE],
			const struct vamana_layout *l);

/*
 * vamana_header_parse checks every header field and that the file size
 * is the one they imply; fills l. Returns 0 or an ES_E_VAMANA_* code.
 */
int vamana_header_parse(const unsigned char *hdr, uint64_t file_size,
			struct vamana_layout *l);

void vamana_footer_pack(unsigned char ftr[ES_VAMANA_FOOTER_SIZE],
			uint32_t checksum);
int vamana_footer_parse(const unsigned char *ftr, uint32_t *checksum);

/* Byte offset of node row's record in the file. */
static inline uint64_t vamana_node_offset(const struct vamana_layout *l,
					  uint64_t row)
{
	if (l->nodes_per_sector)
		return l->nodes_offset +
		       (row / l->nodes_per_sector) * ES_VAMANA_SECTOR +
		       (row % l->nodes_per_sector) * l->node_size;
	return l->nodes_offset + row * l->sectors_per_node * ES_VAMANA_SECTOR;
}

/* The aligned read that brings node row: its first byte and its length. */
static inline uint64_t vamana_node_read_offset(const struct vamana_layout *l,
					       uint64_t row)
{
	return vamana_node_offset(l, row) & ~(uint64_t)(ES_VAMANA_SECTOR - 1);
}

static inline uint32_t vamana_node_read_len(const struct vamana_layout *l)
{
	return l->sectors_per_node * ES_VAMANA_SECTOR;
}

/*
 * vamana_file_write writes a whole index crash-safely to path: l (from
 * vamana_layout_compute, with every info field set), vectors (num_nodes x
 * dim, normalized for cosine), adjacency (num_nodes x R rows; entries past
 * degree[i] ignored), ids (num_nodes), the PQ codebook and codes
 * (num_nodes x pq_m). The checksum is computed while writing.
 */
int vamana_file_write(const char *path, struct vamana_layout *l,
		      const float *vectors, const uint32_t *adjacency,
		      const uint32_t *degree, const uint64_t *ids,
		      const struct es_pq *pq, const uint8_t *codes);

#endif
