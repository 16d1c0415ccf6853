/*
 * edgesync CBOR codec (RFC 8949), shared by the sync protocol and the
 * local API: a pull reader over libcbor's streaming decoder and a small
 * encoder into one growing buffer. It knows nothing of either protocol:
 * their schemas, limits and error codes live with them.
 *
 * Reading. es_cbor_next() decodes one item head in place: integers,
 * floats and booleans are returned by value; byte and text strings as a
 * pointer into the caller's buffer and a length (no copy, no NUL). A
 * container is walked element by element with es_cbor_seq_next(), so
 * nothing is allocated per element and the reader needs no memory of its
 * own. Tags are skipped.
 *
 * Ownership and lifetimes: the reader borrows the message buffer and the
 * error buffer; both must outlive it and every item, span and string it
 * returned. Nothing in the reader is freed. The encoder owns its buffer
 * (e->buf, e->len bytes) until es_cbor_enc_fini(); a caller may take it
 * by copying the pointer and zeroing the struct.
 *
 * Threads: a reader or an encoder is used by one thread at a time; the
 * functions share no state.
 *
 * Invariants:
 *   1. The reader never reads outside [p, end) and never trusts a
 *      declared length or count: a string must fit in what is left, and a
 *      container is walked item by item, each at least one byte, so a
 *      declared count of 2^64 costs nothing until the bytes run out.
 *   2. Nesting deeper than ES_CBOR_MAX_DEPTH is refused; recursion is
 *      bounded by it.
 *   3. Every failure writes one message naming what was wrong and where
 *      (byte offsets from the start of the message) into the reader's
 *      error buffer and returns an ES_E_CBOR_* code (or the caller's own
 *      code through es_cbor_fail); nothing is printed.
 *   4. Indefinite-length strings are refused; indefinite-length arrays
 *      and maps are accepted.
 *   5. The encoder writes the shortest head for every length and value;
 *      its first allocation failure sticks (es_cbor_enc_error), so callers
 *      check once at the end.
 */
#ifndef EDGESYNC_CBOR_H
#define EDGESYNC_CBOR_H

#include <stddef.h>
#include <stdint.h>

#define ES_CBOR_MAX_DEPTH 32  /* nesting of arrays and maps */
#define ES_CBOR_ERR_MAX	  256 /* error messages, with the NUL */

/* Codes of the codec, in the sync module's reserved range. */
enum es_cbor_err {
	/* Not well-formed CBOR: truncated, a bad initial byte, nested too
	 * deep, an indefinite-length string, bytes after the item. */
	ES_E_CBOR_MALFORMED = -5251,
	/* Well-formed, but not the expected shape: another type, a map key
	 * that is not text, a field given twice. */
	ES_E_CBOR_SCHEMA = -5252,
	/* The expected type with a value the reader refuses: negative, out
	 * of range, too long, a NUL in text, NaN or infinite. */
	ES_E_CBOR_VALUE = -5253,
	/* An array of values (es_cbor_get_floats) holding another number of
	 * them than the caller expects. */
	ES_E_CBOR_COUNT = -5254,
};

/* ---- reader ----------------------------------------------------------- */

enum es_cbor_type {
	ES_CBOR_UINT,
	ES_CBOR_NEGINT, /* value -1 - u */
	ES_CBOR_BYTES,
	ES_CBOR_TEXT,
	ES_CBOR_ARRAY,
	ES_CBOR_MAP,
	ES_CBOR_FLOAT,
	ES_CBOR_BOOL,
	ES_CBOR_NULL,
	ES_CBOR_UNDEF,
	ES_CBOR_BREAK, /* end of an indefinite array or map */
};

/* One decoded item head. */
struct es_cbor_item {
	enum es_cbor_type type;
	int indef;		   /* array or map of indefinite length */
	uint64_t u;		   /* integer, string length, element count */
	double f;		   /* ES_CBOR_FLOAT */
	int b;			   /* ES_CBOR_BOOL */
	const unsigned char *data; /* BYTES, TEXT: u bytes in the message */
};

struct es_cbor_reader {
	const unsigned char *start; /* of the whole message, for offsets */
	const unsigned char *p;	    /* next byte to decode */
	const unsigned char *end;
	char *err; /* ES_CBOR_ERR_MAX bytes, the caller's */
};

