/* The simulated Secure Element: real P-256/P-384 ECDSA through OpenSSL 3's
 * EVP API.  Private keys live in EVP_PKEY objects inside the SE and nothing
 * here serialises one: only public keys, CSRs, certificates and signatures
 * leave.  Commands follow PROTOCOL.md section 4; the faults that change
 * what the SE says (not how the jig carries it) are here too. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "se.h"

/* ---- small helpers ----------------------------------------------------- */

static void
bytes_clear(se_bytes *b)
{
	OPENSSL_free(b->p);
	b->p = NULL;
	b->len = 0;
}

static int
bytes_copy(se_bytes *b, const uint8_t *p, size_t len, st_err *err)
{
	uint8_t *q = OPENSSL_memdup(p, len ? len : 1);

	if (!q)
		return st_err_set(err, ST_E_NOMEM, "out of memory");
	bytes_clear(b);
	b->p = q;
	b->len = len;
	return 0;
}

static int
blob_set(jig_blob *blob, const uint8_t *p, size_t len, st_err *err)
{
	if (len > sizeof(blob->data))
		return st_err_set(err, ST_E_INTERNAL, "%zu bytes do not fit a %d-byte field", len, JIG_BLOB_MAX);
	if (len)
		memcpy(blob->data, p, len);
	blob->len = len;
	return 0;
}

static EVP_PKEY *
ec_keygen(uint8_t alg, st_err *err)
{
	EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", alg == JIG_ALG_P384 ? "P-384" : "P-256");

	if (!k)
		st_err_openssl(err, ST_E_CRYPTO, "EC key generation");
	return k;
}

static int
pub_der(EVP_PKEY *k, se_bytes *out, st_err *err)
{
	unsigned char *p = NULL;
	int n = i2d_PUBKEY(k, &p);

	if (n <= 0)
		return st_err_openssl(err, ST_E_CRYPTO, "encode public key");
	bytes_clear(out);
	out->p = p;
	out->len = (size_t)n;
	return 0;
}

static int
ecdsa_sign(EVP_PKEY *key, const uint8_t *msg, size_t len, jig_blob *sig, st_err *err)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	size_t n = sizeof(sig->data);
	int ret = -1;

	if (!ctx || EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, key) != 1 ||
	    EVP_DigestSign(ctx, sig->data, &n, msg, len) != 1) {
		st_err_openssl(err, ST_E_CRYPTO, "ECDSA signature");
		goto out;
	}
	sig->len = n;
	ret = 0;
out:
	EVP_MD_CTX_free(ctx);
	return ret;
}

static int
ecdsa_verify(EVP_PKEY *pub, const uint8_t *msg, size_t len, const uint8_t *sig, size_t siglen)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	int ok = ctx && EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, pub) == 1 &&
	    EVP_DigestVerify(ctx, sig, siglen, msg, len) == 1;

	EVP_MD_CTX_free(ctx);
	ERR_clear_error(); /* a bad signature is an answer, not an error to report */
	return ok;
}

static int
name_add(X509_NAME *n, const char *field, const char *value, st_err *err)
{
	if (!X509_NAME_add_entry_by_txt(n, field, MBSTRING_UTF8, (const unsigned char *)value, -1, -1, 0))
		return st_err_openssl(err, ST_E_CRYPTO, "certificate name %s=%s", field, value);
	return 0;
}

static int
add_ext(X509 *x, X509V3_CTX *v3, int nid, const char *value, st_err *err)
{
	X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, v3, nid, value);
	int ok = ext && X509_add_ext(x, ext, -1);

	X509_EXTENSION_free(ext);
	if (!ok)
		return st_err_openssl(err, ST_E_CRYPTO, "certificate extension %s", OBJ_nid2sn(nid));
	return 0;
}

/* A certificate for pub, signed by issuer_key.  The authority key identifier
 * is computed from issuer_cert, or copied from aki_from (the rogue CA
 * pretends to be issued by the real root), or left out. */
static X509 *
make_cert(EVP_PKEY *pub, const X509_NAME *subject, const X509_NAME *issuer, X509 *issuer_cert, X509 *aki_from,
    EVP_PKEY *issuer_key, int ca, st_err *err)
{
	X509 *x = NULL, *ret = NULL;
	BIGNUM *bn = NULL;
	X509V3_CTX v3;
	int i;

	if (!(x = X509_new()) || !(bn = BN_new()) || !X509_set_version(x, X509_VERSION_3) ||
	    !BN_rand(bn, 64, BN_RAND_TOP_ONE, BN_RAND_BOTTOM_ANY) ||
	    !BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) || !X509_set_subject_name(x, subject) ||
	    !X509_set_issuer_name(x, issuer) || !X509_gmtime_adj(X509_getm_notBefore(x), -86400) ||
	    !ASN1_TIME_set_string_X509(X509_getm_notAfter(x), "99991231235959Z") || !X509_set_pubkey(x, pub)) {
		st_err_openssl(err, ST_E_CRYPTO, "build certificate");
		goto out;
	}
	X509V3_set_ctx(&v3, issuer_cert ? issuer_cert : x, x, NULL, NULL, 0);
	if (add_ext(x, &v3, NID_basic_constraints, ca ? "critical,CA:TRUE,pathlen:0" : "critical,CA:FALSE", err) < 0 ||
	    add_ext(x, &v3, NID_key_usage, ca ? "critical,keyCertSign,cRLSign" : "critical,digitalSignature", err) < 0 ||
	    add_ext(x, &v3, NID_subject_key_identifier, "hash", err) < 0 ||
	    (issuer_cert && add_ext(x, &v3, NID_authority_key_identifier, "keyid:always", err) < 0))
		goto out;
	if (aki_from && (i = X509_get_ext_by_NID(aki_from, NID_authority_key_identifier, -1)) >= 0 &&
	    !X509_add_ext(x, X509_get_ext(aki_from, i), -1)) {
		st_err_openssl(err, ST_E_CRYPTO, "copy authority key identifier");
		goto out;
	}
	if (!X509_sign(x, issuer_key, EVP_sha256())) {
		st_err_openssl(err, ST_E_CRYPTO, "sign certificate");
		goto out;
	}
	ret = x;
	x = NULL;
