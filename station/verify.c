#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "hsm.h"
#include "verify.h"

int
sv_verify_sig(EVP_PKEY *pkey, const uint8_t *msg, size_t len, const uint8_t *sig, size_t sig_len, st_err *err)
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	int ok, ret = -1;

	if (!md)
		return st_err_openssl(err, ST_E_NOMEM, "signature check");
	if (EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, pkey) != 1) {
		st_err_openssl(err, ST_E_VERIFY, "signature check: unusable public key");
		goto out;
	}
	ok = EVP_DigestVerify(md, sig, sig_len, msg, len);
	if (ok != 1) {
		st_err_openssl(err, ST_E_VERIFY, "signature does not verify");
		goto out;
	}
	ret = 0;
out:
	EVP_MD_CTX_free(md);
	return ret;
}

static X509 *
parse_cert(const jig_blob *b)
{
	const unsigned char *p = b->data;
	X509 *x = d2i_X509(NULL, &p, (long)b->len);

	if (x && p != b->data + b->len) {
		X509_free(x);
		return NULL;
	}
	return x;
}

/* Bytes from a jig for a message: printable ASCII as it is, anything else
 * (and '\\', '"') as \xNN, at most max input bytes. */
static void
escape(const unsigned char *p, size_t n, size_t max, char *out, size_t cap)
{
	static const char hex[] = "0123456789abcdef";
	size_t i, o = 0;

	for (i = 0; i < n && i < max && o + 5 < cap; i++) {
		if (p[i] >= 0x20 && p[i] <= 0x7e && p[i] != '\\' && p[i] != '"') {
			out[o++] = (char)p[i];
		} else {
			out[o++] = '\\';
			out[o++] = 'x';
			out[o++] = hex[p[i] >> 4];
			out[o++] = hex[p[i] & 15];
		}
	}
	out[o] = '\0';
}

/* The subject serialNumber attribute, exactly one, equal to the SE serial. */
static int
check_subject_serial(X509 *cert, const char *serial, st_err *err)
{
	X509_NAME *name = X509_get_subject_name(cert);
	int idx = X509_NAME_get_index_by_NID(name, NID_serialNumber, -1);
	ASN1_STRING *v;
	char shown[4 * 64 + 1];

	if (idx < 0)
		return st_err_set(err, ST_E_VERIFY, "attestation certificate names no serialNumber");
	if (X509_NAME_get_index_by_NID(name, NID_serialNumber, idx) >= 0)
		return st_err_set(err, ST_E_VERIFY, "attestation certificate names two serialNumbers");
	v = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, idx));
	if ((size_t)ASN1_STRING_length(v) != strlen(serial) ||
	    memcmp(ASN1_STRING_get0_data(v), serial, strlen(serial)) != 0) {
		escape(ASN1_STRING_get0_data(v), (size_t)ASN1_STRING_length(v), 64, shown, sizeof(shown));
		return st_err_set(err, ST_E_VERIFY, "attestation certificate is for serial \"%s\", the SE reports \"%s\"",
		    shown, serial);
	}
	return 0;
}

/* The attestation certificate names the model the SE claims, the way the
 * recipe says this vendor names models. */
