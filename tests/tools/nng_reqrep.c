/*
 * es_nng_reqrep: what nng's REQ/REP carries on this machine with nothing
 * else to do, the baseline between iperf3's raw TCP and a segment
 * transfer (deploy/bench-sync.sh). The sender moves MIB MiB as requests
 * of CHUNK bytes (default 1 MiB), one outstanding at a time like the
 * edge's window of one, each a fresh nng message like a chunk's; the
 * server answers each with 16 bytes. No file is read or written and
 * nothing is checksummed.
 *
 *   es_nng_reqrep serve URL
 *   es_nng_reqrep send URL MIB [CHUNK]    prints "MB/s N"
 *
 * The sender dials for up to 5 s, so the server may still be starting.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/protocol/reqrep0/req.h>
#include <nng/supplemental/util/platform.h>

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int fail(const char *what, int rv)
{
	fprintf(stderr, "es_nng_reqrep: %s: %s\n", what, nng_strerror(rv));
	return 1;
}

static int serve(const char *url)
{
	nng_socket s;
	nng_msg *m;
	int rv;

	if ((rv = nng_rep0_open(&s)) != 0)
		return fail("opening a rep0 socket", rv);
	nng_socket_set_size(s, NNG_OPT_RECVMAXSZ, 0);
	if ((rv = nng_listen(s, url, NULL, 0)) != 0)
		return fail(url, rv);
	for (;;) {
		if ((rv = nng_recvmsg(s, &m, 0)) != 0)
			return fail("receiving", rv);
		nng_msg_realloc(m, 16);
		if ((rv = nng_sendmsg(s, m, 0)) != 0) {
			nng_msg_free(m);
			return fail("replying", rv);
		}
	}
}

static int send_all(const char *url, unsigned long mib, unsigned long chunk)
{
	unsigned long long total = (unsigned long long)mib << 20, done = 0;
	nng_socket s;
	nng_msg *m;
	double t0;
	int rv, tries = 0;

	if ((rv = nng_req0_open(&s)) != 0)
		return fail("opening a req0 socket", rv);
	nng_socket_set_size(s, NNG_OPT_RECVMAXSZ, 0);
	nng_socket_set_ms(s, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE);
	while ((rv = nng_dial(s, url, NULL, 0)) == NNG_ECONNREFUSED &&
	       ++tries < 100)
		nng_msleep(50);
	if (rv != 0)
		return fail(url, rv);
	t0 = now_s();
	while (done < total) {
		size_t n =
		    total - done < chunk ? (size_t)(total - done) : chunk;

		if ((rv = nng_msg_alloc(&m, n)) != 0)
			return fail("allocating a request", rv);
		if ((rv = nng_sendmsg(s, m, 0)) != 0) {
			nng_msg_free(m);
			return fail("sending", rv);
		}
		if ((rv = nng_recvmsg(s, &m, 0)) != 0)
			return fail("receiving the reply", rv);
		nng_msg_free(m);
		done += n;
	}
	printf("MB/s %.0f\n", (double)total / 1e6 / (now_s() - t0));
	nng_close(s);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[1], "serve") == 0)
		return serve(argv[2]);
	if ((argc == 4 || argc == 5) && strcmp(argv[1], "send") == 0) {
		unsigned long mib = strtoul(argv[3], NULL, 10);
		unsigned long chunk =
		    argc == 5 ? strtoul(argv[4], NULL, 10) : 1ul << 20;

		if (mib == 0 || chunk == 0) {
			fprintf(stderr, "es_nng_reqrep: MIB and CHUNK are "
					"positive numbers\n");
			return 2;
		}
		return send_all(argv[2], mib, chunk);
	}
	fprintf(stderr, "usage: es_nng_reqrep serve URL\n"
			"       es_nng_reqrep send URL MIB [CHUNK]\n");
	return 2;
}
