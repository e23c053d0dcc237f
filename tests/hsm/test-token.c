/* libhsm token access against a throw-away SoftHSM token: open, PIN
 * sources, key lookup and the refusal of exportable keys, signing. */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/pem.h>
#include <p11-kit/pkcs11.h>
#include <signal.h>

#include "hsm-int.h"
#include "hsm-tu.h"

#define TEST_PIN "123456" /* TEST PIN, see fixtures/make-test-pki */
#define MODULE "/usr/lib/softhsm/libsofthsm2.so"

/* Generate an EC P-256 key pair in the test token with raw PKCS#11, with
 * attributes pkcs11-tool will not set (CKA_SENSITIVE=false), and read them
 * back so the test knows the token really holds them.  Runs before
 * hsm_open: it initialises and finalises the module itself. */
static CK_BBOOL raw_sign = CK_TRUE; /* CKA_SIGN of the next raw_keygen */

static void
raw_keygen(const char *label, CK_BBOOL sensitive, CK_BBOOL extractable)
{
	static CK_BYTE p256[] = { 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07 };
	CK_BBOOL yes = CK_TRUE, got_s = 2, got_e = 2;
	CK_MECHANISM mech = { CKM_EC_KEY_PAIR_GEN, NULL, 0 };
	CK_ATTRIBUTE pub[] = {
		{ CKA_TOKEN, &yes, sizeof(yes) },
		{ CKA_VERIFY, &yes, sizeof(yes) },
		{ CKA_EC_PARAMS, p256, sizeof(p256) },
		{ CKA_LABEL, (void *)label, strlen(label) },
	};
	CK_ATTRIBUTE prv[] = {
		{ CKA_TOKEN, &yes, sizeof(yes) },
		{ CKA_PRIVATE, &yes, sizeof(yes) },
		{ CKA_SIGN, &raw_sign, sizeof(raw_sign) },
		{ CKA_SENSITIVE, &sensitive, sizeof(sensitive) },
		{ CKA_EXTRACTABLE, &extractable, sizeof(extractable) },
		{ CKA_LABEL, (void *)label, strlen(label) },
		{ CKA_ID, (void *)label, strlen(label) },
	};
	CK_ATTRIBUTE get[] = {
		{ CKA_SENSITIVE, &got_s, sizeof(got_s) },
		{ CKA_EXTRACTABLE, &got_e, sizeof(got_e) },
	};
	CK_C_GetFunctionList getfl;
	CK_FUNCTION_LIST *fl = NULL;
	CK_SLOT_ID slots[16];
	CK_ULONG n = 16, i;
	CK_SESSION_HANDLE s = 0;
	CK_OBJECT_HANDLE hpub, hprv;
	CK_TOKEN_INFO ti;
	void *dl = dlopen(MODULE, RTLD_NOW);
	int found = 0;

	ck_assert_ptr_nonnull(dl);
	*(void **)&getfl = dlsym(dl, "C_GetFunctionList");
	ck_assert(getfl && getfl(&fl) == CKR_OK);
	ck_assert_int_eq(fl->C_Initialize(NULL), CKR_OK);
	ck_assert_int_eq(fl->C_GetSlotList(CK_TRUE, slots, &n), CKR_OK);
	for (i = 0; i < n && !found; i++) {
		ck_assert_int_eq(fl->C_GetTokenInfo(slots[i], &ti), CKR_OK);
		if (memcmp(ti.label, "station-test ", 13) == 0)
			found = 1;
	}
	ck_assert(found);
	ck_assert_int_eq(fl->C_OpenSession(slots[i - 1], CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &s), CKR_OK);
	ck_assert_int_eq(fl->C_Login(s, CKU_USER, (CK_UTF8CHAR *)TEST_PIN, strlen(TEST_PIN)), CKR_OK);
	ck_assert_int_eq(fl->C_GenerateKeyPair(s, &mech, pub, 4, prv, 7, &hpub, &hprv), CKR_OK);
	ck_assert_int_eq(fl->C_GetAttributeValue(s, hprv, get, 2), CKR_OK);
	ck_assert_int_eq(got_s, sensitive);
	ck_assert_int_eq(got_e, extractable);
	fl->C_Logout(s);
	fl->C_CloseSession(s);
	fl->C_Finalize(NULL);
	dlclose(dl);
}

