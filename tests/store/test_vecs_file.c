/* .fvecs / .ivecs reading: whole files, and every kind of bad file. */
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
	es_vecs_close(v);
	assert_int_equal(es_vecs_open(&v, "/nonexistent", ES_VECS_FLOAT),
			 -ENOENT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_read_whole),
	    cmocka_unit_test(test_load_ivecs),
	    cmocka_unit_test(test_bad_files),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
