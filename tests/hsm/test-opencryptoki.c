/* A second PKCS#11 implementation written by others (issue 14): openCryptoki
 * (IBM), its software token behind its slot daemon pkcsslotd.  The daemon
 * and its library use fixed paths (/etc/opencryptoki, /var/lib/opencryptoki,
 * /run/pkcsslotd.socket, /run/lock/opencryptoki, /var/log/opencryptoki) and
 * System V shared memory, so this test makes a throw-away world for it: a
 * private mount and IPC namespace (root only) with empty tmpfs over those
 * paths and /dev/shm, its own opencryptoki.conf with one software slot, a
 * daemon of its own, stopped at the end.  Nothing on the host is touched.
 *
 * The token is made as an operator would with openCryptoki's and OpenSC's
 * tools (pkcs11-tool), the keys generated in it, the certificates issued by
 * the test root (fixtures/make-test-pki --existing-token).  Then, through
 * libhsm and the station program: `station hsm check`, leaf issuance from
 * a CSR checked by OpenSSL and GnuTLS, `station crl`, `station audit seal`
 * and `audit verify`, `station recipe sign` and `recipe check --trust`.
 *
 * openCryptoki 3.8's software token (Debian 12) has no EC mechanisms
 * (CKM_EC_KEY_PAIR_GEN, CKM_ECDSA), so every key here is RSA, and the tool
 * key, which must sign ECDSA P-256 for the SE (jig-protocol/PROTOCOL.md,
 * tool authentication), cannot be one of its keys: `station run` is not
 * tried against it (see docs/HSM.md).  Its defaults differ from SoftHSM's
 * in the way that matters most: a key generated without an explicit
 * CKA_EXTRACTABLE=false is extractable (pkcs11-tool 0.23 sets no such
 * attribute), and the station must refuse it. */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/pem.h>

#include <p11-kit/pkcs11.h>

#include "audit.h"
#include "hsm-tu.h"
#include "tpmtest.h"

#define OCK_MODULE "/usr/lib/x86_64-linux-gnu/pkcs11/libopencryptoki.so"
#define OCK_SLOTD "/usr/sbin/pkcsslotd"
#define OCK_SLOT "3"         /* the software token's slot in our opencryptoki.conf */
#define OCK_SO_PIN "87654321" /* openCryptoki's default SO PIN: TEST ONLY */
#define TEST_PIN "123456"     /* TEST PIN, as fixtures/make-test-pki */

static pid_t slotd = -1, owner = -1; /* owner: the process that started it (not a forked test) */
static char *pki;

/* ---- the throw-away openCryptoki world ------------------------------------ */

static void
slotd_stop(void)
{
	if (slotd > 0 && getpid() == owner) {
		kill(slotd, SIGTERM);
		slotd = -1;
	}
}

static void
on_fatal(int sig)
{
	slotd_stop();
	signal(sig, SIG_DFL);
	raise(sig);
}

static void
must(int ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "opencryptoki setup: %s: %s\n", what, strerror(errno));
		slotd_stop();
		exit(1);
	}
}

static void
tmpfs(const char *path, const char *mode)
{
	char opt[32];

	snprintf(opt, sizeof(opt), "mode=%s", mode);
	must(mount("station-ock", path, "tmpfs", MS_NOSUID | MS_NODEV, opt) == 0, path);
}

static void
ock_dir(const char *path, gid_t gid)
{
	must(mkdir(path, 0770) == 0 || errno == EEXIST, path);
	must(chown(path, 0, gid) == 0 && chmod(path, 0770) == 0, path);
}

