/* librecipe: every validation error at its exact position (tests/recipes/bad/,
 * one file per error, expectations in each file's "# expect:" lines), the
 * examples, a round trip of every field, defaults, templates, station config. */
#include <ctype.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/objects.h>

#include "jig.h"
#include "recipe.h"
#include "station-config.h"
#include "testutil.h"

static char *pki;   /* tu_make_pki() */
static char *work;  /* WORK/pki -> pki, WORK/broken.pem, WORK/opt/... */
static char *bad_names[128];
static int n_bad;

static char *
wpath(const char *rel)
{
	return tu_path(work, rel);
}

static void
write_file(const char *path, const char *text, size_t len)
{
	FILE *f = fopen(path, "wb");

	ck_assert_msg(f != NULL, "cannot write %s", path);
	ck_assert_uint_eq(fwrite(text, 1, len, f), len);
	fclose(f);
}

static void
copy_file(const char *src, const char *dst)
{
	size_t len = 0;
	char *text = tu_slurp(src, &len);

	ck_assert_msg(text != NULL, "cannot read %s", src);
	write_file(dst, text, len);
	free(text);
}

/* Copy a source-tree file into WORK and return its path there. */
static char *
stage(const char *src_rel, const char *name)
{
	char *src = tu_src(src_rel), *dst = wpath(name);

	copy_file(src, dst);
	free(src);
	return dst;
}

static void
dump(const recipe_errors *e)
{
	size_t i;

	for (i = 0; i < recipe_errors_count(e); i++)
		fprintf(stderr, "  %s\n", recipe_errors_get(e, i));
}

/* ---- one file per validation error ----------------------------------------- */

