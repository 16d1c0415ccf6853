/*
 * The client commands of edgesync that work on collections and vectors:
 * collection, import, insert, search, delete, get, flush (status,
 * segments, peers and sync-now are in cli_status.c), and what every
 * client command shares (cli_client.h). Each talks to a running agent
 * through the client library only (edgesync/client.h), prints a table for
 * people or, with --json, JSON for scripts, and exits 0, 1 (the agent or
 * the connection failed; the message says which) or 64 (usage).
 *
 * The socket is -s SOCKET (before the command or among its options), else
 * $EDGESYNC_SOCKET, else the agent's default.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "cli_client.h"
#include "config.h"
#include "edgesync/client.h"
#include "edgesync/store_error.h"
#include "edgesync/vecs_file.h"

#define MAX_DIM	     4096
#define MAX_OWN_OPTS 8

static const char *global_socket;
static int global_json;

static const char *default_socket(void)
{
	const char *env = getenv("EDGESYNC_SOCKET");

	if (global_socket)
		return global_socket;
	return env && *env ? env : ES_CONFIG_DEFAULT_SOCKET;
}

int cli_client_globals(int argc, char **argv)
{
	int i = 0;

	while (i < argc) {
		if (!strcmp(argv[i], "--json")) {
			global_json = 1;
			i++;
		} else if (!strcmp(argv[i], "-s") ||
			   !strcmp(argv[i], "--socket")) {
			if (i + 1 >= argc) {
				cli_error("%s needs a socket path", argv[i]);
				return -1;
			}
			global_socket = argv[i + 1];
			i += 2;
		} else if (!strncmp(argv[i], "--socket=", 9)) {
			global_socket = argv[i] + 9;
			i++;
		} else {
			break;
		}
	}
	return i;
}

/*
 * Parses -s, --json, --help and the command's own options; returns -1 to
 * go on, or an exit code.
 */
int cli_cmd_parse(int argc, char **argv, const struct cmd_spec *spec, void *ctx,
		  struct client_args *a)
{
	struct option opts[MAX_OWN_OPTS + 4];
	int n = 0, c, rc;

	for (; spec->own && spec->own[n].name; n++)
		opts[n] = spec->own[n];
	opts[n] = (struct option){"socket", required_argument, NULL, 's'};
	opts[n + 1] = (struct option){"json", no_argument, NULL, 'j'};
	opts[n + 2] = (struct option){"help", no_argument, NULL, 'h'};
	opts[n + 3] = (struct option){NULL, 0, NULL, 0};
	a->socket = default_socket();
	a->json = global_json;
	optind = 1;
	while ((c = getopt_long(argc, argv, "s:", opts, NULL)) != -1) {
		if (c == 's') {
			a->socket = optarg;
		} else if (c == 'j') {
			a->json = 1;
		} else if (c == 'h') {
			printf("usage: %s\n\n%s\n\nCommon options:\n"
			       "  -s, --socket PATH  the agent's socket "
			       "(default $EDGESYNC_SOCKET or %s)\n"
			       "  --json             JSON output for "
			       "scripts\n",
			       spec->usage, spec->help,
			       ES_CONFIG_DEFAULT_SOCKET);
			return CLI_OK;
		} else if (c == '?' || c == ':') {
			return cli_usage(spec->usage, NULL);
		} else if ((rc = spec->fn(ctx, c, optarg)) != CLI_OK) {
			return rc == CLI_USAGE ? cli_usage(spec->usage, NULL)
					       : rc;
		}
	}
	a->pos = argv + optind;
	a->npos = argc - optind;
	if (a->npos < spec->min_pos)
		return cli_usage(spec->usage, "missing arguments");
	if (a->npos > spec->max_pos)
		return cli_usage(spec->usage, "unexpected argument '%s'",
				 argv[optind + spec->max_pos]);
	return -1;
}

int cli_connect(const struct client_args *a, struct es_client **c)
{
	return cli_connect_timeout(a, 0, c);
}

int cli_connect_timeout(const struct client_args *a, unsigned timeout_ms,
			struct es_client **c)
{
	int rc = es_client_open(c, a->socket, timeout_ms);

	if (rc < 0) {
		cli_error("%s: %s (is the agent running?)", a->socket,
			  es_client_strerror(rc));
		return CLI_FAIL;
	}
	return CLI_OK;
}

