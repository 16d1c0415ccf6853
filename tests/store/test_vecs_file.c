/* .fvecs / .ivecs reading: whole files, and every kind of bad file; the
 * choice of a file's format by content or by --format. */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "edgesync/store_error.h"
#include "edgesync/vecs_file.h"

static char path[] = "/tmp/es-test-vecs-XXXXXX";

static int setup(void **state)
{
	int fd = mkstemp(path);

	if (fd < 0)
		return -1;
	close(fd);
	return 0;
}

static int teardown(void **state)
{
	return unlink(path);
}

/* Writes records of the given dims; record i holds values i*100 + j. */
static void write_file(const int32_t *dims, int n, int float_values)
{
	FILE *f = fopen(path, "wb");

	assert_non_null(f);
	for (int i = 0; i < n; i++) {
		fwrite(&dims[i], 4, 1, f);
		for (int j = 0; j < dims[i] && j < 1000; j++) {
			if (float_values) {
				float v = (float)(i * 100 + j);

				fwrite(&v, 4, 1, f);
			} else {
				int32_t v = i * 100 + j;

				fwrite(&v, 4, 1, f);
			}
		}
	}
	fclose(f);
}

static void test_read_whole(void **state)
{
	const int32_t dims[] = {3, 3, 3, 3, 3};
	struct es_vecs *v;
	float rows[15];

	write_file(dims, 5, 1);
	assert_int_equal(es_vecs_open(&v, path, ES_VECS_FLOAT), 0);
	assert_int_equal(es_vecs_dim(v), 3);
	assert_int_equal(es_vecs_count(v), 5);
	assert_int_equal(es_vecs_read(v, rows, 2), 2);
	assert_int_equal(es_vecs_read(v, rows + 6, 10), 3);
	assert_int_equal(es_vecs_read(v, rows, 10), 0);
	for (int i = 0; i < 5; i++)
		for (int j = 0; j < 3; j++)
			assert_true(rows[i * 3 + j] == (float)(i * 100 + j));
	es_vecs_close(v);
}

static void test_load_ivecs(void **state)
{
	const int32_t dims[] = {2, 2};
	uint64_t count;
	uint32_t dim;
	void *data;

	write_file(dims, 2, 0);
	assert_int_equal(es_vecs_load(path, ES_VECS_INT, &data, &dim, &count),
			 0);
	assert_int_equal(dim, 2);
	assert_int_equal(count, 2);
	assert_int_equal(((int32_t *)data)[3], 101);
	free(data);
}

static void test_bad_files(void **state)
{
	const int32_t mixed[] = {3, 3, 2, 4};
	const int32_t zero[] = {0};
	const int32_t negative[] = {-5};
	const int32_t huge[] = {ES_VECS_MAX_DIM + 1};
	struct es_vecs_loc loc;
	char msg[512], want[512];
	struct es_vecs *v;
	float rows[12];
	FILE *f;

	write_file(mixed, 4, 1); /* 3+3 then 2 and 4: sizes add up */
	assert_int_equal(es_vecs_open(&v, path, ES_VECS_FLOAT), 0);
	assert_int_equal(es_vecs_count(v), 4);
	assert_int_equal(es_vecs_read(v, rows, 4), ES_E_VECS_MIXED);
	assert_int_equal(es_vecs_position(v), 2);
	es_vecs_close(v);

	write_file(zero, 1, 1);
	assert_int_equal(es_vecs_open(&v, path, ES_VECS_FLOAT), ES_E_VECS_DIM);
	write_file(negative, 1, 1);
	assert_int_equal(es_vecs_open(&v, path, ES_VECS_FLOAT), ES_E_VECS_DIM);
	write_file(huge, 1, 1);
	assert_int_equal(es_vecs_open(&v, path, ES_VECS_FLOAT), ES_E_VECS_DIM);
	write_file(NULL, 0, 1);
	assert_int_equal(es_vecs_open(&v, path, ES_VECS_FLOAT),
			 ES_E_VECS_EMPTY);

	/* every truncation of a two-record file */
	const int32_t two[] = {3, 3};

	write_file(two, 2, 1);
	for (int cut = 1; cut < 32; cut++) {
		if (cut == 16)
			continue; /* one whole record: a valid file */
		assert_int_equal(truncate(path, cut), 0);
		assert_int_equal(es_vecs_open(&v, path, ES_VECS_FLOAT),
				 ES_E_VECS_TRUNCATED);
		write_file(two, 2, 1);
	}

	/* a NaN is refused in .fvecs, and its position named */
	f = fopen(path, "r+b");
	assert_non_null(f);
	fseek(f, 16 + 8, SEEK_SET);
	float nan_value = NAN;
	fwrite(&nan_value, 4, 1, f);
	fclose(f);
	assert_int_equal(es_vecs_open(&v, path, ES_VECS_FLOAT), 0);
	assert_int_equal(es_vecs_read(v, rows, 2), ES_E_VECS_NONFINITE);
	assert_int_equal(es_vecs_position(v), 1);
	es_vecs_where(v, &loc);
	snprintf(want, sizeof(want),
		 "%s: vector 1, value 2: vector holds a NaN or infinite value",
		 path);
	assert_string_equal(
	    es_vecs_message(msg, sizeof(msg), path, ES_E_VECS_NONFINITE, &loc),
	    want);
	es_vecs_close(v);
	assert_int_equal(es_vecs_open(&v, "/nonexistent", ES_VECS_FLOAT),
			 -ENOENT);
}

