/*
 * Sync against peers that lie: a raw nng req socket sends the cloud
 * garbage, wrong versions, unknown types, wrong tokens, out-of-range
 * names, dims, sizes and offsets, damaged chunks, a forged upload and an
 * oversized message; each is refused with the right error code and the
 * cloud goes on serving a good edge. A fake cloud answers an edge with
 * garbage and with lies (clock runs that break the rules among them);
 * the edge refuses them and installs nothing, and one that refuses
 * clock runs: the edge neither uploads nor installs without them.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/protocol/reqrep0/req.h>

#include "edgesync/cbor.h"
#include "edgesync/crc32c.h"
#include "edgesync/ndvs.h"
#include "edgesync/sync.h"
#include "sync_test.h"
#include "test_host.h"
#include "test_raw.h"
#include "wire.h"

#define TOKEN "lab-token-0123456789"

static char root[400];

/* ---- a raw client ----------------------------------------------------- */

static void expect(nng_socket s, enum sync_type t, int code, const char *want)
{
	int got = raw_ask(s, t);

	if (got != code || (want && !strstr(rp.message, want)))
		fail_msg("%s: got %s '%s', wanted %s '%s'", sync_type_name(t),
			 got < 0 ? "no reply" : sync_code_name(got), rp.message,
			 sync_code_name(code), want ? want : "");
}

static void hello(const char *device, const char *role, const char *token,
		  int extra)
{
	raw_req(SYNC_T_HELLO, 3 + (token != NULL) + (extra != 0));
	es_cbor_enc_kv_text(&E, "device", device);
	es_cbor_enc_kv_text(&E, "role", role);
	es_cbor_enc_kv_uint(&E, "hlc", 1);
	if (token)
		es_cbor_enc_kv_bytes(&E, "token", token, strlen(token));
	if (extra) { /* an unknown field, to be ignored */
		es_cbor_enc_text(&E, "zzz-future");
		es_cbor_enc_array(&E, 2);
		es_cbor_enc_map(&E, 0);
		es_cbor_enc_null(&E);
	}
}

static void begin(const char *name, uint32_t dim,
		  const struct es_sync_segment *seg, uint64_t tombs_total)
{
	struct es_sync_collection c = {.dim = dim, .metric = 0};

	snprintf(c.name, sizeof(c.name), "%s", name);
	raw_req(SYNC_T_BEGIN, 4);
	es_cbor_enc_text(&E, "collection");
	sync_enc_collection(&E, &c, 0);
	es_cbor_enc_text(&E, "segment");
	sync_enc_segment(&E, seg, 0);
	es_cbor_enc_kv_uint(&E, "tombstones_total", tombs_total);
	raw_enc_clocks(seg);
}

static void chunk(const char *coll, const struct es_sync_segment *seg,
		  uint64_t off, const void *data, size_t n, uint32_t crc)
{
	raw_req(SYNC_T_CHUNK, 6);
	es_cbor_enc_kv_text(&E, "collection", coll);
	es_cbor_enc_kv_text(&E, "origin", seg->origin);
	es_cbor_enc_kv_uint(&E, "origin_seq", seg->origin_seq);
	es_cbor_enc_kv_uint(&E, "offset", off);
	es_cbor_enc_kv_bytes(&E, "data", data, n);
	es_cbor_enc_kv_uint(&E, "crc", crc);
}

static void segref(enum sync_type t, size_t extra, const char *coll,
		   const struct es_sync_segment *seg)
{
	raw_req(t, 3 + extra);
	es_cbor_enc_kv_text(&E, "collection", coll);
	es_cbor_enc_kv_text(&E, "origin", seg->origin);
	es_cbor_enc_kv_uint(&E, "origin_seq", seg->origin_seq);
}

/* ---- hostile clients -------------------------------------------------- */