START_TEST(test_open_find_describe)
{
	char *dir = tu_make_pki();
	static const char *const labels[] = { "intermediate", "audit", "tool", "engineering" };
	static const uint8_t id_audit[] = { 0x02 };
	char buf[256];
	hsm_ctx *ctx = ht_open();
	hsm_key *key, *byid;
	X509 *cert;
	st_err err;
	size_t i;

	hsm_token_describe(ctx, buf, sizeof(buf));
	ck_assert_msg(strstr(buf, "\"station-test\"") && strstr(buf, "SoftHSM"), "%s", buf);
	ck_assert_str_eq(hsm_token_label(ctx), "station-test");
	ck_assert_str_eq(hsm_module_path(ctx), MODULE);
	for (i = 0; i < 4; i++) {
		char name[64];

		key = hsm_key_find(ctx, labels[i], &err);
		ck_assert_msg(key != NULL, "%s: %s", labels[i], err.msg);
		ck_assert_str_eq(hsm_key_label(key), labels[i]);
		hsm_key_describe(key, buf, sizeof(buf));
		ck_assert_str_eq(buf, "EC P-256");
		ck_assert_str_eq(hsm_key_protection(key), "sensitive, never extractable (generated in the token)");
		ck_assert_ptr_nonnull(hsm_key_pkey(key));
		snprintf(name, sizeof(name), "%s.pem", labels[i]);
		cert = ht_cert(dir, name);
		ck_assert_msg(hsm_key_matches_cert(key, cert, &err) == 0, "%s: %s", labels[i], err.msg);
		X509_free(cert);
		hsm_key_free(key);
	}
	byid = hsm_key_find_id(ctx, id_audit, sizeof(id_audit), &err);
	ck_assert_msg(byid != NULL, "%s", err.msg);
	ck_assert_str_eq(hsm_key_label(byid), "audit");
	hsm_key_free(byid);
	hsm_key_free(NULL);
	hsm_close(ctx);
	hsm_close(NULL);
	tu_rmtree(dir);
	free(dir);
}
END_TEST

START_TEST(test_second_open_refused)
{
	char *dir = tu_make_pki();
	hsm_ctx *ctx = ht_open(), *again;
	st_err err;

	again = hsm_open(NULL, "station-test", NULL, &err);
	ck_assert_ptr_null(again);
	ck_assert_int_eq(err.code, ST_E_STATE);
	ck_assert_msg(strstr(err.msg, "already open"), "%s", err.msg);
	hsm_close(ctx);
	/* Closed: the process may open the token again. */
	ctx = ht_open();
	hsm_close(ctx);
	tu_rmtree(dir);
	free(dir);
}
END_TEST

/* Invariant 7: the PIN does not stay in the environment for the shift. */
START_TEST(test_pin_env_consumed)
{
	char *dir = tu_make_pki();
	const char *v;
	hsm_ctx *ctx;
	st_err err;
	size_t i;

	setenv("STATION_HSM_PIN", "123456", 1);
	v = getenv("STATION_HSM_PIN");
	ck_assert_ptr_nonnull(v);
	ctx = hsm_open(NULL, "station-test", NULL, &err);
	ck_assert_msg(ctx != NULL, "hsm_open: %s", err.msg);
	ck_assert_msg(getenv("STATION_HSM_PIN") == NULL, "STATION_HSM_PIN is still set after the PIN was read");
	for (i = 0; i < 6; i++) /* glibc keeps setenv's strings: the bytes are still there to look at */
		ck_assert_msg(v[i] == '\0', "the PIN's bytes were not wiped (byte %zu is 0x%02x)", i, (unsigned char)v[i]);
	hsm_close(ctx);
	tu_rmtree(dir);
	free(dir);
}
END_TEST

START_TEST(test_wrong_pin)
{
	char *dir = tu_make_pki();
	hsm_ctx *ctx;
	st_err err;

	setenv("STATION_HSM_PIN", "98765432", 1);
	ctx = hsm_open(NULL, "station-test", NULL, &err);
	ck_assert_ptr_null(ctx);
	ck_assert_int_eq(err.code, ST_E_CONFIG);
	ck_assert_msg(strstr(err.msg, "wrong PIN for token \"station-test\""), "%s", err.msg);
	ck_assert_msg(!strstr(err.msg, "98765432"), "PIN in message: %s", err.msg);
	/* A failed open leaves nothing behind: the right PIN works now. */
	setenv("STATION_HSM_PIN", TEST_PIN, 1);
	ctx = ht_open();
	hsm_close(ctx);
	tu_rmtree(dir);
	free(dir);
}
END_TEST

START_TEST(test_token_and_module_errors)
{
	char *dir = tu_make_pki();
	char *notlib = tu_path(dir, "softhsm2.conf");
	st_err err;

	ck_assert_ptr_null(hsm_open(NULL, "no-such-token", NULL, &err));
	ck_assert_int_eq(err.code, ST_E_CONFIG);
	ck_assert_msg(strstr(err.msg, "token \"no-such-token\" not found") && strstr(err.msg, "\"station-test\""),
	    "%s", err.msg);

	ck_assert_ptr_null(hsm_open("/nonexistent/libpkcs11.so", "station-test", NULL, &err));
	ck_assert_int_eq(err.code, ST_E_CONFIG);
	ck_assert_msg(strstr(err.msg, "/nonexistent/libpkcs11.so"), "%s", err.msg);

	ck_assert_ptr_null(hsm_open(notlib, "station-test", NULL, &err));
	ck_assert_int_eq(err.code, ST_E_CONFIG);
	ck_assert_msg(strstr(err.msg, notlib) && strstr(err.msg, "cannot load"), "%s", err.msg);

	ck_assert_ptr_null(hsm_open(NULL, "", NULL, &err));
	ck_assert_int_eq(err.code, ST_E_CONFIG);
	free(notlib);
	tu_rmtree(dir);
	free(dir);
}
END_TEST

