/*
 * Watching for nng's faults. The edge's: a connection that nng told us
 * closed but still counts on its dialer, which then never dials again
 * (README, "Known limits"), makes the edge ask its host for a restart;
 * a cloud that is merely down does not. The cloud's: a connection that
 * nng still holds, for good, after it told the cloud it closed, does the
 * same; connections coming and going by the hundred do not. The cloud's listener watchdog
 * (nng 1.5.2 bug #1518: a peer that hangs up before the SP handshake
 * can leave a listener that never accepts again). Bare TCP connections that hang up in four ways, then a real
 * request, answered with no watchdog (it does not probe tcp://); bare
 * Unix connections on ipc:// (where this nng does freeze), after which the
 * watchdog must notice and listen again; and a probe failure on ipc://
 * forced by a test hook, after which an edge still syncs.
 *
 * The frozen listener's half-open pipes are never freed by nng itself,
 * so this program runs with an LSan suppression for libnng's own frames
 * (lsan_nng.supp); the other sync tests check leaks in full.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cmocka.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>

#include "edgesync/sync.h"
#include "sync_test.h"
#include "test_host.h"
#include "wire.h"

static char root[400];

/* Every test's end, passed or failed: no hook outlives its test. */
static int reset_hooks(void **state)
{
	(void)state;
	memset(&sync_test_hooks, 0, sizeof(sync_test_hooks));
	return 0;
}

/* ---- an edge's wedged connection ------------------------------------ */

static unsigned edge_restarts(struct th_node *n)
{
	unsigned r;

	pthread_mutex_lock(&n->h.lock);
	r = n->h.restarts;
	pthread_mutex_unlock(&n->h.lock);
	return r;
}

/* nng counting a connection on the dialer that it told us had closed:
 * what a wedged close leaves behind. */
static int one_stuck_pipe(void *arg, const char *url)
{
	(void)arg;
	(void)url;
	return 1;
}

static void test_edge_wedged(void **state)
{
	struct th_node edge;
	struct es_sync_peer_status st;

	th_node_init(&edge, root, "w-wedged", "edge-w", ES_SYNC_EDGE);
	snprintf(edge.peer_url, sizeof(edge.peer_url), "tcp://127.0.0.1:%d",
		 th_free_port());
	sync_test_hooks.dialer_pipes = one_stuck_pipe;
	sync_test_hooks.wedge_ms = 300;
	sync_test_hooks.send_timeout_ms = 200;
	assert_int_equal(th_node_start(&edge), 0);
	TH_WAIT(edge_restarts(&edge) == 1, "a restart asked for");
	assert_int_equal(th_log_count(&edge.h, "stuck closing inside nng"), 2);
	assert_int_equal(th_status(&edge, NULL, &st), 0);
	assert_non_null(strstr(st.last_error, "this process must restart"));
	th_node_stop(&edge);
	assert_int_equal(edge_restarts(&edge), 1); /* once: the thread ended */
	th_fini(&edge.h);
}

/* A loopback port held bound but not listening: a connection to it is
 * refused, and no other test can take it meanwhile. */