/* Reports a failed request; returns CLI_FAIL. */
int cli_failed(struct es_client *c, const struct client_args *a, int rc,
	       const char *what)
{
	if (rc == ES_E_CLIENT_REMOTE)
		cli_error("%s: %s (%s)", what, es_client_error(c),
			  es_client_error_code(c));
	else if (rc == ES_E_CLIENT_CONNECT)
		cli_error("%s: %s: %s", what, a->socket, es_client_error(c));
	else
		cli_error("%s: %s", what, es_client_strerror(rc));
	return CLI_FAIL;
}

int cli_no_opts(void *ctx, int val, const char *arg)
{
	return CLI_USAGE;
}

/* ---- printing --------------------------------------------------------- */

static void json_collection(const struct es_client_collection *k)
{
	printf("{\"name\":");
	cli_json_string(stdout, k->name);
	printf(",\"dim\":%u,\"metric\":", k->dim);
	cli_json_string(stdout, k->metric);
	printf(",\"sync\":");
	cli_json_string(stdout, k->sync);
	printf(",\"vectors\":%llu,\"growing\":%llu,\"segments\":%llu,"
	       "\"indexed\":%llu,\"version\":%llu,\"bytes\":%llu}",
	       (unsigned long long)k->vectors, (unsigned long long)k->growing,
	       (unsigned long long)k->segments, (unsigned long long)k->indexed,
	       (unsigned long long)k->version, (unsigned long long)k->bytes);
}

static void print_collection(const struct es_client_collection *k)
{
	char b[32];

	printf("name      %s\ndim       %u\nmetric    %s\nsync      %s\n"
	       "vectors   %llu\ngrowing   %llu (not yet in a segment)\n"
	       "segments  %llu (%llu indexed)\nversion   %llu\n"
	       "on disk   %s\n",
	       k->name, k->dim, k->metric, k->sync,
	       (unsigned long long)k->vectors, (unsigned long long)k->growing,
	       (unsigned long long)k->segments, (unsigned long long)k->indexed,
	       (unsigned long long)k->version,
	       cli_human_bytes(k->bytes, b, sizeof(b)));
}

/* Parses "1,2,3" into out (at most max values); the count or -1. */
static int parse_vector(const char *text, float *out, int max)
{
	const char *p = text;
	int n = 0;

	for (;;) {
		char *end;
		float v;

		while (*p == ' ')
			p++;
		v = strtof(p, &end);
		if (end == p || !isfinite(v) || n >= max) {
			cli_error("--vector: '%s' is not up to %d finite "
				  "numbers separated by commas",
				  text, max);
			return -1;
		}
		out[n++] = v;
		p = end;
		while (*p == ' ')
			p++;
		if (!*p)
			return n;
		if (*p++ != ',') {
			cli_error("--vector: '%s': expected a comma at "
				  "'%s'",
				  text, p - 1);
			return -1;
		}
	}
}

/* ---- collection ------------------------------------------------------- */

struct create_ctx {
	uint64_t dim;
	const char *metric, *sync; /* sync NULL: the agent's default */
	int publish;
};

static int create_opt(void *ctx, int val, const char *arg)
{
	struct create_ctx *x = ctx;

	if (val == 'd')
		return cli_parse_u64("--dim", arg, &x->dim) ? CLI_USAGE : 0;
	if (val == 'm')
		x->metric = arg;
	else if (val == 'p')
		x->publish = 1;
	else
		x->sync = arg;
	return CLI_OK;
}

static int one_of(const char *opt, const char *v, const char *const *set)
{
	for (; *set; set++)
		if (!strcmp(v, *set))
			return 0;
	cli_error("%s: '%s' is not one of the choices", opt, v);
	return -1;
}