static void envelope_attacks(nng_socket s)
{
	static const unsigned char garbage[] = {0xff, 0x00, 'h', 'i', 0x1c};
	static const unsigned char array[] = {0x82, 0x01, 0x02};
	static const unsigned char huge[] = {0xa1, 0x64, 'd',  'a',  't',
					     'a',  0x5b, 0x00, 0x00, 0x01,
					     0x00, 0x00, 0x00, 0x00, 0x00};
	unsigned char deep[100];

	assert_int_equal(
	    raw_ask_bytes(s, garbage, sizeof(garbage), 1, SYNC_T_PING),
	    SYNC_C_MALFORMED);
	assert_int_equal(raw_ask_bytes(s, "", 0, 1, SYNC_T_PING),
			 SYNC_C_MALFORMED);
	assert_int_equal(raw_ask_bytes(s, array, sizeof(array), 1, SYNC_T_PING),
			 SYNC_C_MALFORMED);
	assert_int_equal(raw_ask_bytes(s, huge, sizeof(huge), 1, SYNC_T_PING),
			 SYNC_C_MALFORMED);
	memset(deep, 0x81, sizeof(deep));
	assert_int_equal(raw_ask_bytes(s, deep, sizeof(deep), 1, SYNC_T_PING),
			 SYNC_C_MALFORMED);

	es_cbor_enc_reset(&E, 0);
	es_cbor_enc_map(&E, 2);
	es_cbor_enc_kv_uint(&E, "v", 1); /* before clock runs travelled */
	es_cbor_enc_kv_text(&E, "type", "hello");
	expect(s, SYNC_T_PING, SYNC_C_VERSION, "version 1");
	es_cbor_enc_reset(&E, 0);
	es_cbor_enc_map(&E, 1);
	es_cbor_enc_kv_text(&E, "type", "hello");
	expect(s, SYNC_T_PING, SYNC_C_MALFORMED, "lacks field 'v'");
	es_cbor_enc_reset(&E, 0);
	es_cbor_enc_map(&E, 2);
	es_cbor_enc_kv_uint(&E, "v", ES_SYNC_PROTOCOL);
	es_cbor_enc_kv_text(&E, "type", "frobnicate");
	expect(s, SYNC_T_PING, SYNC_C_UNKNOWN_TYPE, "'frobnicate'");
	raw_req(SYNC_T_PING, 0);
	expect(s, SYNC_T_PING, SYNC_C_NONE, NULL);

	/* The trailer: missing, short, or not the map's CRC32C (a ping
	 * damaged in transit on plain tcp) is refused as such. */
	{
		unsigned char b[64];

		raw_req(SYNC_T_PING, 0);
		assert_true(E.len + SYNC_TRAILER <= sizeof(b));
		memcpy(b, E.buf, E.len);
		assert_int_equal(raw_ask_bytes(s, b, E.len, 0, SYNC_T_PING),
				 SYNC_C_CHECKSUM);
		assert_int_equal(raw_ask_bytes(s, b, 3, 0, SYNC_T_PING),
				 SYNC_C_MALFORMED);
		assert_non_null(strstr(rp.message, "no room for its CRC32C"));
		sync_trailer_put(b + E.len, es_crc32c(0, b, E.len));
		assert_int_equal(
		    raw_ask_bytes(s, b, E.len + SYNC_TRAILER, 0, SYNC_T_PING),
		    SYNC_C_NONE);
		b[E.len] ^= 0x40;
		assert_int_equal(
		    raw_ask_bytes(s, b, E.len + SYNC_TRAILER, 0, SYNC_T_PING),
		    SYNC_C_CHECKSUM);
		assert_non_null(strstr(rp.message, "CRC32C trailer"));
		b[E.len] ^= 0x40;
		b[3] ^= 0x01; /* v: 1 -> 0, the map still parses */
		assert_int_equal(
		    raw_ask_bytes(s, b, E.len + SYNC_TRAILER, 0, SYNC_T_PING),
		    SYNC_C_CHECKSUM);
	}
}

static void session_attacks(nng_socket s, const struct es_sync_segment *seg)
{
	char longid[80];

	begin("c", 8, seg, 0);
	expect(s, SYNC_T_BEGIN, SYNC_C_SESSION, "hello");
	raw_req(SYNC_T_COLLECTIONS, 0);
	expect(s, SYNC_T_COLLECTIONS, SYNC_C_SESSION, NULL);
	hello("edge-h", "edge", "wrong-token-0123456789", 0);
	expect(s, SYNC_T_HELLO, SYNC_C_AUTH, "token");
	hello("edge-h", "edge", NULL, 0);
	expect(s, SYNC_T_HELLO, SYNC_C_AUTH, "token");
	hello("edge-h", "cloud", TOKEN, 0);
	expect(s, SYNC_T_HELLO, SYNC_C_INVALID, "role 'cloud'");
	hello("has space", "edge", TOKEN, 0);
	expect(s, SYNC_T_HELLO, SYNC_C_INVALID, "device id");
	memset(longid, 'x', 65);
	longid[65] = '\0';
	hello(longid, "edge", TOKEN, 0);
	expect(s, SYNC_T_HELLO, SYNC_C_INVALID, "longer than 64");
	/* A failed hello leaves the connection unauthenticated. */
	begin("c", 8, seg, 0);
	expect(s, SYNC_T_BEGIN, SYNC_C_SESSION, NULL);
	hello("edge-h", "edge", TOKEN, 1);
	expect(s, SYNC_T_HELLO, SYNC_C_NONE, NULL);
	assert_string_equal(rp.device, "cloud-1");
}

