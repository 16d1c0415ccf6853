/*
 * The cloud's request handling: dispatch by type, the session messages
 * (challenge, hello) and the download side (collections, changes,
 * tombstones, clocks, fetch). Uploads are in cloud_upload.c. Every
 * request was parsed and range-checked by sync_req_parse before it gets
 * here.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <arpa/inet.h>

#include "cloud.h"
#include "edgesync/crc32c.h"
#include "edgesync/name.h"
#include "ident.h"

static int internal(struct sync_fail *f, const char *what, int rc)
{
	return sync_failf(f, SYNC_C_INTERNAL, "%s: %s", what,
			  es_sync_strerror(rc));
}

void cloud_count(struct sync_cloud *c, struct cloud_session *ss,
		 uint64_t checksum_failures, uint64_t segments_received,
		 uint64_t segments_sent)
{
	if (!ss->dev)
		return;
	pthread_mutex_lock(&c->s->stat_lock);
	ss->dev->st.checksum_failures += checksum_failures;
	ss->dev->st.segments_received += segments_received;
	ss->dev->st.segments_sent += segments_sent;
	pthread_mutex_unlock(&c->s->stat_lock);
}

/* ---- session ---------------------------------------------------------- */

static int challenge(struct sync_cloud *c, struct cloud_session *ss,
		     const struct sync_req *rq, struct es_cbor_enc *out,
		     struct sync_fail *f)
{
	int rc = sync_random(ss->nonce, SYNC_NONCE_LEN);

	if (rc)
		return internal(f, "random", rc);
	ss->has_nonce = 1;
	sync_enc_ok(out, 2);
	es_cbor_enc_kv_bytes(out, "nonce", ss->nonce, SYNC_NONCE_LEN);
	es_cbor_enc_kv_text(out, "device", c->s->cfg.device_id);
	return 0;
}

#ifdef NNG_OPT_TLS_PEER_CN
/* Newer nng names the certificate of a connection: it must agree too. */
static int peer_cn_is(uint32_t pipe, const char *device)
{
	nng_pipe p = NNG_PIPE_INITIALIZER;
	char *cn = NULL;
	int same;

	p.id = pipe;
	if (nng_pipe_get_string(p, NNG_OPT_TLS_PEER_CN, &cn) != 0)
		return 0;
	same = !strcmp(cn, device);
	nng_strfree(cn);
	return same;
}
#endif

static int check_identity(struct sync_cloud *c, struct cloud_session *ss,
			  const struct sync_req *rq, struct sync_fail *f)
{
	const struct es_sync_config *cfg = &c->s->cfg;
	char why[180];
	int had_nonce = ss->has_nonce;

	ss->has_nonce = 0; /* a nonce serves one hello, good or bad */
	if (cfg->token && *cfg->token &&
	    (!rq->token ||
	     !sync_token_equal(cfg->token, rq->token, rq->token_len)))
		return sync_failf(f, SYNC_C_AUTH, "wrong or missing token");
	if (c->s->verifier) {
		if (!had_nonce)
			return sync_failf(f, SYNC_C_AUTH,
					  "TLS: send challenge before hello");
		if (!rq->cert || !rq->sig)
			return sync_failf(f, SYNC_C_AUTH,
					  "TLS: hello needs cert and sig");
		if (sync_verifier_check(c->s->verifier, rq->cert, rq->cert_len,
					ss->nonce, rq->device, cfg->device_id,
					rq->sig, rq->sig_len, why, sizeof(why)))
			return sync_failf(f, SYNC_C_AUTH, "TLS: %s", why);
#ifdef NNG_OPT_TLS_PEER_CN
		if (!peer_cn_is(ss->pipe, rq->device))
			return sync_failf(f, SYNC_C_AUTH,
					  "TLS: the connection's certificate "
					  "is not that of '%s'",
					  rq->device);
#endif
	}
	/* allow_devices, lab mode or approved at run time (cloud_session.c) */
	return cloud_admit(c, rq->device, f);
}

static int hello(struct sync_cloud *c, struct cloud_session *ss,
		 const struct sync_req *rq, struct es_cbor_enc *out,
		 struct sync_fail *f)
{
	int rc;