static int collection_create(int argc, char **argv)
{
	static const struct option own[] = {
	    {"dim", required_argument, NULL, 'd'},
	    {"metric", required_argument, NULL, 'm'},
	    {"sync", required_argument, NULL, 'y'},
	    {"publish", no_argument, NULL, 'p'},
	    {NULL, 0, NULL, 0},
	};
	static const struct cmd_spec spec = {
	    "edgesync collection create NAME --dim D [--metric "
	    "l2|ip|cosine] [--sync upload|download|both|none | --publish]",
	    "Makes a collection of D-dimensional vectors (1 to 4096). The "
	    "metric is l2\n(default), ip or cosine; --sync says which way "
	    "it replicates (default: the\nagent's, upload on an edge and "
	    "none elsewhere). --publish, on a cloud, is\n--sync download: "
	    "its edges download the collection. NAME is 1 to 64 of\na-z, "
	    "0-9, _ and -.",
	    own,
	    create_opt,
	    1,
	    1};
	static const char *const metrics[] = {"l2", "ip", "cosine", NULL};
	static const char *const syncs[] = {"upload", "download", "both",
					    "none", NULL};
	struct create_ctx x = {0, "l2", NULL, 0};
	struct es_client_collection k;
	struct client_args a = {0};
	struct es_client *c;
	int rc = cli_cmd_parse(argc, argv, &spec, &x, &a);

	if (rc >= 0)
		return rc;
	if (x.dim < 1 || x.dim > MAX_DIM)
		return cli_usage(spec.usage, "--dim from 1 to %d is needed",
				 MAX_DIM);
	if (x.publish && x.sync)
		return cli_usage(spec.usage, "--publish is --sync download; "
					     "give one of them");
	if (x.publish)
		x.sync = "download";
	if (one_of("--metric", x.metric, metrics) ||
	    (x.sync && one_of("--sync", x.sync, syncs)))
		return cli_usage(spec.usage, NULL);
	if (cli_connect(&a, &c))
		return CLI_FAIL;
	rc = es_client_collection_create(c, a.pos[0], (uint32_t)x.dim, x.metric,
					 x.sync);
	if (rc == 0)
		rc = es_client_collection_info(c, a.pos[0], &k);
	if (rc < 0) {
		cli_failed(c, &a, rc, a.pos[0]);
	} else if (a.json) {
		json_collection(&k);
		putchar('\n');
	} else {
		printf("collection %s created: dim %u, metric %s, sync %s\n",
		       k.name, k.dim, k.metric, k.sync);
	}
	es_client_close(c);
	return rc < 0 ? CLI_FAIL : CLI_OK;
}

static int collection_list(int argc, char **argv)
{
	static const struct cmd_spec spec = {
	    "edgesync collection list",
	    "Lists the collections with their sizes.",
	    NULL,
	    cli_no_opts,
	    0,
	    0};
	struct es_client_collection *list = NULL;
	struct client_args a = {0};
	struct es_client *c;
	size_t n = 0;
	char b[32];
	int rc = cli_cmd_parse(argc, argv, &spec, NULL, &a);

	if (rc >= 0)
		return rc;
	if (cli_connect(&a, &c))
		return CLI_FAIL;
	rc = es_client_collection_list(c, &list, &n);
	if (rc < 0) {
		cli_failed(c, &a, rc, "collection list");
	} else if (a.json) {
		printf("{\"collections\":[");
		for (size_t i = 0; i < n; i++) {
			if (i)
				putchar(',');
			json_collection(&list[i]);
		}
		printf("]}\n");
	} else {
		printf("%-24s %5s %-6s %-8s %10s %8s %8s %10s\n", "NAME", "DIM",
		       "METRIC", "SYNC", "VECTORS", "GROWING", "SEGMENTS",
		       "SIZE");
		for (size_t i = 0; i < n; i++)
			printf("%-24s %5u %-6s %-8s %10llu %8llu %8llu "
			       "%10s\n",
			       list[i].name, list[i].dim, list[i].metric,
			       list[i].sync,
			       (unsigned long long)list[i].vectors,
			       (unsigned long long)list[i].growing,
			       (unsigned long long)list[i].segments,
			       cli_human_bytes(list[i].bytes, b, sizeof(b)));
	}
	free(list);
	es_client_close(c);
	return rc < 0 ? CLI_FAIL : CLI_OK;
}

/* info, drop and flush: one collection name, one request. */
enum name_op { OP_INFO, OP_DROP, OP_FLUSH };

static int name_command(int argc, char **argv, const struct cmd_spec *spec,
			enum name_op op)
{
	struct es_client_collection k;
	struct client_args a = {0};
	struct es_client *c;
	const char *name;
	int rc = cli_cmd_parse(argc, argv, spec, NULL, &a);

	if (rc >= 0)
		return rc;
	if (cli_connect(&a, &c))
		return CLI_FAIL;
	name = a.pos[0];
	rc = 0;
	if (op == OP_DROP)
		rc = es_client_collection_drop(c, name);
	else if (op == OP_FLUSH)
		rc = es_client_flush(c, name);
	if (rc >= 0 && op != OP_DROP)
		rc = es_client_collection_info(c, name, &k);
	if (rc < 0) {
		cli_failed(c, &a, rc, name);
	} else if (a.json && op == OP_DROP) {
		printf("{\"dropped\":");
		cli_json_string(stdout, name);
		printf("}\n");
	} else if (a.json) {
		json_collection(&k);
		putchar('\n');
	} else if (op == OP_DROP) {
		printf("collection %s dropped\n", name);
	} else if (op == OP_FLUSH) {
		printf("%s flushed: %llu vectors in %llu segments (%llu "
		       "indexed), %llu growing\n",
		       name, (unsigned long long)k.vectors,
		       (unsigned long long)k.segments,
		       (unsigned long long)k.indexed,
		       (unsigned long long)k.growing);
	} else {
		print_collection(&k);
	}
	es_client_close(c);
	return rc < 0 ? CLI_FAIL : CLI_OK;
}

