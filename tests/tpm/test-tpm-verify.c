/* The TPM attestation gate on its own (station/tpm-verify.c), no TPM
 * needed: TPM structures built here with libtss2-mu and signed with a
 * software "IAK", then each check broken in turn; every refusal must say
 * where and why. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <tss2/tss2_mu.h>

#include "testutil.h"
#include "tpm-verify.h"

static EVP_PKEY *iak_priv;
static TPM2B_PUBLIC iak, idevid;
static uint8_t nonce[32];

static void
ecc_public(EVP_PKEY *k, TPM2B_PUBLIC *p, int restricted)
{
	BIGNUM *x = NULL, *y = NULL;

	memset(p, 0, sizeof(*p));
	p->publicArea.type = TPM2_ALG_ECC;
	p->publicArea.nameAlg = TPM2_ALG_SHA256;
	p->publicArea.objectAttributes = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT | TPMA_OBJECT_SENSITIVEDATAORIGIN |
	    TPMA_OBJECT_USERWITHAUTH | TPMA_OBJECT_SIGN_ENCRYPT | (restricted ? TPMA_OBJECT_RESTRICTED : 0);
	p->publicArea.parameters.eccDetail.symmetric.algorithm = TPM2_ALG_NULL;
	p->publicArea.parameters.eccDetail.scheme.scheme = TPM2_ALG_ECDSA;
	p->publicArea.parameters.eccDetail.scheme.details.ecdsa.hashAlg = TPM2_ALG_SHA256;
	p->publicArea.parameters.eccDetail.curveID = TPM2_ECC_NIST_P256;
	p->publicArea.parameters.eccDetail.kdf.scheme = TPM2_ALG_NULL;
	ck_assert(EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_EC_PUB_X, &x));
	ck_assert(EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_EC_PUB_Y, &y));
	p->publicArea.unique.ecc.x.size = 32;
	p->publicArea.unique.ecc.y.size = 32;
	BN_bn2binpad(x, p->publicArea.unique.ecc.x.buffer, 32);
	BN_bn2binpad(y, p->publicArea.unique.ecc.y.buffer, 32);
	BN_free(x);
	BN_free(y);
}

static void
setup(void)
{
	EVP_PKEY *k;

	ck_assert_ptr_nonnull(iak_priv = EVP_EC_gen("P-256"));
	ck_assert_ptr_nonnull(k = EVP_EC_gen("P-256"));
	ecc_public(iak_priv, &iak, 1);
	ecc_public(k, &idevid, 0);
	EVP_PKEY_free(k);
	ck_assert_int_eq(RAND_bytes(nonce, sizeof(nonce)), 1);
}

static void
teardown(void)
{
	EVP_PKEY_free(iak_priv);
}

static void
assert_err(int rc, const st_err *err, const char *want)
{
	ck_assert_int_eq(rc, -1);
	ck_assert_msg(strstr(err->msg, want), "\"%s\" not in \"%s\"", want, err->msg);
}

/* A TPMS_ATTEST for certify of `certified` (its name) with extraData, and
 * its TPMT_SIGNATURE by `signer`. */