START_TEST(test_bad_fixture)
{
	const char *name = bad_names[_i];
	char *rel = NULL, *path = NULL, *src = NULL, *line, *save = NULL;
	recipe_errors *e = recipe_errors_new();
	recipe *r;
	size_t n = 0;

	ck_assert_int_ne(asprintf(&rel, "tests/recipes/bad/%s", name), -1);
	path = stage(rel, name);
	src = tu_slurp(path, NULL);
	r = recipe_load(path, NULL, e);
	if (r || recipe_errors_count(e) == 0)
		dump(e);
	ck_assert_msg(r == NULL, "%s loaded", name);
	for (line = strtok_r(src, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char want[512];
		const char *got, *frag, *sep;

		if (strncmp(line, "# expect: ", 10) != 0)
			continue;
		line += 10;
		/* "L:C: key.path: message fragment" */
		ck_assert_ptr_nonnull(sep = strstr(line, ": "));
		ck_assert_ptr_nonnull(sep = strstr(sep + 2, ": "));
		frag = sep + 2;
		snprintf(want, sizeof(want), "%s:%.*s: ", path, (int)(sep - line), line);
		got = recipe_errors_get(e, n);
		if (!got || strncmp(got, want, strlen(want)) != 0 || !strstr(got, frag))
			dump(e);
		ck_assert_msg(got != NULL, "%s: error %zu missing, expected %s%s", name, n, want, frag);
		ck_assert_msg(strncmp(got, want, strlen(want)) == 0, "%s: expected prefix \"%s\", got \"%s\"", name, want, got);
		ck_assert_msg(strstr(got, frag) != NULL, "%s: expected \"%s\" in \"%s\"", name, frag, got);
		n++;
	}
	ck_assert_msg(n > 0, "%s has no '# expect:' line", name);
	if (recipe_errors_count(e) != n)
		dump(e);
	ck_assert_uint_eq(recipe_errors_count(e), n);
	recipe_errors_free(e);
	free(src);
	free(path);
	free(rel);
}
END_TEST

START_TEST(test_three_errors_reports_three)
{
	char *path = stage("tests/recipes/bad/three-errors.yaml", "three.yaml");
	recipe_errors *e = recipe_errors_new();

	ck_assert_ptr_null(recipe_load(path, NULL, e));
	ck_assert_uint_eq(recipe_errors_count(e), 3);
	/* The parts agree with the formatted line. */
	ck_assert_int_eq(recipe_errors_line(e, 0), 13);
	ck_assert_int_eq(recipe_errors_col(e, 0), 12);
	ck_assert_str_eq(recipe_errors_path(e, 0), "jig.retries");
	ck_assert_str_eq(recipe_errors_message(e, 2), "out of range: 0 (allowed 1..1000000)");
	ck_assert_ptr_null(recipe_errors_get(e, 3));
	recipe_errors_free(e);
	free(path);
}
END_TEST

START_TEST(test_empty_file)
{
	char *path = wpath("empty.yaml");
	recipe_errors *e = recipe_errors_new();
	char want[512];

	write_file(path, "", 0);
	ck_assert_ptr_null(recipe_load(path, NULL, e));
	ck_assert_uint_eq(recipe_errors_count(e), 1);
	snprintf(want, sizeof(want), "%s:1:1: (root): the file is empty", path);
	ck_assert_str_eq(recipe_errors_get(e, 0), strcat(want, " (no YAML document)"));
	recipe_errors_free(e);
	free(path);
}
END_TEST

START_TEST(test_missing_file)
{
	recipe_errors *e = recipe_errors_new();
	char *path = wpath("no-such-recipe.yaml");

	ck_assert_ptr_null(recipe_load(path, NULL, e));
	ck_assert_uint_eq(recipe_errors_count(e), 1);
	ck_assert_ptr_nonnull(strstr(recipe_errors_get(e, 0), "No such file"));
	ck_assert_int_eq(strncmp(recipe_errors_get(e, 0), path, strlen(path)), 0);
	recipe_errors_free(e);
	free(path);
}
END_TEST

/* Error reporting is bounded: a file of junk keys gives 100 errors and a note. */
START_TEST(test_error_cap)
{
	char *text = NULL, *p;
	size_t cap = 200 * 16, len = 0;
	recipe_errors *e = recipe_errors_new();
	int i;

	ck_assert_ptr_nonnull(text = malloc(cap));
	for (i = 0; i < 200; i++)
		len += (size_t)snprintf(text + len, cap - len, "junk%03d: 1\n", i);
	p = wpath("junk.yaml");
	ck_assert_ptr_null(recipe_load_buffer(p, text, len, NULL, e));
	ck_assert_uint_eq(recipe_errors_count(e), 101);
	ck_assert_ptr_nonnull(strstr(recipe_errors_get(e, 100), "too many errors"));
	recipe_errors_free(e);
	free(text);
	free(p);
}
END_TEST

START_TEST(test_deep_nesting)
{
	char text[512] = "", *p = wpath("deep.yaml");
	recipe_errors *e = recipe_errors_new();
	int i;

	for (i = 0; i < 40; i++)
		strcat(text, "[");
	ck_assert_ptr_null(recipe_load_buffer(p, text, strlen(text), NULL, e));
	ck_assert_uint_eq(recipe_errors_count(e), 1);
	ck_assert_ptr_nonnull(strstr(recipe_errors_get(e, 0), "nested deeper than 32 levels"));
	ck_assert_ptr_nonnull(strstr(recipe_errors_get(e, 0), ":1:33: "));
	recipe_errors_free(e);
	free(p);
}
END_TEST

/* ---- good recipes -------------------------------------------------------------- */

static recipe *
load_ok(const char *path, const char *root)
{
	recipe_load_opts o = { root };
	recipe_errors *e = recipe_errors_new();
	recipe *r = recipe_load(path, &o, e);

	if (!r)
		dump(e);
	ck_assert_msg(r != NULL, "%s did not load (%zu errors)", path, recipe_errors_count(e));
	ck_assert_uint_eq(recipe_errors_count(e), 0);
	recipe_errors_free(e);
	return r;
}

static void
assert_path(const char *got, const char *rel)
{
	char *want = wpath(rel);

	ck_assert_str_eq(got, want);
	free(want);
}

START_TEST(test_minimal_defaults)
{
	char *path = stage("tests/recipes/good/minimal.yaml", "minimal.yaml");
	recipe *r = load_ok(path, NULL);
	int k;

	ck_assert_str_eq(r->path, path);
	ck_assert_str_eq(r->dir, work);
	ck_assert_str_eq(r->recipe.name, "minimal");
	ck_assert_str_eq(r->recipe.version, "1");
	ck_assert_str_eq(r->jig.uri, "tcp:127.0.0.1:7700");
	for (k = 0; k < RECIPE_CMD_COUNT; k++)
		ck_assert_int_eq(r->jig.timeout_ms[k], 2000);
	ck_assert_int_eq(r->jig.retries, 2);
	ck_assert_uint_eq(r->se.n_models, 1);
	ck_assert_str_eq(r->se.models[0], "TSE-100");
	ck_assert_uint_eq(r->se.min_firmware, 0x01000000u);
	ck_assert_int_eq(r->se.key_slot, 0);
	ck_assert_int_eq(r->se.key_alg, RECIPE_ALG_P256);
	ck_assert_int_eq(r->se.lifecycle, RECIPE_LIFECYCLE_FACTORY);
	ck_assert(r->se.lock_receipt); /* the default: the SE signs a lock receipt */
	assert_path(r->se.vendor_root, "pki/se-vendor-root.pem");
	ck_assert_int_eq(r->se.attestation_model.subject_nid, NID_commonName);
	ck_assert_str_eq(r->se.attestation_model.prefix, "");
	ck_assert_str_eq(r->se.attestation_model.suffix, " attestation");
	ck_assert_ptr_null(r->se.attestation_model.policies);
	ck_assert_str_eq(r->hsm.module, STATION_DEFAULT_PKCS11_MODULE);
	ck_assert_str_eq(r->hsm.token, "station-test");
	ck_assert_str_eq(r->hsm.intermediate_key, "intermediate");
	ck_assert_str_eq(r->hsm.audit_key, "audit");
	ck_assert_str_eq(r->hsm.tool_key, "tool");
	assert_path(r->hsm.intermediate_cert, "pki/intermediate.pem");
	ck_assert_ptr_null(r->hsm.chain);
	assert_path(r->hsm.audit_cert, "pki/audit.pem");
	assert_path(r->hsm.tool_cert, "pki/tool.pem");
	ck_assert_int_eq(r->hsm.pin_source, RECIPE_PIN_ENV);
	ck_assert_str_eq(r->hsm.pin_env, "STATION_HSM_PIN");
	ck_assert_ptr_null(r->hsm.pin_file);
	ck_assert_str_eq(r->certificate.cn, "${se.serial}");
	ck_assert_str_eq(r->certificate.o, "${product.organisation}");
	ck_assert_ptr_null(r->certificate.ou);
	ck_assert_uint_eq(r->certificate.n_san, 0);
	ck_assert_int_eq(r->certificate.validity_days, 365);
	ck_assert_ptr_null(r->certificate.not_after);
	ck_assert_uint_eq(r->certificate.eku, 0);
	ck_assert_ptr_null(r->certificate.crl_url);
	ck_assert_int_eq(r->quota.max_per_shift, 100);
	ck_assert_ptr_null(r->quota.release_signers);
	ck_assert_int_eq(r->quota.max_per_run, 1000);
	ck_assert_ptr_null(r->metrics.file);
	ck_assert(r->lifecycle.lock);
	ck_assert(!r->lifecycle.engineering);
	assert_path(r->audit.dir, "audit");
	ck_assert_int_eq(r->audit.batch_size, 100);
	ck_assert_str_eq(r->audit.station_id, "s1");
	ck_assert_uint_eq(r->rework.n_intermediates, 1);
	assert_path(r->rework.intermediates[0], "pki/intermediate.pem");
	ck_assert(!r->rework.allow_foreign_devices);
	ck_assert_int_eq(r->rework.crl_next_update_days, 7);
	recipe_free(r);
	free(path);
}
END_TEST

/* Every field set to a non-default value comes back in the struct. */
START_TEST(test_full_roundtrip)
{
	char *path = stage("tests/recipes/good/full.yaml", "full.yaml");
	recipe *r = load_ok(path, work);
	char *module = wpath("opt/hsm/lib/libvendor-pkcs11.so"), *pin = wpath("pki/pin.txt");
	int k;

	ck_assert_str_eq(r->recipe.name, "full-recipe_1.2");
	ck_assert_str_eq(r->recipe.version, "7.8.9-rc1");
	ck_assert_str_eq(r->product.name, "Full Product");
	ck_assert_str_eq(r->product.organisation, "F\xc3\xbclle & Co. KG");
	ck_assert_str_eq(r->jig.uri, "serial:/dev/ttyUSB3?baud=115200&flow=rtscts");
	ck_assert_int_eq(r->jig.retries, 5);
	ck_assert_int_eq(r->jig.timeout_ms[RECIPE_CMD_DEFAULT], 1234);
	for (k = 1; k < RECIPE_CMD_COUNT; k++)
		ck_assert_int_eq(r->jig.timeout_ms[k], 100 + k);
	ck_assert_uint_eq(r->se.n_models, 2);
	ck_assert_str_eq(r->se.models[0], "SE050C2");
	ck_assert_str_eq(r->se.models[1], "SE050E2");
	ck_assert_uint_eq(r->se.min_firmware, 3u << 24 | 17u << 16 | 65535u);
	ck_assert(!r->se.lock_receipt);
	ck_assert_int_eq(r->se.key_slot, 15);
	ck_assert_int_eq(r->se.key_alg, RECIPE_ALG_P384);
	ck_assert_int_eq(r->se.lifecycle, RECIPE_LIFECYCLE_FACTORY);
	assert_path(r->se.vendor_root, "pki/vendor-bundle.pem");
	/* policies: in the order of se.models, whatever order the mapping has */
	ck_assert_int_eq(r->se.attestation_model.subject_nid, 0);
	ck_assert_str_eq(r->se.attestation_model.policies[0], "1.3.6.1.4.1.55555.3.50.2");
	ck_assert_str_eq(r->se.attestation_model.policies[1], "1.3.6.1.4.1.55555.3.50.5");
	ck_assert_str_eq(r->hsm.module, module);
	ck_assert_str_eq(r->hsm.token, "line-b-token");
	ck_assert_int_eq(r->hsm.pin_source, RECIPE_PIN_FILE);
	ck_assert_ptr_null(r->hsm.pin_env);
	ck_assert_str_eq(r->hsm.pin_file, pin);
	ck_assert_str_eq(r->hsm.intermediate_key, "mfg-ca-9");
	assert_path(r->hsm.intermediate_cert, "pki/intermediate.pem");
	assert_path(r->hsm.chain, "pki/root-ca.pem");
	ck_assert_str_eq(r->hsm.audit_key, "seal-9");
	assert_path(r->hsm.audit_cert, "pki/audit.pem");
	ck_assert_str_eq(r->hsm.tool_key, "tool-9");
	assert_path(r->hsm.tool_cert, "pki/tool.pem");
	ck_assert_str_eq(r->certificate.cn, "${product.name} ${se.model} ${se.serial}");
	ck_assert_str_eq(r->certificate.o, "ACME ${recipe.name}");
	ck_assert_str_eq(r->certificate.ou, "Unit ${recipe.version}");
	ck_assert_uint_eq(r->certificate.n_san, 2);
	ck_assert_int_eq(r->certificate.san[0].type, RECIPE_SAN_URI);
	ck_assert_str_eq(r->certificate.san[0].tpl, "urn:acme:${se.serial}");
	ck_assert_int_eq(r->certificate.san[1].type, RECIPE_SAN_DNS);
	ck_assert_str_eq(r->certificate.san[1].tpl, "${se.serial}.devices.example.com");
	ck_assert_int_eq(r->certificate.validity_days, 0);
	ck_assert_str_eq(r->certificate.not_after, "99991231235959Z");
	ck_assert_uint_eq(r->certificate.eku, RECIPE_EKU_ALL);
	ck_assert_str_eq(r->certificate.crl_url, "http://pki.example.com/crl/manufacturing-ca-1.crl");
	ck_assert_int_eq(r->quota.max_per_shift, 5000);
	assert_path(r->quota.release_signers, "pki/audit.pem");
	ck_assert_int_eq(r->quota.max_per_run, 20000);
	ck_assert(!r->lifecycle.lock);
	ck_assert(r->lifecycle.engineering);
	assert_path(r->audit.dir, "var/lib/station-full/journal");
	ck_assert_int_eq(r->audit.batch_size, 4096);
	ck_assert_str_eq(r->audit.station_id, "line-b.station_2");
	assert_path(r->metrics.file, "var/lib/prometheus/node-exporter/station.prom");
	ck_assert_uint_eq(r->rework.n_intermediates, 2);
	assert_path(r->rework.intermediates[0], "pki/intermediate.pem");
	assert_path(r->rework.intermediates[1], "pki/root-ca.pem");
	ck_assert(r->rework.allow_foreign_devices);
	ck_assert_int_eq(r->rework.crl_next_update_days, 30);
	recipe_free(r);
	free(module);
	free(pin);
	free(path);
}
END_TEST

START_TEST(test_digest_is_sha256_of_bytes)
{
	char *path = stage("tests/recipes/good/minimal.yaml", "digest.yaml");
	size_t len = 0;
	char *text = tu_slurp(path, &len), hex[65];
	unsigned char md[32];
	unsigned int mdlen = 0;
	recipe *r = load_ok(path, NULL);
	int i;

	ck_assert_int_eq(EVP_Digest(text, len, md, &mdlen, EVP_sha256(), NULL), 1);
	for (i = 0; i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
	ck_assert_str_eq(r->digest, hex);
	recipe_free(r);
	/* One more byte (a comment) is a different recipe to the audit. */
	text = realloc(text, len + 2);
	memcpy(text + len, "#\n", 2);
	write_file(path, text, len + 2);
	r = load_ok(path, NULL);
	ck_assert_str_ne(r->digest, hex);
	recipe_free(r);
	free(text);
	free(path);
}
END_TEST

/* A relative recipe path still gives absolute file paths. */
START_TEST(test_relative_recipe_path)
{
	char *path = stage("tests/recipes/good/minimal.yaml", "rel.yaml");
	char *cwd = getcwd(NULL, 0);
	recipe *r;

	ck_assert_int_eq(chdir(work), 0);
	r = load_ok("rel.yaml", NULL);
	ck_assert_int_eq(chdir(cwd), 0);
	ck_assert_str_eq(r->path, "rel.yaml");
	ck_assert_str_eq(r->dir, work);
	assert_path(r->se.vendor_root, "pki/se-vendor-root.pem");
	recipe_free(r);
	free(cwd);
	free(path);
}
END_TEST

START_TEST(test_example_demo)
{
	char *path = stage("recipes/examples/demo.yaml", "demo.yaml");
	recipe *r = load_ok(path, NULL);

	ck_assert_str_eq(r->recipe.name, "demo-sensor");
	ck_assert_str_eq(r->se.models[0], "TSE-100"); /* what jigsim reports */
	ck_assert_uint_eq(r->se.min_firmware, 0x01040000u);
	ck_assert_str_eq(r->hsm.token, "station-test");
	ck_assert_str_eq(r->hsm.module, STATION_DEFAULT_PKCS11_MODULE);
	assert_path(r->hsm.chain, "pki/root-ca.pem");
	ck_assert(r->lifecycle.lock);
	ck_assert(!r->lifecycle.engineering);
	recipe_free(r);
	free(path);
}
END_TEST

/* production-sensor.yaml names files under /etc/station: give it a copy of
 * them (from the test PKI) under a root folder, as `recipe check --root` does. */
START_TEST(test_example_production)
{
	static const char *const files[][2] = {
		{ "root-ca.pem", "etc/station/pki/example-sensors-root.pem" },
		{ "intermediate.pem", "etc/station/pki/th200-mfg-ca-2024.pem" },
		{ "intermediate.pem", "etc/station/pki/th200-mfg-ca-2023.pem" },
		{ "audit.pem", "etc/station/pki/line-a-audit.pem" },
		{ "tool.pem", "etc/station/pki/line-a-tool.pem" },
		{ "pin.txt", "etc/station/hsm.pin" },
		{ "vendor-bundle.pem", "etc/station/pki/se-vendor-roots.pem" },
		{ "pin.txt", "usr/lib/x86_64-linux-gnu/pkcs11/opensc-pkcs11.so" }, /* only has to exist */
	};
	char *root = wpath("prodroot"), *cmd = NULL, *path;
	recipe_errors *e = recipe_errors_new();
	recipe *r;
	size_t i;

	ck_assert_int_ne(asprintf(&cmd, "mkdir -p %s/etc/station/pki %s/usr/lib/x86_64-linux-gnu/pkcs11", root, root), -1);
	ck_assert_int_eq(tu_sh(cmd, NULL), 0);
	free(cmd);
	for (i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		char *src = NULL, *dst = NULL;

		ck_assert_int_ne(asprintf(&src, "%s/%s", pki, files[i][0]), -1);
		ck_assert_int_ne(asprintf(&dst, "%s/%s", root, files[i][1]), -1);
		copy_file(src, dst);
		free(src);
		free(dst);
	}
	path = stage("recipes/examples/production-sensor.yaml", "production-sensor.yaml");
	r = load_ok(path, root);
	ck_assert_str_eq(r->recipe.name, "th200-line-a");
	ck_assert_str_eq(r->jig.uri, "usb:1209:0001?serial=LINE-A-JIG-01");
	ck_assert_int_eq(r->jig.timeout_ms[7], 1500);  /* KEYGEN */
	ck_assert_int_eq(r->jig.timeout_ms[1], 1000);  /* HELLO: the default */
	ck_assert_uint_eq(r->se.n_models, 2);
	ck_assert_int_eq(r->se.key_slot, 2);
	ck_assert_int_eq(r->hsm.pin_source, RECIPE_PIN_FILE);
	ck_assert_str_eq(r->certificate.not_after, "99991231235959Z");
	ck_assert_uint_eq(r->certificate.n_san, 2);
	ck_assert_uint_eq(r->rework.n_intermediates, 2);
	ck_assert_int_eq(r->quota.max_per_shift, 250);
	ck_assert_str_eq(r->metrics.file + strlen(root), "/var/lib/prometheus/node-exporter/station.prom");
	recipe_free(r);
	/* Without the copy, every file it names is reported. */
	ck_assert_int_ne(asprintf(&cmd, "%s/empty-root", root), -1);
	ck_assert_int_eq(mkdir(cmd, 0700), 0);
	{
		recipe_load_opts o = { cmd };

		ck_assert_ptr_null(recipe_load(path, &o, e));
		ck_assert_uint_eq(recipe_errors_count(e), 9);
		for (i = 0; i < recipe_errors_count(e); i++)
			ck_assert_ptr_nonnull(strstr(recipe_errors_message(e, i), "No such file"));
	}
	recipe_errors_free(e);
	free(cmd);
	free(path);
	free(root);
}
END_TEST

/* A buffer load resolves against the folder of the name it is given. */
START_TEST(test_load_buffer)
{
	char *src = tu_src("tests/recipes/good/minimal.yaml"), *name = wpath("virtual.yaml");
	size_t len = 0;
	char *text = tu_slurp(src, &len);
	recipe_errors *e = recipe_errors_new();
	recipe *r = recipe_load_buffer(name, text, len, NULL, e);

	if (!r)
		dump(e);
	ck_assert_ptr_nonnull(r);
	assert_path(r->hsm.tool_cert, "pki/tool.pem");
	recipe_free(r);
	recipe_free(NULL);
	recipe_errors_free(e);
	recipe_errors_free(NULL);
	free(text);
	free(name);
	free(src);
}
END_TEST

/* The timeout table is indexed by the protocol's command codes. */
START_TEST(test_cmd_names_match_protocol)
{
	int k;

	ck_assert_str_eq(recipe_cmd_name(0), "default");
	for (k = 1; k < RECIPE_CMD_COUNT; k++) {
		const char *want = jig_cmd_name((uint8_t)k);
		const char *got = recipe_cmd_name(k);
		size_t i;

		ck_assert_uint_eq(strlen(got), strlen(want));
		for (i = 0; want[i]; i++)
			ck_assert_int_eq(got[i], tolower((unsigned char)want[i]));
	}
	ck_assert_int_eq(RECIPE_CMD_MAX, JIG_CMD_LAST);
	ck_assert_ptr_null(recipe_cmd_name(RECIPE_CMD_COUNT));
	ck_assert_ptr_null(recipe_cmd_name(-1));
	ck_assert_int_eq(RECIPE_ALG_P256, JIG_ALG_P256);
	ck_assert_int_eq(RECIPE_ALG_P384, JIG_ALG_P384);
	ck_assert_int_eq(RECIPE_LIFECYCLE_FACTORY, JIG_LC_FACTORY);
	ck_assert_str_eq(recipe_eku_name(RECIPE_EKU_CLIENT_AUTH), "clientAuth");
	ck_assert_str_eq(recipe_eku_name(RECIPE_EKU_OCSP_SIGNING), "OCSPSigning");
	ck_assert_ptr_null(recipe_eku_name(3));
}
END_TEST

/* ---- templates --------------------------------------------------------------- */

START_TEST(test_expand)
{
	recipe_facts f = { "SE0123456789ABCDEF", "TSE-100", "Demo Sensor", "M\xc3\xbcller GmbH", "demo", "1.0.0" };
	char out[128];
	st_err err;

	ck_assert_int_eq(recipe_expand("${product.name} ${se.serial}", &f, out, sizeof(out), &err), 0);
	ck_assert_str_eq(out, "Demo Sensor SE0123456789ABCDEF");
	ck_assert_int_eq(recipe_expand("${se.model}/${product.organisation}/${recipe.name}@${recipe.version}", &f, out,
	    sizeof(out), &err), 0);
	ck_assert_str_eq(out, "TSE-100/M\xc3\xbcller GmbH/demo@1.0.0");
	/* "$" not followed by "{" is literal; no variable at all is fine. */
	ck_assert_int_eq(recipe_expand("$5 $x {se.serial} $", &f, out, sizeof(out), &err), 0);
	ck_assert_str_eq(out, "$5 $x {se.serial} $");
	ck_assert_int_eq(recipe_expand("", &f, out, sizeof(out), &err), 0);
	ck_assert_str_eq(out, "");

	ck_assert_int_eq(recipe_expand("x${se.serail}", &f, out, sizeof(out), &err), -1);
	ck_assert_int_eq(err.code, ST_E_CONFIG);
	ck_assert_ptr_nonnull(strstr(err.msg, "unknown variable ${se.serail}"));
	ck_assert_str_eq(out, "");
	ck_assert_int_eq(recipe_expand("${se.serial", &f, out, sizeof(out), &err), -1);
	ck_assert_ptr_nonnull(strstr(err.msg, "unclosed"));

	/* The result must fit: exactly cap - 1 bytes does, one more does not. */
	ck_assert_int_eq(recipe_expand("${se.serial}", &f, out, 19, &err), 0);
	ck_assert_str_eq(out, "SE0123456789ABCDEF");
	ck_assert_int_eq(recipe_expand("${se.serial}", &f, out, 18, &err), -1);
	ck_assert_ptr_nonnull(strstr(err.msg, "longer than 17 bytes"));
	ck_assert_str_eq(out, "");
}
END_TEST

/* Device facts are untrusted bytes: nothing unprintable reaches a certificate. */
START_TEST(test_expand_rejects_bad_facts)
{
	recipe_facts f = { "SE01\n", "TSE-100", "P", "O", "r", "1" };
	char out[64];
	st_err err;

	ck_assert_int_eq(recipe_expand("CN ${se.serial}", &f, out, sizeof(out), &err), -1);
	ck_assert_int_eq(err.code, ST_E_VERIFY);
	ck_assert_ptr_nonnull(strstr(err.msg, "0x0a"));
	f.se_serial = "SE\xc3\xa9";
	ck_assert_int_eq(recipe_expand("${se.serial}", &f, out, sizeof(out), &err), -1);
	f.se_serial = NULL;
	ck_assert_int_eq(recipe_expand("${se.serial}", &f, out, sizeof(out), &err), -1);
	ck_assert_ptr_nonnull(strstr(err.msg, "no value for ${se.serial}"));
	f.se_serial = "";
	ck_assert_int_eq(recipe_expand("${se.serial}", &f, out, sizeof(out), &err), -1);
	/* A fact that is not used may be missing. */
	ck_assert_int_eq(recipe_expand("${se.model}", &f, out, sizeof(out), &err), 0);
}
END_TEST

START_TEST(test_facts_from_recipe)
{
	char *path = stage("recipes/examples/demo.yaml", "facts.yaml");
	recipe *r = load_ok(path, NULL);
	recipe_facts f;
	char cn[65], san[256];
	st_err err;

	recipe_facts_init(&f, r, "SE00112233445566", "TSE-100");
	ck_assert_int_eq(recipe_expand(r->certificate.cn, &f, cn, sizeof(cn), &err), 0);
	ck_assert_str_eq(cn, "Demo Sensor SE00112233445566");
	ck_assert_int_eq(recipe_expand(r->certificate.san[0].tpl, &f, san, sizeof(san), &err), 0);
	ck_assert_str_eq(san, "urn:station-demo:device:SE00112233445566");
	ck_assert_int_eq(recipe_expand(r->certificate.o, &f, cn, sizeof(cn), &err), 0);
	ck_assert_str_eq(cn, "Station Demo");
	recipe_free(r);
	free(path);
}
END_TEST

/* ---- station config ------------------------------------------------------------ */

START_TEST(test_station_config)
{
	char *path = wpath("station.yaml"), *signers = NULL;
	recipe_errors *e = recipe_errors_new();
	recipe_station_config *c;
	const char *text = "require_signed_recipes: true\nrecipe_signers: pki/root-ca.pem\n";

	write_file(path, text, strlen(text));
	ck_assert_ptr_nonnull(c = recipe_station_config_load(path, e));
	ck_assert(c->require_signed_recipes);
	ck_assert_int_ne(asprintf(&signers, "%s/pki/root-ca.pem", work), -1);
	ck_assert_str_eq(c->recipe_signers, signers);
	ck_assert_str_eq(c->path, path);
	recipe_station_config_free(c);

	/* $STATION_CONFIG names the file when the caller does not. */
	setenv("STATION_CONFIG", path, 1);
	ck_assert_ptr_nonnull(c = recipe_station_config_load(NULL, e));
	ck_assert(c->require_signed_recipes);
	recipe_station_config_free(c);
	unsetenv("STATION_CONFIG");
	ck_assert_uint_eq(recipe_errors_count(e), 0);

	/* Required signatures without signers; a typo; a missing file; a non-boolean. */
	text = "require_signed_recipes: true\nrecipe_signer: x.pem\n";
	write_file(path, text, strlen(text));
	ck_assert_ptr_null(recipe_station_config_load(path, e));
	text = "require_signed_recipes: yes\nrecipe_signers: nope.pem\n";
	write_file(path, text, strlen(text));
	ck_assert_ptr_null(recipe_station_config_load(path, e));
	if (recipe_errors_count(e) != 4)
		dump(e);
	ck_assert_uint_eq(recipe_errors_count(e), 4);
	ck_assert_ptr_nonnull(strstr(recipe_errors_get(e, 0), ":2:1: recipe_signer: unknown key 'recipe_signer', did you mean 'recipe_signers'?"));
	ck_assert_ptr_nonnull(strstr(recipe_errors_get(e, 1), ":1:1: recipe_signers: require_signed_recipes: true needs"));
	ck_assert_ptr_nonnull(strstr(recipe_errors_get(e, 2), ":1:25: require_signed_recipes: expected true or false"));
	ck_assert_ptr_nonnull(strstr(recipe_errors_get(e, 3), ":2:17: recipe_signers: cannot read"));
	recipe_station_config_free(NULL);
	recipe_errors_free(e);
	free(signers);
	free(path);
}
END_TEST

START_TEST(test_station_config_missing)
{
	recipe_errors *e = recipe_errors_new();
	char *path = wpath("no-station.yaml");

	/* A config the operator names must exist. */
	setenv("STATION_CONFIG", path, 1);
	ck_assert_ptr_null(recipe_station_config_load(NULL, e));
	unsetenv("STATION_CONFIG");
	ck_assert_uint_eq(recipe_errors_count(e), 1);
	ck_assert_ptr_nonnull(strstr(recipe_errors_get(e, 0), "No such file"));
	recipe_errors_free(e);
	free(path);
}
END_TEST

/* ---- setup ----------------------------------------------------------------------- */

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void
scan_bad(void)
{
	char *dir = tu_src("tests/recipes/bad");
	DIR *d = opendir(dir);
	struct dirent *de;

	if (!d) {
		fprintf(stderr, "cannot open %s\n", dir);
		exit(1);
	}
	while ((de = readdir(d)) && n_bad < (int)(sizeof(bad_names) / sizeof(bad_names[0])))
		if (strlen(de->d_name) > 5 && strcmp(de->d_name + strlen(de->d_name) - 5, ".yaml") == 0)
			bad_names[n_bad++] = strdup(de->d_name);
	closedir(d);
	qsort(bad_names, (size_t)n_bad, sizeof(char *), cmp_str);
	free(dir);
}

/* An unchecked fixture (Check's asserts need a running suite), made once for all cases. */
static void
make_work(void)
{
	char *cmd = NULL;
	const char *broken = "-----BEGIN CERTIFICATE-----\nMIIBdGVzdCBub3QgYSBjZXJ0aWZpY2F0ZQ==\n-----END CERTIFICATE-----\n";
	char *p;

	if (pki)
		return;
	pki = tu_make_pki();
	work = tu_tmpdir("recipes");
	p = realpath(work, NULL); /* r->dir is the real path */
	free(work);
	work = p;
	ck_assert_int_ne(asprintf(&cmd,
	    "ln -s %s %s/pki && cat %s/se-vendor-root.pem %s/se-vendor-ca.pem > %s/vendor-bundle.pem && "
	    "mkdir -p %s/opt/hsm/lib && : > %s/opt/hsm/lib/libvendor-pkcs11.so",
	    pki, work, pki, pki, pki, work, work), -1);
	ck_assert_int_eq(tu_sh(cmd, NULL), 0);
	free(cmd);
	p = wpath("broken.pem");
	write_file(p, broken, strlen(broken));
	free(p);
}

int
main(void)
{
	Suite *s = suite_create("recipes-load");
	TCase *bad = tcase_create("bad"), *good = tcase_create("good"), *tpl = tcase_create("templates"),
	      *cfg = tcase_create("config");
	int rc, i;

	scan_bad();
	tcase_add_unchecked_fixture(bad, make_work, NULL);
	tcase_add_unchecked_fixture(good, make_work, NULL);
	tcase_add_unchecked_fixture(tpl, make_work, NULL);
	tcase_add_unchecked_fixture(cfg, make_work, NULL);
	tcase_add_loop_test(bad, test_bad_fixture, 0, n_bad);
	tcase_add_test(bad, test_three_errors_reports_three);
	tcase_add_test(bad, test_empty_file);
	tcase_add_test(bad, test_missing_file);
	tcase_add_test(bad, test_error_cap);
	tcase_add_test(bad, test_deep_nesting);
	tcase_add_test(good, test_minimal_defaults);
	tcase_add_test(good, test_full_roundtrip);
	tcase_add_test(good, test_digest_is_sha256_of_bytes);
	tcase_add_test(good, test_relative_recipe_path);
	tcase_add_test(good, test_example_demo);
	tcase_add_test(good, test_example_production);
	tcase_add_test(good, test_load_buffer);
	tcase_add_test(good, test_cmd_names_match_protocol);
	tcase_add_test(tpl, test_expand);
	tcase_add_test(tpl, test_expand_rejects_bad_facts);
	tcase_add_test(tpl, test_facts_from_recipe);
	tcase_add_test(cfg, test_station_config);
	tcase_add_test(cfg, test_station_config_missing);
	suite_add_tcase(s, bad);
	suite_add_tcase(s, good);
	suite_add_tcase(s, tpl);
	suite_add_tcase(s, cfg);
	rc = tu_run_suite(s);
	tu_rmtree(work);
	tu_rmtree(pki);
	free(work);
	free(pki);
	for (i = 0; i < n_bad; i++)
		free(bad_names[i]);
	return rc;
}
