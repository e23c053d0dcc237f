/* The attestation gate on its own (DESIGN.md invariant 2, PROTOCOL.md
 * section 6): real SE_INFO and GET_CSR answers from jigsim, then each check
 * broken in turn.  Also the trust cache: an intermediate verified once
 * anchors later chains, and nothing else does. */
#include <string.h>

#include <openssl/objects.h>

#include "cms.h"
#include "hsm.h"
#include "jsutil.h"
#include "verify.h"

static js_pki *pki;
static jigsim *sim;
static js_direct direct;

static void
setup(void)
{
	jigsim_config c;
	st_err err;

	pki = js_pki_new();
	js_config(&c, pki);
	ck_assert_ptr_nonnull(sim = jigsim_new(&c, &err));
	memset(&direct, 0, sizeof(direct));
	direct.s = sim;
}

static void
teardown(void)
{
	jigsim_free(sim);
	js_pki_free(pki);
}

/* The SE in the jig, through GET_CSR (the device is then released). */
static void
next_device(js_device *d, unsigned faults)
{
	jig_msg req, resp;
	st_err err;

	ck_assert_int_eq(jigsim_device_set_faults(sim, 0, faults), 0);
	js_provision(js_direct_call, &direct, pki, d);
	js_req(&req, JIG_CMD_DUT_POWER);
	req.u.power_req.action = JIG_POWER_RELEASE;
	ck_assert_int_eq(js_direct_call(&direct, &req, &resp, &err), 0);
}

/* An SE whose attestation certificate comes from a rogue vendor CA with the
 * same names (jigsim makes that identity when the device is created). */
static void
rogue_device(js_device *d)
{
	jigsim_config c;
	js_direct rd;
	st_err err;

	js_config(&c, pki);
	c.faults = JIGSIM_F_UNKNOWN_VENDOR;
	memset(&rd, 0, sizeof(rd));
	ck_assert_ptr_nonnull(rd.s = jigsim_new(&c, &err));
	js_provision(js_direct_call, &rd, pki, d);
	ck_assert_int_eq(d->verdict, JS_BAD_CHAIN);
	jigsim_free(rd.s);
}

/* How the test SE vendor (jigsim) names the model: "CN=TSE-100 attestation". */
static const char *const rule_models[] = { "TSE-100", "TSE-050" };
static const char *const rule_policies[] = { "1.3.6.1.4.1.55555.1.100", "1.3.6.1.4.1.55555.1.50" };
static const sv_model_rule jigsim_rule = { .subject_nid = NID_commonName, .prefix = "", .suffix = " attestation" };

static sv_trust *
trust_rule(const char *pem, const sv_model_rule *rule)
{
	st_err err;
	X509_STORE *roots = st_x509_store_load(pem, &err);

	ck_assert_msg(roots != NULL, "%s", err.msg);
	return sv_trust_new(roots, rule);
}

static sv_trust *
trust_from(const char *pem)
{
	return trust_rule(pem, &jigsim_rule);
}

static int
verify(js_device *d, sv_session *s, const jig_blob *att, const jig_blob *sig, st_err *err)
{
	EVP_PKEY *attest_key = NULL;
	sv_trust *t = trust_from(pki->vendor_root);
	X509_REQ *req = NULL;
	int rc;

	ck_assert_msg(sv_check_se_chain(&d->info, t, &attest_key, err) == 0, "%s", err->msg);
	rc = sv_verify_csr(s, attest_key, &d->csr.u.csr.csr, att ? att : &d->csr.u.csr.attestation,
	    sig ? sig : &d->csr.u.csr.signature, &req, err);
	ck_assert(rc == 0 ? req != NULL : req == NULL);
	X509_REQ_free(req);
	EVP_PKEY_free(attest_key);
	sv_trust_free(t);
	return rc;
}

static void
session(js_device *d, sv_session *s)
{
	memset(s, 0, sizeof(*s));
	s->info = &d->info;
	s->slot = 0;
	memcpy(s->nonce, d->nonce, JIG_NONCE_LEN);
	s->pubkey = &d->pubkey;
	s->curve_nid = NID_X9_62_prime256v1;
}

static void
expect_refused(js_device *d, sv_session *s, const jig_blob *att, const jig_blob *sig, const char *why)
{
	st_err err;

	st_err_clear(&err);
	ck_assert_int_eq(verify(d, s, att, sig, &err), -1);
	ck_assert_int_eq(err.code, ST_E_VERIFY);
	ck_assert_msg(strstr(err.msg, why) != NULL, "expected \"%s\" in: %s", why, err.msg);
}

