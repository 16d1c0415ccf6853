/*
 * The staging directory (sync/staging.h): keys are hex, never names from
 * the peer; the .part's length is the durable offset; appends at any
 * other offset are refused with the length; a .meta that differs starts
 * the transfer over; the whole-file check accepts the real segment only;
 * the sweep removes old, orphaned, unreadable and installed transfers and
 * keeps the rest.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "edgesync/crc32c.h"
#include "edgesync/ndvs.h"
#include "staging.h"
#include "sync_impl.h"
#include "sync_test.h"

/* The bytes of one append in the tests of whole transfers. */
#define PIECE 8192u

static char root[300];

static void make_dir(char *buf, size_t size, const char *name)
{
	snprintf(buf, size, "%s/%s", root, name);
}

/* A fresh staging in root/name with m's transfer opened in it (key) and
 * a writer at its staged length. */
static void stage_fresh(struct sync_staging *st, const char *name,
			const struct sync_stage_meta *m, char *key,
			struct sync_stage_writer *w)
{
	char dir[400];
	uint64_t off;

	make_dir(dir, sizeof(dir), name);
	assert_int_equal(sync_staging_init(st, dir), 0);
	sync_staging_key(m->coll, m->origin, m->origin_seq, key);
	assert_int_equal(sync_staging_open(st, key, m, &off), 0);
	sync_stage_writer_init(w, off);
}

/* The end of a test that began with stage_fresh: its files, the writer,
 * the staging and the segment go. */
static void stage_done(struct sync_staging *st, const char *key,
		       struct sync_stage_writer *w, unsigned char *seg)
{
	sync_stage_writer_fini(w);
	sync_staging_remove(st, key);
	sync_staging_fini(st);
	free(seg);
}

/* Appends the piece of seg at off (up to PIECE bytes, with its CRC32C
 * if summed, else for the writer to compute), which must succeed; its
 * length. */
static size_t append_piece(struct sync_staging *st, const char *key,
			   struct sync_stage_writer *w,
			   const struct sync_stage_meta *m,
			   const unsigned char *seg, uint64_t off, int summed,
			   uint64_t *now)
{
	size_t n = m->size - off < PIECE ? (size_t)(m->size - off) : PIECE;
	uint32_t crc = es_crc32c(0, seg + off, n);

	assert_int_equal(sync_staging_append(st, key, w, off, seg + off, n,
					     summed ? &crc : NULL, now),
			 0);
	return n;
}

/* An NDVS segment in memory (written to disk and read back). */
static unsigned char *segment(uint32_t dim, uint64_t count,
			      struct sync_stage_meta *m, const char *coll)
{
	struct es_ndvs_info info;
	float *v = calloc(count * dim, sizeof(float));
	uint64_t *ids = calloc(count, sizeof(uint64_t));
	unsigned char *buf;
	char path[400];
	FILE *f;

	for (uint64_t i = 0; i < count * dim; i++)
		v[i] = (float)i * 0.5f;
	for (uint64_t i = 0; i < count; i++)
		ids[i] = 1000 + i;
	snprintf(path, sizeof(path), "%s/src.ndvs", root);
	assert_int_equal(es_ndvs_write(path, dim, count, v, ids, &info), 0);
	buf = malloc(info.file_size);
	f = fopen(path, "rb");
	assert_int_equal(fread(buf, 1, info.file_size, f), info.file_size);
	fclose(f);
	unlink(path);
	free(v);
	free(ids);
	memset(m, 0, sizeof(*m));
	snprintf(m->coll, sizeof(m->coll), "%s", coll);
	snprintf(m->origin, sizeof(m->origin), "edge-1");
	m->origin_seq = 7;
	m->seal_hlc = 1ull << 40;
	m->count = count;
	m->size = info.file_size;
	m->dim = dim;
	m->checksum = info.checksum;
	return buf;
}

static void test_key(void **state)
{
	char a[SYNC_KEY_LEN + 1], b[SYNC_KEY_LEN + 1];

	sync_staging_key("../../etc/passwd", "x/y", 1, a);
	assert_int_equal(strlen(a), SYNC_KEY_LEN);
	assert_int_equal(strspn(a, "0123456789abcdef"), SYNC_KEY_LEN);
	sync_staging_key("../../etc/passwd", "x/y", 2, b);
	assert_string_not_equal(a, b);
	/* The fields are delimited: ("ab", "c") is not ("a", "bc"). */
	sync_staging_key("ab", "c", 1, a);
	sync_staging_key("a", "bc", 1, b);
	assert_string_not_equal(a, b);
}

