/* Issuance, CRLs and CMS through the token, checked by two independent
 * implementations (the openssl and GnuTLS command lines) and field by field
 * against the profile. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "cms.h"
#include "hsm-tu.h"

static const char *const inter_algs[] = { "ec256", "ec384", "rsa2048", "rsa3072" };
static const char *const inter_desc[] = { "EC P-256", "EC P-384", "RSA 2048", "RSA 3072" };
static const int inter_sig_nid[] = { NID_ecdsa_with_SHA256, NID_ecdsa_with_SHA384, NID_sha256WithRSAEncryption,
	NID_sha256WithRSAEncryption };

static int
ext_critical(X509 *x, int nid)
{
	int i = X509_get_ext_by_NID(x, nid, -1);

	ck_assert_msg(i >= 0, "extension %s missing", OBJ_nid2sn(nid));
	ck_assert_msg(X509_get_ext_by_NID(x, nid, i) < 0, "extension %s twice", OBJ_nid2sn(nid));
	return X509_EXTENSION_get_critical(X509_get_ext(x, i));
}

static void
name_entry(X509 *x, int nid, const char *want)
{
	X509_NAME *n = X509_get_subject_name(x);
	int i = X509_NAME_get_index_by_NID(n, nid, -1);
	const ASN1_STRING *s;

	if (!want) {
		ck_assert_msg(i < 0, "subject has an unexpected %s", OBJ_nid2sn(nid));
		return;
	}
	ck_assert_msg(i >= 0, "subject has no %s", OBJ_nid2sn(nid));
	ck_assert_msg(X509_NAME_get_index_by_NID(n, nid, i) < 0, "subject has two %s", OBJ_nid2sn(nid));
	s = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(n, i));
	ck_assert_int_eq(ASN1_STRING_length(s), (int)strlen(want));
	ck_assert(memcmp(ASN1_STRING_get0_data(s), want, strlen(want)) == 0);
}

static void
check_time_near(const ASN1_TIME *t, time_t want)
{
	int day = 0, sec = 0;
	ASN1_TIME *w = ASN1_TIME_set(NULL, want);

	ck_assert(ASN1_TIME_diff(&day, &sec, w, t));
	ck_assert_msg(day == 0 && sec >= -120 && sec <= 120, "time off by %d days %d s", day, sec);
	ASN1_TIME_free(w);
}

/* Every field of the profile, and nothing the CSR asked for. */
static void
check_leaf(X509 *leaf, X509 *inter, EVP_PKEY *leaf_key, const hsm_leaf_profile *p, int sig_nid)
{
	const ASN1_OCTET_STRING *ski, *aki;
	GENERAL_NAMES *san;
	EXTENDED_KEY_USAGE *eku;
	BIGNUM *serial;
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	size_t i;

	ck_assert_int_eq(X509_get_version(leaf), X509_VERSION_3);
	ck_assert_int_eq(X509_get_signature_nid(leaf), sig_nid);
	ck_assert_int_eq(X509_NAME_cmp(X509_get_issuer_name(leaf), X509_get_subject_name(inter)), 0);
	ck_assert_int_eq(EVP_PKEY_eq(X509_get0_pubkey(leaf), leaf_key), 1);

	serial = ASN1_INTEGER_to_BN(X509_get0_serialNumber(leaf), NULL);
	ck_assert_ptr_nonnull(serial);
	ck_assert(!BN_is_negative(serial));
	ck_assert_int_ge(BN_num_bits(serial), 64);
	ck_assert_int_le(BN_num_bits(serial), 127);
	BN_free(serial);

	name_entry(leaf, NID_serialNumber, p->serial_number);
	name_entry(leaf, NID_organizationName, p->organization);
	name_entry(leaf, NID_organizationalUnitName, p->org_unit);
	name_entry(leaf, NID_commonName, p->common_name);
	ck_assert_int_eq(X509_NAME_entry_count(X509_get_subject_name(leaf)),
	    2 + (p->organization != NULL) + (p->org_unit != NULL));

	check_time_near(X509_get0_notBefore(leaf), p->not_before ? p->not_before : time(NULL));
	if (p->no_expiry) {
		ck_assert_int_eq(ASN1_STRING_type(X509_get0_notAfter(leaf)), V_ASN1_GENERALIZEDTIME);
		ck_assert_str_eq((const char *)ASN1_STRING_get0_data(X509_get0_notAfter(leaf)), "99991231235959Z");
	} else {
		check_time_near(X509_get0_notAfter(leaf), time(NULL) + (time_t)p->validity_days * 86400);
	}

	/* keyUsage digitalSignature only, critical; CA:FALSE, critical. */
	ck_assert_int_eq(ext_critical(leaf, NID_key_usage), 1);
	ck_assert_int_eq(X509_get_key_usage(leaf), KU_DIGITAL_SIGNATURE);
	ck_assert_int_eq(ext_critical(leaf, NID_basic_constraints), 1);
	ck_assert_int_eq(X509_check_ca(leaf), 0);
	ck_assert(!(X509_get_extension_flags(leaf) & EXFLAG_CA));

	/* SKI = SHA-1 of the key bits; AKI = the intermediate's SKI. */
	ck_assert_int_eq(ext_critical(leaf, NID_subject_key_identifier), 0);
	ski = X509_get0_subject_key_id(leaf);
	ck_assert(X509_pubkey_digest(leaf, EVP_sha1(), md, &mdlen));
	ck_assert_int_eq(ASN1_STRING_length(ski), (int)mdlen);
	ck_assert(memcmp(ASN1_STRING_get0_data(ski), md, mdlen) == 0);
	ck_assert_int_eq(ext_critical(leaf, NID_authority_key_identifier), 0);
	aki = X509_get0_authority_key_id(leaf);
	ck_assert_ptr_nonnull(aki);
	ck_assert_int_eq(ASN1_OCTET_STRING_cmp(aki, X509_get0_subject_key_id(inter)), 0);

	/* SAN exactly as the profile says: no "evil.example" from the CSR. */
	san = X509_get_ext_d2i(leaf, NID_subject_alt_name, NULL, NULL);
	ck_assert_int_eq(san ? sk_GENERAL_NAME_num(san) : 0, (int)p->n_san);
	if (san)
		ck_assert_int_eq(ext_critical(leaf, NID_subject_alt_name), 0);
	for (i = 0; i < p->n_san; i++) {
		GENERAL_NAME *g = sk_GENERAL_NAME_value(san, (int)i);
		int type;
		ASN1_STRING *v = GENERAL_NAME_get0_value(g, &type);

		ck_assert_int_eq(type, strncmp(p->san[i], "URI:", 4) == 0 ? GEN_URI : GEN_DNS);
		ck_assert_int_eq(ASN1_STRING_length(v), (int)strlen(p->san[i] + 4));
		ck_assert(memcmp(ASN1_STRING_get0_data(v), p->san[i] + 4, strlen(p->san[i] + 4)) == 0);
	}
	GENERAL_NAMES_free(san);
	eku = X509_get_ext_d2i(leaf, NID_ext_key_usage, NULL, NULL);
	ck_assert_int_eq(eku ? sk_ASN1_OBJECT_num(eku) : 0, (int)p->n_eku);
	for (i = 0; i < p->n_eku; i++)
		ck_assert_int_eq(OBJ_obj2nid(sk_ASN1_OBJECT_value(eku, (int)i)), OBJ_txt2nid(p->eku[i]));
	sk_ASN1_OBJECT_pop_free(eku, ASN1_OBJECT_free);
	/* Exactly the extensions we put there. */
	ck_assert_int_eq(X509_get_ext_count(leaf), 4 + (p->n_san > 0) + (p->n_eku > 0));
}

