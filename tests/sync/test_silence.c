/*
 * A peer gone silent: its connection stays open and nothing closes it,
 * as after a power cut or a dropped route. An edge whose cloud stops
 * answering closes the connection once a request times out and dials
 * again, so it syncs with the cloud that then answers on that address;
 * a cloud closes connections that sent no request for idle_timeout_ms,
 * so a vanished edge stops counting as connected, and a connection held
 * by a request in progress is never closed as idle; a throttled edge
 * sends chunks small enough to keep its requests coming.
 *
 * The silent peers are bare TCP sockets that do nng's SP handshake and
 * then read and drop whatever comes: the kernel keeps those connections
 * healthy, so only the agents' own timeouts can end them.
 */
#include <errno.h>
#include <poll.h>
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

#include <cmocka.h>

#include "edgesync/sync.h"
#include "sync_test.h"
#include "test_host.h"

#define SP_REQ0	   0x30
#define SP_REP0	   0x31
#define SILENT_MAX 64

static char root[400];

static int reset_hooks(void **state)
{
	(void)state;
	memset(&sync_test_hooks, 0, sizeof(sync_test_hooks));
	return 0;
}

/* nng's 8-byte SP header: "\0SP\0", the protocol (big-endian), 0, 0. */
static void sp_header(int fd, unsigned proto)
{
	unsigned char h[8] = {
	    0, 'S', 'P', 0, (unsigned char)(proto >> 8), (unsigned char)proto,
	    0, 0};

	assert_int_equal(write(fd, h, sizeof(h)), (ssize_t)sizeof(h));
}

/* ---- a silent cloud ------------------------------------------------- */

/* Accepts connections on a loopback port, says rep0's SP header on each
 * and then reads and drops everything, never answering, never closing
 * (until silent_stop). Its thread alone closes the listener (unlisten),
 * so that the descriptor is not reused under its poll. */
struct silent {
	int lfd;
	int port;
	int fds[SILENT_MAX];
	atomic_int accepted;
	atomic_int unlisten, listening;
	atomic_int stop;
	pthread_t th;
};

