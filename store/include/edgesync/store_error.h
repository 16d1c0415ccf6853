/*
 * edgesync store: error codes.
 *
 * Every store function returns 0 (or a count) on success and a negative
 * number on failure: either a negative errno (-ENOMEM, -EIO, ...) or one of
 * the store's own codes below, which live in the reserved range
 * [ES_STORE_ERR_LAST, ES_STORE_ERR_FIRST], far below any errno. The store
 * never touches errno for its callers, never prints and never exits.
 *
 * es_store_strerror(err) names either kind in one short sentence.
 */
#ifndef EDGESYNC_STORE_ERROR_H
#define EDGESYNC_STORE_ERROR_H

enum es_store_err {
	ES_STORE_ERR_FIRST = -5001,

	/* NDVS segments (spec/ndvs.md), in the order the reader checks */
	ES_E_NDVS_SHORT = -5001,    /* smaller than header + footer */
	ES_E_NDVS_MAGIC = -5002,    /* header magic is not "NDVS" */
	ES_E_NDVS_VERSION = -5003,  /* header format_version is not 1 */
	ES_E_NDVS_FLAGS = -5004,    /* header flags are not 0 */
	ES_E_NDVS_DIM = -5005,	    /* header dim is 0 */
	ES_E_NDVS_DTYPE = -5006,    /* dtype is not 0 (float32) */
	ES_E_NDVS_CODEC = -5007,    /* codec is not 0 (none) */
	ES_E_NDVS_RESERVED = -5008, /* reserved header bytes not zero */
	ES_E_NDVS_SIZE = -5009,	    /* file size disagrees with dim, count */
	ES_E_NDVS_FOOTER_VERSION = -5010, /* footer version != header's */
	ES_E_NDVS_CREATED_BY = -5011,  /* created_by malformed or tag wrong */
	ES_E_NDVS_FOOTER_SIZE = -5012, /* footer_size is not 46 */
	ES_E_NDVS_TRAILER = -5013,     /* trailing magic is not "NDVS" */
	ES_E_NDVS_PAD = -5014,	       /* pad bytes before the ids not zero */
	ES_E_NDVS_CHECKSUM = -5015,    /* CRC32C of the body does not match */
	ES_E_NDVS_ROWS = -5016,	       /* writer: rows added != count */
	ES_E_NDVS_RECORD = -5017,      /* whole, but not the segment recorded */

	/* .fvecs / .ivecs files */
	ES_E_VECS_EMPTY = -5030,     /* no vectors in the file */
	ES_E_VECS_DIM = -5031,	     /* a record's dimension is invalid */
	ES_E_VECS_MIXED = -5032,     /* a record's dimension differs */
	ES_E_VECS_TRUNCATED = -5033, /* size is not whole records */
	ES_E_VECS_NONFINITE = -5034, /* a value is NaN or infinite */
	ES_E_VECS_FORMAT = -5035,    /* not .fvecs, .npy nor CSV text */
	ES_E_VECS_RANGE = -5036,     /* a value is outside float32's range */

	/* NumPy .npy files, in the order the reader checks */
	ES_E_NPY_MAGIC = -5040,	    /* does not start with \x93NUMPY */
	ES_E_NPY_VERSION = -5041,   /* format version not 1.0, 2.0, 3.0 */
	ES_E_NPY_HEADER = -5042,    /* header cut short or not the dict */
	ES_E_NPY_DTYPE = -5043,	    /* dtype is not a float32 or float64 */
	ES_E_NPY_ENDIAN = -5044,    /* dtype is big-endian */
	ES_E_NPY_FORTRAN = -5045,   /* fortran_order is True */
	ES_E_NPY_SHAPE = -5046,	    /* the array is not 2-D */
	ES_E_NPY_TRUNCATED = -5047, /* body shorter than the shape says */
	ES_E_NPY_SIZE = -5048,	    /* bytes past the array */

	/* (-5050..-5059 are vamana.h's, -5070..-5079 wal.h's) */

	/* CSV files */
	ES_E_CSV_NUMBER = -5060,  /* a value is empty or not a number */
	ES_E_CSV_COLUMNS = -5061, /* a row's column count differs */
	ES_E_CSV_ID = -5062,	  /* an id is not a u64 */
	ES_E_CSV_LINE = -5063,	  /* a line is longer than 8 MiB */
	ES_E_CSV_SHRUNK = -5064,  /* fewer rows than at open */

	ES_STORE_ERR_LAST = -5099,
};

/*
 * es_store_strerror returns a static string describing err, which is a
 * negative errno or an es_store_err code. Never NULL.
 */
const char *es_store_strerror(int err);

#endif
