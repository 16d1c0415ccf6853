/*
 * edgesync: one binary. `edgesync agent` runs the daemon; every other
 * subcommand is a client of a running agent or an offline tool on files.
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
    {"agent", cli_agent, "run the agent (the daemon) in the foreground"},
    {"collection", cli_collection, "create, list, show, drop collections"},
    {"import", cli_import, "insert the vectors of an .fvecs, .npy or CSV file"},
    {"insert", cli_insert, "insert one vector"},
    {"search", cli_search, "find the nearest vectors"},
    {"get", cli_get, "print the vector of an id"},
    {"delete", cli_delete, "delete vectors by id"},
    {"flush", cli_flush, "seal what is growing into a segment"},
    {"status", cli_status, "show the agent's state"},
    {"segments", cli_segments, "list the segments of a collection"},
    {"verify", cli_verify, "read everything the agent keeps and check it"},
    {"peers", cli_peers, "show the sync peers; approve or revoke devices"},
    {"sync-now", cli_sync_now, "start a sync round now"},
    {"segment", cli_segment, "create, verify, inspect, export NDVS segments"},
    {"index", cli_index, "build, search, verify, inspect Vamana indexes"},
    {"bench", cli_bench, "measure CRC32C and segment throughput"},
    {"version", cmd_version, "print the version"},
    {NULL, NULL, NULL},
};

int main(int argc, char **argv)
{
	int skip;

	if (argc >= 2 && !strcmp(argv[1], "--version"))
		return cmd_version(0, NULL);
	/* -s SOCKET and --json may come before a client command */
	skip = cli_client_globals(argc - 1, argv + 1);
	if (skip < 0)
		return CLI_USAGE;
	return cli_dispatch("edgesync", commands, argc - 1 - skip,
			    argv + 1 + skip);
}