static void write_bytes(const void *p, size_t len)
{
	FILE *f = fopen(path, "wb");

	assert_non_null(f);
	assert_int_equal(fwrite(p, 1, len, f), len);
	fclose(f);
}

/* Opens path as format and expects err (0: success as expect). */
static void expect_format(enum es_vecs_format format, int err,
			  enum es_vecs_format expect)
{
	struct es_vecs *v;

	assert_int_equal(es_vecs_open_as(&v, path, format, 0, NULL), err);
	if (err == 0) {
		assert_int_equal(es_vecs_format(v), expect);
		es_vecs_close(v);
	}
}

/* The format is chosen by content, whatever the name; --format wins. */
static void test_detect(void **state)
{
	static const char npy[] =
	    "\x93NUMPY\x01\x00\x3f\x00{'descr': '<f4', 'fortran_order': "
	    "False, 'shape': (1, 2), }   \n\0\0\x80\x3f\0\0\0\x40";
	static const unsigned char binary[] = {0xff, 0xff, 0xff, 0x7f,
					       0,    1,	   2,	 3};
	const int32_t dims[] = {3, 3};
	struct es_vecs_loc loc;
	struct es_vecs *v;
	char msg[512];
	float rows[6];

	write_file(dims, 2, 1);
	expect_format(ES_VECS_AUTO, 0, ES_VECS_FVECS);
	expect_format(ES_VECS_FVECS, 0, ES_VECS_FVECS);
	expect_format(ES_VECS_NPY, ES_E_NPY_MAGIC, 0);
	expect_format(ES_VECS_CSV, ES_E_CSV_NUMBER, 0);
	/* an id column is CSV's only */
	assert_int_equal(
	    es_vecs_open_as(&v, path, ES_VECS_AUTO, ES_VECS_ID_COLUMN, NULL),
	    0);
	assert_false(es_vecs_has_ids(v));
	es_vecs_close(v);

	write_bytes(npy, sizeof(npy) - 1);
	expect_format(ES_VECS_AUTO, 0, ES_VECS_NPY);
	expect_format(ES_VECS_NPY, 0, ES_VECS_NPY);
	expect_format(ES_VECS_FVECS, ES_E_VECS_DIM, 0);
	assert_int_equal(es_vecs_open_as(&v, path, ES_VECS_AUTO, 0, NULL), 0);
	assert_int_equal(es_vecs_read(v, rows, 1), 1);
	assert_true(rows[0] == 1.0f && rows[1] == 2.0f);
	es_vecs_close(v);

	write_bytes("0.5,1\n", 6);
	expect_format(ES_VECS_AUTO, 0, ES_VECS_CSV);
	expect_format(ES_VECS_CSV, 0, ES_VECS_CSV);
	expect_format(ES_VECS_FVECS, ES_E_VECS_DIM, 0);
	expect_format(ES_VECS_NPY, ES_E_NPY_MAGIC, 0);
	assert_string_equal(
	    es_vecs_message(msg, sizeof(msg), path, ES_E_VECS_DIM, NULL) +
		strlen(path),
	    ": vector dimension is not 1 to 65536");

	/* none of them: the message names the formats */
	write_bytes(binary, sizeof(binary));
	assert_int_equal(es_vecs_open_as(&v, path, ES_VECS_AUTO, 0, &loc),
			 ES_E_VECS_FORMAT);
	es_vecs_message(msg, sizeof(msg), path, ES_E_VECS_FORMAT, &loc);
	assert_non_null(strstr(msg, path));
	assert_non_null(strstr(msg, ".fvecs, .npy"));
	assert_non_null(strstr(msg, "CSV"));
	write_bytes(binary, 3);
	expect_format(ES_VECS_AUTO, ES_E_VECS_FORMAT, 0);
	/* bytes that are not UTF-8 are not text */
	write_bytes("1,2\xff\n", 5);
	expect_format(ES_VECS_AUTO, ES_E_VECS_FORMAT, 0);
	write_bytes("1,2\x7f\n", 5);
	expect_format(ES_VECS_AUTO, ES_E_VECS_FORMAT, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_read_whole),
	    cmocka_unit_test(test_load_ivecs),
	    cmocka_unit_test(test_bad_files),
	    cmocka_unit_test(test_detect),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