static int
check_model(X509 *cert, const sv_model_rule *r, const char *model, st_err *err)
{
	char shown[4 * 64 + 1];
	int ret = -1;

	if (r->subject_nid) {
		X509_NAME *name = X509_get_subject_name(cert);
		int idx = X509_NAME_get_index_by_NID(name, r->subject_nid, -1), len;
		unsigned char *v = NULL;
		size_t pl = strlen(r->prefix), ml = strlen(model), sl = strlen(r->suffix);

		if (idx < 0)
			return st_err_set(err, ST_E_VERIFY, "attestation certificate has no %s: it does not name the SE model "
			                                    "(se.attestation_model)", OBJ_nid2sn(r->subject_nid));
		if (X509_NAME_get_index_by_NID(name, r->subject_nid, idx) >= 0)
			return st_err_set(err, ST_E_VERIFY, "attestation certificate names two %s", OBJ_nid2sn(r->subject_nid));
		if ((len = ASN1_STRING_to_UTF8(&v, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, idx)))) < 0)
			return st_err_set(err, ST_E_VERIFY, "attestation certificate's %s does not decode",
			    OBJ_nid2sn(r->subject_nid));
		if ((size_t)len == pl + ml + sl && memcmp(v, r->prefix, pl) == 0 && memcmp(v + pl, model, ml) == 0 &&
		    memcmp(v + pl + ml, r->suffix, sl) == 0)
			ret = 0;
		else {
			escape(v, (size_t)len, 64, shown, sizeof(shown));
			st_err_set(err, ST_E_VERIFY, "attestation certificate is not for SE model \"%s\": its %s is \"%s\", "
			                             "expected \"%s%s%s\"", model, OBJ_nid2sn(r->subject_nid), shown, r->prefix,
			    model, r->suffix);
		}
		OPENSSL_free(v);
		return ret;
	}
	{
		int crit = -1, found = 0, other = -1, i;
		size_t k, mine = r->n_models;
		CERTIFICATEPOLICIES *pols = X509_get_ext_d2i(cert, NID_certificate_policies, &crit, NULL);

		for (k = 0; k < r->n_models; k++)
			if (strcmp(r->models[k], model) == 0)
				mine = k;
		if (!pols) {
			st_err_set(err, ST_E_VERIFY, "attestation certificate has %s certificatePolicies extension: it does not "
			                             "name the SE model (se.attestation_model)", crit == -2 ? "more than one" :
			                             "no readable");
			goto out_pol;
		}
		for (i = 0; i < sk_POLICYINFO_num(pols); i++) {
			char oid[128];

			if (OBJ_obj2txt(oid, sizeof(oid), sk_POLICYINFO_value(pols, i)->policyid, 1) <= 0)
				continue;
			for (k = 0; k < r->n_models; k++)
				if (strcmp(r->policies[k], oid) == 0) {
					if (k == mine)
						found = 1;
					else
						other = (int)k;
				}
		}
		if (mine == r->n_models)
			st_err_set(err, ST_E_VERIFY, "SE model \"%s\" has no policy OID in the recipe", model);
		else if (other >= 0)
			st_err_set(err, ST_E_VERIFY, "attestation certificate is for SE model \"%s\" (policy %s), the SE reports "
			                             "\"%s\"", r->models[other], r->policies[other], model);
		else if (!found)
			st_err_set(err, ST_E_VERIFY, "attestation certificate is not for SE model \"%s\": it lacks policy %s",
			    model, r->policies[mine]);
		else
			ret = 0;
out_pol:
		CERTIFICATEPOLICIES_free(pols);
		return ret;
	}
}

#define SV_KNOWN_MAX 32

struct sv_trust {
	pthread_mutex_t lock;
	sv_model_rule rule;
	X509_STORE *roots;   /* the recipe's vendor roots */
	X509_STORE *anchors; /* the roots and the intermediates in known[] */
	struct {
		uint8_t sha256[32];
		X509 *cert;
	} known[SV_KNOWN_MAX];
	size_t n;
};

sv_trust *
sv_trust_new(X509_STORE *roots, const sv_model_rule *rule)
{
	sv_trust *t = calloc(1, sizeof(*t));
	STACK_OF(X509_OBJECT) *objs;
	int i;

	if (!t || !rule || !(t->anchors = X509_STORE_new()))
		goto fail;
	t->rule = *rule;
	objs = X509_STORE_get0_objects(roots);
	for (i = 0; i < sk_X509_OBJECT_num(objs); i++) {
		X509 *x = X509_OBJECT_get0_X509(sk_X509_OBJECT_value(objs, i));

		if (x && !X509_STORE_add_cert(t->anchors, x))
			goto fail;
	}
	/* Anchors other than roots need a partial chain; roots stay roots. */
	X509_STORE_set_flags(t->anchors, X509_V_FLAG_PARTIAL_CHAIN);
	t->roots = roots;
	pthread_mutex_init(&t->lock, NULL);
	return t;
fail:
	if (t)
		X509_STORE_free(t->anchors);
	free(t);
	X509_STORE_free(roots);
	return NULL;
}

void
sv_trust_free(sv_trust *t)
{
	size_t i;

	if (!t)
		return;
	for (i = 0; i < t->n; i++)
		X509_free(t->known[i].cert);
	X509_STORE_free(t->anchors);
	X509_STORE_free(t->roots);
	pthread_mutex_destroy(&t->lock);
	free(t);
}

/* The intermediate with exactly these bytes, if it verified before (a new reference). */
static X509 *
known_get(sv_trust *t, const jig_blob *b)
{
	uint8_t h[32];
	X509 *x = NULL;
	size_t i;

	st_sha256(b->data, b->len, h);
	pthread_mutex_lock(&t->lock);
	for (i = 0; i < t->n && !x; i++)
		if (memcmp(t->known[i].sha256, h, 32) == 0 && X509_up_ref(t->known[i].cert))
			x = t->known[i].cert;
	pthread_mutex_unlock(&t->lock);
	return x;
}

