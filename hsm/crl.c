/* CRLs and detached CMS signatures made with keys in the token. */
#include <ctype.h>
#include <string.h>
#include <strings.h>

#include <openssl/bn.h>
#include <openssl/x509v3.h>

#include "cms.h"
#include "hsm-int.h"

static const struct {
	int code;
	const char *name;
} reasons[] = {
	{ HSM_CRL_UNSPECIFIED, "unspecified" },
	{ HSM_CRL_KEY_COMPROMISE, "keyCompromise" },
	{ HSM_CRL_CA_COMPROMISE, "cACompromise" },
	{ HSM_CRL_AFFILIATION_CHANGED, "affiliationChanged" },
	{ HSM_CRL_SUPERSEDED, "superseded" },
	{ HSM_CRL_CESSATION_OF_OPERATION, "cessationOfOperation" },
	{ HSM_CRL_CERTIFICATE_HOLD, "certificateHold" },
	{ HSM_CRL_REMOVE_FROM_CRL, "removeFromCRL" },
	{ HSM_CRL_PRIVILEGE_WITHDRAWN, "privilegeWithdrawn" },
	{ HSM_CRL_AA_COMPROMISE, "aACompromise" },
};

int
hsm_crl_reason_from_name(const char *name)
{
	size_t i;

	for (i = 0; name && i < sizeof(reasons) / sizeof(reasons[0]); i++)
		if (strcasecmp(name, reasons[i].name) == 0)
			return reasons[i].code;
	return -1;
}

const char *
hsm_crl_reason_name(int reason)
{
	size_t i;

	for (i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++)
		if (reasons[i].code == reason)
			return reasons[i].name;
	return NULL;
}

/* Certificate serials: 1..40 hex digits (RFC 5280 allows 20 octets). */
static ASN1_INTEGER *
serial_from_hex(const char *hex, st_err *err)
{
	BIGNUM *bn = NULL;
	ASN1_INTEGER *ai = NULL;
	size_t i, len = hex ? strlen(hex) : 0;

	if (len == 0 || len > 40) {
		st_err_set(err, ST_E_CONFIG, "serial \"%s\": 1 to 40 hex digits expected", hex ? hex : "");
		return NULL;
	}
	for (i = 0; i < len; i++)
		if (!isxdigit((unsigned char)hex[i])) {
			st_err_set(err, ST_E_CONFIG, "serial \"%s\": not hexadecimal", hex);
			return NULL;
		}
	if (!BN_hex2bn(&bn, hex) || !(ai = BN_to_ASN1_INTEGER(bn, NULL)))
		st_err_openssl(err, ST_E_NOMEM, "serial \"%s\"", hex);
	BN_free(bn);
	return ai;
}

static int
add_entry(X509_CRL *crl, const hsm_revoked *e, st_err *err)
{
	X509_REVOKED *r = NULL;
	ASN1_INTEGER *serial = NULL;
	ASN1_TIME *when = NULL;
	ASN1_ENUMERATED *reason = NULL;
	int ret = -1;

	if (!hsm_crl_reason_name(e->reason))
		return st_err_set(err, ST_E_CONFIG, "serial %s: unknown revocation reason %d", e->serial_hex, e->reason);
	if (!(serial = serial_from_hex(e->serial_hex, err)))
		goto out;
	if (!(r = X509_REVOKED_new()) || !(when = ASN1_TIME_set(NULL, e->revoked_at)) ||
	    !X509_REVOKED_set_serialNumber(r, serial) || !X509_REVOKED_set_revocationDate(r, when)) {
		st_err_openssl(err, ST_E_NOMEM, "CRL entry %s", e->serial_hex);
		goto out;
	}
	/* RFC 5280 5.3.1: omit the reason rather than say "unspecified". */
	if (e->reason != HSM_CRL_UNSPECIFIED) {
		if (!(reason = ASN1_ENUMERATED_new()) || !ASN1_ENUMERATED_set(reason, e->reason) ||
		    X509_REVOKED_add1_ext_i2d(r, NID_crl_reason, reason, 0, X509V3_ADD_DEFAULT) != 1) {
			st_err_openssl(err, ST_E_INTERNAL, "CRL entry %s: reason", e->serial_hex);
			goto out;
		}
	}
	if (!X509_CRL_add0_revoked(crl, r)) {
		st_err_openssl(err, ST_E_NOMEM, "CRL entry %s", e->serial_hex);
		goto out;
	}
	r = NULL; /* owned by crl */
	ret = 0;
out:
	ASN1_ENUMERATED_free(reason);
	ASN1_TIME_free(when);
	ASN1_INTEGER_free(serial);
	X509_REVOKED_free(r);
	return ret;
}

