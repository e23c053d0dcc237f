/* TPM 2.0 devices through `station run` (issue 18): software TPMs (swtpm,
 * EK certificates from a throw-away TPM vendor CA) behind tpmdut, the
 * station program with the test PKI and SoftHSM.  Five TPMs on a gang of
 * two jigs get an IAK and an IDevID certificate each, checked with openssl
 * and GnuTLS certtool, the IDevID key equal to the TPM's persistent key as
 * tpm2-tools reads it; and each way a TPM device can lie fails with no
 * certificate. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/sha.h>

#include "recipe.h"
#include "rwutil.h"
#include "stutil.h"
#include "tpmtest.h"

#define MAX_TPMS 8

static char *dir;
static tu_tpm_ca ca, rogue;
static char bundle[700];
static tu_swtpm tpm[MAX_TPMS];
static size_t ntpm;
static pid_t duts[4];
static size_t nduts;

static void
setup(void)
{
	char d2[600];

	ck_assert_ptr_nonnull(dir = tu_tmpdir("tpm-station"));
	ck_assert_int_eq(tu_tpm_ca_init(&ca, dir), 0);
	snprintf(d2, sizeof(d2), "%s/rogue-ca", dir);
	ck_assert_int_eq(mkdir(d2, 0700), 0);
	ck_assert_int_eq(tu_tpm_ca_init(&rogue, d2), 0);
	ntpm = nduts = 0;
}

static void
teardown(void)
{
	size_t i;

	for (i = 0; i < nduts; i++)
		tu_tpmdut_stop(duts[i]);
	for (i = 0; i < ntpm; i++)
		tu_swtpm_stop(&tpm[i]);
	tu_rmtree(dir);
	free(dir);
}

/* A new TPM manufactured by c, served by swtpm; returns its index. */
static size_t
new_tpm(const tu_tpm_ca *c)
{
	char state[700], *log = NULL;
	size_t i = ntpm++;

	ck_assert_uint_le(ntpm, MAX_TPMS);
	snprintf(state, sizeof(state), "%s/tpm%zu", dir, i);
	if (tu_tpm_manufacture(c, state, &log) < 0)
		ck_abort_msg("swtpm_setup: %s", log ? log : "?");
	free(log);
	ck_assert_int_eq(tu_swtpm_start(&tpm[i], state), 0);
	return i;
}

/* The vendor bundle the recipe trusts: our TPM vendor's root and issuer
 * (made with the first TPM). */
static void
write_bundle(void)
{
	snprintf(bundle, sizeof(bundle), "%s/tpm-vendor.pem", dir);
	stu_sh_ok(NULL, "cat '%s' '%s' > '%s'", ca.root_pem, ca.issuer_pem, bundle);
}

static void
tpm_recipe(stu_ws *w)
{
	char to[900];

	stu_recipe_edit(w, "  models: [TSE-100]            # jigsim's simulated SE\n  min_firmware: 1.4.0\n  key_slot: 0\n",
	    "  family: tpm2\n  manufacturers: [IBM]         # libtpms\n  min_firmware: 8217.0\n");
	stu_recipe_edit(w, "  attestation_model:\n    subject: CN=${se.model} attestation\n", "");
	snprintf(to, sizeof(to), "  vendor_root: %s", bundle);
	stu_recipe_edit(w, "  vendor_root: pki/se-vendor-root.pem", to);
	stu_recipe_edit(w, "  validity_days: 3650\n", "  validity_days: 3650\n  hardware_module_type: 1.3.6.1.4.1.55555.1.1\n");
}

/* tpmdut serving the TPMs idx[0..n) with per-device extra options. */
static void
start_dut(const size_t *idx, size_t n, const char *const *extra, char *uri, size_t cap)
{
	const char *args[40];
	size_t i, k = 0;

	for (i = 0; i < n; i++) {
		args[k++] = "--tcti";
		args[k++] = tpm[idx[i]].tcti;
		if (extra && extra[2 * i]) {
			args[k++] = extra[2 * i];
			args[k++] = extra[2 * i + 1];
		}
	}
	args[k] = NULL;
	ck_assert_int_gt(duts[nduts] = tu_tpmdut_start(dir, uri, cap, args, NULL, 0), 0);
	nduts++;
}

