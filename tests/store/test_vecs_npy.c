/* NumPy .npy reading: good files of every version and dtype, and every
 * kind of file refused, each with the message that names the problem. */
#include <errno.h>
#include <float.h>
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

static char path[] = "/tmp/es-test-npy-XXXXXX";
static size_t data_off; /* of the file write_npy wrote last */

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

/* The value of row i, column j in the files written here. */
static double value(uint64_t i, uint32_t j)
{
	return (double)i * 100 + j + 0.25;
}

/*
 * Writes an .npy file of format major.minor whose header dict is dict
 * (padded as numpy pads it) and whose body is rows x dim values of item
 * bytes (4 float32, 8 float64, little-endian), then cut bytes less or
 * extra bytes more.
 */
static void write_npy(int major, int minor, const char *dict, uint64_t rows,
		      uint32_t dim, int item, long extra)
{
	size_t pre = major == 1 ? 10 : 12, len = strlen(dict) + 1;
	FILE *f = fopen(path, "wb");
	unsigned char p[12] = {0x93, 'N', 'U', 'M', 'P', 'Y'};

	assert_non_null(f);
	while ((pre + len) % 64)
		len++;
	p[6] = (unsigned char)major;
	p[7] = (unsigned char)minor;
	for (size_t k = 0; k < pre - 8; k++)
		p[8 + k] = (unsigned char)(len >> (8 * k));
	fwrite(p, 1, pre, f);
	fputs(dict, f);
	for (size_t k = strlen(dict) + 1; k < len; k++)
		fputc(' ', f);
	fputc('\n', f);
	data_off = pre + len;
	for (uint64_t i = 0; i < rows; i++)
		for (uint32_t j = 0; j < dim; j++) {
			double d = value(i, j);
			float s = (float)d;

			if (item == 8)
				fwrite(&d, 8, 1, f);
			else
				fwrite(&s, 4, 1, f);
		}
	for (long k = 0; k < extra; k++)
		fputc(0, f);
	fclose(f);
	if (extra < 0)
		assert_int_equal(
		    truncate(path,
			     (off_t)(pre + len + rows * dim * item + extra)),
		    0);
}

/* Overwrites the value at row i, column j of a float64 body. */
static void poke_f8(uint32_t dim, uint64_t i, uint32_t j, double d)
{
	FILE *f = fopen(path, "r+b");

	assert_non_null(f);
	fseek(f, (long)(data_off + (i * dim + j) * 8), SEEK_SET);
	fwrite(&d, 8, 1, f);
	fclose(f);
}

/* Opens the file (auto), reads it whole and checks every value. */
static void check_good(uint64_t rows, uint32_t dim)
{
	struct es_vecs *v;
	float *all = malloc(rows * dim * sizeof(float));
	uint64_t got = 0;
	long n;

	assert_non_null(all);
	assert_int_equal(es_vecs_open_as(&v, path, ES_VECS_AUTO, 0, NULL), 0);
	assert_int_equal(es_vecs_format(v), ES_VECS_NPY);
	assert_int_equal(es_vecs_dim(v), dim);
	assert_int_equal(es_vecs_count(v), rows);
	assert_false(es_vecs_has_ids(v));
	while ((n = es_vecs_read(v, all + got * dim, 7)) > 0)
		got += (uint64_t)n;
	assert_int_equal(n, 0);
	assert_int_equal(got, rows);
	for (uint64_t i = 0; i < rows; i++)
		for (uint32_t j = 0; j < dim; j++)
			assert_true(all[i * dim + j] == (float)value(i, j));
	es_vecs_close(v);
	free(all);
}

static void test_good_f4(void **state)
{
	write_npy(1, 0,
		  "{'descr': '<f4', 'fortran_order': False, "
		  "'shape': (20, 3), }",
		  20, 3, 4, 0);
	check_good(20, 3);
	/* the same by --format, without the guess */
	struct es_vecs *v;

	assert_int_equal(es_vecs_open_as(&v, path, ES_VECS_NPY, 0, NULL), 0);
	assert_int_equal(es_vecs_count(v), 20);
	es_vecs_close(v);
}

