/*
 * Clock runs (es_clock_run): each segment's [row, hlc] runs travel with
 * it, both ways. Real edges and a real cloud move lists of 5000 runs
 * (pages of 2048) intact up and down, beside tombstones, with segments
 * of a few runs, of none recorded (the host's {0, seal_hlc}) and of no
 * rows; an edge does not send runs its host got wrong. A raw client
 * plays a hostile edge: a segment of rows without runs, runs that break
 * the rule in begin and in more_clocks, totals out of range, a commit
 * before every run, pages at the wrong place; each is refused saying
 * what was wrong. The runs uploads hold are bounded over every
 * connection.
 */
#include <errno.h>
#include <inttypes.h>
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

#include "edgesync/cbor.h"
#include "edgesync/crc32c.h"
#include "edgesync/ndvs.h"
#include "edgesync/sync.h"
#include "sync_test.h"
#include "test_host.h"
#include "test_raw.h"
#include "wire.h"

#define TOKEN "lab-token-0123456789"
#define CH    4096 /* th_node_init's chunk size */

static char root[400];

/* ---- nodes ------------------------------------------------------------ */

/* A cloud (cloud-1) on a free port of 127.0.0.1, not started yet. */
static void cloud_init(struct th_node *c, const char *name)
{
	th_node_init(c, root, name, "cloud-1", ES_SYNC_CLOUD);
	snprintf(c->url, sizeof(c->url), "tcp://127.0.0.1:%d", th_free_port());
}

static void edge_init(struct th_node *n, const char *name, const char *dev,
		      const struct th_node *cloud)
{
	th_node_init(n, root, name, dev, ES_SYNC_EDGE);
	snprintf(n->peer_url, sizeof(n->peer_url), "%s", cloud->url);
}

/*
 * n runs for a segment of count rows sealed at seal: spread over the
 * rows (the first at row 0), their clocks rising to seal.
 */
static struct es_clock_run *runs(size_t n, uint64_t count, uint64_t seal)
{
	struct es_clock_run *k = calloc(n, sizeof(*k));

	assert_non_null(k);
	for (size_t i = 0; i < n; i++) {
		k[i].row = (uint64_t)i * count / n;
		k[i].hlc = seal - (n - 1 - i) * 3;
	}
	return k;
}

/* Segment i of coll in h gets n runs; they are returned (malloc'ed). */
static struct es_clock_run *give_runs(struct test_host *h, const char *coll,
				      size_t i, size_t n)
{
	struct es_clock_run *k;
	struct th_seg seg;

	assert_int_equal(th_segment(h, coll, i, &seg), 0);
	k = runs(n, seg.s.count, seg.s.seal_hlc);
	th_set_clocks(h, coll, i, k, n);
	return k;
}

/* The runs h recorded for (coll, origin, seq) are the n at want. */
static void runs_are(struct test_host *h, const char *coll, const char *origin,
		     uint64_t seq, const struct es_clock_run *want, size_t n)
{
	struct es_clock_run *got;
	size_t k;

	assert_int_equal(th_clocks(h, coll, origin, seq, &got, &k), 0);
	assert_int_equal(k, n);
	for (size_t i = 0; i < n; i++)
		if (got[i].row != want[i].row || got[i].hlc != want[i].hlc)
			fail_msg("run %zu of %s/%" PRIu64 " is [%" PRIu64
				 ", %" PRIu64 "], not [%" PRIu64 ", %" PRIu64
				 "]",
				 i, origin, seq, got[i].row, got[i].hlc,
				 want[i].row, want[i].hlc);
	free(got);
}

/* ---- both ways -------------------------------------------------------- */

