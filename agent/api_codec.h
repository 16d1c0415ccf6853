/*
 * Private to the agent: the CBOR codec of the local API (agent/PROTOCOL.md),
 * shared by the server (api_server.c) and the client library (client.c).
 *
 * Decoding is a pull reader over libcbor's streaming decoder: every call
 * decodes one item head in place (strings point into the caller's
 * buffer), so nothing is allocated per element; a batch of vectors costs
 * one allocation, the float array the engine takes. Encoding is a small
 * hand encoder into one growing buffer (libcbor's item tree would cost an
 * allocation per id and per distance).
 *
 * Invariants:
 *   1. The reader never reads outside [p, end) and never trusts a
 *      declared length or count: strings must fit in what is left, and
 *      containers are walked item by item, each at least one byte.
 *   2. Nesting deeper than API_MAX_DEPTH is refused; recursion is bounded.
 *   3. Every failure writes a message naming what was wrong to the
 *      reader's err buffer and returns an API_E_* code; nothing is printed.
 *   4. The encoder's first allocation failure sticks (api_enc_error);
 *      callers check once at the end.
 */
#ifndef EDGESYNC_API_CODEC_H
#define EDGESYNC_API_CODEC_H

#include <stddef.h>
#include <stdint.h>

#define API_PROTOCOL   1      /* the "v" of every request and reply */
#define API_MAX_BATCH  100000 /* ids per insert or delete */
#define API_MAX_K      1000   /* search results */
#define API_MAX_L      4096   /* search list (ES_VAMANA_MAX_L) */
#define API_MAX_DIM    4096
#define API_NAME_MAX   64  /* collection names: [a-z0-9_-]{1,64} */
#define API_DEVICE_MAX 64  /* device ids: 1..64 of ASCII 0x21..0x7e */
#define API_MAX_DEPTH  32  /* nesting of arrays and maps */
#define API_ERR_MAX    256 /* error messages, with the NUL */

/* Codes of requests the server refuses before the engine sees them. */
enum api_err {
	API_E_BAD_REQUEST = -5501, /* not CBOR, wrong type, missing field */
	API_E_BAD_VALUE = -5502,   /* NaN, out of range, unknown name */
	API_E_DIM = -5503,	   /* vector length != collection dim */
	API_E_UNKNOWN_OP = -5504,
	API_E_TOO_LARGE = -5505, /* over a limit of the protocol */
};

/* The stable string of an API_E_* code ("bad_request"...); NULL if not. */
const char *api_err_name(int err);

/* ---- reader ----------------------------------------------------------- */

enum api_type {
	API_UINT,
	API_NEGINT, /* value -1 - u */
	API_BYTES,
	API_TEXT,
	API_ARRAY,
	API_MAP,
	API_FLOAT,
	API_BOOL,
	API_NULL,
	API_UNDEF,
	API_BREAK, /* end of an indefinite array or map */
};

struct api_item {
	enum api_type type;
	int indef;		   /* array or map of indefinite length */
	uint64_t u;		   /* integer, string length, item count */
	double f;		   /* API_FLOAT */
	int b;			   /* API_BOOL */
	const unsigned char *data; /* API_BYTES, API_TEXT: u bytes */
};

struct api_reader {
	const unsigned char *start; /* of the whole message, for offsets */
	const unsigned char *p;
	const unsigned char *end;
	char *err; /* API_ERR_MAX bytes */
};

/* A raw item inside a buffer, decoded later. */
struct api_span {
	const unsigned char *p; /* NULL: absent */
	size_t len;
};

/* A container being walked: api_seq_next says if an element follows. */
struct api_seq {
	uint64_t left;
	int indef;
};

void api_reader_init(struct api_reader *r, const void *buf, size_t len,
		     char *err);
/* A reader over span s that reports to r's err buffer. */
void api_reader_span(struct api_reader *sub, const struct api_reader *r,
		     const struct api_span *s);