/* The station's name for a TPM: "TPM" + the first 8 bytes of SHA-256 of
 * its EK's TPM2B_PUBLIC, read here with tpm2-tools. */
static void
tpm_serial(size_t i, char out[20])
{
	char cmd[1400], path[700];
	uint8_t h[32], *pub;
	size_t len, k;

	snprintf(path, sizeof(path), "%s/ek%zu.pub", dir, i);
	snprintf(cmd, sizeof(cmd), "tpm2_readpublic -T '%s' -c 0x81010001 -o '%s' >/dev/null", tpm[i].tcti, path);
	ck_assert_int_eq(tu_sh(cmd, NULL), 0);
	ck_assert_ptr_nonnull(pub = (uint8_t *)tu_slurp(path, &len));
	SHA256(pub, len, h);
	free(pub);
	strcpy(out, "TPM");
	for (k = 0; k < 8; k++)
		snprintf(out + 3 + 2 * k, 3, "%02X", h[k]);
}

START_TEST(five_tpms_on_two_jigs_get_both_certificates)
{
	static const size_t a[] = { 0, 1, 2 }, b[] = { 3, 4 };
	char uri_a[300], uri_b[300], serial[20], iak[4300], idev[4300];
	const char *jigs[2] = { uri_a, uri_b };
	stu_ws *w;
	stu_run r;
	size_t i;

	for (i = 0; i < 5; i++)
		new_tpm(&ca);
	write_bundle();
	start_dut(a, 3, NULL, uri_a, sizeof(uri_a));
	start_dut(b, 2, NULL, uri_b, sizeof(uri_b));
	w = stu_ws_new(tu_pki);
	tpm_recipe(w);
	stu_station_start_jigs(w, jigs, 2, 5, 1, &r);
	stu_station_wait(&r, 300);
	ck_assert_msg(r.status == 0, "station run: exit %d\n%s\n%s", r.status, stu_tail(r.out), stu_tail(r.err));
	ck_assert_uint_eq(stu_event_count(&r, "passed"), 5);
	/* tpmdut let go of every TPM when it released the device. */
	for (i = 0; i < 5; i++) {
		tpm_serial(i, serial);
		ck_assert_msg(stu_event(&r, "passed", serial), "TPM %zu (%s) did not pass", i, serial);
		snprintf(idev, sizeof(idev), "%s/certs/%s.pem", w->audit, serial);
		snprintf(iak, sizeof(iak), "%s/certs/%s.iak.pem", w->audit, serial);
		/* Both chain to the test root, for OpenSSL and for GnuTLS. */
		stu_sh_ok(NULL, "openssl verify -x509_strict -CAfile %s/root-ca.pem -untrusted %s/intermediate.pem %s %s", w->pki,
		    w->pki, idev, iak);
		stu_sh_ok("Chain verification output: Verified", "cat %s %s/intermediate.pem > %s/chain.pem && certtool --verify "
		    "--load-ca-certificate %s/root-ca.pem --infile %s/chain.pem && cat %s %s/intermediate.pem > %s/chain.pem && "
		    "certtool --verify --load-ca-certificate %s/root-ca.pem --infile %s/chain.pem", idev, w->pki, dir, w->pki, dir, iak, w->pki, dir, w->pki, dir);
		/* The IDevID certificate's key is the TPM's persistent key 0x81020001,
		 * the IAK certificate's is 0x81020000, read by tpm2-tools. */
		stu_sh_ok(NULL, "tpm2_readpublic -T '%s' -c 0x81020001 -f pem -o %s/k1.pem >/dev/null && "
		    "openssl x509 -in %s -noout -pubkey > %s/c1.pem && cmp %s/k1.pem %s/c1.pem && "
		    "tpm2_readpublic -T '%s' -c 0x81020000 -f pem -o %s/k0.pem >/dev/null && "
		    "openssl x509 -in %s -noout -pubkey > %s/c0.pem && cmp %s/k0.pem %s/c0.pem", tpm[i].tcti, dir, idev, dir, dir, dir, tpm[i].tcti, dir, iak, dir, dir, dir);
		/* The profile: the device serial in the subject, hardwareModuleName
		 * (RFC 4108) in the SAN, the IAK certificate's TCG EKU. */
		stu_sh_ok(serial, "openssl x509 -in %s -noout -subject -ext subjectAltName", idev);
		{
			char hw[80];
			size_t k;

			/* id-on-hardwareModuleName; hwSerialNum: OCTET STRING of the serial */
			k = (size_t)snprintf(hw, sizeof(hw), "0413");
			for (size_t c = 0; serial[c]; c++)
				k += (size_t)snprintf(hw + k, sizeof(hw) - k, "%02x", (unsigned char)serial[c]);
			stu_sh_ok(NULL, "openssl x509 -in %s -outform DER | od -An -tx1 -v | tr -d ' \\n' > %s/der.hex && "
			    "grep -q 06082b06010505070804 %s/der.hex && grep -q '%s' %s/der.hex && "
			    "openssl x509 -in %s -outform DER | od -An -tx1 -v | tr -d ' \\n' | grep -q 0605678105080",
			    idev, dir, dir, hw, dir, iak);
		}
		/* The certificates in the TPM's NV, locked. */
		stu_sh_ok(NULL, "tpm2_nvread -T '%s' 0x01400101 -o %s/nv.der && openssl x509 -inform DER -in "
		    "%s/nv.der -out %s/nv.pem && openssl x509 -in %s -out %s/ref.pem && cmp %s/nv.pem %s/ref.pem && "
		    "tpm2_nvreadpublic -T '%s' 0x01400100 | grep -q writelocked", tpm[i].tcti, dir, dir, dir, idev, dir, dir, dir, tpm[i].tcti);
	}
	stu_audit_verify(w);
	stu_run_clear(&r);
	stu_ws_free(w);
}
END_TEST