	ss->authed = 0;
	if (check_identity(c, ss, rq, f))
		return -1;
	rc = cloud_session_auth(c, ss, rq->device);
	if (rc)
		return internal(f, "too many devices", rc);
	sync_observe_hlc(c->s, rq->hlc, rq->device);
	sync_log(c->s, SYNC_LOG_DEBUG, "sync: device %s said hello",
		 rq->device);
	sync_enc_ok(out, 4);
	es_cbor_enc_kv_text(out, "device", c->s->cfg.device_id);
	es_cbor_enc_kv_uint(out, "hlc", sync_wall_hlc());
	es_cbor_enc_kv_uint(out, "chunk_max", c->s->cfg.chunk_size);
	es_cbor_enc_kv_uint(out, "window", SYNC_WINDOW_MAX);
	return 0;
}

/* ---- download --------------------------------------------------------- */

/* The published collection name, into *col. */
static int published(struct sync_cloud *c, const char *name,
		     struct es_sync_collection *col, struct sync_fail *f)
{
	const struct es_sync_host *h = &c->s->host;
	struct es_sync_collection *v = NULL;
	size_t n = 0, i;
	int rc = h->list_collections(h->arg, &v, &n);

	if (rc < 0)
		return internal(f, "list_collections", rc);
	for (i = 0; i < n; i++)
		if (!strcmp(v[i].name, name) &&
		    (v[i].flags & ES_SYNC_FLAG_DOWNLOAD))
			break;
	if (i < n)
		*col = v[i];
	free(v);
	if (i == n)
		return sync_failf(f, SYNC_C_NOT_FOUND,
				  "no published collection '%s'", name);
	return 0;
}

int cloud_collections(struct sync_cloud *c, struct cloud_session *ss,
		      const struct sync_req *rq, struct es_cbor_enc *out,
		      struct sync_fail *f)
{
	const struct es_sync_host *h = &c->s->host;
	struct es_sync_collection *v = NULL;
	size_t n = 0, k = 0;
	int rc = h->list_collections(h->arg, &v, &n);

	if (rc < 0)
		return internal(f, "list_collections", rc);
	for (size_t i = 0; i < n; i++)
		if ((v[i].flags & ES_SYNC_FLAG_DOWNLOAD) &&
		    es_name_valid(v[i].name) && k < SYNC_COLLECTIONS_MAX)
			k++;
	sync_enc_ok(out, 1);
	es_cbor_enc_text(out, "collections");
	es_cbor_enc_array(out, k);
	for (size_t i = 0, j = 0; i < n && j < k; i++) {
		if (!(v[i].flags & ES_SYNC_FLAG_DOWNLOAD) ||
		    !es_name_valid(v[i].name))
			continue;
		sync_enc_collection(out, &v[i], 1);
		j++;
	}
	free(v);
	return 0;
}

static void fill_origin(struct sync_cloud *c, struct es_sync_segment *s)
{
	if (!s->origin[0])
		snprintf(s->origin, sizeof(s->origin), "%s",
			 c->s->cfg.device_id);
}

int cloud_changes(struct sync_cloud *c, struct cloud_session *ss,
		  const struct sync_req *rq, struct es_cbor_enc *out,
		  struct sync_fail *f)
{
	const struct es_sync_host *h = &c->s->host;
	struct es_sync_segment *v = NULL;
	struct es_sync_collection col;
	size_t n = 0, take, k = 0;
	uint64_t version;
	int rc, more;

	if (published(c, rq->coll.name, &col, f))
		return -1;
	rc = h->list_segments(h->arg, col.name, rq->since, &v, &n);
	if (rc < 0)
		return internal(f, "list_segments", rc);
	take = n < SYNC_SEGMENTS_PER_MSG ? n : SYNC_SEGMENTS_PER_MSG;
	more = n > take;
	version = col.version;
	if (take && (more || v[take - 1].add_version > version))
		version = v[take - 1].add_version;
	for (size_t i = 0; i < take; i++) {
		fill_origin(c, &v[i]);
		k += strcmp(v[i].origin, ss->device) != 0;
		if (!h->index_path) /* indexes are not served */
			v[i].index_size = 0;
	}
	sync_enc_ok(out, 3);
	es_cbor_enc_kv_uint(out, "version", version);
	es_cbor_enc_kv_bool(out, "more", more);
	es_cbor_enc_text(out, "segments");
	es_cbor_enc_array(out, k);
	for (size_t i = 0; i < take; i++)
		if (strcmp(v[i].origin, ss->device) != 0)
			sync_enc_segment(out, &v[i], 1);
	free(v);
	return 0;
}