static void begin_attacks(nng_socket s, const struct es_sync_segment *good)
{
	struct es_sync_segment seg = *good;

	begin("../../etc", 8, &seg, 0);
	expect(s, SYNC_T_BEGIN, SYNC_C_INVALID, "not a collection name");
	begin("UPPER", 8, &seg, 0);
	expect(s, SYNC_T_BEGIN, SYNC_C_INVALID, "not a collection name");
	seg.dim = 0;
	begin("c", 0, &seg, 0);
	expect(s, SYNC_T_BEGIN, SYNC_C_INVALID, "dim 0");
	seg.dim = 5000;
	begin("c", 5000, &seg, 0);
	expect(s, SYNC_T_BEGIN, SYNC_C_INVALID, "dim 5000");
	seg = *good;
	begin("c", 16, &seg, 0);
	expect(s, SYNC_T_BEGIN, SYNC_C_INVALID, "differs");
	seg.size++;
	begin("c", 8, &seg, 0);
	expect(s, SYNC_T_BEGIN, SYNC_C_INVALID, "is not that of");
	seg = *good;
	seg.count = 1ull << 62;
	begin("c", 8, &seg, 0);
	expect(s, SYNC_T_BEGIN, SYNC_C_INVALID, "size");
	seg = *good;
	seg.count = 1ull << 31; /* coherent, but 72 GiB */
	es_ndvs_file_size(8, seg.count, &seg.size);
	begin("c", 8, &seg, 0);
	expect(s, SYNC_T_BEGIN, SYNC_C_INVALID, "exceeds the limit");
	seg = *good;
	snprintf(seg.origin, sizeof(seg.origin), "someone-else");
	begin("c", 8, &seg, 0);
	expect(s, SYNC_T_BEGIN, SYNC_C_FORBIDDEN, "your device id");
	begin("c", 8, good, 1ull << 30);
	expect(s, SYNC_T_BEGIN, SYNC_C_INVALID, "tombstones_total");
	seg = *good;
	seg.seal_hlc = UINT64_MAX;
	begin("c", 8, &seg, 0);
	expect(s, SYNC_T_BEGIN, SYNC_C_INVALID, "2^63");
}

static void chunk_attacks(nng_socket s, const struct es_sync_segment *seg,
			  const unsigned char *file)
{
	unsigned char big[8192];
	struct es_sync_segment other = *seg;

	begin("c", 8, seg, 0);
	expect(s, SYNC_T_BEGIN, SYNC_C_NONE, NULL);
	assert_int_equal(rp.state, SYNC_S_RESUME);
	assert_int_equal(rp.offset, 0);
	/* Ahead of the staged bytes, inside the window: held in memory. */
	chunk("c", seg, 100, file + 100, 100, es_crc32c(0, file + 100, 100));
	expect(s, SYNC_T_CHUNK, SYNC_C_NONE, NULL);
	assert_int_equal(rp.offset, 0);
	chunk("c", seg, seg->size - 10, file, 100, es_crc32c(0, file, 100));
	expect(s, SYNC_T_CHUNK, SYNC_C_INVALID, "beyond");
	chunk("c", seg, UINT64_MAX, file, 1, es_crc32c(0, file, 1));
	expect(s, SYNC_T_CHUNK, SYNC_C_INVALID, "beyond");
	memset(big, 0, sizeof(big));
	chunk("c", seg, 0, big, sizeof(big), es_crc32c(0, big, sizeof(big)));
	expect(s, SYNC_T_CHUNK, SYNC_C_INVALID, "1 to 4096 bytes");
	chunk("c", seg, 0, file, 100, es_crc32c(0, file, 100) ^ 1);
	expect(s, SYNC_T_CHUNK, SYNC_C_CHECKSUM, "CRC32C");
	other.origin_seq++;
	chunk("c", &other, 0, file, 100, es_crc32c(0, file, 100));
	expect(s, SYNC_T_CHUNK, SYNC_C_STATE, "send begin");
	chunk("c", seg, 0, file, 100, es_crc32c(0, file, 100));
	expect(s, SYNC_T_CHUNK, SYNC_C_NONE, NULL);
	assert_int_equal(rp.offset, 200); /* with the held chunk behind it */
	/* The same chunk again (a lost reply): a duplicate, nothing moves. */
	expect(s, SYNC_T_CHUNK, SYNC_C_NONE, NULL);
	assert_int_equal(rp.offset, 200);
	/* Commit of a partial file: refused, staging deleted. */
	segref(SYNC_T_COMMIT, 0, "c", seg);
	expect(s, SYNC_T_COMMIT, SYNC_C_VERIFY, "staged 200 bytes");
	chunk("c", seg, 100, file + 100, 100, es_crc32c(0, file + 100, 100));
	expect(s, SYNC_T_CHUNK, SYNC_C_STATE, NULL);
	begin("c", 8, seg, 0);
	expect(s, SYNC_T_BEGIN, SYNC_C_NONE, NULL);
	assert_int_equal(rp.offset, 0);
}