START_TEST(lying_tpm_devices_fail_with_no_certificate)
{
	static const char *const want_step[] = { "posture", "verify", "keygen", "verify", "verify", "posture" };
	const char *extra[12] = { NULL };
	char uri[300], serial[6][20];
	size_t idx[6], i, other, done;
	stu_journal j;
	stu_ws *w;
	stu_run r;

	idx[5] = new_tpm(&ca); /* provisioned first, then presented again */
	write_bundle();
	start_dut(&idx[5], 1, NULL, uri, sizeof(uri));
	w = stu_ws_new(tu_pki);
	tpm_recipe(w);
	stu_station_run(w, uri, 1, 1, &r);
	ck_assert_msg(r.status == 0, "station run: exit %d\n%s", r.status, stu_tail(r.out));
	stu_run_clear(&r);
	stu_ws_free(w);
	tu_tpmdut_stop(duts[--nduts]);

	idx[0] = new_tpm(&rogue);  /* EK certificate from a vendor CA the recipe does not know */
	idx[1] = new_tpm(&ca);     /* its IAK lives in another TPM */
	other = new_tpm(&ca);
	extra[2] = "--keys-tcti";
	extra[3] = tpm[other].tcti;
	idx[2] = new_tpm(&ca);     /* an IDevID made in software and imported */
	extra[4] = "--fault";
	extra[5] = "imported-idevid";
	idx[3] = new_tpm(&ca);     /* TPMS_ATTEST with the previous nonce */
	extra[6] = "--fault";
	extra[7] = "stale-nonce";
	idx[4] = new_tpm(&ca);     /* certified by another key than the IAK */
	extra[8] = "--fault";
	extra[9] = "certify-other-key";
	start_dut(idx, 6, extra, uri, sizeof(uri));
	w = stu_ws_new(tu_pki);
	tpm_recipe(w);
	stu_station_run(w, uri, 6, 1, &r);
	ck_assert_msg(r.status == 1, "station run: exit %d\n%s\n%s", r.status, stu_tail(r.out), stu_tail(r.err));
	ck_assert_uint_eq(stu_event_count(&r, "passed"), 0);
	ck_assert_uint_eq(stu_event_count(&r, "failed"), 6);
	stu_journal_load(w->audit, &j);
	for (i = 0, done = 0; i < 6; i++) {
		json_t *ev;
		char path[4400];
		struct stat sb;
		stu_ledger *l;

		tpm_serial(idx[i], serial[i]);
		ck_assert_msg((ev = stu_event(&r, "failed", serial[i])), "device %zu (%s): no failed event", i, serial[i]);
		ck_assert_msg(strcmp(stu_str(ev, "step"), want_step[i]) == 0, "device %zu failed at %s, not %s: %s", i,
		    stu_str(ev, "step"), want_step[i], stu_str(ev, "reason"));
		ck_assert_ptr_nonnull(l = stu_journal_dev(&j, serial[i]));
		ck_assert_msg(l->issued == 0, "device %zu: %u certificates issued", i, l->issued);
		snprintf(path, sizeof(path), "%s/certs/%s.pem", w->audit, serial[i]);
		ck_assert_int_ne(stat(path, &sb), 0);
		snprintf(path, sizeof(path), "%s/certs/%s.iak.pem", w->audit, serial[i]);
		ck_assert_int_ne(stat(path, &sb), 0);
		done++;
	}
	ck_assert_uint_eq(done, 6);
	ck_assert_uint_eq(j.n, 6);
	stu_journal_clear(&j);
	stu_run_clear(&r);
	stu_ws_free(w);
}
END_TEST

