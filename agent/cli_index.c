/*
 * edgesync index build | search | verify | info: the Vamana index of one
 * segment, as offline tools on files. search, the measuring one, is in
 * cli_index_search.c; what both files share is declared in cli_index.h.
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "cli_index.h"
#include "edgesync/ndvs.h"
#include "edgesync/store_error.h"
#include "edgesync/vamana.h"
#include "edgesync/vecs_file.h"

static const char build_usage[] =
    "edgesync index build SEG.ndvs --out FILE.vamana [--R 64] [--L 100] "
    "[--alpha 1.2] [--threads N] [--metric l2|ip|cosine] [--seed S] "
    "[--pq-m M] [--json]";
static const char verify_usage[] =
    "edgesync index verify FILE.vamana [--segment SEG.ndvs]";
static const char info_usage[] = "edgesync index info FILE.vamana [--json]";

/* cli_index.h */
int cli_index_parse_range(const char *opt, const char *text, uint64_t min,
			  uint64_t max, uint64_t *out)
{
	if (cli_parse_u64(opt, text, out))
		return -1;
	if (*out < min || *out > max) {
		cli_error("%s %s: must be %llu..%llu", opt, text,
			  (unsigned long long)min, (unsigned long long)max);
		return -1;
	}
	return 0;
}

/* cli_index.h */
uint32_t cli_index_sectors_per_node(const struct es_vamana_info *info)
{
	uint64_t node = 4ull * info->dim + 4 + 4ull * info->R;

	return (uint32_t)((node + ES_VAMANA_SECTOR - 1) / ES_VAMANA_SECTOR);
}

/* cli_index.h */
void cli_index_report_bad(const char *path, int rc)
{
	cli_error("%s: %s", path, es_store_strerror(rc));
}

/* cli_index.h */
int cli_index_check_segment(const char *idx_path,
			    const struct es_vamana_info *info,
			    const char *seg_path, int whole)
{
	struct es_ndvs_info seg;
	struct es_ndvs *s;
	int rc = es_ndvs_open(
	    &s, seg_path,
	    ES_NDVS_OPEN_PREAD | (whole ? ES_NDVS_OPEN_VERIFY : 0), &seg);

	if (rc < 0) {
		cli_error("%s: %s", seg_path, es_store_strerror(rc));
		return CLI_FAIL;
	}
	es_ndvs_close(s);
	rc = es_vamana_match(info, &seg);
	if (rc < 0) {
		cli_error("%s: %s (the index's: %llu vectors of dim %u, "
			  "crc32c 0x%08x; %s: %llu vectors of dim %u, "
			  "crc32c 0x%08x)",
			  idx_path, es_store_strerror(rc),
			  (unsigned long long)info->segment_count, info->dim,
			  info->segment_checksum, seg_path,
			  (unsigned long long)seg.count, seg.dim, seg.checksum);
		return CLI_FAIL;
	}
	return CLI_OK;
}

/* ---- build ------------------------------------------------------------ */

static void build_progress(void *arg, uint64_t done, uint64_t total)
{
	struct cli_progress *bar = arg;

	bar->total = total;
	cli_progress_update(bar, done);
}

struct build_opts {
	struct es_vamana_build_params p;
	const char *segment, *out;
	int json;
};

static int parse_alpha(const char *text, float *alpha)
{
	char *end;
	double a;

	errno = 0;
	a = strtod(text, &end);
	if (!*text || *end || errno || !isfinite(a) || a < 1.0 || a > 16.0) {
		cli_error("--alpha '%s': must be a number in 1..16", text);
		return -1;
	}
	*alpha = (float)a;
	return 0;
}

