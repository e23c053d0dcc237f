#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "jsutil.h"

/* ---- PKI ------------------------------------------------------------------- */

static void add_ext(X509 *x, X509V3_CTX *v3, int nid, const char *value);

/* Stands in for the manufacturing intermediate (same name length). */
static X509 *
self_signed_ca(EVP_PKEY *key)
{
	X509 *x = X509_new();
	X509_NAME *n = X509_get_subject_name(x);
	X509V3_CTX v3;

	ck_assert_ptr_nonnull(x);
	ck_assert(X509_set_version(x, X509_VERSION_3));
	ck_assert(ASN1_INTEGER_set(X509_get_serialNumber(x), 1));
	ck_assert(X509_NAME_add_entry_by_txt(n, "O", MBSTRING_UTF8, (const unsigned char *)"Station Test", -1, -1, 0));
	ck_assert(X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_UTF8,
	    (const unsigned char *)"Station Test Manufacturing CA 1", -1, -1, 0));
	ck_assert(X509_set_issuer_name(x, n));
	ck_assert(X509_gmtime_adj(X509_getm_notBefore(x), -60));
	ck_assert(X509_gmtime_adj(X509_getm_notAfter(x), 86400));
	ck_assert(X509_set_pubkey(x, key));
	X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
	add_ext(x, &v3, NID_basic_constraints, "critical,CA:TRUE,pathlen:0");
	add_ext(x, &v3, NID_key_usage, "critical,keyCertSign,cRLSign");
	add_ext(x, &v3, NID_subject_key_identifier, "hash");
	ck_assert(X509_sign(x, key, EVP_sha256()));
	return x;
}

js_pki *
js_pki_new(void)
{
	js_pki *p = calloc(1, sizeof(*p));
	FILE *f;

	ck_assert_ptr_nonnull(p);
	p->dir = tu_make_pki();
	snprintf(p->vendor_ca_cert, sizeof(p->vendor_ca_cert), "%s/se-vendor-ca.pem", p->dir);
	snprintf(p->vendor_ca_key, sizeof(p->vendor_ca_key), "%s/se-vendor-ca.key", p->dir);
	snprintf(p->vendor_root, sizeof(p->vendor_root), "%s/se-vendor-root.pem", p->dir);
	snprintf(p->tool_pub, sizeof(p->tool_pub), "%s/test-tool-pub.pem", p->dir);
	ck_assert_ptr_nonnull(p->tool = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256"));
	ck_assert_ptr_nonnull(f = fopen(p->tool_pub, "w"));
	ck_assert(PEM_write_PUBKEY(f, p->tool));
	fclose(f);
	ck_assert_ptr_nonnull(p->ca_key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256"));
	p->ca_cert = self_signed_ca(p->ca_key);
	return p;
}

void
js_pki_free(js_pki *p)
{
	if (!p)
		return;
	tu_rmtree(p->dir);
	free(p->dir);
	EVP_PKEY_free(p->tool);
	EVP_PKEY_free(p->ca_key);
	X509_free(p->ca_cert);
	free(p);
}

js_pki *js_test_pki;

void
js_pki_setup(void)
{
	js_test_pki = js_pki_new();
}

void
js_pki_teardown(void)
{
	js_pki_free(js_test_pki);
	js_test_pki = NULL;
}

void
js_config(jigsim_config *c, const js_pki *p)
{
	jigsim_config_init(c);
	c->vendor_ca_cert = p->vendor_ca_cert;
	c->vendor_ca_key = p->vendor_ca_key;
	c->tool_pub = p->tool_pub;
}

/* ---- calling jigsim ---------------------------------------------------------- */

size_t
js_frame(uint8_t seq, const jig_msg *req, uint8_t *out)
{
	jig_frame f;
	size_t n, len;
	st_err e;

	f.version = req->version ? req->version : 1;
	f.type = req->type;
	f.seq = seq;
	ck_assert_msg(jig_msg_encode(req, f.payload, sizeof(f.payload), &n, &e) == 0, "%s", e.msg);
	f.len = (uint16_t)n;
	ck_assert_msg(jig_frame_encode(&f, out, JIG_MAX_FRAME, &len, &e) == 0, "%s", e.msg);
	return len;
}

int
js_unframe(const uint8_t *p, size_t len, jig_msg *resp)
{
	jig_frame f;
	size_t used;
	st_err e;

	if (jig_frame_decode(p, len, &f, &used, &e) != JIG_DECODE_OK || used != len)
		return -1;
	ck_assert_msg(jig_msg_decode_v(f.version, f.type, f.payload, f.len, resp, &e) == 0, "%s", e.msg);
	return 0;
}

int
js_direct_call(void *ctx, const jig_msg *req, jig_msg *resp, st_err *err)
{
	static uint8_t in[JIG_MAX_FRAME], out[JIG_MAX_FRAME];
	static jig_msg v;
	js_direct *d = ctx;
	size_t n, got = 0;

	v = *req;
	if (!v.version)
		v.version = req->type == JIG_CMD_HELLO ? 1 : d->version ? d->version : 1;
	n = js_frame(++d->seq, &v, in);
	d->action = jigsim_handle(d->s, in, n, out, sizeof(out), &got, err);
	ck_assert_int_ge(d->action, 0);
	if (got == 0 || js_unframe(out, got, resp) < 0)
		return st_err_set(err, ST_E_TIMEOUT, "no valid answer (action %d)", d->action);
	if (req->type == JIG_CMD_HELLO && resp->type == (JIG_CMD_HELLO | JIG_RESPONSE))
		d->version = resp->u.hello.version;
	return resp->type == JIG_T_ERROR ? resp->u.error.code : 0;
}

int
js_client_call(void *ctx, const jig_msg *req, jig_msg *resp, st_err *err)
{
	if (jig_client_call(ctx, req, resp, err) == 0)
		return 0;
	if (err->code != ST_E_REMOTE)
		return -1;
	resp->type = JIG_T_ERROR;
	resp->u.error.code = (uint16_t)err->remote;
	return err->remote;
}

void
js_req(jig_msg *m, uint8_t cmd)
{
	memset(m, 0, sizeof(*m));
	m->type = cmd;
}

/* ---- signatures and certificates --------------------------------------------- */

void
js_sign(EVP_PKEY *key, const char *tag, const char *serial, const uint8_t challenge[JIG_NONCE_LEN], jig_blob *sig)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	uint8_t m[128];
	size_t len;

	ck_assert_int_eq(jig_challenge_message(tag, serial, challenge, m, sizeof(m), &len, NULL), 0);
	sig->len = sizeof(sig->data);
	ck_assert(EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, key) == 1);
	ck_assert(EVP_DigestSign(ctx, sig->data, &sig->len, m, len) == 1);
	EVP_MD_CTX_free(ctx);
}

