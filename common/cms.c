#include <limits.h>
#include <stdint.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/cms.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "cms.h"

static int
cms_sign(EVP_PKEY *key, X509 *cert, STACK_OF(X509) *chain, const void *data, size_t len, unsigned flags,
    uint8_t **der, size_t *der_len, st_err *err)
{
	BIO *in = NULL;
	CMS_ContentInfo *cms = NULL;
	unsigned char *out = NULL;
	int n, ret = -1;

	*der = NULL;
	*der_len = 0;
	if (len > INT_MAX)
		return st_err_set(err, ST_E_INTERNAL, "CMS sign: input too large");
	if (!(in = BIO_new_mem_buf(data, (int)len))) {
		st_err_openssl(err, ST_E_NOMEM, "CMS sign");
		goto out;
	}
	if (!(cms = CMS_sign(cert, key, chain, in, flags | CMS_BINARY))) {
		st_err_openssl(err, ST_E_CRYPTO, "CMS sign");
		goto out;
	}
	if ((n = i2d_CMS_ContentInfo(cms, &out)) <= 0) {
		st_err_openssl(err, ST_E_CRYPTO, "CMS sign: encode");
		goto out;
	}
	if (!(*der = malloc((size_t)n))) {
		st_err_set(err, ST_E_NOMEM, "CMS sign: out of memory");
		goto out;
	}
	memcpy(*der, out, (size_t)n);
	*der_len = (size_t)n;
	ret = 0;
out:
	OPENSSL_free(out);
	CMS_ContentInfo_free(cms);
	BIO_free(in);
	return ret;
}

int
st_cms_sign(EVP_PKEY *key, X509 *cert, STACK_OF(X509) *chain, const void *data, size_t len,
    uint8_t **der, size_t *der_len, st_err *err)
{
	return cms_sign(key, cert, chain, data, len, CMS_DETACHED, der, der_len, err);
}

int
st_cms_sign_attached(EVP_PKEY *key, X509 *cert, STACK_OF(X509) *chain, const void *data, size_t len,
    uint8_t **der, size_t *der_len, st_err *err)
{
	return cms_sign(key, cert, chain, data, len, 0, der, der_len, err);
}

/* Verify cms over content (detached: data/len; attached: data NULL, the
 * content comes back in *out, *out_len). */
/* An ASN1_TIME as a time_t; -1 when it cannot be read. */
static int
asn1_time_t(const ASN1_TIME *a, time_t *t)
{
	struct tm tm;

	if (!a || !ASN1_TIME_to_tm(a, &tm))
		return -1;
	*t = timegm(&tm);
	return 0;
}

/* The signingTime attribute of cms's one signer; -1 when it has none. */
static int
signing_time(CMS_ContentInfo *cms, time_t *out)
{
	STACK_OF(CMS_SignerInfo) *sis = CMS_get0_SignerInfos(cms);
	CMS_SignerInfo *si = sis && sk_CMS_SignerInfo_num(sis) == 1 ? sk_CMS_SignerInfo_value(sis, 0) : NULL;
	X509_ATTRIBUTE *attr;
	ASN1_TYPE *t;
	int idx;

	if (!si || (idx = CMS_signed_get_attr_by_NID(si, NID_pkcs9_signingTime, -1)) < 0 ||
	    !(attr = CMS_signed_get_attr(si, idx)) || !(t = X509_ATTRIBUTE_get0_type(attr, 0)) ||
	    (t->type != V_ASN1_UTCTIME && t->type != V_ASN1_GENERALIZEDTIME))
		return -1;
	return asn1_time_t((const ASN1_TIME *)t->value.asn1_string, out);
}

#define ST_CMS_TIME_SLACK 2 /* seconds */

/* The time to verify cms at (st_cms_verify_at); *at 0: now. */
static int
verify_time(CMS_ContentInfo *cms, time_t not_before, time_t *at, st_err *err)
{
	char when[32], bound[32];
	time_t t, now = time(NULL);

	if (signing_time(cms, &t) < 0) {
		*at = not_before;
		return 0;
	}
	st_time_format(t, when, sizeof(when));
	/* Seconds on both sides, and OpenSSL's signingTime comes from time(),
	 * which glibc reads from the coarse clock (a tick behind the one the
	 * record times come from): a seal made right after its last record may
	 * say the second before. */
	if (t + ST_CMS_TIME_SLACK < not_before) {
		st_time_format(not_before, bound, sizeof(bound));
		return st_err_set(err, ST_E_VERIFY, "signed at %s (its signingTime), before what it signs was complete "
		    "(%s): the signature's time is false", when, bound);
	}
	if (t > now + 300)
		return st_err_set(err, ST_E_VERIFY, "signed at %s (its signingTime), in the future", when);
	*at = t;
	return 0;
}

