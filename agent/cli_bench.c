/*
 * edgesync bench crc | segment: throughput figures printed, never asserted.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "edgesync/crc32c.h"
#include "edgesync/ndvs.h"
#include "edgesync/store_error.h"

static const char crc_usage[] = "edgesync bench crc [--mib N] [--json]";
static const char segment_usage[] =
    "edgesync bench segment [--mib N] [--dim D] [--dir DIR] [--json]";

/* xorshift64*: fast, seeded, good enough to fill benchmark buffers. */
static uint64_t bench_rand(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 2685821657736338717ull;
}

/* Runs op over len bytes until at least 0.5 s have passed; GB/s. */
static double throughput(int impl, void *dst, const void *src, size_t len)
{
	volatile uint32_t sink = 0;
	double start = cli_now(), t;
	uint64_t bytes = 0;

	do {
		if (impl < 0)
			memcpy(dst, src, len);
		else
			sink ^= es_crc32c_with((enum es_crc32c_impl)impl, 0,
					       src, len);
		bytes += len;
		t = cli_now() - start;
	} while (t < 0.5);
	(void)sink;
	return (double)bytes / t / 1e9;
}

struct bench_opts {
	uint64_t mib;
	uint64_t dim;
	const char *dir;
	int json;
};

static int parse_bench_opts(int argc, char **argv, const char *usage,
			    const char *help, struct bench_opts *o)
{
	static const struct option opts[] = {
	    {"mib", required_argument, NULL, 'm'},
	    {"dim", required_argument, NULL, 'd'},
	    {"dir", required_argument, NULL, 'D'},
	    {"json", no_argument, NULL, 'j'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'm':
			if (cli_parse_u64("--mib", optarg, &o->mib))
				return CLI_USAGE;
			break;
		case 'd':
			if (cli_parse_u64("--dim", optarg, &o->dim))
				return CLI_USAGE;
			break;
		case 'D':
			o->dir = optarg;
			break;
		case 'j':
			o->json = 1;
			break;
		case 'h':
			printf("usage: %s\n\n%s\n", usage, help);
			return CLI_OK;
		default:
			return cli_usage(usage, NULL);
		}
	}
	if (optind != argc)
		return cli_usage(usage, "unexpected argument '%s'",
				 argv[optind]);
	if (o->mib == 0 || o->mib > 65536 || o->dim == 0 || o->dim > 65536)
		return cli_usage(usage, "--mib and --dim must be 1..65536");
	return -1;
}

static int bench_crc(int argc, char **argv)
{
	struct bench_opts o = {.mib = 1, .dim = 1};
	int rc =
	    parse_bench_opts(argc, argv, crc_usage,
			     "CRC32C GB/s of each implementation this CPU "
			     "has, memcpy GB/s beside them,\nover a "
			     "buffer of --mib MiB (default 1, which stays in "
			     "cache, so the figure\nis the CPU's; a larger "
			     "buffer measures memory bandwidth as well).",
			     &o);
	size_t len;
	unsigned char *src, *dst;
	uint64_t seed = 42;
	double portable = 0;

	if (rc >= 0)
		return rc;
	len = (size_t)o.mib << 20;
	src = malloc(len);
	dst = malloc(len);
	if (!src || !dst) {
		cli_error("bench crc: %s", strerror(ENOMEM));
		free(src);
		free(dst);
		return CLI_FAIL;
	}
	for (size_t i = 0; i + 8 <= len; i += 8) {
		uint64_t r = bench_rand(&seed);

		memcpy(src + i, &r, 8);
	}
	memset(dst, 0, len);
	if (o.json)
		printf("[");
	for (int impl = -1; impl <= ES_CRC32C_HW_FOLD; impl++) {
		const char *name;
		double gbs;

		if (impl >= 0 && !es_crc32c_impl_available(impl))
			continue;
		name = impl < 0 ? "memcpy" : es_crc32c_impl_name(impl);
		gbs = throughput(impl, dst, src, len);
		if (impl == ES_CRC32C_PORTABLE)
			portable = gbs;
		if (o.json)
			printf("%s{\"impl\":\"%s\",\"gb_per_s\":%.3f,"
			       "\"x_portable\":%.2f}",
			       impl < 0 ? "" : ",", name, gbs,
			       impl >= 0 && portable ? gbs / portable : 0.0);
		else if (impl < 0)
			printf("%-21s %8.2f GB/s\n", name, gbs);
		else
			printf("crc32c %-14s %8.2f GB/s  %6.2fx portable\n",
			       name, gbs, gbs / portable);
	}
	if (o.json)
		printf("]\n");
	free(src);
	free(dst);
	return CLI_OK;
}

