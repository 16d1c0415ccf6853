/*
 * Private to sync: the wire schema of sync/PROTOCOL.md. Requests are
 * parsed (every field checked for type and range) into struct sync_req,
 * replies into struct sync_reply; both keep pointers into the message
 * buffer, which must outlive them. Encoders write requests and replies
 * into an es_cbor_enc.
 *
 * Everything that arrives from a peer goes through these parsers before
 * any other code sees it, so the rest of sync can trust: names match
 * [a-z0-9_-]{1,64}, device ids are 1..64 of ASCII 0x21..0x7e, dims are
 * 1..4096, a segment's size is exactly es_ndvs_file_size(dim, count) and
 * at most SYNC_SEGMENT_SIZE_MAX, clocks are below 2^63, arrays are within
 * their limits and strings within their maxima, and a begin's clock runs
 * keep the rule of clock_runs.h for its segment (those of later pages
 * need the earlier ones: sync_clocks_check).
 */
#ifndef EDGESYNC_SYNC_WIRE_H
#define EDGESYNC_SYNC_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "edgesync/cbor.h"
#include "edgesync/sync.h"

/* ---- limits (PROTOCOL.md, "Limits") ----------------------------------- */

#define SYNC_CHUNK_DEFAULT (1u << 20)
#define SYNC_CHUNK_MIN	   1024u
#define SYNC_CHUNK_MAX	   (16u << 20)
/* Chunks in flight on one transfer (PROTOCOL.md, "Window"): what a
 * receiver holds out of order, and what a sender keeps outstanding. */
#define SYNC_WINDOW_DEFAULT 1u
#define SYNC_WINDOW_MAX	    16u

/* The bytes of one request when window requests share a chunk: at most
 * one chunk is ever in flight, so a cut re-sends at most one chunk.
 * Pieces of 4 KiB and more are whole 4 KiB blocks (whole pages of the
 * receiver's page cache). */
static inline uint32_t sync_piece_size(uint32_t chunk, uint32_t window)
{
	uint32_t n = window > 1 ? chunk / window : chunk;

	if (window > 1 && n >= 4096u)
		n &= ~4095u;
	return n < SYNC_CHUNK_MIN
		   ? (chunk < SYNC_CHUNK_MIN ? chunk : SYNC_CHUNK_MIN)
		   : n;
}
/* Every message but a chunk's payload fits in this; RECVMAXSZ is
 * chunk size + SYNC_HEADER_ALLOWANCE. */
#define SYNC_HEADER_ALLOWANCE (256u << 10)
#define SYNC_TOMBS_PER_MSG    2048u		/* tombstones in one message */
#define SYNC_TOMBS_MAX	      (1u << 20)	/* tombstones of one segment */
#define SYNC_CLOCKS_PER_MSG   2048u		/* clock runs in one message */
#define SYNC_CLOCKS_MAX	      ES_CLOCK_RUNS_MAX /* clock runs of one segment */
#define SYNC_SEGMENTS_PER_MSG 256u  /* segments in a changes reply */
#define SYNC_COLLECTIONS_MAX  1024u /* collections in one reply */
#define SYNC_SEGMENT_SIZE_MAX (1ull << 36)
#define SYNC_INDEX_SIZE_MAX   (1ull << 38) /* an index file (changes) */
#define SYNC_DIM_MAX	      4096u
#define SYNC_TOKEN_MAX	      256u
#define SYNC_TOKEN_MIN	      16u
#define SYNC_CERT_MAX	      8192u
#define SYNC_SIG_MAX	      1024u
#define SYNC_NONCE_LEN	      32u
#define SYNC_HLC_MAX	      ((uint64_t)INT64_MAX)
#define SYNC_MESSAGE_MAX      200u /* error messages on the wire */

/* ---- message types and error codes ------------------------------------ */

enum sync_type {
	SYNC_T_PING,
	SYNC_T_CHALLENGE,
	SYNC_T_HELLO,
	SYNC_T_COLLECTIONS,
	SYNC_T_BEGIN,
	SYNC_T_MORE_TOMBSTONES,
	SYNC_T_MORE_CLOCKS,
	SYNC_T_CHUNK,
	SYNC_T_COMMIT,
	SYNC_T_CHANGES,
	SYNC_T_TOMBSTONES,
	SYNC_T_CLOCKS,
	SYNC_T_FETCH,
	SYNC_T_COUNT,
};

/* "ping", "begin", ...; NULL out of range. */
const char *sync_type_name(enum sync_type t);

