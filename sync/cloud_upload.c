/*
 * The cloud's side of an upload (PROTOCOL.md, "Upload"):
 *
 *   begin ----------> duplicate (has_segment)          [done]
 *     |
 *     +-------------> resume at the staged length      [UPLOADING]
 *   more_tombstones   appends to the session's list    [UPLOADING]
 *   more_clocks       likewise, each page checked against the runs
 *                     before it                        [UPLOADING]
 *   chunk             CRC32C (cloud_handle, before the session's lock),
 *                     then written at the staged length, or held in
 *                     memory if it is ahead of it (the window), or
 *                     ignored if it is behind it (a duplicate), and only
 *                     then acknowledged              [UPLOADING]
 *   commit            fdatasync, whole-file check -> host install ->
 *                     installed                        [done]
 *
 * A chunk is acknowledged once its append returned: its bytes are in the
 * page cache, which a crash of this process does not lose. So a crash
 * costs only the chunk in flight, and nothing is durable before commit's
 * fdatasync (a power cut makes the check at commit fail, and the sender
 * starts over). Their way to disk (staging.h, the writer's streaming)
 * starts after the reply went (cloud_stream, called by the worker), while
 * the next chunk crosses the network.
 *
 * The transfer state (metadata, tombstones, clock runs, held chunks)
 * lives in the connection's session; the bytes live in the staging
 * directory, so a new connection (after a cut, or after either side
 * restarted) begins again and resumes at the staged length. Any failed
 * check of the whole file deletes the staged bytes: the sender starts
 * over.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cloud.h"
#include "edgesync/crc32c.h"
#include "sync_test.h"

static int internal(struct sync_fail *f, const char *what, int rc)
{
	return sync_failf(f, SYNC_C_INTERNAL, "%s: %s", what,
			  es_sync_strerror(rc));
}

/* The session's upload, if rq names it. */
static int upload_match(struct cloud_session *ss, const struct sync_req *rq,
			struct sync_fail *f)
{
	struct cloud_upload *up = &ss->up;

	if (up->active && !strcmp(up->coll.name, rq->coll.name) &&
	    !strcmp(up->seg.origin, rq->seg.origin) &&
	    up->seg.origin_seq == rq->seg.origin_seq)
		return 0;
	return sync_failf(f, SYNC_C_STATE,
			  "no upload of segment %s/%" PRIu64
			  " of '%s' is open on this connection: send begin",
			  rq->seg.origin, rq->seg.origin_seq, rq->coll.name);
}

/* The most entries of a list's kind that uploads in progress may hold
 * in all. */
static unsigned list_max(const struct cloud_list *l)
{
	unsigned hook = l->kind == &sync_list_clocks
			    ? sync_test_hooks.clocks_max
			    : sync_test_hooks.tombs_max;

	if (hook)
		return hook;
	return l->kind == &sync_list_clocks ? CLOUD_CLOCKS_MAX
					    : CLOUD_TOMBS_MAX;
}

/*
 * Starts l for a begin that announced total entries, all of them
 * counted in *held at once: an upload admitted can always take the rest
 * of its pages, so uploads that each got part of their lists in can
 * never hold each other up. f says why not.
 */
static int list_begin(struct cloud_list *l, const struct sync_list_kind *k,
		      atomic_size_t *held, uint64_t total, struct sync_fail *f)
{
	unsigned max;

	memset(l, 0, sizeof(*l));
	l->kind = k;
	l->total = total;
	max = list_max(l);
	if (total > max || atomic_fetch_add(held, total) + total > max) {
		if (total <= max)
			atomic_fetch_sub(held, total);
		return sync_failf(f, SYNC_C_INTERNAL,
				  "the cloud holds the most %s of uploads in "
				  "progress it keeps (%u): try later",
				  k->what, max);
	}
	l->held = held;
	return 0;
}

/* Keeps the n entries at v in l (within its total); f says why not. */
static int list_add(struct cloud_list *l, const void *v, size_t n,
		    struct sync_fail *f)
{
	size_t size = l->kind->size;
	unsigned char *p;

