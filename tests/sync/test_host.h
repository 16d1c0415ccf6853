/*
 * An in-memory es_sync_host for the sync tests: collections and segments
 * in arrays behind one mutex, segment files as real NDVS files in a
 * directory, installs that move the staged file there and record it, acks
 * in a table, and log lines kept for the test to search.
 */
#ifndef EDGESYNC_TEST_SYNC_HOST_H
#define EDGESYNC_TEST_SYNC_HOST_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "edgesync/sync.h"

#define TH_COLLS 8
#define TH_SEGS	 64
#define TH_ACKS	 32
#define TH_LOGS	 512
#define TH_DEVS	 8

struct th_seg {
	struct es_sync_segment s;
	char path[640];
	char index_path[640]; /* "" without an index */
	struct es_sync_tombstone *t;
	size_t nt;
	/* Clock runs: as install received them, or set by th_set_clocks;
	 * none (nck 0) is {0, seal_hlc} to segment_clocks. */
	struct es_clock_run *ck;
	size_t nck;
};

struct th_coll {
	struct es_sync_collection c;
	struct th_seg segs[TH_SEGS];
	size_t n;
};

struct th_ack {
	char peer[80], coll[80];
	int dir;
	uint64_t v;
};

struct test_host {
	pthread_mutex_t lock;
	char dir[600];
	char device[ES_SYNC_DEVICE_MAX + 1];
	struct th_coll colls[TH_COLLS];
	size_t ncolls;
	struct th_ack acks[TH_ACKS];
	size_t nacks;
	int64_t next_id;
	uint64_t installs;
	uint64_t hlc_seen;
	char *logs[TH_LOGS];
	size_t nlogs;
	int verbose;
	const char *name;
	/* run-time approvals (th_approvals): devices asked about, approved */
	char seen[TH_DEVS][ES_SYNC_DEVICE_MAX + 1];
	unsigned seen_count[TH_DEVS];
	int approved[TH_DEVS];
	size_t nseen;
	int approval_err; /* answered instead when < 0 */
	int refuse_index; /* install_indexed refuses every index with it */
	uint64_t indexed_installs; /* installs that kept their index */
	/* installs refused for clock runs that break es_clock_run's rules
	 * (checked here, apart from sync's own checks) */
	unsigned bad_clocks;
	unsigned restarts; /* times sync asked for a restart */
	struct es_sync_host api;
};

/* dir is created; files of this host live there. */
void th_init(struct test_host *h, const char *name, const char *dir,
	     const char *device);
void th_fini(struct test_host *h);

void th_add_collection(struct test_host *h, const char *name, uint32_t dim,
		       uint32_t flags);
/*
 * th_add_segment writes an NDVS segment of count vectors (values from
 * seed) with ntombs tombstones, origin as given ("" for this host's
 * device), and records it; returns its add_version.
 */
uint64_t th_add_segment(struct test_host *h, const char *coll, uint64_t count,
			uint32_t seed, size_t ntombs, const char *origin,
			uint64_t origin_seq);

/*
 * th_add_index gives segment i of coll an "index": size bytes from seed
 * next to it, listed with its size and CRC32C (the host of the sync
 * tests never looks inside an index; the store's own tests do).
 */
void th_add_index(struct test_host *h, const char *coll, size_t i,
		  uint64_t size, uint32_t seed);
/* 1 if (coll, origin, seq) has an index in a and in b, of the same
 * bytes; 0 if not; -1 if b has no index for it. */
int th_same_index(struct test_host *a, struct test_host *b, const char *coll,
		  const char *origin, uint64_t seq);

/* th_set_clocks records the n runs at c as segment i of coll's. */
void th_set_clocks(struct test_host *h, const char *coll, size_t i,
		   const struct es_clock_run *c, size_t n);
/*
 * th_clocks: a copy (*out malloc'ed, NULL when none) of the runs the
 * host recorded for (coll, origin, seq): as install received them, or
 * th_set_clocks set them. -1 if it has no such segment.
 */
