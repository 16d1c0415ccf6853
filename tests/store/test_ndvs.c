/*
 * NDVS segments: round trips in both readers, the exact byte layout, and
 * every corruption refused with its own code.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "edgesync/crc32c.h"
#include "edgesync/ndvs.h"
#include "edgesync/store_error.h"

static char dir[64];

static int setup(void **state)
{
	strcpy(dir, "/tmp/es-test-ndvs-XXXXXX");
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static char *path_of(const char *name)
{
	static char buf[128];

	snprintf(buf, sizeof(buf), "%s/%s", dir, name);
	return buf;
}

static void make_data(uint32_t dim, uint64_t n, float **vec, uint64_t **ids)
{
	*vec = malloc((n * dim + 1) * sizeof(float));
	*ids = malloc((n + 1) * sizeof(uint64_t));
	assert_non_null(*vec);
	assert_non_null(*ids);
	for (uint64_t i = 0; i < n * dim; i++)
		(*vec)[i] = (float)i * 0.25f - 3.0f;
	for (uint64_t i = 0; i < n; i++)
		(*ids)[i] = 1000000007ull * i + 11;
}

static unsigned char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	unsigned char *buf;
	long size;

	assert_non_null(f);
	fseek(f, 0, SEEK_END);
	size = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = malloc((size_t)size + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)size, f), (size_t)size);
	fclose(f);
	*len = (size_t)size;
	return buf;
}

static void spill(const char *path, const void *buf, size_t len)
{
	FILE *f = fopen(path, "wb");

	assert_non_null(f);
	assert_int_equal(fwrite(buf, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
}

/* Opens path in both readers with the full check; both must agree. */
static int open_both(const char *path)
{
	struct es_ndvs *seg;
	int rc_map = es_ndvs_open(&seg, path, ES_NDVS_OPEN_VERIFY, NULL);

	es_ndvs_close(seg);
	int rc_pread = es_ndvs_open(
	    &seg, path, ES_NDVS_OPEN_VERIFY | ES_NDVS_OPEN_PREAD, NULL);
	es_ndvs_close(seg);
	assert_int_equal(rc_map, rc_pread);
	return rc_map;
}

static void round_trip(uint32_t dim, uint64_t n, uint32_t want_pad)
{
	struct es_ndvs_info info, got;
	struct es_ndvs *seg;
	uint64_t *ids, *ids_back, size;
	float *vec, *back;
	const char *path = path_of("rt.ndvs");

	make_data(dim, n, &vec, &ids);
	assert_int_equal(es_ndvs_write(path, dim, n, vec, ids, &info), 0);
	assert_int_equal(es_ndvs_file_size(dim, n, &size), 0);
	assert_int_equal(info.file_size, size);
	assert_int_equal(info.pad, want_pad);
	back = malloc((n * dim + 1) * sizeof(float));
	ids_back = malloc((n + 1) * sizeof(uint64_t));
	for (int mode = 0; mode < 2; mode++) {
		unsigned flags =
		    ES_NDVS_OPEN_VERIFY | (mode ? ES_NDVS_OPEN_PREAD : 0);

		assert_int_equal(es_ndvs_open(&seg, path, flags, &got), 0);
		assert_int_equal(got.dim, dim);
		assert_int_equal(got.count, n);
		assert_int_equal(got.checksum, info.checksum);
		assert_int_equal(got.pad, want_pad);
		assert_string_equal(got.created_by, info.created_by);
		assert_int_equal(es_ndvs_read_rows(seg, 0, n, back), 0);
		assert_memory_equal(back, vec, n * dim * sizeof(float) + 0);
		assert_int_equal(es_ndvs_read_ids(seg, 0, n, ids_back), 0);
		assert_memory_equal(ids_back, ids, n * sizeof(uint64_t) + 0);
		if (mode == 0 && n > 0)
			assert_memory_equal(es_ndvs_row(seg, n - 1),
					    vec + (n - 1) * dim,
					    dim * sizeof(float));
		else
			assert_null(es_ndvs_row(seg, 0));
		assert_int_equal(es_ndvs_read_rows(seg, n, 1, back), -ERANGE);
		assert_int_equal(es_ndvs_read_ids(seg, 0, n + 1, ids_back),
				 -ERANGE);
		es_ndvs_close(seg);
	}
	free(vec);
	free(ids);
	free(back);
	free(ids_back);
}