/* A whole upload of well-formed chunks of the wrong bytes: each chunk's
 * CRC is right, the file is not. */
static void forged_upload(nng_socket s, const struct es_sync_segment *seg)
{
	unsigned char buf[4096];
	uint64_t off = 0;

	begin("c", 8, seg, 0);
	expect(s, SYNC_T_BEGIN, SYNC_C_NONE, NULL);
	while (off < seg->size) {
		size_t n = seg->size - off < 4096 ? seg->size - off : 4096;

		for (size_t i = 0; i < n; i++)
			buf[i] = (unsigned char)(off + i * 31);
		chunk("c", seg, off, buf, n, es_crc32c(0, buf, n));
		expect(s, SYNC_T_CHUNK, SYNC_C_NONE, NULL);
		off += n;
	}
	segref(SYNC_T_COMMIT, 0, "c", seg);
	expect(s, SYNC_T_COMMIT, SYNC_C_VERIFY, "fails its checks");
}

static void download_attacks(nng_socket s, const struct es_sync_segment *seg)
{
	raw_req(SYNC_T_CHANGES, 2);
	es_cbor_enc_kv_text(&E, "collection", "c");
	es_cbor_enc_kv_uint(&E, "since", 0);
	expect(s, SYNC_T_CHANGES, SYNC_C_NOT_FOUND, "no published");
	raw_req(SYNC_T_CHANGES, 1);
	es_cbor_enc_kv_text(&E, "collection", "pub");
	expect(s, SYNC_T_CHANGES, SYNC_C_MALFORMED, "needs field 'since'");
	segref(SYNC_T_FETCH, 2, "pub", seg);
	es_cbor_enc_kv_uint(&E, "offset", 0);
	es_cbor_enc_kv_uint(&E, "length", 10);
	expect(s, SYNC_T_FETCH, SYNC_C_NOT_FOUND, "no segment");
	raw_req(SYNC_T_COLLECTIONS, 0);
	expect(s, SYNC_T_COLLECTIONS, SYNC_C_NONE, NULL);
	assert_int_equal(rp.n_colls, 1);
	assert_string_equal(rp.colls[0].name, "pub");
}

static void published_attacks(nng_socket s, const struct es_sync_segment *p)
{
	segref(SYNC_T_FETCH, 2, "pub", p);
	es_cbor_enc_kv_uint(&E, "offset", 0);
	es_cbor_enc_kv_uint(&E, "length", 0);
	expect(s, SYNC_T_FETCH, SYNC_C_INVALID, "length");
	segref(SYNC_T_FETCH, 2, "pub", p);
	es_cbor_enc_kv_uint(&E, "offset", p->size);
	es_cbor_enc_kv_uint(&E, "length", 1);
	expect(s, SYNC_T_FETCH, SYNC_C_INVALID, "beyond");
	segref(SYNC_T_FETCH, 2, "pub", p);
	es_cbor_enc_kv_uint(&E, "offset", 0);
	es_cbor_enc_kv_uint(&E, "length", 1u << 30);
	expect(s, SYNC_T_FETCH, SYNC_C_INVALID, "length");
	segref(SYNC_T_FETCH, 2, "pub", p);
	es_cbor_enc_kv_uint(&E, "offset", 0);
	es_cbor_enc_kv_uint(&E, "length", 64);
	expect(s, SYNC_T_FETCH, SYNC_C_NONE, NULL);
	assert_int_equal(rp.data_len, 64);
	assert_int_equal(rp.crc, es_crc32c(0, rp.data, 64));
	/* part: only "segment" or "index", and this segment has no index */
	segref(SYNC_T_FETCH, 3, "pub", p);
	es_cbor_enc_kv_uint(&E, "offset", 0);
	es_cbor_enc_kv_uint(&E, "length", 64);
	es_cbor_enc_kv_text(&E, "part", "../etc/passwd");
	expect(s, SYNC_T_FETCH, SYNC_C_INVALID, "part");
	segref(SYNC_T_FETCH, 3, "pub", p);
	es_cbor_enc_kv_uint(&E, "offset", 0);
	es_cbor_enc_kv_uint(&E, "length", 64);
	es_cbor_enc_kv_text(&E, "part", "index");
	expect(s, SYNC_T_FETCH, SYNC_C_NOT_FOUND, "no index");
	segref(SYNC_T_FETCH, 3, "pub", p);
	es_cbor_enc_kv_uint(&E, "offset", 0);
	es_cbor_enc_kv_uint(&E, "length", 64);
	es_cbor_enc_kv_text(&E, "part", "segment");
	expect(s, SYNC_T_FETCH, SYNC_C_NONE, NULL);
	raw_req(SYNC_T_TOMBSTONES, 3);
	es_cbor_enc_kv_text(&E, "collection", "pub");
	es_cbor_enc_kv_uint(&E, "add_version", p->add_version);
	es_cbor_enc_kv_uint(&E, "first", 1000);
	expect(s, SYNC_T_TOMBSTONES, SYNC_C_INVALID, "beyond");
}

