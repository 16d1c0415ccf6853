/*
 * The edge's downloads (PROTOCOL.md, "Download"): the collections the
 * peer publishes are created here (host ensure_collection, DOWNLOAD
 * flag), then for each, the segments added since the version this edge
 * acknowledged are fetched through the window (peer_transfer) into the
 * staging directory (each chunk CRC-checked and appended in order),
 * made durable and verified whole exactly as the cloud verifies uploads,
 * installed through the host with their tombstones and clock runs (each
 * list fetched in pages and checked), and acknowledged (ack_put DOWN)
 * one by one.
 *
 * With fetch_indexes, a segment the peer lists with an index has its
 * index file fetched the same way, into a staging key of its own, before
 * the segment is installed (so a cut mid-index resumes both at the next
 * round), checked for the size and whole-file CRC32C the peer announced,
 * and handed to the host with the segment (install_indexed). An index
 * only ever costs itself: one the peer refuses, garbles or that the host
 * refuses is dropped with a warning, and the segment is installed alone
 * (its index then built here).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edge.h"
#include "edgesync/crc32c.h"
#include "sync_test.h"

struct down_seg;

/* One file of a download: the segment, or its index (part "index"). */
struct down_file {
	struct down_seg *d;
	int index;
	char key[SYNC_KEY_LEN + 1];
	struct sync_stage_meta meta;
	struct sync_stage_writer w;
	int holding; /* key, from stage_open (sync_staging_hold) */
};

struct down_seg {
	const struct es_sync_collection *col;
	struct es_sync_segment seg;
	struct down_file file, index;
	int want_index; /* fetch the index: configured, listed, not dropped */
	int have_index; /* it is staged whole */
	struct es_sync_tombstone *tombs;
	size_t n_tombs;
	struct es_clock_run *clocks;
	size_t n_clocks;
};

/*
 * The end of a transfer of f, finished or not (staging.h): the room it
 * reserved back, or, if its writeback failed, its staged bytes gone, so
 * that it starts over (a later fdatasync would not report the error).
 */
static void stage_end(struct sync_peer *p, struct down_file *f)
{
	struct sync_staging *st = &p->s->staging;
	pthread_mutex_t *lk = sync_staging_lock(st, f->key);

	/* another peer's thread may be downloading the same segment */
	if (f->holding) {
		pthread_mutex_lock(lk);
		if (sync_staging_unhold(st, f->key) == 0 || f->w.werr)
			sync_staging_release(st, f->key, &f->w);
		pthread_mutex_unlock(lk);
		f->holding = 0;
	}
	sync_stage_writer_fini(&f->w);
}

static int stage_open(struct sync_peer *p, struct down_file *f, uint64_t *off)
{
	pthread_mutex_t *lk = sync_staging_lock(&p->s->staging, f->key);
	int rc;

	stage_end(p, f); /* the attempt before, if any */
	pthread_mutex_lock(lk);
	rc = sync_staging_open(&p->s->staging, f->key, &f->meta, off);
	if (rc == 0)
		rc = sync_staging_hold(&p->s->staging, f->key);
	f->holding = rc == 0;
	pthread_mutex_unlock(lk);
	sync_stage_writer_init(&f->w, *off);
	if (rc == -ENOSPC)
		return peer_errf(p, rc,
				 "no room to stage %s%s/%" PRIu64 " (%" PRIu64
				 " bytes): this agent keeps %" PRIu64
				 " bytes of its disk free",
				 f->index ? "the index of " : "",
				 f->meta.origin, f->meta.origin_seq,
				 f->meta.size,
				 sync_staging_keep_free(&p->s->staging));
	if (rc)
		return peer_errf(p, rc, "staging: %s", es_sync_strerror(rc));
	return 0;
}

