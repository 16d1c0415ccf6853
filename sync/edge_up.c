/*
 * The edge's uploads (PROTOCOL.md, "Upload"). Per upload collection, the
 * segments added after what the peer acknowledged are sent in
 * add_version order; the acknowledgement is recorded (ack_put) after each
 * installed or duplicate reply, so a restart resumes at the first segment
 * not acknowledged. Segments that came from other devices are not sent
 * (their origin uploads them) but are acknowledged as they are passed.
 *
 * One segment:  begin -> [more_tombstones]* -> [more_clocks]* -> chunk*
 *               -> commit
 *   chunks      through the window (peer_transfer, edge_xfer.c), each
 *               built in place in its nng message: one pread, one CRC32C
 *   "offset"    drop the window, resume where the receiver says
 *   "checksum"  send the chunk again (PEER_BAD_CHUNKS in a row: give up)
 *   "state"/"session", "verify"   start the segment over with begin
 *                                 (PEER_ATTEMPTS times per round)
 * commit only once the receiver's staged length (a chunk reply's offset)
 * is the whole segment.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "edge.h"
#include "edgesync/crc32c.h"
#include "sync_test.h"

struct up_seg {
	const struct es_sync_collection *col;
	const struct es_sync_segment *seg;
	uint64_t acked; /* bytes the receiver has in order */
	struct es_sync_tombstone *tombs;
	size_t n_tombs;
	struct es_clock_run *clocks;
	size_t n_clocks;
	int fd;
};

static void enc_ref(struct sync_peer *p, enum sync_type t, size_t extra,
		    const char *coll, const struct es_sync_segment *seg)
{
	es_cbor_enc_reset(&p->enc, (size_t)p->chunk * 2);
	sync_enc_request(&p->enc, t, 3 + extra);
	es_cbor_enc_kv_text(&p->enc, "collection", coll);
	es_cbor_enc_kv_text(&p->enc, "origin", seg->origin);
	es_cbor_enc_kv_uint(&p->enc, "origin_seq", seg->origin_seq);
}

/* begin's part of a list (k) of n entries at v: its first page and its
 * length. */
static void enc_first_page(struct sync_peer *p, const struct sync_list_kind *k,
			   const void *v, size_t n)
{
	es_cbor_enc_text(&p->enc, k->field);
	k->enc(&p->enc, v, n < k->per_msg ? n : k->per_msg);
	es_cbor_enc_kv_uint(&p->enc, k->total, n);
}

static int send_begin(struct sync_peer *p, struct up_seg *u,
		      const struct es_sync_segment *seg, uint64_t *off)
{
	int rc;

	es_cbor_enc_reset(&p->enc, (size_t)p->chunk * 2);
	sync_enc_request(&p->enc, SYNC_T_BEGIN, 6);
	es_cbor_enc_text(&p->enc, "collection");
	sync_enc_collection(&p->enc, u->col, 0);
	es_cbor_enc_text(&p->enc, "segment");
	sync_enc_segment(&p->enc, seg, 0);
	enc_first_page(p, &sync_list_tombs, u->tombs, u->n_tombs);
	enc_first_page(p, &sync_list_clocks, u->clocks, u->n_clocks);
	rc = peer_request(p, SYNC_T_BEGIN, PEER_TIMEOUT_MS);
	if (rc == ES_E_SYNC_REFUSED)
		return peer_refusal(p, "begin");
	if (rc)
		return rc;
	if (p->rp.state == SYNC_S_DUPLICATE)
		return 1;
	if (p->rp.state != SYNC_S_RESUME || p->rp.offset > seg->size)
		return peer_errf(p, ES_E_SYNC_PROTOCOL,
				 "begin: %s answered an impossible state",
				 p->url);
	*off = p->rp.offset;
	return 0;
}

/*
 * The pages of a list (k) of n entries at v after begin's first, with
 * more_tombstones or more_clocks.
 */
