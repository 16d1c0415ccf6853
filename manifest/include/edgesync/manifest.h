/*
 * edgesync manifest: the SQLite database that records, for one data
 * directory, every collection, every segment version and where its files
 * are, the tombstones, the peers and what each has acknowledged. It hides
 * SQLite from every other module.
 *
 * One database file, WAL journal, synchronous=FULL, foreign keys on. The
 * schema carries a version (PRAGMA user_version) and forward migrations;
 * a database from a newer edgesync is refused (ES_E_MANIFEST_NEWER).
 *
 * Every state change is one transaction, and every change to a collection's
 * segments or tombstones bumps that collection's version by exactly one, so
 * "what changed since version v" is well defined for sync.
 *
 * Segment states (each transition is one function, one transaction):
 *
 *   (none) --segment_add--> SEALED --segment_set_index--> INDEXED
 *                             |                              |
 *                             +------segment_supersede-------+--> SUPERSEDED
 *   SUPERSEDED --segment_remove--> (row gone; files may be deleted)
 *
 * (segment_add may also record a segment that arrives with its index as
 * INDEXED directly.)
 *
 * Invariants:
 *   1. A row names files that were durable (fsynced, renamed) before the
 *      row was committed; the caller guarantees it, the manifest records
 *      sizes and checksums so start-up can check.
 *   2. File names are derived from ids (seg-<id>.ndvs), never from text
 *      that came from a peer. Segment ids are never reused: the caller
 *      reserves one (es_manifest_segment_reserve) before it writes the
 *      file, or lets segment_add allocate one.
 *   3. collection.version only grows; each segment and tombstone row keeps
 *      the version that added it (add_version), and each segment row the
 *      version of its last change (change_version).
 *   4. A SUPERSEDED row is removed only when no snapshot uses its files
 *      and every peer has acknowledged a version >= its change_version
 *      (otherwise that peer never learns it was superseded). The caller
 *      enforces it with es_manifest_min_ack.
 *
 * Clocks: a hybrid logical clock (HLC) is 48 bits of Unix milliseconds
 * above 16 bits of counter. The manifest keeps every HLC it stores below
 * 2^63 (ES_MANIFEST_HLC_MAX) so that SQLite's signed integers order them.
 *
 * Ownership: strings returned (device id, last error) belong to the handle
 * and stay valid until close (the last error until the next call); arrays
 * returned by the *_list functions are malloc'ed and the caller free()s
 * them.
 *
 * Thread safety: one es_manifest is one SQLite connection; callers
 * serialize (the agent owns one behind a mutex).
 *
 * For sync (schema 3): the peers this agent has seen, what each peer has
 * acknowledged of each collection in each direction, and transfers in
 * progress. Acknowledgements and transfers belong to their collection
 * (dropping it drops them); peers do not.
 */
#ifndef EDGESYNC_MANIFEST_H
#define EDGESYNC_MANIFEST_H

#include <stddef.h>
#include <stdint.h>

#include "edgesync/clock_runs.h"

#define ES_MANIFEST_NAME_MAX   64 /* collection names: [a-z0-9_-]{1,64} */
#define ES_MANIFEST_DEVICE_MAX 64 /* device ids: 1..64 of ASCII 0x21..0x7e */
#define ES_MANIFEST_DIM_MAX    4096
/* Peer keys of acks and transfers (a URL or a device id): 1..255 of
 * ASCII 0x21..0x7e. */
#define ES_MANIFEST_PEER_MAX 255
/* A peer's address (URL, or host:port it came from): 0..255 of 0x21..0x7e. */
#define ES_MANIFEST_ADDRESS_MAX 255
/* A peer's identity (certificate CN): 0..255 bytes, no control characters
 * (0x00..0x1f, 0x7f); other bytes (UTF-8) pass as they are. */
#define ES_MANIFEST_IDENTITY_MAX 255
/* A staged file name: 0..128 of [A-Za-z0-9._-], not starting with '.'. */
#define ES_MANIFEST_STAGED_MAX 128