START_TEST(test_missing_key)
{
	char *dir = tu_make_pki();
	hsm_ctx *ctx = ht_open();
	static const uint8_t id[] = { 0x7f, 0x01 };
	st_err err;

	ck_assert_ptr_null(hsm_key_find(ctx, "nosuchkey", &err));
	ck_assert_int_eq(err.code, ST_E_CONFIG);
	ck_assert_msg(strstr(err.msg, "\"nosuchkey\"") && strstr(err.msg, "\"station-test\""), "%s", err.msg);
	ck_assert_ptr_null(hsm_key_find_id(ctx, id, sizeof(id), &err));
	ck_assert_msg(strstr(err.msg, "7f01") && strstr(err.msg, "\"station-test\""), "%s", err.msg);
	ck_assert_ptr_null(hsm_key_find(ctx, "", &err));
	hsm_close(ctx);
	tu_rmtree(dir);
	free(dir);
}
END_TEST

/* pkcs11-tool (an independent tool) makes an extractable key; libhsm must refuse it. */
START_TEST(test_extractable_refused)
{
	char *dir = tu_make_pki();
	char *out = NULL;
	hsm_ctx *ctx;
	st_err err;
	int rc;

	rc = ht_sh(dir, &out, "pkcs11-tool --module %s --token-label station-test --login --pin %s --keypairgen "
	    "--key-type EC:prime256v1 --label exportable --id 20 --usage-sign --extractable && "
	    "pkcs11-tool --module %s --token-label station-test --login --pin %s --list-objects --type privkey",
	    MODULE, TEST_PIN, MODULE, TEST_PIN);
	ck_assert_msg(rc == 0 && strstr(out, "extractable, local"), "%s", out);
	free(out);
	raw_keygen("raw-exportable", CK_TRUE, CK_TRUE);

	ctx = ht_open();
	ck_assert_ptr_null(hsm_key_find(ctx, "exportable", &err));
	ck_assert_int_eq(err.code, ST_E_CONFIG);
	ck_assert_msg(strstr(err.msg, "CKA_EXTRACTABLE") && strstr(err.msg, "\"exportable\"") &&
	    strstr(err.msg, "\"station-test\""), "%s", err.msg);
	ck_assert_ptr_null(hsm_key_find(ctx, "raw-exportable", &err));
	ck_assert_msg(strstr(err.msg, "CKA_EXTRACTABLE") && strstr(err.msg, "\"raw-exportable\""), "%s", err.msg);
	hsm_close(ctx);
	tu_rmtree(dir);
	free(dir);
}
END_TEST

START_TEST(test_not_sensitive_refused)
{
	char *dir = tu_make_pki();
	hsm_ctx *ctx;
	st_err err;

	raw_keygen("readable", CK_FALSE, CK_FALSE);
	ctx = ht_open();
	ck_assert_ptr_null(hsm_key_find(ctx, "readable", &err));
	ck_assert_int_eq(err.code, ST_E_CONFIG);
	ck_assert_msg(strstr(err.msg, "CKA_SENSITIVE") && strstr(err.msg, "\"readable\"") &&
	    strstr(err.msg, "\"station-test\""), "%s", err.msg);
	hsm_close(ctx);
	tu_rmtree(dir);
	free(dir);
}
END_TEST

START_TEST(test_duplicate_label_refused)
{
	char *dir = tu_make_pki();
	hsm_ctx *ctx;
	st_err err;

	raw_keygen("twice", CK_TRUE, CK_FALSE);
	raw_keygen("twice", CK_TRUE, CK_FALSE);
	ctx = ht_open();
	ck_assert_ptr_null(hsm_key_find(ctx, "twice", &err));
	ck_assert_int_eq(err.code, ST_E_CONFIG);
	ck_assert_msg(strstr(err.msg, "more than one") && strstr(err.msg, "\"twice\""), "%s", err.msg);
	hsm_close(ctx);
	tu_rmtree(dir);
	free(dir);
}
END_TEST