	if (n == 0)
		return 0;
	p = realloc(l->v, (l->n + n) * size);
	if (!p)
		return internal(f, l->kind->what, -ENOMEM);
	memcpy(p + l->n * size, v, n * size);
	l->v = p;
	l->n += n;
	return 0;
}

static void list_release(struct cloud_list *l)
{
	if (l->held)
		atomic_fetch_sub(l->held, l->total);
	free(l->v);
	memset(l, 0, sizeof(*l));
}

/* begin's clock runs (parsed and checked). */
static int begin_clocks(struct cloud_upload *up, const struct sync_req *rq,
			struct sync_fail *f)
{
	return list_add(&up->clocks, rq->clocks, rq->n_clocks, f);
}

/* 1 if the segment is installed here (its staging then removed), 0 if
 * not, or < 0; under the key's lock. */
static int installed(struct sync_cloud *c, const char *coll,
		     const struct es_sync_segment *seg, const char *key,
		     struct sync_fail *f)
{
	const struct es_sync_host *h = &c->s->host;
	uint32_t have = 0;
	int rc =
	    h->has_segment(h->arg, coll, seg->origin, seg->origin_seq, &have);

	if (rc == -ENOENT || rc == 0)
		return 0;
	if (rc < 0)
		return internal(f, "has_segment", rc);
	sync_staging_remove(&c->s->staging, key);
	/* The same identity with other bytes: not a duplicate to drop in
	 * silence (a device whose data directory was restored from a
	 * backup numbers new segments as it did the old ones). */
	if (have != seg->checksum)
		return sync_failf(f, SYNC_C_MISMATCH,
				  "segment %s/%" PRIu64 " of '%s' is here with "
				  "other contents (CRC32C 0x%08x, this one "
				  "0x%08x); was the device's data directory "
				  "restored from a backup? It needs a new "
				  "device id",
				  seg->origin, seg->origin_seq, coll, have,
				  seg->checksum);
	return 1;
}

static void duplicate(struct es_cbor_enc *out)
{
	sync_enc_ok(out, 1);
	es_cbor_enc_kv_text(out, "state", "duplicate");
}

int cloud_begin(struct sync_cloud *c, struct cloud_session *ss,
		const struct sync_req *rq, struct es_cbor_enc *out,
		struct sync_fail *f)
{
	const struct es_sync_host *h = &c->s->host;
	struct cloud_upload *up = &ss->up;
	struct es_sync_collection col = rq->coll;
	struct sync_stage_meta m;
	pthread_mutex_t *lk;
	uint64_t off;
	int rc, held;