/* P-256 and P-384 leaves from each kind of intermediate. */
START_TEST(test_issue_each_intermediate)
{
	const char *alg = inter_algs[_i];
	char *dir = tu_make_pki_alg(alg);
	static const char *const curves[] = { "P-256", "P-384" };
	hsm_ctx *ctx = ht_open();
	X509 *inter = ht_cert(dir, "intermediate.pem");
	hsm_key *ca;
	char desc[32];
	st_err err;
	size_t c;

	ca = hsm_key_find(ctx, "intermediate", &err);
	ck_assert_msg(ca != NULL, "%s", err.msg);
	hsm_key_describe(ca, desc, sizeof(desc));
	ck_assert_str_eq(desc, inter_desc[_i]);
	for (c = 0; c < 2; c++) {
		EVP_PKEY *k = ht_ec_key(curves[c]);
		X509_REQ *csr = ht_csr(k, NULL);
		hsm_leaf_profile p = ht_profile("SE0001");
		X509 *leaf = NULL;

		ck_assert_msg(hsm_issue_leaf(ca, inter, csr, &p, &leaf, &err) == 0, "%s %s: %s", alg, curves[c], err.msg);
		check_leaf(leaf, inter, k, &p, inter_sig_nid[_i]);
		ht_verify_both(dir, leaf);
		X509_free(leaf);
		X509_REQ_free(csr);
		EVP_PKEY_free(k);
	}
	hsm_key_free(ca);
	X509_free(inter);
	hsm_close(ctx);
	tu_rmtree(dir);
	free(dir);
}
END_TEST

