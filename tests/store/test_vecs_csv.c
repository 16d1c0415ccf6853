/* CSV reading: good files (header, blank lines, CRLF, ids, long lines,
 * more than a buffer) and every kind of bad value or row, each with the
 * message that names the file, the line and the column. */
#include <errno.h>
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

static char path[] = "/tmp/es-test-csv-XXXXXX";

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

static void write_text(const char *text)
{
	FILE *f = fopen(path, "wb");

	assert_non_null(f);
	fwrite(text, 1, strlen(text), f);
	fclose(f);
}

/* Opens text (auto, flags) and expects dim x count, values rows. */
static void check_good(const char *text, unsigned flags, uint32_t dim,
		       uint64_t count, const float *want, const uint64_t *ids)
{
	struct es_vecs *v;
	float got[64];
	uint64_t got_ids[16];

	write_text(text);
	assert_int_equal(es_vecs_open_as(&v, path, ES_VECS_AUTO, flags, NULL),
			 0);
	assert_int_equal(es_vecs_format(v), ES_VECS_CSV);
	assert_int_equal(es_vecs_dim(v), dim);
	assert_int_equal(es_vecs_count(v), count);
	assert_int_equal(es_vecs_has_ids(v), ids != NULL);
	/* one row at a time, then the end */
	for (uint64_t i = 0; i < count; i++)
		assert_int_equal(
		    es_vecs_read_ids(v, got + i * dim, got_ids + i, 1), 1);
	assert_int_equal(es_vecs_read_ids(v, got, got_ids, 1), 0);
	for (uint64_t i = 0; i < count * dim; i++)
		if (got[i] != want[i])
			fail_msg("value %llu: %g, not %g",
				 (unsigned long long)i, (double)got[i],
				 (double)want[i]);
	for (uint64_t i = 0; ids && i < count; i++)
		assert_int_equal(got_ids[i], ids[i]);
	es_vecs_close(v);
}

static void test_good(void **state)
{
	const float six[] = {1, 2, 3, 4, 5, 6};
	const float exp[] = {-1.5f, 2e-3f, 3e10f, 0.5f, -0.0f, 7};
	const uint64_t ids[] = {7, UINT64_MAX};

	check_good("1,2,3\n4,5,6\n", 0, 3, 2, six, NULL);
	/* no newline at the end; header; CRLF; blank lines; spaces */
	check_good("1,2,3\n4,5,6", 0, 3, 2, six, NULL);
	check_good("x,y,z\n1,2,3\n4,5,6\n", 0, 3, 2, six, NULL);
	check_good("\r\n  \n\"a\",\"b\",\"c\"\r\n\r\n 1 , 2,\t3\r\n\n4,5,6 "
		   "\r\n \t\n",
		   0, 3, 2, six, NULL);
	check_good("-1.5,2E-3,+3e+10\n.5,-0.,7.\n", 0, 3, 2, exp, NULL);
	/* a UTF-8 byte order mark, with and without a header */
	check_good("\xef\xbb\xbf"
		   "1,2,3\n4,5,6\n",
		   0, 3, 2, six, NULL);
	check_good("\xef\xbb\xbf"
		   "gr\xc3\xb6\xc3\x9f"
		   "e,b,c\n1,2,3\n4,5,6\n",
		   0, 3, 2, six, NULL);
	/* an id column, with a header or not */
	check_good("id,a,b,c\n7,1,2,3\n18446744073709551615,4,5,6\n",
		   ES_VECS_ID_COLUMN, 3, 2, six, ids);
	check_good("7, 1,2,3\n18446744073709551615 ,4,5,6\n", ES_VECS_ID_COLUMN,
		   3, 2, six, ids);
	/* ES_VECS_HEADER: line 1 is a header whatever it holds (pandas'
	 * index and column names), not without it */
	check_good(",0,1,2\n7,1,2,3\n18446744073709551615,4,5,6\n",
		   ES_VECS_ID_COLUMN | ES_VECS_HEADER, 3, 2, six, ids);
	check_good("0,1,2\n1,2,3\n4,5,6\n", ES_VECS_HEADER, 3, 2, six, NULL);
	/* without the flag the ids are values */
	const float seven[] = {7, 1, 2};

	check_good("7,1,2\n", 0, 3, 1, seven, NULL);
}