/* Signer certificates whose chain verified, per trust store.  A journal's
 * batches are sealed by one key: verifying its chain again for every seal
 * (X509_verify_cert) cost as much as all the rest of checking a seal.  An
 * entry holds for the times inside every chain certificate's validity;
 * nothing else the chain check looks at depends on the time (the stores
 * given here hold certificates only, no CRLs).  A store is known by a number
 * it is given on first use (its address is not enough: a store freed and
 * another allocated at the same place is another store) and by its
 * verification flags. */
struct signer_ok {
	unsigned long store_id, flags;
	unsigned char cert_sha256[32];
	time_t from, to;
};

static struct signer_ok ok_cache[16];
static unsigned ok_next;
static unsigned long store_ids;
static int store_idx = -1;
static pthread_mutex_t ok_mu = PTHREAD_MUTEX_INITIALIZER;

/* The store's number (mu held); 0 when it cannot have one. */
static unsigned long
store_id(X509_STORE *store)
{
	void *v;

	if (store_idx < 0 && (store_idx = X509_STORE_get_ex_new_index(0, NULL, NULL, NULL, NULL)) < 0)
		return 0;
	if ((v = X509_STORE_get_ex_data(store, store_idx)))
		return (unsigned long)(uintptr_t)v;
	if (!X509_STORE_set_ex_data(store, store_idx, (void *)(uintptr_t)++store_ids))
		return 0;
	return store_ids;
}

/* The chain of cms's one signer, checked as CMS_verify checks it (the
 * certificates the CMS carries as untrusted ones, the "smime_sign"
 * defaults) at time at (0: now), or found in the cache.  1: it verified;
 * 0: a structure this does not take (several signers, CRLs in it, the
 * signer's certificate not in it), for CMS_verify to judge; -1: refused. */
static int
signer_verified(CMS_ContentInfo *cms, X509_STORE *trust, time_t at, st_err *err)
{
	STACK_OF(CMS_SignerInfo) *sis = CMS_get0_SignerInfos(cms);
	STACK_OF(X509) *certs = NULL, *chain;
	STACK_OF(X509_CRL) *crls = NULL;
	X509_STORE_CTX *ctx = NULL;
	CMS_SignerInfo *si;
	X509 *signer = NULL;
	unsigned char md[32];
	unsigned long id, vflags = X509_VERIFY_PARAM_get_flags(X509_STORE_get0_param(trust));
	unsigned mdlen = 0, i;
	time_t t = at ? at : time(NULL), from = 0, to = 0, nb, na;
	char when[32];
	int ret = 0, k;

	if (!sis || sk_CMS_SignerInfo_num(sis) != 1)
		return 0;
	si = sk_CMS_SignerInfo_value(sis, 0);
	certs = CMS_get1_certs(cms);
	crls = CMS_get1_crls(cms);
	if (!certs || sk_X509_CRL_num(crls) > 0)
		goto out;
	for (k = 0; k < sk_X509_num(certs) && !signer; k++)
		if (CMS_SignerInfo_cert_cmp(si, sk_X509_value(certs, k)) == 0)
			signer = sk_X509_value(certs, k);
	if (!signer || !X509_digest(signer, EVP_sha256(), md, &mdlen) || mdlen != sizeof(md))
		goto out;
	pthread_mutex_lock(&ok_mu);
	id = store_id(trust);
	for (i = 0; id && i < sizeof(ok_cache) / sizeof(ok_cache[0]); i++)
		if (ok_cache[i].store_id == id && ok_cache[i].flags == vflags &&
		    memcmp(ok_cache[i].cert_sha256, md, sizeof(md)) == 0 && t >= ok_cache[i].from && t <= ok_cache[i].to)
			ret = 1;
	pthread_mutex_unlock(&ok_mu);
	if (ret)
		goto out;
	if (!(ctx = X509_STORE_CTX_new()) || !X509_STORE_CTX_init(ctx, trust, signer, certs) ||
	    !X509_STORE_CTX_set_default(ctx, "smime_sign")) {
		ret = st_err_openssl(err, ST_E_NOMEM, "CMS verify");
		goto out;
	}
	if (at)
		X509_STORE_CTX_set_time(ctx, 0, at);
	if (X509_verify_cert(ctx) <= 0) {
		st_time_format(t, when, sizeof(when));
		ret = st_err_set(err, ST_E_VERIFY, "signature does not verify%s%s%s: the signer's certificate: %s",
		    at ? " at " : "", at ? when : "", at ? ", when it was made" : "",
		    X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx)));
		goto out;
	}
	chain = X509_STORE_CTX_get0_chain(ctx);
	for (k = 0; k < sk_X509_num(chain); k++) {
		if (asn1_time_t(X509_get0_notBefore(sk_X509_value(chain, k)), &nb) < 0 ||
		    asn1_time_t(X509_get0_notAfter(sk_X509_value(chain, k)), &na) < 0) {
			from = 1;
			to = 0; /* an unreadable time: verified, not cached */
			break;
		}
		if (!k || nb > from)
			from = nb;
		if (!k || na < to)
			to = na;
	}
	if (id && from <= to) {
		pthread_mutex_lock(&ok_mu);
		ok_cache[ok_next].store_id = id;
		ok_cache[ok_next].flags = vflags;
		memcpy(ok_cache[ok_next].cert_sha256, md, sizeof(md));
		ok_cache[ok_next].from = from;
		ok_cache[ok_next].to = to;
		ok_next = (ok_next + 1) % (sizeof(ok_cache) / sizeof(ok_cache[0]));
		pthread_mutex_unlock(&ok_mu);
	}
	ret = 1;
