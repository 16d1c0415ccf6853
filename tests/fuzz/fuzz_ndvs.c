/*
 * libFuzzer target for the NDVS readers. Differential: the in-memory check
 * and both file readers (mapped and pread, with the full checksum) must
 * agree on every input, and a segment they accept must read back whole.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "edgesync/ndvs.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int open_fd_path(const uint8_t *data, size_t size, char *path,
			size_t path_len)
{
	int fd = memfd_create("fuzz-ndvs", 0);

	if (fd < 0)
		abort();
	if (size && write(fd, data, size) != (ssize_t)size)
		abort();
	snprintf(path, path_len, "/proc/self/fd/%d", fd);
	return fd;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct es_ndvs_info info;
	struct es_ndvs *seg;
	char path[64];
	int fd = open_fd_path(data, size, path, sizeof(path));
	int want = es_ndvs_check_image(data, size, &info);

	for (unsigned mode = 0; mode < 2; mode++) {
		unsigned flags =
		    ES_NDVS_OPEN_VERIFY | (mode ? ES_NDVS_OPEN_PREAD : 0);
		int rc = es_ndvs_open(&seg, path, flags, NULL);

		if (rc != want)
			abort();
		if (rc == 0) {
			const struct es_ndvs_info *i = es_ndvs_get_info(seg);
			float *row = malloc(4 * (size_t)i->dim);
			uint64_t id;

			if (!row)
				abort();
			for (uint64_t r = 0; r < i->count; r++)
				if (es_ndvs_read_rows(seg, r, 1, row) != 0 ||
				    es_ndvs_read_ids(seg, r, 1, &id) != 0)
					abort();
			free(row);
			es_ndvs_close(seg);
		}
	}
	close(fd);
	return 0;
}