/* Largest HLC the manifest stores; its milliseconds part. */
#define ES_MANIFEST_HLC_MAX	INT64_MAX
#define ES_MANIFEST_HLC_MS(hlc) ((uint64_t)(hlc) >> 16)

/* Manifest errors, in their own reserved range. */
enum es_manifest_err {
	ES_E_MANIFEST_NEWER = -5101,	/* schema newer than this edgesync */
	ES_E_MANIFEST_CORRUPT = -5102,	/* the file or a row is damaged */
	ES_E_MANIFEST_EXISTS = -5103,	/* the name or id exists already */
	ES_E_MANIFEST_NOTFOUND = -5104, /* no such collection or segment */
	ES_E_MANIFEST_STATE = -5105,	/* transition not allowed now */
	ES_E_MANIFEST_NAME = -5106,	/* name not [a-z0-9_-]{1,64} */
	ES_E_MANIFEST_SQL = -5107,	/* any other SQLite failure */
	ES_E_MANIFEST_FOREIGN = -5108,	/* a database, but not a manifest */
};

/*
 * es_manifest_strerror describes an ES_E_MANIFEST_* code or -errno in a
 * static string; never NULL.
 */
const char *es_manifest_strerror(int err);

enum es_segment_state {
	ES_SEGMENT_SEALED = 1,
	ES_SEGMENT_INDEXED = 2,
	ES_SEGMENT_SUPERSEDED = 3,
};

struct es_manifest_collection {
	int64_t id;
	char name[ES_MANIFEST_NAME_MAX + 1];
	uint32_t dim;
	uint32_t metric;  /* enum es_metric of the store */
	uint32_t flags;	  /* ES_COLLECTION_* below */
	uint64_t version; /* bumped by every change */
	uint64_t created_hlc;
};

enum es_collection_flags {
	ES_COLLECTION_UPLOAD = 1 << 0,	 /* edge -> cloud */
	ES_COLLECTION_DOWNLOAD = 1 << 1, /* cloud -> edge (published) */
};

struct es_manifest_segment {
	int64_t id; /* reserved, or assigned by segment_add if 0 */
	int64_t collection_id;
	uint64_t size;	   /* NDVS file bytes */
	uint32_t checksum; /* NDVS footer CRC32C */
	uint64_t count;
	uint32_t dim;
	uint64_t index_size; /* 0 until indexed */
	uint32_t index_checksum;
	enum es_segment_state state; /* add: 0 or SEALED, or INDEXED */
	/* device that sealed it; segment_add fills "" with this device's */
	char origin[ES_MANIFEST_DEVICE_MAX + 1];
	/* that device's segment sequence; 0 at add (local origin): the id */
	uint64_t origin_seq;
	uint64_t seal_hlc;	 /* hybrid logical clock at seal */
	uint64_t wal_gen;	 /* last local WAL generation it contains */
	int64_t superseded_by;	 /* 0 unless SUPERSEDED */
	uint64_t add_version;	 /* collection version that added it */
	uint64_t change_version; /* version of its last change (>= add) */
};

struct es_manifest_tombstone {
	uint64_t id;				 /* the vector id */
	uint64_t hlc;				 /* <= ES_MANIFEST_HLC_MAX */
	char origin[ES_MANIFEST_DEVICE_MAX + 1]; /* "" at add: this device */
	uint64_t add_version;			 /* ignored at add */
};

struct es_manifest;

/*
 * es_manifest_open opens (creating if needed) the database at path,
 * checks it (PRAGMA quick_check) and migrates it forward, each migration
 * in its own transaction. Returns 0 or a negative code: -errno (the
 * directory is missing, permissions), ES_E_MANIFEST_CORRUPT,
 * ES_E_MANIFEST_NEWER, ES_E_MANIFEST_FOREIGN; *mp is NULL on failure.
 */
