/* Leaf certificates from a verified CSR.  Only the CSR's public key is
 * used: subject, SAN, validity and extensions come from the profile the
 * caller expanded from the recipe and attested device facts (DESIGN.md,
 * invariant 3).  Extensions are built as structures, never parsed from
 * strings, so a value cannot smuggle in a second SAN entry or option. */
/* EC_KEY: see set_pubkey() */
#define OPENSSL_SUPPRESS_DEPRECATED

#include <ctype.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "hsm-int.h"

X509_REQ *
hsm_csr_from_der(const uint8_t *der, size_t len, st_err *err)
{
	const unsigned char *p = der;
	X509_REQ *req = NULL;

	if (!der || len == 0 || len > LONG_MAX) {
		st_err_set(err, ST_E_VERIFY, "CSR: empty or too large");
		return NULL;
	}
	if (!(req = d2i_X509_REQ(NULL, &p, (long)len)) || p != der + len) {
		X509_REQ_free(req);
		st_err_openssl(err, ST_E_VERIFY, "CSR: not a DER PKCS#10 request");
		return NULL;
	}
	return req;
}

X509_REQ *
hsm_csr_from_parts(const char *cn, const uint8_t *spki, size_t spki_len, const uint8_t *sig, size_t sig_len,
    const uint8_t *der, size_t der_len)
{
	const unsigned char *p = spki;
	const EC_GROUP *g;
	EC_KEY *ec = NULL;
	EVP_PKEY *key = NULL;
	X509_REQ *req = NULL;
	X509_ALGOR *alg = NULL;
	ASN1_BIT_STRING *bits = NULL;
	unsigned char *enc = NULL;
	int n, same = 0;

	if (spki_len > LONG_MAX || sig_len > INT_MAX)
		return NULL;
	/* Only the canonical key (P-256 or P-384 by name, an uncompressed
	 * point) takes this route; anything else is the parser's to judge. */
	if (!(ec = d2i_EC_PUBKEY(NULL, &p, (long)spki_len)) || p != spki + spki_len)
		goto out;
	g = EC_KEY_get0_group(ec);
	if (!(EC_GROUP_get_asn1_flag(g) & OPENSSL_EC_NAMED_CURVE) ||
	    (EC_GROUP_get_curve_name(g) != NID_X9_62_prime256v1 && EC_GROUP_get_curve_name(g) != NID_secp384r1) ||
	    EC_KEY_get_conv_form(ec) != POINT_CONVERSION_UNCOMPRESSED || !(key = EVP_PKEY_new()) ||
	    !EVP_PKEY_assign_EC_KEY(key, ec))
		goto out;
	ec = NULL; /* owned by key */
	if (!(req = X509_REQ_new()) || !X509_REQ_set_version(req, X509_REQ_VERSION_1) ||
	    !X509_NAME_add_entry_by_NID(X509_REQ_get_subject_name(req), NID_commonName, V_ASN1_UTF8STRING,
	        (const unsigned char *)cn, -1, -1, 0) ||
	    !X509_REQ_set_pubkey(req, key) || !(alg = X509_ALGOR_new()) ||
	    !X509_ALGOR_set0(alg, OBJ_nid2obj(NID_ecdsa_with_SHA256), V_ASN1_UNDEF, NULL) ||
	    !X509_REQ_set1_signature_algo(req, alg) || !(bits = ASN1_BIT_STRING_new()) ||
	    !ASN1_BIT_STRING_set(bits, (unsigned char *)sig, (int)sig_len))
		goto out;
	bits->flags = (bits->flags & ~0x07L) | ASN1_STRING_FLAG_BITS_LEFT; /* no unused bits */
	X509_REQ_set0_signature(req, bits);
	bits = NULL; /* owned by req */
	n = i2d_X509_REQ(req, &enc);
	same = n > 0 && (size_t)n == der_len && memcmp(enc, der, der_len) == 0;
out:
	OPENSSL_free(enc);
	ASN1_BIT_STRING_free(bits);
	X509_ALGOR_free(alg);
	EVP_PKEY_free(key);
	EC_KEY_free(ec);
	ERR_clear_error();
	if (!same) {
		X509_REQ_free(req);
		return NULL;
	}
	return req;
}

