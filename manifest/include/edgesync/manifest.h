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
 *      (otherwise that peer never learns it was superseded).
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
 * Peers, what each has acknowledged and transfers in progress join with
 * sync, as a schema migration.
 */
#ifndef EDGESYNC_MANIFEST_H
#define EDGESYNC_MANIFEST_H

#include <stddef.h>
#include <stdint.h>

#define ES_MANIFEST_NAME_MAX   64 /* collection names: [a-z0-9_-]{1,64} */
#define ES_MANIFEST_DEVICE_MAX 64 /* device ids: 1..64 of ASCII 0x21..0x7e */
#define ES_MANIFEST_DIM_MAX    4096

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
 * (invariant 4 above), bumping the version. ES_E_MANIFEST_STATE otherwise.
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

#endif
