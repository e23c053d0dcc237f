/* `station hsm check`: the happy path, and each failure's exit code and
 * message, run as the operator would run it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "hsm-tu.h"

#define MODULE "/usr/lib/softhsm/libsofthsm2.so"

static char *
key_arg(const char *dir, const char *label, const char *cert)
{
	char *s = NULL;

	ck_assert_int_ne(asprintf(&s, "%s=%s/%s", label, dir, cert), -1);
	return s;
}

START_TEST(test_flags_happy)
{
	char *dir = tu_make_pki();
	char *k1 = key_arg(dir, "intermediate", "intermediate.pem"), *k2 = key_arg(dir, "audit", "audit.pem");
	char *k3 = key_arg(dir, "tool", "tool.pem"), *out = NULL;
	int rc;

	rc = tu_station(&out, "hsm", "check", "--token", "station-test", "--key-label", k1, "--key-label", k2,
	    "--key-label", k3, "--key-label", "engineering", NULL);
	ck_assert_msg(rc == 0, "exit %d: %s", rc, out);
	ck_assert_msg(strstr(out, "token          \"station-test\"") && strstr(out, MODULE), "%s", out);
	ck_assert_msg(strstr(out, "key \"intermediate\"") && strstr(out, "key \"audit\"") && strstr(out, "key \"tool\"") &&
	    strstr(out, "key \"engineering\""), "%s", out);
	ck_assert_msg(strstr(out, "EC P-256") && strstr(out, "never extractable"), "%s", out);
	ck_assert_msg(strstr(out, "CN = Station Test Manufacturing CA 1") && strstr(out, "days left"), "%s", out);
	ck_assert_msg(strstr(out, "hsm check: OK, 4 keys in token \"station-test\""), "%s", out);
	free(out);

	/* Defaults: intermediate, audit and tool, no certificates. */
	rc = tu_station(&out, "hsm", "check", "--token", "station-test", "--module", MODULE, NULL);
	ck_assert_msg(rc == 0 && strstr(out, "OK, 3 keys") && strstr(out, "(none given)"), "exit %d: %s", rc, out);
	free(out);
	free(k1);
	free(k2);
	free(k3);
	tu_rmtree(dir);
	free(dir);
}
END_TEST

/* The demo recipe next to a test PKI in pki/. */
static char *
write_recipe(const char *dir, const char *sed)
{
	char *path = tu_path(dir, "demo.yaml"), *out = NULL, *src = tu_src("recipes/examples/demo.yaml");
	int rc;

	rc = ht_sh(dir, &out, "ln -s . pki && sed '%s' '%s' > demo.yaml", sed ? sed : "", src);
	ck_assert_msg(rc == 0, "%s", out);
	free(out);
	free(src);
	return path;
}

START_TEST(test_recipe_happy)
{
	char *dir = tu_make_pki();
	char *recipe = write_recipe(dir, NULL), *out = NULL;
	int rc;

	rc = tu_station(&out, "hsm", "check", "--recipe", recipe, NULL);
	ck_assert_msg(rc == 0, "exit %d: %s", rc, out);
	ck_assert_msg(strstr(out, "key \"intermediate\"") && strstr(out, "key \"audit\"") && strstr(out, "key \"tool\""),
	    "%s", out);
	ck_assert_msg(strstr(out, "CN = Station Test Tool Credential 1") && strstr(out, "OK, 3 keys"), "%s", out);
	free(out);
	/* Flags override the recipe's choice of keys. */
	rc = tu_station(&out, "hsm", "check", "--recipe", recipe, "--key-label", "engineering", NULL);
	ck_assert_msg(rc == 0 && strstr(out, "OK, 1 key ") && strstr(out, "\"engineering\""), "exit %d: %s", rc, out);
	free(out);
	free(recipe);
	tu_rmtree(dir);
	free(dir);
}
END_TEST

START_TEST(test_recipe_errors)
{
	char *dir = tu_make_pki();
	char *recipe = write_recipe(dir, "s/token: station-test/token: other-token/"), *out = NULL;
	int rc;

	rc = tu_station(&out, "hsm", "check", "--recipe", recipe, NULL);
	ck_assert_msg(rc == 2 && strstr(out, "token \"other-token\" not found") && strstr(out, "\"station-test\""),
	    "exit %d: %s", rc, out);
	free(out);
	unlink(recipe);
	rc = tu_station(&out, "hsm", "check", "--recipe", recipe, NULL);
	ck_assert_msg(rc == 2 && strstr(out, "demo.yaml"), "exit %d: %s", rc, out);
	free(out);
	free(recipe);
	tu_rmtree(dir);
	free(dir);
}
END_TEST

