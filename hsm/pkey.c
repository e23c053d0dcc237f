/* EVP_PKEYs whose private half stays in the token.
 *
 * OpenSSL 3 signs with a key held elsewhere either through a provider or
 * through the legacy EC_KEY_METHOD / RSA_METHOD hooks.  A key with a
 * foreign method takes OpenSSL's legacy path in EVP_DigestSign, X509_sign,
 * X509_CRL_sign and CMS_sign, which is all the station needs; a provider
 * would be several times the code.  The hooks are deprecated in OpenSSL 3,
 * hence the define: this file is the only user. */
#define OPENSSL_SUPPRESS_DEPRECATED 1

#include <string.h>

#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/rsa.h>

#include "hsm-int.h"

static pthread_once_t meth_once = PTHREAD_ONCE_INIT;
static EC_KEY_METHOD *ec_meth;
static RSA_METHOD *rsa_meth;
static int ec_idx = -1, rsa_idx = -1;

static ECDSA_SIG *
ec_sign_sig(const unsigned char *dgst, int dlen, const BIGNUM *kinv, const BIGNUM *r, EC_KEY *ec)
{
	hsm_key *key = EC_KEY_get_ex_data(ec, ec_idx);
	uint8_t raw[2 * 66];
	CK_ULONG n = sizeof(raw);
	BIGNUM *br = NULL, *bs = NULL;
	ECDSA_SIG *sig = NULL;

	(void)kinv;
	(void)r;
	if (!key || dlen < 0 || hsm_key_sign_raw(key, CKM_ECDSA, dgst, (size_t)dlen, raw, &n) != CKR_OK)
		return NULL;
	if (n == 0 || n % 2 || !(br = BN_bin2bn(raw, (int)(n / 2), NULL)) ||
	    !(bs = BN_bin2bn(raw + n / 2, (int)(n / 2), NULL)) || !(sig = ECDSA_SIG_new()) ||
	    !ECDSA_SIG_set0(sig, br, bs)) {
		BN_free(br);
		BN_free(bs);
		ECDSA_SIG_free(sig);
		return NULL;
	}
	return sig; /* owns br and bs */
}

static int
ec_sign(int type, const unsigned char *dgst, int dlen, unsigned char *sig, unsigned int *siglen, const BIGNUM *kinv,
    const BIGNUM *r, EC_KEY *ec)
{
	ECDSA_SIG *s = ec_sign_sig(dgst, dlen, kinv, r, ec);
	unsigned char *p = sig;
	int n;

	(void)type;
	if (!s)
		return 0;
	n = i2d_ECDSA_SIG(s, &p);
	ECDSA_SIG_free(s);
	if (n <= 0)
		return 0;
	*siglen = (unsigned int)n;
	return 1;
}

static int
rsa_priv_enc(int flen, const unsigned char *from, unsigned char *to, RSA *rsa, int padding)
{
	hsm_key *key = RSA_get_ex_data(rsa, rsa_idx);
	CK_ULONG n = (CK_ULONG)RSA_size(rsa);

	/* OpenSSL hands us the DigestInfo; CKM_RSA_PKCS adds the type-1 padding. */
	if (!key || flen < 0 || padding != RSA_PKCS1_PADDING)
		return -1;
	if (hsm_key_sign_raw(key, CKM_RSA_PKCS, from, (size_t)flen, to, &n) != CKR_OK)
		return -1;
	return (int)n;
}

static void
meth_init(void)
{
	ec_idx = EC_KEY_get_ex_new_index(0, NULL, NULL, NULL, NULL);
	rsa_idx = RSA_get_ex_new_index(0, NULL, NULL, NULL, NULL);
	if ((ec_meth = EC_KEY_METHOD_new(EC_KEY_OpenSSL())) != NULL)
		EC_KEY_METHOD_set_sign(ec_meth, ec_sign, NULL, ec_sign_sig);
	if ((rsa_meth = RSA_meth_dup(RSA_PKCS1_OpenSSL())) != NULL) {
		RSA_meth_set1_name(rsa_meth, "station PKCS#11 token");
		RSA_meth_set_priv_enc(rsa_meth, rsa_priv_enc);
	}
}

