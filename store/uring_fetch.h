/*
 * Private to the store: one thread's sector reader for the disk regime of
 * the Vamana search. A fixed set of slots, each with a 4096-aligned buffer
 * of len bytes; a read is started into a slot, completes (io_uring
 * completions are matched to their slot by user_data) and is then the
 * caller's until it releases the slot. Where io_uring is refused (or not
 * wanted) the same reads are done with pread when reaped: identical
 * bytes, identical slots.
 *
 * Ownership: a slot's buffer belongs to the kernel from uring_fetch_start
 * until uring_fetch_reap hands that slot back; it is never reused or freed
 * in between. uring_fetch_drain waits for every such read; uring_fetch_fini
 * frees the buffers only when nothing is left in flight.
 *
 * Not thread-safe: one fetcher per thread.
 */
#ifndef EDGESYNC_URING_FETCH_H
#define EDGESYNC_URING_FETCH_H

#include <liburing.h>
#include <stdint.h>

struct uring_slot;

struct uring_fetch {
	int fd;
	int uring; /* 1 if reads go through ring */
	struct io_uring ring;
	uint32_t nslots, len;
	unsigned char *bufs; /* nslots * len, 4096-aligned */
	struct uring_slot *slot;
	uint32_t owned; /* slots started and not yet reaped */
	uint32_t *fifo; /* pread mode: started slots, in order */
	uint32_t fifo_head, fifo_len;
	uint32_t tag; /* bumped per start: stale CQEs never match */
	int broken;   /* the ring failed: nothing more is started */
};

/*
 * uring_fetch_init prepares nslots slots of len bytes (a multiple of 4096)
 * reading from fd. With try_uring it sets up a ring and falls back to
 * pread if the kernel refuses it. Returns 0 or -ENOMEM.
 */
int uring_fetch_init(struct uring_fetch *f, int fd, uint32_t nslots,
		     uint32_t len, int try_uring);
void uring_fetch_fini(struct uring_fetch *f);

static inline unsigned char *uring_fetch_buf(const struct uring_fetch *f,
					     uint32_t slot)
{
	return f->bufs + (uint64_t)slot * f->len;
}

/*
 * uring_fetch_start begins reading len bytes at off (a multiple of 4096)
 * into a free slot. Reads started are submitted together by
 * uring_fetch_submit or the next uring_fetch_reap. Returns 0, -EBUSY if
 * the slot is not free, or -EIO.
 */
int uring_fetch_start(struct uring_fetch *f, uint32_t slot, uint64_t off);

/*
 * uring_fetch_submit hands the reads started so far to the kernel now, so
 * they proceed while the caller computes; a failure here is retried by
 * uring_fetch_reap. Nothing to do in pread mode.
 */
void uring_fetch_submit(struct uring_fetch *f);

/*
 * uring_fetch_reap waits for one started read to finish and stores its
 * slot in *slot; the buffer is then the caller's until
 * uring_fetch_release. Returns 0, -ENOENT if none is in flight, or a
 * negative errno for a failed read (*slot names it; it is released).
 */
int uring_fetch_reap(struct uring_fetch *f, uint32_t *slot);
void uring_fetch_release(struct uring_fetch *f, uint32_t slot);

/* uring_fetch_drain waits for every read in flight and releases it all. */
int uring_fetch_drain(struct uring_fetch *f);

#endif
