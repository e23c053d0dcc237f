/* Fuzz target: arbitrary bytes as the CSR an SE returns.  Whatever parses
 * and verifies must issue a leaf that carries exactly the CSR's key and
 * verifies under the (in-memory) CA. */
#include <stdlib.h>

#include <openssl/x509v3.h>

#include "hsm-int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static EVP_PKEY *ca_key;
static X509 *ca_cert;

static void
make_ca(void)
{
	X509_NAME *n = X509_NAME_new();
	X509V3_CTX v3;
	X509_EXTENSION *e;

	ca_key = EVP_EC_gen("P-256");
	ca_cert = X509_new();
	if (!n || !ca_key || !ca_cert)
		abort();
	X509_set_version(ca_cert, X509_VERSION_3);
	ASN1_INTEGER_set(X509_get_serialNumber(ca_cert), 1);
	X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)"Fuzz CA", -1, -1, 0);
	X509_set_subject_name(ca_cert, n);
	X509_set_issuer_name(ca_cert, n);
	X509_gmtime_adj(X509_getm_notBefore(ca_cert), 0);
	X509_gmtime_adj(X509_getm_notAfter(ca_cert), 86400L);
	X509_set_pubkey(ca_cert, ca_key);
	X509V3_set_ctx(&v3, ca_cert, ca_cert, NULL, NULL, 0);
	e = X509V3_EXT_conf_nid(NULL, &v3, NID_subject_key_identifier, "hash");
	X509_add_ext(ca_cert, e, -1);
	X509_EXTENSION_free(e);
	X509_sign(ca_cert, ca_key, EVP_sha256());
	X509_NAME_free(n);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const san[] = { "URI:urn:fuzz:1" };
	hsm_leaf_profile p = { 0 };
	X509_REQ *csr;
	X509 *leaf = NULL;
	st_err err;

	if (!ca_key)
		make_ca();
	if (!(csr = hsm_csr_from_der(data, size, &err)))
		return 0;
	if (hsm_csr_verify(csr, &err) == 0) {
		p.serial_number = "FUZZ0001";
		p.common_name = "Fuzz";
		p.san = san;
		p.n_san = 1;
		p.validity_days = 1;
		if (hsm_leaf_build(ca_key, EVP_sha256(), ca_cert, csr, &p, &leaf, &err) < 0)
			abort(); /* a verified CSR always yields a certificate */
		if (EVP_PKEY_eq(X509_get0_pubkey(leaf), X509_REQ_get0_pubkey(csr)) != 1 ||
		    X509_verify(leaf, ca_key) != 1)
			abort();
		X509_free(leaf);
	}
	X509_REQ_free(csr);
	return 0;
}