static int parse_build(int argc, char **argv, struct build_opts *o)
{
	static const struct option opts[] = {
	    {"out", required_argument, NULL, 'o'},
	    {"R", required_argument, NULL, 'R'},
	    {"L", required_argument, NULL, 'L'},
	    {"alpha", required_argument, NULL, 'a'},
	    {"threads", required_argument, NULL, 't'},
	    {"metric", required_argument, NULL, 'm'},
	    {"seed", required_argument, NULL, 's'},
	    {"pq-m", required_argument, NULL, 'p'},
	    {"json", no_argument, NULL, 'j'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	struct es_vamana_build_params *p = &o->p;
	uint64_t v;
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'o':
			o->out = optarg;
			break;
		case 'R':
			if (cli_index_parse_range("--R", optarg, 1, 1024, &v))
				return CLI_USAGE;
			p->R = (uint32_t)v;
			break;
		case 'L':
			if (cli_index_parse_range("--L", optarg, 1,
						  ES_VAMANA_MAX_L, &v))
				return CLI_USAGE;
			p->L = (uint32_t)v;
			break;
		case 'a':
			if (parse_alpha(optarg, &p->alpha))
				return CLI_USAGE;
			break;
		case 't':
			if (cli_index_parse_range("--threads", optarg, 0,
						  CLI_INDEX_MAX_THREADS, &v))
				return CLI_USAGE;
			p->threads = (unsigned)v;
			break;
		case 'm':
			if (es_metric_parse(optarg, &p->metric) < 0)
				return cli_usage(build_usage,
						 "--metric '%s': l2, ip or "
						 "cosine",
						 optarg);
			break;
		case 's':
			if (cli_parse_u64("--seed", optarg, &p->seed))
				return CLI_USAGE;
			break;
		case 'p':
			if (cli_index_parse_range("--pq-m", optarg, 0,
						  ES_VECS_MAX_DIM, &v))
				return CLI_USAGE;
			p->pq_m = (uint32_t)v;
			break;
		case 'j':
			o->json = 1;
			break;
		case 'h':
			printf("usage: %s\n\nBuilds the Vamana index of a "
			       "segment and writes it crash-safely.\n"
			       "--R max out-degree (64), --L build search "
			       "list (100), --alpha second-pass\nprune "
			       "factor (1.2), --threads build threads (0, "
			       "the default: every core),\n--metric (l2), "
			       "--seed (1), --pq-m PQ bytes per vector (0: "
			       "min(dim, 64)).\nThe result "
			       "depends on the "
			       "seed only, not on the thread count.\n",
			       build_usage);
			return CLI_OK;
		default:
			return cli_usage(build_usage, NULL);
		}
	}
	if (argc - optind != 1)
		return cli_usage(build_usage, "one segment file is needed");
	o->segment = argv[optind];
	if (!o->out)
		return cli_usage(build_usage, "--out is needed");
	if (cli_same_file(o->segment, o->out))
		return cli_usage(build_usage, "--out %s is the segment itself",
				 o->out);
	return -1;
}

static int index_build(int argc, char **argv)
{
	struct build_opts o = {.json = 0};
	struct es_ndvs_info seg;
	struct cli_progress bar;
	struct es_ndvs *s;
	unsigned threads;
	double t;
	int rc;

	es_vamana_build_defaults(&o.p);
	rc = parse_build(argc, argv, &o);
	if (rc >= 0)
		return rc;
	rc = es_ndvs_open(&s, o.segment, ES_NDVS_OPEN_PREAD, &seg);
	if (rc < 0) {
		cli_error("%s: %s", o.segment, es_store_strerror(rc));
		return CLI_FAIL;
	}
	es_ndvs_close(s);
	if (o.p.pq_m > seg.dim)
		return cli_usage(build_usage, "--pq-m %u: at most the dim, %u",
				 o.p.pq_m, seg.dim);
	threads = o.p.threads;
	if (!threads) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);

		threads = n > 0 ? (unsigned)n : 1;
	}
	cli_progress_start(&bar, "build", seg.count);
	o.p.progress = build_progress;
	o.p.progress_arg = &bar;
	t = cli_now();
	rc = es_vamana_build(o.segment, o.out, &o.p);
	t = cli_now() - t;
	cli_progress_end(&bar);
	if (rc < 0) {
		cli_error("%s -> %s: %s", o.segment, o.out,
			  es_store_strerror(rc));
		return CLI_FAIL;
	}
	if (o.json) {
		printf("{\"path\":");
		cli_json_string(stdout, o.out);
		printf(",\"nodes\":%llu,\"dim\":%u,\"R\":%u,\"L\":%u,"
		       "\"alpha\":%g,\"metric\":\"%s\",\"threads\":%u,"
		       "\"build_s\":%.3f}\n",
		       (unsigned long long)seg.count, seg.dim, o.p.R, o.p.L,
		       (double)o.p.alpha, es_metric_name(o.p.metric), threads,
		       t);
	} else {
		printf("%s: %llu nodes of dim %u, R %u, L %u, alpha %g, %s; "
		       "built in %.2f s on %u threads\n",
		       o.out, (unsigned long long)seg.count, seg.dim, o.p.R,
		       o.p.L, (double)o.p.alpha, es_metric_name(o.p.metric), t,
		       threads);
	}
	return CLI_OK;
}

/* ---- verify, info ----------------------------------------------------- */