enum sync_code {
	SYNC_C_NONE,
	SYNC_C_MALFORMED,    /* not CBOR, not a map, a field of a wrong type */
	SYNC_C_INVALID,	     /* a value out of range */
	SYNC_C_VERSION,	     /* v is not 1 */
	SYNC_C_UNKNOWN_TYPE, /* type unknown */
	SYNC_C_AUTH,	     /* token, certificate or allow list refused */
	SYNC_C_SESSION,	     /* no session on this connection: hello */
	SYNC_C_FORBIDDEN,    /* authenticated, but not allowed that */
	SYNC_C_NOT_FOUND,    /* no such (published) collection or segment */
	SYNC_C_MISMATCH,     /* collection exists with another dim/metric */
	SYNC_C_OFFSET,	     /* not the receiver's offset; "offset" says */
	SYNC_C_CHECKSUM,     /* a chunk's CRC32C does not match its data */
	SYNC_C_VERIFY,	     /* the staged file failed its checks */
	SYNC_C_STATE,	     /* out of order: begin first */
	SYNC_C_INTERNAL,     /* the receiver failed (disk, database) */
	SYNC_C_COUNT,
};

const char *sync_code_name(enum sync_code c);
/* The code named by n bytes at s; SYNC_C_NONE if unknown. */
enum sync_code sync_code_parse(const char *s, size_t n);
/* The ES_E_SYNC_* code a sender reports for a refusal with code c. */
int sync_code_err(enum sync_code c);

/* A refusal being built: the code, a message and, for SYNC_C_OFFSET,
 * the offset the receiver expects. */
struct sync_fail {
	enum sync_code code;
	int has_offset;
	uint64_t offset;
	char msg[ES_CBOR_ERR_MAX];
};