/* The tombstones of the segment added at av, as the host has them (an
 * empty origin is this device). */
static int load_tombs(struct sync_cloud *c, const char *coll, uint64_t av,
		      void **v, size_t *n)
{
	const struct es_sync_host *h = &c->s->host;
	struct es_sync_tombstone *t = NULL;
	int rc = h->segment_tombstones(h->arg, coll, av, &t, n);

	for (size_t i = 0; rc >= 0 && i < *n; i++)
		if (!t[i].origin[0])
			snprintf(t[i].origin, sizeof(t[i].origin), "%s",
				 c->s->cfg.device_id);
	*v = t;
	return rc;
}

static int load_clocks(struct sync_cloud *c, const char *coll, uint64_t av,
		       void **v, size_t *n)
{
	const struct es_sync_host *h = &c->s->host;
	struct es_clock_run *k = NULL;
	int rc = h->segment_clocks(h->arg, coll, av, &k, n);

	*v = k;
	return rc;
}

/*
 * tombstones, clocks: the page from rq->first of a list of kind k of the
 * segment added at rq->add_version, read from the host by load (named
 * by what) into lc once for all its pages.
 */
static int list_page(struct sync_cloud *c, const struct sync_req *rq,
		     struct cloud_lcache *lc, const struct sync_list_kind *k,
		     int (*load)(struct sync_cloud *, const char *, uint64_t,
				 void **, size_t *),
		     const char *what, struct es_cbor_enc *out,
		     struct sync_fail *f)
{
	struct es_sync_collection col;
	const unsigned char *page = NULL;
	size_t m;
	int rc;

	if (published(c, rq->coll.name, &col, f))
		return -1;
	if (!lc->valid || strcmp(lc->coll, col.name) ||
	    lc->add_version != rq->add_version) {
		free(lc->v);
		memset(lc, 0, sizeof(*lc));
		rc = load(c, col.name, rq->add_version, &lc->v, &lc->n);
		if (rc < 0)
			return internal(f, what, rc);
		lc->valid = 1;
		snprintf(lc->coll, sizeof(lc->coll), "%s", col.name);
		lc->add_version = rq->add_version;
	}
	if (rq->first > lc->n)
		return sync_failf(f, SYNC_C_INVALID,
				  "first %" PRIu64 " is beyond the %zu %s",
				  rq->first, lc->n, k->what);
	m = lc->n - rq->first;
	m = m < k->per_msg ? m : k->per_msg;
	if (m)
		page = (const unsigned char *)lc->v + rq->first * k->size;
	sync_enc_ok(out, 2);
	es_cbor_enc_kv_uint(out, "total", lc->n);
	es_cbor_enc_text(out, k->field);
	k->enc(out, page, m);
	return 0;
}

int cloud_tombstones(struct sync_cloud *c, struct cloud_session *ss,
		     const struct sync_req *rq, struct es_cbor_enc *out,
		     struct sync_fail *f)
{
	return list_page(c, rq, &ss->tombs, &sync_list_tombs, load_tombs,
			 "segment_tombstones", out, f);
}

int cloud_clocks(struct sync_cloud *c, struct cloud_session *ss,
		 const struct sync_req *rq, struct es_cbor_enc *out,
		 struct sync_fail *f)
{
	return list_page(c, rq, &ss->clocks, &sync_list_clocks, load_clocks,
			 "segment_clocks", out, f);
}

