/*
 * Identity: nng TLS configurations, the device's proof of its id over
 * TLS (ident.h explains why it exists) and the shared token.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mbedtls/oid.h>
#include <mbedtls/pk.h>
#include <mbedtls/sha256.h>
#include <mbedtls/x509_crt.h>

#include "ident.h"
#include "sync_impl.h"
#include "wire.h"

#define PEM_MAX (1u << 20)

int sync_tls_config(nng_tls_config **cfg, int server, const char *cert,
		    const char *key, const char *ca, const char *server_name,
		    int verify, char *why, size_t whylen)
{
	char *cpem = NULL, *kpem = NULL;
	nng_tls_config *c = NULL;
	const char *step = "allocate";
	int rv;

	*cfg = NULL;
	rv = nng_tls_config_alloc(&c, server ? NNG_TLS_MODE_SERVER
					     : NNG_TLS_MODE_CLIENT);
	if (rv)
		goto err;
	step = "read the certificate or key";
	if (sync_read_file(cert, PEM_MAX, &cpem, NULL) ||
	    sync_read_file(key, PEM_MAX, &kpem, NULL)) {
		rv = NNG_EINVAL;
		goto err;
	}
	step = "load the certificate and key";
	rv = nng_tls_config_own_cert(c, cpem, kpem, NULL);
	if (rv)
		goto err;
	step = "load the CA";
	rv = nng_tls_config_ca_file(c, ca);
	if (rv)
		goto err;
	step = "set the authentication mode";
	rv = nng_tls_config_auth_mode(c, verify ? NNG_TLS_AUTH_MODE_REQUIRED
						: NNG_TLS_AUTH_MODE_NONE);
	if (rv == 0 && server_name) {
		step = "set the server name";
		rv = nng_tls_config_server_name(c, server_name);
	}
	if (rv)
		goto err;
	free(cpem);
	free(kpem);
	*cfg = c;
	return 0;
err:
	snprintf(why, whylen, "TLS: cannot %s (cert %s, key %s, CA %s): %s",
		 step, cert, key, ca, nng_strerror(rv));
	if (c)
		nng_tls_config_free(c);
	free(cpem);
	free(kpem);
	return ES_E_SYNC_CONFIG;
}

/* The transcript's hash (ident.h). */
static void transcript(const unsigned char *nonce, const char *device,
		       const char *cloud, unsigned char hash[32])
{
	static const char label[] = "edgesync hello 1";
	unsigned char
	    buf[sizeof(label) + SYNC_NONCE_LEN + 2 + 2 * ES_SYNC_DEVICE_MAX];
	size_t n = 0, dl = strlen(device), cl = strlen(cloud);

	dl = dl > ES_SYNC_DEVICE_MAX ? ES_SYNC_DEVICE_MAX : dl;
	cl = cl > ES_SYNC_DEVICE_MAX ? ES_SYNC_DEVICE_MAX : cl;
	memcpy(buf, label, sizeof(label)); /* with its NUL */
	n = sizeof(label);
	memcpy(buf + n, nonce, SYNC_NONCE_LEN);
	n += SYNC_NONCE_LEN;
	buf[n++] = (unsigned char)dl;
	memcpy(buf + n, device, dl);
	n += dl;
	buf[n++] = (unsigned char)cl;
	memcpy(buf + n, cloud, cl);
	n += cl;
	mbedtls_sha256_ret(buf, n, hash, 0);
}

static int rng(void *arg, unsigned char *out, size_t n)
{
	return sync_random(out, n) ? MBEDTLS_ERR_PK_ALLOC_FAILED : 0;
}

/* ---- signer (edge) ---------------------------------------------------- */

struct sync_signer {
	pthread_mutex_t lock;
	mbedtls_x509_crt crt;
	mbedtls_pk_context key;
};

int sync_signer_load(struct sync_signer **sp, const char *cert, const char *key,
		     char *why, size_t whylen)
{
	struct sync_signer *s = calloc(1, sizeof(*s));

	*sp = NULL;
	if (!s)
		return -ENOMEM;
	pthread_mutex_init(&s->lock, NULL);
	mbedtls_x509_crt_init(&s->crt);
	mbedtls_pk_init(&s->key);
	if (mbedtls_x509_crt_parse_file(&s->crt, cert) != 0) {
		snprintf(why, whylen, "TLS: cannot parse certificate %s", cert);
		goto err;
	}
	if (s->crt.raw.len > SYNC_CERT_MAX) {
		snprintf(why, whylen,
			 "TLS: certificate %s is larger than %u bytes", cert,
			 SYNC_CERT_MAX);
		goto err;
	}
	if (mbedtls_pk_parse_keyfile(&s->key, key, NULL) != 0) {
		snprintf(why, whylen, "TLS: cannot parse private key %s", key);
		goto err;
	}
	if (mbedtls_pk_check_pair(&s->crt.pk, &s->key) != 0) {
		snprintf(why, whylen,
			 "TLS: key %s does not belong to certificate %s", key,
			 cert);
		goto err;
	}
	*sp = s;
	return 0;
err:
	sync_signer_free(s);
	return ES_E_SYNC_CONFIG;
}

