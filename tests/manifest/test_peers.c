/*
 * Peers: first sight and later sightings (upsert), what a sighting may
 * and may not change, approval and its revocation, listing, validation,
 * and rows damaged on disk.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "edgesync/manifest.h"
#include "helpers.h"
#include "raw_sql.h"
#include "manifest_test.h"

struct fixture {
	struct tdir *t;
	struct es_manifest *m;
	uint64_t now; /* the manifest's wall clock, Unix ms */
};

static uint64_t fake_clock(void *arg)
{
	return *(uint64_t *)arg;
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	void *t;

	if (!f || tdir_setup(&t))
		return -1;
	f->t = t;
	if (es_manifest_open(&f->m, f->t->db))
		return -1;
	f->now = 1700000000000ull;
	manifest_set_clock(f->m, fake_clock, &f->now);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	void *t = f->t;

	es_manifest_close(f->m);
	tdir_teardown(&t);
	free(f);
	return 0;
}

static struct es_manifest_peer peer(const char *device,
				    enum es_manifest_role role,
				    const char *address, const char *identity)
{
	struct es_manifest_peer p = {.role = role};

	strcpy(p.device, device);
	strcpy(p.address, address);
	strcpy(p.identity, identity);
	return p;
}

static void assert_peer_equal(const struct es_manifest_peer *a,
			      const struct es_manifest_peer *b)
{
	assert_string_equal(a->device, b->device);
	assert_int_equal(a->role, b->role);
	assert_string_equal(a->address, b->address);
	assert_string_equal(a->identity, b->identity);
	assert_int_equal(a->approved, b->approved);
	assert_int_equal(a->first_seen_ms, b->first_seen_ms);
	assert_int_equal(a->last_seen_ms, b->last_seen_ms);
}

static void test_first_sight(void **state)
{
	struct fixture *f = *state;
	struct es_manifest_peer p, got;

	p = peer("edge-7", ES_MANIFEST_EDGE, "10.0.0.7:51234", "edge-7.lab");
	p.approved = 1;	       /* ignored: a sighting never approves */
	p.first_seen_ms = 123; /* ignored */
	assert_int_equal(es_manifest_peer_upsert(f->m, &p), 0);
	assert_string_equal(p.device, "edge-7");
	assert_int_equal(p.role, ES_MANIFEST_EDGE);
	assert_string_equal(p.address, "10.0.0.7:51234");
	assert_string_equal(p.identity, "edge-7.lab");
	assert_int_equal(p.approved, 0);
	assert_int_equal(p.first_seen_ms, f->now);
	assert_int_equal(p.last_seen_ms, f->now);

	assert_int_equal(es_manifest_peer_get(f->m, "edge-7", &got), 0);
	assert_peer_equal(&got, &p);
	assert_int_equal(es_manifest_peer_get(f->m, "edge-8", &got),
			 ES_E_MANIFEST_NOTFOUND);
	assert_int_equal(es_manifest_peer_get(f->m, "", &got),
			 ES_E_MANIFEST_NOTFOUND);

	/* A caller's time is taken as it is. */
	p = peer("cloud", ES_MANIFEST_CLOUD, "tls+tcp://cloud.example:7447",
		 "");
	p.last_seen_ms = 5000;
	assert_int_equal(es_manifest_peer_upsert(f->m, &p), 0);
	assert_int_equal(p.first_seen_ms, 5000);
	assert_int_equal(p.last_seen_ms, 5000);
	assert_string_equal(p.identity, "");
}

static void test_seen_again(void **state)
{
	struct fixture *f = *state;
	struct es_manifest_peer p, got;
	uint64_t first = f->now;

	p = peer("edge-1", ES_MANIFEST_EDGE, "10.0.0.1:4000", "CN one");
	assert_int_equal(es_manifest_peer_upsert(f->m, &p), 0);

	/* Later, from another address: address and last_seen move. */
	f->now += 60000;
	p = peer("edge-1", ES_MANIFEST_EDGE, "10.0.0.9:4100", "");
	assert_int_equal(es_manifest_peer_upsert(f->m, &p), 0);
	assert_int_equal(p.first_seen_ms, first);
	assert_int_equal(p.last_seen_ms, first + 60000);
	assert_string_equal(p.address, "10.0.0.9:4100");
	assert_string_equal(p.identity, "CN one"); /* "" keeps it */

	/* "" keeps the address too; a new identity replaces the old. */
	p = peer("edge-1", ES_MANIFEST_EDGE, "", "CN two");
	assert_int_equal(es_manifest_peer_upsert(f->m, &p), 0);
	assert_string_equal(p.address, "10.0.0.9:4100");
	assert_string_equal(p.identity, "CN two");

	/* A sighting reported late does not move last_seen back. */
	p = peer("edge-1", ES_MANIFEST_EDGE, "", "");
	p.last_seen_ms = first + 1;
	assert_int_equal(es_manifest_peer_upsert(f->m, &p), 0);
	assert_int_equal(p.last_seen_ms, first + 60000);
	assert_int_equal(p.first_seen_ms, first);

	/* The role is what the peer says now. */
	p = peer("edge-1", ES_MANIFEST_CLOUD, "", "");
	assert_int_equal(es_manifest_peer_upsert(f->m, &p), 0);
	assert_int_equal(es_manifest_peer_get(f->m, "edge-1", &got), 0);
	assert_int_equal(got.role, ES_MANIFEST_CLOUD);
}