static int send_more(struct sync_peer *p, struct up_seg *u,
		     const struct es_sync_segment *seg,
		     const struct sync_list_kind *k, const void *v, size_t n)
{
	const char *name = sync_type_name(k->more);
	size_t i = k->per_msg, m;
	int rc;

	while (i < n) {
		m = n - i < k->per_msg ? n - i : k->per_msg;
		enc_ref(p, k->more, 2, u->col->name, seg);
		es_cbor_enc_kv_uint(&p->enc, "first", i);
		es_cbor_enc_text(&p->enc, k->field);
		k->enc(&p->enc, (const unsigned char *)v + i * k->size, m);
		rc = peer_request(p, k->more, PEER_TIMEOUT_MS);
		if (rc == ES_E_SYNC_REFUSED && p->rp.code == SYNC_C_OFFSET &&
		    p->rp.has_offset && p->rp.offset <= n &&
		    p->rp.offset != i) {
			i = (size_t)p->rp.offset;
			continue;
		}
		if (rc == ES_E_SYNC_REFUSED)
			return peer_refusal(p, name);
		if (rc)
			return rc;
		if (p->rp.offset != i + m)
			return peer_errf(p, ES_E_SYNC_PROTOCOL,
					 "%s: %s holds %" PRIu64 " %s after "
					 "%zu were sent",
					 name, p->url, p->rp.offset, k->what,
					 i + m);
		i += m;
	}
	return 0;
}

/* The CBOR head of a byte string of n bytes (RFC 8949, major type 2). */
static size_t bytes_head(unsigned char *b, size_t n)
{
	if (n < 24) {
		b[0] = (unsigned char)(0x40 | n);
		return 1;
	}
	if (n < 0x100) {
		b[0] = 0x58;
		b[1] = (unsigned char)n;
		return 2;
	}
	if (n < 0x10000) {
		b[0] = 0x59;
		b[1] = (unsigned char)(n >> 8);
		b[2] = (unsigned char)n;
		return 3;
	}
	b[0] = 0x5a;
	for (int i = 0; i < 4; i++)
		b[1 + i] = (unsigned char)(n >> (24 - 8 * i));
	return 5;
}

/*
 * The chunk [off, off + n), built in place: the fields before "data" are
 * encoded, the segment is read straight into the message and its CRC32C
 * computed there, then "crc" closes the map and the trailer follows,
 * folded from the data's CRC32C. One read, one checksum, no copy but
 * the kernel's.
 */
static int chunk_request(struct sync_peer *p, void *arg, uint64_t off, size_t n,
			 nng_msg **msg)
{
	struct up_seg *u = arg;
	const struct es_sync_segment *seg = u->seg;
	struct es_cbor_enc tail;
	unsigned char *b, head[5];
	size_t hl, hn, at;
	uint32_t crc;
	int rc;

	enc_ref(p, SYNC_T_CHUNK, 3, u->col->name, seg);
	es_cbor_enc_kv_uint(&p->enc, "offset", off);
	es_cbor_enc_text(&p->enc, "data");
	if (es_cbor_enc_error(&p->enc))
		return -ENOMEM;
	hl = p->enc.len;
	hn = bytes_head(head, n);
	/* "crc" and a uint32: at most 9 bytes; the rest is chopped. */
	if (nng_msg_alloc(msg, hl + hn + n + 9 + SYNC_TRAILER) != 0)
		return -ENOMEM;
	b = nng_msg_body(*msg);
	memcpy(b, p->enc.buf, hl);
	memcpy(b + hl, head, hn);
	at = hl + hn;
	rc = sync_pread_all(u->fd, b + at, n, (off_t)off);
	if (rc) {
		nng_msg_free(*msg);
		return peer_errf(p, rc, "reading segment %s/%" PRIu64 ": %s",
				 seg->origin, seg->origin_seq,
				 es_sync_strerror(rc));
	}
	crc = es_crc32c(0, b + at, n);
	if (sync_test_hooks.chunk_out)
		sync_test_hooks.chunk_out(sync_test_hooks.arg, off, b + at, n);
	at += n;
	es_cbor_enc_init(&tail);
	es_cbor_enc_kv_uint(&tail, "crc", crc);
	if (es_cbor_enc_error(&tail) || tail.len > 9) {
		es_cbor_enc_fini(&tail);
		nng_msg_free(*msg);
		return -ENOMEM;
	}
	memcpy(b + at, tail.buf, tail.len);
	sync_trailer_put(
	    b + at + tail.len,
	    es_crc32c(es_crc32c_combine(es_crc32c(0, b, hl + hn), crc, n),
		      tail.buf, tail.len));
	nng_msg_chop(*msg, 9 - tail.len);
	es_cbor_enc_fini(&tail);
	return 0;
}

/*
 * The reply to the chunk at off: ok says how many bytes the receiver has
 * in order (less than off + n when it holds this chunk behind a gap).
 */