out:
	X509_free(x);
	BN_free(bn);
	return ret;
}

static int
cert_der(X509 *x, se_bytes *out, st_err *err)
{
	unsigned char *p = NULL;
	int n = i2d_X509(x, &p);

	if (n <= 0)
		return st_err_openssl(err, ST_E_CRYPTO, "encode certificate");
	bytes_clear(out);
	out->p = p;
	out->len = (size_t)n;
	return 0;
}

/* ---- the shared environment --------------------------------------------- */

static int
load_pem(const char *path, int private, EVP_PKEY **key, X509 **cert, st_err *err)
{
	BIO *bio = BIO_new_file(path, "r");
	int ret = -1;

	if (!bio)
		return st_err_openssl(err, ST_E_CONFIG, "%s: cannot open", path);
	if (cert)
		*cert = PEM_read_bio_X509(bio, NULL, NULL, NULL);
	else if (private)
		*key = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
	else
		*key = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
	if (cert ? !*cert : !*key) {
		st_err_openssl(err, ST_E_CONFIG, "%s: not a PEM %s", path,
		    cert ? "certificate" : private ? "private key" : "public key");
		goto out;
	}
	ret = 0;
out:
	BIO_free(bio);
	return ret;
}

/* The subject of an SE's attestation certificate. */
static X509_NAME *
attest_subject(const se_env *env, const char *serial, st_err *err)
{
	X509_NAME *n = X509_NAME_new();
	char cn[JIG_STR_MAX + 16];

	snprintf(cn, sizeof(cn), "%s attestation", env->model);
	if (!n) {
		st_err_set(err, ST_E_NOMEM, "out of memory");
		return NULL;
	}
	if (name_add(n, "O", "Test SE Vendor", err) < 0 || name_add(n, "CN", cn, err) < 0 ||
	    name_add(n, "serialNumber", serial, err) < 0) {
		X509_NAME_free(n);
		return NULL;
	}
	return n;
}

/* 1.2: the template VENDOR_CHAIN sends, a dictionary for the attestation
 * certificates' deltas: the TBSCertificate of one made like them, for a
 * serial of zeros, the CA's own key and fixed numbers and times, so the
 * same CA gives the same bytes (and chain digest) in every run. */
static int
make_template(se_env *env, st_err *err)
{
	char serial[JIG_STR_MAX + 1];
	X509_NAME *subject = NULL;
	ASN1_INTEGER *one = NULL;
	X509 *x = NULL;
	unsigned char *p = NULL;
	int n, ret = -1;

	snprintf(serial, sizeof(serial), "%s0000000000000000", env->serial_prefix);
	if (!(subject = attest_subject(env, serial, err)) ||
	    !(x = make_cert(X509_get0_pubkey(env->ca_cert), subject, X509_get_subject_name(env->ca_cert), env->ca_cert,
	          NULL, env->ca_key, 0, err)))
		goto out;
	if (!(one = ASN1_INTEGER_new()) || !ASN1_INTEGER_set(one, 1) || !X509_set_serialNumber(x, one) ||
	    !ASN1_TIME_set_string_X509(X509_getm_notBefore(x), "20260101000000Z") || (n = i2d_re_X509_tbs(x, &p)) <= 0) {
		st_err_openssl(err, ST_E_CRYPTO, "attestation template");
		goto out;
	}
	env->attest_tmpl.p = p;
	env->attest_tmpl.len = (size_t)n;
	ret = 0;
out:
	ASN1_INTEGER_free(one);
	X509_NAME_free(subject);
	X509_free(x);
	return ret;
}