/* Appends the fetched piece at off (p->rp.data), in order. */
static int stage_append(struct sync_peer *p, struct down_file *f, uint64_t off,
			uint64_t *resume)
{
	pthread_mutex_t *lk = sync_staging_lock(&p->s->staging, f->key);
	uint64_t now = 0;
	int rc;

	pthread_mutex_lock(lk);
	rc = sync_staging_append(&p->s->staging, f->key, &f->w, off, p->rp.data,
				 p->rp.data_len, &p->rp.crc, &now);
	pthread_mutex_unlock(lk);
	if (rc == SYNC_E_OFFSET && now <= f->meta.size) {
		*resume = now; /* another thread staged it too */
		return XFER_RESUME;
	}
	if (rc == -ENOENT)
		return SYNC_E_RESTART;
	if (rc)
		return peer_errf(p, rc, "staging: %s", es_sync_strerror(rc));
	if (sync_test_hooks.fetched &&
	    sync_test_hooks.fetched(sync_test_hooks.arg, f->index, off,
				    p->rp.data_len))
		return peer_errf(p, -ECONNABORTED, "cut by a test hook");
	return 0;
}

static int fetch_request(struct sync_peer *p, void *arg, uint64_t off, size_t n,
			 nng_msg **msg)
{
	struct down_file *f = arg;

	es_cbor_enc_reset(&p->enc, 4096);
	sync_enc_request(&p->enc, SYNC_T_FETCH, f->index ? 6 : 5);
	es_cbor_enc_kv_text(&p->enc, "collection", f->d->col->name);
	es_cbor_enc_kv_text(&p->enc, "origin", f->d->seg.origin);
	es_cbor_enc_kv_uint(&p->enc, "origin_seq", f->d->seg.origin_seq);
	es_cbor_enc_kv_uint(&p->enc, "offset", off);
	es_cbor_enc_kv_uint(&p->enc, "length", n);
	if (f->index)
		es_cbor_enc_kv_text(&p->enc, "part", "index");
	return peer_msg(p, msg);
}

static int fetch_reply(struct sync_peer *p, void *arg, uint64_t off, size_t n,
		       uint64_t *resume)
{
	struct down_file *f = arg;

	if (!p->rp.ok)
		return peer_refusal(p, "fetch");
	if (p->rp.data_len != n)
		return peer_errf(p, ES_E_SYNC_PROTOCOL,
				 "fetch: %s sent %zu bytes for %zu", p->url,
				 p->rp.data_len, n);
	if (!p->rp.crc_ok) {
		peer_count(p, 1, 0, 0);
		return XFER_AGAIN; /* fetch it again */
	}
	return stage_append(p, f, off, resume);
}

static const struct xfer_ops fetch_ops = {
    .type = SYNC_T_FETCH,
    .request = fetch_request,
    .reply = fetch_reply,
};

/* The file's bytes from what is staged of it. */
static int fetch_file(struct sync_peer *p, struct down_file *f)
{
	uint64_t off = 0;
	int rc = stage_open(p, f, &off);

	if (rc == 0 && off < f->meta.size)
		rc = peer_transfer(p, &fetch_ops, f, off, f->meta.size);
	return rc;
}

/* Drops the staged index (under its key's lock); the segment goes on. */
static void drop_index(struct sync_peer *p, struct down_seg *d, const char *why)
{
	sync_staging_remove(&p->s->staging, d->index.key);
	d->want_index = 0;
	d->have_index = 0;
	sync_log(p->s, SYNC_LOG_WARN,
		 "sync: index of segment %s/%" PRIu64 " of %s from %s "
		 "dropped: %s; the segment is installed without it and "
		 "indexed here",
		 d->seg.origin, d->seg.origin_seq, d->col->name, p->url, why);
}

/*
 * The index, after the segment's bytes. A cut, a stop or a local failure
 * fails the round as for the segment (the next resumes both); what the
 * peer did wrong with the index alone (a refusal, a piece failing its
 * CRC32C five times, a protocol error), or no room for it here, drops the
 * index: the segment never waits for it.
 */
static int fetch_index(struct sync_peer *p, struct down_seg *d)
{
	pthread_mutex_t *lk = sync_staging_lock(&p->s->staging, d->index.key);
	int rc;

	d->have_index = 0;
	if (!d->want_index)
		return 0;
	rc = fetch_file(p, &d->index);
	d->have_index = rc == 0;
	if (rc != ES_E_SYNC_PROTOCOL && rc != ES_E_SYNC_CHECKSUM &&
	    rc != ES_E_SYNC_REFUSED && rc != -ENOSPC)
		return rc;
	pthread_mutex_lock(lk);
	drop_index(p, d, p->err);
	pthread_mutex_unlock(lk);
	return 0;
}

