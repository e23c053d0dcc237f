#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "cms.h"
#include "hsm-tu.h"

hsm_ctx *
ht_open(void)
{
	st_err err;
	hsm_ctx *ctx;

	st_err_clear(&err);
	/* libhsm consumes the PIN variable (unset and wiped): set it for each open */
	setenv("STATION_HSM_PIN", "123456", 1); /* test PIN, see fixtures/make-test-pki */
	ctx = hsm_open(NULL, "station-test", NULL, &err);
	ck_assert_msg(ctx != NULL, "hsm_open: %s", err.msg);
	return ctx;
}

X509 *
ht_cert(const char *dir, const char *name)
{
	char *p = tu_path(dir, name);
	st_err err;
	X509 *x = st_x509_load(p, &err);

	ck_assert_msg(x != NULL, "%s", err.msg);
	free(p);
	return x;
}

EVP_PKEY *
ht_ec_key(const char *curve)
{
	EVP_PKEY *k = EVP_EC_gen(curve);

	ck_assert_ptr_nonnull(k);
	return k;
}

static void
add_req_ext(STACK_OF(X509_EXTENSION) *exts, int nid, const char *value)
{
	X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, NULL, nid, value);

	ck_assert_ptr_nonnull(e);
	ck_assert(sk_X509_EXTENSION_push(exts, e));
}

X509_REQ *
ht_csr(EVP_PKEY *key, EVP_PKEY *signer)
{
	X509_REQ *req = X509_REQ_new();
	X509_NAME *name = X509_NAME_new();
	STACK_OF(X509_EXTENSION) *exts = sk_X509_EXTENSION_new_null();

	ck_assert(req && name && exts);
	ck_assert(X509_REQ_set_version(req, 0));
	ck_assert(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"Evil", -1, -1, 0));
	ck_assert(X509_NAME_add_entry_by_txt(name, "serialNumber", MBSTRING_ASC, (const unsigned char *)"EVIL", -1, -1,
	    0));
	ck_assert(X509_REQ_set_subject_name(req, name));
	add_req_ext(exts, NID_basic_constraints, "critical,CA:TRUE");
	add_req_ext(exts, NID_key_usage, "critical,keyCertSign,cRLSign");
	add_req_ext(exts, NID_subject_alt_name, "DNS:evil.example");
	ck_assert(X509_REQ_add_extensions(req, exts));
	ck_assert(X509_REQ_set_pubkey(req, key));
	ck_assert(X509_REQ_sign(req, signer ? signer : key, EVP_sha256()) > 0);
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	X509_NAME_free(name);
	return req;
}

hsm_leaf_profile
ht_profile(const char *serial)
{
	static const char *const san[] = { "URI:urn:dev:station-test:SE0001", "DNS:se0001.devices.example" };
	static const char *const eku[] = { "clientAuth" };
	hsm_leaf_profile p;

	memset(&p, 0, sizeof(p));
	p.serial_number = serial ? serial : "SE0001";
	p.organization = "Station Test";
	p.org_unit = "Line 1";
	p.common_name = "Widget 3000";
	p.san = san;
	p.n_san = 2;
	p.validity_days = 3650;
	p.eku = eku;
	p.n_eku = 1;
	return p;
}

void
ht_write_pem(const char *path, X509 *cert)
{
	FILE *f = fopen(path, "w");

	ck_assert_ptr_nonnull(f);
	ck_assert(PEM_write_X509(f, cert));
	ck_assert_int_eq(fclose(f), 0);
}

int
ht_sh(const char *dir, char **out, const char *fmt, ...)
{
	char *prefix = NULL;
	va_list ap;
	int rc;

	ck_assert_int_ne(asprintf(&prefix, "cd '%s' && ", dir), -1);
	va_start(ap, fmt);
	rc = tu_vshf(out, prefix, fmt, ap);
	va_end(ap);
	free(prefix);
	return rc;
}

void
ht_verify_both(const char *dir, X509 *leaf)
{
	char *p = tu_path(dir, "leaf.pem");
	char *out = NULL;
	int rc;

	ht_write_pem(p, leaf);
	rc = ht_sh(dir, &out, "openssl verify -x509_strict -CAfile root-ca.pem -untrusted intermediate.pem leaf.pem");
	ck_assert_msg(rc == 0 && strstr(out, "leaf.pem: OK"), "openssl verify (%d): %s", rc, out);
	free(out);
	rc = ht_sh(dir, &out, "cat leaf.pem intermediate.pem root-ca.pem > gnutls-chain.pem && "
	    "certtool --verify-chain --infile gnutls-chain.pem");
	ck_assert_msg(rc == 0 && strstr(out, "Chain verification output: Verified"), "certtool --verify-chain (%d): %s",
	    rc, out);
	free(out);
	rc = ht_sh(dir, &out, "cat leaf.pem intermediate.pem > gnutls-leaf.pem && "
	    "certtool --verify --load-ca-certificate root-ca.pem --infile gnutls-leaf.pem");
	ck_assert_msg(rc == 0 && strstr(out, "Chain verification output: Verified"), "certtool --verify (%d): %s", rc,
	    out);
	free(out);
	free(p);
}
