/*
 * Crash test: a child process runs the engine and writes from several
 * threads (inserts, upserts, deletes) with a small seal threshold, so
 * seals and index builds run all the time; it reports every acknowledged
 * batch through a pipe. The parent kills it with SIGKILL at a random
 * moment, reopens the data directory and checks:
 *   - every acknowledged write is there, at its version or a later one;
 *   - no batch is half-visible: the ids of one batch all show the same
 *     batch, or a later write of theirs;
 *   - every segment the manifest names exists and verifies, and no other
 *     segment file is left.
 * ES_CRASH_ROUNDS sets the number of kills (default 30; CI sets 200).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "edgesync/ndvs.h"
#include "engine.h"

#define DIM	16
#define IDS	3000 /* ids; writer w owns those = w mod WRITERS */
#define BATCH	40
#define WRITERS 3

/*
 * What a writer tells the parent: an intent before each batch, an ack
 * after it. Writer w owns the ids congruent to w modulo WRITERS, so each
 * id has one writer and its batches are totally ordered: the parent can
 * compute exactly what must be there. At most one batch per writer is in
 * flight at a kill (an intent without ack): it may be there or not, but
 * whole or not at all.
 */
struct msg {
	uint32_t ack; /* 0: intent, 1: acknowledged */
	uint32_t writer;
	uint32_t seq;	/* the writer's batch number, its version */
	uint32_t first; /* index into the writer's ids */
	uint32_t stride;
	uint32_t deleted; /* the batch deletes its ids */
};

static char dir[64];
static int msg_fd;
static uint32_t next_seq[WRITERS]; /* set by the parent before fork */

static uint32_t batch_id(const struct msg *m, uint32_t i)
{
	uint32_t own = IDS / WRITERS;

	return ((m->first + i * m->stride) % own) * WRITERS + m->writer;
}

/* A vector says who wrote it: (writer, seq, id) in its first values. */
static void vec_of(uint32_t writer, uint32_t seq, uint32_t id, float *v)
{
	v[0] = (float)writer;
	v[1] = (float)seq;
	v[2] = (float)id;
	for (int j = 3; j < DIM; j++)
		v[j] = (float)((id * 31 + j * 7 + seq) % 101);
}

static void *writer_main(void *p)
{
	struct es_engine *e = ((void **)p)[0];
	uint32_t writer = (uint32_t)(uintptr_t)((void **)p)[1];
	uint64_t seed =
	    0x9e3779b97f4a7c15ull * (writer + 1) ^ (uint64_t)getpid();
	float vec[BATCH * DIM];
	uint64_t ids[BATCH];

	for (uint32_t seq = next_seq[writer];; seq++) {
		struct msg m = {.writer = writer, .seq = seq};
		int rc;

		seed = seed * 6364136223846793005ull + 1442695040888963407ull;
		m.first = (uint32_t)(seed >> 33);
		m.stride = 1 + (uint32_t)(seed >> 20) % 97;
		m.deleted = (seed >> 10) % 8 == 0;
		for (uint32_t i = 0; i < BATCH; i++) {
			ids[i] = batch_id(&m, i);
			vec_of(writer, seq, (uint32_t)ids[i], vec + i * DIM);
		}
		/* atomic: pipe writes this small are never torn */
		if (write(msg_fd, &m, sizeof(m)) != sizeof(m))
			_exit(4);
		rc = m.deleted
			 ? es_engine_delete(e, "crash", ids, BATCH)
			 : es_engine_insert(e, "crash", ids, vec, BATCH, DIM);
		if (rc != 0)
			_exit(3);
		m.ack = 1;
		if (write(msg_fd, &m, sizeof(m)) != sizeof(m))
			_exit(4);
	}
	return NULL;
}

/* seal_threshold 0: never seal (a checker wants a quiet directory) */
static struct es_engine *open_engine(uint64_t seal_threshold)
{
	struct es_engine_config cfg;
	struct es_engine *e;

	es_engine_config_defaults(&cfg);
	cfg.data_dir = dir;
	cfg.seal_threshold = seal_threshold ? seal_threshold : UINT64_MAX;
	cfg.index_R = 16;
	cfg.index_L = 32;
	cfg.build_threads = 1;
	if (es_engine_open(&e, &cfg) != 0)
		return NULL;
	return e;
}

static void child(void)
{
	void *args[WRITERS][2];
	pthread_t t[WRITERS];
	struct es_engine *e = open_engine(300);
	int rc;

	if (!e)
		_exit(2);
	rc = es_engine_collection_create(e, "crash", DIM, ES_METRIC_L2, 0);
	if (rc != 0 && rc != ES_E_ENGINE_EXISTS)
		_exit(2);
	for (int i = 0; i < WRITERS; i++) {
		args[i][0] = e;
		args[i][1] = (void *)(uintptr_t)i;
		pthread_create(&t[i], NULL, writer_main, args[i]);
	}
	pause(); /* until killed */
	_exit(0);
}

/* What the parent knows must be there: per id, 0 absent or seq. */
static uint32_t must[IDS];
static struct msg pending[WRITERS];
static int has_pending[WRITERS];
static uint64_t acked_batches;