/* Opens path for fetches of fe's file, which must be size bytes. */
static int fetch_file(struct cloud_fetch *fe, const char *path, uint64_t size,
		      const struct sync_req *rq, struct sync_fail *f)
{
	const char *what = rq->index ? "index of segment" : "segment";
	struct stat sb;

	fe->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fe->fd < 0)
		return sync_failf(f, SYNC_C_INTERNAL,
				  "open %s %s/%" PRIu64 ": %s", what,
				  rq->seg.origin, rq->seg.origin_seq,
				  es_sync_strerror(-errno));
	if (fstat(fe->fd, &sb) != 0 || (uint64_t)sb.st_size != size) {
		close(fe->fd);
		fe->fd = -1;
		return sync_failf(f, SYNC_C_INTERNAL,
				  "%s %s/%" PRIu64
				  " has not the size its record says",
				  what, rq->seg.origin, rq->seg.origin_seq);
	}
	fe->size = size;
	return 0;
}

/*
 * Opens (or keeps open) the file rq names, for fetches: the segment, or
 * with part "index" its index file (the one changes described).
 */
static int fetch_open(struct sync_cloud *c, struct cloud_session *ss,
		      const struct sync_req *rq, struct sync_fail *f)
{
	const struct es_sync_host *h = &c->s->host;
	struct cloud_fetch *fe = &ss->fetch;
	struct es_sync_segment *v = NULL, seg = {0};
	struct es_sync_collection col;
	char *path = NULL;
	size_t n = 0, i;
	int rc;

	if (fe->fd >= 0 && !strcmp(fe->coll, rq->coll.name) &&
	    !strcmp(fe->origin, rq->seg.origin) &&
	    fe->seq == rq->seg.origin_seq && fe->index == rq->index)
		return 0;
	if (fe->fd >= 0)
		close(fe->fd);
	fe->fd = -1;
	if (published(c, rq->coll.name, &col, f))
		return -1;
	rc = h->list_segments(h->arg, col.name, 0, &v, &n);
	if (rc < 0)
		return internal(f, "list_segments", rc);
	for (i = 0; i < n; i++) {
		fill_origin(c, &v[i]);
		if (!strcmp(v[i].origin, rq->seg.origin) &&
		    v[i].origin_seq == rq->seg.origin_seq)
			break;
	}
	if (i < n)
		seg = v[i];
	free(v);
	if (i == n)
		return sync_failf(f, SYNC_C_NOT_FOUND,
				  "no segment %s/%" PRIu64 " in '%s'",
				  rq->seg.origin, rq->seg.origin_seq, col.name);
	if (rq->index && (!h->index_path || !seg.index_size))
		return sync_failf(f, SYNC_C_NOT_FOUND,
				  "segment %s/%" PRIu64 " of '%s' has no index "
				  "here",
				  rq->seg.origin, rq->seg.origin_seq, col.name);
	if (rq->index)
		rc = h->index_path(h->arg, col.name, seg.id, &path);
	else
		rc = h->segment_path(h->arg, col.name, seg.id, &path);
	if (rc == -ENOENT && rq->index)
		return sync_failf(f, SYNC_C_NOT_FOUND,
				  "segment %s/%" PRIu64 " of '%s' has no index "
				  "here",
				  rq->seg.origin, rq->seg.origin_seq, col.name);
	if (rc < 0)
		return internal(f, rq->index ? "index_path" : "segment_path",
				rc);
	rc = fetch_file(fe, path, rq->index ? seg.index_size : seg.size, rq, f);
	free(path);
	if (rc)
		return rc;
	snprintf(fe->coll, sizeof(fe->coll), "%s", col.name);
	snprintf(fe->origin, sizeof(fe->origin), "%s", rq->seg.origin);
	fe->seq = rq->seg.origin_seq;
	fe->index = rq->index;
	return 0;
}

int cloud_fetch(struct sync_cloud *c, struct cloud_session *ss,
		const struct sync_req *rq, struct es_cbor_enc *out,
		struct sync_fail *f)
{
	struct cloud_fetch *fe = &ss->fetch;
	unsigned char *p;
	int rc;