int
se_env_init(se_env *env, const jigsim_config *c, st_err *err)
{
	memset(env, 0, sizeof(*env));
	if (!c->vendor_ca_cert || !c->vendor_ca_key || !c->tool_pub)
		return st_err_set(err, ST_E_CONFIG,
		    "the SE vendor CA certificate and key and the tool public key are needed (--pki DIR)");
	if (!c->serial_prefix || !c->model || strlen(c->serial_prefix) > JIG_STR_MAX - 16 || strlen(c->model) == 0 ||
	    strlen(c->model) > JIG_STR_MAX)
		return st_err_set(err, ST_E_CONFIG, "serial prefix of at most %d and model of 1..%d characters",
		    JIG_STR_MAX - 16, JIG_STR_MAX);
	if (c->fixed_serial && (strlen(c->fixed_serial) == 0 || strlen(c->fixed_serial) > JIG_STR_MAX))
		return st_err_set(err, ST_E_CONFIG, "a fixed serial of 1..%d characters", JIG_STR_MAX);
	snprintf(env->fixed_serial, sizeof(env->fixed_serial), "%s", c->fixed_serial ? c->fixed_serial : "");
	snprintf(env->serial_prefix, sizeof(env->serial_prefix), "%s", c->serial_prefix);
	snprintf(env->model, sizeof(env->model), "%s", c->model);
	env->firmware = c->firmware;
	if (load_pem(c->vendor_ca_cert, 0, NULL, &env->ca_cert, err) < 0 ||
	    load_pem(c->vendor_ca_key, 1, &env->ca_key, NULL, err) < 0 ||
	    load_pem(c->tool_pub, 0, &env->tool_pub, NULL, err) < 0)
		goto fail;
	if (X509_check_private_key(env->ca_cert, env->ca_key) != 1) {
		st_err_openssl(err, ST_E_CONFIG, "%s does not hold the key of %s", c->vendor_ca_key, c->vendor_ca_cert);
		goto fail;
	}
	if (cert_der(env->ca_cert, &env->ca_der, err) < 0 || make_template(env, err) < 0)
		goto fail;
	if (c->faults & JIGSIM_F_UNKNOWN_VENDOR) {
		/* Same subject and issuer names as the real batch CA, another key:
		 * only a signature check up to the vendor root tells them apart. */
		if (!(env->rogue_key = ec_keygen(JIG_ALG_P256, err)) ||
		    !(env->rogue_cert = make_cert(env->rogue_key, X509_get_subject_name(env->ca_cert),
			  X509_get_issuer_name(env->ca_cert), NULL, env->ca_cert, env->rogue_key, 1, err)) ||
		    cert_der(env->rogue_cert, &env->rogue_der, err) < 0)
			goto fail;
	}
	return 0;
fail:
	se_env_clear(env);
	return -1;
}

void
se_env_clear(se_env *env)
{
	EVP_PKEY_free(env->ca_key);
	X509_free(env->ca_cert);
	bytes_clear(&env->ca_der);
	EVP_PKEY_free(env->rogue_key);
	X509_free(env->rogue_cert);
	bytes_clear(&env->rogue_der);
	bytes_clear(&env->attest_tmpl);
	EVP_PKEY_free(env->tool_pub);
	se_env_clear_templates(env);
	memset(env, 0, sizeof(*env));
}

/* ---- one SE ------------------------------------------------------------ */

static void
slot_clear(se_slot *s)
{
	EVP_PKEY_free(s->key);
	s->key = NULL;
	bytes_clear(&s->pub);
	bytes_clear(&s->cert);
	s->rework_ok = 0;
}

/* already-locked: provisioned before it reached us, slot 0 holding a key and
 * a leaf certificate from an issuer nobody here knows. */
static int
make_foreign_identity(se *d, st_err *err)
{
	se_slot *s = &d->slot[0];
	EVP_PKEY *issuer_key = NULL;
	X509_NAME *subject = NULL, *issuer = NULL;
	X509 *cert = NULL;
	int ret = -1;

	if (!(s->key = ec_keygen(JIG_ALG_P256, err)) || pub_der(s->key, &s->pub, err) < 0 ||
	    !(issuer_key = ec_keygen(JIG_ALG_P256, err)))
		goto out;
	if (!(subject = X509_NAME_new()) || !(issuer = X509_NAME_new())) {
		st_err_set(err, ST_E_NOMEM, "out of memory");
		goto out;
	}
	if (name_add(subject, "O", "Unknown Factory", err) < 0 || name_add(subject, "CN", d->serial, err) < 0 ||
	    name_add(issuer, "O", "Unknown Factory", err) < 0 || name_add(issuer, "CN", "Unknown Device CA", err) < 0 ||
	    !(cert = make_cert(s->key, subject, issuer, NULL, NULL, issuer_key, 0, err)) ||
	    cert_der(cert, &s->cert, err) < 0)
		goto out;
	d->lifecycle = JIG_LC_PROVISIONED;
	ret = 0;
out:
	EVP_PKEY_free(issuer_key);
	X509_NAME_free(subject);
	X509_NAME_free(issuer);
	X509_free(cert);
	return ret;
}

se *
se_new(se_env *env, unsigned faults, st_err *err)
{
	static const char digits[] = "0123456789ABCDEF";
	int rogue = (faults & JIGSIM_F_UNKNOWN_VENDOR) != 0;
	X509 *issuer = rogue ? env->rogue_cert : env->ca_cert;
	EVP_PKEY *issuer_key = rogue ? env->rogue_key : env->ca_key;
	X509_NAME *subject = NULL;
	X509 *cert = NULL;
	char hex[17];
	uint8_t rnd[8];
	se *d = NULL, *ret = NULL;
	size_t i;

	if (!(d = calloc(1, sizeof(*d)))) {
		st_err_set(err, ST_E_NOMEM, "out of memory");
		goto out;
	}
	if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
		st_err_openssl(err, ST_E_CRYPTO, "random serial");
		goto out;
	}
	for (i = 0; i < sizeof(rnd); i++) {
		hex[2 * i] = digits[rnd[i] >> 4];
		hex[2 * i + 1] = digits[rnd[i] & 15];
	}
	hex[16] = '\0';
	if (env->fixed_serial[0])
		snprintf(d->serial, sizeof(d->serial), "%s", env->fixed_serial);
	else
		snprintf(d->serial, sizeof(d->serial), "%s%s", env->serial_prefix, hex);
	d->lifecycle = JIG_LC_FACTORY;
	d->faults = faults;
	if (!issuer) {
		st_err_set(err, ST_E_INTERNAL, "no CA for the attestation certificate");
		goto out;
	}
	if (!(d->attest_key = ec_keygen(JIG_ALG_P256, err)))
		goto out;
	if (!(subject = attest_subject(env, d->serial, err)) ||
	    !(cert = make_cert(d->attest_key, subject, X509_get_subject_name(issuer), issuer, NULL, issuer_key, 0,
		  err)) ||
	    cert_der(cert, &d->attest_cert, err) < 0)
		goto out;
	d->issuer_der = rogue ? &env->rogue_der : &env->ca_der;
	if ((faults & JIGSIM_F_ALREADY_LOCKED) && make_foreign_identity(d, err) < 0)
		goto out;
	ret = d;
	d = NULL;