static void test_clocks_up_down(void **state)
{
	struct es_clock_run *up5000, *up3, *pub5000, one;
	struct th_node cloud, edge;
	struct th_seg seg;

	cloud_init(&cloud, "ud-cloud");
	th_add_collection(&cloud.h, "pub", 4, ES_SYNC_FLAG_DOWNLOAD);
	th_add_segment(&cloud.h, "pub", 6000, 1, 3, NULL, 0);
	pub5000 = give_runs(&cloud.h, "pub", 0, 5000);	    /* 3 pages */
	th_add_segment(&cloud.h, "pub", 50, 2, 0, NULL, 0); /* no runs */
	th_add_segment(&cloud.h, "pub", 0, 3, 0, NULL, 0);  /* no rows */

	edge_init(&edge, "ud-edge", "edge-1", &cloud);
	th_add_collection(&edge.h, "up", 4, ES_SYNC_FLAG_UPLOAD);
	th_add_segment(&edge.h, "up", 6000, 11, 2500, NULL, 0);
	up5000 = give_runs(&edge.h, "up", 0, 5000);
	th_add_segment(&edge.h, "up", 10, 12, 1, NULL, 0);
	up3 = give_runs(&edge.h, "up", 1, 3);
	th_add_segment(&edge.h, "up", 0, 13, 0, NULL, 0);

	assert_int_equal(th_node_start(&cloud), 0);
	assert_int_equal(th_node_start(&edge), 0);
	TH_WAIT(th_ack_value(&edge.h, "up", ES_SYNC_UP) == 3 &&
		    th_ack_value(&edge.h, "pub", ES_SYNC_DOWN) == 3,
		"the round");

	assert_int_equal(th_segment(&edge.h, "up", 0, &seg), 0);
	runs_are(&cloud.h, "up", "edge-1", seg.s.origin_seq, up5000, 5000);
	assert_true(
	    th_same(&edge.h, &cloud.h, "up", "edge-1", seg.s.origin_seq));
	assert_int_equal(th_segment(&edge.h, "up", 1, &seg), 0);
	runs_are(&cloud.h, "up", "edge-1", seg.s.origin_seq, up3, 3);
	assert_int_equal(th_segment(&edge.h, "up", 2, &seg), 0);
	runs_are(&cloud.h, "up", "edge-1", seg.s.origin_seq, NULL, 0);

	assert_int_equal(th_segment(&cloud.h, "pub", 0, &seg), 0);
	runs_are(&edge.h, "pub", "cloud-1", seg.s.origin_seq, pub5000, 5000);
	assert_true(
	    th_same(&cloud.h, &edge.h, "pub", "cloud-1", seg.s.origin_seq));
	/* none recorded: the host's one run of the whole segment */
	assert_int_equal(th_segment(&cloud.h, "pub", 1, &seg), 0);
	one.row = 0;
	one.hlc = seg.s.seal_hlc;
	runs_are(&edge.h, "pub", "cloud-1", seg.s.origin_seq, &one, 1);
	assert_int_equal(th_segment(&cloud.h, "pub", 2, &seg), 0);
	runs_are(&edge.h, "pub", "cloud-1", seg.s.origin_seq, NULL, 0);
	assert_int_equal(cloud.h.bad_clocks, 0);
	assert_int_equal(edge.h.bad_clocks, 0);

	th_node_stop(&edge);
	th_node_stop(&cloud);
	free(up5000);
	free(up3);
	free(pub5000);
	th_fini(&edge.h);
	th_fini(&cloud.h);
}

/* An edge whose host gives runs that break the rules does not send them:
 * the segment fails there, saying why, and nothing reaches the cloud. */
static void test_clocks_host_invalid(void **state)
{
	struct th_node cloud, edge;
	struct es_sync_peer_status st;
	struct es_clock_run k;
	struct th_seg seg;

	cloud_init(&cloud, "hi-cloud");
	edge_init(&edge, "hi-edge", "edge-2", &cloud);
	th_add_collection(&edge.h, "up", 4, ES_SYNC_FLAG_UPLOAD);
	th_add_segment(&edge.h, "up", 10, 21, 0, NULL, 0);
	assert_int_equal(th_segment(&edge.h, "up", 0, &seg), 0);
	k.row = 2;
	k.hlc = seg.s.seal_hlc;
	th_set_clocks(&edge.h, "up", 0, &k, 1);
	assert_int_equal(th_node_start(&cloud), 0);
	assert_int_equal(th_node_start(&edge), 0);
	TH_WAIT(th_status(&edge, NULL, &st) == 0 &&
		    strstr(st.last_error,
			   "its clock runs break the rules: clock run 0 "
			   "starts at row 2"),
		"the edge's refusal");
	assert_int_equal(th_count(&cloud.h, "up"), 0);
	th_node_stop(&edge);
	th_node_stop(&cloud);
	th_fini(&edge.h);
	th_fini(&cloud.h);
}