static void test_approve(void **state)
{
	struct fixture *f = *state;
	struct es_manifest_peer p = peer("edge-2", ES_MANIFEST_EDGE, "", "");

	assert_int_equal(es_manifest_peer_approve(f->m, "edge-2", 1),
			 ES_E_MANIFEST_NOTFOUND);
	assert_non_null(strstr(es_manifest_last_error(f->m), "edge-2"));
	assert_int_equal(es_manifest_peer_upsert(f->m, &p), 0);
	assert_int_equal(p.approved, 0);
	assert_int_equal(es_manifest_peer_approve(f->m, "edge-2", 1), 0);
	assert_int_equal(es_manifest_peer_approve(f->m, "edge-2", 1), 0);

	/* Sightings keep the approval, and report it. */
	p = peer("edge-2", ES_MANIFEST_EDGE, "10.1.1.1:1", "x");
	assert_int_equal(es_manifest_peer_upsert(f->m, &p), 0);
	assert_int_equal(p.approved, 1);

	/* Revoked, across a reopen. */
	assert_int_equal(es_manifest_peer_approve(f->m, "edge-2", 0), 0);
	es_manifest_close(f->m);
	assert_int_equal(es_manifest_open(&f->m, f->t->db), 0);
	assert_int_equal(es_manifest_peer_get(f->m, "edge-2", &p), 0);
	assert_int_equal(p.approved, 0);
	assert_string_equal(p.address, "10.1.1.1:1");

	assert_int_equal(es_manifest_peer_approve(f->m, "edge-2", 2), -EINVAL);
	assert_int_equal(es_manifest_peer_approve(f->m, "a b", 1),
			 ES_E_MANIFEST_NOTFOUND);
}

static void test_list(void **state)
{
	struct fixture *f = *state;
	static const char *const devices[] = {"m", "b", "z", "a"};
	struct es_manifest_peer p, *list;
	size_t n;

	assert_int_equal(es_manifest_peer_list(f->m, &list, &n), 0);
	assert_int_equal(n, 0);
	assert_null(list);
	for (size_t i = 0; i < 4; i++) {
		p = peer(devices[i], ES_MANIFEST_EDGE, "", "");
		assert_int_equal(es_manifest_peer_upsert(f->m, &p), 0);
	}
	p = peer("b", ES_MANIFEST_EDGE, "host:1", ""); /* seen twice */
	assert_int_equal(es_manifest_peer_upsert(f->m, &p), 0);
	assert_int_equal(es_manifest_peer_approve(f->m, "z", 1), 0);

	assert_int_equal(es_manifest_peer_list(f->m, &list, &n), 0);
	assert_int_equal(n, 4);
	assert_string_equal(list[0].device, "a");
	assert_string_equal(list[1].device, "b");
	assert_string_equal(list[1].address, "host:1");
	assert_string_equal(list[2].device, "m");
	assert_string_equal(list[3].device, "z");
	assert_int_equal(list[3].approved, 1);
	free(list);
}

