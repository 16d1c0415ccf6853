/*
 * `edgesync verify [NAME...]`: has the agent check what it keeps beyond
 * what a plain open checks: its manifest (SQLite's integrity and foreign
 * key checks), then every segment of the named collections (all if none
 * is named) read whole against its record, with its index. One request
 * per segment; a request reads a whole segment and its index, which on
 * a slow card can take minutes, so this command waits up to
 * VERIFY_TIMEOUT_MS for each. A collection dropped meanwhile is passed
 * over; a request the agent refuses is reported and the run goes on; a
 * lost connection ends it. Findings and failures are printed as they
 * come (or gathered in one JSON object); the exit code is 0 only if
 * everything was checked and nothing was wrong.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cli_client.h"

#define VERIFY_TIMEOUT_MS (60u * 60 * 1000)

/* A finding (a damaged file) or a failure (a request that failed). */
struct verify_note {
	char *coll; /* NULL: the manifest */
	int64_t id; /* segment; 0 for a collection or the manifest */
	char *text;
};

struct verify_run {
	const struct client_args *a;
	struct es_client *c;
	int listed; /* the names came from the agent's list */
	int lost;   /* the connection is gone: stop */
	size_t collections, segments, indexes;
	uint64_t bytes;
	struct verify_note *problems, *errors;
	size_t n_problems, n_errors;
};

static void note(struct verify_run *r, int problem, const char *coll,
		 int64_t id, const char *text)
{
	struct verify_note **v = problem ? &r->problems : &r->errors;
	size_t *n = problem ? &r->n_problems : &r->n_errors;
	struct verify_note *p = realloc(*v, (*n + 1) * sizeof(**v));

	if (!r->a->json) {
		if (coll && id)
			cli_error("collection %s, segment %lld: %s", coll,
				  (long long)id, text);
		else if (coll)
			cli_error("collection %s: %s", coll, text);
		else
			cli_error("manifest: %s", text);
	}
	if (!p)
		return; /* counted on stderr only */
	*v = p;
	p[*n].coll = coll ? strdup(coll) : NULL;
	p[*n].id = id;
	p[*n].text = strdup(text);
	(*n)++;
}

/* A failed request: noted; 1 if the run must stop. */
static int failed(struct verify_run *r, int rc, const char *coll, int64_t id)
{
	char text[512];

	if (rc == ES_E_CLIENT_REMOTE)
		snprintf(text, sizeof(text), "%s (%s)", es_client_error(r->c),
			 es_client_error_code(r->c));
	else
		snprintf(text, sizeof(text), "%s", es_client_strerror(rc));
	note(r, 0, coll, id, text);
	r->lost = rc != ES_E_CLIENT_REMOTE;
	return r->lost;
}

/* A collection of the agent's list that is gone: dropped meanwhile. */
static int gone(const struct verify_run *r, int rc)
{
	return r->listed && rc == ES_E_CLIENT_REMOTE &&
	       !strcmp(es_client_error_code(r->c), "not_found");
}

static void verify_collection(struct verify_run *r, const char *coll)
{
	struct es_client_segment *segs = NULL;
	struct es_client_verified v;
	struct cli_progress bar;
	uint64_t total = 0, done = 0;
	size_t n = 0;
	int rc = es_client_segments(r->c, coll, &segs, &n);

	if (rc < 0) {
		if (!gone(r, rc))
			failed(r, rc, coll, 0);
		return;
	}
	for (size_t i = 0; i < n; i++)
		total += segs[i].size + segs[i].index_size;
	cli_progress_start(&bar, coll, total);
	for (size_t i = 0; i < n && !r->lost; i++) {
		done += segs[i].size + segs[i].index_size;
		rc = es_client_verify(r->c, coll, segs[i].id, &v);
		if (rc < 0 && gone(r, rc))
			break;
		if (rc < 0) {
			cli_progress_break(&bar);
			failed(r, rc, coll, segs[i].id);
			continue;
		}
		r->segments++;
		r->indexes += v.indexed != 0;
		r->bytes += v.bytes;
		if (v.problem[0]) {
			cli_progress_break(&bar);
			note(r, 1, coll, segs[i].id, v.problem);
		}
		cli_progress_update(&bar, done);
	}
	cli_progress_end(&bar);
	if (rc >= 0 || !gone(r, rc))
		r->collections++;
	free(segs);
}

/* The names to check: those given, or (malloc'ed copies) every
 * collection of the agent. */