/* ---- a raw client ----------------------------------------------------- */

static void expect(nng_socket s, enum sync_type t, int code, const char *want)
{
	int got = raw_ask(s, t);

	if (got != code || (want && !strstr(rp.message, want)))
		fail_msg("%s: got %s '%s', wanted %s '%s'", sync_type_name(t),
			 got < 0 ? "no reply" : sync_code_name(got), rp.message,
			 sync_code_name(code), want ? want : "");
}

static void hello(nng_socket s)
{
	raw_req(SYNC_T_HELLO, 4);
	es_cbor_enc_kv_text(&E, "device", "edge-w");
	es_cbor_enc_kv_text(&E, "role", "edge");
	es_cbor_enc_kv_uint(&E, "hlc", 1);
	es_cbor_enc_kv_bytes(&E, "token", TOKEN, strlen(TOKEN));
	expect(s, SYNC_T_HELLO, SYNC_C_NONE, NULL);
}

#define NO_CLOCKS    ((size_t)-1) /* begin without the field "clocks" */
#define NO_TOTAL     UINT64_MAX	  /* ... without "clocks_total" */
#define TOMBS_ABSENT ((size_t)-1)

/*
 * The begin of seg in E: ntombs tombstones (TOMBS_ABSENT: none of the
 * tombstone fields), the n runs at k (NO_CLOCKS: no field), and
 * clocks_total (NO_TOTAL: no field).
 */
static void begin_req(const struct es_sync_segment *seg, size_t ntombs,
		      const struct es_clock_run *k, size_t n, uint64_t total)
{
	struct es_sync_collection c = {.dim = seg->dim, .metric = 0};
	struct es_sync_tombstone *t = NULL;

	snprintf(c.name, sizeof(c.name), "w");
	raw_req(SYNC_T_BEGIN, 2 + (ntombs != TOMBS_ABSENT) * 2 +
				  (n != NO_CLOCKS) + (total != NO_TOTAL));
	es_cbor_enc_text(&E, "collection");
	sync_enc_collection(&E, &c, 0);
	es_cbor_enc_text(&E, "segment");
	sync_enc_segment(&E, seg, 0);
	if (ntombs != TOMBS_ABSENT) {
		t = calloc(ntombs + 1, sizeof(*t));
		for (size_t i = 0; i < ntombs; i++) {
			t[i].id = 7000 + i;
			t[i].hlc = 1;
			strcpy(t[i].origin, "edge-w");
		}
		es_cbor_enc_text(&E, "tombstones");
		sync_enc_tombstones(&E, t, ntombs);
		es_cbor_enc_kv_uint(&E, "tombstones_total", ntombs);
		free(t);
	}
	if (n != NO_CLOCKS) {
		es_cbor_enc_text(&E, "clocks");
		sync_enc_clocks(&E, k, n);
	}
	if (total != NO_TOTAL)
		es_cbor_enc_kv_uint(&E, "clocks_total", total);
}

static void segref(enum sync_type t, size_t extra,
		   const struct es_sync_segment *seg)
{
	raw_req(t, 3 + extra);
	es_cbor_enc_kv_text(&E, "collection", "w");
	es_cbor_enc_kv_text(&E, "origin", seg->origin);
	es_cbor_enc_kv_uint(&E, "origin_seq", seg->origin_seq);
}