EVP_PKEY *
hsm_pkey_ec(hsm_key *key, const uint8_t *params, size_t plen, const uint8_t *point, size_t ptlen, st_err *err)
{
	const unsigned char *p = params;
	ASN1_OCTET_STRING *os = NULL;
	EC_GROUP *group = NULL;
	EC_POINT *pt = NULL;
	EC_KEY *ec = NULL;
	EVP_PKEY *pkey = NULL;

	pthread_once(&meth_once, meth_init);
	if (!ec_meth || ec_idx < 0) {
		st_err_openssl(err, ST_E_NOMEM, "EC key method");
		goto out;
	}
	if (!(group = d2i_ECPKParameters(NULL, &p, (long)plen)) || p != params + plen) {
		st_err_openssl(err, ST_E_CONFIG, "CKA_EC_PARAMS is not a DER EC curve");
		goto out;
	}
	/* CKA_EC_POINT is a DER OCTET STRING (PKCS#11 2.40); a few tokens
	 * give the bare point. */
	p = point;
	if ((os = d2i_ASN1_OCTET_STRING(NULL, &p, (long)ptlen)) != NULL && p == point + ptlen) {
		point = os->data;
		ptlen = (size_t)os->length;
	}
	ERR_clear_error();
	if (!(pt = EC_POINT_new(group)) || !EC_POINT_oct2point(group, pt, point, ptlen, NULL)) {
		st_err_openssl(err, ST_E_CONFIG, "CKA_EC_POINT is not a point on the key's curve");
		goto out;
	}
	if (!(ec = EC_KEY_new()) || !EC_KEY_set_group(ec, group) || !EC_KEY_set_public_key(ec, pt) ||
	    !EC_KEY_set_method(ec, ec_meth) || !EC_KEY_set_ex_data(ec, ec_idx, key) || !(pkey = EVP_PKEY_new()) ||
	    !EVP_PKEY_assign_EC_KEY(pkey, ec)) {
		st_err_openssl(err, ST_E_NOMEM, "EC key");
		EVP_PKEY_free(pkey);
		pkey = NULL;
		goto out;
	}
	ec = NULL; /* owned by pkey */
out:
	EC_KEY_free(ec);
	EC_POINT_free(pt);
	EC_GROUP_free(group);
	ASN1_OCTET_STRING_free(os);
	return pkey;
}

EVP_PKEY *
hsm_pkey_rsa(hsm_key *key, const uint8_t *n, size_t nlen, const uint8_t *e, size_t elen, st_err *err)
{
	BIGNUM *bn = NULL, *be = NULL;
	RSA *rsa = NULL;
	EVP_PKEY *pkey = NULL;

	pthread_once(&meth_once, meth_init);
	if (!rsa_meth || rsa_idx < 0) {
		st_err_openssl(err, ST_E_NOMEM, "RSA key method");
		goto out;
	}
	if (!(bn = BN_bin2bn(n, (int)nlen, NULL)) || !(be = BN_bin2bn(e, (int)elen, NULL)) || !(rsa = RSA_new()) ||
	    !RSA_set0_key(rsa, bn, be, NULL)) {
		st_err_openssl(err, ST_E_NOMEM, "RSA key");
		goto out;
	}
	bn = be = NULL; /* owned by rsa */
	RSA_set_flags(rsa, RSA_FLAG_EXT_PKEY);
	if (!RSA_set_method(rsa, rsa_meth) || !RSA_set_ex_data(rsa, rsa_idx, key) || !(pkey = EVP_PKEY_new()) ||
	    !EVP_PKEY_assign_RSA(pkey, rsa)) {
		st_err_openssl(err, ST_E_NOMEM, "RSA key");
		EVP_PKEY_free(pkey);
		pkey = NULL;
		goto out;
	}
	rsa = NULL; /* owned by pkey */
out:
	RSA_free(rsa);
	BN_free(bn);
	BN_free(be);
	return pkey;
}