static void test_round_trip_pad0(void **state)
{
	round_trip(4, 3, 0);
	round_trip(3, 2, 0);
}

static void test_round_trip_pad4(void **state)
{
	round_trip(3, 1, 4);
	round_trip(5, 7, 4);
}

static void test_round_trip_dim1(void **state)
{
	round_trip(1, 1, 4);
	round_trip(1, 2, 0);
}

static void test_round_trip_empty(void **state)
{
	round_trip(8, 0, 0);
	round_trip(3, 0, 0);
}

static void test_round_trip_large(void **state)
{
	round_trip(1, 3000001, 4);
	round_trip(16, 100000, 0);
}

static void test_sizes(void **state)
{
	uint64_t size;

	assert_int_equal(es_ndvs_file_size(3, 1, &size), 0);
	assert_int_equal(size, 102);
	assert_int_equal(es_ndvs_file_size(768, 65536, &size), 0);
	assert_int_equal(size, 201850958ull);
	assert_int_equal(es_ndvs_file_size(UINT32_MAX, UINT64_MAX / 2, &size),
			 -EOVERFLOW);
	assert_int_equal(es_ndvs_file_size(1, UINT64_MAX / 8, &size),
			 -EOVERFLOW);
}

/* The exact bytes of a D=3, N=1 segment (spec/ndvs.md's worked size). */
static void test_byte_layout(void **state)
{
	const float v[3] = {1.0f, -2.0f, 0.5f};
	const uint64_t id = 0x0102030405060708ull;
	const char *path = path_of("layout.ndvs");
	unsigned char *b;
	size_t len;
	uint32_t crc;

	assert_int_equal(es_ndvs_write(path, 3, 1, v, &id, NULL), 0);
	b = slurp(path, &len);
	assert_int_equal(len, 102);
	assert_memory_equal(b,
			    "NDVS\x01\x00\x00\x00\x03\x00\x00\x00"
			    "\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00",
			    22);
	for (int i = 22; i < 32; i++)
		assert_int_equal(b[i], 0);
	assert_memory_equal(b + 32, v, 12); /* float32 LE rows */
	assert_memory_equal(b + 44, "\0\0\0\0", 4);
	assert_memory_equal(b + 48, "\x08\x07\x06\x05\x04\x03\x02\x01", 8);
	assert_memory_equal(b + 56, "\x01\x00", 2);
	assert_memory_equal(b + 58, "edgesync ", 9);
	crc = es_crc32c(0, b, 56);
	assert_int_equal(
	    b[90] | b[91] << 8 | b[92] << 16 | (uint32_t)b[93] << 24, crc);
	assert_memory_equal(b + 94, "\x2e\x00\x00\x00NDVS", 8);
	free(b);
}

/* A small segment with pad 4: 32 + 36 + 4 + 24 + 46 = 142 bytes. */
static unsigned char *small_segment(size_t *len)
{
	float *vec;
	uint64_t *ids;
	unsigned char *b;

	make_data(3, 3, &vec, &ids);
	assert_int_equal(
	    es_ndvs_write(path_of("small.ndvs"), 3, 3, vec, ids, NULL), 0);
	free(vec);
	free(ids);
	b = slurp(path_of("small.ndvs"), len);
	assert_int_equal(*len, 142);
	assert_int_equal(es_ndvs_check_image(b, *len, NULL), 0);
	return b;
}

static void test_every_bit_flip(void **state)
{
	const char *path = path_of("flip.ndvs");
	size_t len;
	unsigned char *b = small_segment(&len);

	for (size_t byte = 0; byte < len; byte++) {
		for (int bit = 0; bit < 8; bit++) {
			b[byte] ^= (unsigned char)(1u << bit);
			assert_int_not_equal(es_ndvs_check_image(b, len, NULL),
					     0);
			spill(path, b, len);
			assert_int_not_equal(open_both(path), 0);
			b[byte] ^= (unsigned char)(1u << bit);
		}
	}
	free(b);
}