/* more_clocks of seg: the n runs at k, said to start at first. */
static void more_req(const struct es_sync_segment *seg, uint64_t first,
		     const struct es_clock_run *k, size_t n)
{
	segref(SYNC_T_MORE_CLOCKS, 2, seg);
	es_cbor_enc_kv_uint(&E, "first", first);
	es_cbor_enc_text(&E, "clocks");
	sync_enc_clocks(&E, k, n);
}

/* Every chunk of seg's file, in order, then commit: installed. */
static void send_and_commit(nng_socket s, const struct th_seg *seg)
{
	size_t len;
	unsigned char *file = raw_read_file(seg->path, &len);

	for (uint64_t off = 0; off < len; off += CH) {
		size_t n = len - off < CH ? len - off : CH;

		segref(SYNC_T_CHUNK, 3, &seg->s);
		es_cbor_enc_kv_uint(&E, "offset", off);
		es_cbor_enc_kv_bytes(&E, "data", file + off, n);
		es_cbor_enc_kv_uint(&E, "crc", es_crc32c(0, file + off, n));
		expect(s, SYNC_T_CHUNK, SYNC_C_NONE, NULL);
	}
	segref(SYNC_T_COMMIT, 0, &seg->s);
	expect(s, SYNC_T_COMMIT, SYNC_C_NONE, NULL);
	assert_int_equal(rp.state, SYNC_S_INSTALLED);
	free(file);
}

/*
 * A segment of rows needs its runs: a begin without them is refused.
 * Runs without clocks_total are all there are.
 */
static void test_clocks_absent(void **state)
{
	struct th_node cloud, scratch;
	struct es_clock_run two[2];
	struct th_seg a, b;
	nng_socket s;

	cloud_init(&cloud, "a-cloud");
	assert_int_equal(th_node_start(&cloud), 0);
	raw_scratch_init(&scratch, root, "a-scratch");
	th_add_segment(&scratch.h, "w", 100, 31, 0, NULL, 0);
	th_add_segment(&scratch.h, "w", 100, 32, 0, NULL, 0);
	assert_int_equal(th_segment(&scratch.h, "w", 0, &a), 0);
	assert_int_equal(th_segment(&scratch.h, "w", 1, &b), 0);

	s = raw_open(cloud.url, 10000);
	hello(s);
	begin_req(&a.s, TOMBS_ABSENT, NULL, NO_CLOCKS, NO_TOTAL);
	expect(s, SYNC_T_BEGIN, SYNC_C_INVALID,
	       "no clock runs for a segment of 100 rows");
	assert_int_equal(th_files(cloud.staging, ".part", NULL), 0);

	two[0].row = 0;
	two[0].hlc = b.s.seal_hlc - 10;
	two[1].row = 40;
	two[1].hlc = b.s.seal_hlc;
	begin_req(&b.s, 0, two, 2, NO_TOTAL);
	expect(s, SYNC_T_BEGIN, SYNC_C_NONE, NULL);
	send_and_commit(s, &b);
	runs_are(&cloud.h, "w", "edge-w", b.s.origin_seq, two, 2);
	assert_int_equal(cloud.h.bad_clocks, 0);
	nng_close(s);
	raw_done(&cloud, &scratch);
}