/* An index is staged under a key of its own that shares its segment's
 * lock, and is checked for its size and whole-file CRC32C only. */
static void test_index(void **state)
{
	char dir[400], k[SYNC_KEY_LEN + 1], ik[SYNC_KEY_LEN + 1], why[200];
	struct es_sync_segment seg = {.origin = "dev", .origin_seq = 7};
	struct sync_staging st;
	struct sync_stage_meta m;
	unsigned char data[5000];
	struct sync_stage_writer w;
	uint64_t off = 1, now;

	sync_staging_key("c", "dev", 7, k);
	sync_staging_index_key("c", "dev", 7, ik);
	assert_int_equal(strspn(ik, "0123456789abcdef"), SYNC_KEY_LEN);
	assert_string_not_equal(k, ik);
	assert_int_equal(memcmp(k, ik, 2), 0);
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (unsigned char)(i * 7);
	seg.index_size = sizeof(data);
	seg.index_checksum = es_crc32c(0, data, sizeof(data));
	sync_stage_meta_index(&m, "c", &seg);
	assert_int_equal(m.size, sizeof(data));
	make_dir(dir, sizeof(dir), "index");
	assert_int_equal(sync_staging_init(&st, dir), 0);
	assert_ptr_equal(sync_staging_lock(&st, k), sync_staging_lock(&st, ik));
	assert_int_equal(sync_staging_open(&st, ik, &m, &off), 0);
	assert_int_equal(off, 0);
	sync_stage_writer_init(&w, off);
	assert_int_equal(
	    sync_staging_append(&st, ik, &w, 0, data, 4000, NULL, &now), 0);
	assert_int_equal(
	    sync_staging_check_crc(&st, ik, &m, NULL, why, sizeof(why)),
	    ES_E_SYNC_CHECKSUM);
	assert_non_null(strstr(why, "staged 4000 bytes"));
	data[4500] ^= 1;
	assert_int_equal(sync_staging_append(&st, ik, &w, 4000, data + 4000,
					     1000, NULL, &now),
			 0);
	/* Damaged: caught by the running sum, and by reading. */
	assert_int_equal(
	    sync_staging_check_crc(&st, ik, &m, &w, why, sizeof(why)),
	    ES_E_SYNC_CHECKSUM);
	assert_int_equal(
	    sync_staging_check_crc(&st, ik, &m, NULL, why, sizeof(why)),
	    ES_E_SYNC_CHECKSUM);
	assert_non_null(strstr(why, "CRC32C"));
	sync_staging_remove(&st, ik);
	data[4500] ^= 1;
	assert_int_equal(sync_staging_open(&st, ik, &m, &off), 0);
	assert_int_equal(off, 0);
	sync_stage_writer_fini(&w);
	sync_stage_writer_init(&w, off);
	assert_int_equal(
	    sync_staging_append(&st, ik, &w, 0, data, 5000, NULL, &now), 0);
	assert_int_equal(
	    sync_staging_check_crc(&st, ik, &m, &w, why, sizeof(why)), 0);
	assert_int_equal(
	    sync_staging_check_crc(&st, ik, &m, NULL, why, sizeof(why)), 0);
	sync_stage_writer_fini(&w);
	sync_staging_remove(&st, ik);
	sync_staging_fini(&st);
}

/*
 * A transfer never takes the last of the disk: one whose blocks would
 * leave less than keep_free is refused at its start (-ENOSPC, nothing
 * staged); an unfinished one gives back what it reserved past its bytes;
 * resumed, it needs room for the rest only, and reserves it again, or is
 * refused with its bytes kept.
 */