static void test_every_truncation(void **state)
{
	const char *path = path_of("trunc.ndvs");
	size_t len;
	unsigned char *b = small_segment(&len);

	for (size_t cut = 0; cut < len; cut++) {
		int rc = es_ndvs_check_image(b, cut, NULL);

		assert_true(rc == ES_E_NDVS_SHORT || rc == ES_E_NDVS_SIZE);
		spill(path, b, cut);
		assert_int_equal(open_both(path), rc);
	}
	free(b);
}

static void test_appended_bytes(void **state)
{
	const char *path = path_of("append.ndvs");
	size_t len;
	unsigned char *b = small_segment(&len);

	b = realloc(b, len + 4096);
	assert_non_null(b);
	memset(b + len, 0, 4096);
	for (size_t extra = 1; extra <= 4096; extra = extra * 2 + 1) {
		assert_int_equal(es_ndvs_check_image(b, len + extra, NULL),
				 ES_E_NDVS_SIZE);
		spill(path, b, len + extra);
		assert_int_equal(open_both(path), ES_E_NDVS_SIZE);
	}
	free(b);
}

/* Each field of header and footer, corrupted, gives its own code. */
static void test_field_errors(void **state)
{
	static const struct {
		size_t off; /* from the start; negative-from-end below */
		int from_end;
		unsigned char value;
		int want;
	} cases[] = {
	    {0, 0, 'X', ES_E_NDVS_MAGIC},
	    {4, 0, 2, ES_E_NDVS_VERSION},
	    {7, 0, 1, ES_E_NDVS_FLAGS},
	    {11, 0, 1, ES_E_NDVS_SIZE}, /* dim */
	    {12, 0, 4, ES_E_NDVS_SIZE}, /* count */
	    {19, 0, 1, ES_E_NDVS_SIZE}, /* count, high byte */
	    {20, 0, 1, ES_E_NDVS_DTYPE},
	    {21, 0, 1, ES_E_NDVS_CODEC},
	    {22, 0, 1, ES_E_NDVS_RESERVED},
	    {31, 0, 0x80, ES_E_NDVS_RESERVED},
	    {40, 0, 0x55, ES_E_NDVS_CHECKSUM}, /* a vector byte */
	    {68, 0, 1, ES_E_NDVS_PAD},
	    {75, 0, 0x10, ES_E_NDVS_CHECKSUM}, /* an id byte */
	    {46, 1, 2, ES_E_NDVS_FOOTER_VERSION},
	    {44, 1, 0xC3, ES_E_NDVS_CREATED_BY}, /* not ASCII */
	    {44, 1, 'E', ES_E_NDVS_CREATED_BY},	 /* tag mismatch */
	    {14, 1, 'x', ES_E_NDVS_CREATED_BY},	 /* after the NUL */
	    {13, 1, 'x', ES_E_NDVS_CREATED_BY},	 /* last byte not NUL */
	    {12, 1, 0x01, ES_E_NDVS_CHECKSUM},
	    {8, 1, 47, ES_E_NDVS_FOOTER_SIZE},
	    {1, 1, 'T', ES_E_NDVS_TRAILER},
	};
	const char *path = path_of("field.ndvs");
	size_t len;
	unsigned char *b = small_segment(&len);

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t off =
		    cases[i].from_end ? len - cases[i].off : cases[i].off;
		unsigned char keep = b[off];

		b[off] = cases[i].value;
		print_message("case %zu: byte %zu = 0x%02x\n", i, off,
			      cases[i].value);
		assert_int_equal(es_ndvs_check_image(b, len, NULL),
				 cases[i].want);
		spill(path, b, len);
		assert_int_equal(open_both(path), cases[i].want);
		b[off] = keep;
	}
	/* dim 0 */
	memset(b + 8, 0, 4);
	assert_int_equal(es_ndvs_check_image(b, len, NULL), ES_E_NDVS_DIM);
	assert_int_equal(es_ndvs_check_image(b, 77, NULL), ES_E_NDVS_SHORT);
	free(b);
}

