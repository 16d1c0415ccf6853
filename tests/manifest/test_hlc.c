/*
 * The hybrid logical clock: strictly increasing across calls, across a
 * wall clock that stops or goes back, across observed remote clocks and
 * across reopen.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <cmocka.h>

#include "edgesync/manifest.h"
#include "helpers.h"
#include "manifest_test.h"

#define T0 1700000000000ull /* a plausible Unix time in ms */

static uint64_t fake_ms(void *arg)
{
	return *(const uint64_t *)arg;
}

static uint64_t real_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static uint64_t now(struct es_manifest *m)
{
	uint64_t h = 0;

	assert_int_equal(es_manifest_hlc_now(m, &h), 0);
	return h;
}

static void test_real_clock_monotonic(void **state)
{
	struct tdir *t = *state;
	struct es_manifest *m;
	uint64_t prev = 0, wall, h;

	assert_int_equal(es_manifest_open(&m, t->db), 0);
	for (int i = 0; i < 20000; i++) {
		wall = real_ms();
		h = now(m);
		assert_true(h > prev);
		/* Never behind the wall clock read before the call. */
		assert_true(ES_MANIFEST_HLC_MS(h) >= wall);
		prev = h;
	}
	es_manifest_close(m);
}

static void test_stuck_and_backward_clock(void **state)
{
	struct tdir *t = *state;
	struct es_manifest *m;
	uint64_t ms = T0, h, prev;

	assert_int_equal(es_manifest_open(&m, t->db), 0);
	manifest_set_clock(m, fake_ms, &ms);
	prev = now(m);
	assert_int_equal(prev, T0 << 16);
	/* A stopped wall clock: the counter moves. */
	for (int i = 1; i <= 1000; i++)
		assert_int_equal(now(m), (T0 << 16) + (uint64_t)i);
	prev = (T0 << 16) + 1000;
	/* The wall clock jumps back an hour: still increasing. */
	ms = T0 - 3600 * 1000;
	h = now(m);
	assert_int_equal(h, prev + 1);
	/* The wall clock moves ahead: the HLC follows it. */
	ms = T0 + 5;
	assert_int_equal(now(m), (T0 + 5) << 16);
	es_manifest_close(m);
}

static void test_counter_carries(void **state)
{
	struct tdir *t = *state;
	struct es_manifest *m;
	uint64_t ms = T0;

	assert_int_equal(es_manifest_open(&m, t->db), 0);
	manifest_set_clock(m, fake_ms, &ms);
	assert_int_equal(es_manifest_hlc_observe(m, (T0 << 16) | 0xfffe), 0);
	assert_int_equal(now(m), (T0 << 16) | 0xffff);
	assert_int_equal(now(m), (T0 + 1) << 16);
	assert_int_equal(now(m), ((T0 + 1) << 16) + 1);
	es_manifest_close(m);
}

static void test_reopen_wall_clock_back(void **state)
{
	struct tdir *t = *state;
	struct es_manifest *m;
	uint64_t ms, last = 0;

	/* Real clock first, then reopen at 1970 + 1 s. */
	assert_int_equal(es_manifest_open(&m, t->db), 0);
	for (int i = 0; i < 100; i++)
		last = now(m);
	es_manifest_close(m);
	ms = 1000;
	assert_int_equal(es_manifest_open(&m, t->db), 0);
	manifest_set_clock(m, fake_ms, &ms);
	assert_true(now(m) > last);
	last = now(m);
	es_manifest_close(m);

	/* Many reopens with a clock that goes back a little each time. */
	for (int round = 0; round < 20; round++) {
		ms = T0 - (uint64_t)round * 10;
		assert_int_equal(es_manifest_open(&m, t->db), 0);
		manifest_set_clock(m, fake_ms, &ms);
		for (int i = 0; i < 10; i++) {
			uint64_t h = now(m);

			assert_true(h > last);
			last = h;
		}
		es_manifest_close(m);
	}
}

static void test_observe(void **state)
{
	struct tdir *t = *state;
	const uint64_t remote = (T0 + 3600 * 1000) << 16 | 7;
	struct es_manifest *m;
	uint64_t ms = T0;

	assert_int_equal(es_manifest_open(&m, t->db), 0);
	manifest_set_clock(m, fake_ms, &ms);
	assert_int_equal(now(m), T0 << 16);
	assert_int_equal(es_manifest_hlc_observe(m, remote), 0);
	assert_int_equal(now(m), remote + 1);
	/* An older remote clock changes nothing. */
	assert_int_equal(es_manifest_hlc_observe(m, T0 << 16), 0);
	assert_int_equal(now(m), remote + 2);
	/* Above 2^63 - 1: refused, clock untouched. */
	assert_int_equal(es_manifest_hlc_observe(m, (uint64_t)INT64_MAX + 1),
			 -ERANGE);
	assert_int_equal(now(m), remote + 3);
	es_manifest_close(m);

	/* What was observed survives a restart with the wall clock behind. */
	assert_int_equal(es_manifest_open(&m, t->db), 0);
	manifest_set_clock(m, fake_ms, &ms);
	assert_true(now(m) > remote + 3);
	es_manifest_close(m);
}

static void test_observe_without_now(void **state)
{
	struct tdir *t = *state;
	const uint64_t remote = (T0 + 99) << 16;
	struct es_manifest *m;
	uint64_t ms = T0;

	assert_int_equal(es_manifest_open(&m, t->db), 0);
	assert_int_equal(es_manifest_hlc_observe(m, remote), 0);
	es_manifest_close(m);
	assert_int_equal(es_manifest_open(&m, t->db), 0);
	manifest_set_clock(m, fake_ms, &ms);
	assert_true(now(m) > remote);
	es_manifest_close(m);
}

static void test_overflow(void **state)
{
	struct tdir *t = *state;
	struct es_manifest *m;
	uint64_t h;

	assert_int_equal(es_manifest_open(&m, t->db), 0);
	assert_int_equal(es_manifest_hlc_observe(m, INT64_MAX - 1), 0);
	assert_int_equal(now(m), INT64_MAX);
	assert_int_equal(es_manifest_hlc_now(m, &h), -EOVERFLOW);
	es_manifest_close(m);
	assert_int_equal(es_manifest_open(&m, t->db), 0);
	assert_int_equal(es_manifest_hlc_now(m, &h), -EOVERFLOW);
	es_manifest_close(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_real_clock_monotonic,
					    tdir_setup, tdir_teardown),
	    cmocka_unit_test_setup_teardown(test_stuck_and_backward_clock,
					    tdir_setup, tdir_teardown),
	    cmocka_unit_test_setup_teardown(test_counter_carries, tdir_setup,
					    tdir_teardown),
	    cmocka_unit_test_setup_teardown(test_reopen_wall_clock_back,
					    tdir_setup, tdir_teardown),
	    cmocka_unit_test_setup_teardown(test_observe, tdir_setup,
					    tdir_teardown),
	    cmocka_unit_test_setup_teardown(test_observe_without_now,
					    tdir_setup, tdir_teardown),
	    cmocka_unit_test_setup_teardown(test_overflow, tdir_setup,
					    tdir_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
