/*
 * edgesync store: a write-ahead log, the reason an acknowledged write
 * survives kill -9 and power loss.
 *
 * A log is a directory of generation files "wal-<gen>.log" (gen from 1,
 * 16 hex digits in the name). Records are framed
 *     [len u32][crc u32][payload: len bytes]        (little-endian)
 * where crc is the CRC32C of the len field's 4 bytes followed by the
 * payload. es_wal_append returns only once the record is on disk
 * (fdatasync); concurrent appenders share one write and one fdatasync
 * (group commit): the first waiting appender becomes the leader, writes
 * everything queued so far and syncs it, then wakes every appender it
 * covered.
 *
 * Sealing: es_wal_rotate closes the current generation and starts the
 * next; once what the closed generations held is durable elsewhere (an
 * NDVS segment recorded in the manifest), es_wal_drop_through deletes them.
 *
 * Recovery (es_wal_open): generations below min_gen are deleted (already
 * sealed); the others are replayed in order; the newest generation's torn
 * tail (a short or checksum-failing last record, from a crash mid-write)
 * is cut off. A bad record in an older generation, or one followed by
 * whole valid records, is corruption: ES_E_WAL_CORRUPT, nothing deleted.
 */
#ifndef EDGESYNC_WAL_H
#define EDGESYNC_WAL_H

#include <stddef.h>
#include <stdint.h>

#define ES_WAL_MAX_RECORD (256u << 20)

enum es_wal_err {
	ES_E_WAL_CORRUPT = -5070, /* a damaged record that is not a torn tail */
	ES_E_WAL_TOO_BIG = -5071, /* record larger than ES_WAL_MAX_RECORD */
	ES_E_WAL_CLOSED = -5072, /* the log failed earlier and refuses writes */
};

struct es_wal;

/*
 * es_wal_replay_fn receives each surviving record in order (gen, payload);
 * a negative return stops the replay and es_wal_open returns it.
 */
typedef int (*es_wal_replay_fn)(void *arg, uint64_t gen, const void *data,
				uint32_t len);

/*
 * es_wal_open recovers the log in dir (creating dir if missing) as above,
 * then opens the newest generation (or min_gen, if none is left) for
 * appending.
 */
int es_wal_open(struct es_wal **wp, const char *dir, uint64_t min_gen,
		es_wal_replay_fn replay, void *arg);
void es_wal_close(struct es_wal *w);

/*
 * es_wal_append makes one record durable; thread-safe. After an I/O error
 * the log refuses further appends (ES_E_WAL_CLOSED): a record whose
 * append failed may or may not be replayed, and is never acknowledged.
 */
int es_wal_append(struct es_wal *w, const void *data, uint32_t len);

/* The generation appends currently go to. */
uint64_t es_wal_gen(struct es_wal *w);

/*
 * es_wal_rotate starts generation es_wal_gen() + 1 and stores the closed
 * one in *closed. Appends racing with it land in one or the other, whole.
 */
int es_wal_rotate(struct es_wal *w, uint64_t *closed);

/* es_wal_drop_through deletes generations <= gen (never the current). */
int es_wal_drop_through(struct es_wal *w, uint64_t gen);

#endif