out:
	if (!ret)
		st_err_prefix(err, "new simulated SE");
	se_free(d);
	X509_NAME_free(subject);
	X509_free(cert);
	return ret;
}

void
se_drop_keys(se *d)
{
	size_t i;

	EVP_PKEY_free(d->attest_key);
	d->attest_key = NULL;
	for (i = 0; i <= JIG_MAX_SLOT; i++) {
		EVP_PKEY_free(d->slot[i].key);
		d->slot[i].key = NULL;
	}
	se_power_off(d);
}

void
se_free(se *d)
{
	size_t i;

	if (!d)
		return;
	EVP_PKEY_free(d->attest_key);
	bytes_clear(&d->attest_cert);
	bytes_clear(&d->attest_delta);
	for (i = 0; i <= JIG_MAX_SLOT; i++)
		slot_clear(&d->slot[i]);
	for (i = 0; i < d->nretired; i++) {
		bytes_clear(&d->retired[i].pub);
		bytes_clear(&d->retired[i].cert);
	}
	free(d->retired);
	free(d);
}

void
se_power_off(se *d)
{
	size_t i;

	d->authenticated = 0;
	d->have_challenge = 0;
	for (i = 0; i <= JIG_MAX_SLOT; i++)
		d->slot[i].rework_ok = 0;
}

/* ---- commands ------------------------------------------------------------ */

static int ST_PRINTF(3, 4)
fail(char *msg, int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, JIG_ERRMSG_MAX + 1, fmt, ap);
	va_end(ap);
	return code;
}

static int
new_challenge(se *d, uint8_t out[JIG_NONCE_LEN], st_err *err)
{
	if (RAND_bytes(d->challenge, JIG_NONCE_LEN) != 1)
		return st_err_openssl(err, ST_E_CRYPTO, "random challenge");
	d->have_challenge = 1;
	memcpy(out, d->challenge, JIG_NONCE_LEN);
	return 0;
}

int
se_env_add_template(se_env *env, const jig_blob *der, st_err *err)
{
	unsigned k = env->tmpl_next++ % 2;

	if (bytes_copy(&env->tmpl[k], der->data, der->len, err) < 0)
		return -1;
	st_sha256(der->data, der->len, env->tmpl_sha256[k]);
	return 0;
}

void
se_env_clear_templates(se_env *env)
{
	bytes_clear(&env->tmpl[0]);
	bytes_clear(&env->tmpl[1]);
	memset(env->tmpl_sha256, 0, sizeof(env->tmpl_sha256));
	env->tmpl_next = 0;
}

/* 1.2: VENDOR_CHAIN's certificate (the SE's issuer) and template. */
static int
chain_of(const se_env *env, const se *d, jig_blob *cert, jig_blob *tmpl, st_err *err)
{
	if (blob_set(cert, d->issuer_der->p, d->issuer_der->len, err) < 0 ||
	    blob_set(tmpl, env->attest_tmpl.p, env->attest_tmpl.len, err) < 0)
		return -1;
	return 0;
}

/* The VENDOR_CHAIN payload in 1.2 form: the SE's issuer and the template. */
static int
chain_payload(const se_env *env, const se *d, uint8_t *out, size_t cap, size_t *len, st_err *err)
{
	static _Thread_local jig_blob cert, tmpl;

	if (chain_of(env, d, &cert, &tmpl, err) < 0)
		return -1;
	if (jig_chain_payload(&cert, 1, &tmpl, out, cap, len) < 0)
		return st_err_set(err, ST_E_INTERNAL, "vendor chain payload");
	return 0;
}

/* 1.2: the attestation certificate as a delta against the VENDOR_CHAIN
 * payload and the serial (PROTOCOL.md section 4), made once per SE. */
static int
attest_delta(const se_env *env, se *d, jig_blob *out, st_err *err)
{
	uint8_t src[JIG_CHAIN_PAYLOAD_MAX], buf[JIG_BLOB_MAX];
	size_t slen, n, ns = strlen(d->serial);

	if (!d->attest_delta.p) {
		if (chain_payload(env, d, src, sizeof(src) - JIG_STR_MAX, &slen, err) < 0)
			return -1;
		memcpy(src + slen, d->serial, ns);
		slen += ns;
		if (jig_delta_make(src, slen, d->attest_cert.p, d->attest_cert.len, buf, sizeof(buf) - 3, &n, err) < 0)
			return -1;
		if (d->faults & JIGSIM_F_BAD_DELTA) {
			/* a last copy of 4 bytes from the end of the source: past it */
			buf[n++] = 0x80;
			buf[n++] = (uint8_t)((slen - 2) >> 8);
			buf[n++] = (uint8_t)(slen - 2);
		}
		if (bytes_copy(&d->attest_delta, buf, n, err) < 0)
			return -1;
	}
	return blob_set(out, d->attest_delta.p, d->attest_delta.len, err);
}

