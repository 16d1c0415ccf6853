/*
 * Private to the manifest and its tests: hooks that production code never
 * calls.
 */
#ifndef EDGESYNC_MANIFEST_TEST_H
#define EDGESYNC_MANIFEST_TEST_H

#include <stdint.h>

struct es_manifest;

/*
 * manifest_open_version opens like es_manifest_open but migrates only up
 * to schema version (1..current), to build an older database.
 */
int manifest_open_version(struct es_manifest **mp, const char *path,
			  int version);

/*
 * manifest_set_clock replaces the wall clock (Unix milliseconds) the HLC
 * reads; NULL restores the real one.
 */
void manifest_set_clock(struct es_manifest *m, uint64_t (*now_ms)(void *),
			void *arg);

#endif