out:
	X509_STORE_CTX_free(ctx);
	sk_X509_pop_free(certs, X509_free);
	sk_X509_CRL_pop_free(crls, X509_CRL_free);
	return ret;
}

static int
cms_verify(const void *data, size_t len, const uint8_t *der, size_t der_len, X509_STORE *trust, X509 **signer,
    uint8_t **out, size_t *out_len, const time_t *not_before, time_t *signed_at, st_err *err)
{
	X509_VERIFY_PARAM *vp = trust ? X509_STORE_get0_param(trust) : NULL;
	unsigned long had_time = 0;
	time_t old_time = 0, at = 0;
	int set_time = 0;
	const unsigned char *p = der;
	CMS_ContentInfo *cms = NULL;
	BIO *content = NULL, *sink = NULL;
	STACK_OF(X509) *signers = NULL;
	unsigned flags = (data ? CMS_DETACHED : 0) | CMS_BINARY;
	int ret = -1, rc;

	if (signer)
		*signer = NULL;
	if (len > INT_MAX || der_len > LONG_MAX)
		return st_err_set(err, ST_E_VERIFY, "CMS verify: input too large");
	if (!(cms = d2i_CMS_ContentInfo(NULL, &p, (long)der_len)) || p != der + der_len) {
		st_err_openssl(err, ST_E_VERIFY, "signature is not a DER CMS structure");
		goto out;
	}
	if (data && !(content = BIO_new_mem_buf(data, (int)len))) {
		st_err_openssl(err, ST_E_NOMEM, "CMS verify");
		goto out;
	}
	if (!data && (CMS_is_detached(cms) || OBJ_obj2nid(CMS_get0_eContentType(cms)) != NID_pkcs7_data)) {
		st_err_set(err, ST_E_VERIFY, "signature carries no content (a detached signature?)");
		goto out;
	}
	if (!data && !(sink = BIO_new(BIO_s_mem()))) {
		st_err_openssl(err, ST_E_NOMEM, "CMS verify");
		goto out;
	}
	if (not_before) {
		if (verify_time(cms, *not_before, &at, err) < 0)
			goto out;
		if (signed_at)
			*signed_at = at ? at : time(NULL);
	}
	if (trust && (rc = signer_verified(cms, trust, at, err)) != 0) {
		if (rc < 0)
			goto out;
		flags |= CMS_NO_SIGNER_CERT_VERIFY;
	} else if (at && vp) {
		/* CMS_verify checks the chain itself: at the seal's time. */
		had_time = X509_VERIFY_PARAM_get_flags(vp) & X509_V_FLAG_USE_CHECK_TIME;
		old_time = X509_VERIFY_PARAM_get_time(vp);
		X509_VERIFY_PARAM_set_time(vp, at);
		set_time = 1;
	}
	if (CMS_verify(cms, NULL, trust, content, sink, flags) != 1) {
		if (set_time) {
			char when[32];

			st_time_format(at, when, sizeof(when));
			st_err_openssl(err, ST_E_VERIFY, "signature does not verify at %s, when it was made", when);
		} else {
			st_err_openssl(err, ST_E_VERIFY, "signature does not verify");
		}
		goto out;
	}
	if (sink) {
		char *bytes = NULL;
		long n = BIO_get_mem_data(sink, &bytes);

		if (n < 0 || !(*out = malloc((size_t)n + 1))) {
			st_err_set(err, ST_E_NOMEM, "CMS verify: out of memory");
			goto out;
		}
		memcpy(*out, bytes, (size_t)n);
		(*out)[n] = 0;
		*out_len = (size_t)n;
	}
	if (signer) {
		signers = CMS_get0_signers(cms);
		if (!signers || sk_X509_num(signers) != 1) {
			st_err_set(err, ST_E_VERIFY, "signature must have exactly one signer");
			goto out;
		}
		*signer = sk_X509_value(signers, 0);
		X509_up_ref(*signer);
	}
	ret = 0;
out:
	if (ret < 0 && sink && out && *out) {
		free(*out);
		*out = NULL;
	}
	if (set_time) {
		if (had_time)
			X509_VERIFY_PARAM_set_time(vp, old_time);
		else
			X509_VERIFY_PARAM_clear_flags(vp, X509_V_FLAG_USE_CHECK_TIME);
	}
	sk_X509_free(signers);
	BIO_free(sink);
	BIO_free(content);
	CMS_ContentInfo_free(cms);
	return ret;
}

