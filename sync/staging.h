/*
 * Private to sync: the staging directory, where a segment being received
 * (an upload on the cloud, a download on the edge) accumulates until it
 * is verified and handed to the host.
 *
 * A transfer is named by a key: 32 hex digits of SHA-256 over (collection,
 * origin, origin_seq). Names that came from a peer never become paths.
 * Per key, two files:
 *
 *   <key>.meta  what the segment should be (collection, origin, seq,
 *               size, count, dim, checksum, seal clock): 188 bytes,
 *               little-endian, magic "ESSM", version 1, CRC32C; written
 *               to <key>.meta.tmp, fsynced, renamed.
 *   <key>.part  the bytes received so far, in order; the blocks of the
 *               whole segment are allocated when a transfer of it
 *               starts or resumes (fallocate, keeping the length), so a
 *               disk without the room refuses the transfer at its start,
 *               and given back when the transfer ends unfinished
 *               (sync_staging_release), so that a peer that begins and
 *               goes holds no room. A transfer never takes the last of
 *               the disk (sync_staging_keep_free). Its length IS
 *               the resume offset: a chunk is written with pwrite at the
 *               current length (a receiver holds chunks that arrive
 *               ahead of it in memory until the gap is filled), so after
 *               a cut or a restart of either side the sender resumes at
 *               the length, re-sending at most what was in flight. The
 *               appends are not fsync'ed one by one: a killed process
 *               loses nothing the kernel has, and the whole file is
 *               fdatasync'ed by sync_staging_check before it is
 *               verified and installed. After a power cut the length may
 *               cover bytes that never reached the disk; the check at
 *               commit then fails and the transfer starts over.
 *
 * Invariants:
 *   1. A .part exists only beside a .meta that describes it; a .meta is
 *      written before its .part is created, and the .part is removed
 *      before a .meta that differs replaces it.
 *   2. A .part never grows beyond the size in its .meta.
 *   3. Nothing staged is trusted: sync_staging_check verifies the whole
 *      file (exact size, full CRC32C, dim, count and footer checksum
 *      against the metadata) before it is installed. A power cut during
 *      an append can at worst make that check fail, and the transfer
 *      starts over.
 *   4. Every operation on a key runs under that key's lock
 *      (sync_staging_lock; one of SYNC_STAGING_STRIPES mutexes), so two
 *      sessions receiving the same segment, and the sweep, serialize.
 */
#ifndef EDGESYNC_SYNC_STAGING_H
#define EDGESYNC_SYNC_STAGING_H

#include <pthread.h>
#include <stdint.h>

#include "edgesync/sync.h"

#define SYNC_KEY_LEN	     32
#define SYNC_STAGING_STRIPES 64
#define SYNC_STAGE_MAX_AGE_S (24 * 3600)

struct sync_staging {
	char *dir;
	pthread_mutex_t stripes[SYNC_STAGING_STRIPES];
	/* Serializes the free-space check and the reservation of new
	 * transfers (two begins must not both take the last room). */
	pthread_mutex_t room_lock;
	/* Transfers under way per key (sync_staging_hold), so that the
	 * end of one does not give back the room another is writing into;
	 * under holds_lock, which is never held across I/O. */
	pthread_mutex_t holds_lock;
	struct sync_stage_hold *holds;
};

/* What a staged segment must turn out to be. */
struct sync_stage_meta {
	char coll[ES_SYNC_NAME_MAX + 1];
	char origin[ES_SYNC_DEVICE_MAX + 1];
	uint64_t origin_seq;
	uint64_t seal_hlc;
	uint64_t count;
	uint64_t size;
	uint32_t dim;
	uint32_t checksum;
};

void sync_stage_meta_from(struct sync_stage_meta *m, const char *coll,
			  const struct es_sync_segment *seg);