static int chunk_reply(struct sync_peer *p, void *arg, uint64_t off, size_t n,
		       uint64_t *resume)
{
	struct up_seg *u = arg;
	if (!p->rp.ok && p->rp.code == SYNC_C_CHECKSUM) {
		peer_count(p, 1, 0, 0);
		return XFER_AGAIN;
	}
	if (!p->rp.ok && p->rp.code == SYNC_C_OFFSET && p->rp.has_offset &&
	    p->rp.offset <= u->seg->size) {
		*resume = p->rp.offset; /* where the receiver is */
		u->acked = p->rp.offset;
		return XFER_RESUME;
	}
	if (!p->rp.ok)
		return peer_refusal(p, "chunk");
	if (p->rp.offset > u->seg->size)
		return peer_errf(p, ES_E_SYNC_PROTOCOL,
				 "chunk: %s holds %" PRIu64 " bytes of a "
				 "%" PRIu64 "-byte segment",
				 p->url, p->rp.offset, u->seg->size);
	if (p->rp.offset > u->acked)
		u->acked = p->rp.offset;
	if (sync_test_hooks.chunk_acked &&
	    sync_test_hooks.chunk_acked(sync_test_hooks.arg, off + n,
					u->seg->size))
		return peer_errf(p, -ECONNABORTED, "cut by a test hook");
	return 0;
}

static const struct xfer_ops chunk_ops = {
    .type = SYNC_T_CHUNK,
    .request = chunk_request,
    .reply = chunk_reply,
};

/*
 * Every byte from off on, until the receiver says it has them all in
 * order: a chunk it held behind a gap and then lost (its connection
 * went) is sent again from what it has.
 */
static int send_chunks(struct sync_peer *p, struct up_seg *u, uint64_t off)
{
	int rc = 0;

	u->acked = off;
	for (int i = 0; rc == 0 && u->acked < u->seg->size; i++) {
		if (i == PEER_BAD_CHUNKS)
			return peer_errf(p, ES_E_SYNC_PROTOCOL,
					 "%s keeps %" PRIu64 " of %" PRIu64
					 " bytes after every chunk was sent",
					 p->url, u->acked, u->seg->size);
		rc = peer_transfer(p, &chunk_ops, u, u->acked, u->seg->size);
	}
	return rc;
}

static int send_commit(struct sync_peer *p, struct up_seg *u,
		       const struct es_sync_segment *seg)
{
	int rc;

	enc_ref(p, SYNC_T_COMMIT, 0, u->col->name, seg);
	rc = peer_request(p, SYNC_T_COMMIT,
			  PEER_TIMEOUT_MS + (int)(seg->size / 20000));
	if (rc == ES_E_SYNC_REFUSED && p->rp.code == SYNC_C_VERIFY) {
		sync_log(p->s, SYNC_LOG_WARN,
			 "sync: %s could not verify segment %s/%" PRIu64
			 ": %s; sending it again",
			 p->url, seg->origin, seg->origin_seq, p->rp.message);
		return SYNC_E_RESTART;
	}
	if (rc == ES_E_SYNC_REFUSED)
		return peer_refusal(p, "commit");
	if (rc == 0 && p->rp.state != SYNC_S_INSTALLED)
		rc = peer_errf(p, ES_E_SYNC_PROTOCOL,
			       "commit: %s answered an impossible state",
			       p->url);
	return rc;
}

static int upload_try(struct sync_peer *p, struct up_seg *u,
		      const struct es_sync_segment *seg)
{
	uint64_t off = 0;
	int rc;

	rc = send_begin(p, u, seg, &off);
	if (rc == 1)
		return 0; /* duplicate: the peer has it */
	if (rc == 0)
		rc = send_more(p, u, seg, &sync_list_tombs, u->tombs,
			       u->n_tombs);
	if (rc == 0)
		rc = send_more(p, u, seg, &sync_list_clocks, u->clocks,
			       u->n_clocks);
	if (rc == 0)
		rc = send_chunks(p, u, off);
	if (rc == 0)
		rc = send_commit(p, u, seg);
	if (rc == 0)
		peer_count(p, 0, 1, 0);
	return rc;
}