static void test_room(void **state)
{
	struct sync_staging st;
	struct sync_stage_meta m;
	struct sync_stage_writer w;
	char dir[400], key[SYNC_KEY_LEN + 1], part[500];
	static unsigned char buf[PIECE];
	struct stat sb;
	uint64_t off, now, keep;

	make_dir(dir, sizeof(dir), "room");
	assert_int_equal(sync_staging_init(&st, dir), 0);
	keep = sync_staging_keep_free(&st);
	assert_true(keep > 0 && keep <= SYNC_STAGING_KEEP_MAX);
	memset(&m, 0, sizeof(m));
	strcpy(m.coll, "c");
	strcpy(m.origin, "edge-1");
	m.origin_seq = 9;
	m.size = 16u << 20;
	sync_staging_key(m.coll, m.origin, m.origin_seq, key);
	snprintf(part, sizeof(part), "%s/%s.part", dir, key);

	sync_test_hooks.staging_avail = keep + (8u << 20);
	assert_int_equal(sync_staging_open(&st, key, &m, &off), -ENOSPC);
	assert_int_equal(access(part, F_OK), -1);
	sync_test_hooks.staging_avail = keep + m.size;
	assert_int_equal(sync_staging_open(&st, key, &m, &off), 0);
	assert_int_equal(stat(part, &sb), 0);
	assert_true((uint64_t)sb.st_blocks * 512 >= m.size);
	sync_stage_writer_init(&w, off);
	assert_int_equal(
	    sync_staging_append(&st, key, &w, 0, buf, PIECE, NULL, &now), 0);

	sync_staging_release(&st, key, &w);
	assert_int_equal(stat(part, &sb), 0);
	assert_int_equal(sb.st_size, PIECE);
	assert_true((uint64_t)sb.st_blocks * 512 < (1u << 20));

	sync_test_hooks.staging_avail = keep + m.size - PIECE;
	assert_int_equal(sync_staging_open(&st, key, &m, &off), 0);
	assert_int_equal(off, PIECE);
	assert_int_equal(stat(part, &sb), 0);
	assert_true((uint64_t)sb.st_blocks * 512 >= m.size);
	sync_staging_release(&st, key, &w);
	sync_test_hooks.staging_avail = keep + (1u << 20);
	assert_int_equal(sync_staging_open(&st, key, &m, &off), -ENOSPC);
	assert_int_equal(stat(part, &sb), 0);
	assert_int_equal(sb.st_size, PIECE);

	sync_test_hooks.staging_avail = 0;
	sync_stage_writer_fini(&w);
	sync_staging_remove(&st, key);
	sync_staging_fini(&st);
}

static void test_resume_and_check(void **state)
{
	struct sync_staging st;
	struct sync_stage_meta m, other;
	char dir[400], key[SYNC_KEY_LEN + 1], why[200], *path;
	unsigned char *seg = segment(8, 100, &m, "c");
	uint64_t off = 99, now = 0;
	struct sync_stage_writer w;

	make_dir(dir, sizeof(dir), "st1");
	sync_stage_writer_init(&w, 0);
	assert_int_equal(sync_staging_init(&st, dir), 0);
	sync_staging_key(m.coll, m.origin, m.origin_seq, key);
	assert_int_equal(
	    sync_staging_append(&st, key, &w, 0, seg, 10, NULL, &now), -ENOENT);
	assert_int_equal(sync_staging_open(&st, key, &m, &off), 0);
	assert_int_equal(off, 0);
	assert_int_equal(
	    sync_staging_append(&st, key, &w, 0, seg, 1000, NULL, &now), 0);
	assert_int_equal(now, 1000);
	/* Not at the durable offset: refused, told where it is. */
	assert_int_equal(
	    sync_staging_append(&st, key, &w, 500, seg, 10, NULL, &now),
	    SYNC_E_OFFSET);
	assert_int_equal(now, 1000);
	assert_int_equal(
	    sync_staging_append(&st, key, &w, 2000, seg, 10, NULL, &now),
	    SYNC_E_OFFSET);
	/* A new start (a restart of either side) resumes at the length. */
	sync_staging_fini(&st);
	assert_int_equal(sync_staging_init(&st, dir), 0);
	assert_int_equal(sync_staging_open(&st, key, &m, &off), 0);
	assert_int_equal(off, 1000);
	/* A writer for the resumed transfer has no sum of the first 1000
	 * bytes: the check reads the file. */
	sync_stage_writer_fini(&w);
	sync_stage_writer_init(&w, off);
	/* Incomplete: the check says so and leaves the file. */
	assert_int_equal(sync_staging_check(&st, key, &m, &w, why, sizeof(why)),
			 ES_E_SYNC_CHECKSUM);
	assert_non_null(strstr(why, "staged 1000 bytes"));
	assert_int_equal(sync_staging_append(&st, key, &w, 1000, seg + 1000,
					     m.size - 1000, NULL, &now),
			 0);
	assert_int_equal(sync_staging_check(&st, key, &m, &w, why, sizeof(why)),
			 0);
	/* The same bytes announced as another segment: refused. */
	other = m;
	other.count = 99;
	es_ndvs_file_size(8, 99, &other.size);
	other.size = m.size;
	assert_int_equal(
	    sync_staging_check(&st, key, &other, &w, why, sizeof(why)),
	    ES_E_SYNC_CHECKSUM);
	assert_non_null(strstr(why, "not the one announced"));
	assert_int_equal(sync_staging_path(&st, key, &path), 0);
	assert_non_null(strstr(path, key));
	free(path);
	/* Metadata that differs (another checksum): start over at 0. */
	other = m;
	other.checksum ^= 1;
	assert_int_equal(sync_staging_open(&st, key, &other, &off), 0);
	assert_int_equal(off, 0);
	sync_staging_remove(&st, key);
	sync_staging_fini(&st);
	sync_stage_writer_fini(&w);
	free(seg);
}