/* The recipe's tpm2 family: what it takes and what it refuses, each error
 * at its key. */
static void
recipe_expect(const char *from, const char *to, const char *path, const char *want)
{
	recipe_errors *errs = recipe_errors_new();
	stu_ws *w = stu_ws_new(tu_pki);
	recipe *r;
	size_t i;
	int found = 0;

	stu_recipe_edit(w, "  models: [TSE-100]            # jigsim's simulated SE\n  min_firmware: 1.4.0\n  key_slot: 0\n",
	    "  family: tpm2\n  manufacturers: [IBM]\n  min_firmware: 8217.0\n");
	stu_recipe_edit(w, "  attestation_model:\n    subject: CN=${se.model} attestation\n", "");
	if (from)
		stu_recipe_edit(w, from, to);
	r = recipe_load(w->recipe, NULL, errs);
	if (!path) {
		ck_assert_msg(r != NULL, "%s", recipe_errors_count(errs) ? recipe_errors_get(errs, 0) : "?");
		ck_assert_int_eq(r->se.family, RECIPE_FAMILY_TPM2);
		ck_assert_uint_eq(r->se.n_models, 1);
		ck_assert_str_eq(r->se.models[0], "IBM");
		ck_assert_uint_eq(r->se.min_firmware, 8217u << 16);
	} else {
		ck_assert_ptr_null(r);
		for (i = 0; i < recipe_errors_count(errs); i++)
			if (strcmp(recipe_errors_path(errs, i), path) == 0 && strstr(recipe_errors_message(errs, i), want))
				found = 1;
		ck_assert_msg(found, "no error at %s saying \"%s\" (first: %s)", path, want,
		    recipe_errors_count(errs) ? recipe_errors_get(errs, 0) : "none");
	}
	recipe_free(r);
	recipe_errors_free(errs);
	stu_ws_free(w);
}

START_TEST(tpm2_recipes_are_checked_key_by_key)
{
	recipe_expect(NULL, NULL, NULL, NULL);
	recipe_expect("  manufacturers: [IBM]\n", "  manufacturers: [IBM]\n  models: [TSE-100]\n", "se.models",
	    "family tpm2 names TPM manufacturers");
	recipe_expect("  manufacturers: [IBM]\n", "  manufacturers: [IBM]\n  key_slot: 1\n", "se.key_slot",
	    "no key slots");
	recipe_expect("  min_firmware: 8217.0\n", "  min_firmware: 1.4.0\n", "se.min_firmware", "MAJOR.MINOR");
	recipe_expect("  key_algorithm: p256\n", "  key_algorithm: p384\n", "se.key_algorithm", "ECC P-256");
	recipe_expect("  family: tpm2\n", "", "se.manufacturers", "is for family tpm2");
	recipe_expect("  validity_days: 3650\n", "  validity_days: 3650\n  hardware_module_type: not-an-oid\n",
	    "certificate.hardware_module_type", "expected a dotted OID");
}
END_TEST

static int revoked_as(json_t *recs, const char *serial, const char *reason);

/* ---- resume ------------------------------------------------------------------ */

