/* Who and why, on every command that changes what a station has issued:
 * without $USER the operator is the account's name, never "unknown"; a
 * revocation reason is recorded in RFC 5280's spelling whatever its case on
 * the command line; --require-signed refuses an unsigned recipe on every
 * command that reads one (run, rework, revoke, crl, audit seal), and a .sig
 * that nothing checks is said to be unchecked. */
#include <pwd.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rwutil.h"

static void
device_serial(stu_sim *sim, unsigned index, char serial[JIG_STR_MAX + 1])
{
	jigsim_device_info info;

	ck_assert_int_eq(jigsim_device_get(sim->s, index, &info), 0);
	snprintf(serial, JIG_STR_MAX + 1, "%s", info.serial);
}

START_TEST(test_operator_and_reason)
{
	stu_ws *w = stu_ws_new(tu_pki);
	struct passwd *pw = getpwuid(getuid());
	char a[JIG_STR_MAX + 1], crl[4200], *out = NULL;
	json_t *recs, *rec;
	jigsim_config c;
	stu_sim *sim;
	stu_run r;
	int rc;

	ck_assert_ptr_nonnull(pw);
	jigsim_config_init(&c);
	c.devices = 1;
	sim = stu_sim_start(tu_pki, &c);
	stu_station_run(w, sim->uri, 1, 0, &r);
	ck_assert_msg(r.status == 0, "station run: exit %d\n%s\n%s", r.status, stu_tail(r.out), stu_tail(r.err));
	device_serial(sim, 1, a);

	unsetenv("USER");
	rc = tu_station(&out, "revoke", "--recipe", w->recipe, "--device", a, "--reason", "KEYCOMPROMISE", NULL);
	ck_assert_msg(rc == 0 && strstr(out, "(keyCompromise)"), "station revoke: exit %d\n%s", rc, stu_tail(out));
	free(out);
	recs = rw_records(w, NULL);
	ck_assert_ptr_nonnull(rec = rw_record(recs, 0, "revoke", "ok", NULL));
	ck_assert_str_eq(rw_detail(rec, "reason"), "keyCompromise");
	ck_assert_str_eq(rw_detail(rec, "revoked_by"), pw->pw_name);
	ck_assert_str_eq(stu_str(rec, "operator"), pw->pw_name);
	json_decref(recs);

	/* An empty $USER is not a name either. */
	snprintf(crl, sizeof(crl), "%s/crl.pem", w->dir);
	setenv("USER", "", 1);
	rc = tu_station(&out, "crl", "--recipe", w->recipe, "--out", crl, NULL);
	ck_assert_msg(rc == 0, "station crl: exit %d\n%s", rc, stu_tail(out));
	free(out);
	recs = rw_records(w, NULL);
	ck_assert_ptr_nonnull(rec = rw_record(recs, 0, "crl", NULL, NULL));
	ck_assert_str_eq(stu_str(rec, "operator"), pw->pw_name);
	json_decref(recs);

	stu_run_clear(&r);
	stu_sim_stop(sim);
	stu_ws_free(w);
}
END_TEST

/* Each command that reads a recipe, as argv after STATION_EXE (NULL-ended;
 * "R" is replaced by the recipe, "O" by an output path). */
static const char *const commands[][12] = {
	{ "run", "--recipe", "R", "--count", "1", "--jig", "tcp:127.0.0.1:1", NULL },
	{ "rework", "--recipe", "R", "--authorization", "/nonexistent", "--jig", "tcp:127.0.0.1:1", NULL },
	{ "revoke", "--recipe", "R", "--cert-serial", "01", "--reason", "superseded", NULL },
	{ "crl", "--recipe", "R", "--out", "O", NULL },
	{ "audit", "seal", "--recipe", "R", NULL },
};

static int
run_cmd(stu_ws *w, const char *const *cmd, const char *extra1, const char *extra2, const char *extra3, char **out)
{
	char *argv[20], opath[4200];
	size_t n = 0, i;

	snprintf(opath, sizeof(opath), "%s/out.crl", w->dir);
	argv[n++] = (char *)tu_station_exe();
	for (i = 0; cmd[i]; i++)
		argv[n++] = (char *)(strcmp(cmd[i], "R") == 0 ? w->recipe : strcmp(cmd[i], "O") == 0 ? opath : cmd[i]);
	if (extra1)
		argv[n++] = (char *)extra1;
	if (extra2)
		argv[n++] = (char *)extra2;
	if (extra3)
		argv[n++] = (char *)extra3;
	argv[n] = NULL;
	return tu_run(argv, out);
}

START_TEST(test_require_signed_everywhere)
{
	stu_ws *w = stu_ws_new(tu_pki);
	char root[4200], eng[4200], *out = NULL;
	size_t i;
	int rc;

	snprintf(root, sizeof(root), "%s/root-ca.pem", tu_pki);
	snprintf(eng, sizeof(eng), "%s/engineering.pem", tu_pki);
	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		rc = run_cmd(w, commands[i], "--require-signed", "--trust", root, &out);
		ck_assert_msg(rc == 2 && strstr(out, "is not signed") && strstr(out, "station recipe sign"),
		    "station %s --require-signed on an unsigned recipe: exit %d\n%s", commands[i][0], rc, stu_tail(out));
		free(out);
	}

	/* Signed by engineering: the gate lets each command through (crl
	 * proves it by finishing), and then nothing warns. */
	rc = tu_station(&out, "recipe", "sign", w->recipe, "--key-label", "engineering", "--cert", eng, NULL);
	ck_assert_msg(rc == 0, "station recipe sign: exit %d\n%s", rc, stu_tail(out));
	free(out);
	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		rc = run_cmd(w, commands[i], "--require-signed", "--trust", root, &out);
		ck_assert_msg(!strstr(out, "is not signed") && !strstr(out, "recipe refused") && !strstr(out, "warning: "),
		    "station %s --require-signed on a signed recipe: exit %d\n%s", commands[i][0], rc, stu_tail(out));
		if (strcmp(commands[i][0], "crl") == 0 || strcmp(commands[i][0], "audit") == 0)
			ck_assert_msg(rc == 0, "station %s: exit %d\n%s", commands[i][0], rc, stu_tail(out));
		free(out);
	}

	/* The same .sig with no signers known: every command says that it was
	 * not checked. */
	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		rc = run_cmd(w, commands[i], NULL, NULL, NULL, &out);
		ck_assert_msg(strstr(out, "warning: ") && strstr(out, ".sig is not checked: no recipe signers"),
		    "station %s with an unchecked signature: exit %d\n%s", commands[i][0], rc, stu_tail(out));
		free(out);
	}

	/* --trust without --recipe makes no sense for audit seal. */
	rc = tu_station(&out, "audit", "seal", "--dir", w->audit, "--cert", eng, "--require-signed", NULL);
	ck_assert_msg(rc == 2 && strstr(out, "give --recipe FILE"), "audit seal --dir --require-signed: exit %d\n%s", rc,
	    stu_tail(out));
	free(out);
	stu_ws_free(w);
}
END_TEST

static Suite *
suite(void)
{
	TCase *tc;
	Suite *s = tu_pki_suite("rework-who", "who", 120, &tc);

	tcase_add_test(tc, test_operator_and_reason);
	tcase_add_test(tc, test_require_signed_everywhere);
	return s;
}

int
main(void)
{
	signal(SIGPIPE, SIG_IGN);
	return tu_run_suite(suite());
}