int es_manifest_open(struct es_manifest **mp, const char *path);
void es_manifest_close(struct es_manifest *m);

/*
 * es_manifest_last_error returns SQLite's message, or the manifest's own
 * reason, for the last call on m that failed ("" if none); for logs.
 */
const char *es_manifest_last_error(const struct es_manifest *m);

/*
 * es_manifest_check runs SQLite's full integrity and foreign key checks
 * (reads the whole file): 0 or ES_E_MANIFEST_CORRUPT.
 */
int es_manifest_check(struct es_manifest *m);

/* Schema version this edgesync writes. */
int es_manifest_schema_version(void);

/* ---- device identity and clock ---------------------------------------- */

/*
 * es_manifest_device_id returns this data directory's persistent device
 * id (created at first open: 32 random hex digits), valid until close.
 */
const char *es_manifest_device_id(const struct es_manifest *m);

/*
 * es_manifest_hlc_now advances and persists the hybrid logical clock
 * (48 bits of milliseconds, 16 bits of counter) past both the wall clock
 * and every clock seen (es_manifest_hlc_observe), and returns it. Values
 * only grow, across restarts too, whatever the wall clock does. Most
 * calls write nothing: a ceiling one second ahead is persisted first.
 */
int es_manifest_hlc_now(struct es_manifest *m, uint64_t *hlc);
/*
 * es_manifest_hlc_observe moves the clock past a peer's remote_hlc;
 * -ERANGE above ES_MANIFEST_HLC_MAX. It does not judge skew: bounding how
 * far ahead of the wall clock a peer may be is the caller's policy.
 */
int es_manifest_hlc_observe(struct es_manifest *m, uint64_t remote_hlc);

/* ---- collections ------------------------------------------------------ */

/*
 * es_manifest_collection_create: c->name, dim (1..4096), metric (0..2),
 * flags in; id, version (0) and created_hlc out. ES_E_MANIFEST_NAME,
 * ES_E_MANIFEST_EXISTS, -EINVAL.
 */
int es_manifest_collection_create(struct es_manifest *m,
				  struct es_manifest_collection *c);
int es_manifest_collection_get(struct es_manifest *m, const char *name,
			       struct es_manifest_collection *c);
int es_manifest_collection_get_id(struct es_manifest *m, int64_t id,
				  struct es_manifest_collection *c);
/* *out is malloc'ed (free() it), *n entries, ordered by name. */
int es_manifest_collection_list(struct es_manifest *m,
				struct es_manifest_collection **out, size_t *n);
/* Drops the collection and all its rows; the caller removes its files. */
int es_manifest_collection_drop(struct es_manifest *m, const char *name);

/* ---- segments --------------------------------------------------------- */

/*
 * es_manifest_segment_reserve allocates a segment id that no row has had
 * and no other call will hand out, so the caller can name the file
 * before segment_add. An id left unused is simply skipped.
 */
int es_manifest_segment_reserve(struct es_manifest *m, int64_t *id);

/*
 * es_manifest_segment_add records a SEALED segment and the tombstones
 * sealed with it, in one transaction that bumps the collection version;
 * fills s->id (if 0), origin (if ""), origin_seq (if 0), state,
 * add_version and change_version; the tombstones are stamped with the
 * same add_version. s->id is a reserved id or 0 (an id the caller chose
 * above every id handed out is accepted too). s->dim must be the
 * collection's. A tombstone replaces an existing one
 * for the same vector id only if its (hlc, origin) is larger.
 * ES_E_MANIFEST_EXISTS if the id or (collection, origin, origin_seq) is
 * recorded already (a resent segment); ES_E_MANIFEST_NOTFOUND if the
 * collection is not.
 */
int es_manifest_segment_add(struct es_manifest *m,
			    struct es_manifest_segment *s,
			    const struct es_manifest_tombstone *tombs,
			    size_t n_tombs);