/* Minimal profile (no O/OU/SAN/EKU), a set notBefore, and "no expiry". */
START_TEST(test_profile_variants)
{
	char *dir = tu_make_pki();
	hsm_ctx *ctx = ht_open();
	X509 *inter = ht_cert(dir, "intermediate.pem");
	EVP_PKEY *k = ht_ec_key("P-256");
	X509_REQ *csr = ht_csr(k, NULL);
	hsm_leaf_profile p;
	hsm_key *ca;
	X509 *leaf = NULL;
	char *out = NULL;
	st_err err;

	ca = hsm_key_find(ctx, "intermediate", &err);
	ck_assert_ptr_nonnull(ca);
	memset(&p, 0, sizeof(p));
	p.serial_number = "0123ABCD";
	p.common_name = "Minimal";
	p.not_before = time(NULL) - 3600;
	p.no_expiry = 1;
	ck_assert_msg(hsm_issue_leaf(ca, inter, csr, &p, &leaf, &err) == 0, "%s", err.msg);
	check_leaf(leaf, inter, k, &p, NID_ecdsa_with_SHA256);
	ht_verify_both(dir, leaf);
	ck_assert_int_eq(ht_sh(dir, &out, "openssl x509 -in leaf.pem -noout -enddate"), 0);
	ck_assert_msg(strstr(out, "notAfter=Dec 31 23:59:59 9999 GMT"), "%s", out);
	free(out);
	X509_free(leaf);

	/* A serial chosen in advance (the journal names it before signing) and
	 * a fixed notAfter: UTCTime before 2050, GeneralizedTime after. */
	{
		char serial[HSM_SERIAL_HEX_MAX];
		static const char *const ends[] = { "20401231120000Z", "20600101000000Z" };
		BIGNUM *bn = NULL;
		ASN1_INTEGER *want;
		int i;

		for (i = 0; i < 2; i++) {
			ck_assert_int_eq(hsm_serial_new(serial, &err), 0);
			ck_assert_int_le(strlen(serial), 32);
			ck_assert_int_gt(BN_hex2bn(&bn, serial), 0);
			ck_assert_int_ge(BN_num_bits(bn), 64);
			ck_assert_int_le(BN_num_bits(bn), 127);
			memset(&p, 0, sizeof(p));
			p.serial_number = "SE0002";
			p.common_name = "Fixed";
			p.serial_hex = serial;
			p.not_after = ends[i];
			ck_assert_msg(hsm_issue_leaf(ca, inter, csr, &p, &leaf, &err) == 0, "%s", err.msg);
			want = BN_to_ASN1_INTEGER(bn, NULL);
			ck_assert_int_eq(ASN1_INTEGER_cmp(X509_get0_serialNumber(leaf), want), 0);
			ASN1_INTEGER_free(want);
			ck_assert_int_eq(ASN1_STRING_type(X509_get0_notAfter(leaf)),
			    i == 0 ? V_ASN1_UTCTIME : V_ASN1_GENERALIZEDTIME);
			ck_assert_str_eq((const char *)ASN1_STRING_get0_data(X509_get0_notAfter(leaf)),
			    i == 0 ? "401231120000Z" : "20600101000000Z");
			ht_verify_both(dir, leaf);
			X509_free(leaf);
		}
		BN_free(bn);
	}
	hsm_key_free(ca);
	X509_REQ_free(csr);
	EVP_PKEY_free(k);
	X509_free(inter);
	hsm_close(ctx);
	tu_rmtree(dir);
	free(dir);
}
END_TEST

START_TEST(test_bad_csr_refused)
{
	char *dir = tu_make_pki();
	hsm_ctx *ctx = ht_open();
	X509 *inter = ht_cert(dir, "intermediate.pem");
	EVP_PKEY *k = ht_ec_key("P-256"), *other = ht_ec_key("P-256"), *p521 = ht_ec_key("P-521");
	EVP_PKEY *rsa = EVP_RSA_gen(2048);
	X509_REQ *csr = NULL, *parsed;
	hsm_leaf_profile p = ht_profile(NULL);
	unsigned char *der = NULL;
	hsm_key *ca;
	X509 *leaf = NULL;
	st_err err;
	int len;

	ck_assert_ptr_nonnull(rsa);
	ca = hsm_key_find(ctx, "intermediate", &err);
	ck_assert_ptr_nonnull(ca);

	/* Signed by a key other than the one it carries: no proof of possession. */
	csr = ht_csr(k, other);
	ck_assert_int_eq(hsm_csr_verify(csr, &err), -1);
	ck_assert_int_eq(err.code, ST_E_VERIFY);
	ck_assert_msg(strstr(err.msg, "self-signature does not verify"), "%s", err.msg);
	ck_assert_int_eq(hsm_issue_leaf(ca, inter, csr, &p, &leaf, &err), -1);
	ck_assert_int_eq(err.code, ST_E_VERIFY);
	ck_assert_ptr_null(leaf);
	X509_REQ_free(csr);

	/* A flipped bit in the signature, through the DER parser. */
	csr = ht_csr(k, NULL);
	len = i2d_X509_REQ(csr, &der);
	ck_assert_int_gt(len, 0);
	parsed = hsm_csr_from_der(der, (size_t)len, &err);
	ck_assert_msg(parsed != NULL, "%s", err.msg);
	ck_assert_int_eq(hsm_csr_verify(parsed, &err), 0);
	X509_REQ_free(parsed);
	der[len - 3] ^= 0x01;
	parsed = hsm_csr_from_der(der, (size_t)len, &err);
	ck_assert_ptr_nonnull(parsed);
	ck_assert_int_eq(hsm_issue_leaf(ca, inter, parsed, &p, &leaf, &err), -1);
	ck_assert_int_eq(err.code, ST_E_VERIFY);
	X509_REQ_free(parsed);
	der[len - 3] ^= 0x01;
	ck_assert_ptr_null(hsm_csr_from_der(der, (size_t)len - 1, &err));
	ck_assert_int_eq(err.code, ST_E_VERIFY);
	OPENSSL_free(der);
	X509_REQ_free(csr);

	/* Only P-256 and P-384 leaves. */
	csr = ht_csr(p521, NULL);
	ck_assert_int_eq(hsm_csr_verify(csr, &err), -1);
	ck_assert_msg(strstr(err.msg, "secp521r1"), "%s", err.msg);
	X509_REQ_free(csr);
	csr = ht_csr(rsa, NULL);
	ck_assert_int_eq(hsm_csr_verify(csr, &err), -1);
	ck_assert_msg(strstr(err.msg, "not EC"), "%s", err.msg);
	X509_REQ_free(csr);
	{
		/* P-256 spelled out as explicit parameters: not a named curve. */
		char *path = tu_src("tests/hsm/corpus-hsm-csr/csr-explicit.der");
		size_t n = 0;
		char *bytes = tu_slurp(path, &n);

		ck_assert_ptr_nonnull(bytes);
		csr = hsm_csr_from_der((const uint8_t *)bytes, n, &err);
		ck_assert_msg(csr != NULL, "%s", err.msg);
		ck_assert_int_eq(hsm_csr_verify(csr, &err), -1);
		ck_assert_msg(strstr(err.msg, "explicit curve parameters"), "%s", err.msg);
		X509_REQ_free(csr);
		free(bytes);
		free(path);
	}

	hsm_key_free(ca);
	EVP_PKEY_free(k);
	EVP_PKEY_free(other);
	EVP_PKEY_free(p521);
	EVP_PKEY_free(rsa);
	X509_free(inter);
	hsm_close(ctx);
	tu_rmtree(dir);
	free(dir);
}
END_TEST

