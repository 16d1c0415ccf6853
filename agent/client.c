/*
 * edgesync client library (include/edgesync/client.h): one nng REQ socket
 * dialled to the agent's ipc:// socket, one request at a time.
 *
 * Each call encodes its request into c->enc (reused, so a session of
 * inserts allocates once), sends it, waits at most the timeout for the
 * reply and reads the fields it needs straight from the reply buffer
 * (es_cbor_map_index spans, no tree). {ok: false} replies become
 * ES_E_CLIENT_REMOTE with the agent's code and message kept in c.
 *
 * A request larger than the agent takes would make it drop the
 * connection without a reply, so before sending anything over SMALL bytes
 * (the least max_message an agent may have) the client asks the agent's
 * max_message once (ping) and refuses with ES_E_CLIENT_TOO_BIG instead.
 * The limit is on the request itself; nng's header is not counted. REQ never resends on a timer
 * (NNG_OPT_REQ_RESENDTIME infinite): only a reconnect re-sends.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>

#include "api_codec.h"
#include "edgesync/client.h"

#define DEFAULT_TIMEOUT_MS 30000
#define SMALL		   65536u /* requests this small need no size check */
#define ENC_KEEP	   (8u << 20) /* encoder bytes kept between requests */

/*
 * A client: one REQ socket dialed to the agent, one connection, one
 * request at a time. Once that connection closes (the agent stopped),
 * the client is done (lost): a request then in flight ends at once
 * (its reply is awaited through aio, which the close cancels), and
 * later ones fail at once. Otherwise the REQ socket would keep each
 * request to send on a next connection: the caller would wait out its
 * timeout, or have the request applied by a restarted agent unawares.
 */
struct es_client {
	nng_socket sock;
	nng_aio *aio;
	atomic_int lost; /* the connection to the agent has closed */
	unsigned timeout_ms;
	uint64_t max_message; /* the agent's; 0 until asked */
	struct es_cbor_enc enc;
	char code[32];
	char msg[API_ERR_MAX + 96];
	char err[API_ERR_MAX];
};

/* A reply being read: its message and where its fields lie. */
#define K_OK	   0
#define K_ERROR	   1
#define MAX_FIELDS 16
struct reply {
	nng_msg *msg;
	struct es_cbor_reader r;
	struct es_cbor_span f[MAX_FIELDS];
};