static int
se_info(se_env *env, se *d, uint8_t version, jig_msg *resp, st_err *err)
{
	jig_se_info *i = &resp->u.se_info;

	snprintf(i->serial, sizeof(i->serial), "%s", d->serial);
	snprintf(i->model, sizeof(i->model), "%s", env->model);
	i->firmware = env->firmware;
	i->lifecycle = d->lifecycle;
	i->ncerts = 2;
	if (blob_set(&i->certs[0], d->attest_cert.p, d->attest_cert.len, err) < 0 ||
	    blob_set(&i->certs[1], d->issuer_der->p, d->issuer_der->len, err) < 0)
		return -1;
	if (version >= JIG_VERSION_1_1) {
		/* 1.1: the vendor chain by its digest; VENDOR_CHAIN sends it. */
		jig_chain_digest(&i->certs[1], 1, NULL, i->chain_sha256);
		i->chain_by_digest = 1;
		i->ncerts = 1;
	}
	if (version >= JIG_VERSION_1_2) {
		uint8_t p[JIG_CHAIN_PAYLOAD_MAX];
		size_t n;

		i->ncerts = 0;
		i->cert_by_delta = 1;
		if (attest_delta(env, d, &i->attest_delta, err) < 0 || chain_payload(env, d, p, sizeof(p), &n, err) < 0)
			return -1;
		st_sha256(p, n, i->chain_sha256);
	}
	return new_challenge(d, i->challenge, err);
}

static int
vendor_chain(const se_env *env, se *d, uint8_t version, jig_msg *resp, st_err *err)
{
	resp->u.chain.n = 1;
	if (version >= JIG_VERSION_1_2)
		return chain_of(env, d, &resp->u.chain.certs[0], &resp->u.chain.tmpl, err);
	return blob_set(&resp->u.chain.certs[0], d->issuer_der->p, d->issuer_der->len, err);
}

static int
auth_response(se_env *env, se *d, const jig_blob *sig, char *msg, st_err *err)
{
	uint8_t m[128];
	size_t len;
	int have = d->have_challenge;

	/* One try per challenge, successful or not. */
	d->have_challenge = 0;
	d->authenticated = 0;
	if (!have)
		return fail(msg, JIG_E_AUTH_FAILED, "no challenge pending: send SE_INFO or AUTH_CHALLENGE first");
	if (jig_challenge_message(JIG_TAG_TOOL_AUTH, d->serial, d->challenge, m, sizeof(m), &len, err) < 0)
		return -1;
	if (!ecdsa_verify(env->tool_pub, m, len, sig->data, sig->len))
		return fail(msg, JIG_E_AUTH_FAILED, "tool signature does not verify with the tool key of SE %s",
		    d->serial);
	d->authenticated = 1;
	return 0;
}

static int
keygen(se *d, uint8_t slot, uint8_t alg, uint8_t flags, jig_msg *resp, st_err *err)
{
	se_slot *s = &d->slot[slot];
	EVP_PKEY *k = NULL;

	if (!(flags & JIG_KEYGEN_KEEP) || !s->key) {
		if (!(k = ec_keygen(alg, err)))
			return -1;
		slot_clear(s); /* a new key: the old one and its certificate are gone */
		s->key = k;
		d->keygens++;
		if (pub_der(s->key, &s->pub, err) < 0)
			return -1;
	}
	return blob_set(&resp->u.pubkey, s->pub.p, s->pub.len, err);
}

static int
make_csr(const se *d, EVP_PKEY *key, se_bytes *out, st_err *err)
{
	X509_REQ *req = X509_REQ_new();
	unsigned char *p = NULL;
	int n, ret = -1;

	if (!req || !X509_REQ_set_version(req, X509_REQ_VERSION_1) ||
	    name_add(X509_REQ_get_subject_name(req), "CN", d->serial, err) < 0 || !X509_REQ_set_pubkey(req, key) ||
	    !X509_REQ_sign(req, key, EVP_sha256()) || (n = i2d_X509_REQ(req, &p)) <= 0) {
		st_err_openssl(err, ST_E_CRYPTO, "build CSR");
		goto out;
	}
	bytes_clear(out);
	out->p = p;
	out->len = (size_t)n;
	ret = 0;
out:
	X509_REQ_free(req);
	return ret;
}

/* 1.2: the CSR both ends build (PROTOCOL.md section 6), signed by key. */
static int
make_csr_12(const se *d, EVP_PKEY *key, const se_bytes *pub, se_bytes *out, jig_blob *sig, st_err *err)
{
	uint8_t info[JIG_CSR_MAX], csr[JIG_CSR_MAX];
	size_t ilen, clen;

	if (jig_csr_info(d->serial, pub->p, pub->len, info, sizeof(info), &ilen, err) < 0 ||
	    ecdsa_sign(key, info, ilen, sig, err) < 0 ||
	    jig_csr_assemble(info, ilen, sig->data, sig->len, csr, sizeof(csr), &clen, err) < 0)
		return -1;
	bytes_clear(out);
	return bytes_copy(out, csr, clen, err);
}

