/*
 * The edge: one thread per configured peer. Each dials its cloud with an
 * nng req0 socket (the dialer reconnects by itself), and runs a round
 * every interval_ms or when es_sync_now is called:
 *
 *   round:  connect -> hello (challenge first with TLS) -> upload every
 *           upload collection -> download every published collection
 *   ok:     wait interval_ms (or es_sync_now)
 *   failed: wait a random time in [b/2, b], b doubling from 1 s up to
 *           backoff_max_ms, reset by a good round (or es_sync_now)
 *
 * A connection is a session on the cloud: every new pipe is counted
 * (pipe_gen), and a request on a pipe that has not said hello says it
 * first. Transfers resume from what the receiver staged durably, so a
 * failed round costs at most the chunk in flight.
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>

#include "edge.h"
#include "ident.h"
#include "sync_test.h"

/* ---- requests --------------------------------------------------------- */

static int call(struct sync_peer *p, const struct es_cbor_enc *e,
		enum sync_type t, int timeout_ms)
{
	char err[ES_CBOR_ERR_MAX];
	nng_msg *m;
	int rv, rc;

	sync_reply_fini(&p->rp);
	if (p->reply_msg)
		nng_msg_free(p->reply_msg);
	p->reply_msg = NULL;
	if (sync_is_stopping(p->s))
		return SYNC_E_STOPPED; /* no new request (sync_edge_stop) */
	if (es_cbor_enc_error(e))
		return -ENOMEM;
	if (sync_msg_sealed(&m, e->buf, e->len))
		return -ENOMEM;
	nng_socket_set_ms(p->sock, NNG_OPT_RECVTIMEO,
			  peer_reply_ms(timeout_ms));
	rv = nng_sendmsg(p->sock, m, 0);
	if (rv) {
		nng_msg_free(m);
	} else {
		rv = nng_recvmsg(p->sock, &p->reply_msg, 0);
	}
	if (rv) {
		if (sync_is_stopping(p->s))
			return SYNC_E_STOPPED;
		return peer_errf(p, sync_nng_err(rv), "%s to %s: %s%s",
				 sync_type_name(t), p->url, nng_strerror(rv),
				 atomic_load(&p->pipes) ? ""
							: " (not connected)");
	}
	pthread_mutex_lock(&p->s->stat_lock);
	p->st.bytes_sent += e->len;
	p->st.bytes_received += nng_msg_len(p->reply_msg);
	pthread_mutex_unlock(&p->s->stat_lock);
	rc = sync_reply_parse(&p->rp, t, nng_msg_body(p->reply_msg),
			      nng_msg_len(p->reply_msg), err);
	if (rc == ES_E_SYNC_CHECKSUM)
		peer_count(p, 1, 0, 0);
	if (rc)
		return peer_errf(p, rc, "bad reply to %s from %s: %s",
				 sync_type_name(t), p->url, err);
	return p->rp.ok ? 0 : ES_E_SYNC_REFUSED;
}

int peer_refusal(struct sync_peer *p, const char *what)
{
	enum sync_code c = p->rp.code;

	if (c == SYNC_C_STATE || c == SYNC_C_SESSION) {
		if (c == SYNC_C_SESSION)
			p->hello_ok = 0;
		return SYNC_E_RESTART;
	}
	return peer_errf(p, sync_code_err(c), "%s refused by %s: %s: %s", what,
			 p->url, sync_code_name(c), p->rp.message);
}

/*
 * chunk, or less with a bandwidth limit: at most PEER_CHUNK_SECONDS of
 * it, in whole 4 KiB blocks, at least SYNC_CHUNK_MIN. A throttled
 * transfer then sends a request at least that often, so a cloud's
 * idle-timeout does not close it between two, and a cut on a slow link
 * costs less sent again.
 */
static uint32_t throttled_chunk(uint64_t bandwidth, uint32_t chunk)
{
	uint64_t cap = bandwidth * PEER_CHUNK_SECONDS;

	if (!bandwidth || cap >= chunk)
		return chunk;
	if (cap >= 4096)
		cap &= ~(uint64_t)4095;
	return cap < SYNC_CHUNK_MIN ? SYNC_CHUNK_MIN : (uint32_t)cap;
}