/* The entries of a list of kind k in the last reply. */
static const void *reply_list(const struct sync_reply *rp,
			      const struct sync_list_kind *k, size_t *n)
{
	if (k == &sync_list_clocks) {
		*n = rp->n_clocks;
		return rp->clocks;
	}
	*n = rp->n_tombs;
	return rp->tombs;
}

/* 0 if d's segment may have a list of kind k of total entries, else -1
 * with why. */
static int total_check(const struct down_seg *d, const struct sync_list_kind *k,
		       uint64_t total, char *why, size_t size)
{
	if (k == &sync_list_clocks)
		return sync_clocks_total_check(&d->seg, total, why, size);
	if (total <= k->max)
		return 0;
	snprintf(why, size, "%" PRIu64 " %s: a segment has at most %u", total,
		 k->what, k->max);
	return -1;
}

/* 0 if the m entries at page, entries first.. of a list of kind k of
 * total entries of d's segment, may follow the first entries at held
 * (clock runs keep their rule); else -1 with why. */
static int page_check(const struct down_seg *d, const struct sync_list_kind *k,
		      const void *held, const void *page, size_t m,
		      uint64_t first, uint64_t total, char *why, size_t size)
{
	const struct es_clock_run *c = held;

	if (k != &sync_list_clocks)
		return 0;
	return sync_clocks_check(&d->seg, page, m, first,
				 first ? &c[first - 1] : NULL, total, why,
				 size);
}

/*
 * Every page of a list of kind k of d's segment (the tombstones or clocks
 * requests), each checked as it comes, into *out (malloc'ed, *n
 * entries).
 */
static int fetch_list(struct sync_peer *p, struct down_seg *d,
		      const struct sync_list_kind *k, void **out, size_t *n)
{
	const char *name = sync_type_name(k->fetch);
	uint64_t total = 0, first = 0;
	unsigned char *v = NULL;
	char why[200] = "";
	const void *page;
	size_t m;
	int rc;

	*out = NULL;
	*n = 0;
	for (;;) {
		es_cbor_enc_reset(&p->enc, 4096);
		sync_enc_request(&p->enc, k->fetch, 3);
		es_cbor_enc_kv_text(&p->enc, "collection", d->col->name);
		es_cbor_enc_kv_uint(&p->enc, "add_version", d->seg.add_version);
		es_cbor_enc_kv_uint(&p->enc, "first", first);
		rc = peer_request(p, k->fetch, PEER_TIMEOUT_MS);
		if (rc == ES_E_SYNC_REFUSED)
			return peer_refusal(p, name);
		if (rc)
			return rc;
		page = reply_list(&p->rp, k, &m);
		if (first == 0) {
			total = p->rp.total;
			if (total_check(d, k, total, why, sizeof(why)))
				break; /* even when total is 0 */
			v = calloc(total ? total : 1, k->size);
			if (!v)
				return -ENOMEM;
			*out = v;
		}
		if (p->rp.total != total || m > total - first ||
		    (m == 0 && first < total) ||
		    page_check(d, k, v, page, m, first, total, why,
			       sizeof(why)))
			break;
		if (m)
			memcpy(v + first * k->size, page, m * k->size);
		first += m;
		*n = (size_t)first;
		if (first == total)
			return 0;
	}
	return peer_errf(p, ES_E_SYNC_PROTOCOL,
			 "%s: %s sent an inconsistent list%s%s", name, p->url,
			 why[0] ? ": " : "", why);
}

/* The segment's tombstones, then its clock runs. */
static int fetch_lists(struct sync_peer *p, struct down_seg *d)
{
	void *v;
	int rc = fetch_list(p, d, &sync_list_tombs, &v, &d->n_tombs);

	d->tombs = v;
	if (rc)
		return rc;
	rc = fetch_list(p, d, &sync_list_clocks, &v, &d->n_clocks);
	d->clocks = v;
	return rc;
}

static uint64_t newest_clock(const struct down_seg *d)
{
	uint64_t h = d->seg.seal_hlc;

	for (size_t i = 0; i < d->n_tombs; i++)
		if (d->tombs[i].hlc > h)
			h = d->tombs[i].hlc;
	return h;
}

/* The staged index, checked against what the peer announced; *path set
 * while it is good. Under the key's lock. */