static void
make_certify(const TPM2B_PUBLIC *certified, const uint8_t *extra, uint32_t magic, TPM2_ST type, EVP_PKEY *signer,
    uint8_t *att, size_t *att_len, uint8_t *sig, size_t *sig_len)
{
	TPMS_ATTEST a;
	TPMT_SIGNATURE s;
	uint8_t name[TV_NAME_LEN], der[80];
	const unsigned char *p = der;
	size_t dlen = sizeof(der), off = 0;
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	ECDSA_SIG *es;
	const BIGNUM *r, *sv;
	st_err err;

	memset(&a, 0, sizeof(a));
	a.magic = magic;
	a.type = type;
	a.extraData.size = 32;
	memcpy(a.extraData.buffer, extra, 32);
	ck_assert_int_eq(tv_name(certified, name, &err), 0);
	a.attested.certify.name.size = TV_NAME_LEN;
	memcpy(a.attested.certify.name.name, name, TV_NAME_LEN);
	ck_assert_int_eq(Tss2_MU_TPMS_ATTEST_Marshal(&a, att, 1024, &off), 0);
	*att_len = off;
	ck_assert(EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, signer) == 1);
	ck_assert(EVP_DigestSign(md, der, &dlen, att, *att_len) == 1);
	EVP_MD_CTX_free(md);
	ck_assert_ptr_nonnull(es = d2i_ECDSA_SIG(NULL, &p, (long)dlen));
	ECDSA_SIG_get0(es, &r, &sv);
	memset(&s, 0, sizeof(s));
	s.sigAlg = TPM2_ALG_ECDSA;
	s.signature.ecdsa.hash = TPM2_ALG_SHA256;
	s.signature.ecdsa.signatureR.size = 32;
	s.signature.ecdsa.signatureS.size = 32;
	BN_bn2binpad(r, s.signature.ecdsa.signatureR.buffer, 32);
	BN_bn2binpad(sv, s.signature.ecdsa.signatureS.buffer, 32);
	ECDSA_SIG_free(es);
	off = 0;
	ck_assert_int_eq(Tss2_MU_TPMT_SIGNATURE_Marshal(&s, sig, 256, &off), 0);
	*sig_len = off;
}

/* TPM_WRITE_CORPUS=DIR writes the fuzz seeds (tests/tpm/corpus-tpm-verify):
 * a public area, a certification, an activation answer. */
static void
write_corpus(const uint8_t *att, size_t al, const uint8_t *sig, size_t sl)
{
	const char *dir = getenv("TPM_WRITE_CORPUS");
	uint8_t buf[4096], pub[sizeof(TPM2B_PUBLIC)];
	TPM2B_DIGEST d = { .size = 32 };
	size_t n, off;
	char path[1024];
	st_err err;

	if (!dir)
		return;
	buf[0] = 0;
	off = 0;
	ck_assert_int_eq(Tss2_MU_TPM2B_PUBLIC_Marshal(&idevid, buf + 1, sizeof(buf) - 1, &off), 0);
	snprintf(path, sizeof(path), "%s/public", dir);
	ck_assert_int_eq(st_file_write_atomic(path, buf, off + 1, 0644, &err), 0);
	n = 0;
	buf[n++] = 1;
	off = 0;
	ck_assert_int_eq(Tss2_MU_TPM2B_PUBLIC_Marshal(&iak, pub, sizeof(pub), &off), 0);
	buf[n++] = (uint8_t)(off >> 8);
	buf[n++] = (uint8_t)off;
	memcpy(buf + n, pub, off);
	n += off;
	off = 0;
	ck_assert_int_eq(Tss2_MU_TPM2B_PUBLIC_Marshal(&idevid, pub, sizeof(pub), &off), 0);
	buf[n++] = (uint8_t)(off >> 8);
	buf[n++] = (uint8_t)off;
	memcpy(buf + n, pub, off);
	n += off;
	buf[n++] = (uint8_t)(al >> 8);
	buf[n++] = (uint8_t)al;
	memcpy(buf + n, att, al);
	n += al;
	memcpy(buf + n, sig, sl);
	n += sl;
	snprintf(path, sizeof(path), "%s/certify", dir);
	ck_assert_int_eq(st_file_write_atomic(path, buf, n, 0644, &err), 0);
	buf[0] = 2;
	off = 0;
	ck_assert_int_eq(Tss2_MU_TPM2B_DIGEST_Marshal(&d, buf + 1, sizeof(buf) - 1, &off), 0);
	snprintf(path, sizeof(path), "%s/activation", dir);
	ck_assert_int_eq(st_file_write_atomic(path, buf, off + 1, 0644, &err), 0);
}