void sync_signer_free(struct sync_signer *s)
{
	if (!s)
		return;
	mbedtls_pk_free(&s->key);
	mbedtls_x509_crt_free(&s->crt);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

const unsigned char *sync_signer_cert(const struct sync_signer *s, size_t *len)
{
	*len = s->crt.raw.len;
	return s->crt.raw.p;
}

int sync_signer_sign(struct sync_signer *s, const unsigned char *nonce,
		     const char *device, const char *cloud, unsigned char *sig,
		     size_t *sig_len)
{
	unsigned char hash[32];
	int rc;

	transcript(nonce, device, cloud, hash);
	pthread_mutex_lock(&s->lock);
	rc = mbedtls_pk_sign(&s->key, MBEDTLS_MD_SHA256, hash, sizeof(hash),
			     sig, sig_len, rng, NULL);
	pthread_mutex_unlock(&s->lock);
	if (rc == 0 && *sig_len > SYNC_SIG_MAX)
		rc = -1;
	return rc ? ES_E_SYNC_AUTH : 0;
}

/* ---- verifier (cloud) ------------------------------------------------- */

struct sync_verifier {
	pthread_mutex_t lock;
	mbedtls_x509_crt ca;
};

int sync_verifier_load(struct sync_verifier **vp, const char *ca, char *why,
		       size_t whylen)
{
	struct sync_verifier *v = calloc(1, sizeof(*v));

	*vp = NULL;
	if (!v)
		return -ENOMEM;
	pthread_mutex_init(&v->lock, NULL);
	mbedtls_x509_crt_init(&v->ca);
	if (mbedtls_x509_crt_parse_file(&v->ca, ca) != 0) {
		snprintf(why, whylen, "TLS: cannot parse CA file %s", ca);
		sync_verifier_free(v);
		return ES_E_SYNC_CONFIG;
	}
	*vp = v;
	return 0;
}

int es_sync_tls_check(const char *cert, const char *key, const char *ca,
		      char *why, size_t whylen)
{
	struct sync_signer *s = NULL;
	struct sync_verifier *v = NULL;
	int rc = sync_signer_load(&s, cert, key, why, whylen);

	if (rc == 0)
		rc = sync_verifier_load(&v, ca, why, whylen);
	sync_signer_free(s);
	sync_verifier_free(v);
	return rc;
}

void sync_verifier_free(struct sync_verifier *v)
{
	if (!v)
		return;
	mbedtls_x509_crt_free(&v->ca);
	pthread_mutex_destroy(&v->lock);
	free(v);
}

/* 1 if crt's subject CN is exactly device. */
static int cn_is(const mbedtls_x509_crt *crt, const char *device)
{
	const mbedtls_x509_name *n;
	size_t dl = strlen(device);

	for (n = &crt->subject; n; n = n->next)
		if (n->oid.p &&
		    MBEDTLS_OID_CMP(MBEDTLS_OID_AT_CN, &n->oid) == 0)
			return n->val.len == dl &&
			       !memcmp(n->val.p, device, dl);
	return 0;
}

static int check_locked(struct sync_verifier *v, mbedtls_x509_crt *crt,
			const unsigned char *nonce, const char *device,
			const char *cloud, const unsigned char *sig,
			size_t sig_len, char *why, size_t whylen)
{
	unsigned char hash[32];
	uint32_t flags = 0;

	if (mbedtls_x509_crt_verify(crt, &v->ca, NULL, NULL, &flags, NULL,
				    NULL) != 0) {
		snprintf(why, whylen,
			 "the certificate is not signed by our CA or has "
			 "expired (flags 0x%x)",
			 (unsigned)flags);
		return ES_E_SYNC_AUTH;
	}
	if (mbedtls_x509_crt_check_extended_key_usage(
		crt, MBEDTLS_OID_CLIENT_AUTH,
		MBEDTLS_OID_SIZE(MBEDTLS_OID_CLIENT_AUTH)) != 0) {
		snprintf(why, whylen,
			 "the certificate is not for client authentication");
		return ES_E_SYNC_AUTH;
	}
	if (!cn_is(crt, device)) {
		snprintf(why, whylen,
			 "the certificate's CN is not the device id '%s'",
			 device);
		return ES_E_SYNC_AUTH;
	}
	transcript(nonce, device, cloud, hash);
	if (mbedtls_pk_verify(&crt->pk, MBEDTLS_MD_SHA256, hash, sizeof(hash),
			      sig, sig_len) != 0) {
		snprintf(why, whylen,
			 "the signature does not verify with the "
			 "certificate's key");
		return ES_E_SYNC_AUTH;
	}
	return 0;
}

int sync_verifier_check(struct sync_verifier *v, const unsigned char *cert,
			size_t cert_len, const unsigned char *nonce,
			const char *device, const char *cloud,
			const unsigned char *sig, size_t sig_len, char *why,
			size_t whylen)
{
	mbedtls_x509_crt crt;
	int rc;

	mbedtls_x509_crt_init(&crt);
	if (mbedtls_x509_crt_parse_der(&crt, cert, cert_len) != 0) {
		mbedtls_x509_crt_free(&crt);
		snprintf(why, whylen, "the certificate is not valid DER X.509");
		return ES_E_SYNC_AUTH;
	}
	pthread_mutex_lock(&v->lock);
	rc = check_locked(v, &crt, nonce, device, cloud, sig, sig_len, why,
			  whylen);
	pthread_mutex_unlock(&v->lock);
	mbedtls_x509_crt_free(&crt);
	return rc;
}

int sync_token_equal(const char *want, const unsigned char *got, size_t n)
{
	size_t wn = strlen(want);
	volatile unsigned diff = wn != n;

	for (size_t i = 0; i < wn; i++)
		diff |= (unsigned char)want[i] ^ (i < n ? got[i] : 0u);
	return diff == 0;
}