static void test_hostile_clients(void **state)
{
	struct th_node cloud, edge, scratch;
	struct th_seg seg, pub;
	unsigned char *file, *huge;
	size_t len;
	nng_socket s;

	th_node_init(&cloud, root, "h-cloud", "cloud-1", ES_SYNC_CLOUD);
	snprintf(cloud.url, sizeof(cloud.url), "tcp://127.0.0.1:%d",
		 th_free_port());
	th_add_collection(&cloud.h, "pub", 8, ES_SYNC_FLAG_DOWNLOAD);
	th_add_segment(&cloud.h, "pub", 40, 71, 3, NULL, 0);
	assert_int_equal(th_segment(&cloud.h, "pub", 0, &pub), 0);
	assert_int_equal(th_node_start(&cloud), 0);
	/* A segment to lie about, as device edge-h would have it. */
	th_node_init(&scratch, root, "h-scratch", "edge-h", ES_SYNC_EDGE);
	th_add_collection(&scratch.h, "c", 8, 0);
	th_add_segment(&scratch.h, "c", 300, 72, 0, NULL, 0);
	assert_int_equal(th_segment(&scratch.h, "c", 0, &seg), 0);
	file = raw_read_file(seg.path, &len);
	assert_int_equal(len, seg.s.size);

	s = raw_open(cloud.url, 5000);
	envelope_attacks(s);
	session_attacks(s, &seg.s);
	begin_attacks(s, &seg.s);
	chunk_attacks(s, &seg.s, file);
	forged_upload(s, &seg.s);
	download_attacks(s, &seg.s);
	published_attacks(s, &pub.s);
	/* Larger than the largest legal message: the cloud drops the
	 * connection (nng's RECVMAXSZ), and no reply comes. */
	huge = calloc(1, 300 << 10);
	nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, 1000);
	assert_int_equal(raw_ask_bytes(s, huge, 300 << 10, 1, SYNC_T_PING), -1);
	free(huge);
	nng_close(s);
	assert_int_equal(th_installs(&cloud.h), 0);
	assert_int_equal(th_count(&cloud.h, "c"), 0);
	assert_true(th_log_count(&cloud.h, "refused") > 0);

	/* The cloud still serves a good edge. */
	th_node_init(&edge, root, "h-edge", "edge-g", ES_SYNC_EDGE);
	snprintf(edge.peer_url, sizeof(edge.peer_url), "%s", cloud.url);
	th_add_collection(&edge.h, "c", 8, ES_SYNC_FLAG_UPLOAD);
	th_add_segment(&edge.h, "c", 300, 73, 2, NULL, 0);
	assert_int_equal(th_node_start(&edge), 0);
	TH_WAIT(th_count(&cloud.h, "c") == 1 && th_count(&edge.h, "pub") == 1,
		"the good edge's round");
	th_node_stop(&edge);
	th_node_stop(&cloud);
	raw_fini();
	free(file);
	th_fini(&edge.h);
	th_fini(&scratch.h);
	th_fini(&cloud.h);
}

/* ---- a hostile cloud -------------------------------------------------- */

