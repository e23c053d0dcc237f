#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/cms.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "cms.h"
#include "testutil.h"

/* Sign with a file key from the test PKI (the token path is hsm/'s test);
 * verify against the right root, a wrong root, and altered content. */
START_TEST(test_sign_verify)
{
	char *dir = tu_make_pki();
	char path[512], subject[256];
	const char data[] = "batch bytes\n";
	uint8_t *der = NULL;
	size_t der_len = 0;
	X509 *cert, *signer = NULL;
	EVP_PKEY *key;
	X509_STORE *store, *wrong;
	FILE *f;
	st_err err;

	char *cmd = NULL;

	/* A file-key signer certified by the test root, like the token's audit key. */
	ck_assert_int_ne(asprintf(&cmd,
	    "cd %s && openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out signer.key && "
	    "printf 'keyUsage=critical,digitalSignature\\nextendedKeyUsage=emailProtection\\n' > ext && "
	    "openssl req -new -key signer.key -subj '/CN=Test Signer' | "
	    "openssl x509 -req -CA root-ca.pem -CAkey root-ca.key -extfile ext -days 2 -out signer.pem",
	    dir), -1);
	ck_assert_int_eq(tu_sh(cmd, NULL), 0);
	free(cmd);
	snprintf(path, sizeof(path), "%s/signer.key", dir);
	f = fopen(path, "r");
	ck_assert_ptr_nonnull(f);
	key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	fclose(f);
	ck_assert_ptr_nonnull(key);
	snprintf(path, sizeof(path), "%s/signer.pem", dir);
	cert = st_x509_load(path, &err);
	ck_assert_ptr_nonnull(cert);
	ck_assert_int_eq(st_cms_sign(key, cert, NULL, data, strlen(data), &der, &der_len, &err), 0);

	snprintf(path, sizeof(path), "%s/root-ca.pem", dir);
	store = st_x509_store_load(path, &err);
	ck_assert_ptr_nonnull(store);
	ck_assert_msg(st_cms_verify(data, strlen(data), der, der_len, store, &signer, &err) == 0, "%s", err.msg);
	st_x509_subject(signer, subject, sizeof(subject));
	ck_assert_ptr_nonnull(strstr(subject, "Test Signer"));
	ck_assert_int_eq(st_cms_verify("batch bytez\n", strlen(data), der, der_len, store, NULL, &err), -1);
	ck_assert_int_eq(err.code, ST_E_VERIFY);

	snprintf(path, sizeof(path), "%s/se-vendor-root.pem", dir);
	wrong = st_x509_store_load(path, &err);
	ck_assert_int_eq(st_cms_verify(data, strlen(data), der, der_len, wrong, NULL, &err), -1);
	der[der_len / 2] ^= 1;
	ck_assert_int_eq(st_cms_verify(data, strlen(data), der, der_len, store, NULL, &err), -1);

	X509_free(signer);
	X509_free(cert);
	EVP_PKEY_free(key);
	X509_STORE_free(store);
	X509_STORE_free(wrong);
	free(der);
	tu_rmtree(dir);
	free(dir);
}
END_TEST


static void
add_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509_EXTENSION *e;

	X509V3_set_ctx(&ctx, issuer ? issuer : x, x, NULL, NULL, 0);
	ck_assert_ptr_nonnull(e = X509V3_EXT_conf_nid(NULL, &ctx, nid, value));
	ck_assert_int_eq(X509_add_ext(x, e, -1), 1);
	X509_EXTENSION_free(e);
}

/* A certificate for key valid [not_before, not_after], signed by
 * ca_key/ca (NULL: self-signed, a root); as a leaf with the audit
 * certificate's profile. */
static X509 *
make_cert(EVP_PKEY *key, const char *cn, X509 *ca, EVP_PKEY *ca_key, time_t not_before, time_t not_after)
{
	static long serial = 1;
	X509 *x = X509_new();

	ck_assert_ptr_nonnull(x);
	ck_assert_int_eq(X509_set_version(x, X509_VERSION_3), 1);
	ck_assert_int_eq(ASN1_INTEGER_set(X509_get_serialNumber(x), serial++), 1);
	ck_assert_ptr_nonnull(ASN1_TIME_set(X509_getm_notBefore(x), not_before));
	ck_assert_ptr_nonnull(ASN1_TIME_set(X509_getm_notAfter(x), not_after));
	ck_assert_int_eq(X509_set_pubkey(x, key), 1);
	ck_assert_int_eq(X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
	    (const unsigned char *)cn, -1, -1, 0), 1);
	ck_assert_int_eq(X509_set_issuer_name(x, X509_get_subject_name(ca ? ca : x)), 1);
	if (ca) {
		add_ext(x, ca, NID_key_usage, "critical,digitalSignature");
		add_ext(x, ca, NID_ext_key_usage, "emailProtection," ST_OID_ARC ".1.1");
	} else {
		add_ext(x, NULL, NID_basic_constraints, "critical,CA:TRUE");
		add_ext(x, NULL, NID_key_usage, "critical,keyCertSign,cRLSign");
		add_ext(x, NULL, NID_subject_key_identifier, "hash");
	}
	ck_assert_int_gt(X509_sign(x, ca_key ? ca_key : key, EVP_sha256()), 0);
	return x;
}