static void test_refused(void **state)
{
	struct fixture *f = *state;
	struct es_manifest_peer p, *list;
	char longest[ES_MANIFEST_ADDRESS_MAX + 1];
	size_t n;

	p = peer("", ES_MANIFEST_EDGE, "", "");
	assert_int_equal(es_manifest_peer_upsert(f->m, &p), -EINVAL);
	p = peer("a b", ES_MANIFEST_EDGE, "", "");
	assert_int_equal(es_manifest_peer_upsert(f->m, &p), -EINVAL);
	p = peer("d", 0, "", "");
	assert_int_equal(es_manifest_peer_upsert(f->m, &p), -EINVAL);
	p = peer("d", 3, "", "");
	assert_int_equal(es_manifest_peer_upsert(f->m, &p), -EINVAL);
	p = peer("d", ES_MANIFEST_EDGE, "host port", "");
	assert_int_equal(es_manifest_peer_upsert(f->m, &p), -EINVAL);
	p = peer("d", ES_MANIFEST_EDGE, "", "line\nbreak");
	assert_int_equal(es_manifest_peer_upsert(f->m, &p), -EINVAL);
	p = peer("d", ES_MANIFEST_EDGE, "", "del\x7f");
	assert_int_equal(es_manifest_peer_upsert(f->m, &p), -EINVAL);
	p = peer("d", ES_MANIFEST_EDGE, "", "");
	p.last_seen_ms = (uint64_t)INT64_MAX + 1;
	assert_int_equal(es_manifest_peer_upsert(f->m, &p), -ERANGE);
	/* Fields filled to the last byte, with no NUL: refused. */
	p = peer("d", ES_MANIFEST_EDGE, "", "");
	memset(p.device, 'd', sizeof(p.device));
	assert_int_equal(es_manifest_peer_upsert(f->m, &p), -EINVAL);
	p = peer("d", ES_MANIFEST_EDGE, "", "");
	memset(p.address, 'a', sizeof(p.address));
	assert_int_equal(es_manifest_peer_upsert(f->m, &p), -EINVAL);
	p = peer("d", ES_MANIFEST_EDGE, "", "");
	memset(p.identity, 'i', sizeof(p.identity));
	assert_int_equal(es_manifest_peer_upsert(f->m, &p), -EINVAL);
	assert_int_equal(es_manifest_peer_list(f->m, &list, &n), 0);
	assert_int_equal(n, 0);

	/* At the limits: accepted. Spaces and UTF-8 in a CN too. */
	memset(longest, 'a', ES_MANIFEST_ADDRESS_MAX);
	longest[ES_MANIFEST_ADDRESS_MAX] = '\0';
	p = peer("d", ES_MANIFEST_EDGE, longest, "Caf\xc3\xa9 edge 1");
	memset(p.device, 'd', ES_MANIFEST_DEVICE_MAX);
	p.device[ES_MANIFEST_DEVICE_MAX] = '\0';
	assert_int_equal(es_manifest_peer_upsert(f->m, &p), 0);
	assert_string_equal(p.address, longest);
	assert_string_equal(p.identity, "Caf\xc3\xa9 edge 1");
}

/* Rows SQLite accepts but the manifest must not hand out. */
static void test_bad_rows(void **state)
{
	static const char *const damage[] = {
	    "UPDATE peer SET address = 'a b'",
	    "UPDATE peer SET identity = 'x' || char(10)",
	    "UPDATE peer SET first_seen = last_seen + 1",
	    "UPDATE peer SET last_seen = -1",
	    "UPDATE peer SET address = x'6162'",
	    "UPDATE peer SET device = 'a b'",
	};
	struct fixture *f = *state;
	struct es_manifest_peer p, *list;
	size_t n;

	es_manifest_close(f->m);
	f->m = NULL;
	for (size_t i = 0; i < sizeof(damage) / sizeof(damage[0]); i++) {
		raw_exec(f->t->db, "DELETE FROM peer; INSERT INTO peer VALUES "
				   "('e', 1, 'h:1', 'cn', 0, 10, 20)");
		raw_exec(f->t->db, damage[i]);
		assert_int_equal(es_manifest_open(&f->m, f->t->db), 0);
		assert_int_equal(es_manifest_peer_list(f->m, &list, &n),
				 ES_E_MANIFEST_CORRUPT);
		assert_null(list);
		assert_int_equal(n, 0);
		/* The last damage renames the row: "e" is gone. */
		assert_int_equal(es_manifest_peer_get(f->m, "e", &p),
				 i + 1 < sizeof(damage) / sizeof(damage[0])
				     ? ES_E_MANIFEST_CORRUPT
				     : ES_E_MANIFEST_NOTFOUND);
		es_manifest_close(f->m);
		f->m = NULL;
	}
	/* Values a CHECK constraint forbids: open refuses. */
	raw_exec(f->t->db, "PRAGMA ignore_check_constraints = ON;"
			   "UPDATE peer SET role = 3");
	assert_int_equal(es_manifest_open(&f->m, f->t->db),
			 ES_E_MANIFEST_CORRUPT);
	raw_exec(f->t->db, "DELETE FROM peer");
	assert_int_equal(es_manifest_open(&f->m, f->t->db), 0);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
	    T(test_first_sight), T(test_seen_again), T(test_approve),
	    T(test_list),	 T(test_refused),    T(test_bad_rows),
	};
#undef T
	return cmocka_run_group_tests(tests, NULL, NULL);
}