/* EC P-256 or P-384 on a named curve, nothing else. */
static int
check_leaf_key(EVP_PKEY *pub, st_err *err)
{
	char group[64] = "", enc[32] = "";
	size_t n = 0;

	if (EVP_PKEY_get_base_id(pub) != EVP_PKEY_EC)
		return st_err_set(err, ST_E_VERIFY, "CSR key is %s, not EC (P-256 or P-384 required)",
		    OBJ_nid2sn(EVP_PKEY_get_base_id(pub)));
	if (!EVP_PKEY_get_group_name(pub, group, sizeof(group), &n) ||
	    (strcmp(group, "prime256v1") != 0 && strcmp(group, "secp384r1") != 0)) {
		ERR_clear_error();
		return st_err_set(err, ST_E_VERIFY, "CSR key is on curve \"%s\" (P-256 or P-384 required)",
		    group[0] ? group : "unknown");
	}
	if (EVP_PKEY_get_utf8_string_param(pub, OSSL_PKEY_PARAM_EC_ENCODING, enc, sizeof(enc), &n) &&
	    strcmp(enc, OSSL_PKEY_EC_ENCODING_GROUP) != 0)
		return st_err_set(err, ST_E_VERIFY, "CSR key has explicit curve parameters (a named curve is required)");
	ERR_clear_error();
	return 0;
}

/* The CSR this thread verified last, by address and the SHA-256 of its DER:
 * hsm_leaf_build re-checks the policy on every CSR but does not verify the
 * same bytes' signature a second time (the station verifies at VERIFY and
 * issues right after, on the same thread).  The hash covers the whole CSR,
 * signature included, so a CSR changed since is verified again. */
static _Thread_local struct {
	const X509_REQ *csr;
	uint8_t sha256[32];
} verified;

static int
csr_sha256(X509_REQ *csr, uint8_t out[32])
{
	unsigned char *der = NULL;
	int n = i2d_X509_REQ(csr, &der);

	if (n <= 0)
		return -1;
	st_sha256(der, (size_t)n, out);
	OPENSSL_free(der);
	return 0;
}

static int
csr_check(X509_REQ *csr, int known_good, st_err *err);

int
hsm_csr_verify(X509_REQ *csr, st_err *err)
{
	return csr_check(csr, 0, err);
}

static int
csr_check(X509_REQ *csr, int known_good, st_err *err)
{
	EVP_PKEY *pub;
	uint8_t h[32];
	int nid;

	if (!csr)
		return st_err_set(err, ST_E_VERIFY, "no CSR");
	if (!(pub = X509_REQ_get0_pubkey(csr)))
		return st_err_openssl(err, ST_E_VERIFY, "CSR has no usable public key");
	if (check_leaf_key(pub, err) < 0)
		return -1;
	nid = X509_REQ_get_signature_nid(csr);
	if (nid != NID_ecdsa_with_SHA256 && nid != NID_ecdsa_with_SHA384 && nid != NID_ecdsa_with_SHA512)
		return st_err_set(err, ST_E_VERIFY, "CSR signature algorithm %s is not accepted (ECDSA with SHA-256/384/512)",
		    OBJ_nid2sn(nid));
	if (csr_sha256(csr, h) < 0)
		return st_err_openssl(err, ST_E_VERIFY, "CSR encoding");
	if (known_good && verified.csr == csr && memcmp(verified.sha256, h, sizeof(h)) == 0)
		return 0; /* these very bytes verified on this thread */
	if (X509_REQ_verify(csr, pub) != 1)
		return st_err_openssl(err, ST_E_VERIFY, "CSR self-signature does not verify (no proof of possession)");
	verified.csr = csr;
	memcpy(verified.sha256, h, sizeof(h));
	return 0;
}

int
hsm_serial_new(char hex[HSM_SERIAL_HEX_MAX], st_err *err)
{
	unsigned char b[16];
	BIGNUM *bn = NULL;
	char *h = NULL;
	int ret = -1;

	hex[0] = '\0';
	/* Drawn again in the (2^-63) case that leading zero bytes leave fewer than 64 bits. */
	do {
		if (RAND_bytes(b, sizeof(b)) != 1) {
			st_err_openssl(err, ST_E_CRYPTO, "serial number");
			goto out;
		}
		b[0] &= 0x7f; /* positive in DER without a leading zero byte */
		if (!(bn = BN_bin2bn(b, sizeof(b), bn))) {
			st_err_openssl(err, ST_E_NOMEM, "serial number");
			goto out;
		}
	} while (BN_num_bits(bn) < 64);
	if (!(h = BN_bn2hex(bn))) {
		st_err_openssl(err, ST_E_NOMEM, "serial number");
		goto out;
	}
	snprintf(hex, HSM_SERIAL_HEX_MAX, "%s", h);
	ret = 0;
out:
	OPENSSL_free(h);
	BN_free(bn);
	return ret;
}