static int reserve_port(int *fd)
{
	struct sockaddr_in a = {.sin_family = AF_INET};
	socklen_t len = sizeof(a);

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	*fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(*fd >= 0);
	assert_int_equal(bind(*fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(getsockname(*fd, (struct sockaddr *)&a, &len), 0);
	return ntohs(a.sin_port);
}

/*
 * A cloud that is down for many rounds is no wedge: nng's own count of
 * the dialer's connections (0) agrees with ours, the edge keeps dialing,
 * and it syncs once the cloud is up. Another edge in the same process,
 * connected, must not lend its dialer's count (nng_stat_find_dialer in
 * nng 1.5.2 returns the first dialer whatever the id).
 */
static void test_edge_cloud_down(void **state)
{
	struct th_node cloud, edge, up_cloud, up_edge;
	struct es_sync_peer_status st;
	int held, port = reserve_port(&held);
	uint64_t t0;

	th_node_init(&up_cloud, root, "w-up-cloud", "cloud-2", ES_SYNC_CLOUD);
	snprintf(up_cloud.url, sizeof(up_cloud.url), "tcp://127.0.0.1:%d",
		 th_free_port());
	th_node_init(&up_edge, root, "w-up", "edge-u", ES_SYNC_EDGE);
	snprintf(up_edge.peer_url, sizeof(up_edge.peer_url), "%s",
		 up_cloud.url);
	th_add_collection(&up_edge.h, "c", 8, ES_SYNC_FLAG_UPLOAD);
	th_add_segment(&up_edge.h, "c", 100, 95, 1, NULL, 0);
	sync_test_hooks.wedge_ms = 300;
	sync_test_hooks.send_timeout_ms = 200;
	assert_int_equal(th_node_start(&up_cloud), 0);
	assert_int_equal(th_node_start(&up_edge), 0);
	TH_WAIT(th_count(&up_cloud.h, "c") == 1, "the connected edge's upload");

	th_node_init(&edge, root, "w-down", "edge-d", ES_SYNC_EDGE);
	snprintf(edge.peer_url, sizeof(edge.peer_url), "tcp://127.0.0.1:%d",
		 port);
	th_add_collection(&edge.h, "c", 8, ES_SYNC_FLAG_UPLOAD);
	th_add_segment(&edge.h, "c", 100, 93, 1, NULL, 0);
	assert_int_equal(th_node_start(&edge), 0);
	/* Rounds fail for ten times the limit (about five of them). */
	t0 = th_ms();
	TH_WAIT(th_ms() - t0 >= 3000, "rounds against a cloud that is down");
	assert_int_equal(th_status(&edge, NULL, &st), 0);
	assert_int_not_equal(st.last_error[0], '\0');
	assert_int_equal(edge_restarts(&edge), 0);
	assert_int_equal(th_log_count(&edge.h, "statistics"), 0);

	close(held);
	th_node_init(&cloud, root, "w-down-cloud", "cloud-1", ES_SYNC_CLOUD);
	snprintf(cloud.url, sizeof(cloud.url), "tcp://127.0.0.1:%d", port);
	assert_int_equal(th_node_start(&cloud), 0);
	TH_WAIT(th_count(&cloud.h, "c") == 1,
		"the upload once the cloud is up");
	th_node_stop(&edge);
	th_node_stop(&cloud);
	th_node_stop(&up_edge);
	th_node_stop(&up_cloud);
	assert_int_equal(edge_restarts(&edge), 0);
	assert_int_equal(edge_restarts(&up_edge), 0);
	th_fini(&edge.h);
	th_fini(&cloud.h);
	th_fini(&up_edge.h);
	th_fini(&up_cloud.h);
}

static atomic_int wrong_pipes;

static void count_pipe(nng_pipe pipe, nng_pipe_ev ev, void *arg)
{
	(void)pipe;
	(void)ev;
	(void)arg;
	atomic_fetch_add(&wrong_pipes, 1);
}

/* A listener of another protocol: nng connects, then closes each pipe
 * before it is ever ready. The edge's count of its connections must
 * come out right, and the peer show as connected once a cloud is there. */
static void test_edge_wrong_protocol(void **state)
{
	struct th_node cloud, edge;
	struct es_sync_peer_status st;
	nng_socket wrong;

	th_node_init(&edge, root, "w-proto", "edge-p", ES_SYNC_EDGE);
	snprintf(edge.peer_url, sizeof(edge.peer_url), "tcp://127.0.0.1:%d",
		 th_free_port());
	th_add_collection(&edge.h, "c", 8, ES_SYNC_FLAG_UPLOAD);
	th_add_segment(&edge.h, "c", 100, 94, 1, NULL, 0);
	assert_int_equal(nng_req0_open(&wrong), 0);
	nng_pipe_notify(wrong, NNG_PIPE_EV_ADD_PRE, count_pipe, NULL);
	assert_int_equal(nng_listen(wrong, edge.peer_url, NULL, 0), 0);
	sync_test_hooks.send_timeout_ms = 200;
	assert_int_equal(th_node_start(&edge), 0);
	TH_WAIT(atomic_load(&wrong_pipes) >= 3, "three refused connections");
	nng_close(wrong);

	th_node_init(&cloud, root, "w-proto-cloud", "cloud-1", ES_SYNC_CLOUD);
	snprintf(cloud.url, sizeof(cloud.url), "%s", edge.peer_url);
	assert_int_equal(th_node_start(&cloud), 0);
	TH_WAIT(th_count(&cloud.h, "c") == 1, "the upload to the real cloud");
	assert_int_equal(th_status(&edge, NULL, &st), 0);
	assert_int_equal(st.connected, 1);
	th_node_stop(&edge);
	th_node_stop(&cloud);
	th_fini(&edge.h);
	th_fini(&cloud.h);
}

/* ---- a cloud's wedged connection ----------------------------------- */

/* nng's thread that closes connections, held after it told the cloud
 * that one went (NNG_PIPE_EV_REM_POST) until released: a close stuck
 * inside nng, as nng 1.5.2's is after a cut (README, "Known limits"). */
static pthread_mutex_t reaper_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t reaper_cv = PTHREAD_COND_INITIALIZER;
static int reaper_held, reaper_release;

static void hold_reaper(void *arg, uint32_t pipe)
{
	(void)arg;
	(void)pipe;
	pthread_mutex_lock(&reaper_mu);
	reaper_held = 1;
	while (!reaper_release)
		pthread_cond_wait(&reaper_cv, &reaper_mu);
	pthread_mutex_unlock(&reaper_mu);
}

static void let_reaper_go(void)
{
	pthread_mutex_lock(&reaper_mu);
	reaper_release = 1;
	pthread_cond_broadcast(&reaper_cv);
	pthread_mutex_unlock(&reaper_mu);
}

/* The end of a test that may hold nng's reaper: nothing later in this
 * process could close an nng socket while it is held. */
static int release_reaper(void **state)
{
	let_reaper_go();
	return reset_hooks(state);
}

/* A connection to port made without nng (this process's nng must not
 * need its reaper meanwhile): req0's SP header each way, then a close. */
static void sp_connect_close(int port)
{
	static const unsigned char req0[8] = {0, 'S', 'P', 0, 0, 0x30, 0, 0};
	struct sockaddr_in a = {.sin_family = AF_INET,
				.sin_port = htons((uint16_t)port)};
	unsigned char got[8];
	size_t n = 0;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(write(fd, req0, sizeof(req0)), (ssize_t)sizeof(req0));
	while (n < sizeof(got)) {
		ssize_t k = read(fd, got + n, sizeof(got) - n);

		assert_true(k > 0);
		n += (size_t)k;
	}
	close(fd);
}

/*
 * A connection whose close never finishes, with nng's own statistics:
 * a connection closes and nng's reaper stays held after it told the
 * cloud. The cloud asks for a restart once, and only then is the reaper
 * let go (so that the test can stop the cloud; the teardown lets it go
 * too, should a check fail).
 */
static void test_cloud_wedged(void **state)
{
	struct th_node cloud;
	int port = th_free_port(), held;

	th_node_init(&cloud, root, "w-cwedged", "cloud-1", ES_SYNC_CLOUD);
	snprintf(cloud.url, sizeof(cloud.url), "tcp://127.0.0.1:%d", port);
	reaper_held = reaper_release = 0;
	sync_test_hooks.pipe_removed = hold_reaper;
	sync_test_hooks.wedge_ms = 300;
	sync_test_hooks.watchdog_ms = 50;
	assert_int_equal(th_node_start(&cloud), 0);
	sp_connect_close(port);
	TH_WAIT(edge_restarts(&cloud) == 1, "a restart asked for");
	assert_int_equal(th_log_count(&cloud.h, "stuck closing inside nng"), 2);
	assert_int_equal(th_log_count(&cloud.h, "statistics"), 0);
	pthread_mutex_lock(&reaper_mu);
	held = reaper_held;
	pthread_mutex_unlock(&reaper_mu);
	assert_int_equal(held, 1);
	let_reaper_go();
	th_node_stop(&cloud);
	assert_int_equal(edge_restarts(&cloud), 1); /* once */
	th_fini(&cloud.h);
}

static void hang_up_tcp(int port, int how);
static int ping(const char *url, int timeout_ms);

/*
 * Connections that come and go, by the hundred: pings, bare connections
 * closed by their peers in four ways, the cloud's idle closes, and an
 * edge's that syncs, with nng's real statistics. A live connection must
 * match its session at every look (were they not matched, the edge's
 * would count as closing and the cloud restart), and one that closes is
 * seen closing for moments only, never for the limit.
 */
static void test_cloud_churn_not_wedged(void **state)
{
	struct th_node cloud, edge;
	uint64_t t0;
	int port = th_free_port();

	th_node_init(&cloud, root, "w-churn", "cloud-1", ES_SYNC_CLOUD);
	snprintf(cloud.url, sizeof(cloud.url), "tcp://127.0.0.1:%d", port);
	cloud.c.idle_timeout_ms = 100;
	sync_test_hooks.wedge_ms = 300;
	sync_test_hooks.watchdog_ms = 50;
	assert_int_equal(th_node_start(&cloud), 0);
	th_node_init(&edge, root, "w-churn-edge", "edge-c", ES_SYNC_EDGE);
	snprintf(edge.peer_url, sizeof(edge.peer_url), "%s", cloud.url);
	th_add_collection(&edge.h, "c", 8, ES_SYNC_FLAG_UPLOAD);
	th_add_segment(&edge.h, "c", 100, 90, 1, NULL, 0);
	assert_int_equal(th_node_start(&edge), 0);
	t0 = th_ms();
	for (int i = 0; i < 200 || th_ms() - t0 < 2000; i++) {
		if (i % 2)
			hang_up_tcp(port, i % 4);
		else
			assert_int_equal(ping(cloud.url, 5000), 0);
	}
	TH_WAIT(th_count(&cloud.h, "c") == 1, "the edge's upload");
	assert_int_equal(th_log_count(&cloud.h, "statistics"), 0);
	th_node_stop(&edge);
	th_node_stop(&cloud);
	assert_int_equal(edge_restarts(&cloud), 0);
	th_fini(&edge.h);
	th_fini(&cloud.h);
}

/* ---- the listener watchdog -------------------------------------------- */

/* A ping over a fresh connection; 0 if it was answered. */
static int ping(const char *url, int timeout_ms)
{
	static const unsigned char msg[] = {0xa2, 0x61, 'v', 0x01, 0x64,
					    't',  'y',	'p', 'e',  0x64,
					    'p',  'i',	'n', 'g'};
	nng_socket s;
	nng_msg *m;
	int rv;

	assert_int_equal(nng_req0_open(&s), 0);
	nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, timeout_ms);
	nng_socket_set_ms(s, NNG_OPT_SENDTIMEO, timeout_ms);
	rv = nng_dial(s, url, NULL, NNG_FLAG_NONBLOCK);
	if (rv == 0)
		rv = sync_msg_sealed(&m, msg, sizeof(msg)) ? NNG_ENOMEM : 0;
	if (rv == 0 && (rv = nng_sendmsg(s, m, 0)) != 0)
		nng_msg_free(m);
	if (rv == 0 && (rv = nng_recvmsg(s, &m, 0)) == 0)
		nng_msg_free(m);
	nng_close(s);
	return rv;
}

/* Connects to port and hangs up in one of four ways. */
static void hang_up_tcp(int port, int how)
{
	struct sockaddr_in a = {.sin_family = AF_INET,
				.sin_port = htons((uint16_t)port)};
	struct linger l = {1, 0};
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	if (how == 1) /* reset instead of close */
		setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
	if (how == 2) /* half an SP header */
		assert_int_equal(write(fd, "\0SP", 3), 3);
	if (how == 3) /* something else entirely */
		assert_int_equal(write(fd, "GET / HTTP/1.0\r\n\r\n", 18), 18);
	close(fd);
}

static void test_watchdog_tcp(void **state)
{
	struct th_node cloud;
	int port = th_free_port();
	char url[64];

	th_node_init(&cloud, root, "w-tcp", "cloud-1", ES_SYNC_CLOUD);
	/* Every address; the watchdog dials 127.0.0.1. */
	snprintf(cloud.url, sizeof(cloud.url), "tcp://*:%d", port);
	snprintf(url, sizeof(url), "tcp://127.0.0.1:%d", port);
	sync_test_hooks.watchdog_ms = 200;
	assert_int_equal(th_node_start(&cloud), 0);
	for (int i = 0; i < 40; i++)
		hang_up_tcp(port, i % 4);
	/* Whether or not this nng froze, a client is served again (the
	 * watchdog restarts a frozen listener within a period or two). */
	TH_WAIT(ping(url, 1000) == 0, "a ping after the hang-ups");
	th_node_stop(&cloud);
	th_fini(&cloud.h);
}

/* On ipc://, nng 1.5.2 freezes for sure (the bug's original report):
 * the watchdog must notice and listen again. */
static void test_watchdog_ipc(void **state)
{
	struct th_node cloud, edge;
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	int frozen;

	th_node_init(&cloud, root, "w-ipc", "cloud-1", ES_SYNC_CLOUD);
	snprintf(cloud.url, sizeof(cloud.url), "ipc://%.100s/cloud.sock", root);
	snprintf(a.sun_path, sizeof(a.sun_path), "%.90s/cloud.sock", root);
	sync_test_hooks.watchdog_ms = 200;
	assert_int_equal(th_node_start(&cloud), 0);
	assert_int_equal(ping(cloud.url, 2000), 0);
	for (int i = 0; i < 3; i++) {
		int fd = socket(AF_UNIX, SOCK_STREAM, 0);

		assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)),
				 0);
		close(fd);
	}
	frozen = ping(cloud.url, 300) != 0;
	TH_WAIT(ping(cloud.url, 1000) == 0, "a ping after the hang-ups");
	if (frozen)
		assert_true(th_log_count(&cloud.h, "stopped accepting") >= 1);
	else
		print_message("note: this nng did not freeze on ipc://\n");

	/* And an edge over ipc:// syncs. */
	th_node_init(&edge, root, "w-edge", "edge-w", ES_SYNC_EDGE);
	snprintf(edge.peer_url, sizeof(edge.peer_url), "%s", cloud.url);
	th_add_collection(&edge.h, "c", 8, ES_SYNC_FLAG_UPLOAD);
	th_add_segment(&edge.h, "c", 100, 91, 1, NULL, 0);
	assert_int_equal(th_node_start(&edge), 0);
	TH_WAIT(th_count(&cloud.h, "c") == 1, "the upload over ipc");
	th_node_stop(&edge);
	th_node_stop(&cloud);
	th_fini(&edge.h);
	th_fini(&cloud.h);
}