/* Fills f and returns -1 (a handler's failure). */
int sync_failf(struct sync_fail *f, enum sync_code code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---- validation ------------------------------------------------------- */

/* 0 if seg is coherent for a collection of dim (size, dim, clocks),
 * else -1 with the reason in why. */
int sync_segment_check(const struct es_sync_segment *seg, uint32_t dim,
		       char *why, size_t size);

/* 0 if seg may have total clock runs (none for 0 rows, else 1 ..
 * min(count, SYNC_CLOCKS_MAX)), else -1 with the reason in why. */
int sync_clocks_total_check(const struct es_sync_segment *seg, uint64_t total,
			    char *why, size_t size);
/*
 * 0 if the n runs at c, entries first.. of seg's list of total runs,
 * keep the rule of clock_runs.h (es_clock_run_check): the run before
 * them is prev (unused when first is 0). Pages checked in order this way
 * make a valid list. Else -1 with the reason, naming the run, in why.
 */
int sync_clocks_check(const struct es_sync_segment *seg,
		      const struct es_clock_run *c, size_t n, uint64_t first,
		      const struct es_clock_run *prev, uint64_t total,
		      char *why, size_t size);

/*
 * The lists that travel beside a segment in pages, its tombstones and
 * its clock runs: up with begin's first page and more_* for the rest,
 * down with a request per page. One description of each lets one piece
 * of code on each side carry both.
 */
struct sync_list_kind {
	const char *field; /* in begin, more_* and the replies */
	const char *total; /* begin's field of the list's length */
	const char *what;  /* for messages */
	enum sync_type more, fetch;
	size_t size; /* of one entry */
	unsigned per_msg, max;
	/* an array of n entries at v */
	void (*enc)(struct es_cbor_enc *e, const void *v, size_t n);
};
extern const struct sync_list_kind sync_list_tombs, sync_list_clocks;

/* ---- requests --------------------------------------------------------- */

struct sync_req {
	enum sync_type type;
	/* hello */
	char device[ES_SYNC_DEVICE_MAX + 1];
	char role[16];
	uint64_t hlc;
	const unsigned char *token, *cert, *sig; /* NULL if absent */
	size_t token_len, cert_len, sig_len;
	/* every op on a collection: coll.name; begin: dim and metric too */
	struct es_sync_collection coll;
	/* begin: all but id and add_version; others: origin, origin_seq */
	struct es_sync_segment seg;
	/* begin, more_tombstones: malloc'ed */
	struct es_sync_tombstone *tombs;
	size_t n_tombs;
	uint64_t tombs_total; /* begin */
	/* begin, more_clocks: malloc'ed */
	struct es_clock_run *clocks;
	size_t n_clocks;
	uint64_t clocks_total; /* begin */
	uint64_t offset, length, since, first, add_version;
	const unsigned char *data; /* chunk */
	size_t data_len;
	uint32_t crc;
	int crc_ok; /* chunk: data's CRC32C is crc (set by the parser) */
	int index;  /* fetch: part "index" (0: "segment", the default) */
};

/*
 * sync_req_parse decodes a request of len bytes at buf: the map (v, type,
 * then the fields of that type, each checked; unknown fields and fields
 * the type does not use are ignored), then its trailer: a damaged message
 * fails with SYNC_C_CHECKSUM whatever the map said. A chunk's data is
 * checked against its crc once, here (crc_ok). On failure f says why
 * (with the wire code). rq keeps pointers into buf; call sync_req_fini
 * whatever it returned.
 */
int sync_req_parse(struct sync_req *rq, const void *buf, size_t len,
		   struct sync_fail *f);
void sync_req_fini(struct sync_req *rq);

/* ---- replies ---------------------------------------------------------- */

enum sync_state {
	SYNC_S_NONE,
	SYNC_S_DUPLICATE,
	SYNC_S_RESUME,
	SYNC_S_INSTALLED,
};

struct sync_reply {
	int ok;
	enum sync_code code; /* !ok */
	char message[SYNC_MESSAGE_MAX + 1];
	int has_offset;
	uint64_t offset; /* chunk ok, begin resume, error "offset" */
	/* challenge, hello */
	char device[ES_SYNC_DEVICE_MAX + 1];
	const unsigned char *nonce;
	uint64_t hlc;
	uint64_t chunk_max;
	uint64_t window; /* hello: 1 if absent (a peer without a window) */
	/* begin, commit */
	enum sync_state state;
	/* collections: malloc'ed */
	struct es_sync_collection *colls;
	size_t n_colls;
	/* changes: malloc'ed */
	uint64_t version;
	int more;
	struct es_sync_segment *segs;
	size_t n_segs;
	/* tombstones, clocks: malloc'ed */
	uint64_t total;
	struct es_sync_tombstone *tombs;
	size_t n_tombs;
	struct es_clock_run *clocks;
	size_t n_clocks;
	/* fetch */
	const unsigned char *data;
	size_t data_len;
	uint32_t crc;
	int crc_ok; /* data's CRC32C is crc (set by the parser) */
};

/*
 * sync_reply_parse decodes the reply to a request of type t, map and
 * trailer (ES_E_SYNC_CHECKSUM if the trailer does not match: damaged in
 * transit); err (ES_CBOR_ERR_MAX) says what was wrong. A refusal ({ok:
 * false}) parses successfully with rp->ok 0. rp keeps pointers into buf;
 * call sync_reply_fini whatever it returned.
 */
int sync_reply_parse(struct sync_reply *rp, enum sync_type t, const void *buf,
		     size_t len, char *err);
void sync_reply_fini(struct sync_reply *rp);

/* ---- shared field decoders (wire.c) ---------------------------------- */

int sync_dec_collection(struct es_cbor_reader *r, struct es_sync_collection *c,
			int depth, int with_version);
int sync_dec_segment(struct es_cbor_reader *r, struct es_sync_segment *seg,
		     int depth, int with_add_version);
/* An array of at most max tombstones; *out malloc'ed (NULL when empty). */
int sync_dec_tombstones(struct es_cbor_reader *r, size_t max,
			struct es_sync_tombstone **out, size_t *n, int depth);
/* An array of at most max clock runs [row, hlc]; *out as above. */
int sync_dec_clocks(struct es_cbor_reader *r, size_t max,
		    struct es_clock_run **out, size_t *n, int depth);
int sync_dec_device(struct es_cbor_reader *r, const char *what, char *dev);
int sync_dec_name(struct es_cbor_reader *r, const char *what, char *name);
int sync_dec_u32(struct es_cbor_reader *r, const char *what, uint32_t *v);
int sync_dec_hlc(struct es_cbor_reader *r, const char *what, uint64_t *v);

/* ---- envelope (envelope.c) ------------------------------------------- */

/* Every message: a CBOR map, then the CRC32C of the map, 4 bytes LE. */
#define SYNC_TRAILER 4u

struct nng_msg;
/* A message of the len map bytes at map and their trailer. */
int sync_msg_sealed(struct nng_msg **m, const void *map, size_t len);
/* Writes crc (of the map before it) as the trailer at out. */
void sync_trailer_put(unsigned char *out, uint32_t crc);
/*
 * 0 if the last 4 of the len bytes at buf are the CRC32C of the rest.
 * bulk, if not NULL, is a byte string inside the map (bulk_len bytes)
 * whose CRC32C the caller has computed, bulk_crc: it is folded in, not
 * read again. The parsers below call it; others need not.
 */
int sync_trailer_check(const void *buf, size_t len, const void *bulk,
		       size_t bulk_len, uint32_t bulk_crc);

/* ---- encoders (wire_enc.c) -------------------------------------------- */

/* A request's map head with n fields after v and type. */
void sync_enc_request(struct es_cbor_enc *e, enum sync_type t, size_t n);
/* An ok reply's map head with n fields after v and ok. */
void sync_enc_ok(struct es_cbor_enc *e, size_t n);
/* A whole refusal. */
void sync_enc_fail(struct es_cbor_enc *e, const struct sync_fail *f);
/* {name, dim, metric[, version]} */
void sync_enc_collection(struct es_cbor_enc *e,
			 const struct es_sync_collection *c, int with_version);
/* {origin, origin_seq, seal_hlc, count, dim, size, checksum[, add_version
 * [, index_size, index_checksum when index_size]]} */
void sync_enc_segment(struct es_cbor_enc *e, const struct es_sync_segment *s,
		      int with_add_version);
/* [[id, hlc, origin], ...] */
void sync_enc_tombstones(struct es_cbor_enc *e,
			 const struct es_sync_tombstone *t, size_t n);
/* [[row, hlc], ...] */
void sync_enc_clocks(struct es_cbor_enc *e, const struct es_clock_run *c,
		     size_t n);

#endif