int
st_cms_verify(const void *data, size_t len, const uint8_t *der, size_t der_len, X509_STORE *trust,
    X509 **signer, st_err *err)
{
	return cms_verify(data ? data : "", len, der, der_len, trust, signer, NULL, NULL, NULL, NULL, err);
}

int
st_cms_verify_at(const void *data, size_t len, const uint8_t *der, size_t der_len, X509_STORE *trust,
    time_t not_before, time_t *signed_at, X509 **signer, st_err *err)
{
	return cms_verify(data ? data : "", len, der, der_len, trust, signer, NULL, NULL, &not_before, signed_at, err);
}

int
st_cms_verify_attached(const uint8_t *der, size_t der_len, X509_STORE *trust, uint8_t **content,
    size_t *content_len, X509 **signer, st_err *err)
{
	*content = NULL;
	*content_len = 0;
	return cms_verify(NULL, 0, der, der_len, trust, signer, content, content_len, NULL, NULL, err);
}

STACK_OF(X509) *
st_x509_chain_load(const char *pem_path, st_err *err)
{
	STACK_OF(X509) *sk = sk_X509_new_null();
	BIO *bio = NULL;
	X509 *x = NULL;

	if (!sk) {
		st_err_openssl(err, ST_E_NOMEM, "%s", pem_path);
		return NULL;
	}
	if (!(bio = BIO_new_file(pem_path, "r"))) {
		st_err_openssl(err, ST_E_CONFIG, "%s: cannot open", pem_path);
		goto fail;
	}
	while ((x = PEM_read_bio_X509(bio, NULL, NULL, NULL))) {
		if (!sk_X509_push(sk, x)) {
			st_err_openssl(err, ST_E_NOMEM, "%s", pem_path);
			goto fail;
		}
		x = NULL;
	}
	ERR_clear_error(); /* the end-of-file "no start line" */
	if (sk_X509_num(sk) == 0) {
		st_err_set(err, ST_E_CONFIG, "%s: no PEM certificate found", pem_path);
		goto fail;
	}
	BIO_free(bio);
	return sk;
fail:
	X509_free(x);
	BIO_free(bio);
	sk_X509_pop_free(sk, X509_free);
	return NULL;
}

