#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>

#include "test_raw.h"

struct es_cbor_enc E;
nng_msg *raw_last;
struct sync_reply rp;

nng_socket raw_open(const char *url, int timeout_ms)
{
	nng_socket s;

	assert_int_equal(nng_req0_open(&s), 0);
	nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, timeout_ms);
	nng_socket_set_ms(s, NNG_OPT_SENDTIMEO, timeout_ms);
	nng_socket_set_ms(s, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE);
	assert_int_equal(nng_dial(s, url, NULL, 0), 0);
	return s;
}

void raw_req(enum sync_type t, size_t n)
{
	es_cbor_enc_reset(&E, 0);
	sync_enc_request(&E, t, n);
}

static void drop_reply(void)
{
	sync_reply_fini(&rp);
	if (raw_last)
		nng_msg_free(raw_last);
	raw_last = NULL;
}

int raw_ask_bytes(nng_socket s, const void *buf, size_t len, int sealed,
		  enum sync_type t)
{
	char err[ES_CBOR_ERR_MAX];
	nng_msg *m;

	drop_reply();
	if (sealed) {
		assert_int_equal(sync_msg_sealed(&m, buf, len), 0);
	} else {
		assert_int_equal(nng_msg_alloc(&m, 0), 0);
		assert_int_equal(nng_msg_append(m, buf, len), 0);
	}
	if (nng_sendmsg(s, m, 0) != 0) {
		nng_msg_free(m);
		return -1;
	}
	if (nng_recvmsg(s, &raw_last, 0) != 0)
		return -1;
	if (sync_reply_parse(&rp, t, nng_msg_body(raw_last),
			     nng_msg_len(raw_last), err) != 0)
		fail_msg("the cloud's reply does not parse: %s", err);
	return rp.ok ? SYNC_C_NONE : (int)rp.code;
}

int raw_ask(nng_socket s, enum sync_type t)
{
	assert_int_equal(es_cbor_enc_error(&E), 0);
	return raw_ask_bytes(s, E.buf, E.len, 1, t);
}

void raw_fini(void)
{
	drop_reply();
	es_cbor_enc_fini(&E);
}