static int collection_info(int argc, char **argv)
{
	static const struct cmd_spec spec = {
	    "edgesync collection info NAME",
	    "Shows a collection: dimension, metric, sync, vectors, "
	    "segments, bytes.",
	    NULL,
	    cli_no_opts,
	    1,
	    1};

	return name_command(argc, argv, &spec, OP_INFO);
}

static int collection_drop(int argc, char **argv)
{
	static const struct cmd_spec spec = {
	    "edgesync collection drop NAME",
	    "Deletes a collection with all its vectors, segments and "
	    "indexes.",
	    NULL,
	    cli_no_opts,
	    1,
	    1};

	return name_command(argc, argv, &spec, OP_DROP);
}

int cli_flush(int argc, char **argv)
{
	static const struct cmd_spec spec = {
	    "edgesync flush NAME",
	    "Seals what is growing in the collection into a segment and "
	    "returns once it\nis durable (its index is built in the "
	    "background).",
	    NULL,
	    cli_no_opts,
	    1,
	    1};

	return name_command(argc, argv, &spec, OP_FLUSH);
}

int cli_collection(int argc, char **argv)
{
	static const struct cli_cmd cmds[] = {
	    {"create", collection_create, "make a collection"},
	    {"list", collection_list, "list the collections"},
	    {"info", collection_info, "show one collection"},
	    {"drop", collection_drop, "delete a collection and its data"},
	    {NULL, NULL, NULL},
	};

	return cli_dispatch("edgesync collection", cmds, argc - 1, argv + 1);
}

/* ---- import ----------------------------------------------------------- */

struct import_ctx {
	uint64_t first_id, batch;
	int have_first_id, id_column, header;
	enum es_vecs_format format;
};

static int import_opt(void *ctx, int val, const char *arg)
{
	struct import_ctx *x = ctx;

	if (val == 'F') {
		static const enum es_vecs_format formats[] = {
		    ES_VECS_FVECS, ES_VECS_NPY, ES_VECS_CSV};

		for (size_t i = 0; i < sizeof(formats) / sizeof(*formats); i++)
			if (!strcmp(arg, es_vecs_format_name(formats[i]))) {
				x->format = formats[i];
				return 0;
			}
		cli_error("--format: '%s' is not fvecs, npy or csv", arg);
		return CLI_USAGE;
	}
	if (val == 'i') {
		x->id_column = 1;
		return 0;
	}
	if (val == 'H') {
		x->header = 1;
		return 0;
	}
	if (val == 'f') {
		x->have_first_id = 1;
		return cli_parse_u64("--first-id", arg, &x->first_id)
			   ? CLI_USAGE
			   : 0;
	}
	return cli_parse_u64("--batch", arg, &x->batch) ? CLI_USAGE : 0;
}

/* Reports what was wrong with the file at path, and where. */
static void import_file_error(const char *path, int rc,
			      const struct es_vecs_loc *loc)
{
	char msg[PATH_MAX + 256];

	cli_error("%s", es_vecs_message(msg, sizeof(msg), path, rc, loc));
}

/* Inserts every vector of v in batches; the count done, or rc < 0. */
static int import_rows(struct es_client *c, const struct client_args *a,
		       struct es_vecs *v, const struct import_ctx *x,
		       uint64_t *done)
{
	uint32_t dim = es_vecs_dim(v);
	float *rows = malloc((size_t)x->batch * dim * sizeof(float));
	uint64_t *ids = malloc((size_t)x->batch * sizeof(uint64_t));
	struct cli_progress bar;
	struct es_vecs_loc loc;
	int rc = rows && ids ? 0 : -ENOMEM;

	cli_progress_start(&bar, "import", es_vecs_count(v));
	while (rc == 0) {
		long got = es_vecs_read_ids(v, rows, ids, (size_t)x->batch);

		if (got <= 0) {
			rc = (int)got;
			if (got < 0) {
				cli_progress_break(&bar);
				es_vecs_where(v, &loc);
				import_file_error(a->pos[1], rc, &loc);
			}
			break;
		}
		if (!es_vecs_has_ids(v))
			for (long i = 0; i < got; i++)
				ids[i] = x->first_id + *done + (uint64_t)i;
		rc =
		    es_client_insert(c, a->pos[0], ids, rows, (size_t)got, dim);
		if (rc < 0) {
			cli_progress_break(&bar);
			cli_failed(c, a, rc, a->pos[0]);
			if (rc == ES_E_CLIENT_TOO_BIG)
				cli_error("a smaller --batch fits");
			break;
		}
		*done += (uint64_t)got;
		cli_progress_update(&bar, *done);
	}
	cli_progress_end(&bar);
	if (rc == -ENOMEM)
		cli_error("out of memory");
	free(rows);
	free(ids);
	return rc;
}

