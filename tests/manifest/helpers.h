/* Shared by the manifest tests: a temporary directory per test. */
#ifndef EDGESYNC_TEST_MANIFEST_HELPERS_H
#define EDGESYNC_TEST_MANIFEST_HELPERS_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct tdir {
	char dir[64];
	char db[96];
};

/* cmocka setup: *state is a fresh directory under /tmp. */
static inline int tdir_setup(void **state)
{
	struct tdir *t = calloc(1, sizeof(*t));

	if (!t)
		return -1;
	strcpy(t->dir, "/tmp/es-manifest-XXXXXX");
	if (!mkdtemp(t->dir)) {
		free(t);
		return -1;
	}
	snprintf(t->db, sizeof(t->db), "%s/manifest.db", t->dir);
	*state = t;
	return 0;
}

static inline int tdir_teardown(void **state)
{
	struct tdir *t = *state;
	const char *suffix[] = {"", "-wal", "-shm", "-journal"};
	char path[128];

	for (size_t i = 0; i < sizeof(suffix) / sizeof(suffix[0]); i++) {
		snprintf(path, sizeof(path), "%s%s", t->db, suffix[i]);
		unlink(path);
	}
	rmdir(t->dir);
	free(t);
	return 0;
}

#endif
