/*
 * edgesync sync: ships immutable, checksummed segments between edge and
 * cloud agents over nng REQ/REP (tcp:// or tls+tcp://), chunked,
 * resumable and verified end to end, in both directions
 * (sync/PROTOCOL.md).
 *
 *   edge   dials every configured cloud peer; per round it uploads the
 *          segments (with their tombstones and clock runs) of its
 *          upload collections that the peer has not acknowledged, then
 *          downloads what changed in the collections the cloud
 *          publishes.
 *   cloud  listens; serves many edges at once (one nng context per
 *          request in flight); receives uploads into its own
 *          collections (created on first upload) and serves downloads.
 *
 * Sync never touches the manifest or the collections itself: the agent
 * hands it an es_sync_host, whose callbacks read what exists and install
 * what arrived. Sync owns the network, the protocol, the staging
 * directory, the checks (every chunk's CRC32C, then the whole file
 * against the metadata and the NDVS footer) and the retries.
 *
 * Threads: es_sync_start starts its own threads; host callbacks are
 * called from them, concurrently. Every function returns 0 (or a count)
 * or a negative code (-errno or ES_E_SYNC_*).
 */
#ifndef EDGESYNC_SYNC_H
#define EDGESYNC_SYNC_H

#include <stddef.h>
#include <stdint.h>

#include "edgesync/clock_runs.h" /* a segment's clock runs and their rule */

#define ES_SYNC_NAME_MAX   64
#define ES_SYNC_DEVICE_MAX 64
#define ES_SYNC_PROTOCOL   2

enum es_sync_err {
	ES_E_SYNC_PROTOCOL = -5201, /* a peer message broke the protocol */
	ES_E_SYNC_VERSION = -5202,  /* peer speaks another protocol version */
	ES_E_SYNC_AUTH = -5203,	    /* identity or token refused */
	ES_E_SYNC_MISMATCH = -5204, /* collection exists with another dim */
	ES_E_SYNC_CHECKSUM = -5205, /* a chunk or file failed its CRC32C */
	ES_E_SYNC_REFUSED = -5206,  /* the peer answered with an error */
	ES_E_SYNC_CONFIG = -5207,   /* configuration unusable */
};

const char *es_sync_strerror(int err);

enum es_sync_role { ES_SYNC_EDGE = 1, ES_SYNC_CLOUD = 2 };
enum es_sync_direction { ES_SYNC_UP = 1, ES_SYNC_DOWN = 2 };

/* Collection flags, as the manifest stores them. */
#define ES_SYNC_FLAG_UPLOAD   (1u << 0)
#define ES_SYNC_FLAG_DOWNLOAD (1u << 1)

struct es_sync_collection {
	char name[ES_SYNC_NAME_MAX + 1];
	uint32_t dim;
	uint32_t metric;
	uint32_t flags;
	uint64_t version;
};

struct es_sync_segment {
	int64_t id; /* the holder's local id */
	char origin[ES_SYNC_DEVICE_MAX + 1];
	uint64_t origin_seq; /* with origin: the segment's global identity */
	uint64_t seal_hlc;
	uint64_t count;
	uint32_t dim;
	uint64_t size;	   /* NDVS bytes */
	uint32_t checksum; /* NDVS footer CRC32C */
	uint64_t
	    add_version; /* the holder's collection version that added it */
	/* Its index file, if the holder has built one (0 if not): size in
	 * bytes and CRC32C of the whole file. Listed in changes only. */
	uint64_t index_size;
	uint32_t index_checksum;
};

struct es_sync_tombstone {
	uint64_t id;
	uint64_t hlc;
	char origin[ES_SYNC_DEVICE_MAX + 1];
};

/*
 * What sync needs from the agent. Arrays returned through out pointers are
 * malloc'ed; sync free()s them. Called from sync's threads, concurrently.
 */