static void print_imported(const char *name, const struct es_vecs *v,
			   uint64_t done, uint64_t first_id, double seconds)
{
	printf("{\"collection\":");
	cli_json_string(stdout, name);
	printf(",\"format\":\"%s\",\"imported\":%llu,",
	       es_vecs_format_name(es_vecs_format(v)),
	       (unsigned long long)done);
	if (es_vecs_has_ids(v))
		printf("\"first_id\":null");
	else
		printf("\"first_id\":%llu", (unsigned long long)first_id);
	printf(",\"seconds\":%.3f}\n", seconds);
}

/* Opens the file to import and checks it against the options. */
static int import_open(const char *usage, const char *path,
		       const struct import_ctx *x, struct es_vecs **vp)
{
	struct es_vecs_loc loc;
	uint64_t count;
	int rc = es_vecs_open_as(vp, path, x->format,
				 (x->id_column ? ES_VECS_ID_COLUMN : 0) |
				     (x->header ? ES_VECS_HEADER : 0),
				 &loc);

	if (rc < 0) {
		import_file_error(path, rc, &loc);
		if (!x->header && loc.line == 1 &&
		    (rc == ES_E_CSV_NUMBER || rc == ES_E_CSV_ID))
			cli_error("if line 1 is a header (one with numbers in "
				  "it, like pandas' ',0,1,2'), --header "
				  "skips it");
		return CLI_FAIL;
	}
	if (x->header && es_vecs_format(*vp) != ES_VECS_CSV) {
		es_vecs_close(*vp);
		*vp = NULL;
		return cli_usage(usage, "--header: %s is not CSV", path);
	}
	count = es_vecs_count(*vp);
	if (x->id_column && !es_vecs_has_ids(*vp)) {
		rc = cli_usage(usage,
			       "--id-column: %s is %s; only CSV files "
			       "have an id column",
			       path, es_vecs_format_name(es_vecs_format(*vp)));
	} else if (!x->id_column && x->first_id > UINT64_MAX - (count - 1)) {
		cli_error("--first-id: ids would pass 2^64 - 1");
		rc = CLI_USAGE;
	}
	if (rc) {
		es_vecs_close(*vp);
		*vp = NULL;
	}
	return rc;
}