START_TEST(test_usage)
{
	char *out = NULL;
	int rc;

	rc = tu_station(&out, "hsm", "check", "--help", NULL);
	ck_assert_msg(rc == 0 && strstr(out, "usage: station hsm check"), "%d %s", rc, out);
	free(out);
	rc = tu_station(&out, "hsm", "--help", NULL);
	ck_assert_msg(rc == 0 && strstr(out, "usage: station hsm check"), "%d %s", rc, out);
	free(out);
	rc = tu_station(&out, "hsm", NULL);
	ck_assert_int_eq(rc, 2);
	free(out);
	rc = tu_station(&out, "hsm", "frobnicate", NULL);
	ck_assert_msg(rc == 2 && strstr(out, "unknown subcommand"), "%d %s", rc, out);
	free(out);
	rc = tu_station(&out, "hsm", "check", NULL);
	ck_assert_msg(rc == 2 && strstr(out, "--token"), "%d %s", rc, out);
	free(out);
	rc = tu_station(&out, "hsm", "check", "--token", "t", "--pin-env", "A", "--pin-prompt", NULL);
	ck_assert_msg(rc == 2 && strstr(out, "at most one"), "%d %s", rc, out);
	free(out);
	rc = tu_station(&out, "hsm", "check", "--token", "t", "--key-label", "=x.pem", NULL);
	ck_assert_msg(rc == 2 && strstr(out, "LABEL=CERT.pem"), "%d %s", rc, out);
	free(out);
	rc = tu_station(&out, "hsm", "check", "--token", "t", "--pin", "1234", NULL);
	ck_assert_int_eq(rc, 2);
	free(out);
}
END_TEST

START_TEST(test_config_failures)
{
	char *dir = tu_make_pki();
	char *mismatch = key_arg(dir, "audit", "tool.pem"), *missing_cert = key_arg(dir, "audit", "nope.pem");
	char *pinfile = tu_path(dir, "my-pin"), *out = NULL;
	FILE *f;
	int rc;

	/* Wrong PIN: says so, never shows it. */
	setenv("STATION_HSM_PIN", "24681357", 1);
	rc = tu_station(&out, "hsm", "check", "--token", "station-test", NULL);
	ck_assert_msg(rc == 2 && strstr(out, "wrong PIN for token \"station-test\""), "exit %d: %s", rc, out);
	ck_assert_msg(!strstr(out, "24681357"), "PIN shown: %s", out);
	free(out);
	rc = tu_station(&out, "hsm", "check", "--token", "station-test", "--pin-env", "NO_SUCH_PIN_VARIABLE", NULL);
	ck_assert_msg(rc == 2 && strstr(out, "NO_SUCH_PIN_VARIABLE is not set"), "exit %d: %s", rc, out);
	free(out);
	setenv("STATION_HSM_PIN", "123456", 1);

	/* PIN file readable by others. */
	f = fopen(pinfile, "w");
	fputs("123456\n", f);
	fclose(f);
	chmod(pinfile, 0644);
	rc = tu_station(&out, "hsm", "check", "--token", "station-test", "--pin-file", pinfile, NULL);
	ck_assert_msg(rc == 2 && strstr(out, "mode 0644") && strstr(out, "chmod 600"), "exit %d: %s", rc, out);
	ck_assert_msg(!strstr(out, "123456"), "PIN shown: %s", out);
	free(out);
	chmod(pinfile, 0600);
	rc = tu_station(&out, "hsm", "check", "--token", "station-test", "--pin-file", pinfile, NULL);
	ck_assert_msg(rc == 0, "exit %d: %s", rc, out);
	free(out);

	rc = tu_station(&out, "hsm", "check", "--token", "no-such-token", NULL);
	ck_assert_msg(rc == 2 && strstr(out, "token \"no-such-token\" not found") && strstr(out, "\"station-test\""),
	    "exit %d: %s", rc, out);
	free(out);
	rc = tu_station(&out, "hsm", "check", "--token", "station-test", "--module", "/nonexistent/pkcs11.so", NULL);
	ck_assert_msg(rc == 2 && strstr(out, "/nonexistent/pkcs11.so"), "exit %d: %s", rc, out);
	free(out);
	rc = tu_station(&out, "hsm", "check", "--token", "station-test", "--key-label", "nosuchkey", NULL);
	ck_assert_msg(rc == 2 && strstr(out, "no private key labelled \"nosuchkey\" in token \"station-test\""),
	    "exit %d: %s", rc, out);
	free(out);
	rc = tu_station(&out, "hsm", "check", "--token", "station-test", "--key-label", mismatch, NULL);
	ck_assert_msg(rc == 2 && strstr(out, "does not belong to key \"audit\""), "exit %d: %s", rc, out);
	free(out);
	rc = tu_station(&out, "hsm", "check", "--token", "station-test", "--key-label", missing_cert, NULL);
	ck_assert_msg(rc == 2 && strstr(out, "nope.pem"), "exit %d: %s", rc, out);
	free(out);

	free(mismatch);
	free(missing_cert);
	free(pinfile);
	tu_rmtree(dir);
	free(dir);
}
END_TEST