/* The profile's serial (hex) or a fresh one: positive, 64 to 159 bits (at
 * most 20 octets in DER, RFC 5280 4.1.2.2). */
static int
set_serial(X509 *x, const char *serial_hex, st_err *err)
{
	char fresh[HSM_SERIAL_HEX_MAX];
	BIGNUM *bn = NULL;
	size_t i, len;
	int ret = -1;

	if (!serial_hex) {
		if (hsm_serial_new(fresh, err) < 0)
			return -1;
		serial_hex = fresh;
	}
	len = strlen(serial_hex);
	for (i = 0; i < len; i++)
		if (!isxdigit((unsigned char)serial_hex[i]))
			return st_err_set(err, ST_E_CONFIG, "serial \"%s\" is not hexadecimal", serial_hex);
	if (len == 0 || len > 40 || !BN_hex2bn(&bn, serial_hex)) {
		st_err_set(err, ST_E_CONFIG, "serial \"%s\": 1 to 40 hex digits expected", serial_hex);
		goto out;
	}
	if (BN_num_bits(bn) < 64 || BN_num_bits(bn) > 159) {
		st_err_set(err, ST_E_CONFIG, "serial \"%s\" has %d bits (64 to 159 required)", serial_hex, BN_num_bits(bn));
		goto out;
	}
	if (!BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x))) {
		st_err_openssl(err, ST_E_NOMEM, "serial number");
		goto out;
	}
	ret = 0;
out:
	BN_free(bn);
	return ret;
}

static int
add_name(X509_NAME *name, int nid, const char *value, const char *field, int required, st_err *err)
{
	if (!value || !*value) {
		if (required)
			return st_err_set(err, ST_E_CONFIG, "profile: %s is empty", field);
		return 0;
	}
	if (!X509_NAME_add_entry_by_NID(name, nid, MBSTRING_UTF8, (const unsigned char *)value, -1, -1, 0))
		return st_err_openssl(err, ST_E_CONFIG, "profile: %s \"%s\" is not allowed in a certificate subject", field,
		    value);
	return 0;
}

static int
set_subject(X509 *x, const hsm_leaf_profile *p, st_err *err)
{
	X509_NAME *name = X509_NAME_new();
	int ret = -1;

	if (!name)
		return st_err_openssl(err, ST_E_NOMEM, "subject");
	if (add_name(name, NID_organizationName, p->organization, "organization", 0, err) < 0 ||
	    add_name(name, NID_organizationalUnitName, p->org_unit, "organizational unit", 0, err) < 0 ||
	    add_name(name, NID_commonName, p->common_name, "common name", 1, err) < 0 ||
	    add_name(name, NID_serialNumber, p->serial_number, "serial number", 1, err) < 0)
		goto out;
	if (!X509_set_subject_name(x, name)) {
		st_err_openssl(err, ST_E_NOMEM, "subject");
		goto out;
	}
	ret = 0;
out:
	X509_NAME_free(name);
	return ret;
}

static int
set_validity(X509 *x, const hsm_leaf_profile *p, st_err *err)
{
	time_t now = time(NULL);
	time_t nb = p->not_before ? p->not_before : now;

	if (!X509_time_adj_ex(X509_getm_notBefore(x), 0, 0, &nb))
		return st_err_openssl(err, ST_E_CONFIG, "profile: notBefore");
	if (p->no_expiry || p->not_after) {
		const char *na = p->not_after ? p->not_after : "99991231235959Z";

		/* RFC 5280 encoding: UTCTime through 2049, GeneralizedTime after. */
		if (strlen(na) != 15 || na[14] != 'Z' || !ASN1_TIME_set_string_X509(X509_getm_notAfter(x), na))
			return st_err_set(err, ST_E_CONFIG, "profile: notAfter \"%s\" is not YYYYMMDDHHMMSSZ", na);
	} else {
		/* Beyond ~200 years use no_expiry: the profile means "forever". */
		if (p->validity_days == 0 || p->validity_days > 73000)
			return st_err_set(err, ST_E_CONFIG, "profile: validity of %u days (1..73000, or no expiry)",
			    p->validity_days);
		if (!X509_time_adj_ex(X509_getm_notAfter(x), (int)p->validity_days, 0, &now))
			return st_err_openssl(err, ST_E_CONFIG, "profile: notAfter");
	}
	if (ASN1_TIME_compare(X509_get0_notBefore(x), X509_get0_notAfter(x)) >= 0)
		return st_err_set(err, ST_E_CONFIG, "profile: notBefore is not before notAfter");
	return 0;
}

