/* Signed recipes: `station recipe sign` with the engineering key in the test
 * token, `station recipe check`, and the library gate `station run` uses.
 * A valid signature is accepted and names its signer; one changed byte, a
 * signer outside the trust anchors, or a missing .sig (when required) is
 * refused. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cms.h"
#include "recipe.h"
#include "testutil.h"

static char *pki, *work;

static char *
wpath(const char *rel)
{
	return tu_path(work, rel);
}

static char *
ppath(const char *rel)
{
	return tu_path(pki, rel);
}

/* A fresh copy of the demo recipe in WORK (its pki/ is the test PKI). */
static char *
demo_copy(const char *name)
{
	char *path = wpath(name), *src = tu_src("recipes/examples/demo.yaml");

	ck_assert_int_eq(tu_shf(NULL, "cp '%s' '%s' && rm -f '%s.sig'", src, path, path), 0);
	free(src);
	return path;
}

/* station recipe sign with the engineering key in the token. */
static void
sign_with_hsm(const char *path)
{
	char *out = NULL;
	int rc = tu_shf(&out, "'%s' recipe sign '%s' --key-label engineering --cert '%s/engineering.pem'",
	    tu_station_exe(), path, pki);

	ck_assert_msg(rc == 0, "recipe sign failed (%d): %s", rc, out);
	ck_assert_ptr_nonnull(strstr(out, ".sig: signed by"));
	ck_assert_ptr_nonnull(strstr(out, "Recipe Engineering"));
	free(out);
}

static void
flip_byte(const char *path, size_t at)
{
	size_t len = 0;
	char *text = tu_slurp(path, &len);
	FILE *f;

	ck_assert_uint_lt(at, len);
	text[at] ^= 0x01;
	ck_assert_ptr_nonnull(f = fopen(path, "wb"));
	ck_assert_uint_eq(fwrite(text, 1, len, f), len);
	fclose(f);
	free(text);
}

static recipe *
load(const char *path)
{
	recipe_errors *e = recipe_errors_new();
	recipe *r = recipe_load(path, NULL, e);

	ck_assert_msg(r != NULL, "%s: %s", path, recipe_errors_get(e, 0));
	recipe_errors_free(e);
	return r;
}

START_TEST(test_valid_signature)
{
	char *path = demo_copy("signed.yaml"), *root = ppath("root-ca.pem"), *out = NULL;
	char signer[256];
	recipe *r;
	st_err err;
	int rc;

	sign_with_hsm(path);
	ck_assert_msg(recipe_signature_check(path, NULL, root, signer, sizeof(signer), &err) == 0, "%s", err.msg);
	ck_assert_ptr_nonnull(strstr(signer, "CN = Station Test Recipe Engineering 1"));

	/* The gate station run calls, with signatures required. */
	r = load(path);
	ck_assert_msg(recipe_policy_check(r, NULL, true, root, signer, sizeof(signer), &err) == 0, "%s", err.msg);
	ck_assert_ptr_nonnull(strstr(signer, "Recipe Engineering"));
	recipe_free(r);

	/* Stock OpenSSL agrees: the .sig is a plain detached CMS signature. */
	rc = tu_shf(&out, "openssl cms -verify -binary -inform DER -in '%s.sig' -content '%s' -CAfile '%s' -out /dev/null",
	    path, path, root);
	ck_assert_msg(rc == 0, "openssl cms -verify: %s", out);
	free(out);

	rc = tu_shf(&out, "'%s' recipe check --require-signed --trust '%s' '%s'", tu_station_exe(), root, path);
	ck_assert_msg(rc == 0, "recipe check (%d): %s", rc, out);
	ck_assert_ptr_nonnull(strstr(out, "signature    signed by O = Station Test, CN = Station Test Recipe Engineering 1"));
	ck_assert_ptr_nonnull(strstr(out, "recipe       demo-sensor 1.0.0"));
	ck_assert_ptr_nonnull(strstr(out, "digest       sha256:"));
	free(out);
	free(root);
	free(path);
}
END_TEST