/* A detached seal over data whose signingTime says t (0: none at all). */
static uint8_t *
seal_at(EVP_PKEY *key, X509 *cert, const char *data, time_t t, size_t *len)
{
	unsigned flags = CMS_DETACHED | CMS_BINARY | CMS_PARTIAL | (t ? 0 : CMS_NOATTR);
	CMS_ContentInfo *cms = CMS_sign(NULL, NULL, NULL, NULL, flags);
	CMS_SignerInfo *si;
	ASN1_TIME *when = NULL;
	BIO *in = BIO_new_mem_buf(data, (int)strlen(data));
	unsigned char *der = NULL;
	int n;

	ck_assert_ptr_nonnull(cms);
	ck_assert_ptr_nonnull(si = CMS_add1_signer(cms, cert, key, EVP_sha256(), flags));
	if (t) {
		ck_assert_ptr_nonnull(when = ASN1_TIME_set(NULL, t));
		ck_assert_int_eq(CMS_signed_add1_attr_by_NID(si, NID_pkcs9_signingTime, when->type, when, -1), 1);
	}
	ck_assert_int_eq(CMS_final(cms, in, NULL, flags & ~CMS_PARTIAL), 1);
	ck_assert_int_gt(n = i2d_CMS_ContentInfo(cms, &der), 0);
	*len = (size_t)n;
	ASN1_TIME_free(when);
	BIO_free(in);
	CMS_ContentInfo_free(cms);
	return der;
}

/* A seal is checked at the time it was made: after its certificate
 * expired it still verifies, when it was made while the certificate was
 * valid and no earlier than what it seals. */
START_TEST(test_verify_at_seal_time)
{
	const char data[] = "batch bytes\n";
	time_t now = time(NULL), day = 86400, at = 0;
	EVP_PKEY *key = EVP_EC_gen("P-256"), *root_key = EVP_EC_gen("P-256");
	X509 *root, *cert, *signer = NULL;
	X509_STORE *store = X509_STORE_new();
	uint8_t *der;
	size_t len;
	st_err err;

	ck_assert_ptr_nonnull(key);
	ck_assert_ptr_nonnull(root_key);
	ck_assert_ptr_nonnull(store);
	root = make_cert(root_key, "Test Root", NULL, NULL, now - 30 * day, now + 30 * day);
	cert = make_cert(key, "Short-lived Audit Seal", root, root_key, now - 3 * day, now - day); /* expired yesterday */
	ck_assert_int_eq(X509_STORE_add_cert(store, root), 1);

	/* Sealed two days ago, the batch's last record a minute before. */
	der = seal_at(key, cert, data, now - 2 * day, &len);
	ck_assert_msg(st_cms_verify_at(data, strlen(data), der, len, store, now - 2 * day - 60, &at, &signer, &err) == 0,
	    "%s", err.msg);
	ck_assert_int_eq(at, now - 2 * day);
	ck_assert_int_eq(X509_cmp(signer, cert), 0);
	X509_free(signer);
	ck_assert_int_eq(X509_VERIFY_PARAM_get_flags(X509_STORE_get0_param(store)) & X509_V_FLAG_USE_CHECK_TIME, 0);
	/* Now, the certificate has expired. */
	ck_assert_int_eq(st_cms_verify(data, strlen(data), der, len, store, NULL, &err), -1);
	ck_assert_ptr_nonnull(strstr(err.msg, "expired"));
	/* A seal may not be older than what it seals. */
	ck_assert_int_eq(st_cms_verify_at(data, strlen(data), der, len, store, now - 2 * day + 60, NULL, NULL, &err), -1);
	ck_assert_int_eq(err.code, ST_E_VERIFY);
	ck_assert_msg(strstr(err.msg, "before what it signs was complete"), "%s", err.msg);
	ck_assert_int_eq(st_cms_verify_at("batch bytez\n", strlen(data), der, len, store, 0, NULL, NULL, &err), -1);
	OPENSSL_free(der);

	/* Sealed after the certificate expired: refused at its own time. */
	der = seal_at(key, cert, data, now - day / 2, &len);
	ck_assert_int_eq(st_cms_verify_at(data, strlen(data), der, len, store, now - day, NULL, NULL, &err), -1);
	ck_assert_msg(strstr(err.msg, "when it was made") && strstr(err.msg, "expired"), "%s", err.msg);
	OPENSSL_free(der);
	/* A signingTime in the future. */
	der = seal_at(key, cert, data, now + day, &len);
	ck_assert_int_eq(st_cms_verify_at(data, strlen(data), der, len, store, now - 3 * day, NULL, NULL, &err), -1);
	ck_assert_msg(strstr(err.msg, "in the future"), "%s", err.msg);
	OPENSSL_free(der);
	/* No signingTime: checked at not_before (0: now). */
	der = seal_at(key, cert, data, 0, &len);
	ck_assert_msg(st_cms_verify_at(data, strlen(data), der, len, store, now - 2 * day, &at, NULL, &err) == 0, "%s",
	    err.msg);
	ck_assert_int_eq(at, now - 2 * day);
	ck_assert_int_eq(st_cms_verify_at(data, strlen(data), der, len, store, 0, NULL, NULL, &err), -1);
	OPENSSL_free(der);
	ck_assert_int_eq(X509_VERIFY_PARAM_get_flags(X509_STORE_get0_param(store)) & X509_V_FLAG_USE_CHECK_TIME, 0);

	X509_free(cert);
	X509_free(root);
	EVP_PKEY_free(key);
	EVP_PKEY_free(root_key);
	X509_STORE_free(store);
}
END_TEST