/* "URI:scheme:..." or "DNS:host.name"; IA5 printable, no spaces. */
static int
add_san(GENERAL_NAMES *gens, const char *entry, st_err *err)
{
	GENERAL_NAME *g = NULL;
	ASN1_IA5STRING *s = NULL;
	const char *v;
	int type, ret = -1;
	size_t i, len;

	if (!entry)
		return st_err_set(err, ST_E_CONFIG, "profile: empty SAN entry");
	if (strncmp(entry, "URI:", 4) == 0)
		type = GEN_URI;
	else if (strncmp(entry, "DNS:", 4) == 0)
		type = GEN_DNS;
	else
		return st_err_set(err, ST_E_CONFIG, "profile: SAN entry \"%s\" must start with URI: or DNS:", entry);
	v = entry + 4;
	len = strlen(v);
	if (len == 0 || len > 1024)
		return st_err_set(err, ST_E_CONFIG, "profile: SAN entry \"%s\" is empty or too long", entry);
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)v[i];

		if (c <= 0x20 || c >= 0x7f)
			return st_err_set(err, ST_E_CONFIG, "profile: SAN entry \"%s\" has a space or non-ASCII byte", entry);
		if (type == GEN_DNS && !((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		    c == '-' || c == '.'))
			return st_err_set(err, ST_E_CONFIG, "profile: SAN entry \"%s\" is not a DNS name", entry);
	}
	if (type == GEN_URI && !strchr(v, ':'))
		return st_err_set(err, ST_E_CONFIG, "profile: SAN entry \"%s\" is not a URI (no scheme)", entry);
	if (!(g = GENERAL_NAME_new()) || !(s = ASN1_IA5STRING_new()) || !ASN1_STRING_set(s, v, (int)len)) {
		st_err_openssl(err, ST_E_NOMEM, "SAN");
		goto out;
	}
	GENERAL_NAME_set0_value(g, type, s);
	s = NULL; /* owned by g */
	if (!sk_GENERAL_NAME_push(gens, g)) {
		st_err_openssl(err, ST_E_NOMEM, "SAN");
		goto out;
	}
	g = NULL; /* owned by gens */
	ret = 0;
out:
	ASN1_IA5STRING_free(s);
	GENERAL_NAME_free(g);
	return ret;
}

/* RFC 4108 section 5: HardwareModuleName ::= SEQUENCE { hwType OBJECT
 * IDENTIFIER, hwSerialNum OCTET STRING }, an otherName of type
 * id-on-hardwareModuleName (1.3.6.1.5.5.7.8.4).  Encoded by hand with
 * OpenSSL's primitives: a short fixed structure. */