/* hello, after a challenge with TLS; its own encoder keeps p->enc. */
static int hello(struct sync_peer *p)
{
	const struct es_sync_config *cfg = &p->s->cfg;
	unsigned char sig[SYNC_SIG_MAX];
	const unsigned char *cert = NULL;
	size_t sig_len = 0, cert_len = 0;
	int tls = p->u.scheme == SYNC_URL_TLS,
	    token = cfg->token && *cfg->token;
	struct es_cbor_enc e;
	int rc;

	es_cbor_enc_init(&e);
	if (tls) {
		sync_enc_request(&e, SYNC_T_CHALLENGE, 0);
		rc = call(p, &e, SYNC_T_CHALLENGE, PEER_TIMEOUT_MS);
		if (rc == 0 &&
		    sync_signer_sign(p->s->signer, p->rp.nonce, cfg->device_id,
				     p->rp.device, sig, &sig_len))
			rc = peer_errf(p, ES_E_SYNC_AUTH,
				       "cannot sign the hello with %s",
				       cfg->tls_key);
		if (rc == ES_E_SYNC_REFUSED)
			rc = peer_refusal(p, "challenge");
		if (rc)
			goto out;
		cert = sync_signer_cert(p->s->signer, &cert_len);
		es_cbor_enc_reset(&e, 0);
	}
	sync_enc_request(&e, SYNC_T_HELLO, 3 + token + 2 * tls);
	es_cbor_enc_kv_text(&e, "device", cfg->device_id);
	es_cbor_enc_kv_text(&e, "role", "edge");
	es_cbor_enc_kv_uint(&e, "hlc", sync_wall_hlc());
	if (token)
		es_cbor_enc_kv_bytes(&e, "token", cfg->token,
				     strlen(cfg->token));
	if (tls) {
		es_cbor_enc_kv_bytes(&e, "cert", cert, cert_len);
		es_cbor_enc_kv_bytes(&e, "sig", sig, sig_len);
	}
	rc = call(p, &e, SYNC_T_HELLO, PEER_TIMEOUT_MS);
	if (rc == ES_E_SYNC_REFUSED)
		rc = peer_refusal(p, "hello");
	if (rc)
		goto out;
	snprintf(p->cloud, sizeof(p->cloud), "%s", p->rp.device);
	p->chunk =
	    throttled_chunk(cfg->bandwidth, cfg->chunk_size < p->rp.chunk_max
						? cfg->chunk_size
						: (uint32_t)p->rp.chunk_max);
	p->window = p->rp.window < SYNC_WINDOW_DEFAULT ? (uint32_t)p->rp.window
						       : SYNC_WINDOW_DEFAULT;
	sync_observe_hlc(p->s, p->rp.hlc, p->cloud);
	/* Read after the reply: the connection that carried it is counted
	 * by now. A newer one makes the next request say hello again (or
	 * the cloud refuses it with "session", which does the same). */
	p->hello_ok = 1;
	p->hello_gen = atomic_load(&p->pipe_gen);
	pthread_mutex_lock(&p->s->stat_lock);
	snprintf(p->st.device, sizeof(p->st.device), "%s", p->cloud);
	pthread_mutex_unlock(&p->s->stat_lock);
out:
	es_cbor_enc_fini(&e);
	return rc == SYNC_E_RESTART ? ES_E_SYNC_AUTH : rc;
}

int peer_session(struct sync_peer *p)
{
	if (p->hello_ok && p->hello_gen == atomic_load(&p->pipe_gen))
		return 0;
	p->hello_ok = 0;
	return hello(p);
}

int peer_reply_ms(int ms)
{
	return sync_test_hooks.reply_timeout_ms
		   ? (int)sync_test_hooks.reply_timeout_ms
		   : ms;
}

int peer_request(struct sync_peer *p, enum sync_type t, int timeout_ms)
{
	int rc = 0;

	for (int i = 0; i < 2; i++) {
		rc = peer_session(p);
		if (rc)
			return rc;
		rc = call(p, &p->enc, t, timeout_ms);
		if (rc != ES_E_SYNC_REFUSED || p->rp.code != SYNC_C_SESSION)
			return rc;
		p->hello_ok = 0; /* a new connection: hello, send again */
	}
	return rc;
}

int peer_errf(struct sync_peer *p, int rc, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(p->err, sizeof(p->err), fmt, ap);
	va_end(ap);
	return rc;
}

/* ---- bandwidth and status --------------------------------------------- */

