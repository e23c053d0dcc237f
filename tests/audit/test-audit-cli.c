/* station audit seal|export|verify end to end: sealing with the audit key
 * inside a SoftHSM token (from flags and from a recipe), export, stock
 * openssl on the exported seals, exit codes and messages. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "audit-tu.h"
#include "cms.h"

static char *pki;

static void
setup(void)
{
	pki = tu_make_pki();
}

static void
teardown(void)
{
	tu_rmtree(pki);
	free(pki);
}

/* Run `station ARGS` (a shell fragment), return the exit status and output. */
static int
station(char **out, const char *fmt, ...)
{
	char *prefix = NULL;
	va_list ap;
	int rc;

	ck_assert_int_ne(asprintf(&prefix, "'%s' ", tu_station_exe()), -1);
	va_start(ap, fmt);
	rc = tu_vshf(out, prefix, fmt, ap);
	va_end(ap);
	free(prefix);
	return rc;
}

/* A journal of `devices` finished devices plus one open record, no signer. */
static void
write_journal(const char *dir, unsigned batch_devices, unsigned devices)
{
	audit_config cfg = { "station-cli", "carol", "0123abcd", batch_devices, 0, NULL };
	audit_journal *j;
	unsigned i;
	st_err err;

	j = audit_open(dir, &cfg, &err);
	ck_assert_msg(j != NULL, "%s", err.msg);
	for (i = 0; i < devices; i++) {
		char dev[32];

		snprintf(dev, sizeof(dev), "SE-%04u", i);
		atu_append(j, dev, "identify", "ok");
		atu_append(j, dev, "done", "ok");
	}
	atu_append(j, "SE-open", "identify", "ok");
	audit_close(j);
}

static int
stock_verify(const char *dir, const char *batch)
{
	char *cmd = NULL;
	int rc;

	ck_assert_int_ne(asprintf(&cmd,
	    "openssl cms -verify -binary -inform DER -content '%s/%s' -in '%s/%s.p7s' -CAfile '%s/root-ca.pem' "
	    "-out /dev/null",
	    dir, batch, dir, batch, pki), -1);
	rc = tu_sh(cmd, NULL);
	free(cmd);
	return rc;
}