/*
 * A receiver's writer, one per transfer in progress (a cloud session's
 * upload, an edge's download), owned by its caller:
 *
 * - Streamed writes. An append is a buffered pwrite: when it returns,
 *   the bytes are in the page cache, which a killed process does not
 *   lose, so a receiver may acknowledge them at once (only what is still
 *   on the wire is lost to a crash). Its writeback starts right away
 *   (sync_file_range WRITE), and the appends before it are waited for
 *   and dropped from the cache (from flushed up to it): a transfer keeps
 *   about one append in memory however large the segment, the disk
 *   works while the next append crosses the network, and the fdatasync
 *   at commit has only the last one left to write. A failed writeback
 *   is reported to the wait, not to a later fdatasync on another
 *   descriptor (the kernel reports it once), so the writer keeps it in
 *   werr and the range stays cached; sync_staging_check then fails, and
 *   the transfer starts over; so does a failing fdatasync at the check
 *   (the last append's writeback, which no wait saw: a second check
 *   would find the error already reported). A writer with
 *   defer set leaves the streaming to sync_staging_stream, which the
 *   cloud calls after its reply has gone, so that waiting for the disk
 *   is off the reply's path.
 * - The running sum. crc is the CRC32C of [0, crc_len) of the .part,
 *   folded from each append's (known) CRC with es_crc32c_combine as the
 *   bytes are written, so sync_staging_check verifies the whole file
 *   without reading it back. It is kept only while every append lands
 *   at crc_len; a transfer resumed at a length written by an earlier
 *   writer (another connection, another run) has summed != 1, and the
 *   check reads the file instead.
 */
struct sync_stage_writer {
	/* The .part, open from the first append until fini (has_fd), so
	 * that an append does not open and close it. An append whose
	 * descriptor is no longer the file at the path (removed, or
	 * installed, since) opens the path again. */
	int has_fd, fd;
	uint64_t flushed; /* the .part before it is on disk and uncached */
	/* With defer set, appends leave their streaming to
	 * sync_staging_stream: [pend_off, pend_end) awaits it. */
	int defer;
	uint64_t pend_off, pend_end;
	/* A writeback of the .part failed (-errno): its bytes on disk may
	 * not be what was appended, so sync_staging_check fails. Kept here
	 * because the failure is reported once, to the call that waits. */
	int werr;
	int summed; /* crc covers [0, crc_len) of the .part */
	uint32_t crc;
	uint64_t crc_len;
};

/* A writer for a transfer that starts at offset (summed iff 0). fini
 * closes its descriptor; it is safe on a zeroed writer and twice. */
void sync_stage_writer_init(struct sync_stage_writer *w, uint64_t offset);
void sync_stage_writer_fini(struct sync_stage_writer *w);

/* Creates dir (mode 0700) if it is missing; 0 or -errno. */
int sync_staging_init(struct sync_staging *st, const char *dir);
void sync_staging_fini(struct sync_staging *st);

void sync_staging_key(const char *coll, const char *origin, uint64_t seq,
		      char key[SYNC_KEY_LEN + 1]);
pthread_mutex_t *sync_staging_lock(struct sync_staging *st, const char *key);

/* The rest run under the key's lock. */

/*
 * sync_staging_open starts or resumes the transfer of m: if the .meta on
 * disk describes m, *offset is the .part's length; otherwise the old
 * files go, a new .meta is written and *offset is 0. -ENOSPC if the
 * segment's blocks would leave its filesystem less than keep_free.
 */
int sync_staging_open(struct sync_staging *st, const char *key,
		      const struct sync_stage_meta *m, uint64_t *offset);

/* What transfers leave free on the staging filesystem: a tenth of it, at
 * most SYNC_STAGING_KEEP_MAX, for the agent's own log and manifest. */
#define SYNC_STAGING_KEEP_MAX (1ull << 30)
uint64_t sync_staging_keep_free(const struct sync_staging *st);

/*
 * The end of an unfinished transfer through w, under the key's lock: the
 * blocks reserved past the .part's length are given back (unless another
 * transfer of the key holds it: sync_staging_hold). If a writeback of
 * w's failed, the staged files go instead, whoever holds them, so the
 * transfer starts over (see sync_staging_release in staging.c).
 */