START_TEST(test_accepts_a_good_device)
{
	js_device d;
	sv_session s;
	st_err err;

	static jig_msg hello, resp;
	X509_REQ *req;

	next_device(&d, 0);
	session(&d, &s);
	ck_assert_msg(verify(&d, &s, NULL, NULL, &err) == 0, "%s", err.msg);
	/* 1.2: the CSR the station builds is the one its parts give, so the
	 * gate takes no detour through OpenSSL's key decoder. */
	js_req(&hello, JIG_CMD_HELLO);
	hello.u.hello_req.min_version = JIG_VERSION_1_0;
	hello.u.hello_req.max_version = JIG_VERSION_1_2;
	ck_assert_int_eq(js_direct_call(&direct, &hello, &resp, &err), 0);
	ck_assert_uint_eq(direct.version, JIG_VERSION_1_2);
	next_device(&d, 0);
	session(&d, &s);
	ck_assert_uint_eq(d.csr.version, JIG_VERSION_1_2);
	ck_assert_msg(verify(&d, &s, NULL, NULL, &err) == 0, "%s", err.msg);
	req = hsm_csr_from_parts(d.info.serial, d.pubkey.data, d.pubkey.len, d.csr.u.csr.csr_signature.data,
	    d.csr.u.csr.csr_signature.len, d.csr.u.csr.csr.data, d.csr.u.csr.csr.len);
	ck_assert_ptr_nonnull(req);
	X509_REQ_free(req);
	s.csr_signature = &d.csr.u.csr.csr_signature;
	ck_assert_msg(verify(&d, &s, NULL, NULL, &err) == 0, "%s", err.msg);
}
END_TEST

START_TEST(test_refuses_what_this_session_did_not_see)
{
	js_device d;
	sv_session s;
	jig_se_info info;
	jig_blob other;

	next_device(&d, 0);
	session(&d, &s);
	s.nonce[5] ^= 1;
	expect_refused(&d, &s, NULL, NULL, "nonce");

	session(&d, &s);
	info = d.info;
	info.firmware++;
	s.info = &info;
	expect_refused(&d, &s, NULL, NULL, "firmware");

	session(&d, &s);
	s.slot = 3;
	expect_refused(&d, &s, NULL, NULL, "slot");

	session(&d, &s);
	other = d.pubkey;
	other.data[other.len - 1] ^= 1;
	s.pubkey = &other;
	expect_refused(&d, &s, NULL, NULL, "another public key");

	session(&d, &s);
	s.curve_nid = NID_secp384r1;
	expect_refused(&d, &s, NULL, NULL, "curve");
}
END_TEST

START_TEST(test_refuses_altered_bytes)
{
	js_device d;
	sv_session s;
	jig_blob att, sig;

	next_device(&d, 0);
	session(&d, &s);
	att = d.csr.u.csr.attestation;
	att.data[att.len - 40] ^= 1; /* inside the CSR hash */
	expect_refused(&d, &s, &att, NULL, "signature");
	att = d.csr.u.csr.attestation;
	att.data[att.len++] = 0; /* trailing byte */
	expect_refused(&d, &s, &att, NULL, "attestation");
	sig = d.csr.u.csr.signature;
	sig.data[sig.len / 2] ^= 0x40;
	expect_refused(&d, &s, NULL, &sig, "signature");
	d.csr.u.csr.csr.data[d.csr.u.csr.csr.len - 3] ^= 1; /* the CSR after it was attested */
	expect_refused(&d, &s, NULL, NULL, "CSR hash");
}
END_TEST

START_TEST(test_jigsim_faults_are_refused)
{
	static const struct {
		unsigned fault;
		const char *why;
	} cases[] = {
		{ JIGSIM_F_BAD_ATTEST_SIG, "signature" },
		{ JIGSIM_F_ATTEST_WRONG_KEY, "another public key" },
		{ JIGSIM_F_REPLAY_NONCE, "nonce" },
	};
	js_device d;
	sv_session s;
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		next_device(&d, cases[i].fault);
		session(&d, &s);
		expect_refused(&d, &s, NULL, NULL, cases[i].why);
	}
}
END_TEST