	cloud_session_end_upload(c, ss);
	if (strcmp(rq->seg.origin, ss->device) != 0)
		return sync_failf(f, SYNC_C_FORBIDDEN,
				  "segment origin '%s' is not your device id "
				  "'%s': devices upload their own segments",
				  rq->seg.origin, ss->device);
	sync_staging_key(col.name, rq->seg.origin, rq->seg.origin_seq, up->key);
	lk = sync_staging_lock(&c->s->staging, up->key);
	pthread_mutex_lock(lk);
	rc = installed(c, col.name, &rq->seg, up->key, f);
	pthread_mutex_unlock(lk);
	if (rc < 0)
		return -1;
	if (rc == 1) {
		duplicate(out);
		return 0;
	}
	col.flags = 0;
	col.version = 0;
	rc = h->ensure_collection(h->arg, &col);
	if (rc == ES_E_SYNC_MISMATCH)
		return sync_failf(f, SYNC_C_MISMATCH,
				  "collection '%s' exists here with another "
				  "dim or metric",
				  col.name);
	if (rc < 0)
		return internal(f, "ensure_collection", rc);
	sync_stage_meta_from(&m, col.name, &rq->seg);
	/* The lists first: a begin refused for them reserves nothing. */
	up->held_total = &c->held_bytes;
	if (list_begin(&up->tombs, &sync_list_tombs, &c->tombs_held,
		       rq->tombs_total, f) ||
	    list_begin(&up->clocks, &sync_list_clocks, &c->clocks_held,
		       rq->clocks_total, f) ||
	    list_add(&up->tombs, rq->tombs, rq->n_tombs, f) ||
	    begin_clocks(up, rq, f)) {
		cloud_session_end_upload(c, ss); /* what was kept of them */
		return -1;
	}
	/*
	 * Asked again with the staging: a commit of this segment on another
	 * connection of the edge (after a cut, say) installs it and removes
	 * its staging under this lock, and a fresh transfer started after
	 * it would have the whole segment sent again for nothing.
	 */
	pthread_mutex_lock(lk);
	held = installed(c, col.name, &rq->seg, up->key, f);
	rc = held ? 0 : sync_staging_open(&c->s->staging, up->key, &m, &off);
	if (!held && rc == 0)
		rc = sync_staging_hold(&c->s->staging, up->key);
	up->holding = !held && rc == 0;
	pthread_mutex_unlock(lk);
	if (held || rc)
		cloud_session_end_upload(c, ss); /* its lists */
	if (held < 0)
		return -1;
	if (held) {
		duplicate(out);
		return 0;
	}
	if (rc == -ENOSPC)
		return sync_failf(
		    f, SYNC_C_INTERNAL,
		    "no room to stage segment %s/%" PRIu64 " (%" PRIu64
		    " bytes): the cloud keeps %" PRIu64
		    " bytes of its disk free",
		    rq->seg.origin, rq->seg.origin_seq, rq->seg.size,
		    sync_staging_keep_free(&c->s->staging));
	if (rc)
		return internal(f, "staging", rc);
	up->coll = col;
	up->seg = rq->seg;
	sync_stage_writer_init(&up->w, off);
	up->w.defer = 1; /* streamed after the reply: cloud_stream */
	up->times.begun_us = sync_mono_us();
	up->active = 1;
	sync_enc_ok(out, 2);
	es_cbor_enc_kv_text(out, "state", "resume");
	es_cbor_enc_kv_uint(out, "offset", off);
	return 0;
}

/*
 * more_tombstones, more_clocks: the page of l at rq->first, the n
 * entries at v. Clock runs must follow those held in order.
 */
static int list_more(struct cloud_session *ss, const struct sync_req *rq,
		     struct cloud_list *l, const void *v, size_t n,
		     struct es_cbor_enc *out, struct sync_fail *f)
{
	const struct es_clock_run *held = ss->up.clocks.v;
	char why[200];

	if (upload_match(ss, rq, f))
		return -1;
	if (rq->first != l->n) {
		f->has_offset = 1;
		f->offset = l->n;
		return sync_failf(f, SYNC_C_OFFSET,
				  "%s from %" PRIu64 " sent; %zu are here",
				  l->kind->what, rq->first, l->n);
	}
	if (n > l->total - l->n)
		return sync_failf(f, SYNC_C_INVALID,
				  "more %s than the %" PRIu64 " announced",
				  l->kind->what, l->total);
	if (l == &ss->up.clocks &&
	    sync_clocks_check(&ss->up.seg, v, n, l->n,
			      l->n ? &held[l->n - 1] : NULL, l->total, why,
			      sizeof(why)))
		return sync_failf(f, SYNC_C_INVALID, "clocks: %s", why);
	if (list_add(l, v, n, f))
		return -1;
	sync_enc_ok(out, 1);
	es_cbor_enc_kv_uint(out, "offset", l->n);
	return 0;
}

int cloud_more_tombstones(struct sync_cloud *c, struct cloud_session *ss,
			  const struct sync_req *rq, struct es_cbor_enc *out,
			  struct sync_fail *f)
{
	return list_more(ss, rq, &ss->up.tombs, rq->tombs, rq->n_tombs, out, f);
}

int cloud_more_clocks(struct sync_cloud *c, struct cloud_session *ss,
		      const struct sync_req *rq, struct es_cbor_enc *out,
		      struct sync_fail *f)
{
	return list_more(ss, rq, &ss->up.clocks, rq->clocks, rq->n_clocks, out,
			 f);
}