static int
add_hw_module_name(GENERAL_NAMES *gens, const char *type, const char *serial, st_err *err)
{
	ASN1_OBJECT *hw = OBJ_txt2obj(type, 1), *on = OBJ_txt2obj("1.3.6.1.5.5.7.8.4", 1);
	ASN1_TYPE *val = ASN1_TYPE_new();
	ASN1_STRING *seq = ASN1_STRING_new();
	GENERAL_NAME *g = GENERAL_NAME_new();
	unsigned char *oid = NULL, *buf = NULL, *p;
	int oid_len, body, total, ret = -1;
	size_t slen = serial ? strlen(serial) : 0;

	if (!hw || !serial || !slen || slen > 64) {
		st_err_set(err, ST_E_CONFIG, "profile: hardwareModuleName needs a hwType OID and a serial");
		goto out;
	}
	if (!on || !val || !seq || !g || (oid_len = i2d_ASN1_OBJECT(hw, &oid)) <= 0) {
		st_err_openssl(err, ST_E_NOMEM, "hardwareModuleName");
		goto out;
	}
	body = oid_len + 2 + (int)slen; /* OCTET STRING of at most 64 bytes: short form length */
	total = ASN1_object_size(1, body, V_ASN1_SEQUENCE);
	if (total <= 0 || !(buf = OPENSSL_malloc((size_t)total))) {
		st_err_openssl(err, ST_E_NOMEM, "hardwareModuleName");
		goto out;
	}
	p = buf;
	ASN1_put_object(&p, 1, body, V_ASN1_SEQUENCE, V_ASN1_UNIVERSAL);
	memcpy(p, oid, (size_t)oid_len);
	p += oid_len;
	*p++ = V_ASN1_OCTET_STRING;
	*p++ = (unsigned char)slen;
	memcpy(p, serial, slen);
	if (!ASN1_STRING_set(seq, buf, total)) {
		st_err_openssl(err, ST_E_NOMEM, "hardwareModuleName");
		goto out;
	}
	ASN1_TYPE_set(val, V_ASN1_SEQUENCE, seq);
	seq = NULL; /* owned by val */
	if (!GENERAL_NAME_set0_othername(g, on, val)) {
		st_err_openssl(err, ST_E_NOMEM, "hardwareModuleName");
		goto out;
	}
	on = NULL;
	val = NULL; /* owned by g */
	if (!sk_GENERAL_NAME_push(gens, g)) {
		st_err_openssl(err, ST_E_NOMEM, "hardwareModuleName");
		goto out;
	}
	g = NULL; /* owned by gens */
	ret = 0;
out:
	GENERAL_NAME_free(g);
	ASN1_STRING_free(seq);
	ASN1_TYPE_free(val);
	ASN1_OBJECT_free(on);
	ASN1_OBJECT_free(hw);
	OPENSSL_free(oid);
	OPENSSL_free(buf);
	return ret;
}

/* The certificate gets the CSR's public key.  OpenSSL 3.0 encodes a
 * provider key's SubjectPublicKeyInfo through its encoder and decoder
 * machinery (~200 us, far more than the signature); the legacy EC_KEY route
 * takes ~5 us and leaves the certificate with its key decoded, exactly as
 * d2i_X509 would.  hsm_csr_verify admitted only named EC curves. */
static int
set_pubkey(X509 *x, EVP_PKEY *pub, st_err *err)
{
	EC_KEY *ec = EVP_PKEY_get1_EC_KEY(pub);
	EVP_PKEY *legacy = EVP_PKEY_new();
	int ret = -1;

	if (!ec || !legacy || !EVP_PKEY_assign_EC_KEY(legacy, ec)) {
		st_err_openssl(err, ST_E_VERIFY, "CSR public key");
		EC_KEY_free(ec);
		goto out;
	}
	/* ec is owned by legacy now */
	if (!X509_set_pubkey(x, legacy)) {
		st_err_openssl(err, ST_E_INTERNAL, "certificate public key");
		goto out;
	}
	ret = 0;
out:
	EVP_PKEY_free(legacy);
	return ret;
}

AUTHORITY_KEYID *
hsm_aki_new(X509 *ca_cert, st_err *err)
{
	const ASN1_OCTET_STRING *ski = X509_get0_subject_key_id(ca_cert);
	AUTHORITY_KEYID *aki = NULL;

	if (!ski) {
		st_err_set(err, ST_E_CONFIG, "CA certificate has no subjectKeyIdentifier (needed for the AKI)");
		return NULL;
	}
	if (!(aki = AUTHORITY_KEYID_new()) || !(aki->keyid = ASN1_OCTET_STRING_dup(ski))) {
		st_err_openssl(err, ST_E_NOMEM, "AKI");
		AUTHORITY_KEYID_free(aki);
		return NULL;
	}
	return aki;
}

/* cRLDistributionPoints: one point, its fullName the URI, no reasons, no
 * cRLIssuer (the certificate's issuer signs the CRL). */
