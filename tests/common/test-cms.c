#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/pem.h>

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

int
main(void)
{
	Suite *s = suite_create("cms");
	TCase *tc = tcase_create("cms");

	tcase_add_test(tc, test_sign_verify);
	suite_add_tcase(s, tc);
	return tu_run_suite(s);
}