/*
 * es_manifest_segment_add_clocked records the segment as segment_add
 * does, with the clocks of its rows (edgesync/clock_runs.h) in the same
 * transaction; -EINVAL unless es_clock_runs_check passes for s's count
 * and seal_hlc. segment_add records none: every row at seal_hlc.
 */
int es_manifest_segment_add_clocked(struct es_manifest *m,
				    struct es_manifest_segment *s,
				    const struct es_clock_run *runs,
				    size_t n_runs,
				    const struct es_manifest_tombstone *tombs,
				    size_t n_tombs);
/*
 * The clock runs of segment segment_id (segment_clocks), or of the
 * segment added at add_version in the collection (segment_clocks_at): as
 * recorded, or one run {0, seal_hlc} for a segment recorded without (none
 * if it has no rows). *runs malloc'ed (NULL when *n is 0);
 * ES_E_MANIFEST_NOTFOUND if there is no such segment,
 * ES_E_MANIFEST_CORRUPT if what is recorded is not a valid list.
 */
int es_manifest_segment_clocks(struct es_manifest *m, int64_t segment_id,
			       struct es_clock_run **runs, size_t *n);
int es_manifest_segment_clocks_at(struct es_manifest *m, int64_t collection_id,
				  uint64_t add_version,
				  struct es_clock_run **runs, size_t *n);

/*
 * SEALED -> INDEXED, recording the index file's size (> 0) and checksum.
 * ES_E_MANIFEST_STATE from any other state.
 */
int es_manifest_segment_set_index(struct es_manifest *m, int64_t segment_id,
				  uint64_t index_size, uint32_t index_checksum);

/*
 * es_manifest_segment_supersede records that new_segment (already added)
 * replaces the n old ones (compaction), in one transaction and one
 * version bump. Every segment must be in one collection, new_segment not
 * SUPERSEDED and none of old already SUPERSEDED (ES_E_MANIFEST_STATE).
 */
int es_manifest_segment_supersede(struct es_manifest *m, int64_t new_segment,
				  const int64_t *old, size_t n);
/*
 * Removes the row of a SUPERSEDED segment no snapshot uses any more
 * (invariant 4 above, checked by the caller: es_manifest_min_ack), bumping
 * the version. ES_E_MANIFEST_STATE otherwise.
 */
int es_manifest_segment_remove(struct es_manifest *m, int64_t segment_id);

int es_manifest_segment_get(struct es_manifest *m, int64_t segment_id,
			    struct es_manifest_segment *s);
/* The segment a device recorded as origin_seq; ES_E_MANIFEST_NOTFOUND. */
int es_manifest_segment_find(struct es_manifest *m, int64_t collection_id,
			     const char *origin, uint64_t origin_seq,
			     struct es_manifest_segment *s);
/*
 * Segments of a collection added or changed (indexed, superseded) after
 * version since (0: all), in the order they were added; *out malloc'ed
 * (NULL when *n is 0).
 */
int es_manifest_segment_list(struct es_manifest *m, int64_t collection_id,
			     uint64_t since, struct es_manifest_segment **out,
			     size_t *n);
/* The largest wal_gen among a collection's segments (0 if none). */
int es_manifest_sealed_wal_gen(struct es_manifest *m, int64_t collection_id,
			       uint64_t *gen);

/* ---- tombstones ------------------------------------------------------- */

/*
 * es_manifest_tombstone_add records n (>= 1) tombstones that came without
 * a segment (deletes from a peer), as segment_add does, in one
 * transaction and one version bump.
 */
int es_manifest_tombstone_add(struct es_manifest *m, int64_t collection_id,
			      const struct es_manifest_tombstone *tombs,
			      size_t n);
/* Tombstones added or replaced after version since, in that order. */
int es_manifest_tombstone_list(struct es_manifest *m, int64_t collection_id,
			       uint64_t since,
			       struct es_manifest_tombstone **out, size_t *n);

