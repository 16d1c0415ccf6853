/*
 * Private to the agent: what the edgesync subcommands share. Exit codes
 * follow sysexits: 0 success, 1 runtime failure, 64 usage, 75 the agent
 * stopped to be started again, 78 config.
 */
#ifndef EDGESYNC_CLI_H
#define EDGESYNC_CLI_H

#include <stdint.h>
#include <stdio.h>

#define CLI_OK	    0
#define CLI_FAIL    1
#define CLI_USAGE   64
#define CLI_RESTART 75
#define CLI_CONFIG  78

struct cli_cmd {
	const char *name;
	int (*run)(int argc, char **argv);
	const char *summary;
};

/*
 * cli_dispatch runs the command of cmds named by argv[0] with argv as its
 * own argument vector; "help", "-h" and "--help" list the commands. what
 * names the command group in messages ("edgesync segment").
 */
int cli_dispatch(const char *what, const struct cli_cmd *cmds, int argc,
		 char **argv);

/* cli_error prints "edgesync: <message>" on stderr. */
void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* 1 if paths a and b name one existing file (an output that would
 * overwrite an input). */
int cli_same_file(const char *a, const char *b);

/* cli_usage prints the message and "usage: <usage>"; returns CLI_USAGE. */
int cli_usage(const char *usage, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* cli_parse_u64 parses a whole decimal number; 0 or -1 (and an error). */
int cli_parse_u64(const char *opt, const char *text, uint64_t *out);

/* cli_now is a monotonic clock in seconds. */
double cli_now(void);

/* cli_json_string prints s as a JSON string literal. */
void cli_json_string(FILE *f, const char *s);

/* cli_human_bytes writes n as "512 B", "1.5 MiB"... into buf; returns
 * buf. */
const char *cli_human_bytes(uint64_t n, char *buf, size_t len);

/*
 * A progress bar on stderr, drawn only when stderr is a terminal and at
 * most ten times a second.
 */
struct cli_progress {
	const char *label;
	uint64_t total;
	double started;
	double drawn;
	int active;
};
void cli_progress_start(struct cli_progress *p, const char *label,
			uint64_t total);
void cli_progress_update(struct cli_progress *p, uint64_t done);
void cli_progress_end(struct cli_progress *p);
/* Ends the bar's line as it stands, before an error is printed. */
void cli_progress_break(struct cli_progress *p);

/* The command groups, in cli_<group>.c. */
int cli_segment(int argc, char **argv);
int cli_bench(int argc, char **argv);
int cli_index(int argc, char **argv);

/* `edgesync bench ingest | search`: the local API's figures. */
int cli_bench_ingest(int argc, char **argv);
int cli_bench_search(int argc, char **argv);

/* `edgesync agent`: the daemon (daemon.c). */
int cli_agent(int argc, char **argv);

/*
 * The client commands (cli_client.c, cli_status.c): each talks to a
 * running agent through the client library. cli_client_globals takes the
 * options given before the command (-s SOCKET, --json) and returns how
 * many arguments it used, or -1 after a usage message.
 */
int cli_client_globals(int argc, char **argv);
int cli_collection(int argc, char **argv);
int cli_import(int argc, char **argv);
int cli_insert(int argc, char **argv);
int cli_search(int argc, char **argv);
int cli_delete(int argc, char **argv);
int cli_get(int argc, char **argv);
int cli_flush(int argc, char **argv);
int cli_status(int argc, char **argv);
int cli_segments(int argc, char **argv);
int cli_verify(int argc, char **argv);
int cli_peers(int argc, char **argv);
int cli_sync_now(int argc, char **argv);

/*
 * The segment operations that the bench times as a user runs them:
 * cli_segment_create converts an .fvecs file to a segment, cli_segment_check
 * opens one with the full checksum; both print their own errors and return
 * an exit code.
 */
int cli_segment_create(const char *from, const char *out, uint64_t first_id,
		       int quiet);
int cli_segment_check(const char *path, unsigned open_flags, int quiet);

#endif