/* Writes an .fvecs file of about mib MiB of random dim-d vectors. */
static int write_fvecs(const char *path, uint64_t mib, uint32_t dim,
		       uint64_t *count)
{
	size_t rec = 4 + 4 * (size_t)dim;
	uint64_t n = (mib << 20) / (4 * (uint64_t)dim), seed = 7;
	unsigned char *buf = malloc(rec);
	FILE *f = fopen(path, "wb");
	int rc = (f && buf) ? 0 : -errno;

	for (uint64_t i = 0; rc == 0 && i < n; i++) {
		int32_t d = (int32_t)dim;

		memcpy(buf, &d, 4);
		for (uint32_t j = 0; j < dim; j++) {
			float v = (float)(bench_rand(&seed) >> 40) / 65536.0f;

			memcpy(buf + 4 + 4 * j, &v, 4);
		}
		if (fwrite(buf, rec, 1, f) != 1)
			rc = -EIO;
	}
	if (f && fclose(f) != 0 && rc == 0)
		rc = -errno;
	free(buf);
	*count = n;
	return rc;
}

static void drop_cache(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd >= 0) {
		posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
		close(fd);
	}
}

static int bench_segment(int argc, char **argv)
{
	struct bench_opts o = {.mib = 1024, .dim = 128, .dir = "."};
	int rc =
	    parse_bench_opts(argc, argv, segment_usage,
			     "Times `segment create` (from an .fvecs file, "
			     "including fsync and rename)\nand `segment "
			     "verify` (mmap and pread, warm and cold page "
			     "cache) on a\nsegment of --mib MiB "
			     "(default 1024) of --dim-d vectors in --dir.",
			     &o);
	char *fvecs = NULL, *seg = NULL;
	struct {
		const char *what;
		double seconds;
	} r[5];
	uint64_t count, size;
	double mb, t;
	int n = 0;

	if (rc >= 0)
		return rc;
	if (asprintf(&fvecs, "%s/bench-%d.fvecs", o.dir, (int)getpid()) < 0 ||
	    asprintf(&seg, "%s/bench-%d.ndvs", o.dir, (int)getpid()) < 0) {
		cli_error("bench segment: %s", strerror(ENOMEM));
		return CLI_FAIL;
	}
	rc = write_fvecs(fvecs, o.mib, (uint32_t)o.dim, &count);
	if (rc < 0) {
		cli_error("%s: %s", fvecs, es_store_strerror(rc));
		goto out;
	}
	t = cli_now();
	rc = cli_segment_create(fvecs, seg, 0, 1);
	r[n].what = "create (fvecs -> ndvs, fsync)";
	r[n++].seconds = cli_now() - t;
	unlink(fvecs);
	for (int mode = 0; rc == CLI_OK && mode < 4; mode++) {
		unsigned flags = (mode & 1) ? ES_NDVS_OPEN_PREAD : 0;

		if (mode >= 2)
			drop_cache(seg);
		t = cli_now();
		rc = cli_segment_check(seg, flags, 1);
		r[n].what = (const char *[]){
		    "verify mmap, warm", "verify pread, warm",
		    "verify mmap, cold", "verify pread, cold"}[mode];
		r[n++].seconds = cli_now() - t;
	}
	if (rc != CLI_OK)
		goto out;
	es_ndvs_file_size((uint32_t)o.dim, count, &size);
	mb = (double)size / 1e6;
	if (o.json)
		printf("{\"bytes\":%llu,\"dim\":%llu,\"count\":%llu",
		       (unsigned long long)size, (unsigned long long)o.dim,
		       (unsigned long long)count);
	else
		printf("segment of %llu vectors x %llu dims, %.0f MB\n",
		       (unsigned long long)count, (unsigned long long)o.dim,
		       mb);
	for (int i = 0; i < n; i++) {
		if (o.json)
			printf(",\"%s\":%.1f", r[i].what, mb / r[i].seconds);
		else
			printf("  %-32s %8.1f MB/s  (%.2f s)\n", r[i].what,
			       mb / r[i].seconds, r[i].seconds);
	}
	if (o.json)
		printf("}\n");
out:
	unlink(fvecs);
	unlink(seg);
	free(fvecs);
	free(seg);
	return rc == CLI_OK ? CLI_OK : CLI_FAIL;
}

static const struct cli_cmd bench_cmds[] = {
    {"crc", bench_crc, "CRC32C GB/s per implementation, and memcpy"},
    {"segment", bench_segment, "segment create and verify MB/s"},
    {"ingest", cli_bench_ingest, "local API inserts/s, 1 and 8 clients"},
    {"search", cli_bench_search, "local API search QPS, p99, in-process"},
    {NULL, NULL, NULL},
};

int cli_bench(int argc, char **argv)
{
	return cli_dispatch("edgesync bench", bench_cmds, argc - 1, argv + 1);
}