static void *silent_main(void *arg)
{
	struct silent *sl = arg;
	struct pollfd pf[SILENT_MAX + 1];
	char buf[65536];

	while (!atomic_load(&sl->stop)) {
		int n = atomic_load(&sl->accepted), k = 0;

		if (sl->lfd >= 0 && atomic_load(&sl->unlisten)) {
			close(sl->lfd);
			sl->lfd = -1;
			atomic_store(&sl->listening, 0);
		}
		if (sl->lfd >= 0)
			pf[k++] = (struct pollfd){sl->lfd, POLLIN, 0};
		for (int i = 0; i < n; i++)
			pf[k++] = (struct pollfd){sl->fds[i], POLLIN, 0};
		if (poll(pf, (nfds_t)k, 50) <= 0)
			continue;
		for (int i = 0; i < k; i++) {
			if (!(pf[i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			if (pf[i].fd == sl->lfd) {
				int fd = accept(sl->lfd, NULL, NULL);

				if (fd < 0 || n >= SILENT_MAX) {
					if (fd >= 0)
						close(fd);
					continue;
				}
				sp_header(fd, SP_REP0);
				sl->fds[n] = fd;
				atomic_store(&sl->accepted, ++n);
			} else if (read(pf[i].fd, buf, sizeof(buf)) <= 0) {
				pf[i].fd = -1; /* its peer left: keep the fd */
			}
		}
	}
	return NULL;
}

static void silent_start(struct silent *sl)
{
	struct sockaddr_in a = {.sin_family = AF_INET};
	socklen_t len = sizeof(a);
	int one = 1;

	memset(sl, 0, sizeof(*sl));
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sl->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(sl->lfd >= 0);
	setsockopt(sl->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	assert_int_equal(bind(sl->lfd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(sl->lfd, 16), 0);
	assert_int_equal(getsockname(sl->lfd, (struct sockaddr *)&a, &len), 0);
	sl->port = ntohs(a.sin_port);
	atomic_store(&sl->listening, 1);
	assert_int_equal(pthread_create(&sl->th, NULL, silent_main, sl), 0);
}

static void silent_stop(struct silent *sl)
{
	atomic_store(&sl->stop, 1);
	pthread_join(sl->th, NULL);
	if (sl->lfd >= 0)
		close(sl->lfd);
	for (int i = 0; i < atomic_load(&sl->accepted); i++)
		close(sl->fds[i]);
}

/*
 * An edge whose cloud goes silent: each request that times out closes
 * its connection and the edge dials again (without that it would wait on
 * the first connection for good). Then the silent listener stops
 * accepting, keeping the connections it has open, and a real cloud
 * listens on the same port: the edge's next connection reaches it and
 * the segment goes up.
 */
static void test_edge_silent_cloud(void **state)
{
	struct th_node cloud, edge;
	struct es_sync_peer_status st;
	struct silent sl;

	silent_start(&sl);
	th_node_init(&edge, root, "s-edge", "edge-s", ES_SYNC_EDGE);
	snprintf(edge.peer_url, sizeof(edge.peer_url), "tcp://127.0.0.1:%d",
		 sl.port);
	th_add_collection(&edge.h, "c", 8, ES_SYNC_FLAG_UPLOAD);
	th_add_segment(&edge.h, "c", 100, 81, 1, NULL, 0);
	edge.c.backoff_max_ms = 200;
	sync_test_hooks.reply_timeout_ms = 300;
	sync_test_hooks.send_timeout_ms = 300;
	assert_int_equal(th_node_start(&edge), 0);
	TH_WAIT(atomic_load(&sl.accepted) >= 3,
		"the edge dialing again after timed-out requests");
	assert_true(th_log_count(&edge.h, "no reply from") >= 2);
	assert_int_equal(th_status(&edge, NULL, &st), 0);
	assert_non_null(strstr(st.last_error, "hello"));

	/* The listener goes; its connections stay, silent. */
	atomic_store(&sl.unlisten, 1);
	TH_WAIT(!atomic_load(&sl.listening), "the silent listener closed");
	th_node_init(&cloud, root, "s-cloud", "cloud-1", ES_SYNC_CLOUD);
	snprintf(cloud.url, sizeof(cloud.url), "%s", edge.peer_url);
	assert_int_equal(th_node_start(&cloud), 0);
	TH_WAIT(th_count(&cloud.h, "c") == 1,
		"the upload once a cloud answers");
	assert_int_equal(th_same(&edge.h, &cloud.h, "c", "edge-s", 1), 1);
	th_node_stop(&edge);
	th_node_stop(&cloud);
	silent_stop(&sl);
	th_fini(&edge.h);
	th_fini(&cloud.h);
}

/* ---- a cloud's idle connections ------------------------------------- */

/* A bare connection to port that says req0's SP header, then nothing. */
static int silent_client(int port)
{
	struct sockaddr_in a = {.sin_family = AF_INET,
				.sin_port = htons((uint16_t)port)};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	sp_header(fd, SP_REQ0);
	return fd;
}

/* 1 once the other side has closed fd's connection (the SP header it
 * sent, or anything else it sends, is read and dropped). */
static int closed_by_peer(int fd)
{
	char buf[64];
	ssize_t n;

	while ((n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT)) > 0)
		;
	return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
}

/* Whether cloud counts device as connected (-1: it does not know it). */
static int connected(struct th_node *cloud, const char *device)
{
	struct es_sync_peer_status st;

	if (th_status(cloud, device, &st) != 0)
		return -1;
	return st.connected;
}

static int cloud_port(const struct th_node *cloud)
{
	const char *colon = strrchr(cloud->url, ':');

	return atoi(colon + 1);
}

/*
 * A cloud closes a connection that said its SP header and nothing more,
 * and one whose edge said hello, synced, and then went quiet (an edge
 * that syncs once a day here): the edge no longer counts as connected.
 * A sync-now on that edge dials again and its round succeeds.
 */
static void test_cloud_closes_idle(void **state)
{
	struct th_node cloud, edge;
	int fd;

	th_node_init(&cloud, root, "i-cloud", "cloud-1", ES_SYNC_CLOUD);
	snprintf(cloud.url, sizeof(cloud.url), "tcp://127.0.0.1:%d",
		 th_free_port());
	cloud.c.idle_timeout_ms = 500;
	sync_test_hooks.watchdog_ms = 100;
	assert_int_equal(th_node_start(&cloud), 0);
	fd = silent_client(cloud_port(&cloud));
	TH_WAIT(closed_by_peer(fd), "the silent connection closed");
	close(fd);
	assert_int_equal(th_log_count(&cloud.h, "never said hello"), 1);

	th_node_init(&edge, root, "i-edge", "edge-i", ES_SYNC_EDGE);
	snprintf(edge.peer_url, sizeof(edge.peer_url), "%s", cloud.url);
	th_add_collection(&edge.h, "c", 8, ES_SYNC_FLAG_UPLOAD);
	th_add_segment(&edge.h, "c", 100, 82, 1, NULL, 0);
	edge.c.interval_ms = 86400000;
	assert_int_equal(th_node_start(&edge), 0);
	TH_WAIT(th_count(&cloud.h, "c") == 1, "the upload");
	TH_WAIT(connected(&cloud, "edge-i") == 0,
		"the quiet edge no longer connected");
	assert_int_equal(th_log_count(&cloud.h, "of edge-i: no request for"),
			 1);

	th_add_segment(&edge.h, "c", 100, 83, 1, NULL, 0);
	es_sync_now(edge.s);
	TH_WAIT(th_count(&cloud.h, "c") == 2, "the upload after sync-now");
	th_node_stop(&edge);
	th_node_stop(&cloud);
	th_fini(&edge.h);
	th_fini(&cloud.h);
}

static atomic_int held_chunks;

/* The cloud's first chunk takes three idle timeouts to write. */
static void slow_first_chunk(void *arg, uint64_t off)
{
	(void)arg;
	if (off == 0 && atomic_fetch_add(&held_chunks, 1) == 0)
		usleep(3 * 300 * 1000);
}

/* A connection whose request is still being handled is not idle, however
 * long that takes: the upload goes through on its one connection, and
 * that connection is closed only once it is quiet after it. */
static void test_cloud_busy_not_idle(void **state)
{
	struct th_node cloud, edge;

	th_node_init(&cloud, root, "b-cloud", "cloud-1", ES_SYNC_CLOUD);
	snprintf(cloud.url, sizeof(cloud.url), "tcp://127.0.0.1:%d",
		 th_free_port());
	cloud.c.idle_timeout_ms = 300;
	sync_test_hooks.watchdog_ms = 50;
	sync_test_hooks.chunk_in = slow_first_chunk;
	th_node_init(&edge, root, "b-edge", "edge-b", ES_SYNC_EDGE);
	snprintf(edge.peer_url, sizeof(edge.peer_url), "%s", cloud.url);
	th_add_collection(&edge.h, "c", 8, ES_SYNC_FLAG_UPLOAD);
	th_add_segment(&edge.h, "c", 100, 84, 1, NULL, 0);
	edge.c.interval_ms = 86400000;
	assert_int_equal(th_node_start(&cloud), 0);
	assert_int_equal(th_node_start(&edge), 0);
	TH_WAIT(th_count(&cloud.h, "c") == 1, "the upload");
	assert_int_equal(atomic_load(&held_chunks), 1);
	TH_WAIT(th_log_count(&cloud.h, "of edge-b: no request for") == 1,
		"the connection closed once quiet");
	assert_true(th_log_first(&cloud.h, "installed segment") <
		    th_log_first(&cloud.h, "no request for"));
	th_node_stop(&edge);
	th_node_stop(&cloud);
	th_fini(&edge.h);
	th_fini(&cloud.h);
}

/*
 * A throttled edge's chunks are at most a minute of its bandwidth, so
 * its requests come at least that often and an idle-timeout above that
 * never closes a throttled transfer: at 2,048 bytes/s, 122,880 bytes
 * instead of 1 MiB (the one piece of this small segment is shorter).
 */
static void test_throttled_chunks(void **state)
{
	struct th_node cloud, edge;

	th_node_init(&cloud, root, "t-cloud", "cloud-1", ES_SYNC_CLOUD);
	snprintf(cloud.url, sizeof(cloud.url), "tcp://127.0.0.1:%d",
		 th_free_port());
	th_node_init(&edge, root, "t-edge", "edge-t", ES_SYNC_EDGE);
	snprintf(edge.peer_url, sizeof(edge.peer_url), "%s", cloud.url);
	th_add_collection(&edge.h, "c", 8, ES_SYNC_FLAG_UPLOAD);
	th_add_segment(&edge.h, "c", 100, 85, 1, NULL, 0);
	edge.c.bandwidth = 2048;
	edge.c.chunk_size = cloud.c.chunk_size = 1u << 20;
	assert_int_equal(th_node_start(&cloud), 0);
	assert_int_equal(th_node_start(&edge), 0);
	TH_WAIT(th_count(&cloud.h, "c") == 1, "the upload");
	th_node_stop(&edge);
	th_node_stop(&cloud);
	assert_int_equal(th_log_count(&edge.h, "pieces of up to 122880 bytes"),
			 1);
	th_fini(&edge.h);
	th_fini(&cloud.h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_teardown(test_edge_silent_cloud, reset_hooks),
	    cmocka_unit_test_teardown(test_cloud_closes_idle, reset_hooks),
	    cmocka_unit_test_teardown(test_cloud_busy_not_idle, reset_hooks),
	    cmocka_unit_test_teardown(test_throttled_chunks, reset_hooks),
	};

	return TH_RUN(tests, root, "silence");
}