int
js_verify(EVP_PKEY *pub, const char *tag, const char *serial, const uint8_t challenge[JIG_NONCE_LEN],
    const jig_blob *sig)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	uint8_t m[128];
	size_t len;
	int ok;

	ck_assert_int_eq(jig_challenge_message(tag, serial, challenge, m, sizeof(m), &len, NULL), 0);
	ok = EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, pub) == 1 &&
	    EVP_DigestVerify(ctx, sig->data, sig->len, m, len) == 1;
	EVP_MD_CTX_free(ctx);
	ERR_clear_error();
	return ok;
}

EVP_PKEY *
js_pubkey(const jig_blob *spki)
{
	const unsigned char *q = spki->data;

	return d2i_PUBKEY(NULL, &q, (long)spki->len);
}

static void
add_ext(X509 *x, X509V3_CTX *v3, int nid, const char *value)
{
	X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, v3, nid, value);

	ck_assert_ptr_nonnull(ext);
	ck_assert(X509_add_ext(x, ext, -1));
	X509_EXTENSION_free(ext);
}

/* A leaf shaped like the station's (DESIGN.md section 7, IDevID-like), so
 * sizes on the wire are realistic: subject O/CN/serialNumber, SAN, KU, BC,
 * SKI/AKI, 127-bit serial, notAfter 9999. */
