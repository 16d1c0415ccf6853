/* One description for every code a store function can return. */
#include <string.h>

#include "edgesync/store_error.h"
#include "edgesync/vamana.h"
#include "edgesync/wal.h"

/* The Vamana index's codes, in their own enum (vamana.h); NULL if not. */
static const char *vamana_strerror(int err)
{
	switch ((enum es_vamana_err)err) {
	case ES_E_VAMANA_SHORT:
		return "file is smaller than a Vamana index header and footer";
	case ES_E_VAMANA_MAGIC:
		return "header or footer magic is not a Vamana index's";
	case ES_E_VAMANA_VERSION:
		return "unsupported Vamana index format version in the header";
	case ES_E_VAMANA_HEADER:
		return "Vamana index header fields are out of range or "
		       "inconsistent";
	case ES_E_VAMANA_SIZE:
		return "Vamana index file size does not match its header "
		       "(truncated or extra bytes)";
	case ES_E_VAMANA_FOOTER:
		return "Vamana index footer_size is not 16";
	case ES_E_VAMANA_CHECKSUM:
		return "CRC32C checksum mismatch: the index is corrupt";
	case ES_E_VAMANA_GRAPH:
		return "Vamana index graph has a degree above R or a neighbour "
		       "out of range";
	case ES_E_VAMANA_SEGMENT:
		return "Vamana index was built from a different segment";
	case ES_E_VAMANA_PARAM:
		return "invalid Vamana build or search parameter";
	}
	return NULL;
}

/* The write-ahead log's codes, in their own enum (wal.h); NULL if not. */
static const char *wal_strerror(int err)
{
	switch ((enum es_wal_err)err) {
	case ES_E_WAL_CORRUPT:
		return "write-ahead log record is damaged and is not a torn "
		       "tail (corrupt log)";
	case ES_E_WAL_TOO_BIG:
		return "write-ahead log record is larger than 256 MiB";
	case ES_E_WAL_CLOSED:
		return "write-ahead log failed earlier and refuses writes";
	}
	return NULL;
}

const char *es_store_strerror(int err)
{
	const char *vamana = vamana_strerror(err);
	const char *wal = wal_strerror(err);

	if (vamana)
		return vamana;
	if (wal)
		return wal;
	switch ((enum es_store_err)err) {
	case ES_E_NDVS_SHORT:
		return "file is smaller than an NDVS header and footer";
	case ES_E_NDVS_MAGIC:
		return "header magic is not NDVS";
	case ES_E_NDVS_VERSION:
		return "unsupported NDVS format version in the header";
	case ES_E_NDVS_FLAGS:
		return "header flags are not zero";
	case ES_E_NDVS_DIM:
		return "header dim is zero";
	case ES_E_NDVS_DTYPE:
		return "unknown dtype in the header (only 0, float32)";
	case ES_E_NDVS_CODEC:
		return "unknown codec in the header (only 0, none)";
	case ES_E_NDVS_RESERVED:
		return "reserved header bytes are not zero";
	case ES_E_NDVS_SIZE:
		return "file size does not match the header's dim and count "
		       "(truncated or extra bytes)";
	case ES_E_NDVS_FOOTER_VERSION:
		return "footer format version differs from the header's";
	case ES_E_NDVS_CREATED_BY:
		return "footer created_by is not NUL-padded ASCII or its "
		       "edgesync tag is wrong";
	case ES_E_NDVS_FOOTER_SIZE:
		return "footer_size is not 46";
	case ES_E_NDVS_TRAILER:
		return "trailing magic is not NDVS";
	case ES_E_NDVS_PAD:
		return "pad bytes before the id block are not zero";
	case ES_E_NDVS_CHECKSUM:
		return "CRC32C checksum mismatch: the segment is corrupt";
	case ES_E_NDVS_ROWS:
		return "segment writer got a different number of rows than "
		       "it was opened for";
	case ES_E_NDVS_RECORD:
		return "the file is a whole segment, but not the one recorded "
		       "(its size, CRC32C, count or dim differ)";
	case ES_E_VECS_EMPTY:
		return "vector file holds no vectors";
	case ES_E_VECS_DIM:
		return "vector dimension is not 1 to 65536";
	case ES_E_VECS_MIXED:
		return "vector file record's dimension differs from the first";
	case ES_E_VECS_TRUNCATED:
		return "vector file size is not a whole number of records "
		       "(truncated?)";
	case ES_E_VECS_NONFINITE:
		return "vector holds a NaN or infinite value";
	case ES_E_VECS_FORMAT:
		return "file is none of the formats read: .fvecs, .npy "
		       "(\\x93NUMPY) or CSV text";
	case ES_E_VECS_RANGE:
		return "value is outside float32's range";
	case ES_E_NPY_MAGIC:
		return "file does not start with the .npy magic \\x93NUMPY";
	case ES_E_NPY_VERSION:
		return ".npy format version is not 1.0, 2.0 or 3.0";
	case ES_E_NPY_HEADER:
		return ".npy header is cut short or is not a dict of descr, "
		       "fortran_order and shape";
	case ES_E_NPY_DTYPE:
		return ".npy dtype is not float32 or float64 ('<f4' or "
		       "'<f8')";
	case ES_E_NPY_ENDIAN:
		return ".npy array is big-endian (only little-endian '<f4' "
		       "or '<f8')";
	case ES_E_NPY_FORTRAN:
		return ".npy array is in Fortran order (only C order, "
		       "fortran_order False)";
	case ES_E_NPY_SHAPE:
		return ".npy array is not 2-D: its shape must be (vectors, "
		       "dim)";
	case ES_E_NPY_TRUNCATED:
		return ".npy body is shorter than its shape says (truncated)";
	case ES_E_NPY_SIZE:
		return ".npy file has bytes after the array its shape says";
	case ES_E_CSV_SHRUNK:
		return "CSV file has fewer rows than when it was opened (it "
		       "changed while being read)";
	case ES_E_CSV_NUMBER:
		return "CSV value is empty or not a decimal number";
	case ES_E_CSV_COLUMNS:
		return "CSV row has a different number of values from the "
		       "first row";
	case ES_E_CSV_ID:
		return "CSV id is not a whole number from 0 to 2^64 - 1";
	case ES_E_CSV_LINE:
		return "CSV line is longer than 8 MiB";
	case ES_STORE_ERR_LAST:
		break;
	}
	if (err < 0 && err > -4096)
		return strerrordesc_np(-err) ? strerrordesc_np(-err)
					     : "unknown errno";
	return "unknown error";
}