/* A file of many lines, more than the reader's 1 MiB buffer holds. */
static void test_many_lines(void **state)
{
	const uint64_t rows = 60000;
	FILE *f = fopen(path, "wb");
	struct es_vecs *v;
	float *all = malloc(rows * 8 * sizeof(float));
	uint64_t got = 0;
	long n;

	assert_non_null(f);
	assert_non_null(all);
	fputs("a,b,c,d,e,f,g,h\n", f);
	for (uint64_t i = 0; i < rows; i++) {
		for (int j = 0; j < 8; j++)
			fprintf(f, "%s%llu.%d", j ? "," : "",
				(unsigned long long)i, j);
		fputs(i % 1000 ? "\n" : "\n\n", f);
	}
	fclose(f);
	assert_int_equal(es_vecs_open_as(&v, path, ES_VECS_AUTO, 0, NULL), 0);
	assert_int_equal(es_vecs_count(v), rows);
	while ((n = es_vecs_read(v, all + got * 8, 1000)) > 0)
		got += (uint64_t)n;
	assert_int_equal(n, 0);
	assert_int_equal(got, rows);
	for (uint64_t i = 0; i < rows; i += 997) {
		char text[64];

		snprintf(text, sizeof(text), "%llu.5", (unsigned long long)i);
		assert_true(all[i * 8 + 5] == strtof(text, NULL));
	}
	assert_true(all[(rows - 1) * 8 + 7] == strtof("59999.7", NULL));
	es_vecs_close(v);
	free(all);
}

/* A line of 65536 values, longer than the reader's first buffer. */
static void test_long_line(void **state)
{
	FILE *f = fopen(path, "wb");
	struct es_vecs *v;
	float *row = malloc(65536 * sizeof(float));

	assert_non_null(f);
	assert_non_null(row);
	for (int k = 0; k < 2; k++)
		for (int j = 0; j < 65536; j++)
			fprintf(f, "%s-1.23456789e-05%s", j ? "," : "",
				j == 65535 ? "\n" : "");
	fclose(f);
	assert_int_equal(es_vecs_open_as(&v, path, ES_VECS_AUTO, 0, NULL), 0);
	assert_int_equal(es_vecs_dim(v), 65536);
	assert_int_equal(es_vecs_count(v), 2);
	assert_int_equal(es_vecs_read(v, row, 1), 1);
	assert_true(row[65535] == strtof("-1.23456789e-05", NULL));
	assert_int_equal(es_vecs_read(v, row, 1), 1);
	es_vecs_close(v);
	free(row);
}

/* The message for err at line and column (0: none). */
static void check_message(int err, const struct es_vecs_loc *loc, uint64_t line,
			  uint32_t column)
{
	char msg[512], want[512];

	es_vecs_message(msg, sizeof(msg), path, err, loc);
	if (!line)
		snprintf(want, sizeof(want), "%s: %s", path,
			 es_store_strerror(err));
	else if (column)
		snprintf(want, sizeof(want), "%s: line %llu, column %u: %s",
			 path, (unsigned long long)line, column,
			 es_store_strerror(err));
	else
		snprintf(want, sizeof(want), "%s: line %llu: %s", path,
			 (unsigned long long)line, es_store_strerror(err));
	assert_string_equal(msg, want);
}

/*
 * text must open and its first good rows read, then row bad (0-based) at
 * line, column be refused with err.
 */
static void expect_read(const char *text, unsigned flags, int err, uint64_t bad,
			uint64_t line, uint32_t column)
{
	struct es_vecs_loc loc;
	struct es_vecs *v;
	uint64_t ids[16];
	float rows[256];

	write_text(text);
	assert_int_equal(es_vecs_open_as(&v, path, ES_VECS_AUTO, flags, NULL),
			 0);
	assert_int_equal(es_vecs_read_ids(v, rows, ids, 16), err);
	assert_int_equal(es_vecs_position(v), bad);
	es_vecs_where(v, &loc);
	check_message(err, &loc, line, column);
	es_vecs_close(v);
}

/* text must be refused when opened, at line and column. */
static void expect_open(const char *text, unsigned flags, int err,
			uint64_t line, uint32_t column)
{
	struct es_vecs_loc loc;
	struct es_vecs *v;

	write_text(text);
	assert_int_equal(es_vecs_open_as(&v, path, ES_VECS_AUTO, flags, &loc),
			 err);
	assert_null(v);
	check_message(err, &loc, line, column);
}