static int index_verify(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"segment", required_argument, NULL, 's'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *segment = NULL, *path;
	struct es_vamana_info info;
	struct es_vamana *v;
	int c, rc;

	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c == 's') {
			segment = optarg;
		} else if (c == 'h') {
			printf("usage: %s\n\nChecks every header and footer "
			       "field, the CRC32C of the whole file and\n"
			       "the graph (degrees at most R, neighbours "
			       "in range, unused slots empty).\nWith "
			       "--segment, also that the index was built "
			       "from that segment, and that segment "
			       "whole.\nExit 0 if all is well; "
			       "otherwise 1 and why.\n",
			       verify_usage);
			return CLI_OK;
		} else {
			return cli_usage(verify_usage, NULL);
		}
	}
	if (argc - optind != 1)
		return cli_usage(verify_usage, "one index file is needed");
	path = argv[optind];
	rc = es_vamana_open(&v, path, ES_VAMANA_OPEN_VERIFY, 0, &info);
	if (rc < 0) {
		cli_index_report_bad(path, rc);
		return CLI_FAIL;
	}
	rc =
	    segment ? cli_index_check_segment(path, &info, segment, 1) : CLI_OK;
	if (rc == CLI_OK)
		printf("%s: ok, %llu nodes of dim %u, R %u, %s, crc32c "
		       "0x%08x%s%s\n",
		       path, (unsigned long long)info.num_nodes, info.dim,
		       info.R, es_metric_name(info.metric), info.checksum,
		       segment ? ", built from " : "", segment ? segment : "");
	es_vamana_close(v);
	return rc;
}

static void info_json(const char *path, const struct es_vamana_info *i)
{
	printf("{\"path\":");
	cli_json_string(stdout, path);
	printf(",\"format_version\":%d,\"metric\":\"%s\",\"dim\":%u,"
	       "\"R\":%u,\"build_L\":%u,\"alpha\":%g,\"pq_m\":%u,"
	       "\"nodes\":%llu,\"entry\":%llu,\"seed\":%llu,"
	       "\"sectors_per_node\":%u,\"size\":%llu,"
	       "\"checksum\":\"0x%08x\",\"segment_id\":%llu,"
	       "\"segment_count\":%llu,\"segment_size\":%llu,"
	       "\"segment_checksum\":\"0x%08x\"}\n",
	       ES_VAMANA_FORMAT_VERSION, es_metric_name(i->metric), i->dim,
	       i->R, i->build_L, (double)i->alpha, i->pq_m,
	       (unsigned long long)i->num_nodes, (unsigned long long)i->entry,
	       (unsigned long long)i->seed, cli_index_sectors_per_node(i),
	       (unsigned long long)i->file_size, i->checksum,
	       (unsigned long long)i->segment_id,
	       (unsigned long long)i->segment_count,
	       (unsigned long long)i->segment_size, i->segment_checksum);
}

static void info_text(const char *path, const struct es_vamana_info *i)
{
	uint64_t node = 4ull * i->dim + 4 + 4ull * i->R;

	printf("path        %s\nformat      ESVAMANA %d\nmetric      %s\n"
	       "dim         %u\nR           %u\nbuild L     %u\n"
	       "alpha       %g\nPQ          %u bytes per vector\n"
	       "nodes       %llu (entry %llu)\nnode        %llu bytes, "
	       "%u sector%s per read\nseed        %llu\n"
	       "size        %llu bytes\nchecksum    0x%08x (CRC32C)\n"
	       "segment     id %llu, %llu vectors, %llu bytes, crc32c "
	       "0x%08x\n",
	       path, ES_VAMANA_FORMAT_VERSION, es_metric_name(i->metric),
	       i->dim, i->R, i->build_L, (double)i->alpha, i->pq_m,
	       (unsigned long long)i->num_nodes, (unsigned long long)i->entry,
	       (unsigned long long)node, cli_index_sectors_per_node(i),
	       cli_index_sectors_per_node(i) == 1 ? "" : "s",
	       (unsigned long long)i->seed, (unsigned long long)i->file_size,
	       i->checksum, (unsigned long long)i->segment_id,
	       (unsigned long long)i->segment_count,
	       (unsigned long long)i->segment_size, i->segment_checksum);
}

static int index_info(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"json", no_argument, NULL, 'j'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	struct es_vamana_info info;
	struct es_vamana *v;
	int c, rc, json = 0;

	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c == 'j') {
			json = 1;
		} else if (c == 'h') {
			printf("usage: %s\n\nPrints what the header says (the "
			       "checksum is not recomputed;\nverify does "
			       "that).\n",
			       info_usage);
			return CLI_OK;
		} else {
			return cli_usage(info_usage, NULL);
		}
	}
	if (argc - optind != 1)
		return cli_usage(info_usage, "one index file is needed");
	rc = es_vamana_open(&v, argv[optind], ES_VAMANA_OPEN_PREAD, 0, &info);
	if (rc < 0) {
		cli_index_report_bad(argv[optind], rc);
		return CLI_FAIL;
	}
	if (json)
		info_json(argv[optind], &info);
	else
		info_text(argv[optind], &info);
	es_vamana_close(v);
	return CLI_OK;
}

static const struct cli_cmd index_cmds[] = {
    {"build", index_build, "build the Vamana index of a segment"},
    {"search", cli_index_search, "measure recall, QPS, latency and reads"},
    {"verify", index_verify, "check an index file completely"},
    {"info", index_info, "print an index file's header"},
    {NULL, NULL, NULL},
};

int cli_index(int argc, char **argv)
{
	return cli_dispatch("edgesync index", index_cmds, argc - 1, argv + 1);
}