int peer_throttle(struct sync_peer *p, size_t n)
{
	uint64_t bw = p->s->cfg.bandwidth, now = sync_mono_ms();
	int64_t cap = (int64_t)(bw > p->chunk ? bw : p->chunk);
	uint64_t idle;

	if (!bw)
		return 0;
	/* at most what fills the bucket, so the product cannot wrap */
	idle = now - p->tokens_ms;
	if (idle > (uint64_t)cap * 1000 / bw + 1)
		idle = (uint64_t)cap * 1000 / bw + 1;
	p->tokens += (int64_t)(idle * bw / 1000);
	p->tokens_ms = now;
	if (p->tokens > cap)
		p->tokens = cap;
	p->tokens -= (int64_t)n;
	if (p->tokens >= 0)
		return 0;
	return sync_sleep(p->s, (uint64_t)(-p->tokens) * 1000 / bw, NULL);
}

void peer_count(struct sync_peer *p, uint64_t checksum_failures,
		uint64_t segments_sent, uint64_t segments_received)
{
	pthread_mutex_lock(&p->s->stat_lock);
	p->st.checksum_failures += checksum_failures;
	p->st.segments_sent += segments_sent;
	p->st.segments_received += segments_received;
	pthread_mutex_unlock(&p->s->stat_lock);
}

void peer_pending(struct sync_peer *p, uint64_t segments, uint64_t bytes,
		  uint64_t oldest_seal_hlc)
{
	uint64_t now = sync_wall_ms(), seal = oldest_seal_hlc >> 16;

	pthread_mutex_lock(&p->s->stat_lock);
	p->st.segments_pending = segments;
	p->st.bytes_pending = bytes;
	p->st.lag_s = segments && now > seal ? (now - seal) / 1000 : 0;
	pthread_mutex_unlock(&p->s->stat_lock);
}

int sync_edge_status(struct es_sync *s, struct es_sync_peer_status **out,
		     size_t *n)
{
	*out = calloc(s->n_peers, sizeof(**out));
	if (!*out)
		return -ENOMEM;
	pthread_mutex_lock(&s->stat_lock);
	for (size_t i = 0; i < s->n_peers; i++) {
		(*out)[i] = s->peers[i].st;
		(*out)[i].connected = atomic_load(&s->peers[i].pipes) > 0;
	}
	pthread_mutex_unlock(&s->stat_lock);
	*n = s->n_peers;
	return 0;
}

/* ---- connection ------------------------------------------------------- */

/*
 * Counts the connections from NNG_PIPE_EV_ADD_PRE to REM_POST: nng calls
 * REM_POST for every pipe it called ADD_PRE for, including one it closes
 * before ADD_POST (a peer speaking another protocol), so counting from
 * ADD_POST would drop below zero there and show a connected peer as not
 * connected from then on.
 */
static void pipe_cb(nng_pipe pipe, nng_pipe_ev ev, void *arg)
{
	struct sync_peer *p = arg;

	if (ev == NNG_PIPE_EV_ADD_PRE) {
		atomic_fetch_add(&p->pipe_gen, 1);
		atomic_fetch_add(&p->pipes, 1);
		atomic_store(&p->pipe_id, nng_pipe_id(pipe));
	} else if (ev == NNG_PIPE_EV_REM_POST) {
		unsigned id = (unsigned)nng_pipe_id(pipe);

		atomic_fetch_sub(&p->pipes, 1);
		atomic_compare_exchange_strong(&p->pipe_id, &id, 0);
	}
}

static int dial(struct sync_peer *p)
{
	nng_dialer d;
	int rv;

	rv = nng_dialer_create(&d, p->sock, p->url);
	if (rv == 0 && p->tls)
		rv = nng_dialer_set_ptr(d, NNG_OPT_TLS_CONFIG, p->tls);
	if (rv == 0)
		rv = nng_dialer_set_size(d, NNG_OPT_RECVMAXSZ, p->recv_max);
	if (rv == 0)
		rv = nng_dialer_start(d, NNG_FLAG_NONBLOCK);
	if (rv == 0)
		p->dialer = d;
	return rv;
}

/* The connections nng counts on p's dialer, or -1 if it cannot say. */
static int dialer_pipes(struct sync_peer *p)
{
	if (sync_test_hooks.dialer_pipes)
		return sync_test_hooks.dialer_pipes(sync_test_hooks.arg,
						    p->url);
	return sync_nng_pipes("dialer", nng_dialer_id(p->dialer));
}