/* `station run` on the TPM behind a tpmdut whose TPM_NV_WRITE stalls,
 * killed once it reaches INSTALL (both certificates issued); the serials
 * of the "issued" records since record `from` go into got[2]. */
static void
crash_after_issuing(stu_ws *w, size_t idx, const char *serial, size_t from, char got[2][41])
{
	static const char *const stall[] = { "--fault", "stall-nv-write" };
	char uri[300], *out = NULL;
	json_t *recs, *rec;
	size_t i, k = 0;
	stu_run r;
	int t;

	start_dut(&idx, 1, stall, uri, sizeof(uri));
	stu_station_start(w, uri, 1, 1, &r);
	for (t = 0; t < 1200 && !(out && strstr(out, "\"install\"")); t++) {
		free(out);
		out = tu_slurp(r.out_path, NULL);
		usleep(100 * 1000);
	}
	ck_assert_msg(out && strstr(out, "\"install\""), "the station never reached INSTALL:\n%s", stu_tail(out));
	free(out);
	ck_assert_int_eq(kill(r.pid, SIGKILL), 0);
	stu_station_wait(&r, 30);
	ck_assert_int_eq(r.status, 128 + SIGKILL);
	stu_run_clear(&r);
	tu_tpmdut_stop(duts[--nduts]);
	recs = rw_records(w, serial);
	json_array_foreach(recs, i, rec)
		if (i >= from && strcmp(stu_str(rec, "step"), "issued") == 0 && k < 2)
			snprintf(got[k++], 41, "%s", rw_detail(rec, "cert_serial"));
	json_decref(recs);
	ck_assert_uint_eq(k, 2);
}

/* A TPM device whose run stopped after both its certificates were issued
 * comes back: whether it then fails before signing (the end of the run
 * revokes both, cessationOfOperation) or passes (both superseded before the
 * new ones), no certificate of an earlier attempt stays live, the IAK's no
 * more than the IDevID's. */
START_TEST(a_resumed_tpm_keeps_no_certificate_of_an_earlier_attempt)
{
	static const char *const other_key[] = { "--fault", "certify-other-key" };
	char uri[300], serial[20], first[2][41], second[2][41];
	size_t idx, n;
	json_t *recs, *ev;
	stu_ws *w;
	stu_run r;

	idx = new_tpm(&ca);
	write_bundle();
	w = stu_ws_new(tu_pki);
	tpm_recipe(w);
	tpm_serial(idx, serial);
	crash_after_issuing(w, idx, serial, 0, first);
	/* Back, and it fails before anything new is signed. */
	start_dut(&idx, 1, other_key, uri, sizeof(uri));
	stu_station_run(w, uri, 1, 1, &r);
	ck_assert_msg(r.status == 1, "station run: exit %d\n%s", r.status, stu_tail(r.out));
	ck_assert_ptr_nonnull(ev = stu_event(&r, "failed", serial));
	ck_assert_str_eq(stu_str(ev, "step"), "verify");
	stu_run_clear(&r);
	tu_tpmdut_stop(duts[--nduts]);
	recs = rw_records(w, serial);
	ck_assert_msg(revoked_as(recs, first[0], "cessationOfOperation"), "IAK certificate %s of the crashed run is live",
	    first[0]);
	ck_assert_msg(revoked_as(recs, first[1], "cessationOfOperation"), "IDevID certificate %s of the crashed run is "
	    "live", first[1]);
	n = json_array_size(recs);
	json_decref(recs);
	/* Crashed again after issuing, then back and it passes. */
	crash_after_issuing(w, idx, serial, n, second);
	start_dut(&idx, 1, NULL, uri, sizeof(uri));
	stu_station_run(w, uri, 1, 1, &r);
	ck_assert_msg(r.status == 0, "station run: exit %d\n%s", r.status, stu_tail(r.out));
	stu_run_clear(&r);
	recs = rw_records(w, serial);
	ck_assert_msg(revoked_as(recs, second[0], "superseded"), "IAK certificate %s of the crashed run is live", second[0]);
	ck_assert_msg(revoked_as(recs, second[1], "superseded"), "IDevID certificate %s of the crashed run is live",
	    second[1]);
	ck_assert_uint_eq(rw_count(recs, "issued", "ok"), 6);
	ck_assert_uint_eq(rw_count(recs, "revoke", "ok"), 4);
	json_decref(recs);
	stu_audit_verify(w);
	stu_ws_free(w);
}
END_TEST

