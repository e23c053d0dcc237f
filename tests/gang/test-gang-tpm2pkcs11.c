/* A second PKCS#11 implementation written by others that provisions SE
 * devices (issue 14): tpm2-pkcs11 (the tpm2-software project), its keys in
 * a TPM.  openCryptoki 3.8's software token has no EC mechanisms, and the
 * tool key must sign ECDSA P-256 for the SE (tests/hsm/test-opencryptoki.c,
 * docs/HSM.md); tpm2-pkcs11 has them, in the TPM.
 *
 * Everything is started here, in a throw-away directory, and stopped at the
 * end: a software TPM (swtpm), a private D-Bus session bus with tpm2-abrmd
 * on it (tpm2-pkcs11 keeps more objects loaded than a bare TPM holds), the
 * token's store (TPM2_PKCS11_STORE).  The token is made as an operator
 * would: tpm2_ptool init/addtoken, then the four key pairs generated in the
 * TPM with OpenSC's pkcs11-tool through the module, their certificates from
 * the test root (fixtures/make-test-pki --existing-token) stored next to
 * them.  Then `station hsm check`, a gang of four jigsims provisioned by
 * `station run` (the tool authentication, the leaf certificates and the
 * journal's seals all signed in the TPM), `station audit seal` and
 * `audit verify`, `station crl`, `station recipe sign` and `recipe check`. */
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gangutil.h"
#include "tpmtest.h"

#define TPM2_MODULE "/usr/lib/x86_64-linux-gnu/pkcs11/libtpm2_pkcs11.so"
#define TEST_PIN "123456"    /* TEST PIN, as fixtures/make-test-pki */
#define TEST_SO_PIN "12345678"

enum { NJIGS = 4, PER_JIG = 3 };

static char *dir, *pki;
static tu_swtpm tpm;
static tu_tabrmd rm;

static void
teardown(void)
{
	tu_tabrmd_stop(&rm);
	tu_swtpm_stop(&tpm);
	if (dir)
		tu_rmtree(dir);
	free(dir);
	free(pki);
}

/* A setup step (an unchecked fixture, whose failure message Check does not
 * print in TAP): on failure, what failed and its output go to stderr. */
static void ST_PRINTF(2, 3)
must(const char *want, const char *fmt, ...)
{
	char *out = NULL;
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = tu_vshf(&out, NULL, fmt, ap);
	va_end(ap);
	if (rc == 0 && (!want || (out && strstr(out, want)))) {
		free(out);
		return;
	}
	fprintf(stderr, "setup: %s: exit %d\n%s\n", fmt, rc, out ? out : "");
	free(out);
	ck_abort_msg("setup failed (see stderr): %s", fmt);
}

static void
setup(void)
{
	static const char *const keys[] = { "intermediate", "audit", "tool", "engineering" };
	char store[600];
	size_t i;

	if (!(dir = tu_tmpdir("tpm2-pkcs11")))
		must(NULL, "false # no temporary folder");
	must(NULL, "mkdir '%s/tpm' '%s/store'", dir, dir);
	snprintf(store, sizeof(store), "%s/tpm", dir);
	if (tu_swtpm_start(&tpm, store) < 0)
		must(NULL, "cat '%s/tpm/swtpm.log'; false # swtpm did not start", dir);
	if (tu_tabrmd_start(&rm, dir, &tpm) < 0)
		must(NULL, "cat '%s/dbus-daemon.log' '%s/tpm2-abrmd.log'; false # tpm2-abrmd did not start", dir, dir);
	/* Read by tpm2-pkcs11 in every process of the test, the station's too. */
	snprintf(store, sizeof(store), "%s/store", dir);
	setenv("TPM2_PKCS11_TCTI", TU_TABRMD_TCTI, 1);
	setenv("TPM2_PKCS11_STORE", store, 1);
	setenv("TPM2TOOLS_TCTI", TU_TABRMD_TCTI, 1);

	must("action: Created", "tpm2_ptool init --path '%s' 2>&1", store);
	must(NULL, "tpm2_ptool addtoken --pid 1 --label station-test --userpin " TEST_PIN " --sopin " TEST_SO_PIN
	    " --path '%s' 2>&1", store);
	for (i = 0; i < 4; i++)
		must("never extractable", "pkcs11-tool --module " TPM2_MODULE " --token-label station-test --login --pin "
		    TEST_PIN " --keypairgen --key-type EC:prime256v1 --label %s --id %02zx --usage-sign 2>&1", keys[i], i + 1);
	if (asprintf(&pki, "%s/pki", dir) < 0)
		must(NULL, "false # out of memory");
	must(NULL, "STATION_PKCS11_MODULE=" TPM2_MODULE " '%s' '%s' --existing-token 2>&1", getenv("MAKE_TEST_PKI"), pki);
	setenv("STATION_HSM_PIN", TEST_PIN, 1);
}

START_TEST(test_hsm_check)
{
	stu_ws *w = gang_ws_module(pki, TPM2_MODULE);
	char *text = NULL;
	int rc = tu_station(&text, "hsm", "check", "--recipe", w->recipe, NULL);

	ck_assert_msg(strstr(text, "SW   TPM") && strstr(text, "EC P-256") &&
	    strstr(text, "never extractable (generated in the token)"), "%s", text);
	stu_cmd_ok("hsm check", "OK, 3 keys", rc, text);
	stu_ws_free(w);
}
END_TEST

/* Four jigs, twelve devices: every tool authentication, leaf certificate
 * and seal signed in the TPM; then seal, CRL and recipe signature. */
START_TEST(test_gang_provisions)
{
	stu_ws *w = gang_ws_module(pki, TPM2_MODULE);
	stu_sim *sim[NJIGS];
	const char *uris[NJIGS];
	size_t i;

	gang_sims_start(pki, NJIGS, PER_JIG, 0, sim, uris);
	gang_provision_and_sign(w, sim, uris, NJIGS, PER_JIG);
	for (i = 0; i < NJIGS; i++)
		stu_sim_stop(sim[i]);
	stu_ws_free(w);
}
END_TEST

int
main(int argc, char **argv)
{
	Suite *s = suite_create("gang-tpm2-pkcs11");
	TCase *tc = tcase_create("tpm2-pkcs11");

	(void)argc;
	/* tpm2-pkcs11 leaks in C_SignInit, inside libcrypto: named only on a
	 * whole stack (tests/lsan.supp). */
	tu_asan_full_unwind(argv);
	signal(SIGPIPE, SIG_IGN);
	if (!getenv("MAKE_TEST_PKI")) {
		fprintf(stderr, "run by meson test: MAKE_TEST_PKI is not set\n");
		return 1;
	}
	tcase_add_unchecked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 280);
	tcase_add_test(tc, test_hsm_check);
	tcase_add_test(tc, test_gang_provisions);
	suite_add_tcase(s, tc);
	return tu_run_suite(s);
}