static void
ock_start(void)
{
	static const char conf[] = "version opencryptoki-3.1\n\nslot " OCK_SLOT "\n{\nstdll = libpkcs11_sw.so\n}\n";
	struct group *g = getgrnam("pkcs11");
	char *out = NULL, buf[32];
	int fd, i;
	ssize_t n;

	must(g != NULL, "group pkcs11 (installed by the opencryptoki package)");
	must(unshare(CLONE_NEWNS | CLONE_NEWIPC) == 0, "unshare(mount, IPC)");
	must(mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) == 0, "make / private");
	tmpfs("/run", "0755");
	tmpfs("/etc/opencryptoki", "0755");
	tmpfs("/var/lib/opencryptoki", "0770");
	tmpfs("/dev/shm", "1777");
	tmpfs("/var/log", "0755");
	ock_dir("/var/lib/opencryptoki", g->gr_gid);
	ock_dir("/var/lib/opencryptoki/swtok", g->gr_gid);
	ock_dir("/var/lib/opencryptoki/swtok/TOK_OBJ", g->gr_gid);
	must(mkdir("/run/lock", 0755) == 0, "/run/lock");
	ock_dir("/run/lock/opencryptoki", g->gr_gid);
	ock_dir("/run/lock/opencryptoki/swtok", g->gr_gid);
	must((fd = open("/etc/opencryptoki/opencryptoki.conf", O_WRONLY | O_CREAT | O_EXCL, 0644)) >= 0, "conf");
	must(write(fd, conf, sizeof(conf) - 1) == (ssize_t)sizeof(conf) - 1 && close(fd) == 0, "conf");

	owner = getpid();
	signal(SIGTERM, on_fatal);
	signal(SIGINT, on_fatal);
	signal(SIGABRT, on_fatal);
	/* It daemonizes: the parent exits once the socket is up, the child
	 * writes its pid. */
	{
		char *argv[] = { (char *)OCK_SLOTD, NULL };
		int rc = tu_run(argv, &out);

		if (rc != 0)
			fprintf(stderr, "pkcsslotd: exit %d: %s\n", rc, out ? out : "");
		must(rc == 0, "start pkcsslotd");
		free(out);
	}
	for (i = 0; i < 100 && slotd <= 0; i++) {
		if ((fd = open("/run/pkcsslotd.pid", O_RDONLY)) >= 0) {
			n = read(fd, buf, sizeof(buf) - 1);
			close(fd);
			buf[n > 0 ? n : 0] = '\0';
			slotd = (pid_t)atol(buf);
		}
		if (slotd <= 0)
			usleep(50000);
	}
	must(slotd > 0, "pkcsslotd wrote no /run/pkcsslotd.pid");
	atexit(slotd_stop);
}

/* ---- the token, as an operator makes it ------------------------------------- */

static void
sh_ok(const char *cmd)
{
	char *out = NULL;
	int rc = tu_sh(cmd, &out);

	ck_assert_msg(rc == 0, "%s: exit %d\n%s", cmd, rc, out ? out : "");
	free(out);
}

/* An RSA key pair in the token with what a key ceremony asks for, said
 * explicitly (openCryptoki's defaults are extractable). */
static void
rsa_keygen(CK_FUNCTION_LIST *fl, CK_SESSION_HANDLE s, const char *label, CK_BYTE id, CK_ULONG bits,
    CK_BBOOL extractable)
{
	static CK_BYTE e65537[] = { 0x01, 0x00, 0x01 };
	CK_BBOOL yes = CK_TRUE, got = 2;
	CK_MECHANISM mech = { CKM_RSA_PKCS_KEY_PAIR_GEN, NULL, 0 };
	CK_ATTRIBUTE pub[] = {
		{ CKA_TOKEN, &yes, sizeof(yes) },
		{ CKA_VERIFY, &yes, sizeof(yes) },
		{ CKA_MODULUS_BITS, &bits, sizeof(bits) },
		{ CKA_PUBLIC_EXPONENT, e65537, sizeof(e65537) },
		{ CKA_LABEL, (void *)label, strlen(label) },
		{ CKA_ID, &id, 1 },
	};
	CK_ATTRIBUTE prv[] = {
		{ CKA_TOKEN, &yes, sizeof(yes) },
		{ CKA_PRIVATE, &yes, sizeof(yes) },
		{ CKA_SIGN, &yes, sizeof(yes) },
		{ CKA_SENSITIVE, &yes, sizeof(yes) },
		{ CKA_EXTRACTABLE, &extractable, sizeof(extractable) },
		{ CKA_LABEL, (void *)label, strlen(label) },
		{ CKA_ID, &id, 1 },
	};
	CK_ATTRIBUTE get = { CKA_EXTRACTABLE, &got, sizeof(got) };
	CK_OBJECT_HANDLE hpub, hprv;
	CK_RV rv = fl->C_GenerateKeyPair(s, &mech, pub, 6, prv, 7, &hpub, &hprv);

	ck_assert_msg(rv == CKR_OK, "C_GenerateKeyPair %s: 0x%lx", label, (unsigned long)rv);
	ck_assert_int_eq(fl->C_GetAttributeValue(s, hprv, &get, 1), CKR_OK);
	ck_assert_int_eq(got, extractable);
}

