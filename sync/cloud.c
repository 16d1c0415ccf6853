/*
 * The cloud: an nng rep0 socket listening on listen_url, CLOUD_CTXS
 * contexts each driven by an aio state machine, CLOUD_WORKERS threads of
 * our own that run the handlers (they block on fsync and the host's
 * database, which nng's callback threads must not), and a watchdog.
 *
 * A context's states (ctx_cb and worker_main make each transition):
 *
 *   RECV --request--> WORK (queued for a worker) --handled--> SEND
 *     ^                                                        |
 *     +-------------------- reply sent (or failed) ------------+
 *   any --socket closed--> IDLE
 *
 * Invariants:
 *   1. nng callbacks never block: they move a context to the queue or
 *      post its next receive, nothing else.
 *   2. A context is in at most one place: an nng operation, the queue,
 *      or a worker's hands.
 *   3. Every request gets a reply, ok or refusal, unless the socket is
 *      closing or memory runs out (the sender then times out).
 *
 * The watchdog thread sweeps stale staging, closes connections idle for
 * longer than idle_timeout_ms (cloud_session.c), asks the host for a
 * restart when nng holds a connection that will never finish closing
 * (wedge_check), and on ipc:// works around
 * nng 1.5.2 bug #1518 (fixed upstream after 1.5.2; Debian 12 ships
 * 1.5.2): a peer that connects and hangs up before the SP handshake
 * completes can leave an ipc listener unable to accept ever again. Every
 * few seconds it dials listen_url itself and sends a ping; if no
 * connection is established, it closes the listener and listens again
 * with a fresh one, same options, and logs a warning. Over tcp:// and
 * tls+tcp:// the bug does not reproduce (bare connects and half TLS
 * hellos, then a request: answered), and there the probe is not run: one
 * timing out on a loaded machine would close a healthy listener, and
 * closing a listener with handshakes in flight can wedge nng 1.5.2's
 * reaper thread (every later nng_close in the process hangs).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/protocol/reqrep0/req.h>

#include "cloud.h"
#include "ident.h"
#include "sync_test.h"

#define WATCHDOG_MS  3000
#define WATCHDOG_MAX (300 * 1000)
#define PROBE_MS     3000

/* ---- contexts and workers --------------------------------------------- */

static void enqueue(struct sync_cloud *c, struct cloud_ctx *x)
{
	pthread_mutex_lock(&c->qlock);
	x->next = NULL;
	if (c->qtail)
		c->qtail->next = x;
	else
		c->qhead = x;
	c->qtail = x;
	pthread_cond_signal(&c->qcond);
	pthread_mutex_unlock(&c->qlock);
}

static void post_recv(struct cloud_ctx *x)
{
	x->state = CTX_RECV;
	nng_ctx_recv(x->ctx, x->aio);
}

static void ctx_cb(void *arg)
{
	struct cloud_ctx *x = arg;
	struct sync_cloud *c = x->c;
	int rv = nng_aio_result(x->aio);

	if (x->state == CTX_SEND && rv != 0)
		nng_msg_free(nng_aio_get_msg(x->aio));
	if (sync_is_stopping(c->s) || rv == NNG_ECLOSED) {
		if (x->state == CTX_RECV && rv == 0) /* arrived as we stop */
			nng_msg_free(nng_aio_get_msg(x->aio));
		x->state = CTX_IDLE;
		return;
	}
	if (x->state == CTX_RECV && rv == 0) {
		x->msg = nng_aio_get_msg(x->aio);
		x->t_recv = sync_mono_us();
		x->state = CTX_WORK;
		enqueue(c, x);
		return;
	}
	post_recv(x);
}

