/*
 * Directories made durably: a directory just created is not on disk until
 * the directory holding it is fsynced, and a power cut could lose it with
 * every file (and acknowledged write-ahead log) inside.
 */
#ifndef EDGESYNC_DIRS_H
#define EDGESYNC_DIRS_H

/*
 * Makes dir (mode 0750) unless it exists, then fsyncs its parent (also
 * when it existed: an earlier call may have made it and failed to sync).
 * 0 or a negative errno.
 */
int es_mkdir_durable(const char *dir);

#endif