static void
with_token(void (*fn)(CK_FUNCTION_LIST *, CK_SESSION_HANDLE))
{
	CK_C_GetFunctionList getfl;
	CK_FUNCTION_LIST *fl = NULL;
	CK_SLOT_ID slots[16];
	CK_ULONG n = 16, i;
	CK_SESSION_HANDLE s = 0;
	CK_TOKEN_INFO ti;
	void *dl = dlopen(OCK_MODULE, RTLD_NOW);

	ck_assert_msg(dl != NULL, "%s", dlerror());
	*(void **)&getfl = dlsym(dl, "C_GetFunctionList");
	ck_assert(getfl && getfl(&fl) == CKR_OK);
	ck_assert_int_eq(fl->C_Initialize(NULL), CKR_OK);
	ck_assert_int_eq(fl->C_GetSlotList(CK_TRUE, slots, &n), CKR_OK);
	for (i = 0; i < n; i++)
		if (fl->C_GetTokenInfo(slots[i], &ti) == CKR_OK && memcmp(ti.label, "station-test ", 13) == 0)
			break;
	ck_assert_msg(i < n, "no token station-test in openCryptoki");
	ck_assert_int_eq(fl->C_OpenSession(slots[i], CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &s), CKR_OK);
	ck_assert_int_eq(fl->C_Login(s, CKU_USER, (CK_UTF8CHAR *)TEST_PIN, strlen(TEST_PIN)), CKR_OK);
	fn(fl, s);
	fl->C_Logout(s);
	fl->C_CloseSession(s);
	fl->C_Finalize(NULL);
	dlclose(dl);
}

/* openCryptoki 3.8 cannot be initialised twice in one process (C_Initialize
 * after C_Finalize crashes in the software token's Fork_Initializer), and
 * the tests' own processes each initialise it once: touch the token from a
 * process of its own. */
static void
with_token_in_child(void (*fn)(CK_FUNCTION_LIST *, CK_SESSION_HANDLE))
{
	int status = 0;
	pid_t pid = fork();

	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		with_token(fn);
		_exit(0);
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "key generation in openCryptoki failed (status %d)",
	    status);
}

static void
ceremony_keys(CK_FUNCTION_LIST *fl, CK_SESSION_HANDLE s)
{
	rsa_keygen(fl, s, "intermediate", 0x01, 3072, CK_FALSE);
	rsa_keygen(fl, s, "audit", 0x02, 2048, CK_FALSE);
	rsa_keygen(fl, s, "tool", 0x03, 2048, CK_FALSE);
	rsa_keygen(fl, s, "engineering", 0x04, 2048, CK_FALSE);
}

static void
careless_key(CK_FUNCTION_LIST *fl, CK_SESSION_HANDLE s)
{
	rsa_keygen(fl, s, "careless", 0x05, 2048, CK_TRUE);
}

static void
token_setup(void)
{
	char *cmd = NULL;

	pki = tu_tmpdir("ock-pki");
	ck_assert_ptr_nonnull(pki);
	/* Initialise the token, set the user PIN, change it (openCryptoki
	 * flags an SO-set PIN "to be changed"). */
	sh_ok("pkcs11-tool --module " OCK_MODULE " --slot " OCK_SLOT " --init-token --label station-test --so-pin "
	      OCK_SO_PIN);
	sh_ok("pkcs11-tool --module " OCK_MODULE " --token-label station-test --init-pin --so-pin " OCK_SO_PIN
	      " --pin 11111111");
	sh_ok("pkcs11-tool --module " OCK_MODULE " --token-label station-test --change-pin --pin 11111111 --new-pin "
	      TEST_PIN);
	with_token_in_child(ceremony_keys);
	ck_assert_int_ne(asprintf(&cmd, "STATION_PKCS11_MODULE=%s '%s' '%s' --intermediate rsa3072 --existing-token",
	                     OCK_MODULE, getenv("MAKE_TEST_PKI"), pki), -1);
	sh_ok(cmd);
	free(cmd);
	setenv("STATION_HSM_PIN", TEST_PIN, 1);
}

/* ---- the tests ------------------------------------------------------------------ */

static int
station(char **out, const char *fmt, ...) ST_PRINTF(2, 3);