static void reply(struct cloud_ctx *x, const struct es_cbor_enc *out)
{
	nng_msg *rep;

	if (sync_msg_sealed(&rep, out->buf, out->len) != 0) {
		post_recv(x);
		return;
	}
	pthread_mutex_lock(&x->c->send_lock);
	if (x->c->closing) {
		pthread_mutex_unlock(&x->c->send_lock);
		nng_msg_free(rep);
		x->state = CTX_IDLE;
		return;
	}
	x->state = CTX_SEND;
	nng_aio_set_msg(x->aio, rep);
	nng_ctx_send(x->ctx, x->aio);
	pthread_mutex_unlock(&x->c->send_lock);
}

static void *worker_main(void *arg)
{
	struct sync_cloud *c = arg;
	struct cloud_worker w;
	struct es_cbor_enc out;
	uint32_t pipe;
	struct cloud_ctx *x;
	nng_msg *msg;

	es_cbor_enc_init(&out);
	for (;;) {
		pthread_mutex_lock(&c->qlock);
		while (!c->qstop && !c->qhead)
			pthread_cond_wait(&c->qcond, &c->qlock);
		if (c->qstop) {
			pthread_mutex_unlock(&c->qlock);
			break;
		}
		x = c->qhead;
		c->qhead = x->next;
		if (!c->qhead)
			c->qtail = NULL;
		pthread_mutex_unlock(&c->qlock);

		msg = x->msg;
		x->msg = NULL;
		w.t_recv = x->t_recv;
		w.t_taken = sync_mono_us();
		w.stream = 0;
		pipe = nng_pipe_id(nng_msg_get_pipe(msg));
		cloud_handle(c, pipe, nng_msg_body(msg), nng_msg_len(msg), &out,
			     &w);
		nng_msg_free(msg);
		reply(x, &out);
		if (w.stream)
			cloud_stream(c, pipe);
	}
	es_cbor_enc_fini(&out);
	return NULL;
}

/* ---- listener --------------------------------------------------------- */

static int listener_start(struct sync_cloud *c)
{
	nng_listener l;
	int rv;

	rv = nng_listener_create(&l, c->sock, c->listen_url);
	if (rv)
		return rv;
	if (c->tls)
		rv = nng_listener_set_ptr(l, NNG_OPT_TLS_CONFIG, c->tls);
	if (rv == 0)
		rv = nng_listener_set_size(l, NNG_OPT_RECVMAXSZ, c->recv_max);
	if (rv == 0)
		rv = nng_listener_start(l, 0);
	if (rv) {
		nng_listener_close(l);
		return rv;
	}
	c->listener = l;
	return 0;
}

/* Fixes the port (if 0 was asked) and the URL the watchdog dials. */
static int urls_after_listen(struct sync_cloud *c)
{
	const char *host = c->url.host;
	int port;

	if (c->url.scheme != SYNC_URL_IPC && c->url.port == 0) {
		if (nng_listener_get_int(c->listener, NNG_OPT_TCP_BOUND_PORT,
					 &port) != 0)
			return -EIO;
		c->url.port = (unsigned)port;
		if (sync_url_format(&c->url, NULL, c->listen_url,
				    sizeof(c->listen_url)))
			return -ENAMETOOLONG;
	}
	if (!*host || !strcmp(host, "0.0.0.0"))
		host = "127.0.0.1";
	else if (!strcmp(host, "::"))
		host = "::1";
	return sync_url_format(&c->url, host, c->probe_url,
			       sizeof(c->probe_url));
}

/* ---- watchdog --------------------------------------------------------- */

/*
 * 0 if the listener accepts connections, -1 if it does not. A frozen
 * listener still lets the client's side of a connection complete (the
 * peer sees a pipe), so that proves nothing; what counts is a reply to
 * the ping, or any connection our socket accepted meanwhile (a busy
 * cloud may answer late, but it still accepts).
 */