/* A begin whose runs or total break the rules: refused, saying how. */
static void test_clocks_hostile_begin(void **state)
{
	struct th_node cloud, scratch;
	struct es_sync_segment big, empty;
	struct es_clock_run k[4], *many;
	struct th_seg seg;
	uint64_t h;
	nng_socket s;

	cloud_init(&cloud, "hb-cloud");
	assert_int_equal(th_node_start(&cloud), 0);
	raw_scratch_init(&scratch, root, "hb-scratch");
	th_add_segment(&scratch.h, "w", 100, 41, 0, NULL, 0);
	assert_int_equal(th_segment(&scratch.h, "w", 0, &seg), 0);
	h = seg.s.seal_hlc;
	s = raw_open(cloud.url, 10000);
	hello(s);

	k[0] = (struct es_clock_run){3, h};
	begin_req(&seg.s, 0, k, 1, 1);
	expect(s, SYNC_T_BEGIN, SYNC_C_INVALID,
	       "clock run 0 starts at row 3; the first run starts at row 0");
	/* clocks not rising, the last not the segment's, one at it early */
	k[0] = (struct es_clock_run){0, h - 1};
	k[1] = (struct es_clock_run){5, h - 1};
	k[2] = (struct es_clock_run){99, h};
	begin_req(&seg.s, 0, k, 3, 3);
	expect(s, SYNC_T_BEGIN, SYNC_C_INVALID, "clock run 1 has hlc");
	assert_non_null(strstr(rp.message, "not above run 0's"));
	k[1] = (struct es_clock_run){5, h - 1};
	k[0] = (struct es_clock_run){0, h - 2};
	begin_req(&seg.s, 0, k, 2, 2);
	expect(s, SYNC_T_BEGIN, SYNC_C_INVALID, "the last clock run has hlc");
	assert_non_null(strstr(rp.message, "not the segment's seal_hlc"));
	k[1] = (struct es_clock_run){5, h};
	begin_req(&seg.s, 0, k, 3, 3);
	expect(s, SYNC_T_BEGIN, SYNC_C_INVALID, "clock run 1 has hlc");
	assert_non_null(strstr(rp.message, "which only the last run has"));
	k[1] = (struct es_clock_run){5, h - 1};
	k[2] = (struct es_clock_run){5, h};
	begin_req(&seg.s, 0, k, 3, 3);
	expect(s, SYNC_T_BEGIN, SYNC_C_INVALID,
	       "clock run 2 starts at row 5, not after run 1's row 5");
	k[2] = (struct es_clock_run){4, h};
	begin_req(&seg.s, 0, k, 3, 3);
	expect(s, SYNC_T_BEGIN, SYNC_C_INVALID, "not after run 1's row 5");
	k[2] = (struct es_clock_run){100, h};
	begin_req(&seg.s, 0, k, 3, 3);
	expect(s, SYNC_T_BEGIN, SYNC_C_INVALID,
	       "clock run 2 starts at row 100, beyond the segment's 100 rows");
	k[2] = (struct es_clock_run){99, h + 1};
	begin_req(&seg.s, 0, k, 3, 3);
	expect(s, SYNC_T_BEGIN, SYNC_C_INVALID, "clock run 2 has hlc");
	assert_non_null(strstr(rp.message, "above the segment's seal_hlc"));
	k[2] = (struct es_clock_run){99, 1ull << 63};
	begin_req(&seg.s, 0, k, 3, 3);
	expect(s, SYNC_T_BEGIN, SYNC_C_INVALID, "2^63");
	begin_req(&seg.s, 0, k, 2, 101);
	expect(s, SYNC_T_BEGIN, SYNC_C_INVALID,
	       "101 clock runs for a segment of 100 rows: at most one per row");
	begin_req(&seg.s, 0, NULL, NO_CLOCKS, 0);
	expect(s, SYNC_T_BEGIN, SYNC_C_INVALID,
	       "no clock runs for a segment of 100 rows");
	begin_req(&seg.s, 0, k, 2, 1);
	expect(s, SYNC_T_BEGIN, SYNC_C_INVALID,
	       "clocks_total 1 is below the 2 clock runs sent");
	/* 2^21 rows (not staged: refused as it is parsed) */
	big = seg.s;
	big.count = 1ull << 21;
	assert_int_equal(es_ndvs_file_size(8, big.count, &big.size), 0);
	begin_req(&big, 0, k, 2, (1u << 20) + 1);
	expect(s, SYNC_T_BEGIN, SYNC_C_INVALID,
	       "1048577 clock runs: a segment has at most 1048576");
	empty = seg.s;
	empty.count = 0;
	assert_int_equal(es_ndvs_file_size(8, 0, &empty.size), 0);
	begin_req(&empty, 0, k, 1, 1);
	expect(s, SYNC_T_BEGIN, SYNC_C_INVALID,
	       "1 clock runs for a segment of 0 rows, which has none");
	/* the shape of a run, and the most a message carries */
	raw_req(SYNC_T_BEGIN, 3);
	es_cbor_enc_text(&E, "collection");
	sync_enc_collection(
	    &E, &(struct es_sync_collection){.name = "w", .dim = 8}, 0);
	es_cbor_enc_text(&E, "segment");
	sync_enc_segment(&E, &seg.s, 0);
	es_cbor_enc_text(&E, "clocks");
	es_cbor_enc_array(&E, 1);
	es_cbor_enc_array(&E, 1);
	es_cbor_enc_uint(&E, 0);
	expect(s, SYNC_T_BEGIN, SYNC_C_MALFORMED, "array of 2 items");
	many = calloc(SYNC_CLOCKS_PER_MSG + 1, sizeof(*many));
	for (size_t i = 0; i <= SYNC_CLOCKS_PER_MSG; i++)
		many[i].row = i;
	begin_req(&big, 0, many, SYNC_CLOCKS_PER_MSG + 1, NO_TOTAL);
	expect(s, SYNC_T_BEGIN, SYNC_C_INVALID,
	       "more than 2048 clock runs in one message");
	free(many);

	/* Nothing was staged for any of them; a good begin still goes. */
	assert_int_equal(th_files(cloud.staging, ".part", NULL), 0);
	k[2] = (struct es_clock_run){99, h};
	begin_req(&seg.s, 0, k, 3, 3);
	expect(s, SYNC_T_BEGIN, SYNC_C_NONE, NULL);
	send_and_commit(s, &seg);
	runs_are(&cloud.h, "w", "edge-w", seg.s.origin_seq, k, 3);
	nng_close(s);
	raw_done(&cloud, &scratch);
}