/* A protocol 1.2 CSR (one UTF8String CN, no attributes, ECDSA with
 * SHA-256), signed by key, as DER; *spki and *sig get its parts. */
static int
csr_v12(EVP_PKEY *key, const char *cn, int with_attr, unsigned char **spki, int *spki_len, unsigned char **sig,
    int *sig_len, unsigned char **der)
{
	X509_REQ *r = X509_REQ_new();
	const ASN1_BIT_STRING *bits;
	int len;

	ck_assert_ptr_nonnull(r);
	ck_assert(X509_NAME_add_entry_by_NID(X509_REQ_get_subject_name(r), NID_commonName, V_ASN1_UTF8STRING,
	    (const unsigned char *)cn, -1, -1, 0));
	ck_assert(X509_REQ_set_pubkey(r, key));
	if (with_attr)
		ck_assert(X509_REQ_add1_attr_by_NID(r, NID_pkcs9_challengePassword, MBSTRING_ASC,
		    (const unsigned char *)"x", -1));
	ck_assert(X509_REQ_sign(r, key, EVP_sha256()) > 0);
	X509_REQ_get0_signature(r, &bits, NULL);
	*sig_len = ASN1_STRING_length(bits);
	*sig = OPENSSL_memdup(ASN1_STRING_get0_data(bits), (size_t)*sig_len);
	*spki = NULL;
	*spki_len = i2d_PUBKEY(key, spki);
	*der = NULL;
	len = i2d_X509_REQ(r, der);
	ck_assert(*sig && *spki_len > 0 && len > 0);
	X509_REQ_free(r);
	return len;
}

/* hsm_csr_from_parts gives the very CSR d2i_X509_REQ would, or nothing:
 * whatever does not encode back to the bytes is left to the parser. */