static int probe(struct sync_cloud *c)
{
	static const unsigned char ping[] = {0xa2, 0x61, 'v', 0x01, 0x64,
					     't',  'y',	 'p', 'e',  0x64,
					     'p',  'i',	 'n', 'g'};
	unsigned accepted = atomic_load(&c->accepted);
	nng_socket ps;
	nng_dialer d;
	nng_msg *m;
	int rv;

	if (sync_test_hooks.probe_fail &&
	    sync_test_hooks.probe_fail(sync_test_hooks.arg))
		return -1;
	if (nng_req0_open(&ps) != 0)
		return 0; /* cannot probe; do not recycle for it */
	nng_socket_set_ms(ps, NNG_OPT_SENDTIMEO, PROBE_MS);
	nng_socket_set_ms(ps, NNG_OPT_RECVTIMEO, PROBE_MS);
	nng_socket_set_ms(ps, NNG_OPT_RECONNMINT, 100);
	rv = nng_dialer_create(&d, ps, c->probe_url);
	if (rv == 0)
		rv = nng_dialer_start(d, NNG_FLAG_NONBLOCK);
	if (rv == 0)
		rv = sync_msg_sealed(&m, ping, sizeof(ping)) ? NNG_ENOMEM : 0;
	if (rv == 0 && (rv = nng_sendmsg(ps, m, 0)) != 0)
		nng_msg_free(m);
	if (rv == 0 && (rv = nng_recvmsg(ps, &m, 0)) == 0)
		nng_msg_free(m);
	nng_close(ps);
	return rv == 0 || atomic_load(&c->accepted) != accepted ? 0 : -1;
}

static void recover(struct sync_cloud *c)
{
	int rv = NNG_EADDRINUSE;

	nng_listener_close(c->listener);
	for (int i = 0; i < 50 && rv == NNG_EADDRINUSE; i++) {
		rv = listener_start(c);
		if (rv == NNG_EADDRINUSE && sync_sleep(c->s, 100, NULL))
			return;
	}
	c->recoveries++;
	if (rv == 0)
		sync_log(c->s, SYNC_LOG_WARN,
			 "sync: the listener on %s stopped accepting "
			 "connections (nng 1.5.2 bug #1518: a peer hung up "
			 "during the handshake); restarted it",
			 c->listen_url);
	else
		sync_log(c->s, SYNC_LOG_ERROR,
			 "sync: the listener on %s stopped accepting "
			 "connections and cannot listen again: %s; retrying",
			 c->listen_url, nng_strerror(rv));
}

/*
 * Whether a connection of the cloud is wedged in nng 1.5.2 (README,
 * "Known limits"). nng holds a connection's statistics from just after
 * we hear of it (NNG_PIPE_EV_ADD_PRE: a session) until its close has
 * finished, just after we hear that it closed (REM_POST: no session):
 * one it holds without a session is closing, for milliseconds. The same
 * one seen so at every look for CLOUD_WEDGE_MS, and at least
 * CLOUD_WEDGE_SEEN looks, is a close that will never finish: nng's one
 * reaper thread is stuck, so no closed connection is freed again (each
 * keeps its descriptor) and closing the socket hangs. The host is then
 * asked for a restart, once. Connections are followed by id, so any
 * number of them coming and going never adds up to one stuck.
 * Returns whether a connection is closing now (a probe would wait for
 * it: see watchdog_main).
 */
