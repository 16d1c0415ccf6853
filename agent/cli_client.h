/*
 * Private to the client commands (cli_client.c, cli_status.c): how a
 * command parses its arguments and reaches the agent. Each command
 * declares a cmd_spec, calls cli_cmd_parse, then cli_connect, and reports
 * a failed request with cli_failed; all print their own messages and
 * return an exit code of cli.h.
 */
#ifndef EDGESYNC_CLI_CLIENT_H
#define EDGESYNC_CLI_CLIENT_H

#include <getopt.h>

#include "edgesync/client.h"

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

/*
 * Parses -s, --json, --help and the command's own options into a;
 * returns -1 to go on, or an exit code (the help printed, or a usage
 * error).
 */
int cli_cmd_parse(int argc, char **argv, const struct cmd_spec *spec, void *ctx,
		  struct client_args *a);

/* Opens a connection to the agent at a->socket: CLI_OK or CLI_FAIL. */
int cli_connect(const struct client_args *a, struct es_client **c);
/* cli_connect, each request bounded by timeout_ms (0: the client's). */
int cli_connect_timeout(const struct client_args *a, unsigned timeout_ms,
			struct es_client **c);

/* Reports a failed request (rc from the client library) about what;
 * returns CLI_FAIL. */
int cli_failed(struct es_client *c, const struct client_args *a, int rc,
	       const char *what);

/* The own_opt_fn of a command without options of its own. */
int cli_no_opts(void *ctx, int val, const char *arg);

#endif
