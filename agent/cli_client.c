/*
 * The client commands of edgesync: collection, import, insert, search,
 * delete, get, flush, status, segments, peers (approve, revoke),
 * sync-now. Each talks to a running agent
 * through the client library only (edgesync/client.h), prints a table for
 * people or, with --json, JSON for scripts, and exits 0, 1 (the agent or
 * the connection failed; the message says which) or 64 (usage).
 *
 * The socket is -s SOCKET (before the command or among its options), else
 * $EDGESYNC_SOCKET, else the agent's default.
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "config.h"
#include "edgesync/client.h"
#include "edgesync/store_error.h"
#include "edgesync/vecs_file.h"

#define MAX_DIM	     4096
#define MAX_OWN_OPTS 8

static const char *global_socket;
static int global_json;

struct client_args {
	const char *socket;
	int json;
	char **pos; /* the positional arguments */
	int npos;
};

/* Takes one option of the command (its val and argument); 0 or an exit
 * code. */
typedef int (*own_opt_fn)(void *ctx, int val, const char *arg);

struct cmd_spec {
	const char *usage;
	const char *help;
	const struct option *own; /* the command's options, NULL-ended */
	own_opt_fn fn;
	int min_pos, max_pos;
};

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
static int parse(int argc, char **argv, const struct cmd_spec *spec, void *ctx,
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

static int connect_agent(const struct client_args *a, struct es_client **c)
{
	int rc = es_client_open(c, a->socket, 0);

	if (rc < 0) {
		cli_error("%s: %s (is the agent running?)", a->socket,
			  es_client_strerror(rc));
		return CLI_FAIL;
	}
	return CLI_OK;
}

/* Reports a failed request; returns CLI_FAIL. */
static int fail(struct es_client *c, const struct client_args *a, int rc,
		const char *what)
{
	if (rc == ES_E_CLIENT_REMOTE)
		cli_error("%s: %s (%s)", what, es_client_error(c),
			  es_client_error_code(c));
	else if (rc == ES_E_CLIENT_CONNECT)
		cli_error("%s: %s: no agent is listening (is it running?)",
			  what, a->socket);
	else
		cli_error("%s: %s", what, es_client_strerror(rc));
	return CLI_FAIL;
}

static int no_own_opts(void *ctx, int val, const char *arg)
{
	return CLI_USAGE;
}

/* ---- printing --------------------------------------------------------- */

static const char *human_bytes(uint64_t n, char *buf, size_t len)
{
	static const char *const unit[] = {"B", "KiB", "MiB", "GiB", "TiB"};
	double v = (double)n;
	int u = 0;

	while (v >= 1024 && u < 4) {
		v /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(buf, len, "%llu B", (unsigned long long)n);
	else
		snprintf(buf, len, "%.1f %s", v, unit[u]);
	return buf;
}

/* A hybrid logical clock (48 bits of milliseconds) as UTC time. */
static const char *hlc_time(uint64_t hlc, char *buf, size_t len)
{
	time_t t = (time_t)((hlc >> 16) / 1000);
	struct tm tm;

	if (!hlc || !gmtime_r(&t, &tm) ||
	    !strftime(buf, len, "%Y-%m-%d %H:%M:%SZ", &tm))
		snprintf(buf, len, "-");
	return buf;
}

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
	       human_bytes(k->bytes, b, sizeof(b)));
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
	int rc = parse(argc, argv, &spec, &x, &a);

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
	if (connect_agent(&a, &c))
		return CLI_FAIL;
	rc = es_client_collection_create(c, a.pos[0], (uint32_t)x.dim, x.metric,
					 x.sync);
	if (rc == 0)
		rc = es_client_collection_info(c, a.pos[0], &k);
	if (rc < 0) {
		fail(c, &a, rc, a.pos[0]);
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
	    no_own_opts,
	    0,
	    0};
	struct es_client_collection *list = NULL;
	struct client_args a = {0};
	struct es_client *c;
	size_t n = 0;
	char b[32];
	int rc = parse(argc, argv, &spec, NULL, &a);

	if (rc >= 0)
		return rc;
	if (connect_agent(&a, &c))
		return CLI_FAIL;
	rc = es_client_collection_list(c, &list, &n);
	if (rc < 0) {
		fail(c, &a, rc, "collection list");
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
			       human_bytes(list[i].bytes, b, sizeof(b)));
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
	int rc = parse(argc, argv, spec, NULL, &a);

	if (rc >= 0)
		return rc;
	if (connect_agent(&a, &c))
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
		fail(c, &a, rc, name);
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
	    no_own_opts,
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
	    no_own_opts,
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
	    no_own_opts,
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
};