static void test_bad_values(void **state)
{
	expect_read("1,2,3\n4,x,6\n", 0, ES_E_CSV_NUMBER, 1, 2, 2);
	expect_read("1,2,3\n4,5,6\n7,8,9abc\n", 0, ES_E_CSV_NUMBER, 2, 3, 3);
	expect_read("1,2,3\n4,5.5.5,6\n", 0, ES_E_CSV_NUMBER, 1, 2, 2);
	expect_read("1,2,3\n4,0x10,6\n", 0, ES_E_CSV_NUMBER, 1, 2, 2);
	expect_read("1,2,3\n4,1e,6\n", 0, ES_E_CSV_NUMBER, 1, 2, 2);
	expect_read("1,2,3\n4,.,6\n", 0, ES_E_CSV_NUMBER, 1, 2, 2);
	expect_read("1,2,3\n4,5 6,7\n", 0, ES_E_CSV_NUMBER, 1, 2, 2);
	expect_read("1,2,3\n4,\"5\",6\n", 0, ES_E_CSV_NUMBER, 1, 2, 2);
	expect_read("1,2,3\n4,,6\n", 0, ES_E_CSV_NUMBER, 1, 2, 2);
	expect_read("1,2,3\n,,\n", 0, ES_E_CSV_NUMBER, 1, 2, 1);
	/* a NUL byte in a value */
	{
		static const char nul[] = "1,2,3\n4,5\0,6\n7,8,9\n";
		struct es_vecs_loc loc;
		struct es_vecs *v;
		float rows[9];
		FILE *f = fopen(path, "wb");

		assert_non_null(f);
		fwrite(nul, 1, sizeof(nul) - 1, f);
		fclose(f);
		assert_int_equal(
		    es_vecs_open_as(&v, path, ES_VECS_CSV, 0, NULL), 0);
		assert_int_equal(es_vecs_read(v, rows, 3), ES_E_CSV_NUMBER);
		es_vecs_where(v, &loc);
		check_message(ES_E_CSV_NUMBER, &loc, 2, 2);
		es_vecs_close(v);
	}
	/* NaN and infinity refused, as .fvecs import refuses them */
	expect_read("1,2,3\n4,nan,6\n", 0, ES_E_VECS_NONFINITE, 1, 2, 2);
	expect_read("1,2,3\n4,5,-Infinity\n", 0, ES_E_VECS_NONFINITE, 1, 2, 3);
	expect_read("1,2,3\n\n\n4,5,inf\n", 0, ES_E_VECS_NONFINITE, 1, 4, 3);
	/* outside float32 */
	expect_read("1,2,3\n4,5,1e39\n", 0, ES_E_VECS_RANGE, 1, 2, 3);
	expect_read("1,2,3\n-3.5e38,5,6\n", 0, ES_E_VECS_RANGE, 1, 2, 1);
	/* an error after a header and blank lines names the file's line */
	expect_read("a,b\n\n1,2\n\n3,q\n", 0, ES_E_CSV_NUMBER, 1, 5, 2);
	/* in the first row (after a header): refused at open */
	expect_open("a,b,c\n1,2,x\n", 0, ES_E_CSV_NUMBER, 2, 3);
	expect_open("a,b,c\n1,nan,3\n", 0, ES_E_VECS_NONFINITE, 2, 2);
	expect_open("nan,1,2\n", 0, ES_E_VECS_NONFINITE, 1, 1);
	/* a first line with numbers in it is a row, not a header: its
	 * mistake is refused, never skipped */
	expect_open("1.0,2.0,3.O\n4,5,6\n", 0, ES_E_CSV_NUMBER, 1, 3);
	expect_open("1,,3\n4,5,6\n", 0, ES_E_CSV_NUMBER, 1, 2);
	expect_open("-1,4,5\n1,2,3\n", ES_VECS_ID_COLUMN, ES_E_CSV_ID, 1, 1);
	/* pandas' header with an index: numbers, so a row, refused (the
	 * import's --header says it is one) */
	expect_open(",0,1,2\n7,1,2,3\n", ES_VECS_ID_COLUMN, ES_E_CSV_ID, 1, 1);
	expect_open("x,1e39\n1,2\n", 0, ES_E_CSV_NUMBER, 1, 1);
}

/* A file cut after it was opened: the rows it lost are an error, not
 * the end of the file. */
static void test_shrunk(void **state)
{
	struct es_vecs *v;
	float rows[3 * 4];

	write_text("1,2,3\n4,5,6\n7,8,9\n10,11,12\n");
	assert_int_equal(es_vecs_open_as(&v, path, ES_VECS_CSV, 0, NULL), 0);
	assert_int_equal(es_vecs_count(v), 4);
	assert_int_equal(truncate(path, 12), 0); /* two rows left */
	assert_int_equal(es_vecs_read(v, rows, 4), ES_E_CSV_SHRUNK);
	es_vecs_close(v);
}