void
js_issue(const js_pki *p, const jig_blob *csr, jig_blob *cert)
{
	const unsigned char *q = csr->data;
	X509_REQ *req = d2i_X509_REQ(NULL, &q, (long)csr->len);
	X509_NAME *n;
	X509 *x = X509_new();
	BIGNUM *bn = BN_new();
	unsigned char *out = cert->data;
	char serial[JIG_STR_MAX + 1], san[128];
	X509V3_CTX v3;
	int i;

	ck_assert_ptr_nonnull(req);
	n = X509_REQ_get_subject_name(req);
	ck_assert_int_ge(i = X509_NAME_get_index_by_NID(n, NID_commonName, -1), 0);
	ck_assert_int_gt(X509_NAME_get_text_by_NID(n, NID_commonName, serial, sizeof(serial)), 0);
	ck_assert(X509_set_version(x, X509_VERSION_3));
	ck_assert(BN_rand(bn, 127, BN_RAND_TOP_ONE, BN_RAND_BOTTOM_ANY));
	ck_assert_ptr_nonnull(BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)));
	ck_assert(X509_set_issuer_name(x, X509_get_subject_name(p->ca_cert)));
	n = X509_get_subject_name(x);
	ck_assert(X509_NAME_add_entry_by_txt(n, "O", MBSTRING_UTF8, (const unsigned char *)"Station Test", -1, -1, 0));
	ck_assert(X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_UTF8, (const unsigned char *)"Demo Sensor", -1, -1, 0));
	ck_assert(X509_NAME_add_entry_by_txt(n, "serialNumber", MBSTRING_UTF8, (const unsigned char *)serial, -1, -1, 0));
	ck_assert(X509_gmtime_adj(X509_getm_notBefore(x), -60));
	ck_assert(ASN1_TIME_set_string_X509(X509_getm_notAfter(x), "99991231235959Z"));
	ck_assert(X509_set_pubkey(x, X509_REQ_get0_pubkey(req)));
	X509V3_set_ctx(&v3, p->ca_cert, x, NULL, NULL, 0);
	snprintf(san, sizeof(san), "URI:urn:dev:serial:%s", serial);
	add_ext(x, &v3, NID_basic_constraints, "critical,CA:FALSE");
	add_ext(x, &v3, NID_key_usage, "critical,digitalSignature");
	add_ext(x, &v3, NID_subject_key_identifier, "hash");
	add_ext(x, &v3, NID_authority_key_identifier, "keyid:always");
	add_ext(x, &v3, NID_subject_alt_name, san);
	ck_assert(X509_sign(x, p->ca_key, EVP_sha256()));
	ck_assert_int_le(i2d_X509(x, NULL), JIG_BLOB_MAX);
	ck_assert_int_gt(i = i2d_X509(x, &out), 0);
	cert->len = (size_t)i;
	BN_free(bn);
	X509_free(x);
	X509_REQ_free(req);
}

/* ---- the station's VERIFY, as PROTOCOL.md section 6 lists it ---------------- */

const char *
js_verdict_name(int v)
{
	static const char *const names[] = { "ok", "attestation does not parse", "nonce", "device facts", "CSR",
		"public key", "attestation signature", "chain to the vendor root", "subject serialNumber" };

	return v >= 0 && v <= JS_BAD_SUBJECT ? names[v] : "?";
}

static int
chains_to(const char *root_pem, X509 *leaf, const jig_se_info *info)
{
	X509_STORE *store = X509_STORE_new();
	X509_STORE_CTX *ctx = X509_STORE_CTX_new();
	STACK_OF(X509) *untrusted = sk_X509_new_null();
	size_t i;
	int ok;

	ck_assert(X509_STORE_load_file(store, root_pem));
	for (i = 1; i < info->ncerts; i++) {
		const unsigned char *q = info->certs[i].data;
		X509 *x = d2i_X509(NULL, &q, (long)info->certs[i].len);

		ck_assert_ptr_nonnull(x);
		sk_X509_push(untrusted, x);
	}
	ck_assert(X509_STORE_CTX_init(ctx, store, leaf, untrusted));
	ok = X509_verify_cert(ctx) == 1;
	X509_STORE_CTX_free(ctx);
	X509_STORE_free(store);
	sk_X509_pop_free(untrusted, X509_free);
	ERR_clear_error();
	return ok;
}

static int
subject_serial_is(X509 *x, const char *serial)
{
	X509_NAME *n = X509_get_subject_name(x);
	int i = X509_NAME_get_index_by_NID(n, NID_serialNumber, -1);
	ASN1_STRING *s;

	if (i < 0)
		return 0;
	s = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(n, i));
	return (size_t)ASN1_STRING_length(s) == strlen(serial) &&
	    memcmp(ASN1_STRING_get0_data(s), serial, strlen(serial)) == 0;
}