/* The pages after begin: out of place, out of order or past the total,
 * refused, and nothing kept of them; a commit waits for every run. */
static void test_clocks_hostile_pages(void **state)
{
	struct th_node cloud, scratch;
	struct es_clock_run *k, *past, bad;
	struct th_seg seg;
	nng_socket s;

	cloud_init(&cloud, "hp-cloud");
	assert_int_equal(th_node_start(&cloud), 0);
	raw_scratch_init(&scratch, root, "hp-scratch");
	th_add_segment(&scratch.h, "w", 6000, 51, 0, NULL, 0);
	assert_int_equal(th_segment(&scratch.h, "w", 0, &seg), 0);
	k = runs(5000, 6000, seg.s.seal_hlc);
	s = raw_open(cloud.url, 10000);
	hello(s);

	begin_req(&seg.s, 0, k, 2048, 5000);
	expect(s, SYNC_T_BEGIN, SYNC_C_NONE, NULL);
	segref(SYNC_T_COMMIT, 0, &seg.s);
	expect(s, SYNC_T_COMMIT, SYNC_C_STATE,
	       "2048 of 5000 clock runs received: send the rest");
	/* not where the receiver is: it says where */
	more_req(&seg.s, 100, k + 100, 10);
	expect(s, SYNC_T_MORE_CLOCKS, SYNC_C_OFFSET,
	       "clock runs from 100 sent; 2048 are here");
	assert_true(rp.has_offset);
	assert_int_equal(rp.offset, 2048);
	more_req(&seg.s, 4096, k + 4096, 10);
	expect(s, SYNC_T_MORE_CLOCKS, SYNC_C_OFFSET, "2048 are here");
	/* a page that does not follow the runs held */
	bad = k[2047];
	more_req(&seg.s, 2048, &bad, 1);
	expect(s, SYNC_T_MORE_CLOCKS, SYNC_C_INVALID,
	       "clock run 2048 starts at row");
	assert_non_null(strstr(rp.message, "not after run 2047's row"));
	bad.row = 6000;
	more_req(&seg.s, 2048, &bad, 1);
	expect(s, SYNC_T_MORE_CLOCKS, SYNC_C_INVALID,
	       "beyond the segment's 6000 rows");
	bad = k[2048];
	bad.hlc = seg.s.seal_hlc + 1;
	more_req(&seg.s, 2048, &bad, 1);
	expect(s, SYNC_T_MORE_CLOCKS, SYNC_C_INVALID,
	       "above the segment's seal_hlc");
	/* one page of the right ones, then more than announced */
	more_req(&seg.s, 2048, k + 2048, 2048);
	expect(s, SYNC_T_MORE_CLOCKS, SYNC_C_NONE, NULL);
	assert_int_equal(rp.offset, 4096);
	/* in order and within the rows, but one past the total */
	past = calloc(905, sizeof(*past));
	memcpy(past, k + 4096, 904 * sizeof(*past));
	past[904].row = 5999;
	past[904].hlc = seg.s.seal_hlc;
	more_req(&seg.s, 4096, past, 905);
	free(past);
	expect(s, SYNC_T_MORE_CLOCKS, SYNC_C_INVALID,
	       "more clock runs than the 5000 announced");
	segref(SYNC_T_COMMIT, 0, &seg.s);
	expect(s, SYNC_T_COMMIT, SYNC_C_STATE, "4096 of 5000 clock runs");
	more_req(&seg.s, 4096, k + 4096, 904);
	expect(s, SYNC_T_MORE_CLOCKS, SYNC_C_NONE, NULL);
	assert_int_equal(rp.offset, 5000);
	send_and_commit(s, &seg);
	runs_are(&cloud.h, "w", "edge-w", seg.s.origin_seq, k, 5000);
	/* more_clocks with no upload open */
	more_req(&seg.s, 5000, k, 1);
	expect(s, SYNC_T_MORE_CLOCKS, SYNC_C_STATE, "send begin");
	nng_close(s);
	free(k);
	raw_done(&cloud, &scratch);
}