static int import_opt(void *ctx, int val, const char *arg)
{
	struct import_ctx *x = ctx;

	if (val == 'f')
		return cli_parse_u64("--first-id", arg, &x->first_id)
			   ? CLI_USAGE
			   : 0;
	return cli_parse_u64("--batch", arg, &x->batch) ? CLI_USAGE : 0;
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
	int rc = rows && ids ? 0 : -ENOMEM;

	cli_progress_start(&bar, "import", es_vecs_count(v));
	while (rc == 0) {
		long got = es_vecs_read(v, rows, (size_t)x->batch);

		if (got <= 0) {
			rc = (int)got;
			if (got < 0)
				cli_error(
				    "%s: vector %llu: %s", a->pos[1],
				    (unsigned long long)es_vecs_position(v),
				    es_store_strerror(rc));
			break;
		}
		for (long i = 0; i < got; i++)
			ids[i] = x->first_id + *done + (uint64_t)i;
		rc =
		    es_client_insert(c, a->pos[0], ids, rows, (size_t)got, dim);
		if (rc < 0) {
			if (bar.active)
				fputc('\n', stderr);
			bar.active = 0;
			fail(c, a, rc, a->pos[0]);
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

static void print_imported(const char *name, uint64_t done, uint64_t first_id,
			   double seconds)
{
	printf("{\"collection\":");
	cli_json_string(stdout, name);
	printf(",\"imported\":%llu,\"first_id\":%llu,\"seconds\":%.3f}\n",
	       (unsigned long long)done, (unsigned long long)first_id, seconds);
}

int cli_import(int argc, char **argv)
{
	static const struct option own[] = {
	    {"first-id", required_argument, NULL, 'f'},
	    {"batch", required_argument, NULL, 'b'},
	    {NULL, 0, NULL, 0},
	};
	static const struct cmd_spec spec = {
	    "edgesync import NAME FILE.fvecs [--first-id N] [--batch 1000]",
	    "Inserts every vector of a texmex .fvecs file into the "
	    "collection, with ids\nN, N+1, ... (default 0), --batch "
	    "vectors per request; each batch is durable\nwhen the agent "
	    "answers, so an interrupted import can simply be run again.",
	    own,
	    import_opt,
	    2,
	    2};
	struct import_ctx x = {0, 1000};
	struct es_client_collection k;
	struct client_args a = {0};
	struct es_client *c;
	struct es_vecs *v;
	uint64_t done = 0, count;
	double t0;
	int rc = parse(argc, argv, &spec, &x, &a);

	if (rc >= 0)
		return rc;
	if (x.batch < 1 || x.batch > 1000000)
		return cli_usage(spec.usage, "--batch is 1 to 1000000");
	rc = es_vecs_open(&v, a.pos[1], ES_VECS_FLOAT);
	if (rc < 0) {
		cli_error("%s: %s", a.pos[1], es_store_strerror(rc));
		return CLI_FAIL;
	}
	count = es_vecs_count(v);
	if (x.first_id > UINT64_MAX - (count - 1)) {
		cli_error("--first-id: ids would pass 2^64 - 1");
		es_vecs_close(v);
		return CLI_USAGE;
	}
	if (connect_agent(&a, &c)) {
		es_vecs_close(v);
		return CLI_FAIL;
	}
	rc = es_client_collection_info(c, a.pos[0], &k);
	if (rc < 0) {
		fail(c, &a, rc, a.pos[0]);
	} else if (k.dim != es_vecs_dim(v)) {
		cli_error("%s has vectors of dim %u; collection %s has dim %u",
			  a.pos[1], es_vecs_dim(v), a.pos[0], k.dim);
		rc = -EINVAL;
	} else {
		t0 = cli_now();
		rc = import_rows(c, &a, v, &x, &done);
		t0 = cli_now() - t0;
	}
	if (rc < 0 && done)
		cli_error("ids %llu to %llu are stored; the rest are not",
			  (unsigned long long)x.first_id,
			  (unsigned long long)(x.first_id + done - 1));
	else if (rc == 0 && a.json)
		print_imported(k.name, done, x.first_id, t0);
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
	int dim, rc = parse(argc, argv, &spec, &x, &a);

	if (rc >= 0)
		return rc;
	if (!x.have_id || !x.vector)
		return cli_usage(spec.usage, "--id and --vector are needed");
	dim = parse_vector(x.vector, vec, MAX_DIM);
	if (dim < 0)
		return CLI_USAGE;
	if (connect_agent(&a, &c))
		return CLI_FAIL;
	rc = es_client_insert(c, a.pos[0], &x.id, vec, 1, (uint32_t)dim);
	if (rc < 0)
		fail(c, &a, rc, a.pos[0]);
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
	    no_own_opts,
	    2,
	    2};
	static float vec[MAX_DIM];
	struct client_args a = {0};
	struct es_client *c;
	uint32_t dim = 0;
	uint64_t id;
	int rc = parse(argc, argv, &spec, NULL, &a);

	if (rc >= 0)
		return rc;
	if (cli_parse_u64("ID", a.pos[1], &id))
		return cli_usage(spec.usage, NULL);
	if (connect_agent(&a, &c))
		return CLI_FAIL;
	rc = es_client_get(c, a.pos[0], id, vec, MAX_DIM, &dim);
	if (rc < 0) {
		fail(c, &a, rc, a.pos[0]);
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
	    no_own_opts,
	    2,
	    1 << 20};
	struct client_args a = {0};
	struct es_client *c;
	uint64_t *ids;
	size_t n;
	int rc = parse(argc, argv, &spec, NULL, &a);

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
	rc = connect_agent(&a, &c) ? -1 : 0;
	if (rc == 0) {
		rc = es_client_delete(c, a.pos[0], ids, n);
		if (rc < 0)
			fail(c, &a, rc, a.pos[0]);
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
		fail(c, a, rc, a->pos[0]);
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
	int dim = 0, rc = parse(argc, argv, &spec, &x, &a);

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
	if (connect_agent(&a, &c))
		return CLI_FAIL;
	if (x.queries) {
		rc = search_file(c, &a, &x, hits);
	} else {
		rc = es_client_search(c, a.pos[0], vec, (uint32_t)dim,
				      (uint32_t)x.k, (uint32_t)x.L, hits);
		if (rc < 0)
			fail(c, &a, rc, a.pos[0]);
		else
			print_hits(&a, 0, 0, hits, rc);
	}
	es_client_close(c);
	return rc < 0 ? CLI_FAIL : CLI_OK;
}

/* ---- status, segments ------------------------------------------------- */

static int fetch_peers(struct es_client *c, struct es_client_peer **peers,
		       size_t *n);
static void json_peers(const struct es_client_peer *p, size_t n);
static void print_peer_line(const struct es_client_peer *p);

int cli_status(int argc, char **argv)
{
	static const struct cmd_spec spec = {
	    "edgesync status",
	    "Shows the agent: version, device id, uptime, collections, "
	    "vectors, segments,\nbytes, requests served, seals pending.",
	    NULL,
	    no_own_opts,
	    0,
	    0};
	struct es_client_peer *peers = NULL;
	struct es_client_stats s;
	struct client_args a = {0};
	struct es_client *c;
	size_t n_peers = 0;
	char b[32];
	int sync, rc = parse(argc, argv, &spec, NULL, &a);

	if (rc >= 0)
		return rc;
	if (connect_agent(&a, &c))
		return CLI_FAIL;
	rc = es_client_stats(c, &s);
	sync = rc == 0 && fetch_peers(c, &peers, &n_peers) == 0;
	if (rc < 0) {
		fail(c, &a, rc, "status");
	} else if (a.json) {
		printf("{\"socket\":");
		cli_json_string(stdout, a.socket);
		printf(",\"version\":");
		cli_json_string(stdout, s.version);
		printf(",\"device_id\":");
		cli_json_string(stdout, s.device_id);
		printf(",\"uptime_s\":%llu,\"collections\":%llu,"
		       "\"vectors\":%llu,\"segments\":%llu,\"bytes\":%llu,"
		       "\"inserts\":%llu,\"searches\":%llu,"
		       "\"seals_pending\":%llu",
		       (unsigned long long)s.uptime_s,
		       (unsigned long long)s.collections,
		       (unsigned long long)s.vectors,
		       (unsigned long long)s.segments,
		       (unsigned long long)s.bytes,
		       (unsigned long long)s.inserts,
		       (unsigned long long)s.searches,
		       (unsigned long long)s.seals_pending);
		if (sync) {
			printf(",\"peers\":");
			json_peers(peers, n_peers);
		}
		printf("}\n");
	} else {
		printf("agent          edgesync %s on %s\ndevice         %s\n"
		       "uptime         %llud %02lluh %02llum %02llus\n"
		       "collections    %llu\nvectors        %llu\n"
		       "segments       %llu\non disk        %s\n"
		       "inserts        %llu since start\n"
		       "searches       %llu since start\n"
		       "seals pending  %llu\n",
		       s.version, a.socket, s.device_id,
		       (unsigned long long)(s.uptime_s / 86400),
		       (unsigned long long)(s.uptime_s / 3600 % 24),
		       (unsigned long long)(s.uptime_s / 60 % 60),
		       (unsigned long long)(s.uptime_s % 60),
		       (unsigned long long)s.collections,
		       (unsigned long long)s.vectors,
		       (unsigned long long)s.segments,
		       human_bytes(s.bytes, b, sizeof(b)),
		       (unsigned long long)s.inserts,
		       (unsigned long long)s.searches,
		       (unsigned long long)s.seals_pending);
		if (sync && !n_peers)
			printf("sync           no peer yet\n");
		for (size_t i = 0; sync && i < n_peers; i++)
			print_peer_line(&peers[i]);
	}
	free(peers);
	es_client_close(c);
	return rc < 0 ? CLI_FAIL : CLI_OK;
}

static void print_segment(const struct es_client_segment *g, int json)
{
	char t[32], b1[32], b2[32];

	hlc_time(g->seal_hlc, t, sizeof(t));
	if (json) {
		printf("{\"id\":%lld,\"count\":%llu,\"size\":%llu,"
		       "\"checksum\":\"0x%08x\",\"indexed\":%s,"
		       "\"index_size\":%llu,\"seal_hlc\":%llu,\"sealed\":",
		       (long long)g->id, (unsigned long long)g->count,
		       (unsigned long long)g->size, g->checksum,
		       g->indexed ? "true" : "false",
		       (unsigned long long)g->index_size,
		       (unsigned long long)g->seal_hlc);
		cli_json_string(stdout, t);
		printf(",\"origin\":");
		cli_json_string(stdout, g->origin);
		putchar('}');
		return;
	}
	printf("%8lld %10llu %10s %-7s %10s  0x%08x  %-20s  %.16s\n",
	       (long long)g->id, (unsigned long long)g->count,
	       human_bytes(g->size, b1, sizeof(b1)), g->indexed ? "yes" : "no",
	       g->indexed ? human_bytes(g->index_size, b2, sizeof(b2)) : "-",
	       g->checksum, t, g->origin);
}

int cli_segments(int argc, char **argv)
{
	static const struct cmd_spec spec = {
	    "edgesync segments NAME",
	    "Lists the sealed segments of a collection: vectors, size, "
	    "whether the index\nis built, CRC32C, when and where it was "
	    "sealed.",
	    NULL,
	    no_own_opts,
	    1,
	    1};
	struct es_client_segment *segs = NULL;
	struct client_args a = {0};
	struct es_client *c;
	size_t n = 0;
	int rc = parse(argc, argv, &spec, NULL, &a);

	if (rc >= 0)
		return rc;
	if (connect_agent(&a, &c))
		return CLI_FAIL;
	rc = es_client_segments(c, a.pos[0], &segs, &n);
	if (rc < 0) {
		fail(c, &a, rc, a.pos[0]);
	} else if (a.json) {
		printf("{\"collection\":");
		cli_json_string(stdout, a.pos[0]);
		printf(",\"segments\":[");
		for (size_t i = 0; i < n; i++) {
			if (i)
				putchar(',');
			print_segment(&segs[i], 1);
		}
		printf("]}\n");
	} else {
		printf("%8s %10s %10s %-7s %10s  %-10s  %-20s  %s\n", "ID",
		       "VECTORS", "SIZE", "INDEXED", "INDEX", "CRC32C",
		       "SEALED", "ORIGIN");
		for (size_t i = 0; i < n; i++)
			print_segment(&segs[i], 0);
	}
	free(segs);
	es_client_close(c);
	return rc < 0 ? CLI_FAIL : CLI_OK;
}

/* ---- sync: peers, sync-now -------------------------------------------- */

/* The peers of an agent that syncs; -1 for one that does not. */
static int fetch_peers(struct es_client *c, struct es_client_peer **peers,
		       size_t *n)
{
	int rc = es_client_peers(c, peers, n);

	if (rc == ES_E_CLIENT_REMOTE &&
	    !strcmp(es_client_error_code(c), "no_sync"))
		return -1;
	if (rc < 0)
		cli_error("peers: %s", es_client_error(c));
	return rc < 0 ? -1 : 0;
}

static const char *ago(uint64_t unix_ms, char *buf, size_t len)
{
	struct timespec ts;
	uint64_t now;

	if (!unix_ms)
		return "never";
	clock_gettime(CLOCK_REALTIME, &ts);
	now = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
	snprintf(
	    buf, len, "%llu s ago",
	    (unsigned long long)(now > unix_ms ? (now - unix_ms) / 1000 : 0));
	return buf;
}

static void json_peers(const struct es_client_peer *p, size_t n)
{
	putchar('[');
	for (size_t i = 0; i < n; i++, p++) {
		printf("%s{\"peer\":", i ? "," : "");
		cli_json_string(stdout, p->peer);
		printf(",\"device\":");
		cli_json_string(stdout, p->device);
		printf(",\"connected\":%s,\"last_success_ms\":%llu,"
		       "\"segments_pending\":%llu,\"bytes_pending\":%llu,"
		       "\"lag_s\":%llu,\"bytes_sent\":%llu,"
		       "\"bytes_received\":%llu,\"checksum_failures\":%llu,"
		       "\"segments_sent\":%llu,\"segments_received\":%llu,"
		       "\"last_error\":",
		       p->connected ? "true" : "false",
		       (unsigned long long)p->last_success_ms,
		       (unsigned long long)p->segments_pending,
		       (unsigned long long)p->bytes_pending,
		       (unsigned long long)p->lag_s,
		       (unsigned long long)p->bytes_sent,
		       (unsigned long long)p->bytes_received,
		       (unsigned long long)p->checksum_failures,
		       (unsigned long long)p->segments_sent,
		       (unsigned long long)p->segments_received);
		cli_json_string(stdout, p->last_error);
		printf(",\"awaiting_approval\":%s}",
		       p->awaiting_approval ? "true" : "false");
	}
	putchar(']');
}

/* One line of status per peer. */
static void print_peer_line(const struct es_client_peer *p)
{
	char t[32], b1[32], b2[32], b3[32];

	printf("sync           %s%s%s%s: %s%s, last success %s, %llu segments "
	       "(%s) pending, lag %llu s, sent %s, received %s%s%s\n",
	       p->peer, *p->device ? " (" : "", p->device,
	       *p->device ? ")" : "",
	       p->connected ? "connected" : "not connected",
	       p->awaiting_approval ? ", awaiting approval" : "",
	       ago(p->last_success_ms, t, sizeof(t)),
	       (unsigned long long)p->segments_pending,
	       human_bytes(p->bytes_pending, b1, sizeof(b1)),
	       (unsigned long long)p->lag_s,
	       human_bytes(p->bytes_sent, b2, sizeof(b2)),
	       human_bytes(p->bytes_received, b3, sizeof(b3)),
	       *p->last_error ? "; last error: " : "", p->last_error);
}

static void print_peer(const struct es_client_peer *p)
{
	char t[32], b[32];

	printf("peer               %s\n"
	       "device             %s\n"
	       "connected          %s\n"
	       "last success       %s\n"
	       "pending            %llu segments, %s\n"
	       "lag                %llu s\n",
	       p->peer, *p->device ? p->device : "-",
	       p->connected ? "yes" : "no",
	       ago(p->last_success_ms, t, sizeof(t)),
	       (unsigned long long)p->segments_pending,
	       human_bytes(p->bytes_pending, b, sizeof(b)),
	       (unsigned long long)p->lag_s);
	printf("sent               %s in %llu segments\n",
	       human_bytes(p->bytes_sent, b, sizeof(b)),
	       (unsigned long long)p->segments_sent);
	printf("received           %s in %llu segments\n",
	       human_bytes(p->bytes_received, b, sizeof(b)),
	       (unsigned long long)p->segments_received);
	printf("checksum failures  %llu\nlast error         %s\n",
	       (unsigned long long)p->checksum_failures,
	       *p->last_error ? p->last_error : "-");
	if (p->awaiting_approval)
		printf("approval           awaiting: `edgesync peers approve "
		       "%s` admits it\n",
		       *p->device ? p->device : p->peer);
}

/* 0 if s is a device id (1..64 of ASCII 0x21..0x7e), else -1 and why. */
static int check_device(const char *s)
{
	size_t n = strlen(s);

	if (n == 0) {
		cli_error("the device id is empty");
		return -1;
	}
	if (n > 64) {
		cli_error("device id '%.20s...' is %zu characters, at most 64",
			  s, n);
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == ' ') {
			cli_error("device id '%s' contains a space", s);
			return -1;
		}
		if (c < 0x21 || c > 0x7e) {
			cli_error("device id contains a character that is not "
				  "printable ASCII (byte 0x%02x at %zu)",
				  c, i);
			return -1;
		}
	}
	return 0;
}

static int peers_approval(int argc, char **argv, int approve)
{
	static const struct cmd_spec approve_spec = {
	    "edgesync peers approve DEVICE",
	    "Approves DEVICE on this cloud: an edge with that device id that "
	    "proves its\nidentity (its TLS certificate, or the token) is "
	    "admitted from its next\nconnection, even though it is not in "
	    "allow-devices. A device that never\nconnected can be approved "
	    "ahead of time. `edgesync peers` lists the devices\nawaiting "
	    "approval; `edgesync peers revoke DEVICE` undoes it.",
	    NULL,
	    no_own_opts,
	    1,
	    1};
	static const struct cmd_spec revoke_spec = {
	    "edgesync peers revoke DEVICE",
	    "Revokes the approval of DEVICE on this cloud: its connections "
	    "are closed\nand it is refused from its next hello. A device "
	    "listed in allow-devices\nstays admitted until it is removed "
	    "from the configuration.",
	    NULL,
	    no_own_opts,
	    1,
	    1};
	const struct cmd_spec *spec = approve ? &approve_spec : &revoke_spec;
	struct client_args a = {0};
	struct es_client *c;
	const char *dev;
	int rc = parse(argc, argv, spec, NULL, &a), listed = 0;

	if (rc >= 0)
		return rc;
	dev = a.pos[0];
	if (check_device(dev))
		return cli_usage(spec->usage, NULL);
	if (connect_agent(&a, &c))
		return CLI_FAIL;
	rc = es_client_peer_approve(c, dev, approve, &listed);
	if (rc < 0) {
		fail(c, &a, rc, approve ? "peers approve" : "peers revoke");
	} else if (a.json) {
		printf("{\"device\":");
		cli_json_string(stdout, dev);
		printf(",\"approved\":%s,\"allow_listed\":%s}\n",
		       approve ? "true" : "false", listed ? "true" : "false");
	} else if (approve) {
		printf("device %s approved: admitted from its next "
		       "connection\n",
		       dev);
	} else {
		printf("device %s revoked: its connections are closed and it "
		       "is refused from its next hello\n",
		       dev);
	}
	if (rc >= 0 && listed && !a.json)
		printf("note: allow-devices lists %s, which admits it whatever "
		       "its approval\n",
		       dev);
	es_client_close(c);
	return rc < 0 ? CLI_FAIL : CLI_OK;
}

static int peers_approve(int argc, char **argv)
{
	return peers_approval(argc, argv, 1);
}

static int peers_revoke(int argc, char **argv)
{
	return peers_approval(argc, argv, 0);
}

int cli_peers(int argc, char **argv)
{
	static const struct cmd_spec spec = {
	    "edgesync peers [approve DEVICE | revoke DEVICE]",
	    "Shows the sync peers: on an edge the clouds it dials, on a "
	    "cloud the edges\nthat said hello since it started and the "
	    "devices awaiting approval; for\neach, connected, last "
	    "success, segments and bytes pending, lag, bytes and\nsegments "
	    "sent and received, checksum failures and the last error.\n\n"
	    "On a cloud, `edgesync peers approve DEVICE` admits a device "
	    "that is not in\nallow-devices, `edgesync peers revoke DEVICE` "
	    "refuses it again (see their\n--help).",
	    NULL,
	    no_own_opts,
	    0,
	    0};
	static const struct cli_cmd cmds[] = {
	    {"approve", peers_approve, "admit a device on this cloud"},
	    {"revoke", peers_revoke, "refuse an approved device again"},
	    {NULL, NULL, NULL},
	};
	struct es_client_peer *peers = NULL;
	struct client_args a = {0};
	struct es_client *c;
	size_t n = 0;
	int rc;

	if (argc >= 2 &&
	    (!strcmp(argv[1], "approve") || !strcmp(argv[1], "revoke")))
		return cli_dispatch("edgesync peers", cmds, argc - 1, argv + 1);
	rc = parse(argc, argv, &spec, NULL, &a);
	if (rc >= 0)
		return rc;
	if (connect_agent(&a, &c))
		return CLI_FAIL;
	rc = es_client_peers(c, &peers, &n);
	if (rc < 0) {
		fail(c, &a, rc, a.socket);
	} else if (a.json) {
		printf("{\"peers\":");
		json_peers(peers, n);
		printf("}\n");
	} else if (!n) {
		printf("no peer yet\n");
	} else {
		for (size_t i = 0; i < n; i++) {
			if (i)
				putchar('\n');
			print_peer(&peers[i]);
		}
	}
	free(peers);
	es_client_close(c);
	return rc < 0 ? CLI_FAIL : CLI_OK;
}

int cli_sync_now(int argc, char **argv)
{
	static const struct cmd_spec spec = {
	    "edgesync sync-now",
	    "Wakes the agent's sync for a round now, instead of at the "
	    "next interval\n(an edge dials its peers; a cloud has nothing "
	    "to start). Returns at once;\n`edgesync peers` shows the "
	    "outcome.",
	    NULL,
	    no_own_opts,
	    0,
	    0};
	struct client_args a = {0};
	struct es_client *c;
	int rc = parse(argc, argv, &spec, NULL, &a);

	if (rc >= 0)
		return rc;
	if (connect_agent(&a, &c))
		return CLI_FAIL;
	rc = es_client_sync_now(c);
	if (rc < 0)
		fail(c, &a, rc, a.socket);
	else if (a.json)
		printf("{\"sync_now\":true}\n");
	else
		printf("sync round requested\n");
	es_client_close(c);
	return rc < 0 ? CLI_FAIL : CLI_OK;
}
