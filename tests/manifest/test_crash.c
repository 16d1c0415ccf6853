/*
 * Crash safety: a child process commits segments (with a tombstone each),
 * acknowledgements of them and clock readings in a loop, reporting each
 * through a pipe once its call returned; the parent SIGKILLs it at a
 * pseudo-random moment, reopens the manifest and checks that every
 * reported commit is there, that the database is consistent, and that
 * the clock did not go back.
 * Several rounds on the same file, so recovery follows recovery.
 */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "edgesync/manifest.h"
#include "helpers.h"

#define ROUNDS 6
#define DIM    8
#define PEER   "tcp://cloud:7447"

/*
 * One report: a segment id whose add returned, the version acknowledged
 * after it, the HLC read after that.
 */
struct report {
	uint64_t id;
	uint64_t ack;
	uint64_t hlc;
};

static uint32_t rng = 20240611;

static uint32_t next_rand(void)
{
	rng = rng * 1664525u + 1013904223u;
	return rng >> 8;
}

/* Child: commit until killed; any failure exits with a code. */
static void child(const char *path, int64_t coll, int fd)
{
	struct es_manifest_segment s;
	struct es_manifest_tombstone t;
	struct es_manifest *m;
	struct report r;
	int64_t id;

	if (es_manifest_open(&m, path))
		_exit(2);
	for (;;) {
		/* A reserved id, sometimes left unused as after a crash. */
		if (es_manifest_segment_reserve(m, &id))
			_exit(3);
		if (id % 5 == 0)
			continue;
		s = (struct es_manifest_segment){.id = id,
						 .collection_id = coll,
						 .size = 4096,
						 .count = 1,
						 .dim = DIM};
		t = (struct es_manifest_tombstone){.id = (uint64_t)id};
		if (es_manifest_hlc_now(m, &t.hlc))
			_exit(4);
		s.seal_hlc = t.hlc;
		if (es_manifest_segment_add(m, &s, &t, 1))
			_exit(5);
		r.id = (uint64_t)id;
		r.ack = s.add_version;
		if (es_manifest_ack_put(m, PEER, coll, ES_MANIFEST_UP, r.ack))
			_exit(8);
		if (es_manifest_hlc_now(m, &r.hlc))
			_exit(6);
		if (write(fd, &r, sizeof(r)) != (ssize_t)sizeof(r))
			_exit(7);
	}
}

/* Parent: lets the child report `want` commits, waits a little, kills. */
static size_t run_round(const char *path, int64_t coll, struct report *got,
			size_t cap)
{
	size_t n = 0, want = 5 + next_rand() % 60;
	int fds[2], status;
	ssize_t r;
	pid_t pid;

	assert_int_equal(pipe(fds), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(fds[0]);
		child(path, coll, fds[1]);
	}
	close(fds[1]);
	while (n < want && n < cap) {
		r = read(fds[0], &got[n], sizeof(got[n]));
		if (r <= 0)
			break;
		assert_int_equal(r, sizeof(got[n]));
		n++;
	}
	usleep(next_rand() % 5000);
	kill(pid, SIGKILL);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	/* Reports written before the kill are in the pipe still. */
	while (n < cap && (r = read(fds[0], &got[n], sizeof(got[n]))) > 0) {
		assert_int_equal(r, sizeof(got[n]));
		n++;
	}
	close(fds[0]);
	if (!WIFSIGNALED(status))
		fail_msg("child exited with %d before the kill",
			 WEXITSTATUS(status));
	assert_int_equal(WTERMSIG(status), SIGKILL);
	assert_true(n >= want);
	print_message("killed after %zu commits (%zu more than awaited)\n", n,
		      n - want);
	return n;
}

/*
 * Every segment has its tombstone, versions are 1..n with no gap; returns
 * how many segments there are.
 */
static size_t check_consistent(struct es_manifest *m, int64_t coll)
{
	struct es_manifest_segment *segs;
	struct es_manifest_tombstone *tombs;
	struct es_manifest_collection c;
	size_t ns, nt;

	assert_int_equal(es_manifest_check(m), 0);
	assert_int_equal(es_manifest_collection_get_id(m, coll, &c), 0);
	assert_int_equal(es_manifest_segment_list(m, coll, 0, &segs, &ns), 0);
	assert_int_equal(es_manifest_tombstone_list(m, coll, 0, &tombs, &nt),
			 0);
	assert_int_equal(c.version, ns);
	assert_int_equal(nt, ns);
	for (size_t i = 0; i < ns; i++) {
		assert_int_equal(segs[i].add_version, i + 1);
		assert_int_equal(segs[i].state, ES_SEGMENT_SEALED);
		assert_int_equal(tombs[i].id, (uint64_t)segs[i].id);
		assert_int_equal(tombs[i].add_version, segs[i].add_version);
		assert_int_equal(tombs[i].hlc, segs[i].seal_hlc);
		if (i)
			assert_true(segs[i].id > segs[i - 1].id);
	}
	free(segs);
	free(tombs);
	return ns;
}

static void test_kill_during_commits(void **state)
{
	struct tdir *t = *state;
	struct es_manifest_collection c = {.name = "crash", .dim = DIM};
	struct es_manifest_segment s;
	struct report got[4096];
	struct es_manifest *m;
	uint64_t max_hlc = 0, max_ack = 0, h, v;
	size_t total = 0;

	assert_int_equal(es_manifest_open(&m, t->db), 0);
	assert_int_equal(es_manifest_collection_create(m, &c), 0);
	es_manifest_close(m);

	for (int round = 0; round < ROUNDS; round++) {
		size_t n = run_round(t->db, c.id, got, 4096), rows;

		assert_int_equal(es_manifest_open(&m, t->db), 0);
		rows = check_consistent(m, c.id);
		print_message("round %d: %zu rows after reopen\n", round, rows);
		for (size_t i = 0; i < n; i++) {
			assert_int_equal(
			    es_manifest_segment_get(m, (int64_t)got[i].id, &s),
			    0);
			if (got[i].hlc > max_hlc)
				max_hlc = got[i].hlc;
			if (got[i].ack > max_ack)
				max_ack = got[i].ack;
		}
		/* Every reported ack is durable; none is ahead of a commit. */
		assert_int_equal(
		    es_manifest_ack_get(m, PEER, c.id, ES_MANIFEST_UP, &v), 0);
		assert_true(v >= max_ack && v <= rows);
		/* The clock resumes above anything handed out before. */
		assert_int_equal(es_manifest_hlc_now(m, &h), 0);
		assert_true(h > max_hlc);
		es_manifest_close(m);
		total += n;
	}
	assert_true(total >= ROUNDS * 5);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_kill_during_commits,
					    tdir_setup, tdir_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