START_TEST(test_changed_byte_refused)
{
	char *path = demo_copy("changed.yaml"), *root = ppath("root-ca.pem"), *out = NULL;
	char signer[256];
	size_t len = 0;
	char *text;
	recipe *r;
	st_err err;
	int rc;

	sign_with_hsm(path);
	/* Change one byte of a value the station would use: quota 100 -> 101. */
	text = tu_slurp(path, &len);
	flip_byte(path, (size_t)(strstr(text, "max_per_shift: 100") - text) + strlen("max_per_shift: 10"));
	free(text);

	ck_assert_int_eq(recipe_signature_check(path, NULL, root, signer, sizeof(signer), &err), -1);
	ck_assert_int_eq(err.code, ST_E_VERIFY);
	ck_assert_ptr_nonnull(strstr(err.msg, "changed after signing"));
	ck_assert_str_eq(signer, "");

	r = load(path);
	ck_assert_int_eq(r->quota.max_per_shift, 101);
	ck_assert_int_eq(recipe_policy_check(r, NULL, true, root, signer, sizeof(signer), &err), -1);
	ck_assert_ptr_nonnull(strstr(err.msg, "recipe refused"));
	/* Even where signatures are optional, a signature that no longer matches is refused. */
	ck_assert_int_eq(recipe_policy_check(r, NULL, false, root, signer, sizeof(signer), &err), -1);
	recipe_free(r);

	rc = tu_shf(&out, "'%s' recipe check --require-signed --trust '%s' '%s'", tu_station_exe(), root, path);
	ck_assert_int_eq(rc, 2);
	ck_assert_ptr_nonnull(strstr(out, "signature    INVALID: "));
	ck_assert_ptr_nonnull(strstr(out, "changed after signing"));
	free(out);
	free(root);
	free(path);
}
END_TEST

/* Bytes that change between load and check (a recipe swapped under a running station). */
START_TEST(test_changed_after_load_refused)
{
	char *path = demo_copy("swapped.yaml"), *root = ppath("root-ca.pem");
	char signer[256];
	recipe *r;
	st_err err;

	sign_with_hsm(path);
	r = load(path);
	ck_assert_int_eq(tu_shf(NULL, "printf '# appended\\n' >> '%s'", path), 0);
	ck_assert_int_eq(recipe_policy_check(r, NULL, true, root, signer, sizeof(signer), &err), -1);
	ck_assert_int_eq(err.code, ST_E_VERIFY);
	ck_assert_ptr_nonnull(strstr(err.msg, "changed on disk after it was loaded"));
	recipe_free(r);
	free(root);
	free(path);
}
END_TEST

/* A signature made by a key that does not chain to the trust anchors: the
 * SE vendor's CA (a real key and certificate, but not ours). */
START_TEST(test_unknown_signer_refused)
{
	char *path = demo_copy("foreign.yaml"), *root = ppath("root-ca.pem"), *out = NULL;
	char signer[256];
	st_err err;
	int rc;

	rc = tu_shf(&out, "openssl cms -sign -binary -outform DER -in '%s' -out '%s.sig' -signer '%s/se-vendor-ca.pem' "
	              "-inkey '%s/se-vendor-ca.key'",
	    path, path, pki, pki);
	ck_assert_msg(rc == 0, "openssl cms -sign: %s", out);
	free(out);

	ck_assert_int_eq(recipe_signature_check(path, NULL, root, signer, sizeof(signer), &err), -1);
	ck_assert_int_eq(err.code, ST_E_VERIFY);
	ck_assert_msg(strstr(err.msg, "signed by O = Test SE Vendor, CN = Test SE Vendor Batch CA 7, who is not trusted") != NULL,
	    "%s", err.msg);

	rc = tu_shf(&out, "'%s' recipe check --require-signed --trust '%s' '%s'", tu_station_exe(), root, path);
	ck_assert_int_eq(rc, 2);
	ck_assert_ptr_nonnull(strstr(out, "who is not trusted"));
	free(out);
	free(root);
	free(path);
}
END_TEST

/* A file key signed by stock openssl (how an offline engineering
 * workstation without our HSM code could sign) with a certificate of the
 * recipe signing role works; the same with another role is refused. */
static int
openssl_sign(const char *path, const char *name, const char *role_oid)
{
	char *out = NULL;
	int rc = tu_shf(&out,
	    "cd '%s' && openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out %s.key && "
	    "printf 'keyUsage=critical,digitalSignature\\nextendedKeyUsage=emailProtection,%s\\n' > %s.ext && "
	    "openssl req -new -key %s.key -subj '/O=Station Test/CN=Offline %s' | "
	    "openssl x509 -req -CA '%s/root-ca.pem' -CAkey '%s/root-ca.key' -extfile %s.ext -days 2 -out %s.pem && "
	    "openssl cms -sign -binary -outform DER -in '%s' -out '%s.sig' -signer %s.pem -inkey %s.key",
	    work, name, role_oid, name, name, name, pki, pki, name, name, path, path, name, name);

	ck_assert_msg(rc == 0, "%s", out);
	free(out);
	return rc;
}