START_TEST(test_cert_mismatch)
{
	char *dir = tu_make_pki();
	hsm_ctx *ctx = ht_open();
	hsm_key *audit;
	X509 *tool = ht_cert(dir, "tool.pem");
	X509 *root = ht_cert(dir, "root-ca.pem");
	st_err err;

	audit = hsm_key_find(ctx, "audit", &err);
	ck_assert_ptr_nonnull(audit);
	ck_assert_int_eq(hsm_key_matches_cert(audit, tool, &err), -1);
	ck_assert_int_eq(err.code, ST_E_CONFIG);
	ck_assert_msg(strstr(err.msg, "does not belong to key \"audit\"") && strstr(err.msg, "Tool Credential"), "%s",
	    err.msg);
	/* A P-384 certificate against a P-256 key: refused before any signing. */
	ck_assert_int_eq(hsm_key_matches_cert(audit, root, &err), -1);
	ck_assert_msg(strstr(err.msg, "does not belong"), "%s", err.msg);
	X509_free(tool);
	X509_free(root);
	hsm_key_free(audit);
	hsm_close(ctx);
	tu_rmtree(dir);
	free(dir);
}
END_TEST

/* The tool key signs the SE's challenge; jigsim checks it with tool-pub.pem. */
START_TEST(test_sign_tool_challenge)
{
	char *dir = tu_make_pki();
	char *pubpath = tu_path(dir, "tool-pub.pem");
	const uint8_t msg[] = "station-tool-auth-v1SE0001challenge-bytes";
	uint8_t *sig = NULL, bad[sizeof(msg)];
	size_t sig_len = 0;
	hsm_ctx *ctx = ht_open();
	hsm_key *tool;
	EVP_PKEY *pub;
	EVP_MD_CTX *m;
	FILE *f;
	st_err err;

	tool = hsm_key_find(ctx, "tool", &err);
	ck_assert_ptr_nonnull(tool);
	ck_assert_msg(hsm_sign(tool, msg, sizeof(msg), &sig, &sig_len, &err) == 0, "%s", err.msg);
	ck_assert(sig_len >= 8 && sig_len <= 72 && sig[0] == 0x30); /* DER Ecdsa-Sig-Value */
	f = fopen(pubpath, "r");
	ck_assert_ptr_nonnull(f);
	pub = PEM_read_PUBKEY(f, NULL, NULL, NULL);
	fclose(f);
	ck_assert_ptr_nonnull(pub);
	m = EVP_MD_CTX_new();
	ck_assert_int_eq(EVP_DigestVerifyInit(m, NULL, EVP_sha256(), NULL, pub), 1);
	ck_assert_int_eq(EVP_DigestVerify(m, sig, sig_len, msg, sizeof(msg)), 1);
	memcpy(bad, msg, sizeof(msg));
	bad[3] ^= 1;
	ck_assert_int_eq(EVP_DigestVerifyInit(m, NULL, EVP_sha256(), NULL, pub), 1);
	ck_assert_int_ne(EVP_DigestVerify(m, sig, sig_len, bad, sizeof(bad)), 1);
	EVP_MD_CTX_free(m);
	EVP_PKEY_free(pub);
	free(sig);
	free(pubpath);
	hsm_key_free(tool);
	hsm_close(ctx);
	tu_rmtree(dir);
	free(dir);
}
END_TEST

/* ---- PIN sources ------------------------------------------------------ */

static void
write_file(const char *path, const char *text, mode_t mode)
{
	FILE *f = fopen(path, "w");

	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	ck_assert_int_eq(fclose(f), 0);
	ck_assert_int_eq(chmod(path, mode), 0);
}

START_TEST(test_pin_file)
{
	char *dir = tu_make_pki();
	char *path = tu_path(dir, "my-pin");
	hsm_pin_source src = { .kind = HSM_PIN_FILE, .name = path };
	char pin[HSM_PIN_MAX];
	hsm_ctx *ctx;
	st_err err;

	unsetenv("STATION_HSM_PIN"); /* the file must be what is used */
	write_file(path, TEST_PIN "\n", 0600);
	ctx = hsm_open(NULL, "station-test", &src, &err);
	ck_assert_msg(ctx != NULL, "%s", err.msg);
	hsm_close(ctx);
	write_file(path, TEST_PIN "\r\n", 0400);
	ck_assert_int_eq(hsm_pin_read(&src, "t", pin, &err), 0);
	ck_assert_str_eq(pin, TEST_PIN);

	/* Group- or world-readable: refused, and the message says why, not the PIN. */
	write_file(path, "secret-777\n", 0644);
	ck_assert_int_eq(hsm_pin_read(&src, "t", pin, &err), -1);
	ck_assert_int_eq(err.code, ST_E_CONFIG);
	ck_assert_msg(strstr(err.msg, "mode 0644") && strstr(err.msg, "0600") && strstr(err.msg, path), "%s", err.msg);
	ck_assert_msg(!strstr(err.msg, "secret-777"), "%s", err.msg);
	ck_assert_str_eq(pin, "");
	ck_assert_ptr_null(hsm_open(NULL, "station-test", &src, &err));
	ck_assert_msg(strstr(err.msg, "mode 0644") && strstr(err.msg, "\"station-test\""), "%s", err.msg);
	write_file(path, "secret-777\n", 0640);
	ck_assert_int_eq(hsm_pin_read(&src, "t", pin, &err), -1);
	ck_assert_msg(strstr(err.msg, "mode 0640"), "%s", err.msg);

	write_file(path, "\n", 0600);
	ck_assert_int_eq(hsm_pin_read(&src, "t", pin, &err), -1);
	ck_assert_msg(strstr(err.msg, "empty"), "%s", err.msg);
	unlink(path);
	ck_assert_int_eq(hsm_pin_read(&src, "t", pin, &err), -1);
	ck_assert_msg(strstr(err.msg, path), "%s", err.msg);
	free(path);
	tu_rmtree(dir);
	free(dir);
}
END_TEST

