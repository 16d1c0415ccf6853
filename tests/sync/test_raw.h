/*
 * A raw client of a cloud agent for the sync tests that speak the
 * protocol message by message (test_window.c, test_hostile.c): a REQ
 * socket, the request being built in E, the last reply's message in
 * raw_last and its parse in rp. One request at a time; raw_fini frees
 * what the last one left.
 */
#ifndef EDGESYNC_TEST_RAW_H
#define EDGESYNC_TEST_RAW_H

#include <stddef.h>

#include <nng/nng.h>

#include "edgesync/cbor.h"
#include "test_host.h"
#include "wire.h"

extern struct es_cbor_enc E;
extern nng_msg *raw_last;
extern struct sync_reply rp;

/* A REQ socket dialed to url, send and receive bounded by timeout_ms. */
nng_socket raw_open(const char *url, int timeout_ms);
/* Starts E as a request of type t with n more fields. */
void raw_req(enum sync_type t, size_t n);
/* Sends len bytes at buf (with their CRC32C trailer if sealed) and parses
 * the reply as one to t: its code (SYNC_C_NONE if ok), -1 if no reply
 * came. */
int raw_ask_bytes(nng_socket s, const void *buf, size_t len, int sealed,
		  enum sync_type t);
/* raw_ask_bytes of E, sealed. */
int raw_ask(nng_socket s, enum sync_type t);
/* The field "clocks" of a begin of seg in E: every row at its seal_hlc. */
void raw_enc_clocks(const struct es_sync_segment *seg);
/* The whole file at path (malloc'ed), its length in *len. */
unsigned char *raw_read_file(const char *path, size_t *len);
/* The host of edge-w's segments a raw client sends (never started), under
 * root, with collection w of dim 8. */
void raw_scratch_init(struct th_node *h, const char *root, const char *name);
/* The end of a raw client's test: the cloud stopped, everything freed. */
void raw_done(struct th_node *cloud, struct th_node *scratch);
void raw_fini(void);

#endif