static int wedge_check(struct sync_cloud *c)
{
	const struct es_sync_host *h = &c->s->host;
	uint64_t limit = sync_test_hooks.wedge_ms ? sync_test_hooks.wedge_ms
						  : CLOUD_WEDGE_MS;
	struct cloud_closing now_closing[CLOUD_CLOSING];
	uint32_t *ids = NULL;
	size_t k = 0;
	uint64_t now;
	int n, stuck = 0;
	char why[512];

	n = sync_nng_socket_pipes(nng_socket_id(c->sock), &ids);
	if (n == -ENOENT && !c->no_stats) {
		c->no_stats = 1;
		sync_log(c->s, SYNC_LOG_WARN,
			 "sync: nng gives no statistics of the cloud's "
			 "connections: one wedged in nng would go unnoticed");
	}
	now = sync_mono_ms();
	pthread_mutex_lock(&c->sess_lock);
	for (int i = 0; i < n && k < CLOUD_CLOSING; i++) {
		if (cloud_session_find(c, ids[i]))
			continue;
		now_closing[k] = (struct cloud_closing){ids[i], now, 1};
		for (size_t j = 0; j < c->n_closing_seen; j++) {
			if (c->closing_seen[j].pipe != ids[i])
				continue;
			now_closing[k].since = c->closing_seen[j].since;
			now_closing[k].looks = c->closing_seen[j].looks + 1;
		}
		if (now_closing[k].looks >= CLOUD_WEDGE_SEEN &&
		    now - now_closing[k].since >= limit)
			stuck = 1;
		k++;
	}
	pthread_mutex_unlock(&c->sess_lock);
	free(ids);
	memcpy(c->closing_seen, now_closing, k * sizeof(now_closing[0]));
	c->n_closing_seen = k;
	if (stuck && !c->wedge_told) {
		c->wedge_told = 1;
		snprintf(why, sizeof(why),
			 "a connection of the cloud on %s is stuck closing "
			 "inside nng (a known nng 1.5.2 fault): closed "
			 "connections are no longer freed; this process must "
			 "restart",
			 c->listen_url);
		sync_log(c->s, SYNC_LOG_ERROR, "sync: %s", why);
		if (h->restart)
			h->restart(h->arg, why);
	}
	return k > 0;
}

static void *watchdog_main(void *arg)
{
	struct sync_cloud *c = arg;
	uint64_t period = sync_test_hooks.watchdog_ms
			      ? sync_test_hooks.watchdog_ms
			      : WATCHDOG_MS;
	uint64_t wait = period;
	int failed_after_recovery = 0;

	while (sync_sleep(c->s, wait, NULL) == 0) {
		sync_sweep_maybe(c->s, 0);
		if (c->s->cfg.idle_timeout_ms)
			cloud_sessions_close_idle(c, c->s->cfg.idle_timeout_ms);
		/* The probe's own close waits for nng's reaper: not while a
		 * connection is closing, which may be one that never will. */
		if (wedge_check(c) || !c->probing || probe(c) == 0) {
			failed_after_recovery = 0;
			wait = period;
			continue;
		}
		if (sync_is_stopping(c->s))
			break;
		recover(c);
		/* Still failing after restarts: back off, do not churn. */
		if (failed_after_recovery++)
			wait =
			    wait * 2 < WATCHDOG_MAX ? wait * 2 : WATCHDOG_MAX;
	}
	return NULL;
}

/* On ipc://, the probes run only if they reach the fresh listener. */
static int start_watchdog(struct sync_cloud *c)
{
	c->probing = c->url.scheme == SYNC_URL_IPC;
	if (c->probing && probe(c) != 0) {
		sync_log(c->s, SYNC_LOG_WARN,
			 "sync: the listener watchdog cannot reach %s; a "
			 "listener that stops accepting (nng bug #1518) will "
			 "not be restarted",
			 c->probe_url);
		c->probing = 0;
	}
	if (pthread_create(&c->watchdog, NULL, watchdog_main, c))
		return -EAGAIN;
	c->watchdog_on = 1;
	return 0;
}

/* ---- start and stop --------------------------------------------------- */

static void cloud_free(struct sync_cloud *c)
{
	struct cloud_ctx *x;

	if (c->watchdog_on)
		pthread_join(c->watchdog, NULL);
	/* No reply starts once the socket is closing: nng 1.5.2 can panic
	 * on a context's send racing the socket's close (likelier with
	 * several requests of an edge in flight, the window). */
	pthread_mutex_lock(&c->send_lock);
	c->closing = 1;
	pthread_mutex_unlock(&c->send_lock);
	if (c->sock_open)
		nng_close(c->sock);
	pthread_mutex_lock(&c->qlock);
	c->qstop = 1;
	pthread_cond_broadcast(&c->qcond);
	pthread_mutex_unlock(&c->qlock);
	for (size_t i = 0; i < c->n_workers; i++)
		pthread_join(c->workers[i], NULL);
	for (x = c->qhead; x; x = x->next) {
		nng_msg_free(x->msg);
		x->msg = NULL;
	}
	for (int i = 0; i < CLOUD_CTXS; i++) {
		x = &c->ctxs[i];
		if (!x->aio)
			continue;
		nng_aio_stop(x->aio);
		nng_aio_free(x->aio);
	}
	if (c->tls)
		nng_tls_config_free(c->tls);
	cloud_sessions_fini(c);
	pthread_mutex_destroy(&c->qlock);
	pthread_mutex_destroy(&c->send_lock);
	pthread_cond_destroy(&c->qcond);
	free(c);
}