/*
 * A writer keeps its .part open between appends; once that file is no
 * longer the one at the path (removed by a sweep, or installed: linked
 * into the store, then removed), an append must not land in it: it is
 * refused while nothing is staged, and goes to the new .part once there
 * is one.
 */
static void test_writer_after_remove(void **state)
{
	struct sync_staging st;
	struct sync_stage_meta m;
	struct sync_stage_writer w;
	char key[SYNC_KEY_LEN + 1], *path, installed[600];
	unsigned char *seg = segment(8, 1000, &m, "c");
	uint64_t off = 0, now = 0;
	struct stat sb;

	(void)state;
	stage_fresh(&st, "st-removed", &m, key, &w);
	append_piece(&st, key, &w, &m, seg, 0, 0, &now);
	assert_true(w.has_fd);
	assert_int_equal(sync_staging_path(&st, key, &path), 0);
	snprintf(installed, sizeof(installed), "%s.installed", path);
	assert_int_equal(link(path, installed), 0);
	sync_staging_remove(&st, key);
	assert_int_equal(
	    sync_staging_append(&st, key, &w, now, seg + now, 10, NULL, &now),
	    -ENOENT);
	assert_int_equal(sync_staging_open(&st, key, &m, &off), 0);
	assert_int_equal(off, 0);
	assert_int_equal(append_piece(&st, key, &w, &m, seg, 0, 0, &now),
			 PIECE);
	assert_int_equal(append_piece(&st, key, &w, &m, seg, now, 0, &now),
			 PIECE);
	assert_int_equal(stat(path, &sb), 0);
	assert_int_equal(sb.st_size, 2 * PIECE);
	assert_int_equal(stat(installed, &sb), 0); /* untouched */
	assert_int_equal(sb.st_size, PIECE);
	unlink(installed);
	free(path);
	stage_done(&st, key, &w, seg);
	sync_stage_writer_fini(&w); /* twice: nothing left to close */
}

/*
 * A fresh transfer in chunks: checked from the running sum, which must
 * cover every byte; the same bytes checked without a writer read the
 * file.
 */
static void test_summed(void **state)
{
	struct sync_staging st;
	struct sync_stage_meta m;
	struct sync_stage_writer w;
	char key[SYNC_KEY_LEN + 1], why[200];
	unsigned char *seg = segment(8, 1000, &m, "s");
	uint64_t off, now = 0;
	size_t n;

	stage_fresh(&st, "st5", &m, key, &w);
	for (off = 0; off < m.size; off += n) {
		n = append_piece(&st, key, &w, &m, seg, off, 1, &now);
		assert_int_equal(now, off + n);
	}
	assert_int_equal(w.summed, 1);
	assert_int_equal(w.crc_len, m.size);
	assert_int_equal(sync_staging_check(&st, key, &m, &w, why, sizeof(why)),
			 0);
	assert_int_equal(
	    sync_staging_check(&st, key, &m, NULL, why, sizeof(why)), 0);
	stage_done(&st, key, &w, seg);
}

