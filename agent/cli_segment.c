/* edgesync segment create | verify | info | export */
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "edgesync/ndvs.h"
#include "edgesync/store_error.h"
#include "edgesync/vecs_file.h"

#define ROWS_PER_BATCH 4096

static const char create_usage[] =
    "edgesync segment create --from FILE.fvecs --out SEG.ndvs "
    "[--first-id N]";
static const char verify_usage[] = "edgesync segment verify [--pread] SEG.ndvs";
static const char info_usage[] = "edgesync segment info [--json] SEG.ndvs";
static const char export_usage[] =
    "edgesync segment export SEG.ndvs --out FILE.fvecs [--ids FILE.txt]";

/* Says why path is not a valid segment, with the sizes when they matter. */
static void report_bad_segment(const char *path, int rc,
			       const struct es_ndvs_info *info)
{
	uint64_t want;

	if (rc == ES_E_NDVS_SIZE &&
	    es_ndvs_file_size(info->dim, info->count, &want) == 0)
		cli_error("%s: %s: the file is %llu bytes, dim %u and count "
			  "%llu need %llu",
			  path, es_store_strerror(rc),
			  (unsigned long long)info->file_size, info->dim,
			  (unsigned long long)info->count,
			  (unsigned long long)want);
	else
		cli_error("%s: %s", path, es_store_strerror(rc));
}

int cli_segment_create(const char *from, const char *out, uint64_t first_id,
		       int quiet)
{
	struct es_ndvs_writer *w = NULL;
	struct es_ndvs_info info;
	struct cli_progress bar;
	struct es_vecs *v;
	float *rows = NULL;
	uint64_t *ids = NULL, count;
	uint32_t dim;
	int rc = es_vecs_open(&v, from, ES_VECS_FLOAT);

	if (rc < 0) {
		cli_error("%s: %s", from, es_store_strerror(rc));
		return CLI_FAIL;
	}
	dim = es_vecs_dim(v);
	count = es_vecs_count(v);
	if (first_id > UINT64_MAX - (count - 1)) {
		cli_error("--first-id %llu: ids would pass 2^64 - 1",
			  (unsigned long long)first_id);
		es_vecs_close(v);
		return CLI_USAGE;
	}
	rows = malloc((size_t)ROWS_PER_BATCH * dim * sizeof(float));
	ids = malloc(ROWS_PER_BATCH * sizeof(uint64_t));
	rc = rows && ids ? es_ndvs_writer_open(&w, out, dim, count) : -ENOMEM;
	if (rc < 0) {
		cli_error("%s: %s", out, es_store_strerror(rc));
		goto done;
	}
	cli_progress_start(&bar, "create", count);
	if (quiet)
		bar.active = 0;
	for (uint64_t done = 0; done < count;) {
		long got = es_vecs_read(v, rows, ROWS_PER_BATCH);

		if (got <= 0) {
			rc = got < 0 ? (int)got : -EIO;
			cli_error("%s: vector %llu: %s", from,
				  (unsigned long long)es_vecs_position(v),
				  es_store_strerror(rc));
			goto done;
		}
		for (long i = 0; i < got; i++)
			ids[i] = first_id + done + (uint64_t)i;
		rc = es_ndvs_writer_add(w, rows, ids, (size_t)got);
		if (rc < 0) {
			cli_error("%s: %s", out, es_store_strerror(rc));
			goto done;
		}
		done += (uint64_t)got;
		cli_progress_update(&bar, done);
	}
	cli_progress_end(&bar);
	rc = es_ndvs_writer_commit(w, &info);
	w = NULL;
	if (rc < 0) {
		cli_error("%s: %s", out, es_store_strerror(rc));
		goto done;
	}
	if (!quiet)
		printf("%s: %llu vectors of dim %u, %llu bytes, crc32c "
		       "0x%08x\n",
		       out, (unsigned long long)info.count, info.dim,
		       (unsigned long long)info.file_size, info.checksum);
done:
	es_ndvs_writer_abort(w);
	es_vecs_close(v);
	free(rows);
	free(ids);
	return rc < 0 ? CLI_FAIL : CLI_OK;
}