static int open_socket(struct sync_cloud *c)
{
	const struct es_sync_config *cfg = &c->s->cfg;
	char why[320];
	int rv;

	if (c->url.scheme == SYNC_URL_TLS) {
		rv = sync_tls_config(&c->tls, 1, cfg->tls_cert, cfg->tls_key,
				     cfg->tls_ca, NULL, 1, why, sizeof(why));
		if (rv) {
			sync_log(c->s, SYNC_LOG_ERROR, "sync: %s", why);
			return rv;
		}
	}
	rv = nng_rep0_open(&c->sock);
	if (rv)
		return sync_nng_err(rv);
	c->sock_open = 1;
	nng_socket_set_size(c->sock, NNG_OPT_RECVMAXSZ, c->recv_max);
	nng_pipe_notify(c->sock, NNG_PIPE_EV_ADD_PRE, cloud_pipe_event, c);
	nng_pipe_notify(c->sock, NNG_PIPE_EV_REM_POST, cloud_pipe_event, c);
	rv = listener_start(c);
	if (rv) {
		sync_log(c->s, SYNC_LOG_ERROR, "sync: cannot listen on %s: %s",
			 c->listen_url, nng_strerror(rv));
		return sync_nng_err(rv);
	}
	return urls_after_listen(c);
}

static int start_contexts(struct sync_cloud *c)
{
	int rv;

	for (int i = 0; i < CLOUD_CTXS; i++) {
		struct cloud_ctx *x = &c->ctxs[i];

		x->c = c;
		rv = nng_aio_alloc(&x->aio, ctx_cb, x);
		if (rv == 0)
			rv = nng_ctx_open(&x->ctx, c->sock);
		if (rv)
			return sync_nng_err(rv);
	}
	for (int i = 0; i < CLOUD_WORKERS; i++) {
		if (pthread_create(&c->workers[i], NULL, worker_main, c))
			return -EAGAIN;
		c->n_workers++;
	}
	for (int i = 0; i < CLOUD_CTXS; i++)
		post_recv(&c->ctxs[i]);
	return start_watchdog(c);
}

int sync_cloud_start(struct es_sync *s)
{
	struct sync_cloud *c = calloc(1, sizeof(*c));
	int rc;

	if (!c)
		return -ENOMEM;
	c->s = s;
	pthread_mutex_init(&c->qlock, NULL);
	pthread_mutex_init(&c->send_lock, NULL);
	pthread_cond_init(&c->qcond, NULL);
	cloud_sessions_init(c);
	c->recv_max = (size_t)s->cfg.chunk_size + SYNC_HEADER_ALLOWANCE;
	snprintf(c->listen_url, sizeof(c->listen_url), "%s", s->cfg.listen_url);
	rc = sync_url_parse(s->cfg.listen_url, &c->url);
	if (rc == 0)
		rc = open_socket(c);
	if (rc == 0)
		rc = start_contexts(c);
	if (rc) {
		atomic_store(&s->stopping, 1);
		cloud_free(c);
		return rc;
	}
	s->cloud = c;
	sync_log(s, SYNC_LOG_INFO, "sync: cloud %s listening on %s",
		 s->cfg.device_id, c->listen_url);
	return 0;
}

void sync_cloud_stop(struct es_sync *s)
{
	if (s->cloud)
		cloud_free(s->cloud);
	s->cloud = NULL;
}