static int index_check(struct sync_peer *p, struct down_seg *d, char **path)
{
	char why[200];
	int rc;

	*path = NULL;
	if (!d->have_index)
		return 0;
	rc =
	    sync_staging_check_crc(&p->s->staging, d->index.key, &d->index.meta,
				   &d->index.w, why, sizeof(why));
	if (rc == ES_E_SYNC_CHECKSUM) {
		drop_index(p, d, why);
		return 0;
	}
	if (rc == 0)
		rc = sync_staging_path(&p->s->staging, d->index.key, path);
	if (rc)
		return peer_errf(p, rc, "staging: %s", es_sync_strerror(rc));
	return 0;
}

/* Verifies and installs the staged segment (and its index, if staged);
 * under the key's lock, which is the index key's too (staging.h). */
static int install(struct sync_peer *p, struct down_seg *d)
{
	const struct es_sync_host *h = &p->s->host;
	char why[200], *path = NULL, *index = NULL;
	int rc, index_rc = 0;

	rc = sync_staging_check(&p->s->staging, d->file.key, &d->file.meta,
				&d->file.w, why, sizeof(why));
	if (rc == ES_E_SYNC_CHECKSUM) {
		sync_staging_remove(&p->s->staging, d->file.key);
		sync_log(p->s, SYNC_LOG_WARN,
			 "sync: segment %s/%" PRIu64 " from %s: %s; fetching "
			 "it again",
			 d->seg.origin, d->seg.origin_seq, p->url, why);
		return SYNC_E_RESTART;
	}
	if (rc)
		return peer_errf(p, rc, "staging: %s", es_sync_strerror(rc));
	/* checked page by page as they came; the whole list once more, as
	 * the host is promised it */
	if (es_clock_runs_check(d->clocks, d->n_clocks, d->seg.count,
				d->seg.seal_hlc))
		return peer_errf(p, ES_E_SYNC_PROTOCOL,
				 "clocks: %s sent %zu clock runs that do not "
				 "fit segment %s/%" PRIu64,
				 p->url, d->n_clocks, d->seg.origin,
				 d->seg.origin_seq);
	rc = index_check(p, d, &index);
	if (rc)
		return rc;
	sync_observe_hlc(p->s, newest_clock(d), p->cloud);
	rc = sync_staging_path(&p->s->staging, d->file.key, &path);
	if (rc == 0 && index)
		rc = h->install_indexed(h->arg, d->col->name, path, index,
					&d->seg, d->tombs, d->n_tombs,
					d->clocks, d->n_clocks, &index_rc);
	else if (rc == 0)
		rc = h->install(h->arg, d->col->name, path, &d->seg, d->tombs,
				d->n_tombs, d->clocks, d->n_clocks);
	free(path);
	free(index);
	if (rc)
		return peer_errf(p, rc,
				 "installing segment %s/%" PRIu64 " of %s: %s",
				 d->seg.origin, d->seg.origin_seq, d->col->name,
				 es_sync_strerror(rc));
	if (index_rc)
		drop_index(p, d, es_sync_strerror(index_rc));
	sync_staging_remove(&p->s->staging, d->file.key);
	sync_staging_remove(&p->s->staging, d->index.key);
	return 0;
}

static int download_try(struct sync_peer *p, struct down_seg *d)
{
	pthread_mutex_t *lk = sync_staging_lock(&p->s->staging, d->file.key);
	int rc;

	rc = fetch_file(p, &d->file);
	free(d->tombs);
	free(d->clocks);
	d->tombs = NULL;
	d->clocks = NULL;
	d->n_tombs = 0;
	d->n_clocks = 0;
	if (rc == 0)
		rc = fetch_lists(p, d);
	if (rc == 0)
		rc = fetch_index(p, d);
	if (rc)
		return rc;
	pthread_mutex_lock(lk);
	rc = install(p, d);
	pthread_mutex_unlock(lk);
	return rc;
}