	if (fetch_open(c, ss, rq, f))
		return -1;
	if (rq->length == 0 || rq->length > c->s->cfg.chunk_size)
		return sync_failf(f, SYNC_C_INVALID,
				  "fetch length must be 1 to %" PRIu32
				  " bytes, not %" PRIu64,
				  c->s->cfg.chunk_size, rq->length);
	if (rq->offset > fe->size || rq->length > fe->size - rq->offset)
		return sync_failf(f, SYNC_C_INVALID,
				  "[%" PRIu64 ", +%" PRIu64
				  ") lies beyond the %s's %" PRIu64 " bytes",
				  rq->offset, rq->length,
				  fe->index ? "index" : "segment", fe->size);
	sync_enc_ok(out, 2);
	es_cbor_enc_text(out, "data");
	p = es_cbor_enc_bytes_reserve(out, (size_t)rq->length);
	if (!p)
		return internal(f, "reply", -ENOMEM);
	rc = sync_pread_all(fe->fd, p, (size_t)rq->length, (off_t)rq->offset);
	if (rc)
		return internal(f, fe->index ? "read index" : "read segment",
				rc);
	es_cbor_enc_kv_uint(out, "crc", es_crc32c(0, p, (size_t)rq->length));
	if (rq->offset + rq->length == fe->size && !fe->index)
		cloud_count(c, ss, 0, 0, 1);
	return 0;
}

/* ---- dispatch --------------------------------------------------------- */

static cloud_handler *const handlers[SYNC_T_COUNT] = {
    [SYNC_T_CHALLENGE] = challenge,
    [SYNC_T_HELLO] = hello,
    [SYNC_T_COLLECTIONS] = cloud_collections,
    [SYNC_T_BEGIN] = cloud_begin,
    [SYNC_T_MORE_TOMBSTONES] = cloud_more_tombstones,
    [SYNC_T_MORE_CLOCKS] = cloud_more_clocks,
    [SYNC_T_CHUNK] = cloud_chunk,
    [SYNC_T_COMMIT] = cloud_commit,
    [SYNC_T_CHANGES] = cloud_changes,
    [SYNC_T_TOMBSTONES] = cloud_tombstones,
    [SYNC_T_CLOCKS] = cloud_clocks,
    [SYNC_T_FETCH] = cloud_fetch,
};

static int dispatch(struct sync_cloud *c, struct cloud_session *ss,
		    const struct sync_req *rq, struct es_cbor_enc *out,
		    struct sync_fail *f)
{
	if (!ss->authed && rq->type != SYNC_T_CHALLENGE &&
	    rq->type != SYNC_T_HELLO)
		return sync_failf(f, SYNC_C_SESSION,
				  "this connection has not said hello");
	return handlers[rq->type](c, ss, rq, out, f);
}

/* "dev-a", or for a connection that has not said hello, its address. */
static void who(struct cloud_session *ss, uint32_t pipe,
		const struct sync_req *rq, int parsed, char *buf, size_t size)
{
	nng_pipe p = NNG_PIPE_INITIALIZER;
	nng_sockaddr sa;
	char addr[96] = "an unknown address";

	if (ss && ss->authed) {
		snprintf(buf, size, "%s", ss->device);
		return;
	}
	p.id = pipe;
	if (nng_pipe_get_addr(p, NNG_OPT_REMADDR, &sa) == 0) {
		if (sa.s_family == NNG_AF_INET) {
			const unsigned char *a =
			    (const unsigned char *)&sa.s_in.sa_addr;

			snprintf(addr, sizeof(addr), "%u.%u.%u.%u:%u", a[0],
				 a[1], a[2], a[3],
				 (unsigned)ntohs(sa.s_in.sa_port));
		} else if (sa.s_family == NNG_AF_IPC) {
			snprintf(addr, sizeof(addr), "ipc");
		} else if (sa.s_family == NNG_AF_INET6) {
			snprintf(addr, sizeof(addr), "[ipv6]:%u",
				 (unsigned)ntohs(sa.s_in6.sa_port));
		}
	}
	if (parsed && rq->type == SYNC_T_HELLO)
		snprintf(buf, size, "%s (claiming to be '%s')", addr,
			 rq->device);
	else
		snprintf(buf, size, "%s", addr);
}