START_TEST(test_pin_env)
{
	hsm_pin_source named = { .kind = HSM_PIN_ENV, .name = "MY_TEST_HSM_PIN" };
	char pin[HSM_PIN_MAX];
	st_err err;

	setenv("MY_TEST_HSM_PIN", "4321", 1);
	ck_assert_int_eq(hsm_pin_read(&named, "t", pin, &err), 0);
	ck_assert_str_eq(pin, "4321");
	unsetenv("MY_TEST_HSM_PIN");
	ck_assert_int_eq(hsm_pin_read(&named, "t", pin, &err), -1);
	ck_assert_int_eq(err.code, ST_E_CONFIG);
	ck_assert_msg(strstr(err.msg, "MY_TEST_HSM_PIN is not set"), "%s", err.msg);
	unsetenv("STATION_HSM_PIN");
	ck_assert_int_eq(hsm_pin_read(NULL, "t", pin, &err), -1);
	ck_assert_msg(strstr(err.msg, "STATION_HSM_PIN"), "%s", err.msg);
}
END_TEST

/* A prompt is the program's: libhsm calls back (it never opens a terminal
 * itself) and holds the answer to a PIN file's rules. */
struct prompt_call {
	const char *answer;
	int fail;
	unsigned calls;
	char token[64];
};

static int
test_prompt(void *arg, const char *token, char pin[HSM_PIN_MAX], st_err *err)
{
	struct prompt_call *c = arg;

	c->calls++;
	snprintf(c->token, sizeof(c->token), "%s", token);
	if (c->fail)
		return st_err_set(err, ST_E_CONFIG, "the operator pressed Ctrl-D");
	if (strlen(c->answer) < HSM_PIN_MAX)
		memcpy(pin, c->answer, strlen(c->answer) + 1);
	else
		memset(pin, 'x', HSM_PIN_MAX); /* no NUL at all */
	return 0;
}

START_TEST(test_pin_prompt_callback)
{
	char *dir = tu_make_pki(), pin[HSM_PIN_MAX], big[HSM_PIN_MAX + 8];
	struct prompt_call call = { .answer = TEST_PIN "\n" };
	hsm_pin_source src = { .kind = HSM_PIN_PROMPT, .prompt = test_prompt, .prompt_arg = &call };
	hsm_ctx *ctx;
	st_err err;

	unsetenv("STATION_HSM_PIN"); /* the prompt must be what is used */
	ctx = hsm_open(NULL, "station-test", &src, &err);
	ck_assert_msg(ctx != NULL, "%s", err.msg);
	hsm_close(ctx);
	ck_assert_uint_eq(call.calls, 1);
	ck_assert_str_eq(call.token, "station-test");

	call.answer = "4321";
	ck_assert_int_eq(hsm_pin_read(&src, "t", pin, &err), 0);
	ck_assert_str_eq(pin, "4321");
	call.answer = "\n";
	ck_assert_int_eq(hsm_pin_read(&src, "t", pin, &err), -1);
	ck_assert_msg(err.code == ST_E_CONFIG && strstr(err.msg, "PIN prompt: the PIN is empty"), "%s", err.msg);
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	call.answer = big;
	ck_assert_int_eq(hsm_pin_read(&src, "t", pin, &err), -1);
	ck_assert_msg(strstr(err.msg, "longer than"), "%s", err.msg);
	ck_assert_str_eq(pin, "");
	call.fail = 1;
	ck_assert_ptr_null(hsm_open(NULL, "station-test", &src, &err));
	ck_assert_msg(err.code == ST_E_CONFIG && strstr(err.msg, "Ctrl-D") && strstr(err.msg, "\"station-test\""), "%s",
	    err.msg);

	/* A program that cannot ask says so; libhsm does not fall back to a terminal. */
	src.prompt = NULL;
	ck_assert_int_eq(hsm_pin_read(&src, "station-test", pin, &err), -1);
	ck_assert_msg(err.code == ST_E_CONFIG && strstr(err.msg, "cannot prompt") && strstr(err.msg, "station-test"), "%s",
	    err.msg);
	tu_rmtree(dir);
	free(dir);
}
END_TEST