/*
 * es_manifest_segment_tombstones returns the tombstones stamped with
 * add_version in the collection, ordered by id (as SQLite's signed
 * integer): called with a segment's add_version, the tombstones recorded
 * with that segment, as segment_add stored them.
 *
 * A tombstone table row holds only the winning (largest (hlc, origin))
 * tombstone of each vector id. So a tombstone sealed with a segment that
 * lost to a row already there, or was later replaced by a larger one, is
 * not returned with that segment: the winner travels with the segment (or
 * tombstone_add call) that brought it, whose version it carries. Sync that
 * ships every segment with these tombstones, in add_version order, thus
 * ships every winning tombstone that came with a segment. Tombstones
 * recorded by es_manifest_tombstone_add belong to no segment; they are
 * returned only for the version of that call (no segment has it), and
 * es_manifest_tombstone_list is the way to find them.
 * *out malloc'ed (NULL when *n is 0); ES_E_MANIFEST_NOTFOUND if the
 * collection is not recorded.
 */
int es_manifest_segment_tombstones(struct es_manifest *m, int64_t collection_id,
				   uint64_t add_version,
				   struct es_manifest_tombstone **out,
				   size_t *n);

/* ---- peers (schema 3) ------------------------------------------------- */

/* The values are those of enum es_sync_role and es_sync_direction. */
enum es_manifest_role {
	ES_MANIFEST_EDGE = 1,
	ES_MANIFEST_CLOUD = 2,
};

enum es_manifest_direction {
	ES_MANIFEST_UP = 1,   /* edge -> cloud */
	ES_MANIFEST_DOWN = 2, /* cloud -> edge */
};

struct es_manifest_peer {
	char device[ES_MANIFEST_DEVICE_MAX + 1]; /* the peer's device id */
	enum es_manifest_role role;
	/* URL it is dialled at, or the remote address it last came from */
	char address[ES_MANIFEST_ADDRESS_MAX + 1];
	/* certificate CN it presented, "" without TLS */
	char identity[ES_MANIFEST_IDENTITY_MAX + 1];
	int approved;		/* 0 or 1; only peer_approve changes it */
	uint64_t first_seen_ms; /* Unix ms */
	uint64_t last_seen_ms;	/* Unix ms */
};

/*
 * es_manifest_peer_upsert records that the peer p->device was seen: a new
 * device is inserted (approved 0, first_seen = last_seen); a known one
 * gets p's role, p's address and identity unless they are "", and
 * last_seen = max(stored, p's). p->last_seen_ms 0 means now;
 * p->approved and p->first_seen_ms are ignored. On return *p is the
 * stored row (so the caller reads approved from it). One transaction.
 * -EINVAL for a bad device id, role, address or identity.
 */
int es_manifest_peer_upsert(struct es_manifest *m, struct es_manifest_peer *p);
/* The row of device; ES_E_MANIFEST_NOTFOUND. */
int es_manifest_peer_get(struct es_manifest *m, const char *device,
			 struct es_manifest_peer *p);
/* Every peer, ordered by device id; *out malloc'ed (NULL when *n is 0). */
int es_manifest_peer_list(struct es_manifest *m, struct es_manifest_peer **out,
			  size_t *n);
/*
 * es_manifest_peer_approve sets (approved 1) or revokes (0) the approval
 * of a device already seen (`edgesync peers approve DEVICE`);
 * ES_E_MANIFEST_NOTFOUND if it never was.
 */
int es_manifest_peer_approve(struct es_manifest *m, const char *device,
			     int approved);

/* ---- acknowledgements (schema 3) -------------------------------------- */

/*
 * An acknowledgement is the collection version a peer has acknowledged in
 * one direction. peer is a key the caller chooses, 1..ES_MANIFEST_PEER_MAX
 * printable characters: an edge keys a cloud by its URL (it may not know
 * its device id), a cloud keys an edge by device id. The version is in
 * the numbering of the collection's sender: on the side that sends, it
 * is its own collection version.
 *
 * es_manifest_ack_get: *version is 0 if none was recorded.
 * es_manifest_ack_put records version if it is larger than the one
 * recorded (a smaller or equal one is ignored, returning 0); the first
 * put, even of 0, creates the row, and from then on the peer counts in
 * es_manifest_min_ack. -ERANGE above 2^63 - 1.
 * Both: ES_E_MANIFEST_NOTFOUND if the collection is not recorded, -EINVAL
 * for a bad peer key or direction. Dropping the collection drops its
 * acknowledgements.
 */
