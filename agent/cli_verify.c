/*
 * `edgesync verify [NAME...]`: has the agent check everything it keeps,
 * beyond what a plain open checks: its manifest (SQLite's integrity and
 * foreign key checks), then every segment of the named collections (all
 * if none is named) read whole against its record, with its index. One
 * request per segment, so a large collection never holds a request for
 * long; a bar on a terminal shows the bytes read. Each problem is
 * printed as it is found; the exit code is 0 only if there is none.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cli_client.h"

struct verify_totals {
	size_t collections, segments, indexes, problems;
	uint64_t bytes;
};

/* A problem: on stderr as found, and kept for --json's list. */
static void problem(const struct client_args *a, int *first, const char *coll,
		    int64_t id, const char *what)
{
	if (!a->json) {
		if (coll)
			cli_error("collection %s, segment %lld: %s", coll,
				  (long long)id, what);
		else
			cli_error("manifest: %s", what);
		return;
	}
	printf("%s{\"collection\":", *first ? "" : ",");
	if (coll)
		cli_json_string(stdout, coll);
	else
		printf("null");
	printf(",\"segment\":%lld,\"problem\":", coll ? (long long)id : 0LL);
	cli_json_string(stdout, what);
	putchar('}');
	*first = 0;
}

/* Every segment of coll; CLI_OK, or CLI_FAIL if a request failed. */
static int verify_collection(struct es_client *c, const struct client_args *a,
			     const char *coll, struct verify_totals *t,
			     int *first)
{
	struct es_client_segment *segs = NULL;
	struct es_client_verified v;
	struct cli_progress bar;
	uint64_t total = 0, done = 0;
	size_t n = 0;
	int rc = es_client_segments(c, coll, &segs, &n);

	if (rc < 0)
		return cli_failed(c, a, rc, coll);
	for (size_t i = 0; i < n; i++)
		total += segs[i].size + segs[i].index_size;
	cli_progress_start(&bar, coll, total);
	for (size_t i = 0; rc == 0 && i < n; i++) {
		rc = es_client_verify(c, coll, segs[i].id, &v);
		if (rc < 0)
			break;
		t->segments++;
		t->indexes += v.indexed != 0;
		t->bytes += v.bytes;
		done += segs[i].size + segs[i].index_size;
		cli_progress_update(&bar, done);
		if (v.problem[0]) {
			cli_progress_break(&bar);
			problem(a, first, coll, segs[i].id, v.problem);
			t->problems++;
		}
	}
	if (rc < 0) {
		cli_progress_break(&bar);
		free(segs);
		return cli_failed(c, a, rc, coll);
	}
	cli_progress_end(&bar);
	t->collections++;
	free(segs);
	return CLI_OK;
}

/* The names to check: those given, or every collection. */
static int names_of(struct es_client *c, const struct client_args *a,
		    char ***names, size_t *n)
{
	struct es_client_collection *colls = NULL;
	int rc;

	if (a->npos) {
		*names = a->pos;
		*n = (size_t)a->npos;
		return CLI_OK;
	}
	rc = es_client_collection_list(c, &colls, n);
	if (rc < 0)
		return cli_failed(c, a, rc, "collections");
	*names = calloc(*n + 1, sizeof(**names));
	for (size_t i = 0; *names && i < *n; i++)
		(*names)[i] = strdup(colls[i].name);
	free(colls);
	for (size_t i = 0; *names && i < *n; i++)
		if (!(*names)[i]) {
			cli_error("out of memory");
			return CLI_FAIL;
		}
	if (!*names) {
		cli_error("out of memory");
		return CLI_FAIL;
	}
	return CLI_OK;
}

int cli_verify(int argc, char **argv)
{
	static const struct cmd_spec spec = {
	    "edgesync verify [NAME...]",
	    "Has the agent read everything it keeps and check it: the "
	    "manifest (SQLite's\nintegrity and foreign key checks), then "
	    "each segment of the named collections\n(all if none is named) "
	    "against its CRC32C and its record, with its index\n(every "
	    "field, the graph, its CRC32C, and that it was built from that "
	    "segment).\nPrints each problem found; exits 0 only if there is "
	    "none.",
	    NULL,
	    cli_no_opts,
	    0,
	    1 << 20};
	struct verify_totals t = {0};
	struct client_args a = {0};
	char manifest[512], **names = NULL;
	struct es_client *c;
	int first = 1, out = CLI_OK;
	size_t n = 0;
	int rc = cli_cmd_parse(argc, argv, &spec, NULL, &a);

	if (rc >= 0)
		return rc;
	if (cli_connect(&a, &c))
		return CLI_FAIL;
	rc = es_client_verify_manifest(c, manifest, sizeof(manifest));
	if (rc < 0) {
		out = cli_failed(c, &a, rc, "manifest");
		goto done;
	}
	out = names_of(c, &a, &names, &n);
	if (out != CLI_OK)
		goto done;
	if (a.json)
		printf("{\"problems\":[");
	if (manifest[0]) {
		problem(&a, &first, NULL, 0, manifest);
		t.problems++;
	}
	for (size_t i = 0; out == CLI_OK && i < n; i++)
		out = verify_collection(c, &a, names[i], &t, &first);
	if (a.json)
		printf("],\"manifest_ok\":%s,\"collections\":%zu,"
		       "\"segments\":%zu,\"indexes\":%zu,\"bytes\":%llu}\n",
		       manifest[0] ? "false" : "true", t.collections,
		       t.segments, t.indexes, (unsigned long long)t.bytes);
	else if (out == CLI_OK)
		printf("verified the manifest and %zu segments (%zu with "
		       "their index, %llu bytes) of %zu collections: %zu "
		       "problem%s\n",
		       t.segments, t.indexes, (unsigned long long)t.bytes,
		       t.collections, t.problems, t.problems == 1 ? "" : "s");
	if (out == CLI_OK && t.problems)
		out = CLI_FAIL;
done:
	if (names && names != a.pos) {
		for (size_t i = 0; i < n; i++)
			free(names[i]);
		free(names);
	}
	es_client_close(c);
	return out;
}