/* ---- other PKCS#11 modules ------------------------------------------- */

#define P11KIT_PROXY "/usr/lib/x86_64-linux-gnu/p11-kit-proxy.so"

/* Everything a station does with a token, through module: find, sign,
 * prove the certificate, issue nothing (test-issue does that). */
static void
use_token_through(const char *dir, const char *module)
{
	const uint8_t msg[] = "challenge";
	uint8_t *sig = NULL;
	size_t sig_len = 0;
	hsm_ctx *ctx;
	hsm_key *tool, *inter;
	X509 *cert = ht_cert(dir, "intermediate.pem");
	st_err err;

	st_err_clear(&err);
	setenv("STATION_HSM_PIN", TEST_PIN, 1); /* consumed by every open */
	ctx = hsm_open(module, "station-test", NULL, &err);
	ck_assert_msg(ctx != NULL, "%s: %s", module, err.msg);
	ck_assert_str_eq(hsm_module_path(ctx), module);
	tool = hsm_key_find(ctx, "tool", &err);
	ck_assert_msg(tool != NULL, "%s: %s", module, err.msg);
	inter = hsm_key_find(ctx, "intermediate", &err);
	ck_assert_msg(inter != NULL, "%s: %s", module, err.msg);
	ck_assert_msg(hsm_sign(tool, msg, sizeof(msg), &sig, &sig_len, &err) == 0, "%s: %s", module, err.msg);
	ck_assert(sig_len >= 8 && sig[0] == 0x30);
	ck_assert_msg(hsm_key_matches_cert(inter, cert, &err) == 0, "%s: %s", module, err.msg);
	ck_assert_int_ne(hsm_key_matches_cert(tool, cert, &err), 0);
	free(sig);
	X509_free(cert);
	hsm_key_free(tool);
	hsm_key_free(inter);
	hsm_close(ctx);
}

/* p11-kit-proxy.so hands each C_GetFunctionList caller its own instance:
 * a station that loaded the module twice failed here with
 * CKR_CRYPTOKI_NOT_INITIALIZED (0x190). */
START_TEST(test_p11kit_proxy)
{
	char *dir = tu_make_pki();

	/* The proxy loads every module registered with p11-kit: tpm2-pkcs11's
	 * (scripts/deps installs it) creates its store in $HOME unless told. */
	setenv("TPM2_PKCS11_STORE", dir, 1);
	use_token_through(dir, P11KIT_PROXY);
	/* and again in the same process: close really closed */
	use_token_through(dir, P11KIT_PROXY);
	tu_rmtree(dir);
	free(dir);
}
END_TEST

/* p11-kit's remoting, the way a station reaches a network HSM; a server
 * that goes away is an error naming the token, the module and the cause. */
static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* The latency shim the gang benchmark uses (tests/hsm/p11-delay.c): every
 * signature through it takes its delay longer, is still good, and is
 * counted. */
START_TEST(test_latency_shim)
{
	char *dir = tu_make_pki(), *count = tu_path(dir, "delayed"), *text;
	const char *shim = getenv("STATION_P11_DELAY_MODULE");
	const uint8_t msg[] = "challenge";
	hsm_ctx *ctx;
	hsm_key *tool;
	double t0;
	st_err err;
	int i;

	ck_assert_msg(shim != NULL, "STATION_P11_DELAY_MODULE is not set (run by meson test)");
	setenv("STATION_P11_DELAY_MS", "20", 1);
	setenv("STATION_P11_DELAY_COUNT", count, 1);
	use_token_through(dir, shim);
	setenv("STATION_HSM_PIN", TEST_PIN, 1);
	ctx = hsm_open(shim, "station-test", NULL, &err);
	ck_assert_msg(ctx != NULL, "%s", err.msg);
	ck_assert_msg((tool = hsm_key_find(ctx, "tool", &err)) != NULL, "%s", err.msg);
	t0 = now_s();
	for (i = 0; i < 5; i++) {
		uint8_t *sig = NULL;
		size_t sig_len = 0;

		ck_assert_msg(hsm_sign(tool, msg, sizeof(msg), &sig, &sig_len, &err) == 0, "%s", err.msg);
		free(sig);
	}
	ck_assert_msg(now_s() - t0 >= 5 * 0.020, "5 signatures through a 20 ms shim took %.3f s", now_s() - t0);
	hsm_key_free(tool);
	hsm_close(ctx);
	ck_assert_ptr_nonnull(text = tu_slurp(count, NULL));
	ck_assert_msg(atoi(text) >= 5, "delayed signatures: %s", text);
	free(text);
	unsetenv("STATION_P11_DELAY_MS");
	unsetenv("STATION_P11_DELAY_COUNT");
	free(count);
	tu_rmtree(dir);
	free(dir);
}
END_TEST