/*
 * The runs of uploads in progress are bounded over every connection: a
 * begin past the bound is refused (try later) and keeps nothing, its
 * tombstones given back at once; those of an upload that ends count no
 * more.
 */
static void test_clocks_bounded(void **state)
{
	struct th_node cloud, scratch;
	struct es_clock_run *k[3], *k500[3];
	struct th_seg seg[3];
	nng_socket s1, s2, s3;

	cloud_init(&cloud, "b-cloud");
	assert_int_equal(th_node_start(&cloud), 0);
	raw_scratch_init(&scratch, root, "b-scratch");
	for (size_t i = 0; i < 3; i++) {
		th_add_segment(&scratch.h, "w", 2000, 61 + (uint32_t)i, 0, NULL,
			       0);
		assert_int_equal(th_segment(&scratch.h, "w", i, &seg[i]), 0);
		k[i] = runs(2000, 2000, seg[i].s.seal_hlc);
		k500[i] = runs(500, 2000, seg[i].s.seal_hlc);
	}
	sync_test_hooks.clocks_max = 3000;
	sync_test_hooks.tombs_max = 100;

	s1 = raw_open(cloud.url, 10000);
	s2 = raw_open(cloud.url, 10000);
	s3 = raw_open(cloud.url, 10000);
	hello(s1);
	hello(s2);
	hello(s3);
	begin_req(&seg[0].s, 0, k[0], 2000, 2000);
	expect(s1, SYNC_T_BEGIN, SYNC_C_NONE, NULL);
	begin_req(&seg[1].s, 100, k[1], 2000, 2000);
	expect(s2, SYNC_T_BEGIN, SYNC_C_INTERNAL,
	       "the cloud holds the most clock runs of uploads in progress "
	       "it keeps (3000): try later");
	assert_int_equal(th_files(cloud.staging, ".part", NULL), 1);
	/* s2's 100 tombstones went with its refusal */
	begin_req(&seg[2].s, 100, k500[2], 500, 500);
	expect(s3, SYNC_T_BEGIN, SYNC_C_NONE, NULL);
	/* s1 begins again with fewer: its earlier runs count no more */
	begin_req(&seg[0].s, 0, k500[0], 500, 500);
	expect(s1, SYNC_T_BEGIN, SYNC_C_NONE, NULL);
	begin_req(&seg[1].s, 0, k[1], 2000, 2000);
	expect(s2, SYNC_T_BEGIN, SYNC_C_NONE, NULL);
	nng_close(s1);
	nng_close(s2);
	nng_close(s3);
	sync_test_hooks.clocks_max = 0;
	sync_test_hooks.tombs_max = 0;
	for (size_t i = 0; i < 3; i++) {
		free(k[i]);
		free(k500[i]);
	}
	raw_done(&cloud, &scratch);
}