static int download_segment(struct sync_peer *p,
			    const struct es_sync_collection *col,
			    const struct es_sync_segment *seg)
{
	struct down_seg d = {.col = col, .seg = *seg};
	int rc = 0, i;

	d.seg.id = 0;
	d.file.d = d.index.d = &d;
	d.index.index = 1;
	sync_stage_meta_from(&d.file.meta, col->name, seg);
	sync_staging_key(col->name, seg->origin, seg->origin_seq, d.file.key);
	sync_stage_meta_index(&d.index.meta, col->name, seg);
	sync_staging_index_key(col->name, seg->origin, seg->origin_seq,
			       d.index.key);
	d.want_index = p->s->cfg.fetch_indexes && seg->index_size &&
		       p->s->host.install_indexed;
	for (i = 0; i < PEER_ATTEMPTS; i++) {
		rc = download_try(p, &d);
		if (rc != SYNC_E_RESTART)
			break;
	}
	if (rc == SYNC_E_RESTART)
		rc = peer_errf(p, ES_E_SYNC_PROTOCOL,
			       "segment %s/%" PRIu64 " restarted %d times "
			       "from %s",
			       seg->origin, seg->origin_seq, PEER_ATTEMPTS,
			       p->url);
	free(d.tombs);
	free(d.clocks);
	stage_end(p, &d.file);
	stage_end(p, &d.index);
	if (rc == 0)
		peer_count(p, 0, 0, 1);
	return rc;
}

/* ---- collections ------------------------------------------------------ */

/*
 * fetch_indexes: a segment the cloud lists without an index (not built
 * there yet) is awaited up to index_wait_ms from when this edge first
 * saw it so, then taken alone (and indexed here). 1 while waiting: the
 * collection stops there for this round, as acks go in order.
 */
static int index_awaited(struct sync_peer *p,
			 const struct es_sync_collection *col,
			 const struct es_sync_segment *seg)
{
	const struct es_sync_config *cfg = &p->s->cfg;
	struct peer_index_wait *w = NULL, *old = &p->iwait[0];
	uint64_t now = sync_mono_ms();

	if (!cfg->fetch_indexes || !cfg->index_wait_ms || seg->index_size ||
	    seg->count == 0)
		return 0;
	for (size_t i = 0; i < PEER_INDEX_WAITS && !w; i++) {
		struct peer_index_wait *e = &p->iwait[i];

		if (!strcmp(e->coll, col->name) &&
		    !strcmp(e->origin, seg->origin) &&
		    e->seq == seg->origin_seq)
			w = e;
		else if (e->since_ms < old->since_ms)
			old = e;
	}
	if (!w) {
		w = old;
		memset(w, 0, sizeof(*w));
		snprintf(w->coll, sizeof(w->coll), "%s", col->name);
		snprintf(w->origin, sizeof(w->origin), "%s", seg->origin);
		w->seq = seg->origin_seq;
		w->since_ms = now ? now : 1;
		sync_log(p->s, SYNC_LOG_INFO,
			 "sync: segment %s/%" PRIu64 " of %s on %s has no "
			 "index yet; waiting up to %" PRIu32 " s for it",
			 seg->origin, seg->origin_seq, col->name, p->url,
			 cfg->index_wait_ms / 1000);
		return 1;
	}
	if (w->expired || now - w->since_ms < cfg->index_wait_ms)
		return !w->expired;
	w->expired = 1;
	sync_log(p->s, SYNC_LOG_WARN,
		 "sync: segment %s/%" PRIu64 " of %s on %s still has no index "
		 "after %" PRIu32 " s; taking it alone (indexed here)",
		 seg->origin, seg->origin_seq, col->name, p->url,
		 cfg->index_wait_ms / 1000);
	return 0;
}

static int ack(struct sync_peer *p, const char *coll, uint64_t v)
{
	const struct es_sync_host *h = &p->s->host;
	int rc = h->ack_put(h->arg, p->cloud, coll, ES_SYNC_DOWN, v);

	if (rc < 0)
		return peer_errf(p, rc, "ack_put(%s, %s): %s", p->cloud, coll,
				 es_sync_strerror(rc));
	return 0;
}