int cli_import(int argc, char **argv)
{
	static const struct option own[] = {
	    {"first-id", required_argument, NULL, 'f'},
	    {"batch", required_argument, NULL, 'b'},
	    {"format", required_argument, NULL, 'F'},
	    {"id-column", no_argument, NULL, 'i'},
	    {"header", no_argument, NULL, 'H'},
	    {NULL, 0, NULL, 0},
	};
	static const struct cmd_spec spec = {
	    "edgesync import NAME FILE [--format fvecs|npy|csv] "
	    "[--first-id N | --id-column]\n"
	    "       [--header] [--batch 1000]",
	    "Inserts every vector of FILE into the collection, --batch "
	    "vectors per request;\neach batch is durable when the agent "
	    "answers, so an interrupted import can\nsimply be run again. "
	    "FILE is one of:\n"
	    "  .fvecs  texmex: each vector an int32 dim, then dim float32 "
	    "(little-endian)\n"
	    "  .npy    NumPy, versions 1.0 to 3.0: a 2-D C-order array "
	    "(vectors, dim) of\n"
	    "          little-endian float32 or float64 (<f4, <f8; "
	    "float64 must fit float32)\n"
	    "  CSV     one vector per line, decimal numbers separated by "
	    "commas; a first\n"
	    "          line with no number in it is a header and skipped "
	    "(--header: line 1\n          is one, whatever it holds); "
	    "blank lines skipped\n"
	    "The format is found from the content (the .npy magic, else "
	    "text is CSV, else\n.fvecs); --format says it instead. The "
	    "vectors get ids N, N+1, ... (--first-id,\ndefault 0) in file "
	    "order; with --id-column (CSV only) the first column of each\n"
	    "line is its id, a whole number 0 to 2^64 - 1. NaN and "
	    "infinite values are\nrefused; an error names the file and "
	    "the line and column (CSV) or vector.",
	    own,
	    import_opt,
	    2,
	    2};
	struct import_ctx x = {0, 1000, 0, 0, 0, ES_VECS_AUTO};
	struct es_client_collection k;
	struct client_args a = {0};
	struct es_client *c;
	struct es_vecs *v;
	uint64_t done = 0;
	double t0;
	int rc = cli_cmd_parse(argc, argv, &spec, &x, &a);

	if (rc >= 0)
		return rc;
	if (x.batch < 1 || x.batch > 1000000)
		return cli_usage(spec.usage, "--batch is 1 to 1000000");
	if (x.id_column && x.have_first_id)
		return cli_usage(spec.usage, "--first-id and --id-column "
					     "exclude each other");
	rc = import_open(spec.usage, a.pos[1], &x, &v);
	if (rc)
		return rc;
	if (cli_connect(&a, &c)) {
		es_vecs_close(v);
		return CLI_FAIL;
	}
	rc = es_client_collection_info(c, a.pos[0], &k);
	if (rc < 0) {
		cli_failed(c, &a, rc, a.pos[0]);
	} else if (k.dim != es_vecs_dim(v)) {
		cli_error("%s has vectors of dim %u; collection %s has dim %u",
			  a.pos[1], es_vecs_dim(v), a.pos[0], k.dim);
		if (es_vecs_format(v) == ES_VECS_CSV && !x.id_column &&
		    es_vecs_dim(v) == k.dim + 1)
			cli_error("is the first column an id? --id-column "
				  "says so");
		rc = -EINVAL;
	} else {
		t0 = cli_now();
		rc = import_rows(c, &a, v, &x, &done);
		t0 = cli_now() - t0;
	}
	if (rc < 0 && done && es_vecs_has_ids(v))
		cli_error("the first %llu vectors of %s are stored; the rest "
			  "are not",
			  (unsigned long long)done, a.pos[1]);
	else if (rc < 0 && done)
		cli_error("ids %llu to %llu are stored; the rest are not",
			  (unsigned long long)x.first_id,
			  (unsigned long long)(x.first_id + done - 1));
	else if (rc == 0 && a.json)
		print_imported(k.name, v, done, x.first_id, t0);
	else if (rc == 0 && es_vecs_has_ids(v))
		printf("imported %llu vectors into %s (ids from the file) in "
		       "%.2f s, %.0f per second\n",
		       (unsigned long long)done, k.name, t0,
		       t0 > 0 ? (double)done / t0 : 0.0);
	else if (rc == 0)
		printf("imported %llu vectors into %s (ids %llu to %llu) in "
		       "%.2f s, %.0f per second\n",
		       (unsigned long long)done, k.name,
		       (unsigned long long)x.first_id,
		       (unsigned long long)(x.first_id + done - 1), t0,
		       t0 > 0 ? (double)done / t0 : 0.0);
	es_client_close(c);
	es_vecs_close(v);
	return rc < 0 ? CLI_FAIL : CLI_OK;
}

/* ---- insert, get, delete ---------------------------------------------- */

struct insert_ctx {
	uint64_t id;
	int have_id;
	const char *vector;
};

static int insert_opt(void *ctx, int val, const char *arg)
{
	struct insert_ctx *x = ctx;

	if (val == 'v') {
		x->vector = arg;
		return CLI_OK;
	}
	x->have_id = 1;
	return cli_parse_u64("--id", arg, &x->id) ? CLI_USAGE : 0;
}