static int
add_crl_dp(X509 *x, const char *url, st_err *err)
{
	CRL_DIST_POINTS *dps = NULL;
	DIST_POINT *dp = NULL;
	GENERAL_NAMES *names = NULL;
	char *entry = NULL;
	int ret = -1;

	if (asprintf(&entry, "URI:%s", url) < 0) {
		entry = NULL;
		st_err_set(err, ST_E_NOMEM, "out of memory");
		goto out;
	}
	if (!(names = sk_GENERAL_NAME_new_null()) || !(dps = sk_DIST_POINT_new_null()) || !(dp = DIST_POINT_new()) ||
	    !(dp->distpoint = DIST_POINT_NAME_new())) {
		st_err_openssl(err, ST_E_NOMEM, "cRLDistributionPoints");
		goto out;
	}
	if (add_san(names, entry, err) < 0) {
		st_err_prefix(err, "cRLDistributionPoints");
		goto out;
	}
	dp->distpoint->type = 0; /* fullName */
	dp->distpoint->name.fullname = names;
	names = NULL; /* owned by dp */
	if (!sk_DIST_POINT_push(dps, dp)) {
		st_err_openssl(err, ST_E_NOMEM, "cRLDistributionPoints");
		goto out;
	}
	dp = NULL; /* owned by dps */
	if (X509_add1_ext_i2d(x, NID_crl_distribution_points, dps, 0, X509V3_ADD_DEFAULT) != 1) {
		st_err_openssl(err, ST_E_INTERNAL, "cRLDistributionPoints");
		goto out;
	}
	ret = 0;
out:
	free(entry);
	GENERAL_NAMES_free(names);
	DIST_POINT_free(dp);
	CRL_DIST_POINTS_free(dps);
	return ret;
}

static int
add_extensions(X509 *x, X509 *ca_cert, const hsm_leaf_profile *p, st_err *err)
{
	BASIC_CONSTRAINTS *bc = NULL;
	ASN1_BIT_STRING *ku = NULL;
	ASN1_OCTET_STRING *ski = NULL;
	GENERAL_NAMES *san = NULL;
	EXTENDED_KEY_USAGE *eku = NULL;
	AUTHORITY_KEYID *aki = NULL;
	ASN1_OBJECT *obj = NULL;
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	size_t i;
	int ret = -1;

	if (!(bc = BASIC_CONSTRAINTS_new()) || !(ku = ASN1_BIT_STRING_new()) || !(ski = ASN1_OCTET_STRING_new())) {
		st_err_openssl(err, ST_E_NOMEM, "extensions");
		goto out;
	}
	bc->ca = 0;
	if (X509_add1_ext_i2d(x, NID_basic_constraints, bc, 1, X509V3_ADD_DEFAULT) != 1 ||
	    !ASN1_BIT_STRING_set_bit(ku, 0, 1) || /* digitalSignature */
	    X509_add1_ext_i2d(x, NID_key_usage, ku, 1, X509V3_ADD_DEFAULT) != 1) {
		st_err_openssl(err, ST_E_INTERNAL, "basicConstraints/keyUsage");
		goto out;
	}
	/* RFC 5280 4.2.1.2 method (1): SHA-1 of the subjectPublicKey bits. */
	if (!X509_pubkey_digest(x, EVP_sha1(), md, &mdlen) || !ASN1_OCTET_STRING_set(ski, md, (int)mdlen) ||
	    X509_add1_ext_i2d(x, NID_subject_key_identifier, ski, 0, X509V3_ADD_DEFAULT) != 1) {
		st_err_openssl(err, ST_E_INTERNAL, "subjectKeyIdentifier");
		goto out;
	}
	if (!(aki = hsm_aki_new(ca_cert, err)))
		goto out;
	if (X509_add1_ext_i2d(x, NID_authority_key_identifier, aki, 0, X509V3_ADD_DEFAULT) != 1) {
		st_err_openssl(err, ST_E_INTERNAL, "authorityKeyIdentifier");
		goto out;
	}
	if (p->n_san || p->hw_type) {
		if (!(san = sk_GENERAL_NAME_new_null())) {
			st_err_openssl(err, ST_E_NOMEM, "SAN");
			goto out;
		}
		for (i = 0; i < p->n_san; i++)
			if (add_san(san, p->san[i], err) < 0)
				goto out;
		if (p->hw_type && add_hw_module_name(san, p->hw_type, p->hw_serial, err) < 0)
			goto out;
		if (X509_add1_ext_i2d(x, NID_subject_alt_name, san, 0, X509V3_ADD_DEFAULT) != 1) {
			st_err_openssl(err, ST_E_INTERNAL, "SAN");
			goto out;
		}
	}
	if (p->crl_url && add_crl_dp(x, p->crl_url, err) < 0)
		goto out;
	if (p->n_eku) {
		if (!(eku = sk_ASN1_OBJECT_new_null())) {
			st_err_openssl(err, ST_E_NOMEM, "extendedKeyUsage");
			goto out;
		}
		for (i = 0; i < p->n_eku; i++) {
			if (!p->eku[i] || !(obj = OBJ_txt2obj(p->eku[i], 0))) {
				st_err_openssl(err, ST_E_CONFIG, "profile: extendedKeyUsage \"%s\" is not a known name or OID",
				    p->eku[i] ? p->eku[i] : "");
				goto out;
			}
			if (!sk_ASN1_OBJECT_push(eku, obj)) {
				st_err_openssl(err, ST_E_NOMEM, "extendedKeyUsage");
				goto out;
			}
			obj = NULL; /* owned by eku */
		}
		if (X509_add1_ext_i2d(x, NID_ext_key_usage, eku, 0, X509V3_ADD_DEFAULT) != 1) {
			st_err_openssl(err, ST_E_INTERNAL, "extendedKeyUsage");
			goto out;
		}
	}
	ret = 0;
out:
	ASN1_OBJECT_free(obj);
	AUTHORITY_KEYID_free(aki);
	sk_ASN1_OBJECT_pop_free(eku, ASN1_OBJECT_free);
	GENERAL_NAMES_free(san);
	ASN1_OCTET_STRING_free(ski);
	ASN1_BIT_STRING_free(ku);
	BASIC_CONSTRAINTS_free(bc);
	return ret;
}

