/*
 * An in-memory engine (engine.h) for testing the API server alone: exact
 * search, no disk. A search on the collection named "slow" blocks until
 * fake_engine_release(), so tests can hold a request in flight.
 */
#ifndef FAKE_ENGINE_H
#define FAKE_ENGINE_H

#include "engine.h"

/* Searches on "slow" that have entered the engine so far. */
unsigned fake_engine_slow_entered(struct es_engine *e);
/* Waits until n searches on "slow" have entered. */
void fake_engine_wait_slow(struct es_engine *e, unsigned n);
/* Lets n searches on "slow" finish, blocked or to come. */
void fake_engine_permit(struct es_engine *e, unsigned n);
/* Lets every blocked (and future) search on "slow" finish. */
void fake_engine_release(struct es_engine *e);
/* Makes every call fail with err from now on (0: stop failing). */
void fake_engine_fail(struct es_engine *e, int err);
/*
 * Right after the next es_engine_collection_dim on name has answered, the
 * collection is dropped and created again, empty, with dim: the race of a
 * request with a drop and create, made to happen.
 */
void fake_engine_redim_after_dim(struct es_engine *e, const char *name,
				 uint32_t dim);

#endif