/* A key pkcs11-tool makes with extra flags, checked beside the
 * intermediate: hsm check refuses it, saying want. */
static void
check_refuses_new_key(const char *label, const char *flags, const char *want)
{
	char *dir = tu_make_pki();
	char *out = NULL;
	int rc;

	rc = ht_sh(dir, &out, "pkcs11-tool --module %s --token-label station-test --login --pin 123456 --keypairgen "
	    "--key-type EC:prime256v1 --label %s --usage-sign%s", MODULE, label, flags);
	ck_assert_msg(rc == 0, "%s", out);
	free(out);
	rc = tu_station(&out, "hsm", "check", "--token", "station-test", "--key-label", "intermediate", "--key-label",
	    label, NULL);
	ck_assert_msg(rc == 2 && strstr(out, want), "exit %d: %s", rc, out);
	free(out);
	tu_rmtree(dir);
	free(dir);
}

START_TEST(test_extractable_key)
{
	check_refuses_new_key("leaky", " --id 30 --extractable",
	    "key \"leaky\" in token \"station-test\" has CKA_EXTRACTABLE=true");
}
END_TEST

/* A key without CKA_ID (pkcs11-tool without --id) is refused. */
START_TEST(test_key_without_id)
{
	check_refuses_new_key("noid", "", "key \"noid\" in token \"station-test\" has no CKA_ID");
}
END_TEST

/* A certificate object with the intermediate key's CKA_ID that belongs to
 * another key (the audit certificate) is refused. */
START_TEST(test_cert_object_mismatch)
{
	char *dir = tu_make_pki();
	char *out = NULL;
	int rc;

	rc = tu_station(&out, "hsm", "check", "--token", "station-test", "--key-label", "intermediate", NULL);
	ck_assert_msg(rc == 0, "exit %d: %s", rc, out);
	free(out);
	rc = ht_sh(dir, &out, "openssl x509 -in audit.pem -outform DER -out wrong.der && pkcs11-tool --module %s "
	    "--token-label station-test --login --pin 123456 --write-object wrong.der --type cert --id 01 --label wrong",
	    MODULE);
	ck_assert_msg(rc == 0, "%s", out);
	free(out);
	rc = tu_station(&out, "hsm", "check", "--token", "station-test", "--key-label", "intermediate", NULL);
	ck_assert_msg(rc == 2 && strstr(out, "certificate object with the key's CKA_ID") &&
	    strstr(out, "Audit Seal") && strstr(out, "does not belong to key \"intermediate\""), "exit %d: %s", rc, out);
	free(out);
	tu_rmtree(dir);
	free(dir);
}
END_TEST

