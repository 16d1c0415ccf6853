/*
 * Private to the store: the vector file readers behind vecs_file.h, one
 * per format (vecs_file.c .fvecs/.ivecs and what they share, vecs_npy.c,
 * vecs_csv.c).
 *
 * Invariants: dim is 1 to ES_VECS_MAX_DIM and count at least 1 once a
 * reader's open succeeded; pos <= count; a reader's read is called with
 * 1 <= n <= count - pos and, when it fails, leaves pos at the record that
 * was wrong and fills loc.
 */
#ifndef EDGESYNC_VECS_IMPL_H
#define EDGESYNC_VECS_IMPL_H

#include <sys/types.h>

#include "edgesync/vecs_file.h"

#define VECS_READ_BUF (4u << 20)

struct vecs_ops {
	/* Reads n records into dst (and ids if the file has them). */
	long (*read)(struct es_vecs *v, void *dst, uint64_t *ids, size_t n);
	void (*fini)(struct es_vecs *v);
};

struct es_vecs {
	const struct vecs_ops *ops;
	int fd;
	enum es_vecs_kind kind;
	enum es_vecs_format format;
	uint32_t dim;
	uint64_t count;
	uint64_t pos; /* records consumed */
	int has_ids;
	struct es_vecs_loc loc; /* of the last failure */
	/* binary formats: record i at data_off + i * rec_size */
	off_t data_off;
	size_t rec_size;
	unsigned char *buf;
	/* checks one record and converts it to dst; sets loc.column */
	int (*take)(struct es_vecs *v, const unsigned char *rec, void *dst);
	void *impl; /* the reader's own state */
};

/* Each reader's open: v->fd is open on a regular file of size bytes. */
int vecs_npy_open(struct es_vecs *v, uint64_t size);
int vecs_csv_open(struct es_vecs *v, uint64_t size, unsigned flags);

/* Sets up v->buf and v->ops to read the records of a binary format. */
int vecs_binary_init(struct es_vecs *v);

#endif