/*
 * Streaming: each append starts its own writeback and finishes the one
 * before it (flushed follows the appends, one behind), an append at the
 * wrong offset is refused with the length and changes nothing, and the
 * file comes out whole.
 */
static void test_streamed(void **state)
{
	struct sync_staging st;
	struct sync_stage_meta m;
	struct sync_stage_writer w;
	char key[SYNC_KEY_LEN + 1], why[200];
	unsigned char *seg = segment(8, 1000, &m, "a");
	uint64_t off, now = 0;
	size_t n;

	stage_fresh(&st, "st6", &m, key, &w);
	assert_int_equal(w.flushed, 0);
	for (off = 0; off < m.size; off += n) {
		n = append_piece(&st, key, &w, &m, seg, off, 1, &now);
		assert_int_equal(now, off + n);
		assert_int_equal(w.flushed, off);
		assert_int_equal(
		    sync_staging_append(&st, key, &w, 0, seg, n, NULL, &now),
		    SYNC_E_OFFSET);
		assert_int_equal(now, off + n);
		assert_int_equal(w.flushed, off);
	}
	assert_int_equal(w.summed, 1);
	assert_int_equal(sync_staging_check(&st, key, &m, &w, why, sizeof(why)),
			 0);
	assert_int_equal(
	    sync_staging_check(&st, key, &m, NULL, why, sizeof(why)), 0);
	stage_done(&st, key, &w, seg);
}

/* Deferred streaming (the cloud's, after its reply): the appends leave
 * flushed alone and collect their range; sync_staging_stream streams it. */
static void test_deferred(void **state)
{
	struct sync_staging st;
	struct sync_stage_meta m;
	struct sync_stage_writer w;
	char key[SYNC_KEY_LEN + 1], why[200];
	unsigned char *seg = segment(8, 1000, &m, "d");
	uint64_t off, now = 0;
	size_t n;

	assert_true(m.size > 3 * PIECE);
	stage_fresh(&st, "st7", &m, key, &w);
	w.defer = 1;
	/* two appends pending: one range, streamed at once */
	for (off = 0; off < 2 * PIECE; off += n) {
		n = append_piece(&st, key, &w, &m, seg, off, 0, &now);
		assert_int_equal(w.flushed, 0);
		assert_int_equal(w.pend_off, 0);
		assert_int_equal(w.pend_end, off + n);
	}
	sync_staging_stream(&w);
	assert_int_equal(w.pend_end, 0);
	assert_int_equal(w.flushed, 0);
	/* then one by one: each streamed finishes the one before */
	for (; off < m.size; off += n) {
		n = append_piece(&st, key, &w, &m, seg, off, 0, &now);
		assert_int_equal(w.pend_off, off);
		assert_int_equal(w.flushed, off == 2 * PIECE ? 0 : off - PIECE);
		sync_staging_stream(&w);
		assert_int_equal(w.flushed, off);
	}
	sync_staging_stream(&w); /* nothing pending: nothing */
	assert_int_equal(w.flushed, off - n);
	assert_int_equal(sync_staging_check(&st, key, &m, &w, why, sizeof(why)),
			 0);
	stage_done(&st, key, &w, seg);
}

/*
 * A writeback that fails (a disk's EIO, reported once, to the wait):
 * the writer keeps it, and the file fails both checks at commit though
 * every byte in the page cache is right, so the transfer starts over.
 */
static void test_writeback_failed(void **state)
{
	struct sync_staging st;
	struct sync_stage_meta m;
	struct sync_stage_writer w;
	char key[SYNC_KEY_LEN + 1], why[200];
	unsigned char *seg = segment(8, 1000, &m, "w");
	uint64_t off, now = 0;
	size_t n;

	stage_fresh(&st, "st8", &m, key, &w);
	for (off = 0; off < m.size; off += n) {
		sync_test_hooks.writeback_err = off == PIECE ? -EIO : 0;
		n = append_piece(&st, key, &w, &m, seg, off, 0, &now);
		assert_int_equal(w.werr, off < PIECE ? 0 : -EIO);
	}
	sync_test_hooks.writeback_err = 0;
	assert_int_equal(w.summed, 1);
	assert_int_equal(sync_staging_check(&st, key, &m, &w, why, sizeof(why)),
			 ES_E_SYNC_CHECKSUM);
	assert_non_null(strstr(why, "writing the staged file failed"));
	assert_int_equal(
	    sync_staging_check_crc(&st, key, &m, &w, why, sizeof(why)),
	    ES_E_SYNC_CHECKSUM);
	/* the bytes themselves are whole: the error alone fails the check */
	assert_int_equal(
	    sync_staging_check(&st, key, &m, NULL, why, sizeof(why)), 0);
	/* The transfer ends unfinished: it starts over, since a later
	 * connection's fdatasync would not report this error. */
	sync_staging_release(&st, key, &w);
	assert_int_equal(sync_staging_open(&st, key, &m, &off), 0);
	assert_int_equal(off, 0);
	stage_done(&st, key, &w, seg);
}