START_TEST(test_openssl_signed_file_key_accepted)
{
	char *path = demo_copy("filekey.yaml"), *root = ppath("root-ca.pem");
	char signer[256];
	st_err err;

	openssl_sign(path, "eng2", st_role_oid(ST_ROLE_RECIPE));
	ck_assert_msg(recipe_signature_check(path, NULL, root, signer, sizeof(signer), &err) == 0, "%s", err.msg);
	ck_assert_ptr_nonnull(strstr(signer, "Offline eng2"));
	free(root);
	free(path);
}
END_TEST

/* Issue 15 item 1: a recipe signed with the audit key (or any key of
 * another role under the same root) is refused, and the signer is told
 * which key to use; `recipe sign` refuses to make such a signature. */
START_TEST(test_wrong_role_refused)
{
	char *path = demo_copy("role.yaml"), *root = ppath("root-ca.pem"), *out = NULL;
	char signer[256];
	recipe *r;
	st_err err;
	int rc;

	openssl_sign(path, "auditor2", st_role_oid(ST_ROLE_AUDIT_SEAL));
	ck_assert_int_eq(recipe_signature_check(path, NULL, root, signer, sizeof(signer), &err), -1);
	ck_assert_int_eq(err.code, ST_E_VERIFY);
	ck_assert_msg(strstr(err.msg, "does not hold the recipe signing role") && strstr(err.msg, ST_OID_ARC ".1.2"), "%s",
	    err.msg);
	r = load(path);
	ck_assert_int_eq(recipe_policy_check(r, NULL, false, root, signer, sizeof(signer), &err), -1);
	recipe_free(r);
	rc = tu_shf(&out, "'%s' recipe check --trust '%s' '%s'", tu_station_exe(), root, path);
	ck_assert_msg(rc == 2 && strstr(out, "does not hold the recipe signing role"), "%s", out);
	free(out);

	/* A signer with no extendedKeyUsage at all is no recipe signer either. */
	openssl_sign(path, "plain", "emailProtection");
	ck_assert_int_eq(recipe_signature_check(path, NULL, root, signer, sizeof(signer), &err), -1);
	ck_assert_ptr_nonnull(strstr(err.msg, "does not hold the recipe signing role"));

	/* The audit key in the HSM cannot sign a recipe. */
	rc = tu_shf(&out, "rm -f '%s.sig' && '%s' recipe sign '%s' --key-label audit --cert '%s/audit.pem'", path,
	    tu_station_exe(), path, pki);
	ck_assert_msg(rc == 2 && strstr(out, "Audit Seal 1 does not hold the recipe signing role"), "(%d) %s", rc, out);
	free(out);
	ck_assert_int_ne(tu_shf(NULL, "test -e '%s.sig'", path), 0);
	free(root);
	free(path);
}
END_TEST

START_TEST(test_missing_sig)
{
	char *path = demo_copy("unsigned.yaml"), *root = ppath("root-ca.pem"), *out = NULL;
	char signer[256] = "x";
	recipe *r = load(path);
	st_err err;
	int rc;

	ck_assert_int_eq(recipe_signature_check(path, NULL, root, signer, sizeof(signer), &err), -1);
	ck_assert_int_eq(err.code, ST_E_NOTFOUND);
	/* Required: refused, and the operator is told what to do. */
	ck_assert_int_eq(recipe_policy_check(r, NULL, true, root, signer, sizeof(signer), &err), -1);
	ck_assert_int_eq(err.code, ST_E_CONFIG);
	ck_assert_ptr_nonnull(strstr(err.msg, "is not signed (no "));
	ck_assert_ptr_nonnull(strstr(err.msg, "station recipe sign"));
	/* Required without any trust anchors: a configuration error. */
	ck_assert_int_eq(recipe_policy_check(r, NULL, true, NULL, signer, sizeof(signer), &err), -1);
	ck_assert_ptr_nonnull(strstr(err.msg, "no signers are configured"));
	/* Optional: it runs unsigned. */
	ck_assert_int_eq(recipe_policy_check(r, NULL, false, root, signer, sizeof(signer), &err), 0);
	ck_assert_str_eq(signer, "");
	ck_assert_int_eq(recipe_policy_check(r, NULL, false, NULL, signer, sizeof(signer), &err), 0);
	recipe_free(r);

	rc = tu_shf(&out, "'%s' recipe check --trust '%s' '%s'", tu_station_exe(), root, path);
	ck_assert_msg(rc == 0, "%s", out);
	ck_assert_ptr_nonnull(strstr(out, "signature    unsigned"));
	free(out);
	rc = tu_shf(&out, "'%s' recipe check --require-signed --trust '%s' '%s'", tu_station_exe(), root, path);
	ck_assert_int_eq(rc, 2);
	ck_assert_ptr_nonnull(strstr(out, "is not signed"));
	free(out);
	free(root);
	free(path);
}
END_TEST