static int set_error(struct es_client *c, int rc, const char *code,
		     const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int set_error(struct es_client *c, int rc, const char *code,
		     const char *fmt, ...)
{
	va_list ap;

	snprintf(c->code, sizeof(c->code), "%s", code);
	va_start(ap, fmt);
	vsnprintf(c->msg, sizeof(c->msg), fmt, ap);
	va_end(ap);
	return rc;
}

const char *es_client_error_code(const struct es_client *c)
{
	return c->code;
}

const char *es_client_error(const struct es_client *c)
{
	return c->msg;
}

const char *es_client_strerror(int err)
{
	switch (err) {
	case ES_E_CLIENT_CONNECT:
		return "no agent is listening on the socket, or it closed the "
		       "connection";
	case ES_E_CLIENT_TIMEOUT:
		return "the agent did not answer in time";
	case ES_E_CLIENT_PROTOCOL:
		return "the agent's reply was not understood";
	case ES_E_CLIENT_REMOTE:
		return "the agent refused the request";
	case ES_E_CLIENT_TOO_BIG:
		return "the request is larger than the agent accepts";
	}
	if (err < 0 && strerrordesc_np(-err))
		return strerrordesc_np(-err);
	return "unknown error";
}

static int nng_fail(struct es_client *c, int rv, const char *what)
{
	switch (rv) {
	case NNG_ETIMEDOUT:
		return set_error(c, ES_E_CLIENT_TIMEOUT, "timeout",
				 "%s: no reply within %u ms", what,
				 c->timeout_ms);
	case NNG_ECONNREFUSED:
	case NNG_ENOENT:
		return set_error(c, ES_E_CLIENT_CONNECT, "connect", "%s: %s",
				 what, nng_strerror(rv));
	case NNG_ECONNRESET:
	case NNG_ECONNABORTED:
	case NNG_ECONNSHUT:
	case NNG_ECLOSED:
		return set_error(c, ES_E_CLIENT_CONNECT, "connect",
				 "%s: the agent closed the connection before "
				 "answering (%s); the request may or may not "
				 "have been applied",
				 what, nng_strerror(rv));
	case NNG_EPERM:
		return set_error(c, -EACCES, "permission", "%s: %s", what,
				 nng_strerror(rv));
	case NNG_ENOMEM:
		return set_error(c, -ENOMEM, "system", "%s: %s", what,
				 nng_strerror(rv));
	default:
		return set_error(
		    c, (rv & NNG_ESYSERR) ? -(rv & ~NNG_ESYSERR) : -EIO,
		    "system", "%s: %s", what, nng_strerror(rv));
	}
}

/* nng's callback as a connection to the agent closes. */
static void pipe_lost(nng_pipe p, nng_pipe_ev ev, void *arg)
{
	struct es_client *c = arg;

	(void)p;
	(void)ev;
	atomic_store(&c->lost, 1);
	nng_aio_cancel(c->aio);
}

int es_client_open(struct es_client **cp, const char *socket_path,
		   unsigned timeout_ms)
{
	struct es_client *c;
	char *url;
	int rv;

	*cp = NULL;
	if (!socket_path || !socket_path[0])
		return -EINVAL;
	c = calloc(1, sizeof(*c));
	url = malloc(strlen(socket_path) + 7);
	if (!c || !url) {
		free(c);
		free(url);
		return -ENOMEM;
	}
	es_cbor_enc_init(&c->enc);
	c->timeout_ms = timeout_ms ? timeout_ms : DEFAULT_TIMEOUT_MS;
	sprintf(url, "%s%s", strncmp(socket_path, "ipc://", 6) ? "ipc://" : "",
		socket_path);
	rv = nng_aio_alloc(&c->aio, NULL, NULL);
	if (rv == 0) {
		rv = nng_req0_open(&c->sock);
		if (rv)
			nng_aio_free(c->aio);
	}
	if (rv) {
		free(url);
		free(c);
		return rv == NNG_ENOMEM ? -ENOMEM : -EIO;
	}
	nng_aio_set_timeout(c->aio, (nng_duration)c->timeout_ms);
	rv = nng_pipe_notify(c->sock, NNG_PIPE_EV_REM_POST, pipe_lost, c);
	if (rv == 0)
		rv = nng_socket_set_ms(c->sock, NNG_OPT_RECVTIMEO,
				       (nng_duration)c->timeout_ms);
	if (rv == 0)
		rv = nng_socket_set_ms(c->sock, NNG_OPT_SENDTIMEO,
				       (nng_duration)c->timeout_ms);
	if (rv == 0)
		rv = nng_socket_set_ms(c->sock, NNG_OPT_REQ_RESENDTIME,
				       NNG_DURATION_INFINITE);
	if (rv == 0) /* replies come from our own agent */
		rv = nng_socket_set_size(c->sock, NNG_OPT_RECVMAXSZ, 0);
	if (rv == 0)
		rv = nng_dial(c->sock, url, NULL, 0);
	free(url);
	if (rv) {
		rv = nng_fail(c, rv, "connect");
		nng_close(c->sock);
		nng_aio_free(c->aio);
		free(c);
		return rv;
	}
	*cp = c;
	return 0;
}

void es_client_close(struct es_client *c)
{
	if (!c)
		return;
	nng_close(c->sock); /* its callbacks are done when it returns */
	nng_aio_free(c->aio);
	es_cbor_enc_fini(&c->enc);
	free(c);
}

/* ---- one round trip --------------------------------------------------- */

static int proto(struct es_client *c, const char *op)
{
	return set_error(c, ES_E_CLIENT_PROTOCOL, "protocol",
			 "%s: the agent's reply was not understood: %s", op,
			 c->err);
}

static int remote_error(struct es_client *c, struct reply *rp, const char *op)
{
	static const char *const keys[] = {"code", "message"};
	struct es_cbor_span f[2];
	struct es_cbor_reader sub;
	char msg[API_ERR_MAX];

	if (!rp->f[K_ERROR].p)
		return set_error(c, ES_E_CLIENT_PROTOCOL, "protocol",
				 "%s: the agent refused without saying why",
				 op);
	es_cbor_reader_span(&sub, &rp->r, &rp->f[K_ERROR]);
	if (es_cbor_map_index(&sub, keys, 2, f, 1, "error") || !f[0].p)
		return proto(c, op);
	es_cbor_reader_span(&sub, &rp->r, &f[0]);
	if (es_cbor_get_text(&sub, "error code", c->code, sizeof(c->code)))
		return proto(c, op);
	msg[0] = '\0';
	if (f[1].p) {
		es_cbor_reader_span(&sub, &rp->r, &f[1]);
		if (es_cbor_get_text(&sub, "error message", msg, sizeof(msg)))
			return proto(c, op);
	}
	snprintf(c->msg, sizeof(c->msg), "%s", msg[0] ? msg : c->code);
	return ES_E_CLIENT_REMOTE;
}

static void reply_free(struct reply *rp)
{
	if (rp->msg)
		nng_msg_free(rp->msg);
	rp->msg = NULL;
}

static int closed_unsent(struct es_client *c, const char *op)
{
	return set_error(c, ES_E_CLIENT_CONNECT, "connect",
			 "%s: the connection to the agent has closed (did it "
			 "stop?); nothing was sent",
			 op);
}

/*
 * Waits for the operation c->aio has under way; the connection closing
 * cancels it (pipe_lost), which is then reported as that.
 */
static int await(struct es_client *c)
{
	int rv;

	if (atomic_load(&c->lost)) /* closed before the wait began */
		nng_aio_cancel(c->aio);
	nng_aio_wait(c->aio);
	rv = nng_aio_result(c->aio);
	return rv == NNG_ECANCELED && atomic_load(&c->lost) ? NNG_ECONNSHUT
							    : rv;
}

/*
 * Sends len bytes of request, receives the reply and indexes its fields
 * keys ("ok", "error", then the op's own). On 0 the caller reads rp->f
 * and calls reply_free; on failure rp holds nothing.
 */
static int round_trip(struct es_client *c, const void *req, size_t len,
		      const char *op, const char *const *keys, size_t nkeys,
		      struct reply *rp)
{
	size_t n;
	int ok, rv;

	memset(rp, 0, sizeof(*rp));
	c->code[0] = '\0';
	c->msg[0] = '\0';
	if (atomic_load(&c->lost))
		return closed_unsent(c, op);
	rv = nng_msg_alloc(&rp->msg, 0);
	if (rv == 0)
		rv = nng_msg_append(rp->msg, req, len);
	if (rv) {
		reply_free(rp);
		return nng_fail(c, rv, op);
	}
	nng_aio_set_msg(c->aio, rp->msg);
	rp->msg = NULL;
	nng_send_aio(c->sock, c->aio);
	rv = await(c);
	if (rv) {
		nng_msg_free(nng_aio_get_msg(c->aio));
		return rv == NNG_ECONNSHUT ? closed_unsent(c, op)
					   : nng_fail(c, rv, op);
	}
	nng_recv_aio(c->sock, c->aio);
	rv = await(c);
	if (rv)
		return nng_fail(c, rv, op);
	rp->msg = nng_aio_get_msg(c->aio);
	n = nng_msg_len(rp->msg);
	es_cbor_reader_init(&rp->r, nng_msg_body(rp->msg), n, c->err);
	rv = es_cbor_map_index(&rp->r, keys, nkeys, rp->f, 0, "reply");
	if (rv == 0)
		rv = es_cbor_reader_end(&rp->r);
	if (rv == 0 && !rp->f[K_OK].p)
		rv = es_cbor_fail(&rp->r, ES_E_CBOR_SCHEMA, "no field 'ok'");
	if (rv == 0) {
		struct es_cbor_reader sub;

		es_cbor_reader_span(&sub, &rp->r, &rp->f[K_OK]);
		rv = es_cbor_get_bool(&sub, "field 'ok'", &ok);
	}
	if (rv)
		rv = proto(c, op);
	else if (!ok)
		rv = remote_error(c, rp, op);
	if (rv)
		reply_free(rp);
	return rv;
}

static int ask_limit(struct es_client *c);

/* Sends what c->enc holds after checking its size; see round_trip. */
static int call(struct es_client *c, const char *op, const char *const *keys,
		size_t nkeys, struct reply *rp)
{
	int rc = es_cbor_enc_error(&c->enc);

	if (rc)
		return set_error(c, rc, "system", "%s: out of memory", op);
	if (c->enc.len > SMALL) {
		rc = c->max_message ? 0 : ask_limit(c);
		if (rc)
			return rc;
		if (c->enc.len > c->max_message)
			return set_error(c, ES_E_CLIENT_TOO_BIG, "too_large",
					 "%s: the request takes %zu bytes, the "
					 "agent accepts at most %" PRIu64,
					 op, c->enc.len, c->max_message);
	}
	return round_trip(c, c->enc.buf, c->enc.len, op, keys, nkeys, rp);
}

/* Starts a request map of n entries besides v and op. */
static struct es_cbor_enc *begin(struct es_client *c, const char *op,
				 unsigned n)
{
	struct es_cbor_enc *e = &c->enc;

	es_cbor_enc_reset(e, ENC_KEEP);
	es_cbor_enc_map(e, 2 + n);
	es_cbor_enc_kv_uint(e, "v", API_PROTOCOL);
	es_cbor_enc_kv_text(e, "op", op);
	return e;
}

/* Typed fields of a reply; absent ones read as 0 or "". */
static int get_u64(struct reply *rp, int k, const char *what, uint64_t *v)
{
	struct es_cbor_reader sub;

	*v = 0;
	if (!rp->f[k].p)
		return 0;
	es_cbor_reader_span(&sub, &rp->r, &rp->f[k]);
	return es_cbor_get_uint(&sub, what, v);
}

static int get_text(struct reply *rp, int k, const char *what, char *buf,
		    size_t size)
{
	struct es_cbor_reader sub;

	buf[0] = '\0';
	if (!rp->f[k].p)
		return 0;
	es_cbor_reader_span(&sub, &rp->r, &rp->f[k]);
	return es_cbor_get_text(&sub, what, buf, size);
}

/* ---- operations ------------------------------------------------------- */

static const char *const ping_keys[] = {"ok", "error", "max_message"};

static int ask_limit(struct es_client *c)
{
	static const unsigned char ping[] = {0xa2, 0x61, 'v',  0x01, 0x62,
					     'o',  'p',	 0x64, 'p',  'i',
					     'n',  'g'}; /* {v: 1, op: ping} */
	struct reply rp;
	int rc = round_trip(c, ping, sizeof(ping), "ping", ping_keys, 3, &rp);

	if (rc)
		return rc;
	if (get_u64(&rp, 2, "max_message", &c->max_message))
		rc = proto(c, "ping");
	else if (!c->max_message)
		c->max_message = UINT64_MAX; /* an agent without a limit */
	reply_free(&rp);
	return rc;
}

int es_client_ping(struct es_client *c)
{
	c->max_message = 0;
	return ask_limit(c);
}

static const char *const ok_keys[] = {"ok", "error"};

/* A request on a collection whose reply is {ok} alone. */
static int simple(struct es_client *c, const char *op, const char *field,
		  const char *name)
{
	struct es_cbor_enc *e = begin(c, op, 1);
	struct reply rp;
	int rc;

	es_cbor_enc_kv_text(e, field, name);
	rc = call(c, op, ok_keys, 2, &rp);
	if (rc == 0)
		reply_free(&rp);
	return rc;
}

int es_client_collection_create(struct es_client *c, const char *name,
				uint32_t dim, const char *metric,
				const char *sync)
{
	struct es_cbor_enc *e =
	    begin(c, "collection.create", 2 + !!metric + !!sync);
	struct reply rp;
	int rc;

	es_cbor_enc_kv_text(e, "name", name);
	es_cbor_enc_kv_uint(e, "dim", dim);
	if (metric)
		es_cbor_enc_kv_text(e, "metric", metric);
	if (sync)
		es_cbor_enc_kv_text(e, "sync", sync);
	rc = call(c, "collection.create", ok_keys, 2, &rp);
	if (rc == 0)
		reply_free(&rp);
	return rc;
}

int es_client_collection_drop(struct es_client *c, const char *name)
{
	return simple(c, "collection.drop", "name", name);
}

int es_client_flush(struct es_client *c, const char *name)
{
	return simple(c, "flush", "collection", name);
}

static const char *const coll_keys[] = {
    "name",    "dim",	   "metric",  "sync",	 "vectors",
    "growing", "segments", "indexed", "version", "bytes",
};

/*
 * The array in field 2 (named field) of a reply to op: elements of size
 * bytes, each read by one; *out malloc'ed (NULL when *n is 0). Frees rp.
 */
static int read_list(struct es_client *c, const char *op, struct reply *rp,
		     const char *field, size_t size,
		     int (*one)(struct es_cbor_reader *sub, void *dst),
		     void **out, size_t *n)
{
	struct es_cbor_reader sub;
	struct es_cbor_seq s = {0};
	char *list = NULL, *grown;
	size_t cnt = 0;
	int rc;

	if (!rp->f[2].p) {
		reply_free(rp);
		return 0;
	}
	es_cbor_reader_span(&sub, &rp->r, &rp->f[2]);
	rc = es_cbor_array_begin(&sub, &s, field);
	while (rc == 0 && (rc = es_cbor_seq_next(&sub, &s)) > 0) {
		grown = realloc(list, (cnt + 1) * size);
		if (!grown) {
			rc = -ENOMEM;
			break;
		}
		list = grown;
		rc = one(&sub, list + cnt * size);
		cnt += rc == 0;
	}
	reply_free(rp);
	if (rc) {
		free(list);
		return rc == -ENOMEM
			   ? set_error(c, rc, "system", "out of memory")
			   : proto(c, op);
	}
	*out = list;
	*n = cnt;
	return 0;
}

/* Reads one collection map (at sub) into out. */
static int read_collection(struct es_cbor_reader *sub, void *dst)
{
	struct es_client_collection *out = dst;
	struct reply m = {.r = *sub};
	uint64_t dim;
	uint64_t *const nums[] = {&out->vectors, &out->growing, &out->segments,
				  &out->indexed, &out->version, &out->bytes};
	int rc;

	memset(out, 0, sizeof(*out));
	rc = es_cbor_map_index(&m.r, coll_keys, 10, m.f, 1, "collection");
	if (rc == 0)
		rc = get_text(&m, 0, "name", out->name, sizeof(out->name));
	if (rc == 0)
		rc = get_u64(&m, 1, "dim", &dim);
	if (rc == 0 && dim > UINT32_MAX)
		rc = es_cbor_fail(&m.r, ES_E_CBOR_VALUE, "dim out of range");
	out->dim = (uint32_t)dim;
	if (rc == 0)
		rc =
		    get_text(&m, 2, "metric", out->metric, sizeof(out->metric));
	if (rc == 0)
		rc = get_text(&m, 3, "sync", out->sync, sizeof(out->sync));
	for (int i = 0; rc == 0 && i < 6; i++)
		rc = get_u64(&m, 4 + i, coll_keys[4 + i], nums[i]);
	sub->p = m.r.p;
	return rc;
}

int es_client_collection_info(struct es_client *c, const char *name,
			      struct es_client_collection *out)
{
	static const char *const keys[] = {"ok", "error", "collection"};
	struct es_cbor_enc *e = begin(c, "collection.info", 1);
	struct es_cbor_reader sub;
	struct reply rp;
	int rc;

	es_cbor_enc_kv_text(e, "name", name);
	rc = call(c, "collection.info", keys, 3, &rp);
	if (rc)
		return rc;
	if (!rp.f[2].p) {
		es_cbor_fail(&rp.r, ES_E_CBOR_SCHEMA, "no field 'collection'");
		rc = proto(c, "collection.info");
	} else {
		es_cbor_reader_span(&sub, &rp.r, &rp.f[2]);
		if (read_collection(&sub, out))
			rc = proto(c, "collection.info");
	}
	reply_free(&rp);
	return rc;
}

int es_client_collection_list(struct es_client *c,
			      struct es_client_collection **out, size_t *n)
{
	static const char *const keys[] = {"ok", "error", "collections"};
	struct reply rp;
	void *list = NULL;
	int rc;

	*out = NULL;
	*n = 0;
	begin(c, "collection.list", 0);
	rc = call(c, "collection.list", keys, 3, &rp);
	if (rc == 0)
		rc = read_list(c, "collection.list", &rp, keys[2],
			       sizeof(**out), read_collection, &list, n);
	*out = list;
	return rc;
}

static const char *const count_keys[] = {"ok", "error", "count"};

static void enc_ids(struct es_cbor_enc *e, const uint64_t *ids, size_t n)
{
	es_cbor_enc_text(e, "ids");
	es_cbor_enc_array(e, n);
	for (size_t i = 0; i < n; i++)
		es_cbor_enc_uint(e, ids[i]);
}

int es_client_insert(struct es_client *c, const char *name, const uint64_t *ids,
		     const float *vectors, size_t n, uint32_t dim)
{
	struct es_cbor_enc *e;
	struct reply rp;
	int rc;

	if (n && (!dim || n > SIZE_MAX / sizeof(float) / dim))
		return set_error(c, -EINVAL, "bad_value",
				 "insert: %zu vectors of dim %" PRIu32, n, dim);
	e = begin(c, "insert", 3);
	es_cbor_enc_kv_text(e, "collection", name);
	enc_ids(e, ids, n);
	es_cbor_enc_text(e, "vectors");
	es_cbor_enc_floats(e, vectors, n * dim);
	rc = call(c, "insert", count_keys, 3, &rp);
	if (rc == 0)
		reply_free(&rp);
	return rc;
}

int es_client_delete(struct es_client *c, const char *name, const uint64_t *ids,
		     size_t n)
{
	struct es_cbor_enc *e = begin(c, "delete", 2);
	struct reply rp;
	int rc;

	es_cbor_enc_kv_text(e, "collection", name);
	enc_ids(e, ids, n);
	rc = call(c, "delete", count_keys, 3, &rp);
	if (rc == 0)
		reply_free(&rp);
	return rc;
}

int es_client_get(struct es_client *c, const char *name, uint64_t id,
		  float *out, uint32_t max_dim, uint32_t *dim)
{
	static const char *const keys[] = {"ok", "error", "vector"};
	struct es_cbor_enc *e = begin(c, "get", 2);
	struct es_cbor_reader sub;
	struct es_cbor_item it;
	struct reply rp;
	int rc;

	*dim = 0;
	es_cbor_enc_kv_text(e, "collection", name);
	es_cbor_enc_kv_uint(e, "id", id);
	rc = call(c, "get", keys, 3, &rp);
	if (rc)
		return rc;
	if (rp.f[2].p)
		es_cbor_reader_span(&sub, &rp.r, &rp.f[2]);
	if (!rp.f[2].p || es_cbor_next(&sub, &it) || it.type != ES_CBOR_BYTES ||
	    it.u % sizeof(float)) {
		snprintf(c->err, sizeof(c->err),
			 "field 'vector' is not a byte string of float32");
		rc = proto(c, "get");
	} else if (it.u / sizeof(float) > max_dim) {
		*dim = (uint32_t)(it.u / sizeof(float));
		rc = set_error(c, -ERANGE, "too_large",
			       "get: the vector has %" PRIu32 " values, "
			       "room for %" PRIu32,
			       *dim, max_dim);
	} else {
		*dim = (uint32_t)(it.u / sizeof(float));
		memcpy(out, it.data, it.u);
	}
	reply_free(&rp);
	return rc;
}

/* Reads the array at k into hits: ids (floats 0) or distances (1). */
static int read_hits(struct reply *rp, int k, int floats, uint32_t max,
		     struct es_client_hit *hits, uint32_t *n)
{
	struct es_cbor_reader sub;
	struct es_cbor_seq s = {0};
	const char *what = floats ? "distances" : "ids";
	uint32_t i = 0;
	double d;
	int rc;

	if (!rp->f[k].p)
		return es_cbor_fail(&rp->r, ES_E_CBOR_SCHEMA, "no field '%s'",
				    what);
	es_cbor_reader_span(&sub, &rp->r, &rp->f[k]);
	rc = es_cbor_array_begin(&sub, &s, what);
	while (rc == 0 && (rc = es_cbor_seq_next(&sub, &s)) > 0) {
		if (i == max)
			return es_cbor_fail(&rp->r, ES_E_CBOR_SCHEMA,
					    "%s has more than k entries", what);
		if (floats) {
			rc = es_cbor_get_number(&sub, what, &d);
			hits[i].distance = (float)d;
		} else {
			rc = es_cbor_get_uint(&sub, what, &hits[i].id);
		}
		i += rc == 0;
	}
	*n = i;
	return rc;
}

int es_client_search(struct es_client *c, const char *name, const float *query,
		     uint32_t dim, uint32_t k, uint32_t L,
		     struct es_client_hit *hits)
{
	static const char *const keys[] = {"ok", "error", "ids", "distances"};
	struct es_cbor_enc *e = begin(c, "search", 3 + !!L);
	struct reply rp;
	uint32_t n_ids = 0, n_dist = 0;
	int rc;

	es_cbor_enc_kv_text(e, "collection", name);
	es_cbor_enc_text(e, "vector");
	es_cbor_enc_floats(e, query, dim);
	es_cbor_enc_kv_uint(e, "k", k);
	if (L)
		es_cbor_enc_kv_uint(e, "L", L);
	rc = call(c, "search", keys, 4, &rp);
	if (rc)
		return rc;
	rc = read_hits(&rp, 2, 0, k, hits, &n_ids);
	if (rc == 0)
		rc = read_hits(&rp, 3, 1, k, hits, &n_dist);
	if (rc == 0 && n_ids != n_dist)
		rc = es_cbor_fail(&rp.r, ES_E_CBOR_SCHEMA,
				  "%" PRIu32 " ids but %" PRIu32 " distances",
				  n_ids, n_dist);
	reply_free(&rp);
	return rc ? proto(c, "search") : (int)n_ids;
}

static const char *const seg_keys[] = {
    "id",	  "count",    "size",	"checksum",   "indexed",
    "index_size", "seal_hlc", "origin", "clock_runs", "clocks_crc",
};

static int read_segment(struct es_cbor_reader *sub, void *dst)
{
	struct es_client_segment *out = dst;
	struct reply m = {.r = *sub};
	struct es_cbor_reader v;
	uint64_t sum = 0;
	int rc;

	memset(out, 0, sizeof(*out));
	rc = es_cbor_map_index(&m.r, seg_keys, 10, m.f, 1, "segment");
	if (rc == 0 && m.f[0].p) {
		es_cbor_reader_span(&v, &m.r, &m.f[0]);
		rc = es_cbor_get_int(&v, "id", &out->id);
	}
	if (rc == 0)
		rc = get_u64(&m, 1, "count", &out->count);
	if (rc == 0)
		rc = get_u64(&m, 2, "size", &out->size);
	if (rc == 0)
		rc = get_u64(&m, 3, "checksum", &sum);
	out->checksum = (uint32_t)sum;
	if (rc == 0 && m.f[4].p) {
		es_cbor_reader_span(&v, &m.r, &m.f[4]);
		rc = es_cbor_get_bool(&v, "indexed", &out->indexed);
	}
	if (rc == 0)
		rc = get_u64(&m, 5, "index_size", &out->index_size);
	if (rc == 0)
		rc = get_u64(&m, 6, "seal_hlc", &out->seal_hlc);
	if (rc == 0)
		rc =
		    get_text(&m, 7, "origin", out->origin, sizeof(out->origin));
	if (rc == 0)
		rc = get_u64(&m, 8, "clock_runs", &out->clock_runs);
	if (rc == 0)
		rc = get_u64(&m, 9, "clocks_crc", &sum);
	out->clocks_crc = (uint32_t)sum;
	sub->p = m.r.p;
	return rc;
}

int es_client_segments(struct es_client *c, const char *name,
		       struct es_client_segment **out, size_t *n)
{
	static const char *const keys[] = {"ok", "error", "segments"};
	struct es_cbor_enc *e = begin(c, "segments", 1);
	struct reply rp;
	void *list = NULL;
	int rc;

	*out = NULL;
	*n = 0;
	es_cbor_enc_kv_text(e, "collection", name);
	rc = call(c, "segments", keys, 3, &rp);
	if (rc == 0)
		rc = read_list(c, "segments", &rp, keys[2], sizeof(**out),
			       read_segment, &list, n);
	*out = list;
	return rc;
}

int es_client_verify(struct es_client *c, const char *name, int64_t id,
		     struct es_client_verified *v)
{
	static const char *const keys[] = {"ok", "error", "bytes", "indexed",
					   "problem"};
	struct es_cbor_enc *e = begin(c, "verify", 2);
	struct es_cbor_reader sub;
	struct reply rp;
	int rc;

	memset(v, 0, sizeof(*v));
	es_cbor_enc_kv_text(e, "collection", name);
	es_cbor_enc_kv_uint(e, "id", (uint64_t)id);
	rc = call(c, "verify", keys, 5, &rp);
	if (rc)
		return rc;
	rc = get_u64(&rp, 2, "bytes", &v->bytes);
	if (rc == 0 && rp.f[3].p) {
		es_cbor_reader_span(&sub, &rp.r, &rp.f[3]);
		rc = es_cbor_get_bool(&sub, "indexed", &v->indexed);
	}
	if (rc == 0)
		rc =
		    get_text(&rp, 4, "problem", v->problem, sizeof(v->problem));
	reply_free(&rp);
	return rc ? proto(c, "verify") : 0;
}

int es_client_verify_manifest(struct es_client *c, char *problem, size_t size)
{
	static const char *const keys[] = {"ok", "error", "problem"};
	struct reply rp;
	int rc;

	problem[0] = '\0';
	begin(c, "manifest.verify", 0);
	rc = call(c, "manifest.verify", keys, 3, &rp);
	if (rc)
		return rc;
	rc = get_text(&rp, 2, "problem", problem, size);
	reply_free(&rp);
	return rc ? proto(c, "manifest.verify") : 0;
}

int es_client_stats(struct es_client *c, struct es_client_stats *out)
{
	static const char *const keys[] = {
	    "ok",	 "error",   "collections", "vectors",	    "segments",
	    "bytes",	 "inserts", "searches",	   "seals_pending", "uptime_s",
	    "device_id", "version",
	};
	uint64_t *const nums[] = {&out->collections,   &out->vectors,
				  &out->segments,      &out->bytes,
				  &out->inserts,       &out->searches,
				  &out->seals_pending, &out->uptime_s};
	struct reply rp;
	int rc;

	memset(out, 0, sizeof(*out));
	begin(c, "stats", 0);
	rc = call(c, "stats", keys, 12, &rp);
	if (rc)
		return rc;
	for (int i = 0; rc == 0 && i < 8; i++)
		rc = get_u64(&rp, 2 + i, keys[2 + i], nums[i]);
	if (rc == 0)
		rc = get_text(&rp, 10, "device_id", out->device_id,
			      sizeof(out->device_id));
	if (rc == 0)
		rc = get_text(&rp, 11, "version", out->version,
			      sizeof(out->version));
	reply_free(&rp);
	return rc ? proto(c, "stats") : 0;
}

/* ---- sync ------------------------------------------------------------- */

static const char *const peer_keys[] = {
    "peer",
    "device",
    "connected",
    "last_success_ms",
    "segments_pending",
    "bytes_pending",
    "lag_s",
    "bytes_sent",
    "bytes_received",
    "checksum_failures",
    "segments_sent",
    "segments_received",
    "last_error",
    "awaiting_approval",
};

static int read_peer(struct es_cbor_reader *sub, void *dst)
{
	struct es_client_peer *out = dst;
	struct reply m = {.r = *sub};
	uint64_t *const nums[] = {
	    &out->last_success_ms,   &out->segments_pending,
	    &out->bytes_pending,     &out->lag_s,
	    &out->bytes_sent,	     &out->bytes_received,
	    &out->checksum_failures, &out->segments_sent,
	    &out->segments_received,
	};
	struct es_cbor_reader v;
	int rc;

	memset(out, 0, sizeof(*out));
	rc = es_cbor_map_index(&m.r, peer_keys, 14, m.f, 1, "peer");
	if (rc == 0)
		rc = get_text(&m, 0, "peer", out->peer, sizeof(out->peer));
	if (rc == 0)
		rc =
		    get_text(&m, 1, "device", out->device, sizeof(out->device));
	if (rc == 0 && m.f[2].p) {
		es_cbor_reader_span(&v, &m.r, &m.f[2]);
		rc = es_cbor_get_bool(&v, "connected", &out->connected);
	}
	for (int i = 0; rc == 0 && i < 9; i++)
		rc = get_u64(&m, 3 + i, peer_keys[3 + i], nums[i]);
	if (rc == 0)
		rc = get_text(&m, 12, "last_error", out->last_error,
			      sizeof(out->last_error));
	if (rc == 0 && m.f[13].p) { /* absent from older agents */
		es_cbor_reader_span(&v, &m.r, &m.f[13]);
		rc = es_cbor_get_bool(&v, "awaiting_approval",
				      &out->awaiting_approval);
	}
	sub->p = m.r.p;
	return rc;
}

int es_client_peers(struct es_client *c, struct es_client_peer **out, size_t *n)
{
	static const char *const keys[] = {"ok", "error", "peers"};
	struct reply rp;
	void *list = NULL;
	int rc;

	*out = NULL;
	*n = 0;
	begin(c, "peers", 0);
	rc = call(c, "peers", keys, 3, &rp);
	if (rc == 0)
		rc = read_list(c, "peers", &rp, keys[2], sizeof(**out),
			       read_peer, &list, n);
	*out = list;
	return rc;
}

int es_client_sync_now(struct es_client *c)
{
	struct reply rp;
	int rc;

	begin(c, "sync-now", 0);
	rc = call(c, "sync-now", ok_keys, 2, &rp);
	if (rc == 0)
		reply_free(&rp);
	return rc;
}

int es_client_peer_approve(struct es_client *c, const char *device, int approve,
			   int *allow_listed)
{
	static const char *const keys[] = {"ok", "error", "allow_listed"};
	struct es_cbor_enc *e = begin(c, "peers.approve", 2);
	struct es_cbor_reader v;
	struct reply rp;
	int rc, listed = 0;

	if (allow_listed)
		*allow_listed = 0;
	es_cbor_enc_kv_text(e, "device", device ? device : "");
	es_cbor_enc_kv_bool(e, "approve", approve);
	rc = call(c, "peers.approve", keys, 3, &rp);
	if (rc)
		return rc;
	if (rp.f[2].p) {
		es_cbor_reader_span(&v, &rp.r, &rp.f[2]);
		rc = es_cbor_get_bool(&v, "allow_listed", &listed);
	}
	reply_free(&rp);
	if (rc)
		return proto(c, "peers.approve");
	if (allow_listed)
		*allow_listed = listed;
	return 0;
}