int
hsm_leaf_build(EVP_PKEY *ca_pkey, const EVP_MD *md, X509 *ca_cert, X509_REQ *csr, const hsm_leaf_profile *profile,
    X509 **out, st_err *err)
{
	X509 *x = NULL;
	int ret = -1;

	*out = NULL;
	if (!profile || !ca_cert)
		return st_err_set(err, ST_E_INTERNAL, "issue: no profile or CA certificate");
	if (csr ? csr_check(csr, 1, err) < 0 : !profile->subject_key || check_leaf_key(profile->subject_key, err) < 0)
		return csr || profile->subject_key ? -1 : st_err_set(err, ST_E_INTERNAL, "issue: no CSR and no key");
	if (!(x = X509_new())) {
		st_err_openssl(err, ST_E_NOMEM, "certificate");
		goto out;
	}
	if (!X509_set_version(x, X509_VERSION_3) || !X509_set_issuer_name(x, X509_get_subject_name(ca_cert))) {
		st_err_openssl(err, ST_E_INTERNAL, "certificate");
		goto out;
	}
	if (set_pubkey(x, csr ? X509_REQ_get0_pubkey(csr) : profile->subject_key, err) < 0 || set_serial(x, profile->serial_hex, err) < 0 ||
	    set_subject(x, profile, err) < 0 || set_validity(x, profile, err) < 0 ||
	    add_extensions(x, ca_cert, profile, err) < 0)
		goto out;
	hsm_sign_rv_clear();
	if (X509_sign(x, ca_pkey, md) <= 0) {
		hsm_err_sign(err, "certificate signature in the token");
		goto out;
	}
	*out = x;
	x = NULL; /* owned by the caller */
	ret = 0;
out:
	X509_free(x);
	return ret;
}

int
hsm_issue_leaf(hsm_key *ca_key, X509 *ca_cert, X509_REQ *csr, const hsm_leaf_profile *profile, X509 **out,
    st_err *err)
{
	*out = NULL;
	if (!ca_key->md)
		return st_err_set(err, ST_E_CONFIG, "key \"%s\" (%s) cannot sign certificates (EC P-256/P-384 or RSA >= 2048)",
		    ca_key->label, ca_key->desc);
	if (!ca_cert || X509_check_ca(ca_cert) < 1)
		return st_err_set(err, ST_E_CONFIG, "issuer certificate for key \"%s\" is not a CA certificate",
		    ca_key->label);
	if (hsm_key_check_cert(ca_key, ca_cert, err) < 0)
		return -1;
	if (hsm_leaf_build(ca_key->pkey, ca_key->md, ca_cert, csr, profile, out, err) < 0)
		return st_err_prefix(err, "issue with key \"%s\" in token \"%s\"", ca_key->label, ca_key->ctx->token);
	return 0;
}