int
js_check_attestation(const js_pki *p, const jig_se_info *info, uint8_t slot, const uint8_t nonce[JIG_NONCE_LEN],
    const jig_blob *pubkey, const jig_msg *csr_resp)
{
	const jig_blob *att = &csr_resp->u.csr.attestation, *csr = &csr_resp->u.csr.csr;
	const unsigned char *q;
	X509_REQ *req = NULL;
	X509 *cert = NULL;
	EVP_MD_CTX *md = NULL;
	unsigned char *spki = NULL;
	uint8_t h[32];
	jig_attest a;
	int v, n;

	if (jig_attest_decode(att->data, att->len, &a, NULL) < 0)
		return JS_BAD_PARSE;
	if (memcmp(a.nonce, nonce, JIG_NONCE_LEN) != 0)
		return JS_BAD_NONCE;
	if (strcmp(a.serial, info->serial) != 0 || strcmp(a.model, info->model) != 0 ||
	    a.firmware != info->firmware || a.lifecycle != info->lifecycle || a.slot != slot)
		return JS_BAD_FACTS;
	st_sha256(csr->data, csr->len, h);
	q = csr->data;
	if (memcmp(h, a.csr_sha256, 32) != 0 || !(req = d2i_X509_REQ(NULL, &q, (long)csr->len)) ||
	    q != csr->data + csr->len || X509_REQ_verify(req, X509_REQ_get0_pubkey(req)) != 1) {
		v = JS_BAD_CSR;
		goto out;
	}
	st_sha256(pubkey->data, pubkey->len, h);
	n = i2d_PUBKEY(X509_REQ_get0_pubkey(req), &spki);
	if (memcmp(h, a.pubkey_sha256, 32) != 0 || n != (int)pubkey->len || memcmp(spki, pubkey->data, pubkey->len) != 0) {
		v = JS_BAD_KEY;
		goto out;
	}
	q = info->certs[0].data;
	ck_assert_ptr_nonnull(cert = d2i_X509(NULL, &q, (long)info->certs[0].len));
	md = EVP_MD_CTX_new();
	if (EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, X509_get0_pubkey(cert)) != 1 ||
	    EVP_DigestVerify(md, csr_resp->u.csr.signature.data, csr_resp->u.csr.signature.len, att->data, att->len) != 1) {
		v = JS_BAD_SIG;
		goto out;
	}
	if (!chains_to(p->vendor_root, cert, info)) {
		v = JS_BAD_CHAIN;
		goto out;
	}
	v = subject_serial_is(cert, info->serial) ? JS_OK : JS_BAD_SUBJECT;
out:
	ERR_clear_error();
	OPENSSL_free(spki);
	EVP_MD_CTX_free(md);
	X509_free(cert);
	X509_REQ_free(req);
	return v;
}

/* ---- a whole device ------------------------------------------------------------ */

static int
step(js_call_fn call, void *ctx, js_device *d, const jig_msg *req, jig_msg *resp)
{
	int rc = call(ctx, req, resp, &d->err);

	if (rc != 0) {
		d->failed_at = req->type;
		d->code = rc;
	}
	return rc;
}

/* 1.2: the CSR and the attestation built from what the station knows;
 * only their signatures came (PROTOCOL.md section 6). */
static void
csr_rebuild(js_device *d)
{
	uint8_t info[JIG_CSR_MAX];
	jig_blob *csr = &d->csr.u.csr.csr, *att = &d->csr.u.csr.attestation;
	size_t ilen;
	jig_attest a;

	ck_assert_int_eq(jig_csr_info(d->info.serial, d->pubkey.data, d->pubkey.len, info, sizeof(info), &ilen, NULL), 0);
	ck_assert_int_eq(jig_csr_assemble(info, ilen, d->csr.u.csr.csr_signature.data, d->csr.u.csr.csr_signature.len,
	    csr->data, sizeof(csr->data), &csr->len, NULL), 0);
	memset(&a, 0, sizeof(a));
	memcpy(a.nonce, d->nonce, JIG_NONCE_LEN);
	snprintf(a.serial, sizeof(a.serial), "%s", d->info.serial);
	snprintf(a.model, sizeof(a.model), "%s", d->info.model);
	a.firmware = d->info.firmware;
	a.lifecycle = d->info.lifecycle;
	st_sha256(csr->data, csr->len, a.csr_sha256);
	st_sha256(d->pubkey.data, d->pubkey.len, a.pubkey_sha256);
	ck_assert_int_eq(jig_attest_encode(&a, att->data, sizeof(att->data), &att->len, NULL), 0);
}