int cli_insert(int argc, char **argv)
{
	static const struct option own[] = {
	    {"id", required_argument, NULL, 'i'},
	    {"vector", required_argument, NULL, 'v'},
	    {NULL, 0, NULL, 0},
	};
	static const struct cmd_spec spec = {
	    "edgesync insert NAME --id N --vector X1,X2,...",
	    "Stores one vector under id N (replacing the vector that had "
	    "that id); it is\ndurable and searchable when the command "
	    "returns.",
	    own,
	    insert_opt,
	    1,
	    1};
	struct insert_ctx x = {0};
	static float vec[MAX_DIM];
	struct client_args a = {0};
	struct es_client *c;
	int dim, rc = cli_cmd_parse(argc, argv, &spec, &x, &a);

	if (rc >= 0)
		return rc;
	if (!x.have_id || !x.vector)
		return cli_usage(spec.usage, "--id and --vector are needed");
	dim = parse_vector(x.vector, vec, MAX_DIM);
	if (dim < 0)
		return CLI_USAGE;
	if (cli_connect(&a, &c))
		return CLI_FAIL;
	rc = es_client_insert(c, a.pos[0], &x.id, vec, 1, (uint32_t)dim);
	if (rc < 0)
		cli_failed(c, &a, rc, a.pos[0]);
	else if (a.json)
		printf("{\"inserted\":1,\"id\":%llu}\n",
		       (unsigned long long)x.id);
	else
		printf("inserted id %llu into %s\n", (unsigned long long)x.id,
		       a.pos[0]);
	es_client_close(c);
	return rc < 0 ? CLI_FAIL : CLI_OK;
}

int cli_get(int argc, char **argv)
{
	static const struct cmd_spec spec = {
	    "edgesync get NAME ID",
	    "Prints the vector stored under ID, as comma-separated values "
	    "(what insert\n--vector takes).",
	    NULL,
	    cli_no_opts,
	    2,
	    2};
	static float vec[MAX_DIM];
	struct client_args a = {0};
	struct es_client *c;
	uint32_t dim = 0;
	uint64_t id;
	int rc = cli_cmd_parse(argc, argv, &spec, NULL, &a);

	if (rc >= 0)
		return rc;
	if (cli_parse_u64("ID", a.pos[1], &id))
		return cli_usage(spec.usage, NULL);
	if (cli_connect(&a, &c))
		return CLI_FAIL;
	rc = es_client_get(c, a.pos[0], id, vec, MAX_DIM, &dim);
	if (rc < 0) {
		cli_failed(c, &a, rc, a.pos[0]);
	} else {
		if (a.json)
			printf("{\"id\":%llu,\"vector\":[",
			       (unsigned long long)id);
		for (uint32_t i = 0; i < dim; i++)
			printf("%s%.9g", i ? "," : "", (double)vec[i]);
		printf(a.json ? "]}\n" : "\n");
	}
	es_client_close(c);
	return rc < 0 ? CLI_FAIL : CLI_OK;
}

int cli_delete(int argc, char **argv)
{
	static const struct cmd_spec spec = {
	    "edgesync delete NAME ID...",
	    "Deletes the vectors with these ids (ids that are not there "
	    "are not an error).",
	    NULL,
	    cli_no_opts,
	    2,
	    1 << 20};
	struct client_args a = {0};
	struct es_client *c;
	uint64_t *ids;
	size_t n;
	int rc = cli_cmd_parse(argc, argv, &spec, NULL, &a);

	if (rc >= 0)
		return rc;
	n = (size_t)a.npos - 1;
	ids = malloc(n * sizeof(*ids));
	if (!ids) {
		cli_error("out of memory");
		return CLI_FAIL;
	}
	for (size_t i = 0; i < n; i++) {
		if (cli_parse_u64("ID", a.pos[i + 1], &ids[i])) {
			free(ids);
			return cli_usage(spec.usage, NULL);
		}
	}
	rc = cli_connect(&a, &c) ? -1 : 0;
	if (rc == 0) {
		rc = es_client_delete(c, a.pos[0], ids, n);
		if (rc < 0)
			cli_failed(c, &a, rc, a.pos[0]);
		else if (a.json)
			printf("{\"deleted\":%zu}\n", n);
		else
			printf("deleted %zu id%s from %s\n", n,
			       n == 1 ? "" : "s", a.pos[0]);
		es_client_close(c);
	}
	free(ids);
	return rc < 0 ? CLI_FAIL : CLI_OK;
}

/* ---- search ----------------------------------------------------------- */

struct search_ctx {
	const char *vector, *queries;
	uint64_t k, L;
};

static int search_opt(void *ctx, int val, const char *arg)
{
	struct search_ctx *x = ctx;

	if (val == 'v')
		x->vector = arg;
	else if (val == 'q')
		x->queries = arg;
	else if (val == 'k')
		return cli_parse_u64("--k", arg, &x->k) ? CLI_USAGE : 0;
	else
		return cli_parse_u64("--L", arg, &x->L) ? CLI_USAGE : 0;
	return CLI_OK;
}

/* Prints the hits of query q: a JSON line, or rows of a table (with its
 * header before query 0). */