static int segment_create(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"from", required_argument, NULL, 'f'},
	    {"out", required_argument, NULL, 'o'},
	    {"first-id", required_argument, NULL, 'i'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *from = NULL, *out = NULL;
	uint64_t first_id = 0;
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'f':
			from = optarg;
			break;
		case 'o':
			out = optarg;
			break;
		case 'i':
			if (cli_parse_u64("--first-id", optarg, &first_id))
				return CLI_USAGE;
			break;
		case 'h':
			printf("usage: %s\n\nWrites the vectors of an .fvecs "
			       "file as one NDVS segment, ids N, N+1, ...\n"
			       "(default 0), crash-safely "
			       "(temporary file, fsync, rename).\n",
			       create_usage);
			return CLI_OK;
		default:
			return cli_usage(create_usage, NULL);
		}
	}
	if (optind != argc)
		return cli_usage(create_usage, "unexpected argument '%s'",
				 argv[optind]);
	if (!from || !out)
		return cli_usage(create_usage, "--from and --out are needed");
	return cli_segment_create(from, out, first_id, 0);
}

int cli_segment_check(const char *path, unsigned open_flags, int quiet)
{
	struct es_ndvs_info info;
	struct es_ndvs *seg;
	int rc =
	    es_ndvs_open(&seg, path, open_flags | ES_NDVS_OPEN_VERIFY, &info);

	if (rc < 0) {
		report_bad_segment(path, rc, &info);
		return CLI_FAIL;
	}
	if (!quiet)
		printf("%s: ok, %llu vectors of dim %u, crc32c 0x%08x\n", path,
		       (unsigned long long)info.count, info.dim, info.checksum);
	es_ndvs_close(seg);
	return CLI_OK;
}

/* Parses the options of verify and info: --help, one flag, one path. */
static int one_path(int argc, char **argv, const char *usage, const char *flag,
		    const char *help, int *flag_set, const char **path)
{
	const struct option opts[] = {
	    {flag, no_argument, NULL, 'x'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	int c;

	optind = 1;
	*flag_set = 0;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c == 'x') {
			*flag_set = 1;
		} else if (c == 'h') {
			printf("usage: %s\n\n%s\n", usage, help);
			return CLI_OK;
		} else {
			return cli_usage(usage, NULL);
		}
	}
	if (argc - optind != 1)
		return cli_usage(usage, "one segment file is needed");
	*path = argv[optind];
	return -1;
}

static int segment_verify(int argc, char **argv)
{
	const char *path;
	int pread_mode;
	int rc = one_path(argc, argv, verify_usage, "pread",
			  "Checks every header and footer field, the size, "
			  "the pad and the CRC32C\nof the whole file. Exit "
			  "0 if the segment is valid; otherwise 1 and why.\n"
			  "--pread reads with pread instead of mapping.",
			  &pread_mode, &path);

	if (rc >= 0)
		return rc;
	return cli_segment_check(path, pread_mode ? ES_NDVS_OPEN_PREAD : 0, 0);
}

static int segment_info(int argc, char **argv)
{
	struct es_ndvs_info info;
	struct es_ndvs *seg;
	const char *path;
	int json;
	int rc = one_path(argc, argv, info_usage, "json",
			  "Prints what the header and footer say (the "
			  "checksum is not recomputed;\nverify does that).",
			  &json, &path);

	if (rc >= 0)
		return rc;
	rc = es_ndvs_open(&seg, path, ES_NDVS_OPEN_PREAD, &info);
	if (rc < 0) {
		report_bad_segment(path, rc, &info);
		return CLI_FAIL;
	}
	if (json) {
		printf("{\"path\":");
		cli_json_string(stdout, path);
		printf(",\"format_version\":%d,\"dim\":%u,\"count\":%llu,"
		       "\"created_by\":",
		       ES_NDVS_FORMAT_VERSION, info.dim,
		       (unsigned long long)info.count);
		cli_json_string(stdout, info.created_by);
		printf(",\"checksum\":\"0x%08x\",\"size\":%llu,\"pad\":%u}\n",
		       info.checksum, (unsigned long long)info.file_size,
		       info.pad);
	} else {
		printf("path        %s\nformat      NDVS %d\ndim         %u\n"
		       "count       %llu\ncreated_by  %s\nchecksum    "
		       "0x%08x (CRC32C)\nsize        %llu bytes\n",
		       path, ES_NDVS_FORMAT_VERSION, info.dim,
		       (unsigned long long)info.count, info.created_by,
		       info.checksum, (unsigned long long)info.file_size);
	}
	es_ndvs_close(seg);
	return CLI_OK;
}