/* 1.2: INSTALL_CERT as a delta against the first certificate installed in
 * this process (sent with CERT_TEMPLATE when the jig answers NO_TEMPLATE). */
static int
install_delta(js_call_fn call, void *ctx, js_device *d, jig_msg *req, jig_msg *resp)
{
	static jig_blob tmpl;
	uint8_t src[2 * JIG_BLOB_MAX + JIG_STR_MAX];
	size_t ns = strlen(d->info.serial);
	int tries, rc = 0;

	if (!tmpl.len)
		tmpl = d->cert;
	memcpy(src, tmpl.data, tmpl.len);
	memcpy(src + tmpl.len, d->pubkey.data, d->pubkey.len);
	memcpy(src + tmpl.len + d->pubkey.len, d->info.serial, ns);
	for (tries = 0; tries < 2; tries++) {
		js_req(req, JIG_CMD_INSTALL_CERT);
		st_sha256(tmpl.data, tmpl.len, req->u.install_req.template_sha256);
		ck_assert_int_eq(jig_delta_make(src, tmpl.len + d->pubkey.len + ns, d->cert.data, d->cert.len,
		    req->u.install_req.delta.data, sizeof(req->u.install_req.delta.data), &req->u.install_req.delta.len, NULL), 0);
		if ((rc = call(ctx, req, resp, &d->err)) != JIG_E_NO_TEMPLATE || tries)
			break;
		js_req(req, JIG_CMD_CERT_TEMPLATE);
		req->u.cert = tmpl;
		d->template_sent = 1;
		if (step(call, ctx, d, req, resp))
			return -1;
	}
	if (rc != 0) {
		d->failed_at = JIG_CMD_INSTALL_CERT;
		d->code = rc;
	}
	return rc;
}

