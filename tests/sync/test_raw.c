/* A raw client of a cloud agent for the sync tests (test_raw.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

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

void raw_enc_clocks(const struct es_sync_segment *seg)
{
	const struct es_clock_run one = {.row = 0, .hlc = seg->seal_hlc};

	es_cbor_enc_text(&E, "clocks");
	sync_enc_clocks(&E, &one, seg->count ? 1 : 0);
}

unsigned char *raw_read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	unsigned char *b;

	assert_non_null(f);
	fseek(f, 0, SEEK_END);
	*len = (size_t)ftell(f);
	fseek(f, 0, SEEK_SET);
	b = malloc(*len + 1);
	assert_non_null(b);
	assert_int_equal(fread(b, 1, *len, f), *len);
	fclose(f);
	return b;
}

void raw_scratch_init(struct th_node *h, const char *root, const char *name)
{
	th_node_init(h, root, name, "edge-w", ES_SYNC_EDGE);
	th_add_collection(&h->h, "w", 8, 0);
}

void raw_done(struct th_node *cloud, struct th_node *scratch)
{
	th_node_stop(cloud);
	raw_fini();
	th_fini(&scratch->h);
	th_fini(&cloud->h);
}

void raw_fini(void)
{
	drop_reply();
	es_cbor_enc_fini(&E);
}
