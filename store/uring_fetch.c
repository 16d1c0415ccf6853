/*
 * Sector reads for the Vamana disk regime: io_uring, or pread where the
 * kernel refuses a ring (uring_fetch.h has the interface).
 *
 * Each slot moves FREE -> KERNEL (uring_fetch_start) -> USER
 * (uring_fetch_reap) -> FREE (uring_fetch_release); a failed read goes
 * KERNEL -> FREE in uring_fetch_reap.
 *
 * Invariants:
 *   1. f->owned is the number of KERNEL slots. A KERNEL slot's buffer is
 *      never handed out, reused or freed; only its own completion (slot
 *      index and tag, both in user_data) moves it on. A completion that
 *      matches no KERNEL slot with that tag is dropped.
 *   2. A short read is continued from where it stopped, and -EAGAIN or
 *      -EINTR retried a few times, before the slot counts as done; so a
 *      USER slot always holds all len bytes from its offset.
 *   3. The buffers are freed only when f->owned is 0; if the ring fails
 *      so that in-flight reads cannot be waited for, f->broken is set, no
 *      read is started again and fini leaks the buffers rather than let
 *      the kernel write into freed memory.
 *   4. In pread mode a started read happens in uring_fetch_reap, in the
 *      order started; the bytes are the same as through the ring.
 */
#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>

#include "io_util.h"
#include "uring_fetch.h"

#define MAX_RETRIES    8
#define MAX_WAIT_FAILS 1000

enum slot_state { SLOT_FREE = 0, SLOT_KERNEL, SLOT_USER };

struct uring_slot {
	uint8_t state;
	uint8_t retries;
	uint32_t tag;
	uint32_t done; /* bytes already read */
	uint64_t off;
};

static int ring_setup(struct uring_fetch *f)
{
	unsigned entries = f->nslots < 8 ? 8 : f->nslots;
	int rc = -EINVAL;

#ifdef IORING_SETUP_COOP_TASKRUN
	rc = io_uring_queue_init(entries, &f->ring, IORING_SETUP_COOP_TASKRUN);
#endif
	if (rc == -EINVAL)
		rc = io_uring_queue_init(entries, &f->ring, 0);
	return rc;
}

int uring_fetch_init(struct uring_fetch *f, int fd, uint32_t nslots,
		     uint32_t len, int try_uring)
{
	void *bufs = NULL;

	memset(f, 0, sizeof(*f));
	f->fd = fd;
	f->nslots = nslots;
	f->len = len;
	if (posix_memalign(&bufs, 4096, (size_t)nslots * len) != 0)
		return -ENOMEM;
	f->bufs = bufs;
	f->slot = calloc(nslots, sizeof(*f->slot));
	f->fifo = calloc(nslots, sizeof(*f->fifo));
	if (!f->slot || !f->fifo) {
		free(f->fifo);
		free(f->slot);
		free(f->bufs);
		memset(f, 0, sizeof(*f));
		return -ENOMEM;
	}
	/* EPERM, ENOSYS, ENOMEM (memlock): the same reads with pread. */
	if (try_uring && ring_setup(f) == 0)
		f->uring = 1;
	return 0;
}

void uring_fetch_fini(struct uring_fetch *f)
{
	if (!f->slot)
		return;
	uring_fetch_drain(f);
	if (f->uring)
		io_uring_queue_exit(&f->ring);
	if (f->owned == 0)
		free(f->bufs); /* else leaked on purpose: invariant 3 */
	free(f->fifo);
	free(f->slot);
	memset(f, 0, sizeof(*f));
}

/* Queues the rest of slot's read on the ring; submitted by reap. */
static int queue_read(struct uring_fetch *f, uint32_t slot)
{
	struct uring_slot *s = &f->slot[slot];
	struct io_uring_sqe *sqe = io_uring_get_sqe(&f->ring);

	if (!sqe) {
		io_uring_submit(&f->ring);
		sqe = io_uring_get_sqe(&f->ring);
		if (!sqe)
			return -EBUSY;
	}
	io_uring_prep_read(sqe, f->fd, uring_fetch_buf(f, slot) + s->done,
			   f->len - s->done, s->off + s->done);
	io_uring_sqe_set_data64(sqe, (uint64_t)s->tag << 32 | slot);
	return 0;
}