START_TEST(a_good_certification_passes_and_each_break_is_named)
{
	uint8_t att[1024], sig[256], other_nonce[32];
	size_t al, sl;
	EVP_PKEY *other = EVP_EC_gen("P-256");
	st_err err;

	make_certify(&idevid, nonce, TPM2_GENERATED_VALUE, TPM2_ST_ATTEST_CERTIFY, iak_priv, att, &al, sig, &sl);
	ck_assert_msg(tv_check_certify(att, al, sig, sl, &iak, &idevid, nonce, 32, &err) == 0, "%s", err.msg);
	write_corpus(att, al, sig, sl);
	/* trailing byte, truncation */
	att[al] = 0;
	assert_err(tv_check_certify(att, al + 1, sig, sl, &iak, &idevid, nonce, 32, &err), &err, "1 bytes after the TPMS_ATTEST");
	assert_err(tv_check_certify(att, al - 3, sig, sl, &iak, &idevid, nonce, 32, &err), &err, "not a TPMS_ATTEST");
	assert_err(tv_check_certify(att, al, sig, sl - 1, &iak, &idevid, nonce, 32, &err), &err, "not exactly one TPMT_SIGNATURE");
	/* the previous nonce */
	memcpy(other_nonce, nonce, 32);
	other_nonce[0] ^= 1;
	assert_err(tv_check_certify(att, al, sig, sl, &iak, &idevid, other_nonce, 32, &err), &err, "not for this session's nonce");
	/* another object certified */
	assert_err(tv_check_certify(att, al, sig, sl, &iak, &iak, nonce, 32, &err), &err, "certifies another object");
	/* not made by a TPM, not a certify */
	make_certify(&idevid, nonce, 0x12345678, TPM2_ST_ATTEST_CERTIFY, iak_priv, att, &al, sig, &sl);
	assert_err(tv_check_certify(att, al, sig, sl, &iak, &idevid, nonce, 32, &err), &err, "magic 0x12345678");
	make_certify(&idevid, nonce, TPM2_GENERATED_VALUE, TPM2_ST_ATTEST_CREATION, iak_priv, att, &al, sig, &sl);
	assert_err(tv_check_certify(att, al, sig, sl, &iak, &idevid, nonce, 32, &err), &err, "is not TPM_ST_ATTEST_CERTIFY");
	/* signed by another key */
	make_certify(&idevid, nonce, TPM2_GENERATED_VALUE, TPM2_ST_ATTEST_CERTIFY, other, att, &al, sig, &sl);
	assert_err(tv_check_certify(att, al, sig, sl, &iak, &idevid, nonce, 32, &err), &err, "not signed by the IAK");
	EVP_PKEY_free(other);
}
END_TEST