/*
 * The check's fdatasync fails (a writeback error that no wait saw, such
 * as the last chunk's): the check fails, so the transfer starts over
 * rather than being committed again later over what the disk lost.
 */
static void test_durable_failed(void **state)
{
	struct sync_staging st;
	struct sync_stage_meta m;
	struct sync_stage_writer w;
	char key[SYNC_KEY_LEN + 1], why[200];
	unsigned char *seg = segment(8, 1000, &m, "f");
	uint64_t off, now = 0;
	size_t n;

	stage_fresh(&st, "st9", &m, key, &w);
	for (off = 0; off < m.size; off += n)
		n = append_piece(&st, key, &w, &m, seg, off, 1, &now);
	sync_test_hooks.writeback_err = -EIO;
	assert_int_equal(sync_staging_check(&st, key, &m, &w, why, sizeof(why)),
			 ES_E_SYNC_CHECKSUM);
	assert_non_null(strstr(why, "making the staged file durable failed"));
	assert_int_equal(
	    sync_staging_check_crc(&st, key, &m, &w, why, sizeof(why)),
	    ES_E_SYNC_CHECKSUM);
	sync_test_hooks.writeback_err = 0;
	assert_int_equal(sync_staging_check(&st, key, &m, &w, why, sizeof(why)),
			 0);
	stage_done(&st, key, &w, seg);
}

/* A byte damaged before it was written: caught by the running sum (the
 * bytes do not add up to the footer's CRC), and by the full read. */
static void test_damaged_file(void **state)
{
	struct sync_staging st;
	struct sync_stage_meta m;
	struct sync_stage_writer w;
	char key[SYNC_KEY_LEN + 1], why[200];
	unsigned char *seg = segment(4, 50, &m, "d");
	uint64_t now;

	stage_fresh(&st, "st2", &m, key, &w);
	seg[100] ^= 0x04;
	assert_int_equal(
	    sync_staging_append(&st, key, &w, 0, seg, m.size, NULL, &now), 0);
	assert_int_equal(sync_staging_check(&st, key, &m, &w, why, sizeof(why)),
			 ES_E_SYNC_CHECKSUM);
	assert_non_null(strstr(why, "does not match its footer"));
	assert_int_equal(
	    sync_staging_check(&st, key, &m, NULL, why, sizeof(why)),
	    ES_E_SYNC_CHECKSUM);
	assert_non_null(strstr(why, "fails its checks"));
	sync_stage_writer_fini(&w);
	sync_staging_fini(&st);
	free(seg);
}

static int installed(void *arg, const struct sync_stage_meta *m)
{
	return !strcmp(m->coll, "done");
}

static void age(const char *dir, const char *key, const char *ext)
{
	struct timeval tv[2] = {{.tv_sec = 1000000000}, {.tv_sec = 1000000000}};
	char path[600];

	snprintf(path, sizeof(path), "%s/%s%s", dir, key, ext);
	assert_int_equal(utimes(path, tv), 0);
}

static int th_files_left(const char *dir)
{
	char cmd[500];
	FILE *p;
	int n = -1;

	snprintf(cmd, sizeof(cmd), "ls -A '%s' | wc -l", dir);
	p = popen(cmd, "r");
	if (fscanf(p, "%d", &n) != 1)
		n = -1;
	pclose(p);
	return n;
}