static void test_good_versions(void **state)
{
	/* 2.0 and 3.0: a 4-byte header length; keys in any order, double
	 * quotes, no trailing comma, Python 2 longs */
	write_npy(2, 0,
		  "{\"shape\": (5, 4), \"fortran_order\": False, "
		  "\"descr\": \"<f4\"}",
		  5, 4, 4, 0);
	check_good(5, 4);
	write_npy(3, 0,
		  "{'descr': '<f4', 'fortran_order': False, 'shape': (6L, "
		  "2L), }",
		  6, 2, 4, 0);
	check_good(6, 2);
}

static void test_good_f8(void **state)
{
	write_npy(1, 0,
		  "{'descr': '<f8', 'fortran_order': False, 'shape': (9, 5), }",
		  9, 5, 8, 0);
	check_good(9, 5);
	write_npy(2, 0,
		  "{'descr': '<f8', 'fortran_order': False, 'shape': (4, 3), }",
		  4, 3, 8, 0);
	check_good(4, 3);
}

/* More than one read buffer (4 MiB): read in batches, streamed. */
static void test_good_large(void **state)
{
	write_npy(1, 0,
		  "{'descr': '<f4', 'fortran_order': False, "
		  "'shape': (1500, 1024), }",
		  1500, 1024, 4, 0);
	check_good(1500, 1024);
}

/* Opens path (auto) and expects err, and a message with path and what. */
static void expect_open(int err, const char *what)
{
	struct es_vecs_loc loc;
	struct es_vecs *v;
	char msg[512];

	assert_int_equal(es_vecs_open_as(&v, path, ES_VECS_AUTO, 0, &loc), err);
	assert_null(v);
	es_vecs_message(msg, sizeof(msg), path, err, &loc);
	assert_non_null(strstr(msg, path));
	if (!strstr(msg, what))
		fail_msg("message '%s' lacks '%s'", msg, what);
}

