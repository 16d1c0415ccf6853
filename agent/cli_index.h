/*
 * Private to the edgesync index commands: what cli_index.c (build,
 * verify, info) and cli_index_search.c (search) share.
 */
#ifndef EDGESYNC_CLI_INDEX_H
#define EDGESYNC_CLI_INDEX_H

#include <stdint.h>

#include "edgesync/vamana.h"

#define CLI_INDEX_MAX_THREADS 256

/* Parses a whole number in [min, max] for option opt: 0, or -1 with the
 * reason printed. */
int cli_index_parse_range(const char *opt, const char *text, uint64_t min,
			  uint64_t max, uint64_t *out);

/* Bytes one node read brings, in 4 KiB sectors (vamana_format.md). */
uint32_t cli_index_sectors_per_node(const struct es_vamana_info *info);

/* Says why path cannot be opened as an index. */
void cli_index_report_bad(const char *path, int rc);

/*
 * Opens the segment at seg_path (header and footer only; whole, its
 * CRC32C read, if whole is set) and checks that the index described by
 * info was built from it. Prints the reason and returns CLI_FAIL, or
 * returns CLI_OK.
 */
int cli_index_check_segment(const char *idx_path,
			    const struct es_vamana_info *info,
			    const char *seg_path, int whole);

/* edgesync index search ARGS (argv[0] is "search"). */
int cli_index_search(int argc, char **argv);

#endif