START_TEST(key_public_areas_are_checked_attribute_by_attribute)
{
	TPM2B_PUBLIC k, parsed;
	uint8_t buf[sizeof(TPM2B_PUBLIC) + 4];
	size_t off = 0;
	st_err err;

	ck_assert_msg(tv_check_key(&iak, 1, NID_X9_62_prime256v1, "IAK", &err) == 0, "%s", err.msg);
	ck_assert_msg(tv_check_key(&idevid, 0, NID_X9_62_prime256v1, "IDevID", &err) == 0, "%s", err.msg);
	k = idevid; /* imported: neither fixedTPM nor sensitiveDataOrigin */
	k.publicArea.objectAttributes &= ~(TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT | TPMA_OBJECT_SENSITIVEDATAORIGIN);
	assert_err(tv_check_key(&k, 0, NID_X9_62_prime256v1, "IDevID", &err), &err, "IDevID: attributes 0x00040040: fixedTPM is not set");
	k = idevid;
	k.publicArea.objectAttributes &= ~TPMA_OBJECT_SENSITIVEDATAORIGIN;
	assert_err(tv_check_key(&k, 0, NID_X9_62_prime256v1, "IDevID", &err), &err, "sensitiveDataOrigin is not set");
	assert_err(tv_check_key(&idevid, 1, NID_X9_62_prime256v1, "IAK", &err), &err, "IAK: attributes");
	assert_err(tv_check_key(&iak, 0, NID_X9_62_prime256v1, "IDevID", &err), &err, "restricted is set");
	k = idevid;
	k.publicArea.objectAttributes |= TPMA_OBJECT_DECRYPT;
	assert_err(tv_check_key(&k, 0, NID_X9_62_prime256v1, "IDevID", &err), &err, "decrypt is set");
	assert_err(tv_check_key(&idevid, 0, NID_secp384r1, "IDevID", &err), &err, "the recipe's key_algorithm is p384");
	k = idevid;
	k.publicArea.nameAlg = TPM2_ALG_SHA1;
	assert_err(tv_check_key(&k, 0, NID_X9_62_prime256v1, "IDevID", &err), &err, "nameAlg 0x0004, not SHA-256");
	/* exactly one TPM2B_PUBLIC */
	ck_assert_int_eq(Tss2_MU_TPM2B_PUBLIC_Marshal(&idevid, buf, sizeof(buf), &off), 0);
	ck_assert_int_eq(tv_public_parse(buf, off, "IDevID public area", &parsed, &err), 0);
	buf[off] = 7;
	assert_err(tv_public_parse(buf, off + 1, "IDevID public area", &parsed, &err), &err, "IDevID public area: 1 bytes after");
	assert_err(tv_public_parse(buf, off - 1, "IDevID public area", &parsed, &err), &err, "IDevID public area: not a TPM2B_PUBLIC");
	/* an empty one, and a size in front that does not count the public
	 * area (both found by fuzz-tpm-verify) */
	assert_err(tv_public_parse((const uint8_t *)"\0\0", 2, "IDevID public area", &parsed, &err), &err,
	    "IDevID public area: the TPM2B_PUBLIC is empty");
	buf[1] = (uint8_t)(buf[1] - 23);
	assert_err(tv_public_parse(buf, off, "IDevID public area", &parsed, &err), &err,
	    "IDevID public area: the TPM2B_PUBLIC's size says");
	buf[1] = (uint8_t)(buf[1] + 23);
	ck_assert_int_eq(tv_public_parse(buf, off, "IDevID public area", &parsed, &err), 0);
	/* a point not on the curve */
	k = idevid;
	k.publicArea.unique.ecc.y.buffer[5] ^= 1;
	ck_assert_ptr_null(tv_pkey(&k, &err));
	ck_assert_msg(strstr(err.msg, "not a point on the curve"), "%s", err.msg);
}
END_TEST

START_TEST(activation_answer_must_be_the_secret)
{
	uint8_t secret[32], buf[40];
	TPM2B_DIGEST d = { .size = 32 };
	size_t off = 0;
	st_err err;

	ck_assert_int_eq(RAND_bytes(secret, 32), 1);
	memcpy(d.buffer, secret, 32);
	ck_assert_int_eq(Tss2_MU_TPM2B_DIGEST_Marshal(&d, buf, sizeof(buf), &off), 0);
	ck_assert_int_eq(tv_check_activation(buf, off, secret, 32, &err), 0);
	assert_err(tv_check_activation(buf, off - 1, secret, 32, &err), &err, "not exactly one TPM2B_DIGEST");
	buf[10] ^= 0x40;
	assert_err(tv_check_activation(buf, off, secret, 32, &err), &err, "gave back another secret");
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("tpm-verify");
	TCase *tc = tcase_create("tpm-verify");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, a_good_certification_passes_and_each_break_is_named);
	tcase_add_test(tc, key_public_areas_are_checked_attribute_by_attribute);
	tcase_add_test(tc, activation_answer_must_be_the_secret);
	suite_add_tcase(s, tc);
	return tu_run_suite(s);
}