enum fake_mode {
	FAKE_GARBAGE,
	FAKE_VERSION,
	FAKE_CHUNK_MAX,
	FAKE_BAD_SIZE,
	FAKE_NO_PROGRESS,
	FAKE_SHORT_DATA,
	FAKE_BAD_CRC,
	FAKE_CLOCKS_ORDER, /* runs out of order across two pages */
	FAKE_CLOCKS_ABOVE, /* a run above the seal */
	FAKE_CLOCKS_TOTAL, /* more runs than rows */
	FAKE_NO_CLOCKS,	   /* refuses clocks and more_clocks */
	FAKE_CLOCKS_ZERO,  /* no runs for a segment of rows */
};

static struct {
	nng_socket s;
	pthread_t t;
	pthread_mutex_t lock;
	enum fake_mode mode;
	struct es_sync_segment seg; /* a real segment, of file */
	unsigned char *file;
	atomic_int commits, more_clocks; /* requests of each */
} fake = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* A refusal of an unknown message type. */
static void fake_unknown(struct es_cbor_enc *e, const struct sync_req *rq)
{
	struct sync_fail f = {0};

	sync_failf(&f, SYNC_C_UNKNOWN_TYPE, "unknown message type '%s'",
		   sync_type_name(rq->type));
	sync_enc_fail(e, &f);
}

/* The page from rq->first of fake.seg's runs: one per row, broken as
 * mode says. */
static void fake_clocks(struct es_cbor_enc *e, const struct sync_req *rq,
			enum fake_mode mode)
{
	uint64_t n = mode == FAKE_CLOCKS_ZERO
			 ? 0
			 : fake.seg.count + (mode == FAKE_CLOCKS_TOTAL);
	uint64_t k = rq->first < n ? n - rq->first : 0;
	struct es_clock_run *c;

	k = k < SYNC_CLOCKS_PER_MSG ? k : SYNC_CLOCKS_PER_MSG;
	c = calloc(k + 1, sizeof(*c));
	for (uint64_t i = 0; i < k; i++) {
		uint64_t row = rq->first + i;

		c[i].row = row;
		c[i].hlc = fake.seg.seal_hlc - (n - 1 - row);
		if (mode == FAKE_CLOCKS_ORDER && row == SYNC_CLOCKS_PER_MSG)
			c[i].row = row - 1;
		if (mode == FAKE_CLOCKS_ABOVE && row == 5)
			c[i].hlc = fake.seg.seal_hlc + 1;
	}
	sync_enc_ok(e, 2);
	es_cbor_enc_kv_uint(e, "total", n);
	es_cbor_enc_text(e, "clocks");
	sync_enc_clocks(e, c, (size_t)k);
	free(c);
}

static void fake_reply(struct es_cbor_enc *e, const struct sync_req *rq,
		       enum fake_mode mode)
{
	struct es_sync_collection c = {.dim = 8, .version = 5};
	struct es_sync_segment seg = fake.seg;