int th_clocks(struct test_host *h, const char *coll, const char *origin,
	      uint64_t seq, struct es_clock_run **out, size_t *n);

/* The number of segments in coll (0 if it does not exist). */
size_t th_count(struct test_host *h, const char *coll);
/* Copies of segment i of coll (and its path); 0 or -1. */
int th_segment(struct test_host *h, const char *coll, size_t i,
	       struct th_seg *out);
/* 1 if the files of (coll, origin, seq) in a and b hold the same bytes,
 * the same tombstones and the same clock runs (as segment_clocks gives
 * them). */
int th_same(struct test_host *a, struct test_host *b, const char *coll,
	    const char *origin, uint64_t seq);
uint64_t th_ack_value(struct test_host *h, const char *coll, int dir);
void th_clear_acks(struct test_host *h);
uint64_t th_installs(struct test_host *h);
/* The number of log lines containing needle. */
size_t th_log_count(struct test_host *h, const char *needle);
/* The index of the first log line containing needle, or the number of
 * lines if none does (so a line logged later compares greater). */
size_t th_log_first(struct test_host *h, const char *needle);
uint32_t th_flags(struct test_host *h, const char *coll);
/*
 * th_approvals gives h a device_approved callback (before the node
 * starts): it records each device asked about and answers its approval
 * (th_approve), or h->approval_err when that is negative.
 */
void th_approvals(struct test_host *h);
/* Approves (1) or revokes (0) device in h's table (recorded if new). */
void th_approve(struct test_host *h, const char *device, int approved);
/* How many times the cloud asked h about device. */
unsigned th_asked(struct test_host *h, const char *device);

/* ---- helpers of the tests --------------------------------------------- */

/* A TCP port on 127.0.0.1 that was free a moment ago. */
int th_free_port(void);
/* A fresh directory under $TMPDIR or /tmp. */
void th_tmpdir(char *buf, size_t size, const char *tag);
void th_rm_rf(const char *dir);

/*
 * A test program's main: TH_RUN(tests, root, tag) runs the cmocka tests
 * with a fresh directory (th_tmpdir) in the char array root, removed
 * afterwards unless ES_TEST_KEEP is set; ES_TEST_FILTER picks tests by
 * name.
 */
#define TH_RUN(tests, root, tag)                                               \
	(th_group(root, sizeof(root), tag),                                    \
	 cmocka_run_group_tests(tests, th_group_setup, th_group_teardown))
void th_group(char *root, size_t size, const char *tag);
int th_group_setup(void **state);
int th_group_teardown(void **state);
uint64_t th_ms(void);
/* The number of files in dir whose names end in suffix, and the size of
 * the last one found. */
size_t th_files(const char *dir, const char *suffix, uint64_t *size);

/* Waits (up to 60 s; a bound for hangs, not a timing check) for cond. */
#define TH_WAIT(cond, what)                                                    \
	do {                                                                   \
		uint64_t th_t0_ = th_ms();                                     \
		while (!(cond)) {                                              \
			if (th_ms() - th_t0_ > 60000)                          \
				fail_msg("timed out waiting for %s", what);    \
			usleep(20000);                                         \
		}                                                              \
	} while (0)

/* An agent under test: its host, config and sync handle. */
struct th_node {
	struct test_host h;
	struct es_sync *s;
	struct es_sync_config c;
	const char *peers[1];
	const char *allow[4];
	char staging[512];
	char url[160];
	char peer_url[160];
};

/* Fills n for role with files under root/name; token set. */
void th_node_init(struct th_node *n, const char *root, const char *name,
		  const char *device, enum es_sync_role role);
int th_node_start(struct th_node *n);
void th_node_stop(struct th_node *n);
/* n's status for its first peer (edge) or for device (cloud); 0 or -1. */
int th_status(struct th_node *n, const char *device,
	      struct es_sync_peer_status *st);

#endif