void cloud_upload_release(struct cloud_upload *up)
{
	size_t bytes = 0;

	for (size_t i = 0; i < up->n_held; i++) {
		bytes += up->held[i].n;
		free(up->held[i].data);
	}
	if (bytes && up->held_total)
		atomic_fetch_sub(up->held_total, bytes);
	list_release(&up->tombs);
	list_release(&up->clocks);
	sync_stage_writer_fini(&up->w);
	memset(up, 0, sizeof(*up));
}

/* Takes held chunk i out of the list (its data stays with the caller). */
static void held_take(struct cloud_upload *up, size_t i)
{
	atomic_fetch_sub(up->held_total, up->held[i].n);
	up->held[i] = up->held[--up->n_held];
}

/*
 * Keeps a chunk that arrived ahead of the staged length *now, if it lies
 * within the window and the budget allows; else SYNC_E_OFFSET (the
 * sender resumes at *now).
 */
static int hold(struct sync_cloud *c, struct cloud_upload *up, uint64_t off,
		const unsigned char *data, size_t n, uint64_t now)
{
	struct cloud_held *h;

	for (size_t i = 0; i < up->n_held; i++)
		if (up->held[i].off == off && up->held[i].n == n)
			return 0; /* a duplicate of a held chunk */
	if (off - now > (uint64_t)SYNC_WINDOW_MAX * c->s->cfg.chunk_size ||
	    up->n_held == SYNC_WINDOW_MAX)
		return SYNC_E_OFFSET;
	if (atomic_fetch_add(up->held_total, n) + n > CLOUD_HELD_MAX) {
		atomic_fetch_sub(up->held_total, n);
		return SYNC_E_OFFSET;
	}
	h = &up->held[up->n_held];
	h->data = malloc(n);
	if (!h->data) {
		atomic_fetch_sub(up->held_total, n);
		return -ENOMEM;
	}
	memcpy(h->data, data, n);
	h->off = off;
	h->n = n;
	up->n_held++;
	return 0;
}

/*
 * Writes [off, off + n) where it extends the staged bytes: a chunk that
 * is all there already is a duplicate (a chunk sent again), one that
 * overlaps the end is written from the end, one beyond the end is held.
 * *now is the staged length afterwards. Under the key's lock.
 */
static int put(struct sync_cloud *c, struct cloud_upload *up, uint64_t off,
	       const unsigned char *data, size_t n, uint32_t crc, uint64_t *now)
{
	int rc = sync_staging_append(&c->s->staging, up->key, &up->w, off, data,
				     n, &crc, now);

	if (rc != SYNC_E_OFFSET)
		return rc;
	if (off > *now)
		return hold(c, up, off, data, n, *now);
	if (off + n <= *now)
		return 0;
	return sync_staging_append(&c->s->staging, up->key, &up->w, *now,
				   data + (*now - off), n - (*now - off), NULL,
				   now);
}

/* Writes the held chunks the staged length has reached. */
static int drain(struct sync_cloud *c, struct cloud_upload *up, uint64_t *now)
{
	int rc = 0, again = 1;

	while (rc == 0 && again) {
		again = 0;
		for (size_t i = 0; i < up->n_held; i++) {
			struct cloud_held h = up->held[i];

			if (h.off > *now)
				continue;
			held_take(up, i);
			if (h.off + h.n > *now)
				rc = sync_staging_append(
				    &c->s->staging, up->key, &up->w, *now,
				    h.data + (*now - h.off),
				    h.n - (size_t)(*now - h.off), NULL, now);
			free(h.data);
			again = 1;
			break;
		}
	}
	return rc;
}

int cloud_chunk(struct sync_cloud *c, struct cloud_session *ss,
		const struct sync_req *rq, struct es_cbor_enc *out,
		struct sync_fail *f)
{
	struct cloud_upload *up = &ss->up;
	pthread_mutex_t *lk;
	uint64_t now = 0, t0;
	int rc;

