/*
 * Private to the store: the write-ahead log's system-call table, in the
 * spirit of SQLite's overridable os_unix table. wal.c makes every write
 * and fdatasync of a batch through wal_sys; a test (or a benchmark that
 * counts syncs) may replace the entries while no log is in use, and must
 * put the defaults back (wal_sys_default) before it ends.
 *
 * Each entry returns 0 or a negative errno, like io_util.h.
 */
#ifndef EDGESYNC_WAL_IMPL_H
#define EDGESYNC_WAL_IMPL_H

#include <stddef.h>

struct wal_sys {
	/* Writes all of buf at the file position (O_APPEND: the end). */
	int (*write_all)(int fd, const void *buf, size_t len);
	/* Makes what was written to fd durable. */
	int (*fdatasync)(int fd);
};

extern struct wal_sys wal_sys;
extern const struct wal_sys wal_sys_default;

#endif
