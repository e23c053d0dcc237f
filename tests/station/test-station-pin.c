/* Issue 14 item 4: every command that opens the HSM takes the same PIN
 * sources — --pin-env NAME, --pin-file PATH (0600), --pin-prompt (the
 * terminal, no echo) — and the recipe's `pin: prompt`.  Each command runs
 * for real with $STATION_HSM_PIN unset, so only the source under test can
 * have logged it in. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "stutil.h"

#define TEST_PIN "123456" /* TEST PIN, see fixtures/make-test-pki */

enum src { SRC_FILE, SRC_ENV, SRC_PROMPT };
static const char *const src_name[] = { "--pin-file", "--pin-env", "--pin-prompt" };

typedef struct env {
	stu_ws *w;
	stu_sim *sim;
	char pin_file[4200], crl[4200];
} env;

static void
env_init(env *e)
{
	jigsim_config c;
	FILE *f;

	e->w = stu_ws_new(tu_pki);
	jigsim_config_init(&c);
	c.devices = 4;
	c.rma = 1; /* every provisioned device comes back once: rework has a device */
	e->sim = stu_sim_start(tu_pki, &c);
	snprintf(e->pin_file, sizeof(e->pin_file), "%s/operator.pin", e->w->dir);
	snprintf(e->crl, sizeof(e->crl), "%s/line.crl", e->w->dir);
	ck_assert_ptr_nonnull(f = fopen(e->pin_file, "w"));
	fputs(TEST_PIN "\n", f);
	ck_assert_int_eq(fclose(f), 0);
	ck_assert_int_eq(chmod(e->pin_file, 0600), 0);
	unsetenv("STATION_HSM_PIN");
}

static void
env_free(env *e)
{
	stu_sim_stop(e->sim);
	stu_ws_free(e->w);
}

/* Run `station ARGS... <PIN source>`; the output (stdout and stderr, or
 * the terminal's) in *out. */
static int
run_with(enum src s, const env *e, const char *const *args, char **out)
{
	char *argv[40];
	size_t n = 0;

	argv[n++] = (char *)tu_station_exe();
	for (; *args && n < 36; args++)
		argv[n++] = (char *)*args;
	argv[n++] = (char *)src_name[s];
	if (s == SRC_FILE)
		argv[n++] = (char *)e->pin_file;
	if (s == SRC_ENV)
		argv[n++] = (char *)"LINE_A_HSM_PIN";
	argv[n] = NULL;
	if (s == SRC_ENV)
		setenv("LINE_A_HSM_PIN", TEST_PIN, 1); /* the child wipes and unsets its copy */
	if (s == SRC_PROMPT) {
		int rc = tu_run_pty(argv, TEST_PIN, out);

		ck_assert_msg(strstr(*out, "User PIN for token \"station-test\": "), "%s: no prompt:\n%s", argv[1],
		    stu_tail(*out));
		ck_assert_msg(!strstr(*out, TEST_PIN), "%s: the PIN was echoed:\n%s", argv[1], stu_tail(*out));
		return rc;
	}
	return tu_run(argv, out);
}

static void
ok_with(enum src s, const env *e, const char *const *args)
{
	char *out = NULL;
	int rc = run_with(s, e, args, &out);

	ck_assert_msg(rc == 0, "station %s %s ... %s: exit %d\n%s", args[0], args[1], src_name[s], rc, stu_tail(out));
	free(out);
}

/* The factory path, rework, revocation, CRL, seal, recipe signature and
 * the HSM check, each with one PIN source. */
static void
every_command(enum src s)
{
	env e;
	jigsim_device_info info;
	char *out = NULL;

	env_init(&e);
	{
		const char *run[] = { "run", "--recipe", e.w->recipe, "--jig", e.sim->uri, "--count", "1", "--operator", "pin",
			"--json", NULL };
		char authz[4200];
		const char *rework[] = { "rework", "--recipe", e.w->recipe, "--jig", e.sim->uri, "--authorization", authz,
			"--json", NULL };
		int rc;

		ok_with(s, &e, run);
		ck_assert_int_eq(jigsim_device_get(e.sim->s, 1, &info), 0);
		ck_assert_int_eq(info.lifecycle, JIG_LC_PROVISIONED);
		/* The authorizer's own token and PIN: independent of the station's PIN source. */
		snprintf(authz, sizeof(authz), "%s/authz.der", e.w->dir);
		rc = tu_station(&out, "authorize", "rework", "--token", "station-authorizer", "--key-label", "authorizer",
		    "--pin-env", "STATION_AUTHORIZER_PIN", "--se", info.serial, "--reason", "pin test", "--expires", "1h",
		    "--out", authz, NULL);
		ck_assert_msg(rc == 0, "station authorize rework: %s", out);
		free(out);
		out = NULL;
		ok_with(s, &e, rework);
	}
	{
		const char *revoke[] = { "revoke", "--recipe", e.w->recipe, "--device", info.serial, "--reason",
			"keyCompromise", NULL };
		const char *crl[] = { "crl", "--recipe", e.w->recipe, "--out", e.crl, NULL };
		const char *seal[] = { "audit", "seal", "--recipe", e.w->recipe, NULL };
		const char *sign[] = { "recipe", "sign", e.w->recipe, "--key-label", "engineering", NULL };
		const char *check[] = { "hsm", "check", "--recipe", e.w->recipe, NULL };

		ok_with(s, &e, revoke);
		ok_with(s, &e, crl);
		ok_with(s, &e, seal);
		ok_with(s, &e, sign);
		ok_with(s, &e, check);
	}
	stu_audit_verify(e.w);
	/* And without a source the default variable is unset: a clear error. */
	ck_assert_int_eq(tu_station(&out, "hsm", "check", "--recipe", e.w->recipe, NULL), 2);
	ck_assert_msg(strstr(out, "STATION_HSM_PIN is not set"), "%s", out);
	free(out);
	env_free(&e);
}