static int
station(char **out, const char *fmt, ...)
{
	char *args = NULL, *cmd = NULL;
	va_list ap;
	int rc;

	va_start(ap, fmt);
	ck_assert_int_ne(vasprintf(&args, fmt, ap), -1);
	va_end(ap);
	/* libhsm unsets the PIN variable in the child only: set it each time. */
	ck_assert_int_ne(asprintf(&cmd, "STATION_HSM_PIN=" TEST_PIN " '%s' %s", tu_station_exe(), args), -1);
	rc = tu_sh(cmd, out);
	free(cmd);
	free(args);
	return rc;
}

START_TEST(test_hsm_check)
{
	char *out = NULL;
	int rc;

	rc = station(&out,
	    "hsm check --module %s --token station-test --key-label intermediate=%s/intermediate.pem "
	    "--key-label audit=%s/audit.pem --key-label engineering=%s/engineering.pem --key-label tool=%s/tool.pem",
	    OCK_MODULE, pki, pki, pki, pki);
	ck_assert_msg(rc == 0, "exit %d: %s", rc, out);
	ck_assert_msg(strstr(out, "IBM") && strstr(out, "RSA 3072") && strstr(out, "RSA 2048") &&
	    strstr(out, "never extractable (generated in the token)") && strstr(out, "OK, 4 keys"), "%s", out);
	free(out);
}
END_TEST

/* A key made the careless way (the token's default CKA_EXTRACTABLE) is
 * refused by name. */
START_TEST(test_extractable_refused)
{
	char *out = NULL;
	int rc;

	with_token_in_child(careless_key);
	rc = station(&out, "hsm check --module %s --token station-test --key-label careless", OCK_MODULE);
	ck_assert_msg(rc == 2 && strstr(out, "\"careless\"") && strstr(out, "CKA_EXTRACTABLE"), "exit %d: %s", rc, out);
	free(out);
}
END_TEST

/* Leaf issuance from an SE-like CSR, and a CRL, signed in openCryptoki. */
START_TEST(test_issue_and_crl)
{
	hsm_pin_source pin = { .kind = HSM_PIN_ENV };
	hsm_ctx *ctx;
	hsm_key *ca;
	X509 *ca_cert = ht_cert(pki, "intermediate.pem"), *leaf = NULL;
	EVP_PKEY *dev = ht_ec_key("P-256");
	X509_REQ *csr = ht_csr(dev, NULL);
	hsm_leaf_profile prof = ht_profile("SEOCK0001");
	hsm_revoked rev[1];
	X509_CRL *crl = NULL;
	char serial[HSM_SERIAL_HEX_MAX], crl_path[4200], *out = NULL;
	FILE *f;
	st_err err;

	setenv("STATION_HSM_PIN", TEST_PIN, 1);
	ctx = hsm_open(OCK_MODULE, "station-test", &pin, &err);
	ck_assert_msg(ctx != NULL, "%s", err.msg);
	ck_assert_msg((ca = hsm_key_find(ctx, "intermediate", &err)) != NULL, "%s", err.msg);
	ck_assert_msg(hsm_issue_leaf(ca, ca_cert, csr, &prof, &leaf, &err) == 0, "%s", err.msg);
	ht_verify_both(pki, leaf);

	ck_assert_int_eq(hsm_serial_new(serial, &err), 0);
	rev[0] = (hsm_revoked){ serial, time(NULL) - 60, HSM_CRL_KEY_COMPROMISE };
	ck_assert_msg(hsm_crl_sign(ca, ca_cert, rev, 1, time(NULL), time(NULL) + 86400, 7, &crl, &err) == 0, "%s",
	    err.msg);
	snprintf(crl_path, sizeof(crl_path), "%s/ock.crl", pki);
	ck_assert_ptr_nonnull(f = fopen(crl_path, "w"));
	ck_assert_int_eq(PEM_write_X509_CRL(f, crl), 1);
	fclose(f);
	ck_assert_msg(ht_sh(pki, &out, "openssl crl -in ock.crl -CAfile chain.pem -noout -text 2>&1") == 0 &&
	    strstr(out, "verify OK") && strstr(out, "Key Compromise"), "%s", out);
	free(out);
	X509_CRL_free(crl);
	X509_free(leaf);
	X509_REQ_free(csr);
	EVP_PKEY_free(dev);
	X509_free(ca_cert);
	hsm_key_free(ca);
	hsm_close(ctx);
}
END_TEST

/* A demo recipe (recipes/examples/NAME) pointed at openCryptoki, beside
 * the PKI. */
