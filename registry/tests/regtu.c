/* Stations for the registry tests (regtu.h). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "regtu.h"
#include "cms.h"

unsigned regtu_batch_devices = 4;
const char *regtu_attest_as;
static EVP_PKEY *ca_key;
static X509_NAME *ca_name;

EVP_PKEY *
regtu_key(void)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");

	ck_assert_ptr_nonnull(k);
	return k;
}

/* The issuer: the test intermediate's name, a key of our own (the registry
 * reads certificates, it does not verify device certificates). */
static void
ca_init(void)
{
	char path[4096];
	X509 *inter;
	st_err err;

	if (ca_key)
		return;
	snprintf(path, sizeof(path), "%s/intermediate.pem", tu_pki);
	inter = st_x509_load(path, &err);
	ck_assert_msg(inter != NULL, "%s", err.msg);
	ca_name = X509_NAME_dup(X509_get_subject_name(inter));
	X509_free(inter);
	ca_key = regtu_key();
}

static char *
make_cert_b64(const char *device, const char *serial_hex, EVP_PKEY *key, char sha_hex[65])
{
	X509 *x = X509_new();
	BIGNUM *bn = NULL;
	unsigned char *der = NULL, h[32];
	char *b64;
	int len;

	ca_init();
	ck_assert_int_gt(BN_hex2bn(&bn, serial_hex), 0);
	BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x));
	BN_free(bn);
	X509_set_version(x, 2);
	X509_set_issuer_name(x, ca_name);
	X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC, (const unsigned char *)device, -1, -1, 0);
	X509_gmtime_adj(X509_getm_notBefore(x), 0);
	X509_gmtime_adj(X509_getm_notAfter(x), 86400L * 365);
	X509_set_pubkey(x, key);
	ck_assert_int_gt(X509_sign(x, ca_key, EVP_sha256()), 0);
	len = i2d_X509(x, &der);
	ck_assert_int_gt(len, 0);
	st_sha256(der, (size_t)len, h);
	st_hex(h, 32, sha_hex);
	b64 = malloc((size_t)(4 * ((len + 2) / 3) + 1));
	EVP_EncodeBlock((unsigned char *)b64, der, len);
	OPENSSL_free(der);
	X509_free(x);
	return b64;
}

void
regtu_station_open(regtu_station *s, const char *station, const char *signer)
{
	audit_config cfg = { 0 };
	st_err err;

	memset(s, 0, sizeof(*s));
	s->dir = tu_tmpdir("regj");
	atu_signer_load(&s->sg, tu_pki, signer);
	cfg.station = station;
	cfg.operator_name = "test operator";
	cfg.recipe = "0123abcd";
	cfg.batch_devices = regtu_batch_devices;
	cfg.signer = &s->sg.s;
	s->j = audit_open(s->dir, &cfg, &err);
	ck_assert_msg(s->j != NULL, "%s", err.msg);
}

void
regtu_station_close(regtu_station *s)
{
	audit_close(s->j);
	atu_signer_clear(&s->sg);
	tu_rmtree(s->dir);
	free(s->dir);
	memset(s, 0, sizeof(*s));
}

static void
append(regtu_station *s, const char *device, const char *step, const char *result, json_t *details, int rework)
{
	audit_event ev = { "tcp:127.0.0.1:7700", device, step, result, details, 1 };
	st_err err;

	json_t *rw;

	if (rework) {
		rw = json_pack("{s:b,s:s,s:s}", "rework", 1, "reason", "test", "authorized_by", "qa");
		json_object_update(details, rw);
		json_decref(rw);
	}
	ck_assert_msg(audit_append(s->j, &ev, NULL, &err) == 0, "%s", err.msg);
	json_decref(details);
}

void
regtu_provision(regtu_station *s, const char *device, const char *serial, EVP_PKEY *key, int rework)
{
	EVP_PKEY *own = key ? NULL : regtu_key();
	X509_PUBKEY *xpk = NULL;
	const unsigned char *pt;
	unsigned char h[32];
	char pkhex[65], certhex[65], attest[65], *b64;
	int ptlen;

	if (!key)
		key = own;
	/* The key's EC point, as the jig returns it and keygen journals its hash. */
	ck_assert_int_eq(X509_PUBKEY_set(&xpk, key), 1);
	ck_assert_int_eq(X509_PUBKEY_get0_param(NULL, &pt, &ptlen, NULL, xpk), 1);
	st_sha256(pt, (size_t)ptlen, h);
	st_hex(h, 32, pkhex);
	X509_PUBKEY_free(xpk);
	b64 = make_cert_b64(device, serial, key, certhex);
	/* The SE's attestation certificate, as identify journals its hash: one per SE. */
	st_sha256_hex(regtu_attest_as ? regtu_attest_as : device, strlen(regtu_attest_as ? regtu_attest_as : device),
	    attest);
	append(s, device, "identify", "ok", json_pack("{s:s,s:s,s:s,s:s}", "model", "TEST-SE", "firmware", "1.2.3",
	                                        "lifecycle", "blank", "attestation_sha256", attest), rework);
	append(s, device, "keygen", "ok", json_pack("{s:s,s:i,s:b}", "pubkey_sha256", pkhex, "slot", 0, "kept", 0), rework);
	append(s, device, "issuing", "ok", json_pack("{s:s}", "cert_serial", serial), rework);
	append(s, device, "issued", "ok", json_pack("{s:s,s:s,s:s}", "cert_serial", serial, "cert_sha256", certhex, "cert",
	                                      b64), rework);
	append(s, device, "done", "pass", json_pack("{s:s}", "cert_serial", serial), rework);
	free(b64);
	EVP_PKEY_free(own);
}

void
regtu_append(regtu_station *s, const char *device, const char *step, const char *result, json_t *details)
{
	append(s, device, step, result, details, 0);
}

void
regtu_revoke(regtu_station *s, const char *device, const char *serial)
{
	append(s, device, "revoke", "ok", json_pack("{s:s,s:s,s:s}", "cert_serial", serial, "reason", "keyCompromise",
	                                      "revoked_by", "qa"), 0);
}

char *
regtu_export(regtu_station *s)
{
	audit_export_info info;
	char *out = tu_tmpdir("regb");
	st_err err;

	ck_assert_msg(audit_seal_now(s->j, &err) == 0, "%s", err.msg);
	ck_assert_msg(audit_export(s->dir, out, &s->sg.s, &info, &err) == 0, "%s", err.msg);
	return out;
}

char *
regtu_fresh_db(const pgtu *pg, const char *name, char **admin)
{
	char *a = pgtu_createdb(pg, name), *out = NULL;
	char *argv[] = { getenv("STATION_REGISTRY_EXE"), (char *)"--db", a, (char *)"init", NULL };
	int rc = tu_run(argv, &out);

	ck_assert_msg(rc == 0, "init: %s", out);
	free(out);
	if (admin)
		*admin = a;
	else
		free(a);
	return pgtu_db(pg, name, "registry_ingest");
}

int
regtu_reg(const char *db, char **out, const char *fmt, ...)
{
	char *prefix = NULL;
	va_list ap;
	int rc;

	ck_assert_int_ne(asprintf(&prefix, "'%s' --db '%s' ", getenv("STATION_REGISTRY_EXE"), db), -1);
	va_start(ap, fmt);
	rc = tu_vshf(out, prefix, fmt, ap);
	va_end(ap);
	free(prefix);
	return rc;
}

int
regtu_ingest(const char *db, const char *bundle, char **out)
{
	return regtu_reg(db, out, "ingest --enroll --ca '%s/root-ca.pem' '%s'", tu_pki, bundle);
}
