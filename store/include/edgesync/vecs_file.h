/*
 * edgesync store: reading texmex .fvecs and .ivecs files, where every
 * record is an int32 dimension followed by that many 4-byte values
 * (float32 for .fvecs, int32 for .ivecs), all little-endian.
 *
 * es_vecs_open checks that the file is whole records of the first
 * record's dimension; es_vecs_read checks each record's dimension as it
 * goes and, for float files, that every value is finite.
 */
#ifndef EDGESYNC_VECS_FILE_H
#define EDGESYNC_VECS_FILE_H

#include <stddef.h>
#include <stdint.h>

#define ES_VECS_MAX_DIM 65536

enum es_vecs_kind {
	ES_VECS_FLOAT, /* .fvecs */
	ES_VECS_INT,   /* .ivecs */
};

struct es_vecs;

/* es_vecs_open opens path; 0 or a negative code (ES_E_VECS_* or errno). */
int es_vecs_open(struct es_vecs **vp, const char *path, enum es_vecs_kind kind);
void es_vecs_close(struct es_vecs *v);

uint32_t es_vecs_dim(const struct es_vecs *v);
uint64_t es_vecs_count(const struct es_vecs *v);

/*
 * es_vecs_read reads up to n next records into dst (n * dim values) and
 * returns how many it read (0 at the end), or a negative code; then
 * es_vecs_position() is the index of the record that was wrong.
 */
long es_vecs_read(struct es_vecs *v, void *dst, size_t n);
uint64_t es_vecs_position(const struct es_vecs *v);

/*
 * es_vecs_load reads a whole file into a malloc'ed array (free() it) of
 * *count x *dim values.
 */
int es_vecs_load(const char *path, enum es_vecs_kind kind, void **data,
		 uint32_t *dim, uint64_t *count);

#endif