static int
get_csr(se_env *env, se *d, uint8_t version, uint8_t slot, const uint8_t nonce[JIG_NONCE_LEN], jig_msg *resp,
    char *msg, st_err *err)
{
	se_slot *s = &d->slot[slot];
	EVP_PKEY *key = s->key, *other = NULL;
	se_bytes csr = { 0 }, other_pub = { 0 };
	const se_bytes *pub = &s->pub;
	jig_blob *att = &resp->u.csr.attestation;
	uint8_t signed_bytes[JIG_BLOB_MAX];
	jig_attest a;
	int ret = -1;

	if (!key)
		return fail(msg, JIG_E_SLOT_EMPTY, "no key in slot %u: KEYGEN first", slot);
	if (d->faults & JIGSIM_F_ATTEST_WRONG_KEY) {
		/* CSR and attestation both for a key KEYGEN never returned. */
		if (!(other = ec_keygen(JIG_ALG_P256, err)) || pub_der(other, &other_pub, err) < 0)
			goto out;
		key = other;
		pub = &other_pub;
	}
	if (version >= JIG_VERSION_1_2 ? make_csr_12(d, key, pub, &csr, &resp->u.csr.csr_signature, err) < 0 :
	                                 make_csr(d, key, &csr, err) < 0)
		goto out;
	memset(&a, 0, sizeof(a));
	memcpy(a.nonce, (d->faults & JIGSIM_F_REPLAY_NONCE) ? env->prev_nonce : nonce, JIG_NONCE_LEN);
	memcpy(env->prev_nonce, nonce, JIG_NONCE_LEN);
	snprintf(a.serial, sizeof(a.serial), "%s", d->serial);
	snprintf(a.model, sizeof(a.model), "%s", env->model);
	a.firmware = env->firmware;
	a.lifecycle = d->lifecycle;
	a.slot = slot;
	st_sha256(csr.p, csr.len, a.csr_sha256);
	st_sha256(pub->p, pub->len, a.pubkey_sha256);
	if (jig_attest_encode(&a, att->data, sizeof(att->data), &att->len, err) < 0 ||
	    blob_set(&resp->u.csr.csr, csr.p, csr.len, err) < 0)
		goto out;
	memcpy(signed_bytes, att->data, att->len);
	if (d->faults & JIGSIM_F_BAD_ATTEST_SIG)
		signed_bytes[att->len - 1] ^= 0xff; /* a signature over other bytes */
	if (ecdsa_sign(d->attest_key, signed_bytes, att->len, &resp->u.csr.signature, err) < 0)
		goto out;
	if (version >= JIG_VERSION_1_2) {
		/* only the two signatures travel */
		resp->u.csr.csr.len = 0;
		resp->u.csr.attestation.len = 0;
	}
	ret = 0;
out:
	EVP_PKEY_free(other);
	bytes_clear(&other_pub);
	bytes_clear(&csr);
	return ret;
}

static int
install_cert(se *d, uint8_t slot, const jig_blob *cert, char *msg, st_err *err)
{
	se_slot *s = &d->slot[slot];
	const unsigned char *p = cert->data;
	X509 *x = NULL;
	int ret;

	if (!s->key)
		return fail(msg, JIG_E_SLOT_EMPTY, "no key in slot %u: KEYGEN first", slot);
	if (!cert->len)
		return fail(msg, JIG_E_BAD_REQUEST, "no certificate");
	x = d2i_X509(NULL, &p, (long)cert->len);
	if (!x || p != cert->data + cert->len)
		ret = fail(msg, JIG_E_BAD_REQUEST, "not one DER X.509 certificate");
	else if (EVP_PKEY_eq(X509_get0_pubkey(x), s->key) != 1)
		ret = fail(msg, JIG_E_BAD_REQUEST, "certificate is not for the key in slot %u", slot);
	else
		ret = bytes_copy(&s->cert, cert->data, cert->len, err);
	ERR_clear_error();
	X509_free(x);
	return ret;
}

/* INSTALL_CERT 1.2: the certificate rebuilt from a template this
 * connection sent and the slot's public key (PROTOCOL.md section 4). */
static int
install_delta(se_env *env, se *d, const jig_msg *req, char *msg, st_err *err)
{
	const se_slot *s = &d->slot[req->u.install_req.slot];
	uint8_t src[2 * JIG_BLOB_MAX + JIG_STR_MAX];
	size_t ns = strlen(d->serial);
	char hex[2 * JIG_SHA256_LEN + 1];
	jig_blob cert;
	unsigned k;
	st_err e;

	for (k = 0; k < 2; k++)
		if (env->tmpl[k].p && !memcmp(env->tmpl_sha256[k], req->u.install_req.template_sha256, JIG_SHA256_LEN))
			break;
	if (k == 2 || (d->faults & JIGSIM_F_FORGETS_TEMPLATE)) {
		st_hex(req->u.install_req.template_sha256, JIG_SHA256_LEN, hex);
		return fail(msg, JIG_E_NO_TEMPLATE, "no template %.16s... on this connection (CERT_TEMPLATE first)", hex);
	}
	if (!s->key)
		return fail(msg, JIG_E_SLOT_EMPTY, "no key in slot %u: KEYGEN first", req->u.install_req.slot);
	memcpy(src, env->tmpl[k].p, env->tmpl[k].len);
	memcpy(src + env->tmpl[k].len, s->pub.p, s->pub.len);
	memcpy(src + env->tmpl[k].len + s->pub.len, d->serial, ns);
	if (jig_delta_apply(src, env->tmpl[k].len + s->pub.len + ns, req->u.install_req.delta.data,
	        req->u.install_req.delta.len, cert.data, sizeof(cert.data), &cert.len, &e) < 0)
		return fail(msg, JIG_E_BAD_REQUEST, "%s", e.msg);
	return install_cert(d, req->u.install_req.slot, &cert, msg, err);
}