static void test_bad_headers(void **state)
{
	const char *f4 = "{'descr': '<f4', 'fortran_order': False, "
			 "'shape': (2, 3), }";

	write_npy(1, 0,
		  "{'descr': '>f4', 'fortran_order': False, 'shape': (2, 3), }",
		  2, 3, 4, 0);
	expect_open(ES_E_NPY_ENDIAN, "big-endian");
	write_npy(1, 0,
		  "{'descr': '>f8', 'fortran_order': False, 'shape': (2, 3), }",
		  2, 3, 8, 0);
	expect_open(ES_E_NPY_ENDIAN, "big-endian");
	write_npy(1, 0,
		  "{'descr': '<i4', 'fortran_order': False, 'shape': (2, 3), }",
		  2, 3, 4, 0);
	expect_open(ES_E_NPY_DTYPE, "dtype is not float32 or float64");
	{ /* a NUL inside a string: not taken for the part before it */
		static const char d[] = "{'descr': '<f4\0zz', "
					"'fortran_order': False, "
					"'shape': (2, 3), }";
		FILE *f;

		write_npy(1, 0,
			  "{'descr': '<f4   ', 'fortran_order': False, "
			  "'shape': (2, 3), }",
			  2, 3, 4, 0);
		f = fopen(path, "r+b");
		assert_non_null(f);
		fseek(f, 10, SEEK_SET);
		fwrite(d, 1, sizeof(d) - 1, f);
		fclose(f);
		expect_open(ES_E_NPY_HEADER, "header");
	}
	write_npy(1, 0,
		  "{'descr': '<f2', 'fortran_order': False, 'shape': (2, 3), }",
		  2, 3, 4, 0);
	expect_open(ES_E_NPY_DTYPE, "dtype");
	write_npy(1, 0,
		  "{'descr': [('x', '<f4')], 'fortran_order': False, "
		  "'shape': (2, 3), }",
		  2, 3, 4, 0);
	expect_open(ES_E_NPY_DTYPE, "dtype");
	write_npy(1, 0,
		  "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }",
		  2, 3, 4, 0);
	expect_open(ES_E_NPY_FORTRAN, "Fortran order");
	write_npy(1, 0,
		  "{'descr': '<f4', 'fortran_order': False, 'shape': (6,), }",
		  2, 3, 4, 0);
	expect_open(ES_E_NPY_SHAPE, "not 2-D");
	write_npy(1, 0,
		  "{'descr': '<f4', 'fortran_order': False, "
		  "'shape': (1, 2, 3), }",
		  2, 3, 4, 0);
	expect_open(ES_E_NPY_SHAPE, "not 2-D");
	write_npy(1, 0,
		  "{'descr': '<f4', 'fortran_order': False, 'shape': (), }", 2,
		  3, 4, 0);
	expect_open(ES_E_NPY_SHAPE, "not 2-D");
	write_npy(1, 0,
		  "{'descr': '<f4', 'fortran_order': False, 'shape': (0, 3), }",
		  0, 3, 4, 0);
	expect_open(ES_E_VECS_EMPTY, "no vectors");
	write_npy(1, 0,
		  "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 0), }",
		  0, 0, 4, 0);
	expect_open(ES_E_VECS_DIM, "dimension");
	/* versions */
	write_npy(4, 0, f4, 2, 3, 4, 0);
	expect_open(ES_E_NPY_VERSION, "version");
	write_npy(1, 1, f4, 2, 3, 4, 0);
	expect_open(ES_E_NPY_VERSION, "version");
	/* dicts that are not numpy's */
	write_npy(1, 0, "{'descr': '<f4', 'shape': (2, 3), }", 2, 3, 4, 0);
	expect_open(ES_E_NPY_HEADER, "header");
	write_npy(1, 0,
		  "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), "
		  "'extra': 1}",
		  2, 3, 4, 0);
	expect_open(ES_E_NPY_HEADER, "header");
	write_npy(1, 0,
		  "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), "
		  "'shape': (2, 3)}",
		  2, 3, 4, 0);
	expect_open(ES_E_NPY_HEADER, "header");
	write_npy(1, 0, "{'descr': '<f4', 'fortran_order': 0, 'shape': (2, 3)}",
		  2, 3, 4, 0);
	expect_open(ES_E_NPY_HEADER, "header");
	write_npy(1, 0,
		  "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3)", 2,
		  3, 4, 0);
	expect_open(ES_E_NPY_HEADER, "header");
	/* the header cut: its length says more than the file holds */
	write_npy(1, 0, f4, 0, 0, 4, 0);
	assert_int_equal(truncate(path, 40), 0);
	expect_open(ES_E_NPY_HEADER, "cut short");
	assert_int_equal(truncate(path, 7), 0);
	expect_open(ES_E_NPY_HEADER, "cut short");
}

static void test_bad_sizes(void **state)
{
	const char *f4 = "{'descr': '<f4', 'fortran_order': False, "
			 "'shape': (2, 3), }";

	/* every cut of the body is refused, and bytes past it too */
	for (long cut = 1; cut <= 24; cut++) {
		write_npy(1, 0, f4, 2, 3, 4, -cut);
		expect_open(ES_E_NPY_TRUNCATED, "truncated");
	}
	write_npy(1, 0, f4, 2, 3, 4, 1);
	expect_open(ES_E_NPY_SIZE, "bytes after the array");
	write_npy(2, 0,
		  "{'descr': '<f8', 'fortran_order': False, "
		  "'shape': (2, 3), }",
		  2, 3, 8, -8);
	expect_open(ES_E_NPY_TRUNCATED, "truncated");
	/* a shape whose size overflows 64 bits */
	write_npy(1, 0,
		  "{'descr': '<f8', 'fortran_order': False, "
		  "'shape': (4611686018427387904, 4), }",
		  0, 0, 8, 0);
	expect_open(ES_E_NPY_TRUNCATED, "truncated");
	write_npy(1, 0,
		  "{'descr': '<f8', 'fortran_order': False, "
		  "'shape': (99999999999999999999, 4), }",
		  0, 0, 8, 0);
	expect_open(ES_E_NPY_HEADER, "header");
}