static int open_segment(struct sync_peer *p, struct up_seg *u,
			const struct es_sync_segment *seg)
{
	const struct es_sync_host *h = &p->s->host;
	struct stat sb;
	char *path = NULL;
	int rc;

	rc = h->segment_path(h->arg, u->col->name, seg->id, &path);
	if (rc < 0)
		return peer_errf(p, rc, "segment_path(%s, %" PRId64 "): %s",
				 u->col->name, seg->id, es_sync_strerror(rc));
	u->fd = open(path, O_RDONLY | O_CLOEXEC);
	rc = u->fd < 0 ? -errno : 0;
	if (rc == 0 && fstat(u->fd, &sb) != 0)
		rc = -errno;
	if (rc == 0 && (uint64_t)sb.st_size != seg->size)
		rc = peer_errf(p, ES_E_SYNC_CHECKSUM,
			       "segment file %s is %" PRIu64
			       " bytes; its record says %" PRIu64,
			       path, (uint64_t)sb.st_size, seg->size);
	else if (rc)
		peer_errf(p, rc, "cannot open segment file %s: %s", path,
			  es_sync_strerror(rc));
	free(path);
	return rc;
}

static int load_tombstones(struct sync_peer *p, struct up_seg *u,
			   const struct es_sync_segment *seg)
{
	const struct es_sync_host *h = &p->s->host;
	int rc = h->segment_tombstones(h->arg, u->col->name, seg->add_version,
				       &u->tombs, &u->n_tombs);

	if (rc < 0)
		return peer_errf(p, rc, "segment_tombstones(%s): %s",
				 u->col->name, es_sync_strerror(rc));
	if (u->n_tombs > SYNC_TOMBS_MAX)
		return peer_errf(p, ES_E_SYNC_PROTOCOL,
				 "segment %s/%" PRIu64
				 " has %zu tombstones; the protocol carries "
				 "at most %u per segment",
				 seg->origin, seg->origin_seq, u->n_tombs,
				 SYNC_TOMBS_MAX);
	for (size_t i = 0; i < u->n_tombs; i++)
		if (!u->tombs[i].origin[0])
			snprintf(u->tombs[i].origin, sizeof(u->tombs[i].origin),
				 "%s", p->s->cfg.device_id);
	return 0;
}

/* The segment's clock runs, as the host has them: checked, since the
 * cloud would refuse a list that breaks the rules. */
static int load_clocks(struct sync_peer *p, struct up_seg *u,
		       const struct es_sync_segment *seg)
{
	const struct es_sync_host *h = &p->s->host;
	char why[200];
	int rc = h->segment_clocks(h->arg, u->col->name, seg->add_version,
				   &u->clocks, &u->n_clocks);

	if (rc < 0)
		return peer_errf(p, rc, "segment_clocks(%s): %s", u->col->name,
				 es_sync_strerror(rc));
	if (sync_clocks_total_check(seg, u->n_clocks, why, sizeof(why)) ||
	    sync_clocks_check(seg, u->clocks, u->n_clocks, 0, NULL, u->n_clocks,
			      why, sizeof(why)))
		return peer_errf(p, ES_E_SYNC_PROTOCOL,
				 "segment %s/%" PRIu64
				 " of %s: its clock runs break the rules: %s",
				 seg->origin, seg->origin_seq, u->col->name,
				 why);
	return 0;
}

static int upload_segment(struct sync_peer *p,
			  const struct es_sync_collection *col,
			  const struct es_sync_segment *seg)
{
	struct up_seg u = {.col = col, .seg = seg, .fd = -1};
	int rc, i;

	rc = open_segment(p, &u, seg);
	if (rc == 0)
		rc = load_tombstones(p, &u, seg);
	if (rc == 0)
		rc = load_clocks(p, &u, seg);
	for (i = 0; rc == 0 && i < PEER_ATTEMPTS; i++) {
		rc = upload_try(p, &u, seg);
		if (rc != SYNC_E_RESTART)
			break;
		rc = 0;
	}
	if (rc == 0 && i == PEER_ATTEMPTS)
		rc = peer_errf(
		    p, ES_E_SYNC_PROTOCOL,
		    "segment %s/%" PRIu64 " restarted %d times at %s",
		    seg->origin, seg->origin_seq, PEER_ATTEMPTS, p->url);
	if (u.fd >= 0)
		close(u.fd);
	free(u.tombs);
	free(u.clocks);
	return rc;
}

/* ---- collections ------------------------------------------------------ */

struct up_plan {
	struct es_sync_collection col;
	struct es_sync_segment *segs;
	size_t n;
	uint64_t acked;
};

static int own(const struct sync_peer *p, const struct es_sync_segment *seg)
{
	return !strcmp(seg->origin, p->s->cfg.device_id);
}

