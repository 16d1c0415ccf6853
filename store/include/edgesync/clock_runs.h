/*
 * edgesync: the clocks of a segment's rows, wherever they are kept or
 * checked (the store, the manifest, a sync peer).
 *
 * Every row of a segment was written at a hybrid logical clock, and its
 * version is (that clock, the segment's origin device). The rows of a
 * segment are written grouped by clock, so the clocks are kept as runs:
 * run i gives rows [row_i, row_{i+1}) (the last run: up to count) the
 * clock hlc_i. A valid list for a segment of count rows and seal_hlc:
 *   - count 0: no runs; otherwise 1 .. min(count, ES_CLOCK_RUNS_MAX);
 *   - the first run starts at row 0, rows strictly increase, each < count;
 *   - clocks strictly increase (a segment's rows are in the order of
 *     their writes) up to the last run's, which is seal_hlc (the
 *     segment's clock is its newest write's).
 * So one set of row clocks has exactly one list, and replicas that hold
 * the same clocks hold the same bytes. A segment recorded without runs
 * (before they were kept) is one run {0, seal_hlc}.
 */
#ifndef EDGESYNC_CLOCK_RUNS_H
#define EDGESYNC_CLOCK_RUNS_H

#include <stddef.h>
#include <stdint.h>

/* Runs one segment may have (what sync carries for one). */
#define ES_CLOCK_RUNS_MAX (1u << 20)

struct es_clock_run {
	uint64_t row; /* first row of the run */
	uint64_t hlc; /* the clock of its rows' write */
};

/* Which part of the rule a run breaks (es_clock_run_check). */
enum es_clock_run_fault {
	ES_CLOCK_RUN_OK,
	ES_CLOCK_RUN_FIRST_ROW, /* the first run does not start at row 0 */
	ES_CLOCK_RUN_ROW_ORDER, /* its row is not after the run before */
	ES_CLOCK_RUN_ROW_PAST,	/* its row is not below count */
	ES_CLOCK_RUN_HLC_ORDER, /* its hlc is not above the run before */
	ES_CLOCK_RUN_HLC_SEAL,	/* above seal_hlc, or at it before the last */
	ES_CLOCK_RUN_HLC_NOT_LAST, /* the last run's hlc is not seal_hlc */
};

/*
 * es_clock_run_check: run k of a list of total runs (1 <= total) for a
 * segment of count rows and seal_hlc, prev being run k - 1 (unused when k
 * is 0). Runs checked one by one in order this way, with a valid total
 * (es_clock_runs_total_ok), make a valid list: pages of a list that
 * arrive apart are checked as they come.
 */
static inline enum es_clock_run_fault
es_clock_run_check(const struct es_clock_run *prev,
		   const struct es_clock_run *run, uint64_t k, uint64_t total,
		   uint64_t count, uint64_t seal_hlc)
{
	if (k == 0 && run->row != 0)
		return ES_CLOCK_RUN_FIRST_ROW;
	if (k > 0 && run->row <= prev->row)
		return ES_CLOCK_RUN_ROW_ORDER;
	if (run->row >= count)
		return ES_CLOCK_RUN_ROW_PAST;
	if (k > 0 && run->hlc <= prev->hlc)
		return ES_CLOCK_RUN_HLC_ORDER;
	if (run->hlc > seal_hlc || (k + 1 < total && run->hlc == seal_hlc))
		return ES_CLOCK_RUN_HLC_SEAL;
	if (k + 1 == total && run->hlc != seal_hlc)
		return ES_CLOCK_RUN_HLC_NOT_LAST;
	return ES_CLOCK_RUN_OK;
}

/* 1 if a segment of count rows may have total runs, else 0. */
static inline int es_clock_runs_total_ok(uint64_t total, uint64_t count)
{
	return count == 0
		   ? total == 0
		   : total >= 1 && total <= count && total <= ES_CLOCK_RUNS_MAX;
}

/*
 * es_clock_runs_check: 0 if runs[0..n) is a valid list for a segment of
 * count rows and seal_hlc (above), else the index of the first bad run
 * plus 1 (n + 1 when the number of runs is wrong), for messages.
 */
static inline size_t es_clock_runs_check(const struct es_clock_run *runs,
					 size_t n, uint64_t count,
					 uint64_t seal_hlc)
{
	if (!es_clock_runs_total_ok(n, count))
		return n + 1;
	for (size_t i = 0; i < n; i++)
		if (es_clock_run_check(i ? &runs[i - 1] : NULL, &runs[i], i, n,
				       count, seal_hlc))
			return i + 1;
	return 0;
}

/* The clock of row, in a valid list that covers it. */
static inline uint64_t es_clock_runs_at(const struct es_clock_run *runs,
					size_t n, uint64_t row)
{
	size_t lo = 0, hi = n; /* the run is in [lo, hi) */

	while (hi - lo > 1) {
		size_t mid = lo + (hi - lo) / 2;

		if (runs[mid].row <= row)
			lo = mid;
		else
			hi = mid;
	}
	return runs[lo].hlc;
}

#endif