static void test_sweep(void **state)
{
	struct sync_staging st;
	struct sync_stage_meta m[4];
	char dir[400], keys[4][SYNC_KEY_LEN + 1], path[600];
	static const char *const colls[4] = {"keep", "done", "old", "orphan"};
	uint64_t off;
	FILE *f;

	make_dir(dir, sizeof(dir), "st3");
	assert_int_equal(sync_staging_init(&st, dir), 0);
	for (int i = 0; i < 4; i++) {
		memset(&m[i], 0, sizeof(m[i]));
		snprintf(m[i].coll, sizeof(m[i].coll), "%s", colls[i]);
		snprintf(m[i].origin, sizeof(m[i].origin), "e");
		m[i].size = 1000;
		sync_staging_key(m[i].coll, "e", 0, keys[i]);
		assert_int_equal(sync_staging_open(&st, keys[i], &m[i], &off),
				 0);
	}
	age(dir, keys[2], ".meta");
	age(dir, keys[2], ".part");
	snprintf(path, sizeof(path), "%s/%s.meta", dir, keys[3]);
	unlink(path); /* a .part left without its .meta */
	/* Someone else's file in the directory is left alone. */
	snprintf(path, sizeof(path), "%s/README", dir);
	f = fopen(path, "w");
	fclose(f);
	assert_int_equal(
	    sync_staging_sweep(&st, SYNC_STAGE_MAX_AGE_S, installed, NULL), 3);
	assert_int_equal(sync_staging_open(&st, keys[0], &m[0], &off), 0);
	for (int i = 1; i < 4; i++) {
		snprintf(path, sizeof(path), "%s/%s.part", dir, keys[i]);
		assert_int_equal(access(path, F_OK), -1);
	}
	snprintf(path, sizeof(path), "%s/README", dir);
	assert_int_equal(access(path, F_OK), 0);
	/* A damaged .meta goes too. */
	snprintf(path, sizeof(path), "%s/%s.meta", dir, keys[0]);
	f = fopen(path, "r+b");
	fputc('X', f);
	fclose(f);
	assert_int_equal(
	    sync_staging_sweep(&st, SYNC_STAGE_MAX_AGE_S, NULL, NULL), 1);
	assert_int_equal(th_files_left(dir), 1); /* README */
	sync_staging_fini(&st);
}

/* A transfer whose files are dated ahead of the clock (set back since
 * they were written, or file times finer than time()'s) is not stale. */
static void test_sweep_future_mtime(void **state)
{
	struct timeval tv[2] = {{.tv_sec = time(NULL) + 3600},
				{.tv_sec = time(NULL) + 3600}};
	struct sync_staging st;
	struct sync_stage_meta m;
	char dir[400], key[SYNC_KEY_LEN + 1], path[600];
	uint64_t off;

	make_dir(dir, sizeof(dir), "st4");
	assert_int_equal(sync_staging_init(&st, dir), 0);
	memset(&m, 0, sizeof(m));
	snprintf(m.coll, sizeof(m.coll), "later");
	snprintf(m.origin, sizeof(m.origin), "e");
	m.size = 1000;
	sync_staging_key(m.coll, "e", 0, key);
	assert_int_equal(sync_staging_open(&st, key, &m, &off), 0);
	snprintf(path, sizeof(path), "%s/%s.meta", dir, key);
	assert_int_equal(utimes(path, tv), 0);
	snprintf(path, sizeof(path), "%s/%s.part", dir, key);
	assert_int_equal(utimes(path, tv), 0);
	assert_int_equal(
	    sync_staging_sweep(&st, SYNC_STAGE_MAX_AGE_S, NULL, NULL), 0);
	assert_int_equal(access(path, F_OK), 0);
	sync_staging_fini(&st);
}

static int setup(void **state)
{
	const char *t = getenv("TMPDIR");

	snprintf(root, sizeof(root), "%s/es-staging-XXXXXX",
		 t && *t ? t : "/tmp");
	return mkdtemp(root) ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[400];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
	return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_key),
	    cmocka_unit_test(test_index),
	    cmocka_unit_test(test_room),
	    cmocka_unit_test(test_resume_and_check),
	    cmocka_unit_test(test_writer_after_remove),
	    cmocka_unit_test(test_summed),
	    cmocka_unit_test(test_streamed),
	    cmocka_unit_test(test_deferred),
	    cmocka_unit_test(test_writeback_failed),
	    cmocka_unit_test(test_durable_failed),
	    cmocka_unit_test(test_damaged_file),
	    cmocka_unit_test(test_sweep),
	    cmocka_unit_test(test_sweep_future_mtime),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