/* Remember the intermediates of a chain that verified up to a root. */
static void
known_add(sv_trust *t, X509_STORE_CTX *ctx)
{
	STACK_OF(X509) *chain = X509_STORE_CTX_get0_chain(ctx);
	int i, n = sk_X509_num(chain);

	pthread_mutex_lock(&t->lock);
	for (i = 1; i < n - 1 && t->n < SV_KNOWN_MAX; i++) { /* not the leaf, not the root */
		X509 *x = sk_X509_value(chain, i);
		unsigned char *der = NULL;
		int len = i2d_X509(x, &der);
		size_t k;

		if (len > 0) {
			st_sha256(der, (size_t)len, t->known[t->n].sha256);
			for (k = 0; k < t->n; k++)
				if (memcmp(t->known[k].sha256, t->known[t->n].sha256, 32) == 0)
					break;
			if (k == t->n && X509_STORE_add_cert(t->anchors, x) && X509_up_ref(x))
				t->known[t->n++].cert = x;
		}
		OPENSSL_free(der);
	}
	pthread_mutex_unlock(&t->lock);
}

int
sv_check_se_chain(const jig_se_info *info, sv_trust *trust, EVP_PKEY **attest_key, st_err *err)
{
	X509 *leaf = NULL;
	STACK_OF(X509) *untrusted = NULL;
	X509_STORE_CTX *ctx = NULL;
	int all_known = info->ncerts > 1;
	size_t i;
	int ret = -1;

	*attest_key = NULL;
	if (info->ncerts == 0)
		return st_err_set(err, ST_E_VERIFY, "SE sent no attestation certificate");
	if (!(leaf = parse_cert(&info->certs[0]))) {
		st_err_set(err, ST_E_VERIFY, "attestation certificate is not valid DER");
		goto out;
	}
	if (!(untrusted = sk_X509_new_null()))
		goto oom;
	for (i = 1; i < info->ncerts; i++) {
		X509 *x = known_get(trust, &info->certs[i]);

		if (!x) {
			all_known = 0;
			x = parse_cert(&info->certs[i]);
		}
		if (!x) {
			st_err_set(err, ST_E_VERIFY, "attestation chain certificate %zu is not valid DER", i + 1);
			goto out;
		}
		if (!sk_X509_push(untrusted, x)) {
			X509_free(x);
			goto oom;
		}
	}
	/* Known intermediates anchor the chain; anything new goes up to a root. */
	if (!(ctx = X509_STORE_CTX_new()) ||
	    X509_STORE_CTX_init(ctx, all_known ? trust->anchors : trust->roots, leaf, untrusted) != 1)
		goto oom;
	if (X509_verify_cert(ctx) != 1) {
		st_err_set(err, ST_E_VERIFY, "attestation certificate does not chain to the SE vendor root: %s",
		    X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx)));
		goto out;
	}
	if (!all_known)
		known_add(trust, ctx);
	if (check_subject_serial(leaf, info->serial, err) < 0 || check_model(leaf, &trust->rule, info->model, err) < 0)
		goto out;
	if (!(*attest_key = X509_get_pubkey(leaf))) {
		st_err_openssl(err, ST_E_VERIFY, "attestation certificate public key");
		goto out;
	}
	ret = 0;
	goto out;
oom:
	st_err_openssl(err, ST_E_NOMEM, "attestation chain");
out:
	X509_STORE_CTX_free(ctx);
	sk_X509_pop_free(untrusted, X509_free);
	X509_free(leaf);
	return ret;
}

static int
key_curve(EVP_PKEY *pkey)
{
	char name[64];
	size_t len = 0;

	if (EVP_PKEY_get_base_id(pkey) != EVP_PKEY_EC ||
	    !EVP_PKEY_get_utf8_string_param(pkey, "group", name, sizeof(name), &len))
		return NID_undef;
	return OBJ_txt2nid(name);
}