START_TEST(test_seal_export_verify_flags)
{
	char *tmp = tu_tmpdir("audit-cli");
	char *dir = tu_path(tmp, "journal"), *bundle = tu_path(tmp, "bundle"), *bundle2 = tu_path(tmp, "bundle2");
	char *out = NULL;
	audit_config cfg = { NULL, NULL, NULL, 0, 0, NULL };
	audit_journal *j;
	json_t *o;
	char *line;
	size_t len;
	st_err err;

	write_journal(dir, 2, 5); /* batches 1, 2 closed (unsealed), 3 open */
	ck_assert_int_eq(station(&out, "audit seal --dir '%s' --token station-test --cert '%s/audit.pem'", dir, pki), 0);
	ck_assert_ptr_nonnull(strstr(out, "closed batch-000003.jsonl on demand"));
	ck_assert_ptr_nonnull(strstr(out, "sealed batch-000001.jsonl"));
	ck_assert_ptr_nonnull(strstr(out, "sealed batch-000003.jsonl"));
	ck_assert_ptr_nonnull(strstr(out, "all 3 closed batches are sealed by O = Station Test, CN = Station Test Audit Seal 1"));
	free(out);
	ck_assert_int_eq(stock_verify(dir, "batch-000001.jsonl"), 0);
	ck_assert_int_eq(stock_verify(dir, "batch-000003.jsonl"), 0);
	/* The batch-close record written by `audit seal --dir` keeps the journal's head. */
	line = atu_read(dir, "batch-000003.jsonl", &len);
	o = json_loads(strstr(line, "{\"v\":1,\"seq\":14,"), JSON_DISABLE_EOF_CHECK, NULL);
	ck_assert_ptr_nonnull(o);
	ck_assert_str_eq(json_string_value(json_object_get(o, "step")), "batch-close");
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(o, "details"), "reason")), "on-demand");
	ck_assert_str_eq(json_string_value(json_object_get(o, "station")), "station-cli");
	ck_assert_str_eq(json_string_value(json_object_get(o, "operator")), "carol");
	free(line);
	json_decref(o);

	/* One more record: an open batch that export leaves out and says so. */
	ck_assert_ptr_nonnull(j = audit_open(dir, &cfg, &err));
	atu_append(j, "SE-late", "identify", "ok");
	audit_close(j);
	ck_assert_int_eq(station(&out, "audit export --dir '%s' --token station-test --cert '%s/audit.pem' --out '%s'", dir, pki,
	                     bundle), 0);
	ck_assert_ptr_nonnull(strstr(out, "exported 3 sealed batches (seq 1..14)"));
	ck_assert_ptr_nonnull(strstr(out, "not exported: batch-000004.jsonl is open (1 record, not sealed yet)"));
	free(out);
	ck_assert_int_eq(stock_verify(bundle, "batch-000002.jsonl"), 0);
	ck_assert_int_eq(station(&out, "audit verify '%s' --ca '%s/root-ca.pem'", bundle, pki), 0);
	ck_assert_ptr_nonnull(strstr(out, "OK: bundle and manifest, 3 batches, 14 records (seq 1..14), 3 seals verified"));
	free(out);
	ck_assert_int_eq(station(&out, "audit verify '%s' --ca '%s/root-ca.pem'", dir, pki), 0);
	ck_assert_ptr_nonnull(strstr(out, "OK: live journal, 4 batches"));
	ck_assert_ptr_nonnull(strstr(out, "note: batch-000004.jsonl: open batch (1 records)"));
	free(out);
	/* A seal made by an engineering-role key under the same root (stock
	 * openssl, a file key) is refused: ROOT alone is not enough, the
	 * signer must hold the audit seal role. */
	{
		char *cmd = NULL;

		ck_assert_int_ne(asprintf(&cmd,
		    "set -e; cd '%s'; openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out eng.key; "
		    "printf 'keyUsage=critical,digitalSignature\\nextendedKeyUsage=emailProtection,%s\\n' > eng.ext; "
		    "openssl req -new -key eng.key -subj '/O=Station Test/CN=Engineer' | openssl x509 -req -CA "
		    "'%s/root-ca.pem' -CAkey '%s/root-ca.key' -extfile eng.ext -days 2 -out eng.pem; "
		    "cp -r '%s' forged; openssl cms -sign -binary -outform DER -in forged/batch-000002.jsonl "
		    "-out forged/batch-000002.jsonl.p7s -signer eng.pem -inkey eng.key",
		    tmp, st_role_oid(ST_ROLE_RECIPE), pki, pki, bundle), -1);
		ck_assert_int_eq(tu_sh(cmd, &out), 0);
		free(out);
		free(cmd);
		ck_assert_int_ne(asprintf(&cmd, "%s/forged", tmp), -1);
		ck_assert_int_eq(station(&out, "audit verify '%s' --ca '%s/root-ca.pem'", cmd, pki), 1);
		ck_assert_msg(strstr(out, "batch-000002.jsonl.p7s: sealed by a key without the audit seal role") &&
		    strstr(out, "CN = Engineer does not hold the audit seal role"), "%s", out);
		free(out);
		free(cmd);
	}
	/* Against the SE vendor's root the seals do not hold. */
	ck_assert_int_eq(station(&out, "audit verify '%s' --ca '%s/se-vendor-root.pem'", bundle, pki), 1);
	ck_assert_ptr_nonnull(strstr(out, "batch-000001.jsonl.p7s: seal does not verify"));
	free(out);

	/* Export again into a folder that is not empty: usage error. */
	ck_assert_int_eq(station(&out, "audit export --dir '%s' --token station-test --cert '%s/audit.pem' --out '%s'", dir, pki,
	                     bundle), 2);
	ck_assert_ptr_nonnull(strstr(out, "exists and is not empty"));
	free(out);
	/* A journal that is not there. */
	ck_assert_int_eq(station(&out, "audit export --dir '%s/nowhere' --token station-test --cert '%s/audit.pem' --out '%s'", tmp,
	                     pki, bundle2), 2);
	free(out);
	/* Without the audit key the manifest cannot be sealed: said, exit 2. */
	ck_assert_int_eq(station(&out, "audit export --dir '%s' --out '%s'", dir, bundle2), 2);
	ck_assert_ptr_nonnull(strstr(out, "give --cert CERT.pem and --token LABEL"));
	free(out);

	tu_rmtree(tmp);
	free(tmp);
	free(dir);
	free(bundle);
	free(bundle2);
}
END_TEST