int uring_fetch_start(struct uring_fetch *f, uint32_t slot, uint64_t off)
{
	struct uring_slot *s;
	int rc;

	if (slot >= f->nslots || f->slot[slot].state != SLOT_FREE)
		return -EBUSY;
	if (f->broken)
		return -EIO;
	s = &f->slot[slot];
	s->off = off;
	s->done = 0;
	s->retries = 0;
	s->tag = ++f->tag;
	if (f->uring) {
		rc = queue_read(f, slot);
		if (rc < 0)
			return rc;
	} else {
		f->fifo[(f->fifo_head + f->fifo_len++) % f->nslots] = slot;
	}
	s->state = SLOT_KERNEL;
	f->owned++;
	return 0;
}

void uring_fetch_submit(struct uring_fetch *f)
{
	if (f->uring && io_uring_sq_ready(&f->ring))
		io_uring_submit(&f->ring); /* failures: retried in reap */
}

static int reap_pread(struct uring_fetch *f, uint32_t *slot)
{
	uint32_t i;
	int rc;

	if (f->fifo_len == 0)
		return -ENOENT;
	i = f->fifo[f->fifo_head];
	f->fifo_head = (f->fifo_head + 1) % f->nslots;
	f->fifo_len--;
	rc = io_pread_all(f->fd, uring_fetch_buf(f, i), f->len,
			  (off_t)f->slot[i].off);
	f->slot[i].state = rc < 0 ? SLOT_FREE : SLOT_USER;
	f->owned--;
	*slot = i;
	return rc;
}

/*
 * What one completion means for its slot: 1 if the slot is finished (its
 * result in *res), 0 if it was continued or retried (or is not ours).
 */
static int complete(struct uring_fetch *f, uint64_t ud, int32_t r, int *res)
{
	uint32_t i = (uint32_t)ud;
	struct uring_slot *s = f->slot + i;

	if (i >= f->nslots || s->state != SLOT_KERNEL ||
	    s->tag != (uint32_t)(ud >> 32))
		return 0; /* NEVER: not a read of ours in flight */
	if ((r == -EAGAIN || r == -EINTR) && s->retries < MAX_RETRIES) {
		s->retries++;
		r = 0; /* retry from where it stands */
	} else if (r == 0) {
		r = -EIO; /* end of file inside the read */
	} else if (r > 0) {
		s->done += (uint32_t)r;
	}
	if (r >= 0 && s->done < f->len) {
		*res = queue_read(f, i);
		if (*res == 0)
			return 0;
	} else {
		*res = r < 0 ? r : 0;
	}
	s->state = *res < 0 ? SLOT_FREE : SLOT_USER;
	f->owned--;
	return 1;
}

/* Waits for a completion; 0 with *cqe, or a wait failure. */
static int wait_cqe(struct uring_fetch *f, struct io_uring_cqe **cqe)
{
	int fails = 0, rc;

	for (;;) {
		uring_fetch_submit(f);
		if (io_uring_peek_cqe(&f->ring, cqe) == 0)
			return 0;
		rc = io_uring_submit_and_wait(&f->ring, 1);
		if (rc >= 0)
			continue;
		if ((rc != -EINTR && rc != -EAGAIN && rc != -EBUSY) ||
		    ++fails > MAX_WAIT_FAILS) {
			f->broken = 1;
			return rc;
		}
		sched_yield();
	}
}

int uring_fetch_reap(struct uring_fetch *f, uint32_t *slot)
{
	struct io_uring_cqe *cqe;
	uint64_t ud;
	int32_t r;
	int rc;

	*slot = UINT32_MAX;
	if (!f->uring)
		return reap_pread(f, slot);
	while (f->owned) {
		rc = wait_cqe(f, &cqe);
		if (rc < 0)
			return rc;
		ud = cqe->user_data;
		r = cqe->res;
		io_uring_cqe_seen(&f->ring, cqe);
		if (complete(f, ud, r, &rc)) {
			*slot = (uint32_t)ud;
			return rc;
		}
	}
	return -ENOENT;
}

void uring_fetch_release(struct uring_fetch *f, uint32_t slot)
{
	if (slot < f->nslots && f->slot[slot].state == SLOT_USER)
		f->slot[slot].state = SLOT_FREE;
}

int uring_fetch_drain(struct uring_fetch *f)
{
	uint32_t slot;
	int rc;

	if (!f->uring) {
		for (; f->fifo_len; f->fifo_len--) {
			f->slot[f->fifo[f->fifo_head]].state = SLOT_FREE;
			f->fifo_head = (f->fifo_head + 1) % f->nslots;
			f->owned--;
		}
	}
	while (f->owned) {
		rc = uring_fetch_reap(f, &slot);
		if (rc < 0 && f->broken)
			return rc;
		uring_fetch_release(f, slot);
	}
	for (uint32_t i = 0; i < f->nslots; i++)
		uring_fetch_release(f, i);
	return 0;
}