/* The changes since *since, checked; *segs malloc'ed. */
static int changes(struct sync_peer *p, const struct es_sync_collection *col,
		   uint64_t since, struct es_sync_segment **segs, size_t *n,
		   uint64_t *version, int *more)
{
	uint64_t prev = since;
	char why[160];
	int rc;

	es_cbor_enc_reset(&p->enc, 4096);
	sync_enc_request(&p->enc, SYNC_T_CHANGES, 2);
	es_cbor_enc_kv_text(&p->enc, "collection", col->name);
	es_cbor_enc_kv_uint(&p->enc, "since", since);
	rc = peer_request(p, SYNC_T_CHANGES, PEER_TIMEOUT_MS);
	if (rc == ES_E_SYNC_REFUSED)
		return peer_refusal(p, "changes");
	if (rc)
		return rc;
	for (size_t i = 0; i < p->rp.n_segs; i++) {
		const struct es_sync_segment *seg = &p->rp.segs[i];

		if (seg->add_version <= prev ||
		    seg->add_version > p->rp.version)
			return peer_errf(p, ES_E_SYNC_PROTOCOL,
					 "changes: %s listed versions out of "
					 "order",
					 p->url);
		if (sync_segment_check(seg, col->dim, why, sizeof(why)))
			return peer_errf(p, ES_E_SYNC_PROTOCOL,
					 "changes: %s: %s", p->url, why);
		prev = seg->add_version;
	}
	if (p->rp.more && p->rp.version <= since)
		return peer_errf(p, ES_E_SYNC_PROTOCOL,
				 "changes: %s says more without progress",
				 p->url);
	*segs = p->rp.segs; /* taken from the reply */
	*n = p->rp.n_segs;
	p->rp.segs = NULL;
	p->rp.n_segs = 0;
	*version = p->rp.version;
	*more = p->rp.more;
	return 0;
}

static int download_collection(struct sync_peer *p,
			       struct es_sync_collection *col)
{
	const struct es_sync_host *h = &p->s->host;
	struct es_sync_segment *segs = NULL;
	uint64_t since = 0, version = 0;
	size_t n = 0;
	int rc, more = 1, waiting = 0;

	col->flags = ES_SYNC_FLAG_DOWNLOAD;
	rc = h->ensure_collection(h->arg, col);
	if (rc == ES_E_SYNC_MISMATCH)
		return peer_errf(p, rc,
				 "collection %s exists here with another dim "
				 "or metric than %s publishes; not "
				 "downloading it",
				 col->name, p->url);
	if (rc == 0)
		rc = h->ack_get(h->arg, p->cloud, col->name, ES_SYNC_DOWN,
				&since);
	if (rc < 0)
		return peer_errf(p, rc, "collection %s: %s", col->name,
				 es_sync_strerror(rc));
	for (int page = 0; rc == 0 && more; page++) {
		if (page == PEER_PAGES_MAX)
			return peer_errf(p, ES_E_SYNC_PROTOCOL,
					 "changes: %s keeps saying more",
					 p->url);
		rc = changes(p, col, since, &segs, &n, &version, &more);
		for (size_t i = 0; rc == 0 && i < n && !waiting; i++) {
			rc = h->has_segment(h->arg, col->name, segs[i].origin,
					    segs[i].origin_seq, NULL);
			if (rc == 0 && index_awaited(p, col, &segs[i]))
				waiting = 1; /* no ack past it this round */
			else if (rc == 0)
				rc = download_segment(p, col, &segs[i]);
			else if (rc == 1)
				rc = 0;
			if (rc == 0 && !waiting)
				rc = ack(p, col->name, segs[i].add_version);
		}
		more = more && !waiting;
		if (rc == 0 && version > since && !waiting)
			rc = ack(p, col->name, version);
		if (rc == 0)
			since = version > since ? version : since;
		free(segs);
		segs = NULL;
	}
	return rc;
}

int sync_download_all(struct sync_peer *p)
{
	struct es_sync_collection *cols;
	size_t n;
	int rc, first = 0;

	es_cbor_enc_reset(&p->enc, 4096);
	sync_enc_request(&p->enc, SYNC_T_COLLECTIONS, 0);
	rc = peer_request(p, SYNC_T_COLLECTIONS, PEER_TIMEOUT_MS);
	if (rc == ES_E_SYNC_REFUSED)
		return peer_refusal(p, "collections");
	if (rc)
		return rc;
	cols = p->rp.colls; /* taken from the reply */
	n = p->rp.n_colls;
	p->rp.colls = NULL;
	p->rp.n_colls = 0;
	for (size_t i = 0; i < n; i++) {
		rc = download_collection(p, &cols[i]);
		if (rc == SYNC_E_STOPPED || rc == -ETIMEDOUT ||
		    rc == -ECONNRESET || rc == -ESHUTDOWN) {
			first = rc;
			break;
		}
		if (rc && !first)
			first = rc;
	}
	free(cols);
	return first;
}