static int
read_cert(se *d, uint8_t slot, uint8_t form, jig_msg *resp, st_err *err)
{
	se_slot *s = &d->slot[slot];

	if (blob_set(&resp->u.cert, s->cert.p, s->cert.len, err) < 0)
		return -1;
	if ((d->faults & JIGSIM_F_READBACK_MISMATCH) && resp->u.cert.len > 0)
		resp->u.cert.data[resp->u.cert.len - 1] ^= 0x01; /* the stored bytes rotted */
	if (form == JIG_CERT_SHA256 && resp->u.cert.len > 0) {
		/* 1.1: the SHA-256 of what the SE holds, hashed on the jig */
		uint8_t h[JIG_SHA256_LEN];

		st_sha256(resp->u.cert.data, resp->u.cert.len, h);
		memcpy(resp->u.cert.data, h, sizeof(h));
		resp->u.cert.len = sizeof(h);
	}
	return 0;
}

/* LOCK.  1.1: the SE signs the lock receipt (PROTOCOL.md section 5) with its attestation key over the
 * station's nonce once it is provisioned.  A provisioned SE is not locked
 * again, it signs a receipt again (a station resuming after a crash). */
static int
lock(se_env *env, se *d, const jig_msg *req, jig_msg *resp, char *msg, st_err *err)
{
	uint8_t bytes[JIG_LOCK_RECEIPT_MAX];
	jig_lock_receipt r;
	size_t len;

	(void)env;
	if (req->version < JIG_VERSION_1_1) {
		d->lifecycle = JIG_LC_PROVISIONED;
		resp->u.lock.lifecycle = d->lifecycle;
		return 0;
	}
	(void)msg;
	d->lifecycle = JIG_LC_PROVISIONED;
	memset(&r, 0, sizeof(r));
	memcpy(r.nonce, req->u.lock_req.nonce, JIG_NONCE_LEN);
	snprintf(r.serial, sizeof(r.serial), "%s", d->serial);
	r.lifecycle = d->lifecycle;
	r.slot = req->u.lock_req.slot;
	st_sha256(d->slot[r.slot].cert.p ? d->slot[r.slot].cert.p : (const uint8_t *)"", d->slot[r.slot].cert.len,
	    r.cert_sha256);
	if (jig_lock_receipt_encode(&r, bytes, sizeof(bytes), &len, err) < 0 ||
	    ecdsa_sign(d->attest_key, bytes, len, &resp->u.lock.signature, err) < 0)
		return -1;
	resp->u.lock.lifecycle = d->lifecycle;
	return 0;
}

static int
rework_challenge(se *d, uint8_t slot, const uint8_t challenge[JIG_NONCE_LEN], jig_msg *resp, char *msg,
    st_err *err)
{
	se_slot *s = &d->slot[slot];
	uint8_t m[128];
	size_t len;

	if (!s->key)
		return fail(msg, JIG_E_SLOT_EMPTY, "no key in slot %u", slot);
	if (jig_challenge_message(JIG_TAG_REWORK, d->serial, challenge, m, sizeof(m), &len, err) < 0)
		return -1;
	if (d->faults & JIGSIM_F_REWORK_WRONG_KEY) {
		/* A device that cannot prove its identity: someone else's key. */
		EVP_PKEY *other = EVP_EC_gen("P-256");
		int rc = other ? ecdsa_sign(other, m, len, &resp->u.signature, err) : -1;

		EVP_PKEY_free(other);
		if (rc < 0)
			return st_err_openssl(err, ST_E_CRYPTO, "rework-wrong-key");
	} else if (ecdsa_sign(s->key, m, len, &resp->u.signature, err) < 0) {
		return -1;
	}
	s->rework_ok = 1;
	return 0;
}

static int
retire(se *d, uint8_t slot, char *msg, st_err *err)
{
	se_slot *s = &d->slot[slot];
	se_retired *r;

	if (!s->key)
		return fail(msg, JIG_E_SLOT_EMPTY, "no key in slot %u", slot);
	if (!s->rework_ok)
		return fail(msg, JIG_E_NOT_AUTHENTICATED,
		    "RETIRE needs a REWORK_CHALLENGE answered with slot %u's key in this power cycle", slot);
	if (!(r = realloc(d->retired, (d->nretired + 1) * sizeof(*r))))
		return st_err_set(err, ST_E_NOMEM, "out of memory");
	d->retired = r;
	r = &d->retired[d->nretired++];
	/* The public half and certificate move to the retired record; the
	 * private key is destroyed. */
	r->slot = slot;
	r->pub = s->pub;
	r->cert = s->cert;
	s->pub = (se_bytes){ 0 };
	s->cert = (se_bytes){ 0 };
	slot_clear(s);
	d->lifecycle = JIG_LC_REWORK;
	return 0;
}