/* A bad value: refused when read, naming the vector and the value. */
static void expect_read(int err, uint64_t vector, uint32_t column,
			const char *what)
{
	struct es_vecs_loc loc;
	struct es_vecs *v;
	char msg[512], want[512];
	float rows[64];

	assert_int_equal(es_vecs_open_as(&v, path, ES_VECS_AUTO, 0, NULL), 0);
	assert_int_equal(es_vecs_read(v, rows, 16), err);
	assert_int_equal(es_vecs_position(v), vector);
	es_vecs_where(v, &loc);
	es_vecs_message(msg, sizeof(msg), path, err, &loc);
	snprintf(want, sizeof(want), "%s: vector %llu, value %u: %s", path,
		 (unsigned long long)vector, column, what);
	assert_string_equal(msg, want);
	es_vecs_close(v);
}

static void test_bad_values(void **state)
{
	const char *f8 = "{'descr': '<f8', 'fortran_order': False, "
			 "'shape': (3, 4), }";
	const char *f4 = "{'descr': '<f4', 'fortran_order': False, "
			 "'shape': (3, 4), }";

	write_npy(1, 0, f8, 3, 4, 8, 0);
	poke_f8(4, 1, 2, 1e300);
	expect_read(ES_E_VECS_RANGE, 1, 3, "value is outside float32's range");
	write_npy(1, 0, f8, 3, 4, 8, 0);
	poke_f8(4, 2, 0, -3.5e38);
	expect_read(ES_E_VECS_RANGE, 2, 1, "value is outside float32's range");
	write_npy(1, 0, f8, 3, 4, 8, 0);
	poke_f8(4, 2, 3, NAN);
	expect_read(ES_E_VECS_NONFINITE, 2, 4,
		    "vector holds a NaN or infinite value");
	write_npy(1, 0, f8, 3, 4, 8, 0);
	poke_f8(4, 0, 1, -INFINITY);
	expect_read(ES_E_VECS_NONFINITE, 0, 2,
		    "vector holds a NaN or infinite value");
	/* the largest float32 and the smallest float64 are taken, and what
	 * rounds to the largest float32 (numpy casts 3.4028235e38 so) */
	write_npy(1, 0, f8, 3, 4, 8, 0);
	poke_f8(4, 0, 0, 3.4028234663852886e38);
	poke_f8(4, 0, 1, 1e-300);
	poke_f8(4, 0, 3, -3.4028235e38);
	{
		struct es_vecs *v;
		float rows[12];

		assert_int_equal(
		    es_vecs_open_as(&v, path, ES_VECS_AUTO, 0, NULL), 0);
		assert_int_equal(es_vecs_read(v, rows, 3), 3);
		assert_true(rows[0] == FLT_MAX);
		assert_true(rows[1] == 0.0f);
		assert_true(rows[2] == (float)value(0, 2));
		assert_true(rows[3] == -FLT_MAX);
		es_vecs_close(v);
	}
	/* the first double that would round to infinity is refused */
	write_npy(1, 0, f8, 3, 4, 8, 0);
	poke_f8(4, 1, 0, 0x1.ffffffp127);
	expect_read(ES_E_VECS_RANGE, 1, 1, "value is outside float32's range");
	/* float32 infinity */
	write_npy(1, 0, f4, 3, 4, 4, 0);
	{
		FILE *f = fopen(path, "r+b");
		float inf = INFINITY;

		assert_non_null(f);
		fseek(f, (long)data_off + (1 * 4 + 1) * 4, SEEK_SET);
		fwrite(&inf, 4, 1, f);
		fclose(f);
	}
	expect_read(ES_E_VECS_NONFINITE, 1, 2,
		    "vector holds a NaN or infinite value");
}

/* Every .npy code has its own message (no other module's code). */
static void test_messages(void **state)
{
	for (int err = ES_E_NPY_MAGIC; err >= ES_E_NPY_SIZE; err--)
		if (!strstr(es_store_strerror(err), ".npy"))
			fail_msg("%d: %s", err, es_store_strerror(err));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_good_f4),
	    cmocka_unit_test(test_good_versions),
	    cmocka_unit_test(test_good_f8),
	    cmocka_unit_test(test_good_large),
	    cmocka_unit_test(test_bad_headers),
	    cmocka_unit_test(test_bad_sizes),
	    cmocka_unit_test(test_bad_values),
	    cmocka_unit_test(test_messages),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