/*
 * The bound counts what a begin announces: an upload let in can always
 * take the rest of its pages, so uploads that each got a page in cannot
 * hold each other up for good; what an upload reserved comes back when
 * it commits and when its connection closes.
 */
static void test_clocks_admitted_finish(void **state)
{
	struct th_node cloud, scratch;
	struct es_clock_run *k[3];
	struct th_seg seg[3];
	nng_socket s[3];
	int code = -1;

	cloud_init(&cloud, "af-cloud");
	assert_int_equal(th_node_start(&cloud), 0);
	raw_scratch_init(&scratch, root, "af-scratch");
	for (size_t i = 0; i < 3; i++) {
		th_add_segment(&scratch.h, "w", 6000, 71 + (uint32_t)i, 0, NULL,
			       0);
		assert_int_equal(th_segment(&scratch.h, "w", i, &seg[i]), 0);
		k[i] = runs(5000, 6000, seg[i].s.seal_hlc);
		s[i] = raw_open(cloud.url, 10000);
		hello(s[i]);
	}
	sync_test_hooks.clocks_max = 9000; /* one upload of 5000, not two */
	begin_req(&seg[0].s, 0, k[0], 2048, 5000);
	expect(s[0], SYNC_T_BEGIN, SYNC_C_NONE, NULL);
	begin_req(&seg[1].s, 0, k[1], 2048, 5000);
	expect(s[1], SYNC_T_BEGIN, SYNC_C_INTERNAL, "try later");
	for (size_t i = 2048; i < 5000; i += 2048) {
		more_req(&seg[0].s, i, k[0] + i,
			 i + 2048 < 5000 ? 2048 : 5000 - i);
		expect(s[0], SYNC_T_MORE_CLOCKS, SYNC_C_NONE, NULL);
	}
	send_and_commit(s[0], &seg[0]);
	runs_are(&cloud.h, "w", "edge-w", seg[0].s.origin_seq, k[0], 5000);
	/* the commit gave its 5000 back; the closed connection does too */
	begin_req(&seg[1].s, 0, k[1], 2048, 5000);
	expect(s[1], SYNC_T_BEGIN, SYNC_C_NONE, NULL);
	begin_req(&seg[2].s, 0, k[2], 2048, 5000);
	expect(s[2], SYNC_T_BEGIN, SYNC_C_INTERNAL, "try later");
	nng_close(s[1]);
	for (int i = 0; i < 500 && code != SYNC_C_NONE; i++) {
		usleep(20000);
		begin_req(&seg[2].s, 0, k[2], 2048, 5000);
		code = raw_ask(s[2], SYNC_T_BEGIN);
	}
	assert_int_equal(code, SYNC_C_NONE);
	sync_test_hooks.clocks_max = 0;
	nng_close(s[0]);
	nng_close(s[2]);
	for (size_t i = 0; i < 3; i++)
		free(k[i]);
	raw_done(&cloud, &scratch);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_clocks_up_down),
	    cmocka_unit_test(test_clocks_host_invalid),
	    cmocka_unit_test(test_clocks_absent),
	    cmocka_unit_test(test_clocks_hostile_begin),
	    cmocka_unit_test(test_clocks_hostile_pages),
	    cmocka_unit_test(test_clocks_bounded),
	    cmocka_unit_test(test_clocks_admitted_finish),
	};

	return TH_RUN(tests, root, "clocks");
}
