/* The software-TPM test bed on its own (issue 18, layer 1): a throw-away
 * TPM vendor CA, TPMs manufactured by swtpm_setup with EK certificates from
 * it, `swtpm socket` serving them; the EK certificates read back from the
 * TCG NV indices with tpm2-tools chain to that CA with stock openssl, and
 * not to another vendor's. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "testutil.h"
#include "tpmtest.h"

static char *dir;
static tu_tpm_ca ca;

static void
setup(void)
{
	char *log = NULL, state[600];

	ck_assert_ptr_nonnull(dir = tu_tmpdir("swtpm"));
	ck_assert_int_eq(tu_tpm_ca_init(&ca, dir), 0);
	snprintf(state, sizeof(state), "%s/tpm1", dir);
	if (tu_tpm_manufacture(&ca, state, &log) < 0)
		ck_abort_msg("swtpm_setup failed: %s", log ? log : "(no log)");
	free(log);
}

static void
teardown(void)
{
	tu_rmtree(dir);
	free(dir);
}

/* Read NV index `index` of the TPM behind tcti into out (DER) and convert it to PEM. */
static void
read_ek_cert(const char *tcti, const char *index, const char *pem)
{
	char cmd[2000], *out = NULL;

	snprintf(cmd, sizeof(cmd), "tpm2_nvread -T '%s' %s -o '%s.der'", tcti, index, pem);
	ck_assert_msg(tu_sh(cmd, &out) == 0, "%s: %s", cmd, out);
	free(out);
	snprintf(cmd, sizeof(cmd), "openssl x509 -inform DER -in '%s.der' -out '%s'", pem, pem);
	ck_assert_msg(tu_sh(cmd, &out) == 0, "%s: %s", cmd, out);
	free(out);
}

static int
ossl_verify(const tu_tpm_ca *with, const char *pem, char **out)
{
	char cmd[2000];

	snprintf(cmd, sizeof(cmd), "openssl verify -CAfile '%s' -untrusted '%s' '%s'", with->root_pem, with->issuer_pem, pem);
	return tu_sh(cmd, out);
}

START_TEST(ek_certificates_chain_to_the_local_ca)
{
	static const char *const idx[] = { "0x01c00002", "0x01c00016" }; /* RSA 2048, ECC P-384 */
	char state[600], pem[600], *out = NULL;
	struct stat sb;
	tu_swtpm t;
	size_t i;

	/* The CA was made here, in the test's own folder. */
	ck_assert_int_eq(stat(ca.root_pem, &sb), 0);
	ck_assert_int_eq(stat(ca.issuer_pem, &sb), 0);
	snprintf(state, sizeof(state), "%s/tpm1", dir);
	ck_assert_int_eq(tu_swtpm_start(&t, state), 0);
	for (i = 0; i < 2; i++) {
		snprintf(pem, sizeof(pem), "%s/ek-%zu.pem", dir, i);
		read_ek_cert(t.tcti, idx[i], pem);
		ck_assert_msg(ossl_verify(&ca, pem, &out) == 0 && strstr(out, ": OK"), "EK %s: %s", idx[i], out);
		free(out);
	}
	tu_swtpm_stop(&t);
	ck_assert_int_eq(t.pid, 0);
}
END_TEST

START_TEST(ek_certificate_of_another_vendor_does_not_chain)
{
	char dir2[700], state[700], pem[700], *out = NULL, *log = NULL;
	tu_tpm_ca other;
	tu_swtpm t;

	snprintf(dir2, sizeof(dir2), "%s/other-ca", dir);
	ck_assert_int_eq(mkdir(dir2, 0700), 0);
	ck_assert_int_eq(tu_tpm_ca_init(&other, dir2), 0);
	snprintf(state, sizeof(state), "%s/tpm2", dir);
	if (tu_tpm_manufacture(&other, state, &log) < 0)
		ck_abort_msg("swtpm_setup failed: %s", log ? log : "(no log)");
	free(log);
	ck_assert_int_eq(tu_swtpm_start(&t, state), 0);
	snprintf(pem, sizeof(pem), "%s/ek-other.pem", dir);
	read_ek_cert(t.tcti, "0x01c00002", pem);
	tu_swtpm_stop(&t);
	ck_assert_msg(ossl_verify(&other, pem, &out) == 0, "own vendor: %s", out);
	free(out);
	ck_assert_msg(ossl_verify(&ca, pem, &out) != 0, "another vendor's EK certificate verified: %s", out);
	free(out);
}
END_TEST

/* Two instances at once (a gang of jigs), each with its own port, and a
 * state that survives a restart with the same EK certificate. */
START_TEST(instances_run_side_by_side_and_keep_their_state)
{
	char state1[600], state2[700], a[700], b[700], c[700], *log = NULL;
	char *x = NULL, *y = NULL, *z = NULL;
	tu_swtpm t1, t2;

	snprintf(state1, sizeof(state1), "%s/tpm1", dir);
	snprintf(state2, sizeof(state2), "%s/tpm3", dir);
	if (tu_tpm_manufacture(&ca, state2, &log) < 0)
		ck_abort_msg("swtpm_setup failed: %s", log ? log : "(no log)");
	free(log);
	ck_assert_int_eq(tu_swtpm_start(&t1, state1), 0);
	ck_assert_int_eq(tu_swtpm_start(&t2, state2), 0);
	ck_assert_int_ne(t1.port, t2.port);
	snprintf(a, sizeof(a), "%s/a.pem", dir);
	snprintf(b, sizeof(b), "%s/b.pem", dir);
	read_ek_cert(t1.tcti, "0x01c00002", a);
	read_ek_cert(t2.tcti, "0x01c00002", b);
	tu_swtpm_stop(&t1);
	ck_assert_int_eq(tu_swtpm_start(&t1, state1), 0);
	snprintf(c, sizeof(c), "%s/c.pem", dir);
	read_ek_cert(t1.tcti, "0x01c00002", c);
	tu_swtpm_stop(&t1);
	tu_swtpm_stop(&t2);
	ck_assert_ptr_nonnull(x = tu_slurp(a, NULL));
	ck_assert_ptr_nonnull(y = tu_slurp(b, NULL));
	ck_assert_ptr_nonnull(z = tu_slurp(c, NULL));
	ck_assert_str_ne(x, y); /* two TPMs, two EKs */
	ck_assert_str_eq(x, z); /* one TPM, restarted */
	free(x);
	free(y);
	free(z);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("swtpm");
	TCase *tc = tcase_create("swtpm");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, ek_certificates_chain_to_the_local_ca);
	tcase_add_test(tc, ek_certificate_of_another_vendor_does_not_chain);
	tcase_add_test(tc, instances_run_side_by_side_and_keep_their_state);
	suite_add_tcase(s, tc);
	return tu_run_suite(s);
}