/*
 * Whether p's connection is wedged in nng 1.5.2 (README, "Known
 * limits"): a pipe whose close meets an arriving message never finishes
 * closing. nng has told us it went (NNG_PIPE_EV_REM_POST: p->pipes 0),
 * but the rest of its removal, which counts it off the dialer and starts
 * the redial, waits forever; so the dialer still counts it and never
 * dials again. A healthy close does that rest within milliseconds, so
 * the two counts disagreeing at PEER_WEDGE_SEEN failed rounds in a row
 * spread over PEER_WEDGE_MS or more means no connection will come in
 * this process. Called by the peer thread after each round; a good
 * round (rc 0) starts the count again.
 */
static int peer_wedged(struct sync_peer *p, int rc)
{
	uint64_t now = sync_mono_ms();
	uint64_t limit =
	    sync_test_hooks.wedge_ms ? sync_test_hooks.wedge_ms : PEER_WEDGE_MS;
	int sock_open, stuck = 0;

	pthread_mutex_lock(&p->sock_lock);
	sock_open = p->sock_open;
	pthread_mutex_unlock(&p->sock_lock);
	if (rc && sock_open && atomic_load(&p->pipes) == 0) {
		int n = dialer_pipes(p);

		stuck = n > 0;
		if (n < 0 && !p->no_stats) {
			p->no_stats = 1;
			sync_log(p->s, SYNC_LOG_WARN,
				 "sync: nng gives no statistics of the dialer "
				 "of %s: a connection wedged in nng would go "
				 "unnoticed",
				 p->url);
		}
	}
	if (!stuck) {
		p->wedged_since = 0;
		p->wedged_seen = 0;
		return 0;
	}
	if (p->wedged_seen++ == 0)
		p->wedged_since = now;
	return p->wedged_seen >= PEER_WEDGE_SEEN &&
	       now - p->wedged_since >= limit;
}

/* The end of p's thread when its connection is wedged: says so where an
 * operator looks, and asks the host for a restart. */
static void peer_give_up(struct sync_peer *p)
{
	const struct es_sync_host *h = &p->s->host;
	char why[sizeof(p->st.last_error)];

	snprintf(why, sizeof(why),
		 "the connection to %s is stuck closing inside nng (a known "
		 "nng 1.5.2 fault after a cut) and will not reconnect: "
		 "this process must restart",
		 p->url);
	pthread_mutex_lock(&p->s->stat_lock);
	snprintf(p->st.last_error, sizeof(p->st.last_error), "%s", why);
	pthread_mutex_unlock(&p->s->stat_lock);
	sync_log(p->s, SYNC_LOG_ERROR, "sync: %s", why);
	if (h->restart)
		h->restart(h->arg, why);
}

static int peer_connect(struct sync_peer *p)
{
	nng_duration backoff = (nng_duration)p->s->cfg.backoff_max_ms;
	int rv;

	pthread_mutex_lock(&p->sock_lock);
	if (p->sock_open || sync_is_stopping(p->s)) {
		pthread_mutex_unlock(&p->sock_lock);
		return sync_is_stopping(p->s) ? SYNC_E_STOPPED : 0;
	}
	rv = nng_req0_open(&p->sock);
	if (rv == 0) {
		p->sock_open = 1;
		nng_socket_set_size(p->sock, NNG_OPT_RECVMAXSZ, p->recv_max);
		nng_socket_set_ms(p->sock, NNG_OPT_REQ_RESENDTIME,
				  NNG_DURATION_INFINITE);
		nng_socket_set_ms(
		    p->sock, NNG_OPT_SENDTIMEO,
		    sync_test_hooks.send_timeout_ms
			? (nng_duration)sync_test_hooks.send_timeout_ms
			: PEER_SEND_MS);
		nng_socket_set_ms(p->sock, NNG_OPT_RECONNMINT, 200);
		nng_socket_set_ms(p->sock, NNG_OPT_RECONNMAXT,
				  backoff < 10000 ? backoff : 10000);
		nng_pipe_notify(p->sock, NNG_PIPE_EV_ADD_PRE, pipe_cb, p);
		nng_pipe_notify(p->sock, NNG_PIPE_EV_REM_POST, pipe_cb, p);
		rv = dial(p);
	}
	pthread_mutex_unlock(&p->sock_lock);
	if (rv)
		return peer_errf(p, sync_nng_err(rv), "cannot dial %s: %s",
				 p->url, nng_strerror(rv));
	return 0;
}