int
sv_verify_csr(const sv_session *s, EVP_PKEY *attest_key, const jig_blob *csr, const jig_blob *attestation,
    const jig_blob *signature, X509_REQ **out, st_err *err)
{
	const jig_se_info *info = s->info;
	const unsigned char *p = csr->data;
	X509_REQ *req = NULL;
	EVP_PKEY *csr_key;
	unsigned char *spki = NULL;
	uint8_t digest[32];
	jig_attest a;
	int spki_len, ret = -1;

	*out = NULL;
	/* 1. The attestation parses exactly. */
	if (jig_attest_decode(attestation->data, attestation->len, &a, err) < 0) {
		st_err_prefix(err, "attestation");
		if (err)
			err->code = ST_E_VERIFY; /* malformed is refused like forged */
		goto out;
	}
	/* 6 (first): the SE's attestation key signed exactly these bytes. */
	if (sv_verify_sig(attest_key, attestation->data, attestation->len, signature->data, signature->len, err) < 0) {
		st_err_prefix(err, "attestation signature by the SE's attestation key");
		goto out;
	}
	/* 2. Bound to our nonce. */
	if (CRYPTO_memcmp(a.nonce, s->nonce, JIG_NONCE_LEN) != 0) {
		st_err_set(err, ST_E_VERIFY, "attestation is not for this session's nonce (replayed attestation?)");
		goto out;
	}
	/* 3. About the SE this session identified. */
	if (strcmp(a.serial, info->serial) != 0) {
		st_err_set(err, ST_E_VERIFY, "attestation names SE \"%s\", SE_INFO reported \"%s\"", a.serial, info->serial);
		goto out;
	}
	if (strcmp(a.model, info->model) != 0 || a.firmware != info->firmware || a.lifecycle != info->lifecycle) {
		st_err_set(err, ST_E_VERIFY, "attested model/firmware/lifecycle differ from what SE_INFO reported");
		goto out;
	}
	if (a.slot != s->slot) {
		st_err_set(err, ST_E_VERIFY, "attestation is for key slot %u, not slot %u", a.slot, s->slot);
		goto out;
	}
	/* 4. The CSR and the key are the ones attested. */
	st_sha256(csr->data, csr->len, digest);
	if (CRYPTO_memcmp(digest, a.csr_sha256, 32) != 0) {
		st_err_set(err, ST_E_VERIFY, "attested CSR hash does not match the CSR received");
		goto out;
	}
	st_sha256(s->pubkey->data, s->pubkey->len, digest);
	if (CRYPTO_memcmp(digest, a.pubkey_sha256, 32) != 0) {
		st_err_set(err, ST_E_VERIFY, "attestation is for another public key than KEYGEN returned");
		goto out;
	}
	/* 1.2: the station built these bytes; the same CSR from its parts
	 * spares OpenSSL's key decoders (the checks below run on it alike). */
	if (s->csr_signature)
		req = hsm_csr_from_parts(info->serial, s->pubkey->data, s->pubkey->len, s->csr_signature->data,
		    s->csr_signature->len, csr->data, csr->len);
	if (!req && (!(req = d2i_X509_REQ(NULL, &p, (long)csr->len)) || p != csr->data + csr->len)) {
		st_err_set(err, ST_E_VERIFY, "CSR is not valid DER");
		goto out;
	}
	/* The CSR's SubjectPublicKeyInfo as it stands in the CSR (i2d of the
	 * decoded key would run OpenSSL 3's encoder: ~0.7 M instructions). */
	if (!(csr_key = X509_REQ_get0_pubkey(req)) ||
	    (spki_len = i2d_X509_PUBKEY(X509_REQ_get_X509_PUBKEY(req), &spki)) <= 0) {
		st_err_openssl(err, ST_E_VERIFY, "CSR public key");
		goto out;
	}
	if ((size_t)spki_len != s->pubkey->len || CRYPTO_memcmp(spki, s->pubkey->data, s->pubkey->len) != 0) {
		st_err_set(err, ST_E_VERIFY, "CSR is for another public key than KEYGEN returned");
		goto out;
	}
	if (key_curve(csr_key) != s->curve_nid) {
		st_err_set(err, ST_E_VERIFY, "CSR key is not on the recipe's curve %s", OBJ_nid2sn(s->curve_nid));
		goto out;
	}
	/* 5. The key and signature algorithm policy and the proof of
	 * possession: libhsm's own check, the one it applies before it signs,
	 * so nothing passes here that the HSM step would refuse. */
	if (hsm_csr_verify(req, err) < 0)
		goto out;
	*out = req;
	req = NULL; /* owned by the caller now */
	ret = 0;
out:
	OPENSSL_free(spki);
	X509_REQ_free(req);
	return ret;
}

int
sv_verify_lock_receipt(EVP_PKEY *attest_key, const uint8_t nonce[JIG_NONCE_LEN], const char *serial, uint8_t slot,
    const uint8_t *cert, size_t cert_len, const jig_blob *signature, st_err *err)
{
	uint8_t bytes[JIG_LOCK_RECEIPT_MAX];
	jig_lock_receipt r;
	size_t len = 0;

	if (!attest_key)
		return st_err_set(err, ST_E_INTERNAL, "lock receipt: no attestation key from POSTURE");
	if (signature->len == 0)
		return st_err_set(err, ST_E_VERIFY, "the SE sent no lock receipt (the recipe requires one: se.lock_receipt)");
	memset(&r, 0, sizeof(r));
	memcpy(r.nonce, nonce, JIG_NONCE_LEN);
	snprintf(r.serial, sizeof(r.serial), "%s", serial);
	r.lifecycle = JIG_LC_PROVISIONED;
	r.slot = slot;
	st_sha256(cert, cert_len, r.cert_sha256);
	if (jig_lock_receipt_encode(&r, bytes, sizeof(bytes), &len, err) < 0)
		return -1;
	if (sv_verify_sig(attest_key, bytes, len, signature->data, signature->len, err) < 0)
		return st_err_prefix(err, "lock receipt by the SE's attestation key (not locked, or not this lock: "
		    "another nonce, serial, slot or certificate)");
	return 0;
}
