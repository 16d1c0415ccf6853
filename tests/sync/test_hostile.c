/*
 * Sync against peers that lie: a raw nng req socket sends the cloud
 * garbage, wrong versions, unknown types, wrong tokens, out-of-range
 * names, dims, sizes and offsets, damaged chunks, a forged upload and an
 * oversized message; each is refused with the right error code and the
 * cloud goes on serving a good edge. A fake cloud answers an edge with
 * garbage and with lies; the edge refuses them and installs nothing.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
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
	raw_req(SYNC_T_BEGIN, 3);
	es_cbor_enc_text(&E, "collection");
	sync_enc_collection(&E, &c, 0);
	es_cbor_enc_text(&E, "segment");
	sync_enc_segment(&E, seg, 0);
	es_cbor_enc_kv_uint(&E, "tombstones_total", tombs_total);
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
	es_cbor_enc_kv_uint(&E, "v", 2);
	es_cbor_enc_kv_text(&E, "type", "hello");
	expect(s, SYNC_T_PING, SYNC_C_VERSION, "version 2");
	es_cbor_enc_reset(&E, 0);
	es_cbor_enc_map(&E, 1);
	es_cbor_enc_kv_text(&E, "type", "hello");
	expect(s, SYNC_T_PING, SYNC_C_MALFORMED, "lacks field 'v'");
	es_cbor_enc_reset(&E, 0);
	es_cbor_enc_map(&E, 2);
	es_cbor_enc_kv_uint(&E, "v", 1);
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

static unsigned char *read_all(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	unsigned char *b;

	assert_non_null(f);
	fseek(f, 0, SEEK_END);
	*len = (size_t)ftell(f);
	fseek(f, 0, SEEK_SET);
	b = malloc(*len);
	assert_int_equal(fread(b, 1, *len, f), *len);
	fclose(f);
	return b;
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
	file = read_all(seg.path, &len);
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
};

static struct {
	nng_socket s;
	pthread_t t;
	pthread_mutex_t lock;
	enum fake_mode mode;
	struct es_sync_segment seg; /* a real segment, of file */
	unsigned char *file;
} fake = {.lock = PTHREAD_MUTEX_INITIALIZER};

static void fake_reply(struct es_cbor_enc *e, const struct sync_req *rq,
		       enum fake_mode mode)
{
	struct es_sync_collection c = {.dim = 8, .version = 5};
	struct es_sync_segment seg = fake.seg;

	snprintf(c.name, sizeof(c.name), "pub");
	switch (rq->type) {
	case SYNC_T_HELLO:
		es_cbor_enc_map(e, 5);
		es_cbor_enc_kv_uint(e, "v", mode == FAKE_VERSION ? 2 : 1);
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

static void test_hostile_cloud(void **state)
{
	struct th_node edge, scratch;
	struct es_sync_peer_status st;
	struct th_seg seg;
	size_t len;
	char url[100];

	th_node_init(&scratch, root, "f-scratch", "fake-cloud", ES_SYNC_EDGE);
	th_add_collection(&scratch.h, "pub", 8, 0);
	th_add_segment(&scratch.h, "pub", 200, 81, 0, NULL, 0);
	assert_int_equal(th_segment(&scratch.h, "pub", 0, &seg), 0);
	fake.seg = seg.s;
	fake.seg.add_version = 5;
	fake.file = read_all(seg.path, &len);

	snprintf(url, sizeof(url), "tcp://127.0.0.1:%d", th_free_port());
	assert_int_equal(nng_rep0_open(&fake.s), 0);
	assert_int_equal(nng_listen(fake.s, url, NULL, 0), 0);
	fake.mode = FAKE_GARBAGE;
	assert_int_equal(pthread_create(&fake.t, NULL, fake_main, NULL), 0);

	th_node_init(&edge, root, "f-edge", "edge-f", ES_SYNC_EDGE);
	snprintf(edge.peer_url, sizeof(edge.peer_url), "%s", url);
	edge.c.backoff_max_ms = 200;
	assert_int_equal(th_node_start(&edge), 0);
	fake_mode(&edge, FAKE_GARBAGE, "bad reply to hello");
	fake_mode(&edge, FAKE_VERSION, "protocol version 2");
	fake_mode(&edge, FAKE_CHUNK_MAX, "chunk_max 0");
	fake_mode(&edge, FAKE_BAD_SIZE, "is not that of");
	fake_mode(&edge, FAKE_NO_PROGRESS, "more without progress");
	fake_mode(&edge, FAKE_SHORT_DATA, "sent 4095 bytes");
	fake_mode(&edge, FAKE_BAD_CRC, "failed its CRC32C 5 times");
	assert_int_equal(th_status(&edge, NULL, &st), 0);
	assert_true(st.checksum_failures >= 5);
	th_node_stop(&edge);
	nng_close(fake.s);
	pthread_join(fake.t, NULL);
	free(fake.file);
	th_fini(&edge.h);
	th_fini(&scratch.h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_hostile_clients),
	    cmocka_unit_test(test_hostile_cloud),
	};

	return TH_RUN(tests, root, "hostile");
}
