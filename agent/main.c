/*
 * edgesync: one binary. `edgesync agent` will run the daemon; every other
 * subcommand is a client or an offline tool on files.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static int cmd_version(int argc, char **argv)
{
	printf("edgesync %s\n", ES_VERSION);
	return CLI_OK;
}

static const struct cli_cmd commands[] = {
	{"segment", cli_segment, "create, verify, inspect, export NDVS segments"},
	{"bench", cli_bench, "measure CRC32C and segment throughput"},
	{"version", cmd_version, "print the version"},
	{NULL, NULL, NULL},
};

int main(int argc, char **argv)
{
	if (argc >= 2 && !strcmp(argv[1], "--version"))
		return cmd_version(0, NULL);
	return cli_dispatch("edgesync", commands, argc - 1, argv + 1);
}
