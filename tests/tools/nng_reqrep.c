/*
 * es_nng_reqrep: what nng's REQ/REP carries on this machine, alone and
 * with the byte work of a transfer: the baselines between iperf3's raw
 * TCP and a segment transfer (deploy/bench-sync.sh).
 *
 *   es_nng_reqrep serve URL [DIR]
 *   es_nng_reqrep send URL MIB [CHUNK [FROM]]    prints "MB/s N"
 *
 * The sender moves MIB MiB as requests of CHUNK bytes (default 1 MiB),
 * one outstanding at a time like the edge's window of one, each a fresh
 * nng message like a chunk's, the next one built while the current one
 * is out, as the edge does. The server answers each with 16 bytes.
 *
 * Alone (no FROM, no DIR): nothing is read, written or checksummed.
 *
 * Staged (FROM and DIR): the sender first sends the total size (8 bytes,
 * little-endian), then reads each chunk from the file FROM (from its
 * start again at its end) into a message behind the chunk's CRC32C (4
 * bytes, little-endian). The server checks each CRC and appends the
 * chunk to a file staged in DIR by the cloud's own staging code
 * (sync/staging.c: preallocated at begin, appended before the reply,
 * its writeback waited for and its pages dropped after it), and makes
 * the file durable with fdatasync and removes it before it answers the
 * last chunk. That is the byte work of a transfer on both sides without
 * the protocol around it: no sessions, manifest, check or install.
 * With DIR "-" the server checks each CRC and writes nothing: the reads
 * and checksums of a transfer without its writes.
 *
 * The sender dials for up to 5 s, so the server may still be starting.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/protocol/reqrep0/req.h>
#include <nng/supplemental/util/platform.h>

#include "edgesync/crc32c.h"
#include "edgesync/le.h"
#include "staging.h"

#define SIZE_LEN 8 /* the staged mode's first request */
#define CRC_LEN	 4 /* before each chunk in the staged mode */

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

static int fail_errno(const char *what, int err)
{
	fprintf(stderr, "es_nng_reqrep: %s: %s\n", what, strerror(err));
	return 1;
}

/* ---- the server's staged file ----------------------------------------- */

struct staged {
	int write; /* 0: DIR "-", checked and not written */
	struct sync_staging st;
	struct sync_stage_writer w;
	char key[SYNC_KEY_LEN + 1];
	uint64_t size, at; /* size 0: no transfer under way */
};

static int staged_begin(struct staged *sf, const unsigned char *p, size_t n)
{
	struct sync_stage_meta m;
	uint64_t off;
	int rc;

	if (n != SIZE_LEN || sf->size)
		return fail_errno("the staged mode begins with the size alone",
				  EPROTO);
	memset(&m, 0, sizeof(m));
	strcpy(m.coll, "baseline");
	strcpy(m.origin, "es_nng_reqrep");
	m.origin_seq = 1;
	m.size = le64_load(p);
	sf->size = m.size;
	sf->at = 0;
	if (!sf->write)
		return 0;
	sync_staging_key(m.coll, m.origin, m.origin_seq, sf->key);
	rc = sync_staging_open(&sf->st, sf->key, &m, &off);
	if (rc)
		return fail_errno("staging a file", -rc);
	sync_stage_writer_init(&sf->w, 0);
	sf->w.defer = 1; /* streamed after the reply, as the cloud does */
	return 0;
}

/* Checks and appends one chunk; the last one is made durable. */
static int staged_append(struct staged *sf, const unsigned char *p, size_t n)
{
	uint32_t crc;
	uint64_t now;
	int rc;

	if (n <= CRC_LEN || !sf->size || sf->at + (n - CRC_LEN) > sf->size)
		return fail_errno("a chunk outside the staged file", EPROTO);
	crc = es_crc32c(0, p + CRC_LEN, n - CRC_LEN);
	if (crc != le32_load(p))
		return fail_errno("a chunk's CRC32C", EBADMSG);
	if (!sf->write) {
		sf->at += n - CRC_LEN;
		sf->size = sf->at < sf->size ? sf->size : 0;
		return 0;
	}
	rc = sync_staging_append(&sf->st, sf->key, &sf->w, sf->at, p + CRC_LEN,
				 n - CRC_LEN, &crc, &now);
	if (rc)
		return fail_errno("appending to the staged file",
				  rc < 0 ? -rc : EIO);
	sf->at = now;
	if (sf->at < sf->size)
		return 0;
	if (fdatasync(sf->w.fd) != 0)
		return fail_errno("fdatasync of the staged file", errno);
	sync_stage_writer_fini(&sf->w);
	sync_staging_remove(&sf->st, sf->key);
	sf->size = 0;
	return 0;
}

static int serve(const char *url, const char *dir)
{
	struct staged sf;
	nng_socket s;
	nng_msg *m;
	int rv;

	memset(&sf, 0, sizeof(sf));
	sf.write = dir && strcmp(dir, "-") != 0;
	if (sf.write && (rv = sync_staging_init(&sf.st, dir)) != 0)
		return fail_errno(dir, -rv);
	if ((rv = nng_rep0_open(&s)) != 0)
		return fail("opening a rep0 socket", rv);
	nng_socket_set_size(s, NNG_OPT_RECVMAXSZ, 0);
	if ((rv = nng_listen(s, url, NULL, 0)) != 0)
		return fail(url, rv);
	for (;;) {
		if ((rv = nng_recvmsg(s, &m, 0)) != 0)
			return fail("receiving", rv);
		if (dir) {
			unsigned char *p = nng_msg_body(m);
			size_t n = nng_msg_len(m);

			rv = sf.size ? staged_append(&sf, p, n)
				     : staged_begin(&sf, p, n);
			if (rv) {
				nng_msg_free(m);
				return rv;
			}
		}
		nng_msg_realloc(m, 16);
		if ((rv = nng_sendmsg(s, m, 0)) != 0) {
			nng_msg_free(m);
			return fail("replying", rv);
		}
		if (sf.write) /* the writeback, after the reply as the cloud's */
			sync_staging_stream(&sf.w);
	}
}

