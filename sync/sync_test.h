/*
 * Private to sync and its tests: hooks that let a test cut a transfer,
 * damage or hold a chunk or fail the watchdog's probe at a chosen
 * moment, as the manifest's test hooks do. All NULL/0 in production; set
 * them before es_sync_start and clear them after es_sync_stop.
 */
#ifndef EDGESYNC_SYNC_TEST_H
#define EDGESYNC_SYNC_TEST_H

#include <stddef.h>
#include <stdint.h>

struct sync_test_hooks {
	void *arg;
	/* Edge, upload: called with each chunk after its CRC32C was
	 * computed, before it is sent; may change the bytes. */
	void (*chunk_out)(void *arg, uint64_t offset, unsigned char *data,
			  size_t n);
	/* Edge, upload: called after each chunk is acknowledged; nonzero
	 * aborts the round as if the connection had been cut. */
	int (*chunk_acked)(void *arg, uint64_t offset, uint64_t size);
	/* Edge, download: called after each fetched piece is staged at
	 * offset (index: 1 for an index file); nonzero aborts the round as
	 * if the connection had been cut. */
	int (*fetched)(void *arg, int index, uint64_t offset, size_t n);
	/* Staging: a negative errno the writeback of staged bytes fails with
	 * (as a disk's EIO would), in place of sync_file_range's result and
	 * of the fdatasync of the check. */
	int writeback_err;
	/* Staging: the bytes free on its filesystem, in place of statvfs's
	 * (0: statvfs's). */
	uint64_t staging_avail;
	/* Cloud: the tombstones uploads in progress may hold in all, in
	 * place of CLOUD_TOMBS_MAX (0: that). */
	unsigned tombs_max;
	/* Cloud: the clock runs uploads in progress may hold in all, in
	 * place of CLOUD_CLOCKS_MAX (0: that). */
	unsigned clocks_max;
	/* Cloud: nonzero makes the watchdog's probe fail. */
	int (*probe_fail)(void *arg);
	/* Cloud: the watchdog's period in ms (0: the default, 3000). */
	unsigned watchdog_ms;
	/* Edge: how long a request waits for a connection (0: 10000). */
	unsigned send_timeout_ms;
	/* Cloud, upload: called with each chunk's offset before it is
	 * written; may block, as a slow disk would. */
	void (*chunk_in)(void *arg, uint64_t offset);
	/* Edge: how long stop lets a request in flight finish (0: the
	 * default, PEER_STOP_GRACE_MS). */
	unsigned stop_grace_ms;
	/* Edge: the connections nng counts on the peer's dialer, in place
	 * of nng's statistic (so a test can show a wedged one), and how
	 * long one may look wedged (0: PEER_WEDGE_MS). */
	int (*dialer_pipes)(void *arg, const char *url);
	unsigned wedge_ms;
	/* Cloud: called on nng's thread that closes connections, after a
	 * connection's session is gone; may block it, as a close stuck
	 * inside nng does (wedge_ms applies to the cloud too). */
	void (*pipe_removed)(void *arg, uint32_t pipe);
	/* Edge: how long a request waits for its reply (0: the caller's,
	 * PEER_TIMEOUT_MS for most). */
	unsigned reply_timeout_ms;
};

extern struct sync_test_hooks sync_test_hooks;

#endif