struct es_sync_host {
	/* Every collection with its flags and current version. */
	int (*list_collections)(void *arg, struct es_sync_collection **out,
				size_t *n);
	/*
	 * Creates the collection if it is missing (with c's dim, metric,
	 * flags); ES_E_SYNC_MISMATCH if it exists with another dim or metric.
	 */
	int (*ensure_collection)(void *arg, const struct es_sync_collection *c);
	/*
	 * Segments of coll added after version since, in the order they
	 * were added (add_version ascending). An empty origin is taken as
	 * this device.
	 */
	int (*list_segments)(void *arg, const char *coll, uint64_t since,
			     struct es_sync_segment **out, size_t *n);
	/* The tombstones recorded with the segment added at add_version. */
	int (*segment_tombstones)(void *arg, const char *coll,
				  uint64_t add_version,
				  struct es_sync_tombstone **out, size_t *n);
	/*
	 * The clock runs recorded with the segment added at add_version: a
	 * valid list for it (es_clock_runs_check); {0, seal_hlc} for a
	 * segment of rows recorded without runs.
	 */
	int (*segment_clocks)(void *arg, const char *coll, uint64_t add_version,
			      struct es_clock_run **out, size_t *n);
	/* The path of a segment's NDVS file (malloc'ed). */
	int (*segment_path)(void *arg, const char *coll, int64_t id,
			    char **path);
	/*
	 * Cloud, optional: the path of the index file of segment id
	 * (malloc'ed), the one list_segments described with index_size and
	 * index_checksum; -ENOENT if it has none. NULL: no index is served.
	 */
	int (*index_path)(void *arg, const char *coll, int64_t id, char **path);
	/* 1 if coll holds the segment (origin, origin_seq), its NDVS
	 * footer CRC32C then in *checksum if not NULL; else 0 (-ENOENT for
	 * a missing collection counts as 0). */
	int (*has_segment)(void *arg, const char *coll, const char *origin,
			   uint64_t origin_seq, uint32_t *checksum);
	/*
	 * Installs a staged file that sync has verified against seg: the
	 * host moves it into the collection, records it with its tombstones
	 * and its clock runs in one manifest transaction and makes it
	 * visible, crash-safely. The staged file is gone (or left for sync
	 * to remove) afterwards. seg is what the sender announced: seg->id
	 * is 0 and seg->add_version the sender's (0 from an edge); the host
	 * assigns its own. clocks is a valid list for seg
	 * (es_clock_runs_check), checked by sync. The collection exists
	 * (ensure_collection ran before).
	 */
	int (*install)(void *arg, const char *coll, const char *staged_path,
		       const struct es_sync_segment *seg,
		       const struct es_sync_tombstone *tombs, size_t n,
		       const struct es_clock_run *clocks, size_t n_clocks);
	/*
	 * Edge, optional (fetch_indexes): as install, with the segment's
	 * index file staged at index_path, whose size and whole-file CRC32C
	 * sync has checked against what the peer announced. The host checks
	 * the index against the segment and the collection's metric and
	 * installs the segment with it, so that no index is ever built here
	 * for it. An index it refuses does not fail the segment: the
	 * segment is installed alone (its index built here) and *index_rc
	 * says why (0: the index was kept). Returns what install returns.
	 * Both staged files are gone, or left for sync to remove, after.
	 */
	int (*install_indexed)(void *arg, const char *coll,
			       const char *staged_path, const char *index_path,
			       const struct es_sync_segment *seg,
			       const struct es_sync_tombstone *tombs, size_t n,
			       const struct es_clock_run *clocks,
			       size_t n_clocks, int *index_rc);
	/*
	 * What peer has acknowledged of coll in direction dir (0 if never),
	 * and recording a new acknowledgement (only ever larger). peer is
	 * the peer's device id, as it said in hello. Called by the edge
	 * only: UP is the edge's add_version the cloud has, DOWN the
	 * cloud's version the edge has.
	 */
	int (*ack_get)(void *arg, const char *peer, const char *coll,
		       enum es_sync_direction dir, uint64_t *version);
	int (*ack_put)(void *arg, const char *peer, const char *coll,
		       enum es_sync_direction dir, uint64_t version);
	/* The clock: a peer's hlc observed, so ours stays ahead of it. */
	int (*hlc_observe)(void *arg, uint64_t remote_hlc);
	/*
	 * Cloud, optional: called in hello for a device that proved its
	 * identity (token, or certificate and signature) but is not in
	 * allow_devices. The host records the device as seen (a peer
	 * awaiting approval until an operator approves it) and answers 1
	 * if it is approved (`edgesync peers approve`), 0 if not, or a
	 * negative code (the hello is refused as internal). NULL: no device
	 * is approved at run time.
	 */
	int (*device_approved)(void *arg, const char *device);
	/* A log line from sync's threads. level: 0 error .. 3 debug. */
	void (*log)(void *arg, int level, const char *msg);
	/*
	 * Optional: sync cannot go on in this process. A connection is
	 * wedged inside nng (README, "Known limits"): an edge's to a peer
	 * will not come back, a cloud's will never be freed, nor any closed
	 * after it; why says which. The host should stop and have itself
	 * started again. Called on an edge's peer thread just before it
	 * ends (once per peer at most), or on a cloud's watchdog thread
	 * (once at most): it must not call es_sync_stop (which joins that
	 * thread) itself.
	 */
	void (*restart)(void *arg, const char *why);
	void *arg;
};