/* A signer whose chain verified once is remembered, per trust store and
 * within its chain's validity: what it does not cover is still checked. */
START_TEST(test_verified_signer_cache)
{
	const char data[] = "batch bytes\n";
	time_t now = time(NULL), day = 86400;
	EVP_PKEY *key = EVP_EC_gen("P-256"), *root_key = EVP_EC_gen("P-256"), *other_key = EVP_EC_gen("P-256");
	X509 *root, *cert, *other_root, *other;
	X509_STORE *store = X509_STORE_new(), *empty = X509_STORE_new();
	uint8_t *der, *der_other;
	size_t len, len_other;
	st_err err;

	ck_assert_ptr_nonnull(key);
	ck_assert_ptr_nonnull(root_key);
	ck_assert_ptr_nonnull(other_key);
	root = make_cert(root_key, "Test Root", NULL, NULL, now - 30 * day, now + 30 * day);
	cert = make_cert(key, "Audit Seal", root, root_key, now - 3 * day, now + 3 * day);
	/* The same names under another root: only the chain tells them apart. */
	other_root = make_cert(other_key, "Test Root", NULL, NULL, now - 30 * day, now + 30 * day);
	other = make_cert(key, "Audit Seal", other_root, other_key, now - 3 * day, now + 3 * day);
	ck_assert_int_eq(X509_STORE_add_cert(store, root), 1);

	der = seal_at(key, cert, data, now - day, &len);
	ck_assert_msg(st_cms_verify_at(data, strlen(data), der, len, store, now - day - 60, NULL, NULL, &err) == 0, "%s",
	    err.msg);
	ck_assert_msg(st_cms_verify_at(data, strlen(data), der, len, store, now - day - 60, NULL, NULL, &err) == 0, "%s",
	    err.msg);
	/* Remembered for this store only. */
	ck_assert_int_eq(st_cms_verify_at(data, strlen(data), der, len, empty, now - day - 60, NULL, NULL, &err), -1);
	ck_assert_msg(strstr(err.msg, "signer's certificate"), "%s", err.msg);
	/* The signature itself is checked every time. */
	ck_assert_int_eq(st_cms_verify_at("batch bytez\n", strlen(data), der, len, store, now - day - 60, NULL, NULL, &err),
	    -1);
	/* The same key and names under a root the store does not hold. */
	der_other = seal_at(key, other, data, now - day, &len_other);
	ck_assert_int_eq(st_cms_verify_at(data, strlen(data), der_other, len_other, store, now - day - 60, NULL, NULL, &err),
	    -1);
	ck_assert_msg(strstr(err.msg, "signer's certificate"), "%s", err.msg);
	/* (Past the chain's validity the remembered check does not hold:
	 * test_verify_at_seal_time verifies one seal at its time, then now.) */
	/* A store freed and another made, likely at the same address (as
	 * recipe_signature_check does for each trust file), is another store. */
	X509_STORE_free(store);
	ck_assert_ptr_nonnull(store = X509_STORE_new());
	ck_assert_int_eq(st_cms_verify_at(data, strlen(data), der, len, store, now - day - 60, NULL, NULL, &err), -1);
	ck_assert_msg(strstr(err.msg, "signer's certificate"), "%s", err.msg);
	OPENSSL_free(der);
	OPENSSL_free(der_other);
	X509_free(cert);
	X509_free(root);
	X509_free(other);
	X509_free(other_root);
	EVP_PKEY_free(key);
	EVP_PKEY_free(root_key);
	EVP_PKEY_free(other_key);
	X509_STORE_free(store);
	X509_STORE_free(empty);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("cms");
	TCase *tc = tcase_create("cms");

	tcase_add_test(tc, test_sign_verify);
	tcase_add_test(tc, test_verify_at_seal_time);
	tcase_add_test(tc, test_verified_signer_cache);
	suite_add_tcase(s, tc);
	return tu_run_suite(s);
}