static char *
ock_recipe(const char *dir, const char *name)
{
	char *cmd = NULL, *path = NULL;

	ck_assert_int_ne(asprintf(&path, "%s/line.yaml", dir), -1);
	ck_assert_int_ne(asprintf(&cmd,
	                     "ln -s '%s' '%s/pki' && sed 's|  # module: omitted, the SoftHSM default|  module: %s|' "
	                     "'%s/recipes/examples/%s' > '%s' && grep -q 'module: %s' '%s'",
	                     pki, dir, OCK_MODULE, getenv("STATION_SOURCE_ROOT"), name, path, OCK_MODULE, path), -1);
	sh_ok(cmd);
	free(cmd);
	return path;
}

/* station crl, audit seal (+ verify) and recipe sign (+ check --trust):
 * the station program with openCryptoki as its HSM. */
START_TEST(test_station_commands)
{
	char *dir = tu_tmpdir("ock-station"), *recipe = ock_recipe(dir, "demo.yaml"), *out = NULL;
	char journal[4200];
	audit_config cfg = { "station-ock", "carol", "0123abcd", 0, 0, NULL };
	audit_journal *j;
	audit_event ev = { "tcp:127.0.0.1:7000", "SE-0001", "identify", "ok", NULL, 0 };
	st_err err;
	int rc;

	rc = station(&out, "crl --recipe '%s' --out '%s/line.crl'", recipe, dir);
	ck_assert_msg(rc == 0, "station crl: exit %d: %s", rc, out);
	free(out);
	ck_assert_msg(ht_sh(dir, &out, "openssl crl -in line.crl -CAfile pki/chain.pem -noout 2>&1") == 0 &&
	    strstr(out, "verify OK"), "%s", out);
	free(out);

	/* A journal of one device, sealed with the audit key in openCryptoki. */
	snprintf(journal, sizeof(journal), "%s/journal", dir);
	ck_assert_msg((j = audit_open(journal, &cfg, &err)) != NULL, "%s", err.msg);
	ck_assert_int_eq(audit_append(j, &ev, NULL, &err), 0);
	ev.step = "done";
	ck_assert_int_eq(audit_append(j, &ev, NULL, &err), 0);
	audit_close(j);
	rc = station(&out, "audit seal --dir '%s' --module %s --token station-test --cert '%s/audit.pem'", journal,
	    OCK_MODULE, pki);
	ck_assert_msg(rc == 0, "station audit seal: exit %d: %s", rc, out);
	free(out);
	rc = station(&out, "audit verify '%s' --ca '%s/root-ca.pem'", journal, pki);
	ck_assert_msg(rc == 0 && strstr(out, "seal"), "station audit verify: exit %d: %s", rc, out);
	free(out);

	rc = station(&out, "recipe sign '%s' --key-label engineering --cert '%s/engineering.pem'", recipe, pki);
	ck_assert_msg(rc == 0, "station recipe sign: exit %d: %s", rc, out);
	free(out);
	rc = station(&out, "recipe check '%s' --trust '%s/root-ca.pem'", recipe, pki);
	ck_assert_msg(rc == 0 && strstr(out, "signed by") && strstr(out, "Engineering"), "station recipe check: exit %d: %s",
	    rc, out);
	free(out);
	free(recipe);
	tu_rmtree(dir);
	free(dir);
}
END_TEST

/* openCryptoki provisions devices: TPM 2.0 devices (swtpm behind tpmdut),
 * which take no tool authentication, so nothing needs ECDSA from the
 * token: each TPM's IDevID and IAK certificates (EC P-256 keys in the TPM)
 * are signed by the RSA 3072 intermediate in openCryptoki, the journal
 * sealed with its RSA audit key.  (An SE device cannot be: its tool
 * authentication is ECDSA P-256.) */