static void apply_msg_effect(const struct msg *m)
{
	for (uint32_t i = 0; i < BATCH; i++)
		must[batch_id(m, i)] = m->deleted ? 0 : m->seq;
}

static void read_msgs(int fd)
{
	struct msg m;

	while (read(fd, &m, sizeof(m)) == sizeof(m)) {
		assert_true(m.writer < WRITERS);
		if (!m.ack) {
			pending[m.writer] = m;
			has_pending[m.writer] = 1;
		} else {
			apply_msg_effect(&m);
			has_pending[m.writer] = 0;
			acked_batches++;
		}
		next_seq[m.writer] = m.seq + 1;
	}
}

/* The seq id shows (0 if absent); checks the vector is whole. */
static uint32_t seen(struct es_engine *e, uint32_t id)
{
	float v[DIM], w[DIM];
	int rc = es_engine_get(e, "crash", id, v, DIM);

	if (rc == ES_E_ENGINE_NOTFOUND)
		return 0;
	assert_int_equal(rc, 0);
	assert_true(v[0] == (float)(id % WRITERS) && v[2] == (float)id);
	vec_of(id % WRITERS, (uint32_t)v[1], id, w);
	assert_memory_equal(v, w, sizeof(v));
	return (uint32_t)v[1];
}

/*
 * Every id shows what the acknowledged batches left, except the ids of a
 * writer's batch in flight, which show that batch for all of its ids or
 * for none.
 */
static int check_state(struct es_engine *e)
{
	static uint8_t in_flight[IDS];
	int lost = 0;

	memset(in_flight, 0, sizeof(in_flight));
	for (int w = 0; w < WRITERS; w++) {
		struct msg *m = &pending[w];
		uint32_t applied = 0, changing = 0, effect;

		if (!has_pending[w])
			continue;
		effect = m->deleted ? 0 : m->seq;
		for (uint32_t i = 0; i < BATCH; i++) {
			uint32_t id = batch_id(m, i);

			if (in_flight[id] || must[id] == effect)
				continue; /* a repeat, or nothing to change */
			in_flight[id] = 1;
			changing++;
			applied += seen(e, id) == effect;
		}
		/* the batch is one log record: all of it or none */
		assert_true(applied == 0 || applied == changing);
		if (applied)
			apply_msg_effect(m);
		has_pending[w] = 0;
	}
	for (uint32_t id = 0; id < IDS; id++) {
		uint32_t got = seen(e, id);

		if (got != must[id]) {
			print_message("id %u: shows %u, must show %u\n", id,
				      got, must[id]);
			lost++;
		}
	}
	return lost;
}

/* Every segment named exists and verifies; no other segment file is left. */
static void check_files(struct es_engine *e)
{
	struct es_segment_info *segs;
	char path[256], cmd[300];
	size_t n, files = 0;
	FILE *p;

	assert_int_equal(es_engine_segments(e, "crash", &segs, &n), 0);
	for (size_t i = 0; i < n; i++) {
		struct es_ndvs_info info;
		struct es_ndvs *seg;

		snprintf(path, sizeof(path), "%s/collections/1/seg-%lld.ndvs",
			 dir, (long long)segs[i].id);
		assert_int_equal(
		    es_ndvs_open(&seg, path, ES_NDVS_OPEN_VERIFY, &info), 0);
		assert_int_equal(info.checksum, segs[i].checksum);
		assert_int_equal(info.count, segs[i].count);
		es_ndvs_close(seg);
	}
	snprintf(cmd, sizeof(cmd),
		 "ls %s/collections/1 | grep -c '^seg-.*ndvs$'", dir);
	p = popen(cmd, "r");
	assert_non_null(p);
	assert_int_equal(fscanf(p, "%zu", &files), 1);
	pclose(p);
	assert_int_equal(files, n);
	free(segs);
}

static void test_kill_and_recover(void **state)
{
	const char *env = getenv("ES_CRASH_ROUNDS");
	int rounds = env ? atoi(env) : 30;
	uint64_t seed = 12345;
	int lost_total = 0;

	for (int w = 0; w < WRITERS; w++)
		next_seq[w] = 1;
	for (int round = 0; round < rounds; round++) {
		int fds[2];
		pid_t pid;

		assert_int_equal(pipe(fds), 0);
		pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			close(fds[0]);
			msg_fd = fds[1];
			child();
		}
		close(fds[1]);
		seed = seed * 6364136223846793005ull + 1442695040888963407ull;
		struct timespec ts = {0, (long)(20 + (seed >> 33) % 400) *
					     1000000L};
		nanosleep(&ts, NULL);
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		read_msgs(fds[0]);
		close(fds[0]);

		struct es_engine *e = open_engine(0);

		assert_non_null(e);
		lost_total += check_state(e);
		check_files(e);
		es_engine_close(e);
	}
	print_message("%d kills, %llu acknowledged batches, %d ids wrong\n",
		      rounds, (unsigned long long)acked_batches, lost_total);
	assert_true(acked_batches > 0);
	assert_int_equal(lost_total, 0);
}

static int setup(void **state)
{
	strcpy(dir, "/tmp/es-test-crash-XXXXXX");
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_kill_and_recover),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
