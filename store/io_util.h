/*
 * Private to the store: system calls wrapped to the store's convention
 * (0 or a negative errno, EINTR and short transfers handled).
 */
#ifndef EDGESYNC_IO_UTIL_H
#define EDGESYNC_IO_UTIL_H

#include <stddef.h>
#include <sys/types.h>

/* Reads exactly len bytes at off; -EIO if the file ends first. */
int io_pread_all(int fd, void *buf, size_t len, off_t off);
/* Writes exactly len bytes at the file position. */
int io_write_all(int fd, const void *buf, size_t len);
/* fsyncs the directory holding path, making a rename in it durable. */
int io_fsync_parent(const char *path);

#endif