START_TEST(test_station_run_tpm_devices)
{
	enum { NTPM = 2 };
	char *dir = tu_tmpdir("ock-tpm"), *recipe = ock_recipe(dir, "demo-tpm.yaml"), *out = NULL;
	char state[4200], uri[300];
	const char *args[2 * NTPM + 1];
	tu_tpm_ca ca;
	tu_swtpm tpm[NTPM];
	pid_t dut;
	size_t i;
	int rc;

	ck_assert_int_eq(tu_tpm_ca_init(&ca, dir), 0);
	for (i = 0; i < NTPM; i++) {
		snprintf(state, sizeof(state), "%s/tpm%zu", dir, i);
		if (tu_tpm_manufacture(&ca, state, &out) < 0)
			ck_abort_msg("swtpm_setup: %s", out ? out : "?");
		free(out);
		out = NULL;
		ck_assert_int_eq(tu_swtpm_start(&tpm[i], state), 0);
		args[2 * i] = "--tcti";
		args[2 * i + 1] = tpm[i].tcti;
	}
	args[2 * NTPM] = NULL;
	/* The recipe's vendor_root, beside it: the TPM vendor's root and issuer. */
	ck_assert_int_eq(ht_sh(dir, &out, "cat '%s' '%s' > tpm-vendor.pem", ca.root_pem, ca.issuer_pem), 0);
	free(out);
	ck_assert_int_gt(dut = tu_tpmdut_start(dir, uri, sizeof(uri), args, NULL, 0), 0);

	rc = station(&out, "run --recipe '%s' --jig '%s' --count %d --operator carol", recipe, uri, NTPM);
	ck_assert_msg(rc == 0 && strstr(out, "RUN PASSED  passed 2, failed 0"), "station run: exit %d: %s", rc, out);
	free(out);
	/* Two certificates per TPM, EC keys signed with RSA, each chaining to the
	 * test root through the openCryptoki intermediate. */
	ck_assert_msg(ht_sh(dir, &out, "set -e; n=0; for c in audit/certs/*.pem; do "
	    "openssl verify -x509_strict -CAfile pki/root-ca.pem -untrusted pki/intermediate.pem \"$c\"; "
	    "openssl x509 -in \"$c\" -noout -text | grep -q 'Signature Algorithm: sha256WithRSAEncryption'; "
	    "openssl x509 -in \"$c\" -noout -text | grep -q 'ASN1 OID: prime256v1'; n=$((n+1)); done; echo \"certs=$n\"") == 0 &&
	    strstr(out, "certs=4"), "%s", out);
	free(out);
	rc = station(&out, "audit seal --recipe '%s'", recipe);
	ck_assert_msg(rc == 0 && strstr(out, "sealed by"), "station audit seal: exit %d: %s", rc, out);
	free(out);
	rc = station(&out, "audit verify '%s/audit' --ca '%s/root-ca.pem'", dir, pki);
	ck_assert_msg(rc == 0 && strstr(out, "seal"), "station audit verify: exit %d: %s", rc, out);
	free(out);

	tu_tpmdut_stop(dut);
	for (i = 0; i < NTPM; i++)
		tu_swtpm_stop(&tpm[i]);
	free(recipe);
	tu_rmtree(dir);
	free(dir);
}
END_TEST

int
main(int argc, char **argv)
{
	Suite *s;
	TCase *tc;
	int rc;

	(void)argc;
	/* openCryptoki unloads its token library at C_Finalize: a leak inside
	 * it is named only on a whole stack (tests/lsan.supp). */
	tu_asan_full_unwind(argv);
	if (!getenv("MAKE_TEST_PKI") || !getenv("STATION_SOURCE_ROOT")) {
		fprintf(stderr, "run by meson test: MAKE_TEST_PKI and STATION_SOURCE_ROOT are not set\n");
		return 1;
	}
	if (geteuid() != 0) {
		/* Under CI (root) this never happens; elsewhere say why. */
		if (getenv("CI") && strcmp(getenv("CI"), "true") == 0) {
			printf("1..1\nnot ok 1 - the openCryptoki test needs root (a mount namespace and pkcsslotd)\n");
			return 1;
		}
		printf("1..0 # SKIP the openCryptoki test needs root (a mount namespace and pkcsslotd)\n");
		return 0;
	}
	ock_start();
	s = suite_create("hsm-opencryptoki");
	tc = tcase_create("opencryptoki");
	tcase_add_unchecked_fixture(tc, token_setup, NULL);
	tcase_set_timeout(tc, 240);
	tcase_add_test(tc, test_hsm_check);
	tcase_add_test(tc, test_issue_and_crl);
	tcase_add_test(tc, test_station_commands);
	tcase_add_test(tc, test_station_run_tpm_devices);
	tcase_add_test(tc, test_extractable_refused);
	suite_add_tcase(s, tc);
	rc = tu_run_suite(s);
	slotd_stop();
	if (pki) {
		tu_rmtree(pki);
		free(pki);
	}
	return rc;
}