	if (upload_match(ss, rq, f))
		return -1;
	if (rq->data_len == 0 || rq->data_len > c->s->cfg.chunk_size)
		return sync_failf(f, SYNC_C_INVALID,
				  "a chunk carries 1 to %" PRIu32
				  " bytes, not %zu",
				  c->s->cfg.chunk_size, rq->data_len);
	if (rq->offset > up->seg.size ||
	    rq->data_len > up->seg.size - rq->offset)
		return sync_failf(f, SYNC_C_INVALID,
				  "chunk [%" PRIu64 ", +%zu) lies beyond the "
				  "segment's %" PRIu64 " bytes",
				  rq->offset, rq->data_len, up->seg.size);
	if (!rq->crc_ok) {
		cloud_count(c, ss, 1, 0, 0);
		return sync_failf(f, SYNC_C_CHECKSUM,
				  "the chunk at offset %" PRIu64
				  " fails its CRC32C; discarded",
				  rq->offset);
	}
	if (sync_test_hooks.chunk_in)
		sync_test_hooks.chunk_in(sync_test_hooks.arg, rq->offset);
	lk = sync_staging_lock(&c->s->staging, up->key);
	pthread_mutex_lock(lk);
	t0 = sync_mono_us();
	rc = put(c, up, rq->offset, rq->data, rq->data_len, rq->crc, &now);
	if (rc == 0)
		rc = drain(c, up, &now);
	up->times.written += sync_mono_us() - t0;
	pthread_mutex_unlock(lk);
	if (rc == SYNC_E_OFFSET) {
		f->has_offset = 1;
		f->offset = now;
		return sync_failf(f, SYNC_C_OFFSET,
				  "chunk at offset %" PRIu64
				  " is beyond the window; the receiver holds "
				  "%" PRIu64 " bytes",
				  rq->offset, now);
	}
	if (rc == -ENOENT) {
		cloud_session_end_upload(c, ss);
		return sync_failf(f, SYNC_C_STATE,
				  "the staged transfer is gone: send begin");
	}
	if (rc)
		return internal(f, "staging", rc);
	sync_enc_ok(out, 1);
	es_cbor_enc_kv_uint(out, "offset", now);
	return 0;
}

void cloud_stream(struct sync_cloud *c, uint32_t pipe)
{
	struct cloud_session *ss = cloud_session_get(c, pipe);

	if (!ss)
		return;
	pthread_mutex_lock(&ss->lock);
	if (ss->up.active)
		sync_staging_stream(&ss->up.w);
	pthread_mutex_unlock(&ss->lock);
	cloud_session_put(c, ss);
}

/* The newest clock of the upload: its runs' are at most seal_hlc. */
static uint64_t newest_clock(const struct cloud_upload *up)
{
	const struct es_sync_tombstone *t = up->tombs.v;
	uint64_t h = up->seg.seal_hlc;

	for (size_t i = 0; i < up->tombs.n; i++)
		if (t[i].hlc > h)
			h = t[i].hlc;
	return h;
}

/*
 * Checks and installs the staged file; under the key's lock. 1 if the
 * segment was installed already (by a commit on another connection of
 * the edge): this one's staging is then gone, and nothing is installed
 * twice.
 */
static int install(struct sync_cloud *c, struct cloud_session *ss,
		   struct sync_fail *f)
{
	const struct es_sync_host *h = &c->s->host;
	struct cloud_upload *up = &ss->up;
	struct sync_stage_meta m;
	char why[ES_CBOR_ERR_MAX - 32], *path = NULL;
	int rc;

