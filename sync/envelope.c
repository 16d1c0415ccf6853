/*
 * The envelope (PROTOCOL.md, "Envelope"): every message is one CBOR map
 * followed by the CRC32C of the map's bytes, 4 bytes little-endian. TLS
 * already protects what it carries; over plain tcp:// this is what
 * catches a message damaged in transit (a flipped device id in hello, a
 * flipped offset in begin) before anything acts on it.
 *
 * A message with bulk bytes in it (a chunk, a fetch reply) checks them
 * once: the receiver computes the bulk's CRC32C for the chunk's own
 * check, and the envelope's CRC is folded from it (es_crc32c_combine),
 * so the megabyte is not read a second time.
 */
#include <errno.h>
#include <string.h>

#include <nng/nng.h>

#include "edgesync/crc32c.h"
#include "edgesync/le.h"
#include "wire.h"

void sync_trailer_put(unsigned char *out, uint32_t crc)
{
	le32_store(out, crc);
}

int sync_msg_sealed(nng_msg **m, const void *map, size_t len)
{
	unsigned char *b;

	if (nng_msg_alloc(m, len + SYNC_TRAILER) != 0)
		return -ENOMEM;
	b = nng_msg_body(*m);
	memcpy(b, map, len);
	le32_store(b + len, es_crc32c(0, map, len));
	return 0;
}

int sync_trailer_check(const void *buf, size_t len, const void *bulk,
		       size_t bulk_len, uint32_t bulk_crc)
{
	const unsigned char *b = buf, *k = bulk;
	uint32_t crc;

	if (len < SYNC_TRAILER)
		return -1;
	len -= SYNC_TRAILER;
	if (k && k >= b && bulk_len <= len &&
	    (size_t)(k - b) <= len - bulk_len) {
		size_t at = (size_t)(k - b), end = at + bulk_len;

		crc = es_crc32c(0, b, at);
		crc = es_crc32c_combine(crc, bulk_crc, bulk_len);
		crc = es_crc32c(crc, b + end, len - end);
	} else {
		crc = es_crc32c(0, b, len);
	}
	return crc == le32_load(b + len) ? 0 : -1;
}