/* A wrong PIN since the last good login: the next check warns. */
START_TEST(test_pin_count_low)
{
	char *dir = tu_make_pki();
	char *out = NULL;
	int rc;

	rc = tu_station(&out, "hsm", "check", "--token", "station-test", NULL);
	ck_assert_msg(rc == 0 && !strstr(out, "warning"), "exit %d: %s", rc, out);
	free(out);
	setenv("STATION_HSM_PIN", "999999", 1);
	rc = tu_station(&out, "hsm", "check", "--token", "station-test", NULL);
	ck_assert_msg(rc == 2 && strstr(out, "CKR_PIN_INCORRECT"), "exit %d: %s", rc, out);
	free(out);
	setenv("STATION_HSM_PIN", "123456", 1); /* TEST PIN */
	rc = tu_station(&out, "hsm", "check", "--token", "station-test", NULL);
	ck_assert_msg(rc == 0 && strstr(out, "warning        a wrong user PIN was given"), "exit %d: %s", rc, out);
	free(out);
	tu_rmtree(dir);
	free(dir);
}
END_TEST

/* A certificate for the audit key that expired yesterday, signed by the root. */
START_TEST(test_expired_cert)
{
	char *dir = tu_make_pki();
	char *pub_path = tu_path(dir, "audit-pub.pem"), *key_path = tu_path(dir, "root-ca.key");
	char *cert_path = tu_path(dir, "audit-old.pem"), *arg = key_arg(dir, "audit", "audit-old.pem"), *out = NULL;
	X509 *root = ht_cert(dir, "root-ca.pem"), *x = X509_new();
	EVP_PKEY *pub, *root_key;
	FILE *f;
	int rc;

	f = fopen(pub_path, "r");
	pub = PEM_read_PUBKEY(f, NULL, NULL, NULL);
	fclose(f);
	f = fopen(key_path, "r");
	root_key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	fclose(f);
	ck_assert(pub && root_key && x);
	ck_assert(X509_set_version(x, X509_VERSION_3));
	ck_assert(ASN1_INTEGER_set(X509_get_serialNumber(x), 4242));
	ck_assert(X509_set_subject_name(x, X509_get_subject_name(root)));
	ck_assert(X509_set_issuer_name(x, X509_get_subject_name(root)));
	ck_assert(X509_gmtime_adj(X509_getm_notBefore(x), -10 * 86400L));
	ck_assert(X509_gmtime_adj(X509_getm_notAfter(x), -86400L));
	ck_assert(X509_set_pubkey(x, pub));
	ck_assert(X509_sign(x, root_key, EVP_sha384()));
	ht_write_pem(cert_path, x);

	rc = tu_station(&out, "hsm", "check", "--token", "station-test", "--key-label", arg, NULL);
	ck_assert_msg(rc == 2 && strstr(out, "audit-old.pem expired on") && strstr(out, "renew it"), "exit %d: %s", rc,
	    out);
	free(out);
	X509_free(x);
	X509_free(root);
	EVP_PKEY_free(pub);
	EVP_PKEY_free(root_key);
	free(pub_path);
	free(key_path);
	free(cert_path);
	free(arg);
	tu_rmtree(dir);
	free(dir);
}
END_TEST

/* --pin-prompt on a terminal: the PIN is typed, not echoed, and works. */
START_TEST(test_pin_prompt)
{
	char *dir = tu_make_pki(), *out = NULL;
	char *argv[] = { (char *)tu_station_exe(), (char *)"hsm", (char *)"check", (char *)"--token",
		(char *)"station-test", (char *)"--pin-prompt", NULL };
	int rc;

	unsetenv("STATION_HSM_PIN");
	rc = tu_run_pty(argv, "123456", &out);
	ck_assert_msg(rc == 0, "exit %d: %s", rc, out);
	ck_assert_msg(strstr(out, "User PIN for token \"station-test\": "), "%s", out);
	ck_assert_msg(strstr(out, "OK, 3 keys"), "%s", out);
	ck_assert_msg(!strstr(out, "123456"), "PIN echoed: %s", out);
	free(out);
	tu_rmtree(dir);
	free(dir);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("hsm-check");
	TCase *tc = tcase_create("check");

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_flags_happy);
	tcase_add_test(tc, test_recipe_happy);
	tcase_add_test(tc, test_recipe_errors);
	tcase_add_test(tc, test_usage);
	tcase_add_test(tc, test_config_failures);
	tcase_add_test(tc, test_extractable_key);
	tcase_add_test(tc, test_expired_cert);
	tcase_add_test(tc, test_pin_prompt);
	tcase_add_test(tc, test_key_without_id);
	tcase_add_test(tc, test_cert_object_mismatch);
	tcase_add_test(tc, test_pin_count_low);
	suite_add_tcase(s, tc);
	return tu_run_suite(s);
}