/* The station config demands signatures: the same refusals without flags. */
START_TEST(test_station_config_requires)
{
	char *path = demo_copy("cfg.yaml"), *cfg = wpath("station.yaml"), *out = NULL;
	recipe_station_config *c;
	recipe_errors *e = recipe_errors_new();
	char signer[256];
	recipe *r;
	st_err err;
	int rc;

	ck_assert_int_eq(tu_shf(NULL, "printf 'require_signed_recipes: true\\nrecipe_signers: pki/root-ca.pem\\n' > '%s'", cfg), 0);
	ck_assert_ptr_nonnull(c = recipe_station_config_load(cfg, e));
	r = load(path);
	ck_assert_int_eq(recipe_policy_check(r, c, false, NULL, signer, sizeof(signer), &err), -1);
	ck_assert_ptr_nonnull(strstr(err.msg, "is not signed"));
	recipe_free(r);

	rc = tu_shf(&out, "STATION_CONFIG='%s' '%s' recipe check '%s'", cfg, tu_station_exe(), path);
	ck_assert_int_eq(rc, 2);
	ck_assert_ptr_nonnull(strstr(out, "this station runs only signed recipes"));
	free(out);

	sign_with_hsm(path);
	r = load(path);
	ck_assert_msg(recipe_policy_check(r, c, false, NULL, signer, sizeof(signer), &err) == 0, "%s", err.msg);
	recipe_free(r);
	rc = tu_shf(&out, "STATION_CONFIG='%s' '%s' recipe check '%s'", cfg, tu_station_exe(), path);
	ck_assert_msg(rc == 0, "%s", out);
	ck_assert_ptr_nonnull(strstr(out, "signed by"));
	free(out);
	recipe_station_config_free(c);
	recipe_errors_free(e);
	free(cfg);
	free(path);
}
END_TEST

/* recipe_signers may pin the signers' own certificates instead of a CA. */
START_TEST(test_pinned_signer)
{
	char *path = demo_copy("pinned.yaml"), *eng = ppath("engineering.pem"), *audit = ppath("audit.pem");
	char signer[256];
	st_err err;

	sign_with_hsm(path);
	ck_assert_msg(recipe_signature_check(path, NULL, eng, signer, sizeof(signer), &err) == 0, "%s", err.msg);
	/* The audit key is certified by the same root, but it is not a recipe signer. */
	ck_assert_int_eq(recipe_signature_check(path, NULL, audit, signer, sizeof(signer), &err), -1);
	ck_assert_ptr_nonnull(strstr(err.msg, "who is not trusted"));
	free(audit);
	free(eng);
	free(path);
}
END_TEST