START_TEST(test_csr_from_parts)
{
	const char *curve = _i ? "P-384" : "P-256";
	EVP_PKEY *k = ht_ec_key(curve);
	unsigned char *spki, *sig, *der, *enc = NULL;
	int spki_len, sig_len, len, n;
	X509_REQ *r, *parsed;
	st_err err;

	ck_assert_ptr_nonnull(k);
	len = csr_v12(k, "SE0001", 0, &spki, &spki_len, &sig, &sig_len, &der);
	r = hsm_csr_from_parts("SE0001", spki, (size_t)spki_len, sig, (size_t)sig_len, der, (size_t)len);
	ck_assert_msg(r != NULL, "%s: the parts did not give the CSR", curve);
	n = i2d_X509_REQ(r, &enc);
	ck_assert_int_eq(n, len);
	ck_assert(memcmp(enc, der, (size_t)len) == 0);
	ck_assert_int_eq(hsm_csr_verify(r, &err), 0);
	ck_assert_int_eq(EVP_PKEY_eq(X509_REQ_get0_pubkey(r), k), 1);
	parsed = hsm_csr_from_der(der, (size_t)len, &err);
	ck_assert_ptr_nonnull(parsed);
	ck_assert_int_eq(EVP_PKEY_eq(X509_REQ_get0_pubkey(r), X509_REQ_get0_pubkey(parsed)), 1);
	X509_REQ_free(parsed);
	X509_REQ_free(r);
	OPENSSL_free(enc);

	/* Another serial, a flipped signature bit, one byte short, a key that
	 * is not a SubjectPublicKeyInfo: none of them is the CSR. */
	ck_assert_ptr_null(hsm_csr_from_parts("SE0002", spki, (size_t)spki_len, sig, (size_t)sig_len, der, (size_t)len));
	sig[sig_len / 2] ^= 1;
	ck_assert_ptr_null(hsm_csr_from_parts("SE0001", spki, (size_t)spki_len, sig, (size_t)sig_len, der, (size_t)len));
	sig[sig_len / 2] ^= 1;
	ck_assert_ptr_null(hsm_csr_from_parts("SE0001", spki, (size_t)spki_len, sig, (size_t)sig_len, der, (size_t)len - 1));
	ck_assert_ptr_null(hsm_csr_from_parts("SE0001", spki, (size_t)spki_len - 1, sig, (size_t)sig_len, der, (size_t)len));
	ck_assert_ptr_null(hsm_csr_from_parts("SE0001", der, (size_t)len, sig, (size_t)sig_len, der, (size_t)len));
	ck_assert_ptr_null(hsm_csr_from_parts("SE0001", spki, 0, sig, 0, der, 0));
	OPENSSL_free(spki);
	OPENSSL_free(sig);
	OPENSSL_free(der);

	/* A key with its curve spelled out as explicit parameters, or with a
	 * compressed point, is not taken from its parts: the parser's route
	 * judges it (and refuses the first). */
	{
		static const char *const forms[][2] = {
			{ OSSL_PKEY_PARAM_EC_ENCODING, OSSL_PKEY_EC_ENCODING_EXPLICIT },
			{ OSSL_PKEY_PARAM_EC_POINT_CONVERSION_FORMAT, OSSL_PKEY_EC_POINT_CONVERSION_FORMAT_COMPRESSED },
		};
		size_t f;

		for (f = 0; f < 2; f++) {
			EVP_PKEY *c = ht_ec_key(curve);
			X509_REQ *cr = X509_REQ_new();
			const ASN1_BIT_STRING *bits;

			ck_assert(EVP_PKEY_set_utf8_string_param(c, forms[f][0], forms[f][1]));
			ck_assert(X509_NAME_add_entry_by_NID(X509_REQ_get_subject_name(cr), NID_commonName, V_ASN1_UTF8STRING,
			    (const unsigned char *)"SE0001", -1, -1, 0));
			ck_assert(X509_REQ_set_pubkey(cr, c) && X509_REQ_sign(cr, c, EVP_sha256()) > 0);
			X509_REQ_get0_signature(cr, &bits, NULL);
			spki = NULL;
			spki_len = i2d_PUBKEY(c, &spki);
			der = NULL;
			len = i2d_X509_REQ(cr, &der);
			/* spelled as asked: longer with the curve's parameters, shorter compressed */
			ck_assert_msg(f == 0 ? spki_len > 150 : spki_len < 80, "%s: %d bytes", forms[f][1], spki_len);
			ck_assert_ptr_null(hsm_csr_from_parts("SE0001", spki, (size_t)spki_len, ASN1_STRING_get0_data(bits),
			    (size_t)ASN1_STRING_length(bits), der, (size_t)len));
			if (f == 0) {
				ck_assert_ptr_nonnull(parsed = hsm_csr_from_der(der, (size_t)len, &err));
				ck_assert_int_eq(hsm_csr_verify(parsed, &err), -1);
				ck_assert_msg(strstr(err.msg, "explicit curve parameters"), "%s", err.msg);
				X509_REQ_free(parsed);
			}
			OPENSSL_free(spki);
			OPENSSL_free(der);
			X509_REQ_free(cr);
			EVP_PKEY_free(c);
		}
	}

	/* A CSR with an attribute is no 1.2 CSR: the parser's business. */
	len = csr_v12(k, "SE0001", 1, &spki, &spki_len, &sig, &sig_len, &der);
	ck_assert_ptr_null(hsm_csr_from_parts("SE0001", spki, (size_t)spki_len, sig, (size_t)sig_len, der, (size_t)len));
	ck_assert_ptr_nonnull(r = hsm_csr_from_der(der, (size_t)len, &err));
	X509_REQ_free(r);
	OPENSSL_free(spki);
	OPENSSL_free(sig);
	OPENSSL_free(der);
	EVP_PKEY_free(k);
}
END_TEST

/* Profile values come from recipes and device facts: nothing in them may
 * add structure (a second SAN, an illegal subject string). */