/* ---- rework ------------------------------------------------------------------- */

/* One TPM provisioned by `station run`; then tpmdut is started again with
 * the TPM on `seats` positions of its panel (a rework releases the device:
 * the next rework gets the next position), each with the fault (NULL:
 * none).  The issued records' serials in old[2] (IAK, IDevID). */
static void
provisioned_tpm(stu_ws **w, char *uri, size_t cap, char serial[20], size_t seats, const char *const *faults, char old[2][41])
{
	const char *extra[16] = { NULL };
	size_t idx[8], i, k = 0;
	json_t *recs, *rec;
	stu_run r;

	idx[0] = new_tpm(&ca);
	write_bundle();
	start_dut(idx, 1, NULL, uri, cap);
	*w = stu_ws_new(tu_pki);
	tpm_recipe(*w);
	stu_station_run(*w, uri, 1, 1, &r);
	ck_assert_msg(r.status == 0, "station run: exit %d\n%s", r.status, stu_tail(r.out));
	stu_run_clear(&r);
	tu_tpmdut_stop(duts[--nduts]);
	tpm_serial(idx[0], serial);
	recs = rw_records(*w, serial);
	json_array_foreach(recs, i, rec)
		if (strcmp(stu_str(rec, "step"), "issued") == 0 && k < 2)
			snprintf(old[k++], 41, "%s", rw_detail(rec, "cert_serial"));
	json_decref(recs);
	ck_assert_uint_eq(k, 2);
	for (i = 0; i < seats; i++) {
		idx[i] = idx[0];
		if (faults && faults[i]) {
			extra[2 * i] = "--fault";
			extra[2 * i + 1] = faults[i];
		}
	}
	start_dut(idx, seats, extra, uri, cap);
}

/* A revoke record of the journal names serial, for this reason. */
static int
revoked_as(json_t *recs, const char *serial, const char *reason)
{
	json_t *rec;
	size_t i;

	json_array_foreach(recs, i, rec)
		if (strcmp(stu_str(rec, "step"), "revoke") == 0 && strcmp(rw_detail(rec, "cert_serial"), serial) == 0)
			return strcmp(rw_detail(rec, "reason"), reason) == 0;
	return 0;
}

START_TEST(tpm_rework_proves_the_idevid_and_issues_anew)
{
	char uri[300], serial[20], old[2][41], idev[4300];
	json_t *recs, *done;
	size_t at = 0;
	stu_ws *w;
	stu_run r;

	provisioned_tpm(&w, uri, sizeof(uri), serial, 1, NULL, old);
	rw_rework_se(w, uri, serial, "RMA 4711", "rework-test", &r);
	ck_assert_msg(r.status == 0, "station rework: exit %d\n%s\n%s", r.status, stu_tail(r.out), stu_tail(r.err));
	ck_assert_ptr_nonnull(stu_event(&r, "passed", serial));
	recs = rw_records(w, serial);
	/* The identity proof and the retirement are journaled; both old
	 * certificates are revoked (superseded), two new ones issued. */
	ck_assert_ptr_nonnull(rw_record(recs, 0, "rework-start", "ok", &at));
	ck_assert_ptr_nonnull(rw_record(recs, at, "rework-auth", "ok", NULL));
	ck_assert_ptr_nonnull(rw_record(recs, 0, "retire", "ok", NULL));
	ck_assert_msg(revoked_as(recs, old[0], "superseded"), "the old IAK certificate %s is not revoked", old[0]);
	ck_assert_msg(revoked_as(recs, old[1], "superseded"), "the old IDevID certificate %s is not revoked", old[1]);
	ck_assert_uint_eq(rw_count(recs, "issued", "ok"), 4);
	ck_assert_ptr_nonnull(done = rw_record(recs, at, "done", "pass", NULL));
	ck_assert_str_eq(rw_detail(done, "old_cert_serial"), old[1]);
	ck_assert_str_ne(rw_detail(done, "cert_serial"), old[1]);
	json_decref(recs);
	/* The new IDevID certificate verifies, is in the TPM's NV, locked, and
	 * certifies the TPM's (new) persistent key. */
	snprintf(idev, sizeof(idev), "%s/certs/%s.pem", w->audit, serial);
	stu_sh_ok(NULL, "openssl verify -x509_strict -CAfile %s/root-ca.pem -untrusted %s/intermediate.pem %s", w->pki, w->pki,
	    idev);
	stu_sh_ok(NULL, "tpm2_nvread -T '%s' 0x01400101 -o %s/nv.der && openssl x509 -inform DER -in %s/nv.der -out %s/nv.pem "
	    "&& openssl x509 -in %s -out %s/ref.pem && cmp %s/nv.pem %s/ref.pem && tpm2_nvreadpublic -T '%s' 0x01400101 | "
	    "grep -q writelocked && tpm2_readpublic -T '%s' -c 0x81020001 -f pem -o %s/k1.pem >/dev/null && "
	    "openssl x509 -in %s -noout -pubkey > %s/c1.pem && cmp %s/k1.pem %s/c1.pem", tpm[0].tcti, dir, dir, dir, idev,
	    dir, dir, dir, tpm[0].tcti, tpm[0].tcti, dir, idev, dir, dir, dir);
	stu_audit_verify(w);
	stu_run_clear(&r);
	stu_ws_free(w);
}
END_TEST