START_TEST(test_cli_errors)
{
	char *path = wpath("bad-cli.yaml"), *src = tu_src("tests/recipes/bad/three-errors.yaml"), *out = NULL;
	int rc;

	ck_assert_int_eq(tu_shf(NULL, "cp '%s' '%s'", src, path), 0);
	rc = tu_shf(&out, "'%s' recipe check '%s'", tu_station_exe(), path);
	ck_assert_int_eq(rc, 2);
	ck_assert_ptr_nonnull(strstr(out, ":13:12: jig.retries: "));
	ck_assert_ptr_nonnull(strstr(out, ":29:9: certificate.subject.CN: "));
	ck_assert_ptr_nonnull(strstr(out, ":37:15: audit.batch_size: "));
	ck_assert_ptr_nonnull(strstr(out, "3 errors"));
	free(out);
	/* Signing refuses an invalid recipe, and says so. */
	rc = tu_shf(&out, "'%s' recipe sign '%s' --key-label engineering --cert '%s/engineering.pem'", tu_station_exe(),
	    path, pki);
	ck_assert_int_eq(rc, 2);
	ck_assert_ptr_nonnull(strstr(out, "fix the recipe before signing"));
	free(out);
	rc = tu_shf(&out, "test -e '%s.sig'", path);
	ck_assert_int_ne(rc, 0);
	free(out);
	/* A label that is not in the token is named in the error. */
	free(path);
	path = demo_copy("label.yaml");
	rc = tu_shf(&out, "'%s' recipe sign '%s' --key-label no-such-key --cert '%s/engineering.pem'", tu_station_exe(),
	    path, pki);
	ck_assert_int_eq(rc, 2);
	ck_assert_ptr_nonnull(strstr(out, "no-such-key"));
	free(out);
	/* Usage. */
	ck_assert_int_eq(tu_shf(&out, "'%s' recipe check --help", tu_station_exe()), 0);
	ck_assert_ptr_nonnull(strstr(out, "usage: station recipe check"));
	free(out);
	ck_assert_int_eq(tu_shf(&out, "'%s' recipe sign '%s'", tu_station_exe(), path), 2);
	ck_assert_ptr_nonnull(strstr(out, "usage: station recipe sign"));
	free(out);
	ck_assert_int_eq(tu_shf(&out, "'%s' recipe frobnicate", tu_station_exe()), 2);
	free(out);
	free(src);
	free(path);
}
END_TEST

/* Without --cert, a key the recipe does not name is signed with the token's
 * own certificate object of that label (the README's command as written). */
START_TEST(test_cert_from_token)
{
	char *path = demo_copy("token-cert.yaml"), *root = ppath("root-ca.pem"), *out = NULL;
	char signer[256];
	st_err err;
	int rc;

	rc = tu_shf(&out, "'%s' recipe sign '%s' --key-label engineering", tu_station_exe(), path);
	ck_assert_msg(rc == 0, "recipe sign failed (%d): %s", rc, out);
	ck_assert_msg(strstr(out, ".sig: signed by") && strstr(out, "Recipe Engineering"), "%s", out);
	free(out);
	ck_assert_msg(recipe_signature_check(path, NULL, root, signer, sizeof(signer), &err) == 0, "%s", err.msg);
	ck_assert_ptr_nonnull(strstr(signer, "Recipe Engineering"));
	/* No certificate object and none in the recipe: say what to give. */
	rc = tu_shf(&out, "rm -f '%s.sig' && '%s' recipe sign '%s' --key-label no-such-key", path, tu_station_exe(),
	    path);
	ck_assert_int_eq(rc, 2);
	ck_assert_msg(strstr(out, "holds no certificate labelled \"no-such-key\"") && strstr(out, "give --cert"), "%s",
	    out);
	free(out);
	ck_assert_int_ne(tu_shf(NULL, "test -e '%s.sig'", path), 0);
	free(root);
	free(path);
}
END_TEST

/* An unchecked fixture: Check's asserts need a running suite. */
static void
make_work(void)
{
	char *cmd = NULL, *p;

	pki = tu_make_pki();
	work = tu_tmpdir("recipes-sign");
	p = realpath(work, NULL);
	free(work);
	work = p;
	ck_assert_int_ne(asprintf(&cmd, "ln -s '%s' '%s/pki'", pki, work), -1);
	ck_assert_int_eq(tu_sh(cmd, NULL), 0);
	free(cmd);
}

int
main(void)
{
	Suite *s = suite_create("recipes-sign");
	TCase *tc = tcase_create("sign");
	int rc;

	tcase_add_unchecked_fixture(tc, make_work, NULL);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_valid_signature);
	tcase_add_test(tc, test_cert_from_token);
	tcase_add_test(tc, test_changed_byte_refused);
	tcase_add_test(tc, test_changed_after_load_refused);
	tcase_add_test(tc, test_unknown_signer_refused);
	tcase_add_test(tc, test_openssl_signed_file_key_accepted);
	tcase_add_test(tc, test_wrong_role_refused);
	tcase_add_test(tc, test_missing_sig);
	tcase_add_test(tc, test_station_config_requires);
	tcase_add_test(tc, test_pinned_signer);
	tcase_add_test(tc, test_cli_errors);
	suite_add_tcase(s, tc);
	rc = tu_run_suite(s);
	tu_rmtree(work);
	tu_rmtree(pki);
	free(work);
	free(pki);
	return rc;
}
