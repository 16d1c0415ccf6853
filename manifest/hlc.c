/*
 * The hybrid logical clock: 48 bits of Unix milliseconds above a 16-bit
 * counter, so HLCs compare as plain integers.
 *
 *   es_manifest_hlc_now      next = max(wall << 16, last + 1)
 *   es_manifest_hlc_observe  last = max(last, remote)
 *
 * Invariants:
 *   1. hlc_last only grows, and never passes hlc_ceiling, which is durable
 *      (meta.hlc_ceiling) before any HLC at or below it is handed out.
 *   2. At open, hlc_last = hlc_ceiling: every HLC of earlier runs was at
 *      or below it, so the clock never goes back across a restart or a
 *      crash, whatever the wall clock did in between.
 *   3. A new ceiling is next + WINDOW_MS, so while the wall clock runs
 *      normally the ceiling is written about once per WINDOW_MS of use,
 *      not once per call. The price: after a restart the clock may run
 *      up to WINDOW_MS ahead of the wall clock until the wall catches up.
 *   4. Every HLC stays <= ES_MANIFEST_HLC_MAX (below 2^63); -EOVERFLOW if
 *      the counter would pass it, -ERANGE for a remote clock above it.
 */
#include <errno.h>
#include <time.h>

#include "manifest_impl.h"
#include "manifest_test.h"

#define WINDOW_MS 1000u

static uint64_t wall_ms(void *arg)
{
	struct timespec ts;

	(void)arg;
	clock_gettime(CLOCK_REALTIME, &ts);
	if (ts.tv_sec < 0)
		return 0;
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void manifest_set_clock(struct es_manifest *m, uint64_t (*now_ms)(void *),
			void *arg)
{
	m->clock_ms = now_ms ? now_ms : wall_ms;
	m->clock_arg = now_ms ? arg : NULL;
}

uint64_t manifest_now_ms(struct es_manifest *m)
{
	return m->clock_ms(m->clock_arg);
}

static int ceiling_store(struct es_manifest *m, uint64_t ceiling)
{
	int rc = manifest_begin(m);

	if (rc)
		return rc;
	rc = manifest_meta_put_u64(m, META_HLC_CEILING, ceiling);
	if (rc == 0)
		rc = manifest_commit(m);
	if (rc)
		manifest_rollback(m);
	return rc;
}

/* Moves the clock to next (> hlc_last), persisting a ceiling first. */
static int advance(struct es_manifest *m, uint64_t next)
{
	const uint64_t window = (uint64_t)WINDOW_MS << 16;
	uint64_t ceiling;
	int rc;

	if (next > m->hlc_ceiling) {
		ceiling = next > ES_MANIFEST_HLC_MAX - window
			      ? ES_MANIFEST_HLC_MAX
			      : next + window;
		rc = ceiling_store(m, ceiling);
		if (rc)
			return rc;
		m->hlc_ceiling = ceiling;
	}
	m->hlc_last = next;
	return 0;
}

int es_manifest_hlc_now(struct es_manifest *m, uint64_t *hlc)
{
	uint64_t wall = manifest_now_ms(m);
	uint64_t next;
	int rc;

	if (wall > ES_MANIFEST_HLC_MS(ES_MANIFEST_HLC_MAX))
		wall = ES_MANIFEST_HLC_MS(ES_MANIFEST_HLC_MAX);
	next = wall << 16;
	if (next <= m->hlc_last) {
		if (m->hlc_last >= ES_MANIFEST_HLC_MAX)
			return manifest_fail(m, -EOVERFLOW,
					     "hybrid logical clock at its "
					     "maximum");
		next = m->hlc_last + 1;
	}
	rc = advance(m, next);
	if (rc)
		return rc;
	*hlc = next;
	return 0;
}

int es_manifest_hlc_observe(struct es_manifest *m, uint64_t remote_hlc)
{
	if (remote_hlc > ES_MANIFEST_HLC_MAX)
		return manifest_fail(m, -ERANGE,
				     "remote clock %llu is above 2^63",
				     (unsigned long long)remote_hlc);
	if (remote_hlc <= m->hlc_last)
		return 0;
	return advance(m, remote_hlc);
}