void
js_provision(js_call_fn call, void *ctx, const js_pki *p, js_device *d)
{
	jig_msg *req = calloc(1, sizeof(*req)), *resp = calloc(1, sizeof(*resp));

	ck_assert_ptr_nonnull(req);
	ck_assert_ptr_nonnull(resp);
	memset(d, 0, sizeof(*d));
	js_req(req, JIG_CMD_SE_INFO);
	if (step(call, ctx, d, req, resp))
		goto release;
	d->info = resp->u.se_info;
	if (d->info.chain_by_digest) {
		/* the chain once per process, by digest after: as a station does */
		static uint8_t cached_sha[JIG_SHA256_LEN];
		static jig_blob cached, cached_tmpl;
		static int have, have_tmpl;
		uint8_t h[JIG_SHA256_LEN];

		if (!have || memcmp(cached_sha, d->info.chain_sha256, sizeof(h)) != 0) {
			js_req(req, JIG_CMD_VENDOR_CHAIN);
			if (step(call, ctx, d, req, resp))
				goto release;
			d->chain_fetched = 1;
			have_tmpl = resp->version >= JIG_VERSION_1_2;
			jig_chain_digest(resp->u.chain.certs, resp->u.chain.n, have_tmpl ? &resp->u.chain.tmpl : NULL, h);
			ck_assert_int_eq(memcmp(h, d->info.chain_sha256, sizeof(h)), 0);
			ck_assert_uint_eq(resp->u.chain.n, 1);
			cached = resp->u.chain.certs[0];
			cached_tmpl = resp->u.chain.tmpl;
			memcpy(cached_sha, h, sizeof(h));
			have = 1;
		}
		d->info.certs[1] = cached;
		d->info.ncerts = 2;
		d->info.chain_tmpl = cached_tmpl;
		d->info.chain_has_tmpl = have_tmpl;
		if (d->info.cert_by_delta) {
			st_err e;

			ck_assert_msg(jig_attest_cert_rebuild(&d->info, &e) == 0, "%s", e.msg);
		}
	}

	js_req(req, JIG_CMD_AUTH_RESPONSE);
	js_sign(p->tool, JIG_TAG_TOOL_AUTH, d->info.serial, d->info.challenge, &req->u.signature);
	if (step(call, ctx, d, req, resp))
		goto release;

	js_req(req, JIG_CMD_KEYGEN);
	req->u.keygen_req.algorithm = JIG_ALG_P256;
	if (step(call, ctx, d, req, resp))
		goto release;
	d->pubkey = resp->u.pubkey;

	js_req(req, JIG_CMD_GET_CSR);
	ck_assert_int_eq(RAND_bytes(d->nonce, JIG_NONCE_LEN), 1);
	memcpy(req->u.csr_req.nonce, d->nonce, JIG_NONCE_LEN);
	if (step(call, ctx, d, req, &d->csr))
		goto release;
	if (d->csr.version >= JIG_VERSION_1_2)
		csr_rebuild(d);
	if ((d->verdict = js_check_attestation(p, &d->info, 0, d->nonce, &d->pubkey, &d->csr)) != JS_OK) {
		d->failed_at = JIG_CMD_GET_CSR; /* VERIFY is a hard gate: nothing gets installed */
		goto release;
	}

	js_req(req, JIG_CMD_INSTALL_CERT);
	js_issue(p, &d->csr.u.csr.csr, &d->cert);
	req->u.install_req.cert = d->cert;
	if (d->csr.version >= JIG_VERSION_1_2 ? install_delta(call, ctx, d, req, resp) : step(call, ctx, d, req, resp))
		goto release;

	js_req(req, JIG_CMD_READ_CERT);
	req->u.slot_req.form = d->info.chain_by_digest ? JIG_CERT_SHA256 : JIG_CERT_DER;
	if (step(call, ctx, d, req, resp))
		goto release;
	d->readback = resp->u.cert;
	if (d->info.chain_by_digest) {
		uint8_t h[JIG_SHA256_LEN];

		st_sha256(d->cert.data, d->cert.len, h);
		if (d->readback.len != sizeof(h) || memcmp(d->readback.data, h, sizeof(h)) != 0) {
			d->failed_at = JIG_CMD_READ_CERT;
			goto release;
		}
	} else if (d->readback.len != d->cert.len || memcmp(d->readback.data, d->cert.data, d->cert.len) != 0) {
		d->failed_at = JIG_CMD_READ_CERT;
		goto release;
	}

	js_req(req, JIG_CMD_LOCK);
	if (d->info.chain_by_digest)
		ck_assert_int_eq(RAND_bytes(req->u.lock_req.nonce, JIG_NONCE_LEN), 1);
	if (step(call, ctx, d, req, resp))
		goto release;
	ck_assert_uint_eq(resp->u.lock.lifecycle, JIG_LC_PROVISIONED);
	if (d->info.chain_by_digest) {
		/* the receipt: the SE's attestation key over what the station knows */
		jig_lock_receipt r;
		uint8_t bytes[JIG_LOCK_RECEIPT_MAX];
		const unsigned char *q = d->info.certs[0].data;
		X509 *x = d2i_X509(NULL, &q, (long)d->info.certs[0].len);
		EVP_MD_CTX *md = EVP_MD_CTX_new();
		size_t len = 0;

		memset(&r, 0, sizeof(r));
		memcpy(r.nonce, req->u.lock_req.nonce, JIG_NONCE_LEN);
		snprintf(r.serial, sizeof(r.serial), "%s", d->info.serial);
		r.lifecycle = JIG_LC_PROVISIONED;
		r.slot = 0;
		st_sha256(d->cert.data, d->cert.len, r.cert_sha256);
		ck_assert(x && md && jig_lock_receipt_encode(&r, bytes, sizeof(bytes), &len, NULL) == 0);
		if (EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, X509_get0_pubkey(x)) != 1 ||
		    EVP_DigestVerify(md, resp->u.lock.signature.data, resp->u.lock.signature.len, bytes, len) != 1)
			d->failed_at = JIG_CMD_LOCK;
		EVP_MD_CTX_free(md);
		X509_free(x);
	}
release:
	/* PASS or FAIL, the DUT goes; a dropped connection leaves it. */
	if (d->code >= 0) {
		js_req(req, JIG_CMD_DUT_POWER);
		req->u.power_req.action = JIG_POWER_RELEASE;
		ck_assert_int_eq(call(ctx, req, resp, &d->err), 0);
	}
	free(req);
	free(resp);
}