START_TEST(test_chain)
{
	js_device good, rogue;
	jig_se_info mixed, renamed;
	EVP_PKEY *k = NULL;
	sv_trust *t = trust_from(pki->vendor_root), *wrong;
	char other_root[600];
	st_err err;

	next_device(&good, 0);
	rogue_device(&rogue);
	ck_assert_uint_eq(good.info.ncerts, 2);

	/* A rogue vendor (same names, other keys) fails, before and after the
	 * real batch CA is known. */
	ck_assert_int_eq(sv_check_se_chain(&rogue.info, t, &k, &err), -1);
	ck_assert_ptr_null(k);
	ck_assert_msg(sv_check_se_chain(&good.info, t, &k, &err) == 0, "%s", err.msg);
	EVP_PKEY_free(k);
	ck_assert_msg(sv_check_se_chain(&good.info, t, &k, &err) == 0, "cached: %s", err.msg);
	EVP_PKEY_free(k);
	k = NULL;
	ck_assert_int_eq(sv_check_se_chain(&rogue.info, t, &k, &err), -1);
	ck_assert_ptr_nonnull(strstr(err.msg, "does not chain"));
	/* A rogue leaf presented with the real (now cached) batch CA. */
	mixed = rogue.info;
	mixed.certs[1] = good.info.certs[1];
	ck_assert_int_eq(sv_check_se_chain(&mixed, t, &k, &err), -1);
	ck_assert_ptr_null(k);

	/* The certificate must name this SE. */
	renamed = good.info;
	renamed.serial[2] ^= 1;
	ck_assert_int_eq(sv_check_se_chain(&renamed, t, &k, &err), -1);
	ck_assert_ptr_nonnull(strstr(err.msg, "serial"));
	renamed = good.info;
	renamed.ncerts = 0;
	ck_assert_int_eq(sv_check_se_chain(&renamed, t, &k, &err), -1);
	renamed = good.info;
	renamed.certs[0].data[10] ^= 0xff;
	ck_assert_int_eq(sv_check_se_chain(&renamed, t, &k, &err), -1);

	/* The certificate must name the model the SE claims (issue 13 item 5):
	 * a genuine TSE-100 certificate does not vouch for a TSE-050. */
	renamed = good.info;
	snprintf(renamed.model, sizeof(renamed.model), "TSE-050");
	ck_assert_int_eq(sv_check_se_chain(&renamed, t, &k, &err), -1);
	ck_assert_ptr_null(k);
	ck_assert_msg(strstr(err.msg, "not for SE model \"TSE-050\"") && strstr(err.msg, "TSE-100 attestation"), "%s",
	    err.msg);
	snprintf(renamed.model, sizeof(renamed.model), "TSE-10");
	ck_assert_int_eq(sv_check_se_chain(&renamed, t, &k, &err), -1);
	{
		/* A vendor that names models by policy OID: this certificate has none. */
		sv_model_rule pr = { .models = rule_models, .policies = rule_policies, .n_models = 2 };
		sv_model_rule other = { .subject_nid = NID_organizationalUnitName, .prefix = "", .suffix = "" };
		sv_trust *pt = trust_rule(pki->vendor_root, &pr), *ot = trust_rule(pki->vendor_root, &other);

		ck_assert_int_eq(sv_check_se_chain(&good.info, pt, &k, &err), -1);
		ck_assert_msg(strstr(err.msg, "certificatePolicies"), "%s", err.msg);
		ck_assert_int_eq(sv_check_se_chain(&good.info, ot, &k, &err), -1);
		ck_assert_msg(strstr(err.msg, "has no OU"), "%s", err.msg);
		ck_assert_ptr_null(k);
		sv_trust_free(pt);
		sv_trust_free(ot);
	}

	/* Another root: nothing chains, cache or not. */
	snprintf(other_root, sizeof(other_root), "%s/root-ca.pem", pki->dir);
	wrong = trust_from(other_root);
	ck_assert_int_eq(sv_check_se_chain(&good.info, wrong, &k, &err), -1);
	sv_trust_free(wrong);
	sv_trust_free(t);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("verify");
	TCase *tc = tcase_create("verify");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_accepts_a_good_device);
	tcase_add_test(tc, test_refuses_what_this_session_did_not_see);
	tcase_add_test(tc, test_refuses_altered_bytes);
	tcase_add_test(tc, test_jigsim_faults_are_refused);
	tcase_add_test(tc, test_chain);
	suite_add_tcase(s, tc);
	return tu_run_suite(s);
}