void sync_staging_release(struct sync_staging *st, const char *key,
			  const struct sync_stage_writer *w);

/* A transfer of key starts (hold) or ends (unhold: returns how many
 * others still hold it). Any thread; no lock needed. */
int sync_staging_hold(struct sync_staging *st, const char *key);
int sync_staging_unhold(struct sync_staging *st, const char *key);

/*
 * sync_staging_append writes n bytes at off through w (see the writer
 * above; <key>.part for durability). crc, if not NULL, is the CRC32C of
 * the n bytes, already checked by the caller (else w computes it).
 * off must be the .part's length: otherwise SYNC_E_OFFSET with *now set
 * to the length. -ENOENT if nothing is staged (open first). On success
 * *now is off + n.
 */
int sync_staging_append(struct sync_staging *st, const char *key,
			struct sync_stage_writer *w, uint64_t off,
			const void *p, size_t n, const uint32_t *crc,
			uint64_t *now);

/*
 * sync_staging_stream does the streaming (see the writer) of what w
 * appended with defer set since the last call, if anything: the caller
 * has acknowledged those bytes already, and the disk's waiting is off
 * its reply's path. It works on w's descriptor alone, so it needs only
 * what guards w, not the key's lock (a stripe other transfers share:
 * the wait for the disk must not hold them up); errors are left to the
 * check.
 */
void sync_staging_stream(struct sync_stage_writer *w);

/*
 * sync_staging_check makes the staged file durable (fdatasync) and
 * verifies it against m (invariant 3): the header and footer through
 * es_ndvs_open, and the CRC32C of the whole file from w's running sum
 * if it covers the file, else by reading it (w may be NULL).
 * 0, or ES_E_SYNC_CHECKSUM with the reason in why, or -errno.
 */
int sync_staging_check(struct sync_staging *st, const char *key,
		       const struct sync_stage_meta *m,
		       const struct sync_stage_writer *w, char *why,
		       size_t whylen);

/*
 * A segment's index file (PROTOCOL.md, fetch part "index") is staged as
 * a transfer of its own, under sync_staging_index_key: SHA-256 over the
 * same identity and the word "index", with the segment key's first two
 * digits, so that both share one lock stripe and an install can handle
 * the pair under one lock. Its .meta says coll, origin and origin_seq,
 * dim 0 and count 0, the index's size and its whole-file CRC32C as
 * checksum (sync_stage_meta_index); the sweep treats it like any other
 * (gone once its segment is installed).
 */
void sync_staging_index_key(const char *coll, const char *origin, uint64_t seq,
			    char key[SYNC_KEY_LEN + 1]);
void sync_stage_meta_index(struct sync_stage_meta *m, const char *coll,
			   const struct es_sync_segment *seg);
/*
 * sync_staging_check_crc makes the staged file durable and checks that it
 * has m->size bytes whose CRC32C is m->checksum (an index: sync does not
 * parse it; the host verifies what it is), from w's running sum if it
 * covers the file, else by reading it: 0, ES_E_SYNC_CHECKSUM with the
 * reason in why, or -errno.
 */
int sync_staging_check_crc(struct sync_staging *st, const char *key,
			   const struct sync_stage_meta *m,
			   const struct sync_stage_writer *w, char *why,
			   size_t whylen);

/* The .part's path (malloc'ed), for the host's install. */
int sync_staging_path(struct sync_staging *st, const char *key, char **path);

/* Removes both files of key (missing ones are fine). */
void sync_staging_remove(struct sync_staging *st, const char *key);

/*
 * sync_staging_sweep removes what no transfer will finish: files older
 * than max_age_s, a .part without its .meta, unreadable metadata, and
 * transfers whose segment installed() says is already installed (1).
 * Returns the number of transfers removed.
 */
int sync_staging_sweep(struct sync_staging *st, uint64_t max_age_s,
		       int (*installed)(void *arg,
					const struct sync_stage_meta *m),
		       void *arg);

#endif
