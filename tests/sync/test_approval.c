/*
 * Run-time approval of devices on a cloud (sync.h's device_approved and
 * es_sync_device_approval), with real es_syncs over 127.0.0.1 and the
 * in-memory host of test_host.c as the host that approves:
 *   - a device in allow_devices syncs and the host is never asked;
 *   - a device outside it that proved its identity is asked about,
 *     refused with a message that says how to approve it, and shows as
 *     awaiting approval; approved, it syncs; revoked, its connection is
 *     closed and its next hello is refused; a device in allow_devices is
 *     not closed by a revocation;
 *   - a host that fails the lookup refuses the hello as internal;
 *   - lab mode (plain tcp, token, no allow list) admits without asking; no
 *     callback means no approvals;
 *   - a TLS cloud without allow_devices and without a token starts when
 *     its host approves, admits only approved devices, and says so;
 *   - es_sync_device_check, the rule of a device id, names each fault.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "edgesync/sync.h"
#include "test_host.h"

static char root[400];
static char certs[500];

static void cloud_init(struct th_node *n, const char *name)
{
	th_node_init(n, root, name, "cloud-1", ES_SYNC_CLOUD);
	snprintf(n->url, sizeof(n->url), "tcp://127.0.0.1:%d", th_free_port());
}

/* An edge of dev with one segment of its own to upload into "t". */
static void edge_init(struct th_node *n, const char *name, const char *dev,
		      const struct th_node *cloud)
{
	th_node_init(n, root, name, dev, ES_SYNC_EDGE);
	snprintf(n->peer_url, sizeof(n->peer_url), "%s", cloud->url);
	th_add_collection(&n->h, "t", 8, ES_SYNC_FLAG_UPLOAD);
	th_add_segment(&n->h, "t", 20, 61, 0, NULL, 0);
}

static int has_error(struct th_node *n, const char *needle)
{
	struct es_sync_peer_status st;

	return th_status(n, NULL, &st) == 0 && strstr(st.last_error, needle);
}

/* 1 if the cloud's status of device says awaiting (want 1) or not. */
static int awaiting(struct th_node *cloud, const char *device, int want)
{
	struct es_sync_peer_status st;

	return th_status(cloud, device, &st) == 0 &&
	       st.awaiting_approval == want;
}

static int connected(struct th_node *cloud, const char *device)
{
	struct es_sync_peer_status st;

	return th_status(cloud, device, &st) == 0 && st.connected;
}

/* The number of segments of origin in the cloud's "t". */
static size_t from(struct th_node *cloud, const char *origin)
{
	struct th_seg seg;
	size_t n = 0;

	for (size_t i = 0; th_segment(&cloud->h, "t", i, &seg) == 0; i++)
		n += !strcmp(seg.s.origin, origin);
	return n;
}