/* ---- the sender ------------------------------------------------------- */

/* The next request: n bytes, read from fd at *at and checksummed if fd
 * is open (the staged mode), else left as nng allocates them. */
static int build(nng_msg **m, size_t n, int fd, uint64_t *at)
{
	unsigned char *p;
	size_t got = 0;
	int rv;

	if ((rv = nng_msg_alloc(m, fd >= 0 ? CRC_LEN + n : n)) != 0)
		return fail("allocating a request", rv);
	if (fd < 0)
		return 0;
	p = (unsigned char *)nng_msg_body(*m) + CRC_LEN;
	while (got < n) {
		ssize_t r = pread(fd, p + got, n - got, (off_t)*at);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return fail_errno("reading FROM", errno);
		if (r == 0 && *at == 0)
			return fail_errno("FROM is empty", EINVAL);
		*at = r == 0 ? 0 : *at + (uint64_t)r;
		got += (size_t)r;
	}
	le32_store(nng_msg_body(*m), es_crc32c(0, p, n));
	return 0;
}

static int send_size(nng_socket s, uint64_t total)
{
	nng_msg *m;
	int rv;

	if ((rv = nng_msg_alloc(&m, SIZE_LEN)) != 0)
		return fail("allocating a request", rv);
	le64_store(nng_msg_body(m), total);
	if ((rv = nng_sendmsg(s, m, 0)) != 0) {
		nng_msg_free(m);
		return fail("sending the size", rv);
	}
	if ((rv = nng_recvmsg(s, &m, 0)) != 0)
		return fail("receiving the reply", rv);
	nng_msg_free(m);
	return 0;
}

static int send_all(const char *url, unsigned long mib, unsigned long chunk,
		    const char *from)
{
	uint64_t total = (uint64_t)mib << 20, done = 0, at = 0;
	nng_socket s;
	nng_aio *aio;
	nng_msg *m, *next;
	double t0;
	int rv, fd = -1, tries = 0;

	if (from && (fd = open(from, O_RDONLY | O_CLOEXEC)) < 0)
		return fail_errno(from, errno);
	if ((rv = nng_req0_open(&s)) != 0)
		return fail("opening a req0 socket", rv);
	nng_socket_set_size(s, NNG_OPT_RECVMAXSZ, 0);
	nng_socket_set_ms(s, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE);
	while ((rv = nng_dial(s, url, NULL, 0)) == NNG_ECONNREFUSED &&
	       ++tries < 100)
		nng_msleep(50);
	if (rv != 0)
		return fail(url, rv);
	if ((rv = nng_aio_alloc(&aio, NULL, NULL)) != 0)
		return fail("allocating an aio", rv);
	t0 = now_s();
	if ((fd >= 0 && send_size(s, total)) ||
	    build(&next, total < chunk ? (size_t)total : chunk, fd, &at))
		return 1;
	while (done < total) {
		size_t n =
		    total - done < chunk ? (size_t)(total - done) : chunk;

		nng_aio_set_msg(aio, next);
		nng_send_aio(s, aio);
		done += n;
		/* The next one while this one is out, as the edge does. */
		n = total - done < chunk ? (size_t)(total - done) : chunk;
		rv = done < total ? build(&next, n, fd, &at) : 0;
		nng_aio_wait(aio);
		if (rv)
			return rv;
		if ((rv = nng_aio_result(aio)) != 0) {
			nng_msg_free(nng_aio_get_msg(aio));
			return fail("sending", rv);
		}
		if ((rv = nng_recvmsg(s, &m, 0)) != 0)
			return fail("receiving the reply", rv);
		nng_msg_free(m);
	}
	printf("MB/s %.0f\n", (double)total / 1e6 / (now_s() - t0));
	nng_aio_free(aio);
	nng_close(s);
	if (fd >= 0)
		close(fd);
	return 0;
}

int main(int argc, char **argv)
{
	if ((argc == 3 || argc == 4) && strcmp(argv[1], "serve") == 0)
		return serve(argv[2], argc == 4 ? argv[3] : NULL);
	if (argc >= 4 && argc <= 6 && strcmp(argv[1], "send") == 0) {
		unsigned long mib = strtoul(argv[3], NULL, 10);
		unsigned long chunk =
		    argc >= 5 ? strtoul(argv[4], NULL, 10) : 1ul << 20;

		if (mib == 0 || chunk == 0) {
			fprintf(stderr, "es_nng_reqrep: MIB and CHUNK are "
					"positive numbers\n");
			return 2;
		}
		return send_all(argv[2], mib, chunk,
				argc == 6 ? argv[5] : NULL);
	}
	fprintf(stderr, "usage: es_nng_reqrep serve URL [DIR]\n"
			"       es_nng_reqrep send URL MIB [CHUNK [FROM]]\n");
	return 2;
}