int
hsm_crl_sign(hsm_key *ca_key, X509 *ca_cert, const hsm_revoked *entries, size_t n, time_t this_update,
    time_t next_update, uint64_t crl_number, X509_CRL **out, st_err *err)
{
	X509_CRL *crl = NULL;
	ASN1_TIME *t = NULL;
	ASN1_INTEGER *num = NULL;
	AUTHORITY_KEYID *aki = NULL;
	STACK_OF(X509_REVOKED) *revoked;
	size_t i;
	int ret = -1;

	*out = NULL;
	if (!ca_key->md)
		return st_err_set(err, ST_E_CONFIG, "key \"%s\" (%s) cannot sign CRLs", ca_key->label, ca_key->desc);
	if (next_update <= this_update)
		return st_err_set(err, ST_E_CONFIG, "CRL nextUpdate must be after thisUpdate");
	if (hsm_key_check_cert(ca_key, ca_cert, err) < 0)
		return -1;
	if (!(crl = X509_CRL_new()) || !X509_CRL_set_version(crl, X509_CRL_VERSION_2) ||
	    !X509_CRL_set_issuer_name(crl, X509_get_subject_name(ca_cert))) {
		st_err_openssl(err, ST_E_NOMEM, "CRL");
		goto out;
	}
	if (!(t = ASN1_TIME_set(NULL, this_update)) || !X509_CRL_set1_lastUpdate(crl, t) ||
	    !ASN1_TIME_set(t, next_update) || !X509_CRL_set1_nextUpdate(crl, t)) {
		st_err_openssl(err, ST_E_INTERNAL, "CRL times");
		goto out;
	}
	for (i = 0; i < n; i++)
		if (add_entry(crl, &entries[i], err) < 0)
			goto out;
	if (!X509_CRL_sort(crl)) {
		st_err_openssl(err, ST_E_INTERNAL, "CRL sort");
		goto out;
	}
	revoked = X509_CRL_get_REVOKED(crl);
	for (i = 1; i < n; i++) {
		if (ASN1_INTEGER_cmp(X509_REVOKED_get0_serialNumber(sk_X509_REVOKED_value(revoked, (int)i - 1)),
		        X509_REVOKED_get0_serialNumber(sk_X509_REVOKED_value(revoked, (int)i))) == 0) {
			st_err_set(err, ST_E_CONFIG, "CRL: a serial number is listed twice");
			goto out;
		}
	}
	if (!(num = ASN1_INTEGER_new()) || !ASN1_INTEGER_set_uint64(num, crl_number) ||
	    X509_CRL_add1_ext_i2d(crl, NID_crl_number, num, 0, X509V3_ADD_DEFAULT) != 1) {
		st_err_openssl(err, ST_E_INTERNAL, "CRL number");
		goto out;
	}
	if (!(aki = hsm_aki_new(ca_cert, err)))
		goto out;
	if (X509_CRL_add1_ext_i2d(crl, NID_authority_key_identifier, aki, 0, X509V3_ADD_DEFAULT) != 1) {
		st_err_openssl(err, ST_E_INTERNAL, "CRL authorityKeyIdentifier");
		goto out;
	}
	hsm_sign_rv_clear();
	if (X509_CRL_sign(crl, ca_key->pkey, ca_key->md) <= 0) {
		hsm_err_sign(err, "CRL signature in the token");
		goto out;
	}
	*out = crl;
	crl = NULL; /* owned by the caller */
	ret = 0;
out:
	AUTHORITY_KEYID_free(aki);
	ASN1_INTEGER_free(num);
	ASN1_TIME_free(t);
	X509_CRL_free(crl);
	if (ret < 0)
		st_err_prefix(err, "CRL with key \"%s\" in token \"%s\"", ca_key->label, ca_key->ctx->token);
	return ret;
}

int
hsm_cms_sign(hsm_key *key, X509 *cert, STACK_OF(X509) *chain, const void *data, size_t len, uint8_t **der,
    size_t *der_len, st_err *err)
{
	*der = NULL;
	*der_len = 0;
	if (hsm_key_check_cert(key, cert, err) < 0)
		return -1;
	if (st_cms_sign(key->pkey, cert, chain, data, len, der, der_len, err) < 0)
		return st_err_prefix(err, "CMS signature with key \"%s\" in token \"%s\"", key->label, key->ctx->token);
	return 0;
}
