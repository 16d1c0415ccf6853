/*
 * edgesync store: reading files of vectors, record by record, without
 * loading them whole.
 *
 * texmex .fvecs and .ivecs: every record is an int32 dimension followed
 * by that many 4-byte values (float32 for .fvecs, int32 for .ivecs), all
 * little-endian. es_vecs_open checks that the file is whole records of
 * the first record's dimension; es_vecs_read checks each record's
 * dimension as it goes and, for float files, that every value is finite.
 *
 * es_vecs_open_as also reads, as float32 vectors:
 * - NumPy .npy (format 1.0, 2.0 and 3.0): a 2-D C-order array of shape
 *   (vectors, dim) of little-endian float32 ('<f4') or float64 ('<f8',
 *   each value converted to float32 and refused outside its range);
 * - CSV: one vector per line, values separated by commas, decimal numbers
 *   only (strtof), spaces and tabs around a value allowed; a first line
 *   with no number in it is a header and skipped (with ES_VECS_HEADER
 *   the first line is skipped whatever it holds); blank lines skipped;
 *   every row as many values as the first; with ES_VECS_ID_COLUMN the
 *   first column is each row's id, a whole number 0 to 2^64 - 1. Opening
 *   reads the file once to count its rows.
 * ES_VECS_AUTO chooses by content: the .npy magic "\x93NUMPY", else text
 * (no control bytes but tab, CR and LF, valid UTF-8) is CSV, else .fvecs;
 * a file that is none of them is ES_E_VECS_FORMAT. Every value of every
 * format must be finite (ES_E_VECS_NONFINITE).
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

enum es_vecs_format {
	ES_VECS_AUTO, /* chosen by the file's first bytes */
	ES_VECS_FVECS,
	ES_VECS_NPY,
	ES_VECS_CSV,
};

/* es_vecs_open_as flags */
#define ES_VECS_ID_COLUMN 1u /* CSV: the first column is the row's id */
#define ES_VECS_HEADER	  2u /* CSV: the first line is a header, skipped */

/*
 * Where a file was wrong: line and column of a CSV file, or the vector a
 * read failed at (0-based, as es_vecs_position) and the value within it.
 */
struct es_vecs_loc {
	uint64_t line; /* CSV: 1-based line; 0 if none */
	uint32_t
	    column; /* 1-based CSV column or value of the vector; 0 if none */
	int has_vector; /* vector below is meaningful */
	uint64_t vector;
};

struct es_vecs;

/* es_vecs_open opens path; 0 or a negative code (ES_E_VECS_* or errno). */
int es_vecs_open(struct es_vecs **vp, const char *path, enum es_vecs_kind kind);
/*
 * es_vecs_open_as opens path as float32 vectors of the given format (or
 * ES_VECS_AUTO); flags are ES_VECS_ID_COLUMN, ES_VECS_HEADER or 0. On failure, if loc is
 * not NULL, it says where the file was wrong.
 */
int es_vecs_open_as(struct es_vecs **vp, const char *path,
		    enum es_vecs_format format, unsigned flags,
		    struct es_vecs_loc *loc);
void es_vecs_close(struct es_vecs *v);

uint32_t es_vecs_dim(const struct es_vecs *v);
uint64_t es_vecs_count(const struct es_vecs *v);
/* es_vecs_format is the format v is read as (never ES_VECS_AUTO). */
enum es_vecs_format es_vecs_format(const struct es_vecs *v);
/* es_vecs_format_name: "fvecs", "npy", "csv" (or "auto"). */
const char *es_vecs_format_name(enum es_vecs_format format);
/* es_vecs_has_ids: the file gives each vector's id (a CSV id column). */
int es_vecs_has_ids(const struct es_vecs *v);

/*
 * es_vecs_read reads up to n next records into dst (n * dim values) and
 * returns how many it read (0 at the end), or a negative code; then
 * es_vecs_position() is the index of the record that was wrong.
 */
long es_vecs_read(struct es_vecs *v, void *dst, size_t n);
uint64_t es_vecs_position(const struct es_vecs *v);
/*
 * es_vecs_read_ids is es_vecs_read that also stores, if the file has
 * ids and ids is not NULL, each vector's id in ids[i].
 */
long es_vecs_read_ids(struct es_vecs *v, void *dst, uint64_t *ids, size_t n);
/* es_vecs_where: where the last failed read was wrong. */
void es_vecs_where(const struct es_vecs *v, struct es_vecs_loc *loc);

/*
 * es_vecs_message writes into buf (of len bytes; returns buf) one line
 * that names path, where it was wrong (loc may be NULL) and the code err:
 * "data.csv: line 7, column 3: CSV value is empty or not a decimal number".
 */
const char *es_vecs_message(char *buf, size_t len, const char *path, int err,
			    const struct es_vecs_loc *loc);

/*
 * es_vecs_load reads a whole file into a malloc'ed array (free() it) of
 * *count x *dim values.
 */
int es_vecs_load(const char *path, enum es_vecs_kind kind, void **data,
		 uint32_t *dim, uint64_t *count);

#endif