START_TEST(test_p11kit_client)
{
	char *dir = tu_make_pki();
	const uint8_t msg[] = "challenge";
	uint8_t *sig = NULL;
	size_t sig_len = 0;
	pid_t pid = tu_p11kit_server_start(dir, "station-test");
	hsm_ctx *ctx;
	hsm_key *tool;
	st_err err;

	signal(SIGPIPE, SIG_IGN); /* as station's main() does */
	use_token_through(dir, TU_P11KIT_CLIENT);
	setenv("STATION_HSM_PIN", TEST_PIN, 1); /* consumed by every open */
	ctx = hsm_open(TU_P11KIT_CLIENT, "station-test", NULL, &err);
	ck_assert_msg(ctx != NULL, "%s", err.msg);
	tool = hsm_key_find(ctx, "tool", &err);
	ck_assert_msg(tool != NULL, "%s", err.msg);
	tu_p11kit_server_stop(pid);
	ck_assert_int_ne(hsm_sign(tool, msg, sizeof(msg), &sig, &sig_len, &err), 0);
	ck_assert_ptr_null(sig);
	ck_assert_int_eq(err.code, ST_E_CRYPTO);
	ck_assert_msg(strstr(err.msg, "\"tool\"") && strstr(err.msg, "\"station-test\"") && strstr(err.msg, "CKR_"),
	    "%s", err.msg);
	ck_assert_msg(!strstr(err.msg, "0x"), "%s", err.msg);
	hsm_key_free(tool);
	hsm_close(ctx);
	/* A restarted server serves the next station process (p11-kit's
	 * client stays disconnected inside this one). */
	pid = tu_p11kit_server_start(dir, "station-test");
	setenv("STATION_HSM_PIN", TEST_PIN, 1); /* the open above consumed it */
	{
		char *cert = tu_path(dir, "intermediate.pem"), *kl = NULL, *out = NULL;
		char *argv[] = { (char *)tu_station_exe(), (char *)"hsm", (char *)"check", (char *)"--module",
			(char *)TU_P11KIT_CLIENT, (char *)"--token", (char *)"station-test", (char *)"--key-label", NULL,
			NULL };

		ck_assert_ptr_nonnull(argv[0]);
		ck_assert_int_ne(asprintf(&kl, "intermediate=%s", cert), -1);
		argv[8] = kl;
		ck_assert_msg(tu_run(argv, &out) == 0 && strstr(out, "matches      yes"), "%s", out);
		free(out);
		free(kl);
		free(cert);
	}
	tu_p11kit_server_stop(pid);
	tu_rmtree(dir);
	free(dir);
}
END_TEST

/* Every CK_RV is reported by name with what to do; unknown ones still
 * say what they are. */
START_TEST(test_ckr_names)
{
	char buf[256];
	st_err err;

	ck_assert_str_eq(hsm_ckr_name(CKR_PIN_LOCKED), "CKR_PIN_LOCKED");
	ck_assert_str_eq(hsm_ckr_name(CKR_TOKEN_NOT_PRESENT), "CKR_TOKEN_NOT_PRESENT");
	ck_assert_str_eq(hsm_ckr_name(CKR_CRYPTOKI_NOT_INITIALIZED), "CKR_CRYPTOKI_NOT_INITIALIZED");
	ck_assert_ptr_nonnull(hsm_ckr_hint(CKR_PIN_LOCKED));
	ck_assert_ptr_null(hsm_ckr_name(0x7777));
	hsm_ckr_describe(CKR_DEVICE_REMOVED, buf, sizeof(buf));
	ck_assert_msg(strstr(buf, "CKR_DEVICE_REMOVED: ") && strstr(buf, "reconnect"), "%s", buf);
	hsm_ckr_describe(CKR_VENDOR_DEFINED | 0x12, buf, sizeof(buf));
	ck_assert_msg(strstr(buf, "CKR_VENDOR_DEFINED+0x12") && strstr(buf, "vendor"), "%s", buf);
	hsm_ckr_describe(0x7777, buf, sizeof(buf));
	ck_assert_msg(strstr(buf, "unknown PKCS#11 error 30583"), "%s", buf);
	ck_assert_int_eq(hsm_err_ckr(&err, ST_E_CRYPTO, CKR_PIN_EXPIRED, "login to token \"%s\"", "x"), -1);
	ck_assert_msg(strstr(err.msg, "login to token \"x\": CKR_PIN_EXPIRED: ") && strstr(err.msg, "change"), "%s",
	    err.msg);
}
END_TEST

/* A key that may not sign is found, but hsm_key_audit (station hsm
 * check) refuses it; the station's own keys pass. */