/* A raw item inside the message, decoded later (p NULL: absent). */
struct es_cbor_span {
	const unsigned char *p;
	size_t len;
};

/* A container being walked: es_cbor_seq_next says if an element follows. */
struct es_cbor_seq {
	uint64_t left;
	int indef;
};

/*
 * es_cbor_reader_init starts reading len bytes at buf; err (at least
 * ES_CBOR_ERR_MAX bytes) receives the message of the first failure and is
 * set to "" now. buf and err are borrowed, not copied.
 */
void es_cbor_reader_init(struct es_cbor_reader *r, const void *buf, size_t len,
			 char *err);

/*
 * es_cbor_reader_span makes sub a reader over the span s of r's message;
 * it reports to r's error buffer and counts offsets from r's start.
 */
void es_cbor_reader_span(struct es_cbor_reader *sub,
			 const struct es_cbor_reader *r,
			 const struct es_cbor_span *s);

/* es_cbor_reader_end: 0 if every byte was read, else ES_E_CBOR_MALFORMED. */
int es_cbor_reader_end(struct es_cbor_reader *r);

/*
 * es_cbor_fail writes a message (printf format) to r's error buffer and
 * returns code, which may be any of the caller's codes.
 */
int es_cbor_fail(struct es_cbor_reader *r, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* es_cbor_type_name: "an unsigned integer", "a map", ... for messages. */
const char *es_cbor_type_name(enum es_cbor_type t);

/*
 * es_cbor_next reads the next item head (skipping tags) into it. Strings
 * are read whole: it->data points at their u bytes. Arrays and maps give
 * their count (or indef) only; their elements follow.
 */
int es_cbor_next(struct es_cbor_reader *r, struct es_cbor_item *it);

/*
 * es_cbor_skip skips the next item with everything inside it; depth is the
 * nesting level the item sits at (0 for the top level).
 */
int es_cbor_skip(struct es_cbor_reader *r, int depth);

/* es_cbor_span_read skips the next item, recording where it lies in s. */
int es_cbor_span_read(struct es_cbor_reader *r, struct es_cbor_span *s,
		      int depth);

/*
 * es_cbor_array_begin and es_cbor_map_begin read the head of an array or
 * a map into s (what names the item in errors: "field 'segments'").
 * es_cbor_seq_next returns 1 if another element (for a map: a key, then
 * its value) follows, 0 at the end (consuming an indefinite container's
 * break), or a negative code.
 */
int es_cbor_array_begin(struct es_cbor_reader *r, struct es_cbor_seq *s,
			const char *what);
int es_cbor_map_begin(struct es_cbor_reader *r, struct es_cbor_seq *s,
		      const char *what);
int es_cbor_seq_next(struct es_cbor_reader *r, struct es_cbor_seq *s);

/*
 * es_cbor_map_index walks a map whose keys are text strings and records in
 * spans[i] where the value of keys[i] lies (p NULL if absent). A key
 * given twice is refused (ES_E_CBOR_SCHEMA); keys not in keys[] are
 * skipped, whatever their values hold. depth is the map's nesting level.
 */
int es_cbor_map_index(struct es_cbor_reader *r, const char *const *keys,
		      size_t nkeys, struct es_cbor_span *spans, int depth,
		      const char *what);

/*
 * Typed reads of the next item; what names it in errors ("field 'dim'").
 * es_cbor_get_int takes any integer that fits in int64_t.
 * es_cbor_get_number takes an integer or a float that is finite.
 * es_cbor_get_text copies text of at most size - 1 bytes, with no NUL in
 * it, into buf and terminates it.
 * es_cbor_get_bytes returns a byte string in place (*p points into the
 * message, *n bytes); es_cbor_get_text_ref likewise for text.
 */
int es_cbor_get_uint(struct es_cbor_reader *r, const char *what, uint64_t *v);
int es_cbor_get_int(struct es_cbor_reader *r, const char *what, int64_t *v);
int es_cbor_get_bool(struct es_cbor_reader *r, const char *what, int *v);
int es_cbor_get_number(struct es_cbor_reader *r, const char *what, double *v);
int es_cbor_get_text(struct es_cbor_reader *r, const char *what, char *buf,
		     size_t size);
int es_cbor_get_bytes(struct es_cbor_reader *r, const char *what,
		      const unsigned char **p, size_t *n);
int es_cbor_get_text_ref(struct es_cbor_reader *r, const char *what,
			 const char **p, size_t *n);

/*
 * es_cbor_get_floats reads n float32 into out: a byte string of n
 * little-endian float32 (copied as it lies) or an array, definite or
 * indefinite, of n numbers (integers or floats within float32 range).
 * NaN and infinities are refused, naming the value ("vector value 2 is
 * NaN", ES_E_CBOR_VALUE). Another count of values is ES_E_CBOR_COUNT
 * ("vector has 4 values, 5 expected"); *count then holds the count found
 * (UINT64_MAX when unknown: bytes that are not whole float32, an
 * indefinite array longer than n), for a caller to name the mismatch in
 * its own terms.
 */
int es_cbor_get_floats(struct es_cbor_reader *r, const char *what, float *out,
		       size_t n, uint64_t *count);

/*
 * es_cbor_floats_nonfinite returns the index of the first NaN or infinity
 * in v[0..n), or n if every value is finite (for float32 read in bulk,
 * e.g. a byte string holding several vectors).
 */
size_t es_cbor_floats_nonfinite(const float *v, size_t n);

/* ---- encoder ---------------------------------------------------------- */

struct es_cbor_enc {
	unsigned char *buf; /* owned; e->len bytes encoded */
	size_t len;
	size_t cap;
	int err; /* -ENOMEM once an allocation failed (sticky) */
};

/* es_cbor_enc_init empties e (no allocation until the first item). */
void es_cbor_enc_init(struct es_cbor_enc *e);
/* es_cbor_enc_fini frees e's buffer. */
void es_cbor_enc_fini(struct es_cbor_enc *e);
/* es_cbor_enc_reset empties e, keeping its buffer if at most keep bytes. */
void es_cbor_enc_reset(struct es_cbor_enc *e, size_t keep);
/* es_cbor_enc_error: 0, or -ENOMEM if any item could not be written. */
int es_cbor_enc_error(const struct es_cbor_enc *e);

/* Heads of definite-length containers; n elements (for a map: pairs). */
void es_cbor_enc_map(struct es_cbor_enc *e, uint64_t n);
void es_cbor_enc_array(struct es_cbor_enc *e, uint64_t n);
void es_cbor_enc_uint(struct es_cbor_enc *e, uint64_t v);
void es_cbor_enc_int(struct es_cbor_enc *e, int64_t v);
void es_cbor_enc_bool(struct es_cbor_enc *e, int v);
void es_cbor_enc_null(struct es_cbor_enc *e);
void es_cbor_enc_float(struct es_cbor_enc *e, float v); /* float32 */
void es_cbor_enc_text(struct es_cbor_enc *e, const char *s);
void es_cbor_enc_textn(struct es_cbor_enc *e, const char *s, size_t n);
void es_cbor_enc_bytes(struct es_cbor_enc *e, const void *p, size_t n);
/* A byte string of n little-endian float32. */
void es_cbor_enc_floats(struct es_cbor_enc *e, const float *v, size_t n);
/*
 * es_cbor_enc_bytes_reserve writes the head of a byte string of n bytes
 * and returns where its n bytes go (for the caller to fill, e.g. with
 * pread), or NULL after an allocation failure. The pointer is valid until
 * the next call on e.
 */
unsigned char *es_cbor_enc_bytes_reserve(struct es_cbor_enc *e, size_t n);
/* es_cbor_enc_raw appends n bytes as they are (an item encoded elsewhere). */
void es_cbor_enc_raw(struct es_cbor_enc *e, const void *p, size_t n);

/* Map entries: a text key and its value. */
void es_cbor_enc_kv_uint(struct es_cbor_enc *e, const char *key, uint64_t v);
void es_cbor_enc_kv_text(struct es_cbor_enc *e, const char *key, const char *s);
void es_cbor_enc_kv_bool(struct es_cbor_enc *e, const char *key, int v);
void es_cbor_enc_kv_bytes(struct es_cbor_enc *e, const char *key, const void *p,
			  size_t n);

#endif