START_TEST(test_bad_profile_refused)
{
	char *dir = tu_make_pki();
	hsm_ctx *ctx = ht_open();
	X509 *inter = ht_cert(dir, "intermediate.pem"), *root = ht_cert(dir, "root-ca.pem");
	X509 *tool = ht_cert(dir, "tool.pem");
	EVP_PKEY *k = ht_ec_key("P-256");
	X509_REQ *csr = ht_csr(k, NULL);
	static const char *const comma[] = { "DNS:a.example,DNS:b.example" };
	static const char *const space[] = { "URI:urn:x y" };
	static const char *const ip[] = { "IP:10.0.0.1" };
	static const char *const noscheme[] = { "URI:just-a-name" };
	static const char *const badeku[] = { "noSuchUsage" };
	hsm_leaf_profile p;
	hsm_key *ca, *audit;
	X509 *leaf = NULL;
	st_err err;

	ca = hsm_key_find(ctx, "intermediate", &err);
	audit = hsm_key_find(ctx, "audit", &err);
	ck_assert(ca && audit);
#define REFUSED(change, text)                                                                               \
	do {                                                                                                    \
		p = ht_profile(NULL);                                                                               \
		change;                                                                                             \
		ck_assert_int_eq(hsm_issue_leaf(ca, inter, csr, &p, &leaf, &err), -1);                             \
		ck_assert_ptr_null(leaf);                                                                           \
		ck_assert_msg(strstr(err.msg, text), "%s: %s", #change, err.msg);                                   \
	} while (0)
	REFUSED((p.san = comma, p.n_san = 1), "not a DNS name");
	REFUSED((p.san = space, p.n_san = 1), "space");
	REFUSED((p.san = ip, p.n_san = 1), "must start with URI: or DNS:");
	REFUSED((p.san = noscheme, p.n_san = 1), "no scheme");
	REFUSED((p.eku = badeku, p.n_eku = 1), "noSuchUsage");
	REFUSED(p.serial_number = "SE@0001", "serial number");
	REFUSED(p.serial_number = "", "serial number is empty");
	REFUSED(p.common_name = NULL, "common name is empty");
	REFUSED(p.validity_days = 0, "validity");
	REFUSED(p.not_before = time(NULL) + 3651 * 86400L, "notBefore");
	REFUSED(p.not_after = "20200101000000Z", "notBefore is not before notAfter");
	REFUSED(p.not_after = "2040-01-01", "YYYYMMDDHHMMSSZ");
	REFUSED(p.serial_hex = "12345678", "bits (64 to 159");
	REFUSED(p.serial_hex = "0x1234567890abcdef1", "not hexadecimal");
	REFUSED(p.serial_hex = "123456789012345678901234567890123456789012", "1 to 40 hex digits");
#undef REFUSED
	p = ht_profile(NULL);
	/* Issuer certificate that is not a CA, or not this key's. */
	ck_assert_int_eq(hsm_issue_leaf(ca, tool, csr, &p, &leaf, &err), -1);
	ck_assert_msg(strstr(err.msg, "not a CA"), "%s", err.msg);
	ck_assert_int_eq(hsm_issue_leaf(ca, root, csr, &p, &leaf, &err), -1);
	ck_assert_msg(strstr(err.msg, "does not belong to key \"intermediate\""), "%s", err.msg);
	ck_assert_ptr_null(leaf);
	X509_free(tool);
	X509_free(root);
	hsm_key_free(ca);
	hsm_key_free(audit);
	X509_REQ_free(csr);
	EVP_PKEY_free(k);
	X509_free(inter);
	hsm_close(ctx);
	tu_rmtree(dir);
	free(dir);
}
END_TEST

/* ---- threads ---------------------------------------------------------- */

#define NTHREADS 8
#define PER_THREAD 125

struct worker {
	hsm_key *ca;
	X509 *inter;
	EVP_PKEY *key;
	X509_REQ *csr;
	char serial[32];
	X509 *certs[PER_THREAD];
	int failed;
	char msg[ST_ERR_MSG_MAX];
};

static void *
work(void *arg)
{
	struct worker *w = arg;
	hsm_leaf_profile p = ht_profile(w->serial);
	st_err err;
	int i;

	for (i = 0; i < PER_THREAD; i++) {
		if (hsm_issue_leaf(w->ca, w->inter, w->csr, &p, &w->certs[i], &err) < 0) {
			w->failed++;
			memcpy(w->msg, err.msg, sizeof(w->msg));
		}
	}
	return NULL;
}

static int
cmp_serial(const void *a, const void *b)
{
	return ASN1_INTEGER_cmp(*(ASN1_INTEGER *const *)a, *(ASN1_INTEGER *const *)b);
}

START_TEST(test_threads_1000)
{
	char *dir = tu_make_pki();
	hsm_ctx *ctx = ht_open();
	X509 *inter = ht_cert(dir, "intermediate.pem"), *root = ht_cert(dir, "root-ca.pem");
	static struct worker w[NTHREADS];
	const ASN1_INTEGER *serials[NTHREADS * PER_THREAD];
	pthread_t th[NTHREADS];
	X509_STORE *store = X509_STORE_new();
	STACK_OF(X509) *untrusted = sk_X509_new_null();
	X509_STORE_CTX *vctx = X509_STORE_CTX_new();
	hsm_key *ca;
	st_err err;
	int t, i, n = 0;

	ca = hsm_key_find(ctx, "intermediate", &err);
	ck_assert_ptr_nonnull(ca);
	for (t = 0; t < NTHREADS; t++) {
		memset(&w[t], 0, sizeof(w[t]));
		w[t].ca = ca;
		w[t].inter = inter;
		w[t].key = ht_ec_key(t % 2 ? "P-384" : "P-256");
		w[t].csr = ht_csr(w[t].key, NULL);
		snprintf(w[t].serial, sizeof(w[t].serial), "THREAD%d", t);
	}
	for (t = 0; t < NTHREADS; t++)
		ck_assert_int_eq(pthread_create(&th[t], NULL, work, &w[t]), 0);
	for (t = 0; t < NTHREADS; t++)
		ck_assert_int_eq(pthread_join(th[t], NULL), 0);

	ck_assert(store && untrusted && vctx);
	ck_assert(X509_STORE_add_cert(store, root));
	ck_assert(sk_X509_push(untrusted, inter));
	X509_STORE_set_flags(store, X509_V_FLAG_X509_STRICT);
	for (t = 0; t < NTHREADS; t++) {
		ck_assert_msg(w[t].failed == 0, "thread %d: %d failures, last: %s", t, w[t].failed, w[t].msg);
		for (i = 0; i < PER_THREAD; i++) {
			X509 *c = w[t].certs[i];

			/* Each certificate carries its own thread's key and subject. */
			ck_assert_int_eq(EVP_PKEY_eq(X509_get0_pubkey(c), w[t].key), 1);
			name_entry(c, NID_serialNumber, w[t].serial);
			ck_assert_int_eq(X509_verify(c, X509_get0_pubkey(inter)), 1);
			ck_assert(X509_STORE_CTX_init(vctx, store, c, untrusted));
			ck_assert_msg(X509_verify_cert(vctx) == 1, "cert %d/%d: %s", t, i,
			    X509_verify_cert_error_string(X509_STORE_CTX_get_error(vctx)));
			X509_STORE_CTX_cleanup(vctx);
			serials[n++] = X509_get0_serialNumber(c);
		}
	}
	ck_assert_int_eq(n, 1000);
	qsort(serials, (size_t)n, sizeof(serials[0]), cmp_serial);
	for (i = 1; i < n; i++)
		ck_assert_msg(ASN1_INTEGER_cmp(serials[i - 1], serials[i]) != 0, "duplicate serial number");
	/* And a sample through the two command-line verifiers. */
	ht_verify_both(dir, w[3].certs[PER_THREAD - 1]);

	for (t = 0; t < NTHREADS; t++) {
		for (i = 0; i < PER_THREAD; i++)
			X509_free(w[t].certs[i]);
		X509_REQ_free(w[t].csr);
		EVP_PKEY_free(w[t].key);
	}
	X509_STORE_CTX_free(vctx);
	sk_X509_free(untrusted);
	X509_STORE_free(store);
	hsm_key_free(ca);
	X509_free(inter);
	X509_free(root);
	hsm_close(ctx);
	tu_rmtree(dir);
	free(dir);
}
END_TEST

/* ---- CRL ---------------------------------------------------------------- */

static X509 *
issue_one(hsm_key *ca, X509 *inter, const char *serial)
{
	EVP_PKEY *k = ht_ec_key("P-256");
	X509_REQ *csr = ht_csr(k, NULL);
	hsm_leaf_profile p = ht_profile(serial);
	X509 *leaf = NULL;
	st_err err;

	ck_assert_msg(hsm_issue_leaf(ca, inter, csr, &p, &leaf, &err) == 0, "%s", err.msg);
	X509_REQ_free(csr);
	EVP_PKEY_free(k);
	return leaf;
}

START_TEST(test_crl)
{
	const char *alg = inter_algs[_i];
	char *dir = tu_make_pki_alg(alg);
	hsm_ctx *ctx = ht_open();
	X509 *inter = ht_cert(dir, "intermediate.pem");
	X509 *revoked, *good;
	X509_CRL *crl = NULL;
	hsm_key *ca;
	char rhex[TU_SERIAL_HEX_MAX], *path, *out = NULL;
	time_t now = time(NULL);
	hsm_revoked entries[3];
	FILE *f;
	st_err err;
	int rc;

	ca = hsm_key_find(ctx, "intermediate", &err);
	ck_assert_ptr_nonnull(ca);
	revoked = issue_one(ca, inter, "SE-REVOKED");
	good = issue_one(ca, inter, "SE-GOOD");
	tu_cert_serial_hex(revoked, rhex);
	entries[0] = (hsm_revoked){ "0AF3", now - 7200, HSM_CRL_SUPERSEDED };
	entries[1] = (hsm_revoked){ rhex, now - 60, HSM_CRL_KEY_COMPROMISE };
	entries[2] = (hsm_revoked){ "1234abcd", now - 100, HSM_CRL_UNSPECIFIED };
	ck_assert_msg(hsm_crl_sign(ca, inter, entries, 3, now, now + 7 * 86400, 7, &crl, &err) == 0, "%s", err.msg);
	ck_assert_int_eq(X509_CRL_get_version(crl), X509_CRL_VERSION_2);
	ck_assert_int_eq(X509_CRL_verify(crl, X509_get0_pubkey(inter)), 1);

	path = tu_path(dir, "crl.pem");
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	ck_assert(PEM_write_X509_CRL(f, crl));
	fclose(f);
	free(path);
	path = tu_path(dir, "revoked.pem");
	ht_write_pem(path, revoked);
	free(path);
	path = tu_path(dir, "good.pem");
	ht_write_pem(path, good);

	rc = ht_sh(dir, &out, "openssl crl -in crl.pem -verify -CAfile intermediate.pem -noout -text");
	ck_assert_msg(rc == 0 && strstr(out, "verify OK"), "%s", out);
	ck_assert_msg(strstr(out, "Version 2") && strstr(out, "X509v3 CRL Number") && strstr(out, "7\n"), "%s", out);
	ck_assert_msg(strstr(out, "Key Compromise") && strstr(out, "Superseded") && strstr(out, "1234ABCD"), "%s", out);
	ck_assert_msg(strstr(out, "X509v3 Authority Key Identifier") && strstr(out, "Next Update"), "%s", out);
	ck_assert_msg(!strstr(out, "Unspecified"), "unspecified must be omitted: %s", out);
	free(out);
	rc = ht_sh(dir, &out, "openssl verify -crl_check -CAfile root-ca.pem -untrusted intermediate.pem "
	    "-CRLfile crl.pem revoked.pem");
	ck_assert_msg(rc != 0 && strstr(out, "certificate revoked"), "revoked leaf accepted (%d): %s", rc, out);
	free(out);
	rc = ht_sh(dir, &out, "openssl verify -crl_check -CAfile root-ca.pem -untrusted intermediate.pem "
	    "-CRLfile crl.pem good.pem");
	ck_assert_msg(rc == 0 && strstr(out, "good.pem: OK"), "good leaf refused (%d): %s", rc, out);
	free(out);
	X509_CRL_free(crl);
	crl = NULL;

	/* Bad input is refused, nothing is signed. */
	entries[0].serial_hex = "xyz";
	ck_assert_int_eq(hsm_crl_sign(ca, inter, entries, 1, now, now + 60, 8, &crl, &err), -1);
	ck_assert_msg(strstr(err.msg, "not hexadecimal"), "%s", err.msg);
	entries[0].serial_hex = rhex;
	ck_assert_int_eq(hsm_crl_sign(ca, inter, entries, 2, now, now + 60, 8, &crl, &err), -1);
	ck_assert_msg(strstr(err.msg, "twice"), "%s", err.msg);
	entries[0].reason = 7;
	ck_assert_int_eq(hsm_crl_sign(ca, inter, entries, 1, now, now + 60, 8, &crl, &err), -1);
	ck_assert_msg(strstr(err.msg, "reason"), "%s", err.msg);
	ck_assert_int_eq(hsm_crl_sign(ca, inter, entries, 0, now, now, 8, &crl, &err), -1);
	ck_assert_msg(strstr(err.msg, "nextUpdate"), "%s", err.msg);
	ck_assert_ptr_null(crl);
	/* An empty CRL is fine. */
	ck_assert_int_eq(hsm_crl_sign(ca, inter, NULL, 0, now, now + 60, 9, &crl, &err), 0);
	X509_CRL_free(crl);

	ck_assert_int_eq(hsm_crl_reason_from_name("keyCompromise"), HSM_CRL_KEY_COMPROMISE);
	ck_assert_int_eq(hsm_crl_reason_from_name("cessationOfOperation"), HSM_CRL_CESSATION_OF_OPERATION);
	ck_assert_int_eq(hsm_crl_reason_from_name("superseded"), HSM_CRL_SUPERSEDED);
	ck_assert_int_eq(hsm_crl_reason_from_name("bogus"), -1);
	ck_assert_str_eq(hsm_crl_reason_name(HSM_CRL_AA_COMPROMISE), "aACompromise");

	free(path);
	X509_free(revoked);
	X509_free(good);
	hsm_key_free(ca);
	X509_free(inter);
	hsm_close(ctx);
	tu_rmtree(dir);
	free(dir);
}
END_TEST

/* ---- CMS ---------------------------------------------------------------- */

START_TEST(test_cms_audit_seal)
{
	char *dir = tu_make_pki();
	hsm_ctx *ctx = ht_open();
	X509 *audit_cert = ht_cert(dir, "audit.pem"), *tool_cert = ht_cert(dir, "tool.pem");
	const char data[] = "{\"seq\":1,\"step\":\"DONE\"}\n{\"seq\":2,\"step\":\"DONE\"}\n";
	char *root = tu_path(dir, "root-ca.pem"), *out = NULL;
	char *batch = tu_path(dir, "batch-0001.jsonl"), *seal = tu_path(dir, "batch-0001.jsonl.p7s");
	X509_STORE *store;
	uint8_t *der = NULL;
	size_t der_len = 0;
	hsm_key *audit;
	st_err err;
	int rc;

	audit = hsm_key_find(ctx, "audit", &err);
	ck_assert_ptr_nonnull(audit);
	ck_assert_msg(hsm_cms_sign(audit, audit_cert, NULL, data, strlen(data), &der, &der_len, &err) == 0, "%s",
	    err.msg);

	ck_assert_int_eq(st_file_write_atomic(batch, data, strlen(data), 0600, &err), 0);
	ck_assert_int_eq(st_file_write_atomic(seal, der, der_len, 0600, &err), 0);
	rc = ht_sh(dir, &out, "openssl cms -verify -binary -inform DER -content batch-0001.jsonl "
	    "-in batch-0001.jsonl.p7s -CAfile root-ca.pem -out /dev/null");
	ck_assert_msg(rc == 0 && strstr(out, "Verification successful"), "(%d) %s", rc, out);
	free(out);
	rc = ht_sh(dir, &out, "sed -i 's/\"seq\":2/\"seq\":3/' batch-0001.jsonl && "
	    "openssl cms -verify -binary -inform DER -content batch-0001.jsonl "
	    "-in batch-0001.jsonl.p7s -CAfile root-ca.pem -out /dev/null");
	ck_assert_msg(rc != 0 && strstr(out, "Verification failure"), "changed byte accepted (%d) %s", rc, out);
	free(out);

	store = st_x509_store_load(root, &err);
	ck_assert_ptr_nonnull(store);
	ck_assert_int_eq(st_cms_verify(data, strlen(data), der, der_len, store, NULL, &err), 0);
	ck_assert_int_eq(st_cms_verify(data, strlen(data) - 1, der, der_len, store, NULL, &err), -1);
	free(der);
	der = NULL;

	/* The wrong certificate for the key is refused before signing. */
	ck_assert_int_eq(hsm_cms_sign(audit, tool_cert, NULL, data, strlen(data), &der, &der_len, &err), -1);
	ck_assert_msg(strstr(err.msg, "does not belong to key \"audit\""), "%s", err.msg);
	ck_assert_ptr_null(der);

	X509_STORE_free(store);
	free(batch);
	free(seal);
	free(root);
	hsm_key_free(audit);
	X509_free(audit_cert);
	X509_free(tool_cert);
	hsm_close(ctx);
	tu_rmtree(dir);
	free(dir);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("hsm-issue");
	TCase *tc = tcase_create("issue");

	tcase_set_timeout(tc, 240);
	tcase_add_loop_test(tc, test_issue_each_intermediate, 0, 4);
	tcase_add_test(tc, test_profile_variants);
	tcase_add_test(tc, test_bad_csr_refused);
	tcase_add_loop_test(tc, test_csr_from_parts, 0, 2);
	tcase_add_test(tc, test_bad_profile_refused);
	tcase_add_test(tc, test_threads_1000);
	tcase_add_loop_test(tc, test_crl, 0, 4);
	tcase_add_test(tc, test_cms_audit_seal);
	suite_add_tcase(s, tc);
	return tu_run_suite(s);
}