/* ---- rounds ----------------------------------------------------------- */

int peer_transport_err(int rc)
{
	return rc == SYNC_E_STOPPED || rc == -ETIMEDOUT || rc == -ECONNRESET ||
	       rc == -ESHUTDOWN || rc == -ECONNREFUSED || rc == -EIO ||
	       rc == ES_E_SYNC_AUTH || rc == ES_E_SYNC_VERSION;
}

static int round_run(struct sync_peer *p)
{
	int rc, rc2;

	p->err[0] = '\0';
	rc = peer_connect(p);
	if (rc == 0)
		rc = peer_session(p);
	if (rc)
		return rc;
	rc = sync_upload_all(p);
	if (peer_transport_err(rc))
		return rc;
	rc2 = sync_download_all(p);
	return rc ? rc : rc2;
}

static void round_done(struct sync_peer *p, int rc)
{
	struct es_sync_peer_status *st = &p->st;
	int changed;

	pthread_mutex_lock(&p->s->stat_lock);
	if (rc == 0) {
		st->last_success_ms = sync_wall_ms();
		st->last_error[0] = '\0';
	} else {
		snprintf(st->last_error, sizeof(st->last_error), "%.*s",
			 (int)sizeof(st->last_error) - 1,
			 p->err[0] ? p->err : es_sync_strerror(rc));
	}
	changed = strcmp(p->logged, st->last_error) != 0;
	if (changed)
		snprintf(p->logged, sizeof(p->logged), "%s", st->last_error);
	pthread_mutex_unlock(&p->s->stat_lock);
	if (rc && changed)
		sync_log(p->s, SYNC_LOG_WARN, "sync: round with %s failed: %s",
			 p->url, p->logged);
	else if (rc == 0 && changed)
		sync_log(p->s, SYNC_LOG_INFO, "sync: %s is in sync again",
			 p->url);
}

/*
 * After a round that timed out on a connection: the cloud may have gone
 * without a word (a power cut, a dropped route or NAT entry: nothing
 * closes the socket, and the kernel can keep it for a quarter of an hour
 * or, against a peer that stopped reading, for good), or it is too slow.
 * Either way the connection is closed, so that the dialer dials again
 * and the next round starts on a fresh one instead of waiting on this
 * one again; an upload in progress resumes from what the cloud staged.
 * 1 if a connection was closed.
 */
static int peer_hang_up(struct sync_peer *p)
{
	nng_pipe pipe = NNG_PIPE_INITIALIZER;

	pipe.id = atomic_exchange(&p->pipe_id, 0);
	if (!pipe.id)
		return 0;
	sync_log(p->s, SYNC_LOG_WARN,
		 "sync: no reply from %s in time: closing the connection, "
		 "to dial again",
		 p->url);
	nng_pipe_close(pipe);
	return 1;
}

static uint64_t next_rand(struct sync_peer *p)
{
	p->rng ^= p->rng << 13;
	p->rng ^= p->rng >> 7;
	p->rng ^= p->rng << 17;
	return p->rng;
}

static void *peer_main(void *arg)
{
	struct sync_peer *p = arg;
	struct es_sync *s = p->s;
	uint64_t backoff = 0, wait;
	int rc, hung_up;

	while (!sync_is_stopping(s)) {
		if (p->index == 0)
			sync_sweep_maybe(s, 0);
		rc = round_run(p);
		if (rc == SYNC_E_STOPPED || sync_is_stopping(s))
			break;
		round_done(p, rc);
		/* A connection we just closed looks wedged for a moment
		 * (nng says it closed before it stops counting it): no
		 * sample of such a round. */
		hung_up = rc == -ETIMEDOUT && peer_hang_up(p);
		if (!hung_up && peer_wedged(p, rc)) {
			peer_give_up(p);
			break;
		}
		if (rc == 0) {
			backoff = 0;
			wait = s->cfg.interval_ms;
		} else {
			backoff = backoff ? backoff * 2 : 1000;
			if (backoff > s->cfg.backoff_max_ms)
				backoff = s->cfg.backoff_max_ms;
			wait = backoff / 2 + next_rand(p) % (backoff / 2 + 1);
		}
		if (sync_sleep(s, wait, &p->wake_seen))
			break;
	}
	return NULL;
}

/* ---- start and stop --------------------------------------------------- */