	rc = installed(c, up->coll.name, &up->seg, up->key, f);
	if (rc)
		return rc < 0 ? -1 : 1;
	sync_stage_meta_from(&m, up->coll.name, &up->seg);
	rc = sync_staging_check(&c->s->staging, up->key, &m, &up->w, why,
				sizeof(why));
	if (rc == ES_E_SYNC_CHECKSUM) {
		sync_staging_remove(&c->s->staging, up->key);
		return sync_failf(f, SYNC_C_VERIFY, "%s; start over", why);
	}
	if (rc)
		return internal(f, "staging", rc);
	/* checked page by page as they came; the whole list once more, as
	 * the host is promised it */
	if (es_clock_runs_check(up->clocks.v, up->clocks.n, up->seg.count,
				up->seg.seal_hlc))
		return sync_failf(f, SYNC_C_INVALID,
				  "the %zu clock runs held do not fit segment "
				  "%s/%" PRIu64,
				  up->clocks.n, up->seg.origin,
				  up->seg.origin_seq);
	sync_observe_hlc(c->s, newest_clock(up), ss->device);
	rc = sync_staging_path(&c->s->staging, up->key, &path);
	if (rc == 0)
		rc = h->install(h->arg, up->coll.name, path, &up->seg,
				up->tombs.v, up->tombs.n, up->clocks.v,
				up->clocks.n);
	free(path);
	if (rc == ES_E_SYNC_MISMATCH)
		return sync_failf(f, SYNC_C_MISMATCH,
				  "collection '%s' exists here with another "
				  "dim or metric",
				  up->coll.name);
	if (rc)
		return internal(f, "install", rc);
	sync_staging_remove(&c->s->staging, up->key);
	return 0;
}

/* Where the upload's time went, per chunk (cloud_upload_times). */
static void log_times(struct sync_cloud *c, const struct cloud_session *ss)
{
	const struct cloud_upload *up = &ss->up;
	const struct cloud_upload_times *t = &up->times;
	uint64_t n = t->chunks ? t->chunks : 1;
	uint64_t us = sync_mono_us() - t->begun_us;

	sync_log(c->s, SYNC_LOG_DEBUG,
		 "sync: upload of %s/%" PRIu64 " from %s: %" PRIu64
		 " bytes in %" PRIu64 " chunks, %" PRIu64 " ms from begin "
		 "to installed; per chunk (us): queued %" PRIu64
		 ", checked %" PRIu64 ", waited for the session %" PRIu64
		 ", written %" PRIu64,
		 up->seg.origin, up->seg.origin_seq, ss->device, t->bytes,
		 t->chunks, us / 1000, t->queued / n, t->checked / n,
		 t->waited / n, t->written / n);
}

/* -1 with f filled in if l lacks entries begin announced. */
static int list_short(const struct cloud_list *l, struct sync_fail *f)
{
	if (l->n == l->total)
		return 0;
	return sync_failf(f, SYNC_C_STATE,
			  "%zu of %" PRIu64 " %s received: send the rest", l->n,
			  l->total, l->kind->what);
}

int cloud_commit(struct sync_cloud *c, struct cloud_session *ss,
		 const struct sync_req *rq, struct es_cbor_enc *out,
		 struct sync_fail *f)
{
	struct cloud_upload *up = &ss->up;
	pthread_mutex_t *lk;
	int rc;

	if (upload_match(ss, rq, f) || list_short(&up->tombs, f) ||
	    list_short(&up->clocks, f))
		return -1;
	up->seg.id = 0;
	up->seg.add_version = 0;
	lk = sync_staging_lock(&c->s->staging, up->key);
	pthread_mutex_lock(lk);
	rc = install(c, ss, f);
	pthread_mutex_unlock(lk);
	if (rc == 0) {
		cloud_count(c, ss, 0, 1, 0);
		sync_log(c->s, SYNC_LOG_INFO,
			 "sync: installed segment %s/%" PRIu64
			 " of '%s' from %s (%" PRIu64 " bytes, %zu "
			 "tombstones, %zu clock runs)",
			 up->seg.origin, up->seg.origin_seq, up->coll.name,
			 ss->device, up->seg.size, up->tombs.n, up->clocks.n);
		log_times(c, ss);
	}
	if (rc == 1) /* installed by another connection: nothing to count */
		rc = 0;
	if (rc == 0 || f->code == SYNC_C_VERIFY)
		cloud_session_end_upload(c, ss);
	if (rc)
		return -1;
	sync_enc_ok(out, 1);
	es_cbor_enc_kv_text(out, "state", "installed");
	return 0;
}