/* Writes every row of seg as .fvecs to vf and its id as a line to idf. */
static int export_rows(struct es_ndvs *seg, FILE *vf, FILE *idf)
{
	const struct es_ndvs_info *info = es_ndvs_get_info(seg);
	int32_t dim = (int32_t)info->dim;

	for (uint64_t row = 0; row < info->count; row++) {
		uint64_t id;

		if (fwrite(&dim, 4, 1, vf) != 1 ||
		    fwrite(es_ndvs_row(seg, row), 4, info->dim, vf) !=
			info->dim)
			return -EIO;
		if (idf) {
			int rc = es_ndvs_read_ids(seg, row, 1, &id);

			if (rc < 0)
				return rc;
			if (fprintf(idf, "%llu\n", (unsigned long long)id) < 0)
				return -EIO;
		}
	}
	return 0;
}

static int segment_export(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"out", required_argument, NULL, 'o'},
	    {"ids", required_argument, NULL, 'i'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *out = NULL, *ids_path = NULL, *path;
	struct es_ndvs_info info;
	struct es_ndvs *seg;
	FILE *vf = NULL, *idf = NULL;
	int c, rc;

	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'o':
			out = optarg;
			break;
		case 'i':
			ids_path = optarg;
			break;
		case 'h':
			printf("usage: %s\n\nVerifies the segment, then writes "
			       "its vectors as .fvecs and, with --ids,\nits "
			       "ids one per line.\n",
			       export_usage);
			return CLI_OK;
		default:
			return cli_usage(export_usage, NULL);
		}
	}
	if (argc - optind != 1 || !out)
		return cli_usage(export_usage,
				 "a segment file and --out are needed");
	path = argv[optind];
	if (cli_same_file(path, out) ||
	    (ids_path &&
	     (cli_same_file(path, ids_path) || cli_same_file(out, ids_path))))
		return cli_usage(export_usage,
				 "--out and --ids must be files other than "
				 "the segment and each other");
	rc = es_ndvs_open(&seg, path, ES_NDVS_OPEN_VERIFY, &info);
	if (rc < 0) {
		report_bad_segment(path, rc, &info);
		return CLI_FAIL;
	}
	vf = fopen(out, "wb");
	if (ids_path)
		idf = fopen(ids_path, "w");
	if (!vf || (ids_path && !idf)) {
		cli_error("%s: %s", !vf ? out : ids_path, strerror(errno));
		rc = -errno;
	} else {
		rc = export_rows(seg, vf, idf);
		if (rc < 0)
			cli_error("%s: %s", out, es_store_strerror(rc));
	}
	if (vf && fclose(vf) != 0 && rc == 0) {
		cli_error("%s: %s", out, strerror(errno));
		rc = -EIO;
	}
	if (idf && fclose(idf) != 0 && rc == 0) {
		cli_error("%s: %s", ids_path, strerror(errno));
		rc = -EIO;
	}
	if (rc < 0) {
		unlink(out);
		if (ids_path)
			unlink(ids_path);
	}
	es_ndvs_close(seg);
	return rc < 0 ? CLI_FAIL : CLI_OK;
}

static const struct cli_cmd segment_cmds[] = {
    {"create", segment_create, "write an .fvecs file as a segment"},
    {"verify", segment_verify, "check a segment completely"},
    {"info", segment_info, "print a segment's header and footer"},
    {"export", segment_export, "write a segment's vectors as .fvecs"},
    {NULL, NULL, NULL},
};

int cli_segment(int argc, char **argv)
{
	return cli_dispatch("edgesync segment", segment_cmds, argc - 1,
			    argv + 1);
}