static int peer_init(struct es_sync *s, struct sync_peer *p, size_t i)
{
	const struct es_sync_config *cfg = &s->cfg;
	char why[320];
	int rc;

	p->s = s;
	p->index = i;
	p->url = cfg->peers[i];
	pthread_mutex_init(&p->sock_lock, NULL);
	es_cbor_enc_init(&p->enc);
	snprintf(p->st.peer, sizeof(p->st.peer), "%s", p->url);
	p->recv_max = (size_t)cfg->chunk_size + SYNC_HEADER_ALLOWANCE;
	p->chunk = cfg->chunk_size;
	p->tokens = (int64_t)cfg->bandwidth;
	p->tokens_ms = sync_mono_ms();
	if (sync_random(&p->rng, sizeof(p->rng)) || p->rng == 0)
		p->rng = 0x9e3779b97f4a7c15ull ^ i;
	rc = sync_url_parse(p->url, &p->u);
	if (rc == 0 && p->u.scheme == SYNC_URL_TLS) {
		rc = sync_tls_config(&p->tls, 0, cfg->tls_cert, cfg->tls_key,
				     cfg->tls_ca, p->u.host, 1, why,
				     sizeof(why));
		if (rc)
			sync_log(s, SYNC_LOG_ERROR, "sync: %s", why);
	}
	return rc;
}

static void peer_fini(struct sync_peer *p)
{
	if (p->started)
		pthread_join(p->thread, NULL);
	if (p->sock_open)
		nng_close(p->sock);
	sync_reply_fini(&p->rp);
	if (p->reply_msg)
		nng_msg_free(p->reply_msg);
	es_cbor_enc_fini(&p->enc);
	if (p->tls)
		nng_tls_config_free(p->tls);
	pthread_mutex_destroy(&p->sock_lock);
}

/*
 * Stop lets each peer's thread finish the request it has in flight (it
 * sends no new one once stopping is set) before its socket is closed:
 * closing an nng 1.5.2 socket while a reply arrives can wedge nng's
 * reaper for good. The tcp transport then re-arms its read on an aio the
 * close has already stopped, that read never completes, and the reaper
 * waits for it, so the close hangs and so does every later one in the
 * process. A thread still busy after PEER_STOP_GRACE_MS (a peer that
 * does not answer, a long commit) has its request ended by the close
 * (ECLOSED). With a window above one, the requests after the one that
 * stopped are cancelled (drop_all), not waited for.
 */
void sync_edge_stop(struct es_sync *s)
{
	unsigned grace = sync_test_hooks.stop_grace_ms
			     ? sync_test_hooks.stop_grace_ms
			     : PEER_STOP_GRACE_MS;
	struct timespec until = sync_mono_ts(sync_mono_ms() + grace);

	for (size_t i = 0; i < s->n_peers; i++) {
		struct sync_peer *p = &s->peers[i];

		if (p->started &&
		    pthread_clockjoin_np(p->thread, NULL, CLOCK_MONOTONIC,
					 &until) == 0)
			p->started = 0;
	}
	for (size_t i = 0; i < s->n_peers; i++) {
		struct sync_peer *p = &s->peers[i];

		pthread_mutex_lock(&p->sock_lock);
		if (p->sock_open)
			nng_close(p->sock);
		p->sock_open = 0;
		pthread_mutex_unlock(&p->sock_lock);
	}
	for (size_t i = 0; i < s->n_peers; i++)
		peer_fini(&s->peers[i]);
	free(s->peers);
	s->peers = NULL;
	s->n_peers = 0;
}

int sync_edge_start(struct es_sync *s)
{
	size_t n = s->cfg.n_peers;
	int rc = 0;

	s->peers = calloc(n, sizeof(*s->peers));
	if (!s->peers)
		return -ENOMEM;
	s->n_peers = n;
	for (size_t i = 0; i < n && rc == 0; i++)
		rc = peer_init(s, &s->peers[i], i);
	for (size_t i = 0; i < n && rc == 0; i++) {
		if (pthread_create(&s->peers[i].thread, NULL, peer_main,
				   &s->peers[i]))
			rc = -EAGAIN;
		else
			s->peers[i].started = 1;
	}
	if (rc) {
		atomic_store(&s->stopping, 1);
		sync_edge_stop(s);
		return rc;
	}
	sync_log(s, SYNC_LOG_INFO, "sync: edge %s syncing with %zu peer%s",
		 s->cfg.device_id, n, n == 1 ? "" : "s");
	return 0;
}