static void test_bad_rows(void **state)
{
	expect_read("1,2,3\n4,5\n", 0, ES_E_CSV_COLUMNS, 1, 2, 3);
	expect_read("1,2,3\n4,5,6,7\n", 0, ES_E_CSV_COLUMNS, 1, 2, 4);
	expect_read("1,2,3\n4,5,6,\n", 0, ES_E_CSV_COLUMNS, 1, 2, 4);
	expect_read("h\n1,2,3\n4,5,6\n7\n", 0, ES_E_CSV_COLUMNS, 2, 4, 2);
	/* nothing to read */
	expect_open("", 0, ES_E_VECS_EMPTY, 0, 0);
	write_text("");
	struct es_vecs *v;

	assert_int_equal(es_vecs_open_as(&v, path, ES_VECS_CSV, 0, NULL),
			 ES_E_VECS_EMPTY);
	write_text("\n \r\n\t\n");
	assert_int_equal(es_vecs_open_as(&v, path, ES_VECS_AUTO, 0, NULL),
			 ES_E_VECS_EMPTY);
	write_text("x,y,z\n\n");
	assert_int_equal(es_vecs_open_as(&v, path, ES_VECS_AUTO, 0, NULL),
			 ES_E_VECS_EMPTY);
}

static void test_bad_ids(void **state)
{
	expect_read("1,2,3\n-1,4,5\n", ES_VECS_ID_COLUMN, ES_E_CSV_ID, 1, 2, 1);
	expect_read("1,2,3\n18446744073709551616,4,5\n", ES_VECS_ID_COLUMN,
		    ES_E_CSV_ID, 1, 2, 1);
	expect_read("1,2,3\n1.5,4,5\n", ES_VECS_ID_COLUMN, ES_E_CSV_ID, 1, 2,
		    1);
	expect_read("1,2,3\n,4,5\n", ES_VECS_ID_COLUMN, ES_E_CSV_ID, 1, 2, 1);
	expect_read("1,2,3\n2,4,x\n", ES_VECS_ID_COLUMN, ES_E_CSV_NUMBER, 1, 2,
		    3);
	/* an id column and no values */
	expect_open("1\n2\n", ES_VECS_ID_COLUMN, ES_E_VECS_DIM, 1, 0);
	expect_open("id\n1\n", ES_VECS_ID_COLUMN, ES_E_VECS_DIM, 2, 0);
}

static void test_too_big(void **state)
{
	FILE *f = fopen(path, "wb");

	/* more values than ES_VECS_MAX_DIM */
	assert_non_null(f);
	for (int j = 0; j <= 65536; j++)
		fprintf(f, "%s1", j ? "," : "");
	fputc('\n', f);
	fclose(f);
	struct es_vecs_loc loc;
	struct es_vecs *v;

	assert_int_equal(es_vecs_open_as(&v, path, ES_VECS_AUTO, 0, &loc),
			 ES_E_VECS_DIM);
	check_message(ES_E_VECS_DIM, &loc, 1, 65537);
	/* a line of more than 8 MiB */
	f = fopen(path, "wb");
	assert_non_null(f);
	fputs("1,2\n3,", f);
	for (int j = 0; j < (9 << 20); j++)
		fputc('4', f);
	fputc('\n', f);
	fclose(f);
	assert_int_equal(es_vecs_open_as(&v, path, ES_VECS_AUTO, 0, &loc),
			 ES_E_CSV_LINE);
	check_message(ES_E_CSV_LINE, &loc, 2, 0);
}

/* Every CSV code has its own message (no other module's code). */
static void test_messages(void **state)
{
	assert_string_equal(es_store_strerror(ES_E_CSV_NUMBER),
			    "CSV value is empty or not a decimal number");
	assert_string_equal(es_store_strerror(ES_E_CSV_COLUMNS),
			    "CSV row has a different number of values from "
			    "the first row");
	assert_string_equal(es_store_strerror(ES_E_CSV_ID),
			    "CSV id is not a whole number from 0 to 2^64 - 1");
	assert_string_equal(es_store_strerror(ES_E_CSV_LINE),
			    "CSV line is longer than 8 MiB");
	assert_string_equal(es_store_strerror(ES_E_VECS_RANGE),
			    "value is outside float32's range");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_good),      cmocka_unit_test(test_many_lines),
	    cmocka_unit_test(test_long_line), cmocka_unit_test(test_bad_values),
	    cmocka_unit_test(test_bad_rows),  cmocka_unit_test(test_bad_ids),
	    cmocka_unit_test(test_too_big),   cmocka_unit_test(test_messages),
	    cmocka_unit_test(test_shrunk),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