START_TEST(test_seal_refusals)
{
	char *tmp = tu_tmpdir("audit-cli");
	char *dir = tu_path(tmp, "journal"), *out = NULL;
	audit_config cfg = { "station-cli", "carol", "00", 0, 0, NULL };
	audit_journal *j;
	st_err err;

	write_journal(dir, 0, 1);
	/* The engineering certificate does not belong to the audit key. */
	ck_assert_int_eq(station(&out, "audit seal --dir '%s' --token station-test --cert '%s/engineering.pem'", dir, pki), 2);
	ck_assert_ptr_nonnull(strstr(out, "station audit seal:"));
	free(out);
	/* Issue 15 item 1: the engineering key with its own certificate is a
	 * key of the recipe signing role, not the audit seal role. */
	ck_assert_int_eq(station(&out, "audit seal --dir '%s' --token station-test --key-label engineering --cert "
	                              "'%s/engineering.pem'", dir, pki), 2);
	ck_assert_msg(strstr(out, "Recipe Engineering 1 does not hold the audit seal role"), "%s", out);
	free(out);
	/* A wrong PIN is a configuration error and is never printed. */
	ck_assert_int_eq(station(&out, "audit seal --dir '%s' --token station-test --cert '%s/audit.pem' --pin-file /dev/null",
	                     dir, pki), 2);
	free(out);
	{
		char *cmd = NULL;

		ck_assert_int_ne(asprintf(&cmd,
		    "STATION_HSM_PIN=999999 '%s' audit seal --dir '%s' --token station-test --cert '%s/audit.pem'",
		    tu_station_exe(), dir, pki), -1);
		ck_assert_int_eq(tu_sh(cmd, &out), 2);
		ck_assert_ptr_null(strstr(out, "999999"));
		free(cmd);
		free(out);
	}
	/* A running station holds the journal. */
	ck_assert_ptr_nonnull(j = audit_open(dir, &cfg, &err));
	ck_assert_int_eq(station(&out, "audit seal --dir '%s' --token station-test --cert '%s/audit.pem'", dir, pki), 2);
	{
		char holder[64]; /* this test process holds it */

		snprintf(holder, sizeof(holder), "in use by station process %ld ", (long)getpid());
		ck_assert_msg(strstr(out, holder) != NULL, "%s", out);
	}
	free(out);
	audit_close(j);
	/* Nothing was sealed by any of these. */
	ck_assert(!atu_exists(dir, "batch-000001.jsonl.p7s"));
	/* Usage. */
	ck_assert_int_eq(station(&out, "audit seal"), 2);
	free(out);
	ck_assert_int_eq(station(&out, "audit seal --dir '%s'", dir), 2);
	ck_assert_ptr_nonnull(strstr(out, "give --cert CERT.pem and --token LABEL"));
	free(out);
	ck_assert_int_eq(station(&out, "audit verify '%s'", dir), 2);
	free(out);
	ck_assert_int_eq(station(&out, "audit frobnicate"), 2);
	free(out);
	ck_assert_int_eq(station(&out, "audit --help"), 0);
	free(out);
	ck_assert_int_eq(station(&out, "audit seal --help"), 0);
	ck_assert_ptr_nonnull(strstr(out, "usage: station audit seal"));
	free(out);

	tu_rmtree(tmp);
	free(tmp);
	free(dir);
}
END_TEST

START_TEST(test_recipe)
{
	char *tmp = tu_tmpdir("audit-cli");
	char *recipe = tu_path(tmp, "demo.yaml"), *journal = tu_path(tmp, "audit"), *bundle = tu_path(tmp, "bundle");
	char *src = tu_src("recipes/examples/demo.yaml"), *cmd = NULL, *out = NULL, *text;
	size_t len;
	json_t *o;
	uint8_t h[32];
	char digest[65];

	/* The demo layout: the recipe beside a "pki" folder. */
	ck_assert_int_ne(asprintf(&cmd, "cp '%s' '%s' && ln -s '%s' '%s/pki'", src, recipe, pki, tmp), -1);
	ck_assert_int_eq(tu_sh(cmd, NULL), 0);
	free(cmd);
	text = atu_read(tmp, "demo.yaml", &len);
	st_sha256(text, len, h);
	st_hex(h, 32, digest);
	free(text);

	ck_assert_int_eq(station(&out, "audit export --recipe '%s' --out '%s'", recipe, bundle), 2); /* no journal yet */
	free(out);
	write_journal(journal, 0, 2);
	ck_assert_int_eq(station(&out, "audit seal --recipe '%s' --operator dave", recipe), 0);
	ck_assert_ptr_nonnull(strstr(out, "closed batch-000001.jsonl on demand"));
	free(out);
	ck_assert_int_eq(stock_verify(journal, "batch-000001.jsonl"), 0);
	/* The batch-close record says who sealed, for which station and recipe. */
	text = atu_read(journal, "batch-000001.jsonl", &len);
	o = json_loads(strstr(text, "{\"v\":1,\"seq\":6,"), JSON_DISABLE_EOF_CHECK, NULL);
	ck_assert_ptr_nonnull(o);
	ck_assert_str_eq(json_string_value(json_object_get(o, "step")), "batch-close");
	ck_assert_str_eq(json_string_value(json_object_get(o, "station")), "demo-station-1");
	ck_assert_str_eq(json_string_value(json_object_get(o, "operator")), "dave");
	ck_assert_str_eq(json_string_value(json_object_get(o, "recipe")), digest);
	json_decref(o);
	free(text);
	ck_assert_int_eq(station(&out, "audit export --recipe '%s' --out '%s'", recipe, bundle), 0);
	ck_assert_ptr_nonnull(strstr(out, "exported 1 sealed batch (seq 1..6)"));
	free(out);
	ck_assert_int_eq(station(&out, "audit verify '%s' --ca '%s/root-ca.pem'", bundle, pki), 0);
	free(out);
	/* A recipe that does not load is a usage error with its reasons. */
	atu_write(tmp, "bad.yaml", "recipe: [\n", 10);
	ck_assert_int_eq(station(&out, "audit seal --recipe '%s/bad.yaml'", tmp), 2);
	ck_assert_ptr_nonnull(strstr(out, "bad.yaml"));
	free(out);

	free(src);
	tu_rmtree(tmp);
	free(tmp);
	free(recipe);
	free(journal);
	free(bundle);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("audit-cli");
	TCase *tc = tcase_create("cli");

	tcase_add_unchecked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_seal_export_verify_flags);
	tcase_add_test(tc, test_seal_refusals);
	tcase_add_test(tc, test_recipe);
	suite_add_tcase(s, tc);
	return tu_run_suite(s);
}