static int probes;

static int fail_third_probe(void *arg)
{
	return __atomic_add_fetch(&probes, 1, __ATOMIC_SEQ_CST) == 3;
}

static void test_watchdog_recovery(void **state)
{
	struct th_node cloud, edge;

	th_node_init(&cloud, root, "w-rec", "cloud-1", ES_SYNC_CLOUD);
	snprintf(cloud.url, sizeof(cloud.url), "ipc://%.100s/rec.sock", root);
	sync_test_hooks.watchdog_ms = 200;
	sync_test_hooks.probe_fail = fail_third_probe;
	assert_int_equal(th_node_start(&cloud), 0);
	TH_WAIT(th_log_count(&cloud.h, "restarted it") == 1, "a recovery");
	th_node_init(&edge, root, "w-rec-edge", "edge-w", ES_SYNC_EDGE);
	snprintf(edge.peer_url, sizeof(edge.peer_url), "%s", cloud.url);
	th_add_collection(&edge.h, "c", 8, ES_SYNC_FLAG_UPLOAD);
	th_add_segment(&edge.h, "c", 100, 92, 1, NULL, 0);
	assert_int_equal(th_node_start(&edge), 0);
	TH_WAIT(th_count(&cloud.h, "c") == 1, "the upload");
	th_node_stop(&edge);
	th_node_stop(&cloud);
	assert_int_equal(th_log_count(&cloud.h, "restarted it"), 1);
	th_fini(&edge.h);
	th_fini(&cloud.h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_teardown(test_edge_wedged, reset_hooks),
	    cmocka_unit_test_teardown(test_edge_cloud_down, reset_hooks),
	    cmocka_unit_test_teardown(test_edge_wrong_protocol, reset_hooks),
	    cmocka_unit_test_teardown(test_cloud_wedged, release_reaper),
	    cmocka_unit_test_teardown(test_cloud_churn_not_wedged, reset_hooks),
	    cmocka_unit_test_teardown(test_watchdog_tcp, reset_hooks),
	    cmocka_unit_test_teardown(test_watchdog_ipc, reset_hooks),
	    cmocka_unit_test_teardown(test_watchdog_recovery, reset_hooks),
	};

	return TH_RUN(tests, root, "watchdog");
}