struct es_sync_config {
	enum es_sync_role role;
	const char *device_id;	  /* this agent's persistent id */
	const char *listen_url;	  /* cloud: tcp://host:port, tls+tcp://... */
	const char *const *peers; /* edge: the clouds it dials */
	size_t n_peers;
	const char *token;    /* plain tcp/ipc: shared secret, 16..256 */
	const char *tls_cert; /* PEM files; all three for TLS */
	const char *tls_key;
	const char *tls_ca;
	/*
	 * cloud: admitted device ids; a device outside them is admitted if
	 * the host's device_approved says so. Empty: every token holder on
	 * plain tcp:// or ipc:// (labs); with TLS, only approved devices
	 * (a TLS cloud without allow_devices needs device_approved or a
	 * token).
	 */
	const char *const *allow_devices;
	size_t n_allow_devices;
	const char *staging_dir; /* partial transfers, on the data volume */
	/* edge: bytes/s per peer, 0 unlimited; with a limit a chunk is at
	 * most 60 s of it (and at least 1 KiB), so that a request goes at
	 * least that often */
	uint64_t bandwidth;
	uint32_t chunk_size;	 /* default 1 MiB */
	uint32_t interval_ms;	 /* edge: between rounds, default 5000 */
	uint32_t backoff_max_ms; /* edge: reconnect backoff cap, 60000 */
	/*
	 * cloud: a connection that has sent no request for this long, and
	 * is not in one, is closed (0: never; the agent's default is 10
	 * minutes). An edge whose path died without a word (power cut, lost
	 * route) leaves a connection nothing else would close: it would
	 * count as connected, and hold its session, for good.
	 */
	uint32_t idle_timeout_ms;
	/*
	 * edge: fetch the index a cloud has built for a segment with the
	 * segment (needs the host's install_indexed); 0: build them here.
	 */
	int fetch_indexes;
	/*
	 * edge, fetch_indexes: how long to wait for a cloud to index a
	 * segment it lists without one, from when this edge first saw it
	 * so, before taking the segment alone (0: never wait).
	 */
	uint32_t index_wait_ms;
};

struct es_sync;

/*
 * es_sync_start checks c (ES_E_SYNC_CONFIG, with a log line naming what
 * is wrong), copies it (the caller's strings need not outlive the call),
 * creates the staging directory if missing, and starts the threads. URLs
 * are tcp://host:port, tls+tcp://host:port or ipc:///path. A cloud that
 * cannot listen returns the nng error as -errno (-EADDRINUSE...).
 */
int es_sync_start(struct es_sync **sp, const struct es_sync_config *c,
		  const struct es_sync_host *host);
/*
 * Stops the threads; transfers in progress resume at the next start. An
 * edge sends no new request and lets the one in flight get its reply (at
 * most 2 s) before it closes its connections.
 */
void es_sync_stop(struct es_sync *s);

/* es_sync_now wakes the edge's peer threads for a round now. */
void es_sync_now(struct es_sync *s);

struct es_sync_peer_status {
	char peer[128]; /* URL (edge) or device id (cloud) */
	char device[ES_SYNC_DEVICE_MAX + 1];
	int connected;
	uint64_t last_success_ms; /* Unix ms; 0 never */
	uint64_t segments_pending;
	uint64_t bytes_pending;
	uint64_t lag_s; /* age of the oldest unshipped segment */
	uint64_t bytes_sent, bytes_received;
	uint64_t checksum_failures;
	uint64_t segments_sent, segments_received;
	char last_error[256];
	/* cloud: refused at its last hello for want of approval, or
	 * revoked since (es_sync_device_approval) */
	int awaiting_approval;
};

/*
 * Status per peer; *out malloc'ed. Edge: one entry per configured peer
 * (peer = its URL, device = the cloud's id once it said hello). Cloud:
 * one per device that said hello since start (peer = device; pending
 * and lag are the edge's to know, 0 here), and per device refused for
 * want of approval since start (awaiting_approval 1).
 */
int es_sync_status(struct es_sync *s, struct es_sync_peer_status **out,
		   size_t *n);

/* The role s runs as. */
enum es_sync_role es_sync_role(const struct es_sync *s);

/*
 * es_sync_device_check: 0 if s is a device id, 1 to ES_SYNC_DEVICE_MAX
 * printable ASCII characters (0x21..0x7e: no spaces, no control bytes);
 * else -EINVAL, and why (if not NULL) says what is wrong and shows the id
 * ("device id 'a b' contains a space (at 1)"). The one rule of every
 * place a device id comes in: peers, configuration, the API and the CLI.
 */
int es_sync_device_check(const char *s, char *why, size_t len);

/*
 * The TLS files as an agent would load them: cert and key (a pair), ca.
 * 0, or ES_E_SYNC_CONFIG with why saying which file is wrong and how; for
 * `edgesync agent -n`, which checks what a start would refuse.
 */
int es_sync_tls_check(const char *cert, const char *key, const char *ca,
		      char *why, size_t whylen);

/*
 * es_sync_device_approval tells a cloud that an operator approved
 * (approved 1) or revoked (0) device at run time. A revoked device's
 * connections are closed, so its next hello asks device_approved again.
 * Returns 1 if allow_devices (or lab mode) admits the device whatever its
 * approval (then nothing is closed), else 0; 0 on an edge; -EINVAL for a
 * bad device id.
 */
int es_sync_device_approval(struct es_sync *s, const char *device,
			    int approved);

#endif