/* Counts the exchange and, on a refusal, remembers and logs it. */
static void account(struct sync_cloud *c, struct cloud_session *ss,
		    uint32_t pipe, const struct sync_req *rq, int parsed,
		    size_t in, size_t out, const struct sync_fail *f)
{
	int quiet = f->code == SYNC_C_OFFSET || f->code == SYNC_C_SESSION ||
		    f->code == SYNC_C_STATE;
	const char *t = parsed ? sync_type_name(rq->type) : NULL;
	char from[200];

	if (ss && ss->dev) {
		pthread_mutex_lock(&c->s->stat_lock);
		ss->dev->st.bytes_received += in;
		ss->dev->st.bytes_sent += out;
		if (f->code == SYNC_C_NONE) {
			ss->dev->st.last_success_ms = sync_wall_ms();
			/* a segment installed or a change list served: the
			 * device's exchange works again */
			if (parsed && (rq->type == SYNC_T_COMMIT ||
				       rq->type == SYNC_T_CHANGES))
				ss->dev->st.last_error[0] = '\0';
		} else
			snprintf(ss->dev->st.last_error,
				 sizeof(ss->dev->st.last_error),
				 "%.14s: %.140s", sync_code_name(f->code),
				 f->msg);
		pthread_mutex_unlock(&c->s->stat_lock);
	}
	if (f->code == SYNC_C_NONE)
		return;
	who(ss, pipe, rq, parsed, from, sizeof(from));
	sync_log_peer(c->s, quiet ? SYNC_LOG_DEBUG : SYNC_LOG_WARN,
		      "sync: refused %s from %s: %s: %s", t ? t : "a request",
		      from, sync_code_name(f->code), f->msg);
}

static void count_chunk(struct cloud_upload_times *t,
			const struct cloud_worker *w, size_t n,
			uint64_t t_checked, uint64_t t_locked)
{
	t->chunks++;
	t->bytes += n;
	t->queued += w->t_taken - w->t_recv;
	t->checked += t_checked - w->t_taken;
	t->waited += t_locked - t_checked;
}

void cloud_handle(struct sync_cloud *c, uint32_t pipe, const void *buf,
		  size_t len, struct es_cbor_enc *out, struct cloud_worker *w)
{
	struct cloud_session *ss = NULL;
	struct sync_fail f;
	struct sync_req rq;
	uint64_t t_checked = 0, t_locked = 0;
	int rc, parsed;

	es_cbor_enc_reset(out, (size_t)c->s->cfg.chunk_size * 2);
	/* The parser checks the trailer and a chunk's data before the
	 * session's lock: the workers check the requests of one connection
	 * in parallel, and write in turn. */
	rc = sync_req_parse(&rq, buf, len, &f);
	parsed = rc == 0;
	if (rc == 0 && rq.type == SYNC_T_PING) {
		sync_enc_ok(out, 0);
		goto out;
	}
	if ((rc == 0 || f.code == SYNC_C_CHECKSUM) &&
	    !(ss = cloud_session_get(c, pipe)) && rc == 0)
		rc = sync_failf(&f, SYNC_C_SESSION,
				"this connection is closing");
	if (ss) {
		t_checked = sync_mono_us();
		pthread_mutex_lock(&ss->lock);
		t_locked = sync_mono_us();
		if (rc == 0)
			rc = dispatch(c, ss, &rq, out, &f);
		else if (ss->authed) /* damaged in transit: counted */
			cloud_count(c, ss, 1, 0, 0);
		if (rc == 0 && rq.type == SYNC_T_CHUNK && ss->up.active) {
			count_chunk(&ss->up.times, w, rq.data_len, t_checked,
				    t_locked);
			w->stream = 1;
		}
	}
	if (rc || es_cbor_enc_error(out)) {
		if (rc == 0)
			sync_failf(&f, SYNC_C_INTERNAL, "out of memory");
		es_cbor_enc_reset(out, (size_t)c->s->cfg.chunk_size * 2);
		sync_enc_fail(out, &f);
	}
	account(c, ss, pipe, &rq, parsed, len, out->len, &f);
	if (ss) {
		pthread_mutex_unlock(&ss->lock);
		cloud_session_put(c, ss);
	}
out:
	sync_req_fini(&rq);
}