int es_manifest_ack_get(struct es_manifest *m, const char *peer,
			int64_t collection_id, enum es_manifest_direction dir,
			uint64_t *version);
int es_manifest_ack_put(struct es_manifest *m, const char *peer,
			int64_t collection_id, enum es_manifest_direction dir,
			uint64_t version);
/*
 * es_manifest_min_ack: the smallest version acknowledged in direction dir
 * of the collection over the peers that sync it (those with an ack row,
 * see ack_put). Returns their number (>= 0) or a negative code; *version
 * is the minimum, or UINT64_MAX when no peer syncs the collection.
 * For invariant 4: a SUPERSEDED row may go (es_manifest_segment_remove)
 * once its change_version <= *version of the direction the collection is
 * sent in. A peer that holds nothing of the collection needs no record of
 * what was superseded, as it will be sent the live segments only; sync
 * registers a peer with ack_put(..., 0) before it sends it anything, so
 * that a crash between a peer's commit and its ack_put is covered.
 */
int es_manifest_min_ack(struct es_manifest *m, int64_t collection_id,
			enum es_manifest_direction dir, uint64_t *version);
/*
 * es_manifest_ack_forget drops every acknowledgement of peer (all
 * collections, both directions), so a peer gone for good no longer holds
 * back removals. Returns the number of rows dropped.
 */
int es_manifest_ack_forget(struct es_manifest *m, const char *peer);

/* ---- transfers in progress (schema 3) --------------------------------- */

/*
 * A transfer in progress: one segment (collection, origin, origin_seq)
 * going to or coming from one peer in one direction; these five fields
 * are its key. offset is the number of bytes the receiver holds durably;
 * staged the name of the partial file in sync's staging directory ("" if
 * this side keeps none).
 */
struct es_manifest_transfer {
	int64_t collection_id;
	char origin[ES_MANIFEST_DEVICE_MAX + 1];
	uint64_t origin_seq; /* 1..2^63 - 1 */
	char peer[ES_MANIFEST_PEER_MAX + 1];
	enum es_manifest_direction direction;
	uint64_t offset; /* <= 2^63 - 1 */
	char staged[ES_MANIFEST_STAGED_MAX + 1];
	uint64_t updated_ms; /* Unix ms; put: 0 means now */
};

/*
 * es_manifest_transfer_put inserts or replaces the transfer of t's key
 * (the offset may go down: a transfer may restart); fills updated_ms if
 * 0. ES_E_MANIFEST_NOTFOUND if the collection is not recorded, -EINVAL
 * for a bad field, -ERANGE for origin_seq or offset above 2^63 - 1.
 */
int es_manifest_transfer_put(struct es_manifest *m,
			     struct es_manifest_transfer *t);
/* Key fields of t in, the rest out; ES_E_MANIFEST_NOTFOUND. */
int es_manifest_transfer_get(struct es_manifest *m,
			     struct es_manifest_transfer *t);
/* Deletes the transfer of t's key; ES_E_MANIFEST_NOTFOUND if none. */
int es_manifest_transfer_delete(struct es_manifest *m,
				const struct es_manifest_transfer *t);
/*
 * The transfers with peer (NULL: all), ordered by peer, collection,
 * origin, origin_seq, direction; *out malloc'ed (NULL when *n is 0).
 * Dropping a collection drops its transfers.
 */
int es_manifest_transfer_list(struct es_manifest *m, const char *peer,
			      struct es_manifest_transfer **out, size_t *n);

#endif
