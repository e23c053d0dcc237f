/* Strings from a lying jig (issue 13, items 6b and 7): every string is
 * validated when it is decoded (PROTOCOL.md section 4, "Strings"), a bad one
 * fails that jig's device and not the line, and no byte from a jig reaches
 * the station's output unescaped — not the serial, not an error text, not an
 * attestation certificate's subject; the serial and error cases also from
 * a liar that speaks 1.2. */
#include <stdlib.h>
#include <string.h>

#include "liar.h"
#include "rwutil.h"

static const struct scenario {
	const char *name;
	liar_lies lies;
	int honest;       /* an honest jigsim beside the liar, with 2 devices to provision */
	int json;
	int status;       /* expected exit status */
} cases[] = {
	{ "invalid UTF-8 serial beside an honest jig", { .raw_serial = "SE\xff\xfe" "01" }, 1, 1, 0 },
	{ "a forged PASS line in the serial", { .raw_serial = "SE01\r\033[2K\033]0;pwned\007PASS SEFAKE" }, 1, 0, 0 },
	{ "ESC and OSC in the attestation certificate's serialNumber",
	    { .attest_cert_serial = "SE\033[2K\r\033]0;t\007PASS SEFAKE" }, 0, 0, 1 },
	{ "ESC and CR in an error text", { .raw_error = "denied\033[2K\rPASS SEFAKE" }, 0, 0, 1 },
	{ "ESC and CR in an error text, --json", { .raw_error = "denied\033[2K\rPASS SEFAKE" }, 0, 1, 1 },
	/* The same from a liar that speaks 1.2 and passes the SE's own attestation on. */
	{ "1.2: invalid UTF-8 serial beside an honest jig", { .raw_serial = "SE\xff\xfe" "01", .relay = 1, .v12 = 1 }, 1,
	    1, 0 },
	{ "1.2: a forged PASS line in the serial",
	    { .raw_serial = "SE01\r\033[2K\033]0;pwned\007PASS SEFAKE", .relay = 1, .v12 = 1 }, 1, 0, 0 },
	{ "1.2: ESC and CR in an error text", { .raw_error = "denied\033[2K\rPASS SEFAKE", .relay = 1, .v12 = 1 }, 0, 0,
	    1 },
};

START_TEST(test_strings)
{
	const struct scenario *sc = &cases[_i];
	stu_ws *w = stu_ws_new(tu_pki);
	stu_sim *sim = rw_sim(tu_pki, 1, 0), *honest = NULL;
	const char *jigs[2];
	stu_run r;
	liar *l;

	l = liar_start(tu_pki, sim->s, &sc->lies);
	if (sc->honest) {
		jigsim_config c;

		jigsim_config_init(&c);
		c.devices = 2;
		honest = stu_sim_start(tu_pki, &c);
	}
	jigs[0] = l->uri;
	jigs[1] = honest ? honest->uri : NULL;
	stu_station_start_jigs(w, jigs, honest ? 2 : 1, honest ? 2 : 1, sc->json, &r);
	stu_station_wait(&r, 90);
	ck_assert_msg(r.status == sc->status, "%s: exit %d, expected %d\n%s\n%s", sc->name, r.status, sc->status,
	    stu_tail(r.out), stu_tail(r.err));
	liar_check_clean(r.out, "stdout", sc->name);
	liar_check_clean(r.err, "stderr", sc->name);
	if (honest) {
		jigsim_device_info a, b;

		ck_assert_int_eq(jigsim_device_get(honest->s, 1, &a), 0);
		ck_assert_int_eq(jigsim_device_get(honest->s, 2, &b), 0);
		ck_assert_msg(strstr(r.out, a.serial) && strstr(r.out, b.serial), "%s: the honest jig's devices did not pass\n%s",
		    sc->name, stu_tail(r.out));
		if (sc->json)
			ck_assert_msg(stu_event(&r, "passed", a.serial) && stu_event(&r, "passed", b.serial), "%s: no passes",
			    sc->name);
	}
	liar_test_end(w, &r, l, honest, sim);
}
END_TEST

int
main(void)
{
	TCase *tc;
	Suite *s = liar_suite("hostile-strings", "strings", 120, &tc);

	tcase_add_loop_test(tc, test_strings, 0, (int)(sizeof(cases) / sizeof(cases[0])));
	return tu_run_suite(s);
}