	snprintf(c.name, sizeof(c.name), "pub");
	switch (rq->type) {
	case SYNC_T_HELLO:
		es_cbor_enc_map(e, 5);
		es_cbor_enc_kv_uint(
		    e, "v", mode == FAKE_VERSION ? 1 : ES_SYNC_PROTOCOL);
		es_cbor_enc_kv_bool(e, "ok", 1);
		es_cbor_enc_kv_text(e, "device", "fake-cloud");
		es_cbor_enc_kv_uint(e, "hlc", 1);
		es_cbor_enc_kv_uint(e, "chunk_max",
				    mode == FAKE_CHUNK_MAX ? 0 : 4096);
		return;
	case SYNC_T_COLLECTIONS:
		sync_enc_ok(e, 1);
		es_cbor_enc_text(e, "collections");
		es_cbor_enc_array(e, 1);
		sync_enc_collection(e, &c, 1);
		return;
	case SYNC_T_CHANGES:
		if (mode == FAKE_BAD_SIZE)
			seg.size += 8;
		sync_enc_ok(e, 3);
		es_cbor_enc_kv_uint(e, "version",
				    mode == FAKE_NO_PROGRESS ? 0 : 5);
		es_cbor_enc_kv_bool(e, "more", mode == FAKE_NO_PROGRESS);
		es_cbor_enc_text(e, "segments");
		es_cbor_enc_array(e, mode == FAKE_NO_PROGRESS ? 0 : 1);
		if (mode != FAKE_NO_PROGRESS)
			sync_enc_segment(e, &seg, 1);
		return;
	case SYNC_T_FETCH: {
		size_t n = (size_t)rq->length;
		const unsigned char *d = fake.file + rq->offset;

		if (rq->offset + rq->length > fake.seg.size)
			n = 0;
		sync_enc_ok(e, 2);
		es_cbor_enc_kv_bytes(e, "data", d,
				     mode == FAKE_SHORT_DATA && n ? n - 1 : n);
		es_cbor_enc_kv_uint(
		    e, "crc", es_crc32c(0, d, n) ^ (mode == FAKE_BAD_CRC));
		return;
	}
	case SYNC_T_TOMBSTONES:
		sync_enc_ok(e, 2);
		es_cbor_enc_kv_uint(e, "total", 0);
		es_cbor_enc_text(e, "tombstones");
		es_cbor_enc_array(e, 0);
		return;
	case SYNC_T_CLOCKS:
		if (mode == FAKE_NO_CLOCKS)
			fake_unknown(e, rq);
		else
			fake_clocks(e, rq, mode);
		return;
	/* An upload (FAKE_NO_CLOCKS): nothing to send, nothing kept. */
	case SYNC_T_BEGIN:
		sync_enc_ok(e, 2);
		es_cbor_enc_kv_text(e, "state", "resume");
		es_cbor_enc_kv_uint(e, "offset", rq->seg.size);
		return;
	case SYNC_T_MORE_TOMBSTONES:
		sync_enc_ok(e, 1);
		es_cbor_enc_kv_uint(e, "offset", rq->first + rq->n_tombs);
		return;
	case SYNC_T_MORE_CLOCKS:
		fake.more_clocks++;
		fake_unknown(e, rq);
		return;
	case SYNC_T_COMMIT:
		fake.commits++;
		sync_enc_ok(e, 1);
		es_cbor_enc_kv_text(e, "state", "installed");
		return;
	default:
		sync_enc_ok(e, 0);
	}
}

static void *fake_main(void *arg)
{
	struct es_cbor_enc e;
	struct sync_fail f;
	struct sync_req rq;
	enum fake_mode mode;
	nng_msg *m;

	es_cbor_enc_init(&e);
	while (nng_recvmsg(fake.s, &m, 0) == 0) {
		pthread_mutex_lock(&fake.lock);
		mode = fake.mode;
		pthread_mutex_unlock(&fake.lock);
		es_cbor_enc_reset(&e, 1 << 20);
		if (sync_req_parse(&rq, nng_msg_body(m), nng_msg_len(m), &f))
			es_cbor_enc_text(&e, "?");
		else if (mode == FAKE_GARBAGE)
			es_cbor_enc_raw(&e, "\xa1\x61v\xff\x13", 5);
		else
			fake_reply(&e, &rq, mode);
		sync_req_fini(&rq);
		nng_msg_free(m);
		if (sync_msg_sealed(&m, e.buf, e.len) != 0)
			break;
		if (nng_sendmsg(fake.s, m, 0) != 0)
			nng_msg_free(m);
	}
	es_cbor_enc_fini(&e);
	return NULL;
}

static void fake_mode(struct th_node *edge, enum fake_mode mode,
		      const char *want)
{
	struct es_sync_peer_status st;

	pthread_mutex_lock(&fake.lock);
	fake.mode = mode;
	pthread_mutex_unlock(&fake.lock);
	es_sync_now(edge->s);
	TH_WAIT(th_status(edge, NULL, &st) == 0 && strstr(st.last_error, want),
		want);
	assert_int_equal(th_installs(&edge->h), 0);
}

/* The fake cloud, listening at url in mode, with one published segment
 * of count rows (of a scratch host's, made under name). */
static void fake_open(struct th_node *scratch, const char *name, uint64_t count,
		      char *url, size_t size, enum fake_mode mode)
{
	struct th_seg seg;
	size_t len;

	th_node_init(scratch, root, name, "fake-cloud", ES_SYNC_EDGE);
	th_add_collection(&scratch->h, "pub", 8, 0);
	th_add_segment(&scratch->h, "pub", count, 81, 0, NULL, 0);
	assert_int_equal(th_segment(&scratch->h, "pub", 0, &seg), 0);
	fake.seg = seg.s;
	fake.seg.add_version = 5;
	fake.file = raw_read_file(seg.path, &len);

	snprintf(url, size, "tcp://127.0.0.1:%d", th_free_port());
	assert_int_equal(nng_rep0_open(&fake.s), 0);
	assert_int_equal(nng_listen(fake.s, url, NULL, 0), 0);
	fake.mode = mode;
	assert_int_equal(pthread_create(&fake.t, NULL, fake_main, NULL), 0);
}