static void test_approve_revoke(void **state)
{
	struct th_node cloud, a, b;

	cloud_init(&cloud, "ar-cloud");
	cloud.allow[0] = "dev-a";
	cloud.c.n_allow_devices = 1;
	th_approvals(&cloud.h);
	assert_int_equal(th_node_start(&cloud), 0);

	/* in allow_devices: syncs, the host is never asked */
	edge_init(&a, "ar-a", "dev-a", &cloud);
	assert_int_equal(th_node_start(&a), 0);
	TH_WAIT(from(&cloud, "dev-a") == 1, "dev-a's upload");
	assert_int_equal(th_asked(&cloud.h, "dev-a"), 0);

	/* unknown: asked about, refused with the way to approve it */
	edge_init(&b, "ar-b", "dev-b", &cloud);
	assert_int_equal(th_node_start(&b), 0);
	TH_WAIT(has_error(&b, "run `edgesync peers approve dev-b` on the "
			      "cloud"),
		"dev-b refused");
	assert_true(has_error(&b, "not in allow_devices nor approved"));
	assert_true(th_asked(&cloud.h, "dev-b") >= 1);
	TH_WAIT(awaiting(&cloud, "dev-b", 1), "dev-b awaiting approval");
	assert_false(connected(&cloud, "dev-b"));
	assert_int_equal(from(&cloud, "dev-b"), 0);
	assert_true(th_log_count(&cloud.h, "refused hello") >= 1);
	assert_true(awaiting(&cloud, "dev-a", 0));

	/* approved: syncs at its next hello */
	th_approve(&cloud.h, "dev-b", 1);
	assert_int_equal(es_sync_device_approval(cloud.s, "dev-b", 1), 0);
	assert_true(awaiting(&cloud, "dev-b", 0));
	es_sync_now(b.s);
	TH_WAIT(from(&cloud, "dev-b") == 1, "dev-b's upload once approved");
	TH_WAIT(!has_error(&b, "approve"), "dev-b's error cleared");
	TH_WAIT(connected(&cloud, "dev-b"), "dev-b connected");

	/* revoked: its connection closes, its next hello is refused */
	th_approve(&cloud.h, "dev-b", 0);
	assert_int_equal(es_sync_device_approval(cloud.s, "dev-b", 0), 0);
	assert_true(awaiting(&cloud, "dev-b", 1));
	TH_WAIT(!connected(&cloud, "dev-b"), "dev-b's connection closed");
	assert_true(th_log_count(&cloud.h, "device dev-b revoked") == 1);
	th_add_segment(&b.h, "t", 20, 62, 0, NULL, 0);
	es_sync_now(b.s);
	TH_WAIT(has_error(&b, "edgesync peers approve dev-b"),
		"dev-b refused again");
	assert_int_equal(from(&cloud, "dev-b"), 1);

	/* allow_devices admits whatever the approval: nothing closed */
	TH_WAIT(connected(&cloud, "dev-a"), "dev-a connected");
	assert_int_equal(es_sync_device_approval(cloud.s, "dev-a", 0), 1);
	assert_true(connected(&cloud, "dev-a"));
	th_add_segment(&a.h, "t", 20, 63, 0, NULL, 0);
	es_sync_now(a.s);
	TH_WAIT(from(&cloud, "dev-a") == 2, "dev-a's second upload");

	/* bad ids; an edge has nothing to approve */
	assert_int_equal(es_sync_device_approval(cloud.s, "has space", 1),
			 -EINVAL);
	assert_int_equal(es_sync_device_approval(cloud.s, "", 1), -EINVAL);
	assert_int_equal(es_sync_device_approval(a.s, "dev-b", 0), 0);
	assert_int_equal(es_sync_role(a.s), ES_SYNC_EDGE);
	assert_int_equal(es_sync_role(cloud.s), ES_SYNC_CLOUD);

	th_node_stop(&b);
	th_node_stop(&a);
	th_node_stop(&cloud);
	th_fini(&b.h);
	th_fini(&a.h);
	th_fini(&cloud.h);
}

static void test_host_fails(void **state)
{
	struct th_node cloud, b;

	cloud_init(&cloud, "hf-cloud");
	cloud.allow[0] = "dev-a";
	cloud.c.n_allow_devices = 1;
	th_approvals(&cloud.h);
	cloud.h.approval_err = -EIO;
	assert_int_equal(th_node_start(&cloud), 0);
	edge_init(&b, "hf-b", "dev-b", &cloud);
	assert_int_equal(th_node_start(&b), 0);
	TH_WAIT(has_error(&b, "cannot look up the approval of 'dev-b'"),
		"dev-b refused as internal");
	assert_true(has_error(&b, "internal"));
	assert_int_equal(from(&cloud, "dev-b"), 0);
	th_node_stop(&b);
	th_node_stop(&cloud);
	th_fini(&b.h);
	th_fini(&cloud.h);
}

static void test_lab_and_no_callback(void **state)
{
	struct th_node lab, strict, x, y;

	/* plain tcp, token, no allow list: every token holder, no asking */
	cloud_init(&lab, "lab-cloud");
	th_approvals(&lab.h);
	assert_int_equal(th_node_start(&lab), 0);
	edge_init(&x, "lab-x", "dev-x", &lab);
	assert_int_equal(th_node_start(&x), 0);
	TH_WAIT(from(&lab, "dev-x") == 1, "dev-x's upload in lab mode");
	assert_int_equal(th_asked(&lab.h, "dev-x"), 0);
	assert_int_equal(es_sync_device_approval(lab.s, "dev-x", 0), 1);

	/* an allow list and no callback: no approvals, the same refusal */
	cloud_init(&strict, "strict-cloud");
	strict.allow[0] = "dev-a";
	strict.c.n_allow_devices = 1;
	assert_int_equal(th_node_start(&strict), 0);
	edge_init(&y, "strict-y", "dev-y", &strict);
	assert_int_equal(th_node_start(&y), 0);
	TH_WAIT(has_error(&y, "edgesync peers approve dev-y"), "dev-y refused");
	TH_WAIT(awaiting(&strict, "dev-y", 1), "dev-y awaiting");
	assert_int_equal(from(&strict, "dev-y"), 0);

	th_node_stop(&y);
	th_node_stop(&strict);
	th_node_stop(&x);
	th_node_stop(&lab);
	th_fini(&y.h);
	th_fini(&strict.h);
	th_fini(&x.h);
	th_fini(&lab.h);
}