/* PROTOCOL.md section 4, "Which commands need what". */
enum { LC_ANY, LC_UNLOCKED, LC_PROVISIONED };
static const struct {
	uint8_t auth, lifecycle;
} needs[JIG_CMD_LAST + 1] = {
	[JIG_CMD_SE_INFO] = { 0, LC_ANY },
	[JIG_CMD_AUTH_CHALLENGE] = { 0, LC_ANY },
	[JIG_CMD_AUTH_RESPONSE] = { 0, LC_ANY },
	[JIG_CMD_READ_CERT] = { 0, LC_ANY },
	[JIG_CMD_KEYGEN] = { 1, LC_UNLOCKED },
	[JIG_CMD_GET_CSR] = { 1, LC_UNLOCKED },
	[JIG_CMD_INSTALL_CERT] = { 1, LC_UNLOCKED },
	[JIG_CMD_LOCK] = { 1, LC_UNLOCKED },
	[JIG_CMD_REWORK_CHALLENGE] = { 1, LC_PROVISIONED },
	[JIG_CMD_RETIRE] = { 1, LC_PROVISIONED },
	[JIG_CMD_VENDOR_CHAIN] = { 0, LC_ANY },
};

static int
slot_of(const jig_msg *req, int *slot)
{
	switch (req->type) {
	case JIG_CMD_KEYGEN: *slot = req->u.keygen_req.slot; break;
	case JIG_CMD_GET_CSR: *slot = req->u.csr_req.slot; break;
	case JIG_CMD_INSTALL_CERT: *slot = req->u.install_req.slot; break;
	case JIG_CMD_READ_CERT:
	case JIG_CMD_RETIRE: *slot = req->u.slot_req.slot; break;
	case JIG_CMD_LOCK:
		if (req->version < JIG_VERSION_1_1)
			return 0;
		*slot = req->u.lock_req.slot;
		break;
	case JIG_CMD_REWORK_CHALLENGE: *slot = req->u.rework_req.slot; break;
	default: return 0;
	}
	return 1;
}

int
se_command(se_env *env, se *d, const jig_msg *req, jig_msg *resp, char msg[JIG_ERRMSG_MAX + 1])
{
	uint8_t cmd = req->type;
	st_err e;
	int slot = 0, rc = 0;

	st_err_clear(&e);
	if (cmd < JIG_CMD_SE_INFO || cmd > JIG_CMD_VENDOR_CHAIN)
		return fail(msg, JIG_E_UNKNOWN_COMMAND, "not an SE command");
	if (needs[cmd].auth && !d->authenticated)
		return fail(msg, JIG_E_NOT_AUTHENTICATED, "tool authentication required first (AUTH_RESPONSE)");
	if (needs[cmd].lifecycle == LC_UNLOCKED && d->lifecycle == JIG_LC_PROVISIONED &&
	    !(cmd == JIG_CMD_LOCK && req->version >= JIG_VERSION_1_1))
		return fail(msg, JIG_E_LOCKED, "SE %s is provisioned (locked)", d->serial);
	if (needs[cmd].lifecycle == LC_PROVISIONED && d->lifecycle != JIG_LC_PROVISIONED)
		return fail(msg, JIG_E_BAD_STATE, "SE %s is %s, not provisioned", d->serial,
		    jig_lifecycle_name(d->lifecycle));
	if (slot_of(req, &slot) && slot > JIG_MAX_SLOT)
		return fail(msg, JIG_E_BAD_SLOT, "slot %d, the SE has slots 0..%d", slot, JIG_MAX_SLOT);
	memset(resp, 0, sizeof(*resp));
	resp->type = cmd | JIG_RESPONSE;
	switch (cmd) {
	case JIG_CMD_SE_INFO: rc = se_info(env, d, req->version, resp, &e); break;
	case JIG_CMD_VENDOR_CHAIN: rc = vendor_chain(env, d, req->version, resp, &e); break;
	case JIG_CMD_AUTH_CHALLENGE: rc = new_challenge(d, resp->u.challenge.challenge, &e); break;
	case JIG_CMD_AUTH_RESPONSE: rc = auth_response(env, d, &req->u.signature, msg, &e); break;
	case JIG_CMD_KEYGEN:
		rc = keygen(d, (uint8_t)slot, req->u.keygen_req.algorithm, req->u.keygen_req.flags, resp, &e);
		break;
	case JIG_CMD_GET_CSR:
		rc = get_csr(env, d, req->version, (uint8_t)slot, req->u.csr_req.nonce, resp, msg, &e);
		break;
	case JIG_CMD_INSTALL_CERT:
		rc = req->version >= JIG_VERSION_1_2 ? install_delta(env, d, req, msg, &e) :
		                                       install_cert(d, (uint8_t)slot, &req->u.install_req.cert, msg, &e);
		break;
	case JIG_CMD_READ_CERT:
		rc = read_cert(d, (uint8_t)slot, req->version >= JIG_VERSION_1_1 ? req->u.slot_req.form : JIG_CERT_DER, resp,
		    &e);
		break;
	case JIG_CMD_LOCK: rc = lock(env, d, req, resp, msg, &e); break;
	case JIG_CMD_REWORK_CHALLENGE:
		rc = rework_challenge(d, (uint8_t)slot, req->u.rework_req.challenge, resp, msg, &e);
		break;
	case JIG_CMD_RETIRE: rc = retire(d, (uint8_t)slot, msg, &e); break;
	}
	if (rc < 0)
		return fail(msg, JIG_E_SE_FAILURE, "SE %s: %s", d->serial, e.msg);
	return rc;
}