X509_STORE *
st_x509_store_load(const char *pem_path, st_err *err)
{
	STACK_OF(X509) *sk = NULL;
	X509_STORE *store = NULL;
	int i;

	if (!(sk = st_x509_chain_load(pem_path, err)))
		return NULL;
	if (!(store = X509_STORE_new())) {
		st_err_openssl(err, ST_E_NOMEM, "trust store");
		goto out;
	}
	for (i = 0; i < sk_X509_num(sk); i++)
		if (!X509_STORE_add_cert(store, sk_X509_value(sk, i))) {
			st_err_openssl(err, ST_E_CONFIG, "%s: certificate %d", pem_path, i + 1);
			X509_STORE_free(store);
			store = NULL;
			goto out;
		}
out:
	sk_X509_pop_free(sk, X509_free);
	return store;
}

X509 *
st_x509_load(const char *pem_path, st_err *err)
{
	BIO *bio = BIO_new_file(pem_path, "r");
	X509 *cert = NULL;

	if (!bio) {
		st_err_openssl(err, ST_E_CONFIG, "%s: cannot open", pem_path);
		return NULL;
	}
	if (!(cert = PEM_read_bio_X509(bio, NULL, NULL, NULL)))
		st_err_openssl(err, ST_E_CONFIG, "%s: not a PEM certificate", pem_path);
	BIO_free(bio);
	return cert;
}

static int
key_id_hex(const ASN1_OCTET_STRING *id, char out[ST_KEY_ID_HEX])
{
	out[0] = '\0';
	if (!id || ASN1_STRING_length(id) < 1 || ASN1_STRING_length(id) > 32)
		return -1;
	st_hex(ASN1_STRING_get0_data(id), (size_t)ASN1_STRING_length(id), out);
	return 0;
}

int
st_x509_ski_hex(X509 *cert, char out[ST_KEY_ID_HEX])
{
	return key_id_hex(cert ? X509_get0_subject_key_id(cert) : NULL, out);
}

int
st_x509_aki_hex(X509 *cert, char out[ST_KEY_ID_HEX])
{
	return key_id_hex(cert ? X509_get0_authority_key_id(cert) : NULL, out);
}

void
st_x509_subject(X509 *cert, char *buf, size_t len)
{
	BIO *bio = BIO_new(BIO_s_mem());
	char *p = NULL;
	long n;

	if (!len)
		return;
	buf[0] = '\0';
	if (!bio)
		return;
	if (X509_NAME_print_ex(bio, X509_get_subject_name(cert), 0, XN_FLAG_ONELINE & ~ASN1_STRFLGS_ESC_MSB) >= 0 &&
	    (n = BIO_get_mem_data(bio, &p)) > 0)
		snprintf(buf, len, "%.*s", (int)n, p);
	BIO_free(bio);
}

static const struct {
	const char *name, *oid;
} roles[] = {
	[ST_ROLE_AUDIT_SEAL] = { "audit seal", ST_OID_ARC ".1.1" },
	[ST_ROLE_RECIPE] = { "recipe signing", ST_OID_ARC ".1.2" },
	[ST_ROLE_AUTHORIZE] = { "authorization", ST_OID_ARC ".1.3" },
};

const char *
st_role_name(st_role role)
{
	return (size_t)role < sizeof(roles) / sizeof(roles[0]) && roles[role].name ? roles[role].name : "unknown role";
}

const char *
st_role_oid(st_role role)
{
	return (size_t)role < sizeof(roles) / sizeof(roles[0]) && roles[role].oid ? roles[role].oid : "";
}

int
st_x509_check_role(X509 *cert, st_role role, st_err *err)
{
	EXTENDED_KEY_USAGE *eku = X509_get_ext_d2i(cert, NID_ext_key_usage, NULL, NULL);
	ASN1_OBJECT *want = OBJ_txt2obj(st_role_oid(role), 1);
	char subject[256];
	int i, found = 0;

	for (i = 0; want && eku && i < sk_ASN1_OBJECT_num(eku); i++)
		found |= OBJ_cmp(sk_ASN1_OBJECT_value(eku, i), want) == 0;
	sk_ASN1_OBJECT_pop_free(eku, ASN1_OBJECT_free);
	ASN1_OBJECT_free(want);
	ERR_clear_error();
	if (found)
		return 0;
	st_x509_subject(cert, subject, sizeof(subject));
	return st_err_set(err, ST_E_VERIFY,
	    "the certificate of %s does not hold the %s role (its extendedKeyUsage lacks %s): use a key of the %s role", subject,
	    st_role_name(role), st_role_oid(role), st_role_name(role));
}