START_TEST(test_pin_file_everywhere)
{
	every_command(SRC_FILE);
}
END_TEST

START_TEST(test_pin_env_everywhere)
{
	every_command(SRC_ENV);
}
END_TEST

START_TEST(test_pin_prompt_everywhere)
{
	every_command(SRC_PROMPT);
}
END_TEST

/* Two sources are refused by every command before it touches the HSM;
 * --help shows the three. */
START_TEST(test_one_source_only)
{
	static const char *const cmds[][3] = {
		{ "run", NULL, NULL }, { "rework", NULL, NULL }, { "revoke", NULL, NULL }, { "crl", NULL, NULL },
		{ "audit", "seal", NULL }, { "recipe", "sign", NULL }, { "hsm", "check", NULL },
	};
	size_t i;

	for (i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		char *argv[8], *out = NULL;
		size_t n = 0;
		int rc;

		argv[n++] = (char *)tu_station_exe();
		argv[n++] = (char *)cmds[i][0];
		if (cmds[i][1])
			argv[n++] = (char *)cmds[i][1];
		argv[n++] = (char *)"--pin-env";
		argv[n++] = (char *)"A";
		argv[n++] = (char *)"--pin-prompt";
		argv[n] = NULL;
		rc = tu_run(argv, &out);
		ck_assert_msg(rc == 2 && strstr(out, "give at most one of --pin-env, --pin-file, --pin-prompt"),
		    "station %s: exit %d: %s", cmds[i][0], rc, out);
		free(out);
		argv[n - 3] = (char *)"--help";
		argv[n - 2] = NULL;
		rc = tu_run(argv, &out);
		ck_assert_msg(rc == 0 && strstr(out, "--pin-env NAME") && strstr(out, "--pin-file PATH") &&
		    strstr(out, "--pin-prompt"), "station %s --help: exit %d: %s", cmds[i][0], rc, out);
		free(out);
	}
}
END_TEST

/* The recipe's `pin: prompt`: station run asks on the terminal; a flag
 * still overrides it; without a terminal the error says what to do. */
START_TEST(test_recipe_pin_prompt)
{
	env e;
	char *out = NULL;
	int rc;

	env_init(&e);
	stu_recipe_edit(e.w, "  pin:\n    env: STATION_HSM_PIN\n", "  pin: prompt\n");
	{
		char *argv[] = { (char *)tu_station_exe(), (char *)"run", (char *)"--recipe", e.w->recipe, (char *)"--jig",
			e.sim->uri, (char *)"--count", (char *)"1", (char *)"--json", NULL };

		rc = tu_run_pty(argv, TEST_PIN, &out);
		ck_assert_msg(rc == 0, "exit %d:\n%s", rc, stu_tail(out));
		ck_assert_msg(strstr(out, "User PIN for token \"station-test\": ") && strstr(out, "\"event\":\"passed\""),
		    "%s", stu_tail(out));
		ck_assert_msg(!strstr(out, TEST_PIN), "PIN echoed:\n%s", stu_tail(out));
		free(out);
	}
	rc = tu_station(&out, "recipe", "check", e.w->recipe, NULL);
	ck_assert_msg(rc == 0 && strstr(out, "PIN from the terminal"), "exit %d: %s", rc, out);
	free(out);
	/* No terminal (setsid: none to open), no flag: refused, saying what to use instead. */
	{
		char *argv[] = { (char *)"setsid", (char *)"-w", (char *)tu_station_exe(), (char *)"hsm", (char *)"check",
			(char *)"--recipe", e.w->recipe, NULL };

		rc = tu_run(argv, &out);
		ck_assert_msg(rc == 2 && strstr(out, "no terminal to ask for the PIN of token \"station-test\"") &&
		    strstr(out, "--pin-file"), "exit %d: %s", rc, out);
		free(out);
	}
	{
		const char *check[] = { "hsm", "check", "--recipe", e.w->recipe, NULL };

		ok_with(SRC_FILE, &e, check);
	}
	env_free(&e);
}
END_TEST

static Suite *
suite(void)
{
	TCase *tc;
	Suite *s = tu_pki_suite("station-pin", "pin", 120, &tc);

	tcase_add_test(tc, test_pin_file_everywhere);
	tcase_add_test(tc, test_pin_env_everywhere);
	tcase_add_test(tc, test_pin_prompt_everywhere);
	tcase_add_test(tc, test_one_source_only);
	tcase_add_test(tc, test_recipe_pin_prompt);
	return s;
}

int
main(void)
{
	signal(SIGPIPE, SIG_IGN);
	return tu_run_suite(suite());
}