/* Pending = our segments from plan pi, segment si on. */
static void pending(struct sync_peer *p, const struct up_plan *plans, size_t np,
		    size_t pi, size_t si)
{
	uint64_t segs = 0, bytes = 0, oldest = 0;

	for (; pi < np; pi++, si = 0) {
		for (; si < plans[pi].n; si++) {
			const struct es_sync_segment *seg = &plans[pi].segs[si];

			if (!own(p, seg))
				continue;
			segs++;
			bytes += seg->size;
			if (!oldest || seg->seal_hlc < oldest)
				oldest = seg->seal_hlc;
		}
	}
	peer_pending(p, segs, bytes, oldest);
}

static int ack(struct sync_peer *p, const char *coll, uint64_t v)
{
	const struct es_sync_host *h = &p->s->host;
	int rc = h->ack_put(h->arg, p->cloud, coll, ES_SYNC_UP, v);

	if (rc < 0)
		return peer_errf(p, rc, "ack_put(%s, %s): %s", p->cloud, coll,
				 es_sync_strerror(rc));
	return 0;
}

static int upload_plan(struct sync_peer *p, struct up_plan *plans, size_t np,
		       size_t pi)
{
	struct up_plan *pl = &plans[pi];
	uint64_t done = pl->acked;
	int rc = 0;

	for (size_t si = 0; si < pl->n && rc == 0; si++) {
		struct es_sync_segment *seg = &pl->segs[si];

		if (own(p, seg)) {
			rc = upload_segment(p, &pl->col, seg);
			if (rc == 0)
				rc = ack(p, pl->col.name, seg->add_version);
			if (rc == 0)
				pl->acked = seg->add_version;
		}
		if (rc == 0 && seg->add_version > done)
			done = seg->add_version;
		if (rc == 0)
			pending(p, plans, np, pi, si + 1);
	}
	if (done > pl->acked) {
		int rc2 = ack(p, pl->col.name, done);

		rc = rc ? rc : rc2;
	}
	return rc;
}

/* The plan of every upload collection: what the peer has not acked. */
static int plan(struct sync_peer *p, struct up_plan **out, size_t *np)
{
	const struct es_sync_host *h = &p->s->host;
	struct es_sync_collection *cols = NULL;
	struct up_plan *pl;
	size_t nc = 0, k = 0;
	int rc;

	*out = NULL;
	*np = 0;
	rc = h->list_collections(h->arg, &cols, &nc);
	if (rc < 0)
		return peer_errf(p, rc, "list_collections: %s",
				 es_sync_strerror(rc));
	pl = calloc(nc ? nc : 1, sizeof(*pl));
	if (!pl) {
		free(cols);
		return -ENOMEM;
	}
	for (size_t i = 0; i < nc && rc == 0; i++) {
		if (!(cols[i].flags & ES_SYNC_FLAG_UPLOAD))
			continue;
		pl[k].col = cols[i];
		rc = h->ack_get(h->arg, p->cloud, cols[i].name, ES_SYNC_UP,
				&pl[k].acked);
		if (rc == 0)
			rc = h->list_segments(h->arg, cols[i].name, pl[k].acked,
					      &pl[k].segs, &pl[k].n);
		if (rc < 0)
			rc = peer_errf(p, rc, "reading collection %s: %s",
				       cols[i].name, es_sync_strerror(rc));
		for (size_t j = 0; rc == 0 && j < pl[k].n; j++)
			if (!pl[k].segs[j].origin[0])
				snprintf(pl[k].segs[j].origin,
					 sizeof(pl[k].segs[j].origin), "%s",
					 p->s->cfg.device_id);
		k++;
	}
	free(cols);
	*out = pl;
	*np = k;
	return rc < 0 ? rc : 0;
}

int sync_upload_all(struct sync_peer *p)
{
	struct up_plan *plans;
	size_t np;
	int rc;

	/*
	 * A collection the cloud refuses (mismatch, or a segment it cannot
	 * take) fails alone: the collections after it still upload, and the
	 * round reports the last failure. A failed connection ends it.
	 */
	rc = plan(p, &plans, &np);
	if (rc == 0) {
		pending(p, plans, np, 0, 0);
		for (size_t i = 0; i < np && !peer_transport_err(rc); i++) {
			int rc2 = upload_plan(p, plans, np, i);

			rc = rc2 ? rc2 : rc;
		}
	}
	for (size_t i = 0; i < np; i++)
		free(plans[i].segs);
	free(plans);
	return rc;
}