static void fake_close(struct th_node *scratch)
{
	nng_close(fake.s);
	pthread_join(fake.t, NULL);
	free(fake.file);
	th_fini(&scratch->h);
}

static void test_hostile_cloud(void **state)
{
	struct th_node edge, scratch;
	struct es_sync_peer_status st;
	char url[100];

	/* More rows than a page of clock runs. */
	fake_open(&scratch, "f-scratch", SYNC_CLOCKS_PER_MSG + 52, url,
		  sizeof(url), FAKE_GARBAGE);
	th_node_init(&edge, root, "f-edge", "edge-f", ES_SYNC_EDGE);
	snprintf(edge.peer_url, sizeof(edge.peer_url), "%s", url);
	edge.c.backoff_max_ms = 200;
	assert_int_equal(th_node_start(&edge), 0);
	fake_mode(&edge, FAKE_GARBAGE, "bad reply to hello");
	fake_mode(&edge, FAKE_VERSION, "protocol version 1");
	fake_mode(&edge, FAKE_CHUNK_MAX, "chunk_max 0");
	fake_mode(&edge, FAKE_BAD_SIZE, "is not that of");
	fake_mode(&edge, FAKE_NO_PROGRESS, "more without progress");
	fake_mode(&edge, FAKE_SHORT_DATA, "sent 4095 bytes");
	fake_mode(&edge, FAKE_BAD_CRC, "failed its CRC32C 5 times");
	assert_int_equal(th_status(&edge, NULL, &st), 0);
	assert_true(st.checksum_failures >= 5);
	fake_mode(&edge, FAKE_CLOCKS_ORDER,
		  "sent an inconsistent list: clock run 2048 starts at row "
		  "2047, not after run 2047's row 2047");
	fake_mode(&edge, FAKE_CLOCKS_ABOVE, "clock run 5 has hlc");
	fake_mode(&edge, FAKE_CLOCKS_TOTAL,
		  "2101 clock runs for a segment of 2100 rows");
	fake_mode(&edge, FAKE_CLOCKS_ZERO,
		  "no clock runs for a segment of 2100 rows");
	assert_int_equal(edge.h.bad_clocks, 0); /* sync refused them all */
	th_node_stop(&edge);
	fake_close(&scratch);
	th_fini(&edge.h);
}

/*
 * A cloud that refuses clocks and more_clocks (unknown_type): the edge
 * does not commit its upload without the runs past begin's, nor install
 * the cloud's segment without its runs, and says why; a row never lands
 * without its write's clock.
 */
static void test_clocks_refused(void **state)
{
	struct th_node edge, scratch;
	struct es_sync_peer_status st;
	struct es_clock_run *k;
	struct th_seg seg;
	char url[100];

	fake_open(&scratch, "o-scratch", 100, url, sizeof(url), FAKE_NO_CLOCKS);
	th_node_init(&edge, root, "o-edge", "edge-o", ES_SYNC_EDGE);
	snprintf(edge.peer_url, sizeof(edge.peer_url), "%s", url);
	th_add_collection(&edge.h, "up", 8, ES_SYNC_FLAG_UPLOAD);
	th_add_segment(&edge.h, "up", 3000, 82, 3, NULL, 0);
	assert_int_equal(th_segment(&edge.h, "up", 0, &seg), 0);
	k = calloc(2500, sizeof(*k));
	for (size_t i = 0; i < 2500; i++) {
		k[i].row = i;
		k[i].hlc = seg.s.seal_hlc - (2499 - i);
	}
	th_set_clocks(&edge.h, "up", 0, k, 2500); /* two pages */
	free(k);
	fake.commits = 0;
	fake.more_clocks = 0;
	assert_int_equal(th_node_start(&edge), 0);
	/* a round's downloads come after its uploads */
	TH_WAIT(th_status(&edge, NULL, &st) == 0 &&
		    strstr(st.last_error, "unknown message type 'clocks'"),
		"a round");
	assert_true(fake.more_clocks >= 1); /* the upload was tried */
	assert_int_equal(fake.commits, 0);
	assert_int_equal(th_ack_value(&edge.h, "up", ES_SYNC_UP), 0);
	assert_int_equal(th_count(&edge.h, "pub"), 0);
	th_node_stop(&edge);
	fake_close(&scratch);
	th_fini(&edge.h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_hostile_clients),
	    cmocka_unit_test(test_hostile_cloud),
	    cmocka_unit_test(test_clocks_refused),
	};

	return TH_RUN(tests, root, "hostile");
}