/* Another writer's name (no edgesync tag) is accepted as it is. */
static void test_foreign_created_by(void **state)
{
	const char *path = path_of("foreign.ndvs");
	struct es_ndvs_info info;
	struct es_ndvs *seg;
	size_t len;
	unsigned char *b = small_segment(&len);
	unsigned char *field = b + len - 44;

	memset(field, 0, 32);
	memcpy(field, "nodedb 0.9.2", 12);
	assert_int_equal(es_ndvs_check_image(b, len, &info), 0);
	spill(path, b, len);
	assert_int_equal(es_ndvs_open(&seg, path, ES_NDVS_OPEN_VERIFY, &info),
			 0);
	assert_string_equal(info.created_by, "nodedb 0.9.2");
	es_ndvs_close(seg);
	/* ...but an unstamped name that claims to be edgesync is not. */
	memcpy(field, "edgesync 9.9", 12);
	assert_int_equal(es_ndvs_check_image(b, len, NULL),
			 ES_E_NDVS_CREATED_BY);
	free(b);
}

static int count_files(void)
{
	char cmd[128];
	FILE *p;
	int n = -1;

	snprintf(cmd, sizeof(cmd), "ls -1 '%s' | wc -l", dir);
	p = popen(cmd, "r");
	assert_non_null(p);
	assert_int_equal(fscanf(p, "%d", &n), 1);
	pclose(p);
	return n;
}

static void test_writer_contract(void **state)
{
	const char *path = path_of("w.ndvs");
	struct es_ndvs_writer *w;
	struct stat st;
	float *vec;
	uint64_t *ids;
	int before;

	make_data(2, 4, &vec, &ids);
	unlink(path);
	before = count_files();
	/* too few rows: nothing appears, no temporary file remains */
	assert_int_equal(es_ndvs_writer_open(&w, path, 2, 4), 0);
	assert_int_equal(count_files(), before + 1);
	assert_int_equal(es_ndvs_writer_add(w, vec, ids, 3), 0);
	assert_int_equal(es_ndvs_writer_commit(w, NULL), ES_E_NDVS_ROWS);
	assert_int_equal(stat(path, &st), -1);
	assert_int_equal(count_files(), before);
	/* too many rows refused */
	assert_int_equal(es_ndvs_writer_open(&w, path, 2, 4), 0);
	assert_int_equal(es_ndvs_writer_add(w, vec, ids, 4), 0);
	assert_int_equal(es_ndvs_writer_add(w, vec, ids, 1), -EINVAL);
	es_ndvs_writer_abort(w);
	assert_int_equal(count_files(), before);
	/* dim 0 refused; a directory that does not exist fails cleanly */
	assert_int_equal(es_ndvs_writer_open(&w, path, 0, 4), -EINVAL);
	assert_int_equal(es_ndvs_writer_open(&w, "/nonexistent/x.ndvs", 2, 4),
			 -ENOENT);
	/* streamed in pieces == written whole */
	assert_int_equal(es_ndvs_writer_open(&w, path, 2, 4), 0);
	for (int i = 0; i < 4; i++)
		assert_int_equal(es_ndvs_writer_add(w, vec + 2 * i, ids + i, 1),
				 0);
	assert_int_equal(es_ndvs_writer_commit(w, NULL), 0);
	assert_int_equal(open_both(path), 0);
	assert_int_equal(count_files(), before + 1);
	free(vec);
	free(ids);
}

static void test_not_a_segment(void **state)
{
	struct es_ndvs *seg;

	assert_int_equal(es_ndvs_open(&seg, dir, 0, NULL), -EINVAL);
	assert_int_equal(es_ndvs_open(&seg, path_of("missing"), 0, NULL),
			 -ENOENT);
	spill(path_of("empty"), "", 0);
	assert_int_equal(open_both(path_of("empty")), ES_E_NDVS_SHORT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_sizes),
	    cmocka_unit_test(test_round_trip_pad0),
	    cmocka_unit_test(test_round_trip_pad4),
	    cmocka_unit_test(test_round_trip_dim1),
	    cmocka_unit_test(test_round_trip_empty),
	    cmocka_unit_test(test_round_trip_large),
	    cmocka_unit_test(test_byte_layout),
	    cmocka_unit_test(test_every_bit_flip),
	    cmocka_unit_test(test_every_truncation),
	    cmocka_unit_test(test_appended_bytes),
	    cmocka_unit_test(test_field_errors),
	    cmocka_unit_test(test_foreign_created_by),
	    cmocka_unit_test(test_writer_contract),
	    cmocka_unit_test(test_not_a_segment),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