/* A signature by another key of the TPM than the certified IDevID, and one
 * over an earlier challenge: refused at the identity proof, nothing
 * revoked or issued, the TPM left as it was. */
START_TEST(tpm_rework_refuses_another_key_and_a_replayed_challenge)
{
	static const char *const faults[] = { "rework-other-key", "replay-challenge", "replay-challenge" };
	char uri[300], serial[20], old[2][41];
	json_t *recs, *ev;
	stu_ws *w;
	stu_run r;
	int k;

	provisioned_tpm(&w, uri, sizeof(uri), serial, 3, faults, old);
	/* the first position: another key; the second signs the previous
	 * (no) challenge, the third the second's: a replayed one */
	for (k = 0; k < 3; k++) {
		rw_rework_se(w, uri, serial, "RMA 4712", "rework-test", &r);
		ck_assert_msg(r.status == 1, "rework %d: exit %d\n%s\n%s", k, r.status, stu_tail(r.out), stu_tail(r.err));
		ck_assert_msg((ev = stu_event(&r, "failed", serial)), "rework %d: no failed event\n%s", k, stu_tail(r.out));
		ck_assert_str_eq(stu_str(ev, "step"), "rework");
		ck_assert_msg(strstr(stu_str(ev, "reason"), "not signed by the key of the device's IDevID certificate"),
		    "rework %d: %s", k, stu_str(ev, "reason"));
		ck_assert_str_eq(stu_str(ev, "disposition"), "quarantine");
		stu_run_clear(&r);
	}
	recs = rw_records(w, serial);
	ck_assert_uint_eq(rw_count(recs, "revoke", NULL), 0);
	ck_assert_uint_eq(rw_count(recs, "retire", NULL), 0);
	ck_assert_uint_eq(rw_count(recs, "issued", "ok"), 2);
	json_decref(recs);
	tu_tpmdut_stop(duts[--nduts]);
	stu_sh_ok(NULL, "tpm2_nvreadpublic -T '%s' 0x01400101 | grep -q writelocked", tpm[0].tcti);
	stu_audit_verify(w);
	stu_ws_free(w);
}
END_TEST

int
main(void)
{
	TCase *tc;
	Suite *s = tu_pki_suite("tpm-station", "tpm-station", 400, &tc);

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, five_tpms_on_two_jigs_get_both_certificates);
	tcase_add_test(tc, lying_tpm_devices_fail_with_no_certificate);
	tcase_add_test(tc, tpm2_recipes_are_checked_key_by_key);
	tcase_add_test(tc, a_resumed_tpm_keeps_no_certificate_of_an_earlier_attempt);
	tcase_add_test(tc, tpm_rework_proves_the_idevid_and_issues_anew);
	tcase_add_test(tc, tpm_rework_refuses_another_key_and_a_replayed_challenge);
	return tu_run_suite(s);
}