static const char *cert(const char *name, const char *ext)
{
	static char bufs[8][600];
	static int k;
	char *b = bufs[k++ % 8];

	snprintf(b, 600, "%s/%s.%s", certs, name, ext);
	return b;
}

static void tls_node(struct th_node *n, const char *name)
{
	n->c.tls_cert = cert(name, "crt");
	n->c.tls_key = cert(name, "key");
	n->c.tls_ca = cert("ca", "crt");
	n->c.token = NULL;
}

static void test_tls_approvals_only(void **state)
{
	struct th_node cloud, a;
	char cmd[1200];

	snprintf(certs, sizeof(certs), "%s/certs", root);
	snprintf(cmd, sizeof(cmd), "mkdir -p '%s' && sh '%s' '%s'", certs,
		 getenv("ES_MAKE_CERTS") ? getenv("ES_MAKE_CERTS")
					 : ES_SYNC_TEST_DIR "/make_certs.sh",
		 certs);
	assert_int_equal(system(cmd), 0);

	cloud_init(&cloud, "tls-cloud");
	snprintf(cloud.url, sizeof(cloud.url), "tls+tcp://127.0.0.1:%d",
		 th_free_port());
	tls_node(&cloud, "cloud");
	/* no allow list, no token, no approvals: refused */
	assert_int_equal(th_node_start(&cloud), ES_E_SYNC_CONFIG);
	assert_true(th_log_count(&cloud.h, "needs allow_devices") == 1);
	/* with approvals: starts, and says whom it admits */
	th_approvals(&cloud.h);
	assert_int_equal(th_node_start(&cloud), 0);
	assert_true(th_log_count(&cloud.h, "admits only devices approved") ==
		    1);

	edge_init(&a, "tls-a", "dev-a", &cloud);
	tls_node(&a, "dev-a");
	assert_int_equal(th_node_start(&a), 0);
	TH_WAIT(has_error(&a, "edgesync peers approve dev-a"), "dev-a refused");
	TH_WAIT(awaiting(&cloud, "dev-a", 1), "dev-a awaiting");
	th_approve(&cloud.h, "dev-a", 1);
	assert_int_equal(es_sync_device_approval(cloud.s, "dev-a", 1), 0);
	es_sync_now(a.s);
	TH_WAIT(from(&cloud, "dev-a") == 1, "dev-a's upload once approved");
	assert_true(awaiting(&cloud, "dev-a", 0));

	th_node_stop(&a);
	th_node_stop(&cloud);
	th_fini(&a.h);
	th_fini(&cloud.h);
}

/* The rule every device id meets, and what it says of each fault. */
static void test_device_check(void **state)
{
	char why[160], id[80];

	(void)state;
	assert_int_equal(es_sync_device_check("edge-7", why, sizeof(why)), 0);
	assert_int_equal(es_sync_device_check("!~", NULL, 0), 0);
	memset(id, 'x', 64);
	id[64] = '\0';
	assert_int_equal(es_sync_device_check(id, NULL, 0), 0);
	id[64] = 'x';
	id[65] = '\0';
	assert_int_equal(es_sync_device_check(id, why, sizeof(why)), -EINVAL);
	assert_string_equal(why, "device id 'xxxxxxxxxxxxxxxxxxxx...' is 65 "
				 "characters, at most 64");
	assert_int_equal(es_sync_device_check("", why, sizeof(why)), -EINVAL);
	assert_string_equal(why, "device id is empty: it must be 1 to 64 "
				 "printable ASCII characters without spaces");
	assert_int_equal(es_sync_device_check("has space", why, sizeof(why)),
			 -EINVAL);
	assert_string_equal(why,
			    "device id 'has space' contains a space (at 3)");
	assert_int_equal(es_sync_device_check("tab\there", why, sizeof(why)),
			 -EINVAL);
	assert_string_equal(why, "device id 'tab?here' contains a byte that is "
				 "not printable ASCII (0x09 at 3)");
	assert_int_equal(es_sync_device_check("caf\xc3\xa9", NULL, 0), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_approve_revoke),
	    cmocka_unit_test(test_host_fails),
	    cmocka_unit_test(test_lab_and_no_callback),
	    cmocka_unit_test(test_tls_approvals_only),
	    cmocka_unit_test(test_device_check),
	};

	return TH_RUN(tests, root, "approval");
}