static int names_of(struct verify_run *r, char ***names, size_t *n)
{
	struct es_client_collection *colls = NULL;
	int rc;

	if (r->a->npos) {
		*names = r->a->pos;
		*n = (size_t)r->a->npos;
		return 0;
	}
	rc = es_client_collection_list(r->c, &colls, n);
	if (rc < 0) {
		failed(r, rc, NULL, 0);
		r->lost = 1;
		return -1;
	}
	r->listed = 1;
	*names = calloc(*n + 1, sizeof(**names));
	for (size_t i = 0; *names && i < *n; i++)
		if (!((*names)[i] = strdup(colls[i].name)))
			rc = -1;
	free(colls);
	return *names && rc == 0 ? 0 : -1;
}

static void json_notes(const struct verify_note *v, size_t n)
{
	putchar('[');
	for (size_t i = 0; i < n; i++) {
		printf("%s{\"collection\":", i ? "," : "");
		if (v[i].coll)
			cli_json_string(stdout, v[i].coll);
		else
			printf("null");
		printf(",\"segment\":%lld,\"message\":", (long long)v[i].id);
		cli_json_string(stdout, v[i].text ? v[i].text : "");
		putchar('}');
	}
	putchar(']');
}

static void notes_free(struct verify_note *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(v[i].coll);
		free(v[i].text);
	}
	free(v);
}

int cli_verify(int argc, char **argv)
{
	static const struct cmd_spec spec = {
	    "edgesync verify [NAME...]",
	    "Has the agent read what it keeps and check it: the manifest "
	    "(SQLite's\nintegrity and foreign key checks), then each segment "
	    "of the named collections\n(all if none is named) against its "
	    "CRC32C and its record, with its index\n(every field, the graph, "
	    "its CRC32C, and that it was built from that\nsegment). The "
	    "write-ahead logs are checked at every start instead. Prints\n"
	    "each problem found; exits 0 only if everything was checked and "
	    "nothing was\nwrong.",
	    NULL,
	    cli_no_opts,
	    0,
	    1 << 20};
	struct client_args a = {0};
	struct verify_run r = {0};
	char manifest[512] = "", **names = NULL;
	int rc = cli_cmd_parse(argc, argv, &spec, NULL, &a), manifest_ok = 0;
	size_t n = 0;

	if (rc >= 0)
		return rc;
	if (cli_connect_timeout(&a, VERIFY_TIMEOUT_MS, &r.c))
		return CLI_FAIL;
	r.a = &a;
	rc = es_client_verify_manifest(r.c, manifest, sizeof(manifest));
	if (rc < 0)
		failed(&r, rc, NULL, 0);
	else if (manifest[0])
		note(&r, 1, NULL, 0, manifest);
	else
		manifest_ok = 1;
	if (!r.lost && names_of(&r, &names, &n) < 0 && !r.lost) {
		note(&r, 0, NULL, 0, "out of memory");
		r.lost = 1;
	}
	for (size_t i = 0; i < n && !r.lost; i++)
		verify_collection(&r, names[i]);
	if (a.json) {
		printf(
		    "{\"complete\":%s,\"manifest_ok\":%s,\"collections\":%zu,"
		    "\"segments\":%zu,\"indexes\":%zu,\"bytes\":%llu,"
		    "\"problems\":",
		    r.n_errors ? "false" : "true",
		    manifest_ok ? "true" : "false", r.collections, r.segments,
		    r.indexes, (unsigned long long)r.bytes);
		json_notes(r.problems, r.n_problems);
		printf(",\"errors\":");
		json_notes(r.errors, r.n_errors);
		printf("}\n");
	} else {
		printf("verified %s and %zu segments (%zu with their index, "
		       "%llu bytes) of %zu collections: %zu problem%s%s\n",
		       manifest_ok ? "the manifest" : "not the manifest",
		       r.segments, r.indexes, (unsigned long long)r.bytes,
		       r.collections, r.n_problems,
		       r.n_problems == 1 ? "" : "s",
		       r.n_errors ? "; not everything could be checked" : "");
	}
	rc = r.n_problems || r.n_errors ? CLI_FAIL : CLI_OK;
	if (r.listed) {
		for (size_t i = 0; names && i < n; i++)
			free(names[i]);
		free(names);
	}
	notes_free(r.problems, r.n_problems);
	notes_free(r.errors, r.n_errors);
	es_client_close(r.c);
	return rc;
}