START_TEST(test_audit_no_sign)
{
	char *dir = tu_make_pki();
	hsm_ctx *ctx;
	hsm_key *k;
	st_err err;

	raw_sign = CK_FALSE;
	raw_keygen("nosign", CK_TRUE, CK_FALSE);
	ctx = ht_open();
	k = hsm_key_find(ctx, "nosign", &err);
	ck_assert_msg(k != NULL, "%s", err.msg);
	ck_assert_int_ne(hsm_key_audit(k, &err), 0);
	ck_assert_int_eq(err.code, ST_E_CONFIG);
	ck_assert_msg(strstr(err.msg, "CKA_SIGN=false") && strstr(err.msg, "\"nosign\""), "%s", err.msg);
	hsm_key_free(k);
	k = hsm_key_find(ctx, "intermediate", &err);
	ck_assert_msg(k && hsm_key_audit(k, &err) == 0, "%s", err.msg);
	hsm_key_free(k);
	ck_assert_uint_eq(hsm_token_pin_state(ctx), 0);
	hsm_close(ctx);
	tu_rmtree(dir);
	free(dir);
}
END_TEST

/* PKCS#11 URIs (RFC 7512) for the token and the keys, parsed by p11-kit;
 * labels keep working. */
START_TEST(test_pkcs11_uris)
{
	char *dir = tu_make_pki();
	hsm_ctx *ctx;
	hsm_key *k;
	st_err err;

	ck_assert_ptr_null(hsm_open(NULL, "pkcs11:token=no-such-token", NULL, &err));
	ck_assert_msg(strstr(err.msg, "not found") && strstr(err.msg, "\"station-test\""), "%s", err.msg);
	ck_assert_ptr_null(hsm_open(NULL, "pkcs11:token%zz", NULL, &err));
	ck_assert_int_eq(err.code, ST_E_CONFIG);
	ck_assert_msg(strstr(err.msg, "token URI \"pkcs11:token%zz\""), "%s", err.msg);
	ctx = hsm_open(NULL, "pkcs11:token=station-test;manufacturer=SoftHSM%20project", NULL, &err);
	ck_assert_msg(ctx != NULL, "%s", err.msg);
	ck_assert_str_eq(hsm_token_label(ctx), "station-test");
	k = hsm_key_find(ctx, "pkcs11:token=station-test;object=intermediate;type=private", &err);
	ck_assert_msg(k != NULL, "%s", err.msg);
	ck_assert_str_eq(hsm_key_label(k), "intermediate");
	hsm_key_free(k);
	k = hsm_key_find(ctx, "pkcs11:id=%03;type=private", &err);
	ck_assert_msg(k != NULL, "%s", err.msg);
	ck_assert_str_eq(hsm_key_label(k), "tool");
	hsm_key_free(k);
	ck_assert_ptr_null(hsm_key_find(ctx, "pkcs11:id=%03;object=audit", &err));
	ck_assert_msg(strstr(err.msg, "labelled \"tool\""), "%s", err.msg);
	ck_assert_ptr_null(hsm_key_find(ctx, "pkcs11:object=intermediate;type=cert", &err));
	ck_assert_msg(strstr(err.msg, "type= must be private"), "%s", err.msg);
	ck_assert_ptr_null(hsm_key_find(ctx, "pkcs11:token=line-b;object=intermediate", &err));
	ck_assert_msg(strstr(err.msg, "another token"), "%s", err.msg);
	ck_assert_ptr_null(hsm_key_find(ctx, "pkcs11:object=nosuchkey", &err));
	ck_assert_msg(strstr(err.msg, "\"nosuchkey\""), "%s", err.msg);
	k = hsm_key_find(ctx, "audit", &err); /* a plain label still works */
	ck_assert_msg(k != NULL, "%s", err.msg);
	hsm_key_free(k);
	hsm_close(ctx);
	tu_rmtree(dir);
	free(dir);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("hsm-token");
	TCase *tc = tcase_create("token");

	tcase_add_test(tc, test_open_find_describe);
	tcase_add_test(tc, test_second_open_refused);
	tcase_add_test(tc, test_pin_env_consumed);
	tcase_add_test(tc, test_wrong_pin);
	tcase_add_test(tc, test_token_and_module_errors);
	tcase_add_test(tc, test_missing_key);
	tcase_add_test(tc, test_extractable_refused);
	tcase_add_test(tc, test_not_sensitive_refused);
	tcase_add_test(tc, test_duplicate_label_refused);
	tcase_add_test(tc, test_cert_mismatch);
	tcase_add_test(tc, test_sign_tool_challenge);
	tcase_add_test(tc, test_pin_file);
	tcase_add_test(tc, test_pin_env);
	tcase_add_test(tc, test_pin_prompt_callback);
	tcase_add_test(tc, test_p11kit_proxy);
	tcase_add_test(tc, test_p11kit_client);
	tcase_add_test(tc, test_latency_shim);
	tcase_add_test(tc, test_ckr_names);
	tcase_add_test(tc, test_audit_no_sign);
	tcase_add_test(tc, test_pkcs11_uris);
	suite_add_tcase(s, tc);
	return tu_run_suite(s);
}