/* Writes the message to r's err buffer and returns code. */
int api_fail(struct api_reader *r, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* "an unsigned integer", "a map", ... for messages. */
const char *api_type_name(enum api_type t);

/* Reads the next item head (skipping tags); strings are read whole. */
int api_next(struct api_reader *r, struct api_item *it);
/* Skips the next item with everything inside it. */
int api_skip(struct api_reader *r, int depth);
/* Skips the next item, recording where it lies. */
int api_span_read(struct api_reader *r, struct api_span *s, int depth);

/* Reads an array or map head (what names it in errors). */
int api_array_begin(struct api_reader *r, struct api_seq *s, const char *what);
int api_map_begin(struct api_reader *r, struct api_seq *s, const char *what);
/* 1 if another element (for a map: key) follows, 0 at the end. */
int api_seq_next(struct api_reader *r, struct api_seq *s);

/*
 * api_map_index walks a map whose keys are text, recording in spans[i]
 * the value of keys[i] (absent: p NULL). A key given twice is refused;
 * other keys are skipped.
 */
int api_map_index(struct api_reader *r, const char *const *keys, size_t nkeys,
		  struct api_span *spans, int depth, const char *what);

/* Typed reads of the next item; what names it in errors ("field 'k'"). */
int api_get_uint(struct api_reader *r, const char *what, uint64_t *v);
int api_get_int(struct api_reader *r, const char *what, int64_t *v);
int api_get_bool(struct api_reader *r, const char *what, int *v);
/* A finite number: integer or float. */
int api_get_number(struct api_reader *r, const char *what, double *v);
/* Text of at most size - 1 bytes without NUL, copied with a NUL. */
int api_get_text(struct api_reader *r, const char *what, char *buf,
		 size_t size);

/*
 * api_get_vector reads one vector of dim floats into out: a byte string
 * of dim little-endian float32 or an array of dim numbers. Non-finite
 * values are refused. what names it in errors ("vector", "vector 3");
 * coll names the collection.
 */
int api_get_vector(struct api_reader *r, uint32_t dim, float *out,
		   const char *what, const char *coll);

/*
 * api_get_vectors reads n vectors of dim floats into out (n x dim): one
 * byte string of n x dim float32, or an array of n vectors as above.
 */
int api_get_vectors(struct api_reader *r, size_t n, uint32_t dim, float *out,
		    const char *coll);

/*
 * api_get_ids reads an array of at most max unsigned integers into *ids
 * (malloc'ed; free() it, NULL when empty).
 */
int api_get_ids(struct api_reader *r, const char *what, size_t max,
		uint64_t **ids, size_t *n);

/* 1 if name is a valid collection name ([a-z0-9_-]{1,64}). */
int api_name_valid(const char *name);

/* ---- requests (server side) ------------------------------------------- */

enum api_op {
	API_OP_PING,
	API_OP_COLL_CREATE,
	API_OP_COLL_LIST,
	API_OP_COLL_INFO,
	API_OP_COLL_DROP,
	API_OP_INSERT,
	API_OP_DELETE,
	API_OP_GET,
	API_OP_SEARCH,
	API_OP_FLUSH,
	API_OP_STATS,
	API_OP_SEGMENTS,
	API_OP_PEERS,
	API_OP_SYNC_NOW,
	API_OP_PEERS_APPROVE,
	API_OP_COUNT,
};

/* "ping", "collection.create", ...; NULL for an unknown op. */
const char *api_op_name(enum api_op op);

struct api_request {
	enum api_op op;
	char name[API_NAME_MAX + 1]; /* "name" or "collection" */
	uint32_t dim;
	char metric[8]; /* "" if absent */
	char sync[16];	/* "" if absent */
	uint64_t id;
	uint64_t *ids; /* malloc'ed */
	size_t n_ids;
	uint32_t k;			 /* default 10 */
	uint32_t L;			 /* default 0 */
	char device[API_DEVICE_MAX + 1]; /* peers.approve */
	int approve;			 /* peers.approve, default 1 */
	/* Insert's "vectors", search's "vector": decoded once dim is known. */
	struct api_span vectors;
	struct api_reader reader; /* over the request, for the spans */
};

/*
 * api_request_parse decodes a request: checks v and op and reads the
 * fields op uses (types, presence, ranges). Fields op does not use and
 * unknown fields are skipped. err (API_ERR_MAX bytes) receives the
 * message on failure; rq keeps pointers into buf and err. Call
 * api_request_fini whatever it returned.
 */
int api_request_parse(struct api_request *rq, const void *buf, size_t len,
		      char *err);
void api_request_fini(struct api_request *rq);

/* ---- encoder ---------------------------------------------------------- */

struct api_enc {
	unsigned char *buf;
	size_t len;
	size_t cap;
	int err; /* -ENOMEM once an allocation failed */
};

void api_enc_init(struct api_enc *e);
void api_enc_fini(struct api_enc *e);
/* Empties e, keeping at most keep bytes of its buffer. */
void api_enc_reset(struct api_enc *e, size_t keep);
int api_enc_error(const struct api_enc *e);

void api_enc_map(struct api_enc *e, uint64_t n);
void api_enc_array(struct api_enc *e, uint64_t n);
void api_enc_uint(struct api_enc *e, uint64_t v);
void api_enc_int(struct api_enc *e, int64_t v);
void api_enc_bool(struct api_enc *e, int v);
void api_enc_float(struct api_enc *e, float v); /* float32 */
void api_enc_text(struct api_enc *e, const char *s);
void api_enc_textn(struct api_enc *e, const char *s, size_t n);
void api_enc_bytes(struct api_enc *e, const void *p, size_t n);
/* A byte string of n little-endian float32. */
void api_enc_floats(struct api_enc *e, const float *v, size_t n);
/* Appends n raw bytes (an item encoded elsewhere). */
void api_enc_raw(struct api_enc *e, const void *p, size_t n);

/* Map entries: a text key and its value. */
void api_enc_kv_uint(struct api_enc *e, const char *key, uint64_t v);
void api_enc_kv_text(struct api_enc *e, const char *key, const char *s);
void api_enc_kv_bool(struct api_enc *e, const char *key, int v);

#endif