static void print_hits(const struct client_args *a, int many, uint64_t q,
		       const struct es_client_hit *hits, int n)
{
	if (a->json) {
		printf("{\"query\":%llu,\"ids\":[", (unsigned long long)q);
		for (int i = 0; i < n; i++)
			printf("%s%llu", i ? "," : "",
			       (unsigned long long)hits[i].id);
		printf("],\"distances\":[");
		for (int i = 0; i < n; i++)
			printf("%s%.9g", i ? "," : "",
			       (double)hits[i].distance);
		printf("]}\n");
		return;
	}
	if (q == 0 && many)
		printf("%6s %4s %20s %14s\n", "QUERY", "RANK", "ID",
		       "DISTANCE");
	else if (q == 0)
		printf("%4s %20s %14s\n", "RANK", "ID", "DISTANCE");
	for (int i = 0; i < n; i++) {
		if (many)
			printf("%6llu ", (unsigned long long)q);
		printf("%4d %20llu %14.6g\n", i + 1,
		       (unsigned long long)hits[i].id,
		       (double)hits[i].distance);
	}
}

/* Runs every query of the file; 0 or the failing request's code. */
static int search_file(struct es_client *c, const struct client_args *a,
		       const struct search_ctx *x, struct es_client_hit *hits)
{
	float *q = NULL;
	uint32_t dim;
	uint64_t count;
	double t0 = cli_now();
	int rc =
	    es_vecs_load(x->queries, ES_VECS_FLOAT, (void **)&q, &dim, &count);

	if (rc < 0) {
		cli_error("%s: %s", x->queries, es_store_strerror(rc));
		return rc;
	}
	for (uint64_t i = 0; i < count && rc >= 0; i++) {
		rc = es_client_search(c, a->pos[0], q + i * dim, dim,
				      (uint32_t)x->k, (uint32_t)x->L, hits);
		if (rc >= 0)
			print_hits(a, 1, i, hits, rc);
	}
	if (rc < 0)
		cli_failed(c, a, rc, a->pos[0]);
	else if (isatty(STDERR_FILENO))
		fprintf(stderr, "%llu queries in %.2f s\n",
			(unsigned long long)count, cli_now() - t0);
	free(q);
	return rc < 0 ? rc : 0;
}

int cli_search(int argc, char **argv)
{
	static const struct option own[] = {
	    {"vector", required_argument, NULL, 'v'},
	    {"queries", required_argument, NULL, 'q'},
	    {"k", required_argument, NULL, 'k'},
	    {"L", required_argument, NULL, 'L'},
	    {NULL, 0, NULL, 0},
	};
	static const struct cmd_spec spec = {
	    "edgesync search NAME (--vector X1,X2,... | --queries "
	    "Q.fvecs) [--k 10] [--L 64]",
	    "Finds the k nearest vectors (1 to 1000, default 10) to one "
	    "vector or to every\nvector of an .fvecs file. --L is the "
	    "search list of the indexed segments\n(default: the agent's, "
	    "max(k, 64)). With --json, one line per query:\n"
	    "{\"query\":I,\"ids\":[...],\"distances\":[...]}, nearest "
	    "first.",
	    own,
	    search_opt,
	    1,
	    1};
	struct search_ctx x = {NULL, NULL, 10, 0};
	static struct es_client_hit hits[1000];
	static float vec[MAX_DIM];
	struct client_args a = {0};
	struct es_client *c;
	int dim = 0, rc = cli_cmd_parse(argc, argv, &spec, &x, &a);

	if (rc >= 0)
		return rc;
	if (!x.vector == !x.queries)
		return cli_usage(spec.usage, "one of --vector and --queries "
					     "is needed");
	if (x.k < 1 || x.k > 1000 || x.L > 4096)
		return cli_usage(spec.usage, "--k is 1 to 1000, --L up to "
					     "4096");
	if (x.vector && (dim = parse_vector(x.vector, vec, MAX_DIM)) < 0)
		return CLI_USAGE;
	if (cli_connect(&a, &c))
		return CLI_FAIL;
	if (x.queries) {
		rc = search_file(c, &a, &x, hits);
	} else {
		rc = es_client_search(c, a.pos[0], vec, (uint32_t)dim,
				      (uint32_t)x.k, (uint32_t)x.L, hits);
		if (rc < 0)
			cli_failed(c, &a, rc, a.pos[0]);
		else
			print_hits(&a, 0, 0, hits, rc);
	}
	es_client_close(c);
	return rc < 0 ? CLI_FAIL : CLI_OK;
}
