/*
 * Private to sync: who a peer is.
 *
 *   TLS        nng (mbedTLS) authenticates both ends with certificates
 *              signed by the configured CA. nng 1.5.2 cannot tell the
 *              application which certificate a connection presented
 *              (NNG_OPT_TLS_PEER_CN came in 1.6), so the edge also proves
 *              its device id inside the protocol: the cloud sends a fresh
 *              nonce for the connection (challenge), the edge answers
 *              with its certificate and a signature, by the certificate's
 *              key, over SHA-256("edgesync hello 1\0" || nonce ||
 *              len || device || len || cloud device). The cloud checks
 *              the certificate against its CA, that its CN is the device
 *              id claimed, and the signature (PROTOCOL.md, "Identity").
 *   token      plain tcp:// and ipc://: a shared secret compared in
 *              constant time. For labs only.
 */
#ifndef EDGESYNC_SYNC_IDENT_H
#define EDGESYNC_SYNC_IDENT_H

#include <stddef.h>
#include <stdint.h>

#include <nng/nng.h>
#include <nng/supplemental/tls/tls.h>

/*
 * sync_tls_config makes an nng TLS configuration: server (listener) or
 * client mode, our certificate and key, the CA, peer verification
 * required (verify 0: not checked, for the cloud's self-probe), and for
 * a client the server name to check the peer's certificate against.
 */
int sync_tls_config(nng_tls_config **cfg, int server, const char *cert,
		    const char *key, const char *ca, const char *server_name,
		    int verify, char *why, size_t whylen);

struct sync_signer;
int sync_signer_load(struct sync_signer **sp, const char *cert, const char *key,
		     char *why, size_t whylen);
void sync_signer_free(struct sync_signer *s);
/* The DER of our certificate, valid until sync_signer_free. */
const unsigned char *sync_signer_cert(const struct sync_signer *s, size_t *len);
/* sig must hold SYNC_SIG_MAX bytes. Thread-safe. */
int sync_signer_sign(struct sync_signer *s, const unsigned char *nonce,
		     const char *device, const char *cloud, unsigned char *sig,
		     size_t *sig_len);

struct sync_verifier;
int sync_verifier_load(struct sync_verifier **vp, const char *ca, char *why,
		       size_t whylen);
void sync_verifier_free(struct sync_verifier *v);
/*
 * sync_verifier_check: 0 if cert chains to the CA, names device as its
 * CN and made sig over the transcript; else ES_E_SYNC_AUTH with why.
 * Thread-safe.
 */
int sync_verifier_check(struct sync_verifier *v, const unsigned char *cert,
			size_t cert_len, const unsigned char *nonce,
			const char *device, const char *cloud,
			const unsigned char *sig, size_t sig_len, char *why,
			size_t whylen);

/* 1 if the n bytes at got are want; time depends only on strlen(want). */
int sync_token_equal(const char *want, const unsigned char *got, size_t n);

#endif
