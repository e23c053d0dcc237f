/* A jig on a USB-serial adapter under umockdev: libserialport lists and opens
 * /dev/ttyUSB0 (a pty whose modem-control ioctls the test answers), jigsim
 * serves the other end; `station jig list|info` over it, the line settings
 * the station applies, configuration errors, stale input and garbage on
 * the line. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "jig.h"
#include "stutil.h"
#include "testutil.h"
#include "usbbed.h"

#define URI "serial:/dev/ttyUSB0?baud=115200"

static ub_bed *bed; /* a fresh testbed per test (checked fixture) */
static jigsim *sim;
static ub_serial *line;

static void
bed_setup(void)
{
	bed = ub_bed_new();
	sim = ub_sim(7, 5, 0, 0); /* a panel of five for the provisioning runs */
	line = ub_serial_add(bed, sim);
}

static void
bed_teardown(void)
{
	ub_bed_free(bed); /* stops the line first */
	jigsim_free(sim);
}

static const char *
se_serial(void)
{
	static jigsim_device_info info;

	ck_assert_int_eq(jigsim_device_get(sim, 0, &info), 0);
	return info.serial;
}

START_TEST(test_list)
{
	jig_port_info *v = NULL;
	json_t *root, *ser, *e;
	json_error_t jerr;
	size_t n = 0;
	char *out = NULL;
	st_err err;
	int rc;

	ck_assert_msg(jig_serial_list(&v, &n, &err) == 0, "%s", err.msg);
	ck_assert_uint_eq(n, 1);
	ck_assert_str_eq(v[0].uri, URI);
	ck_assert_uint_eq(v[0].vid, 0x0403);
	ck_assert_uint_eq(v[0].pid, 0x6001);
	ck_assert_int_eq(v[0].bus, 1);
	ck_assert_str_eq(v[0].serial, "A10KZ3Q1");
	ub_assert_has(v[0].description, "FT232R USB UART");
	free(v);

	rc = tu_station(&out, "jig", "list", NULL);
	ck_assert_msg(rc == 0, "exit %d: %s", rc, out);
	ub_assert_has(out, "serial  " URI);
	ub_assert_has(out, "0403:6001 A10KZ3Q1");
	ck_assert_msg(!strstr(out, "usb:0403"), "the adapter listed as a USB jig:\n%s", out);
	free(out);

	rc = tu_station(&out, "jig", "list", "--json", NULL);
	ck_assert_msg(rc == 0, "exit %d: %s", rc, out);
	root = json_loads(out, 0, &jerr);
	ck_assert_msg(root != NULL, "not JSON (%s): %s", jerr.text, out);
	ck_assert_uint_eq(json_array_size(json_object_get(root, "usb")), 0);
	ser = json_object_get(root, "serial");
	ck_assert_uint_eq(json_array_size(ser), 1);
	e = json_array_get(ser, 0);
	ck_assert_str_eq(json_string_value(json_object_get(e, "uri")), URI);
	ck_assert_str_eq(json_string_value(json_object_get(e, "vid")), "0403");
	ck_assert_str_eq(json_string_value(json_object_get(e, "pid")), "6001");
	ck_assert_str_eq(json_string_value(json_object_get(e, "serial")), "A10KZ3Q1");
	json_decref(root);
	free(out);
}
END_TEST

START_TEST(test_info)
{
	ub_serial_stats st;
	char *out = NULL, want[128];
	unsigned baud = 0;
	int rc, rtscts = -1, is_8n1 = 0;

	rc = tu_station(&out, "jig", "info", "--jig", URI, NULL);
	ck_assert_msg(rc == 0, "exit %d: %s", rc, out);
	ub_assert_has(out, "jig id        jigsim-7");
	snprintf(want, sizeof(want), "SE serial     %s", se_serial());
	ub_assert_has(out, want);
	free(out);

	ub_serial_get_stats(line, &st);
	ck_assert_uint_gt(st.tiocm, 0);      /* libserialport asked for the modem lines */
	ck_assert_uint_eq(st.responses, 3);  /* HELLO, DUT_STATUS, SE_INFO */
	ck_assert_uint_eq(st.repeats, 0);
	ub_serial_termios(line, &baud, &rtscts, &is_8n1);
	ck_assert_uint_eq(baud, 115200);
	ck_assert_int_eq(rtscts, 0);
	ck_assert(is_8n1);
}
END_TEST

/* A line with several adapters names each by udev's stable link (ttyUSB
 * numbers follow the plugging order), and that must open like the tty. */
START_TEST(test_stable_name)
{
	char *out = NULL;
	int rc;

	rc = tu_station(&out, "jig", "info", "--jig", "serial:/dev/" UB_SERIAL_BY_ID "?baud=115200", NULL);
	ck_assert_msg(rc == 0, "exit %d: %s", rc, out);
	ub_assert_has(out, "jig id        jigsim-7");
	free(out);
}
END_TEST

/* What the URI says is what the line gets, flow control included: set
 * explicitly each time, never left over from the last user of the port. */
START_TEST(test_line_settings)
{
	char *out = NULL;
	unsigned baud = 0;
	int rc, rtscts = -1, is_8n1 = 0;

	rc = tu_station(&out, "jig", "info", "--jig", "serial:/dev/ttyUSB0?baud=9600&flow=rtscts", NULL);
	ck_assert_msg(rc == 0, "exit %d: %s", rc, out);
	free(out);
	ub_serial_termios(line, &baud, &rtscts, &is_8n1);
	ck_assert_uint_eq(baud, 9600);
	ck_assert_int_eq(rtscts, 1);
	ck_assert(is_8n1);

	rc = tu_station(&out, "jig", "info", "--jig", "serial:/dev/ttyUSB0?baud=57600", NULL);
	ck_assert_msg(rc == 0, "exit %d: %s", rc, out);
	free(out);
	ub_serial_termios(line, &baud, &rtscts, &is_8n1);
	ck_assert_uint_eq(baud, 57600);
	ck_assert_int_eq(rtscts, 0);
	ck_assert(is_8n1);
}
END_TEST

START_TEST(test_config_errors)
{
	static const struct {
		const char *uri;
		int rc;
		const char *want;
	} cases[] = {
		{ "serial:/dev/ttyUSB0?baud=abc", 2, "baud \"abc\" is not a baud rate (1..4000000)" },
		{ "serial:/dev/ttyUSB0?baud=0", 2, "baud \"0\" is not a baud rate" },
		{ "serial:/dev/ttyUSB0?flow=xon", 2, "flow \"xon\": expected none or rtscts" },
		{ "serial:/dev/ttyUSB0?baud=115200&parity=even", 2, "unknown option \"parity\" (serial takes baud, flow)" },
		{ "serial:/dev/ttyUSB0?baud", 2, "option \"baud\" has no value" },
		{ "serial:/dev/ttyUSB9?baud=115200", 1, "serial port /dev/ttyUSB9" },
	};
	ub_serial_stats st;
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *out = NULL;
		int rc = tu_station(&out, "jig", "info", "--jig", cases[i].uri, NULL);

		ck_assert_msg(rc == cases[i].rc, "%s: exit %d, want %d: %s", cases[i].uri, rc, cases[i].rc, out);
		ub_assert_has(out, cases[i].want);
		ub_assert_has(out, cases[i].rc == 2 ? cases[i].uri : "station jig list");
		free(out);
	}
	ub_serial_get_stats(line, &st);
	ck_assert_uint_eq(st.responses, 0); /* nothing reached the jig */
}
END_TEST

/* Bytes that were on the line before the station opened it are not an
 * answer.  The station's first seq is random, so the line holds a stale
 * HELLO response for every seq, each malformed (no payload): taken as the
 * answer, it would fail the command.  The station flushes its input on open. */
START_TEST(test_stale_input_flushed)
{
	static uint8_t raw[256 * (JIG_HEADER_LEN + JIG_CRC_LEN)];
	static jig_frame f;
	size_t off = 0, len = 0;
	char *out = NULL;
	st_err err;
	int seq, rc;

	for (seq = 0; seq < 256; seq++) {
		f.version = 1;
		f.type = JIG_CMD_HELLO | JIG_RESPONSE;
		f.seq = (uint8_t)seq;
		f.len = 0;
		ck_assert_int_eq(jig_frame_encode(&f, raw + off, sizeof(raw) - off, &len, &err), 0);
		off += len;
	}
	ub_serial_inject(line, raw, off);

	rc = tu_station(&out, "jig", "info", "--jig", URI, NULL);
	ck_assert_msg(rc == 0, "exit %d (stale input taken as the answer?): %s", rc, out);
	ub_assert_has(out, "jig id        jigsim-7");
	free(out);
}
END_TEST

/* Garbage before every response: the station resynchronises on the next
 * SOF, and a bad-CRC frame costs a retransmission, answered from the jig's
 * cache without executing the command twice. */
START_TEST(test_resync_after_garbage)
{
	ub_serial_stats st;
	char *out = NULL, want[128];
	int i, rc;

	ub_serial_junk(line, 1);
	for (i = 0; i < 3; i++) {
		rc = tu_station(&out, "jig", "info", "--jig", URI, "--json", NULL);
		ck_assert_msg(rc == 0, "exit %d: %s", rc, out);
		snprintf(want, sizeof(want), "\"serial\":\"%s\"", se_serial());
		ub_assert_has(out, want);
		free(out);
	}
	ub_serial_get_stats(line, &st);
	ck_assert_uint_ge(st.junk_light, 9);
	ck_assert_uint_ge(st.junk_heavy, 1);
	ck_assert_uint_ge(st.repeats, 1); /* the bad frame was taken for a corrupt reply */
}
END_TEST

/* Five devices over the serial line with the demo recipe; with `junk`,
 * garbage before every response.  Every device passes with the certificate
 * its SE holds, each SE generated one key (a retransmission is answered from
 * the jig's cache, never executed twice), the journal verifies. */
static void
run_five(int junk)
{
	stu_ws *w = stu_ws_new(tu_pki);
	char **paths = NULL;
	size_t npaths = 0;
	ub_serial_stats st;
	stu_journal j;
	stu_run r;
	unsigned i;

	ub_serial_junk(line, junk);
	stu_station_run(w, URI, 5, 1, &r);
	ck_assert_msg(r.status == 0, "station run: exit %d\n%s\n%s", r.status, stu_tail(r.out), stu_tail(r.err));
	ck_assert_uint_eq(stu_event_count(&r, "passed"), 5);
	ck_assert_uint_eq(stu_event_count(&r, "failed"), 0);
	ck_assert_uint_eq(jigsim_released(sim), 5);
	stu_journal_load(w->audit, &j);
	for (i = 1; i <= 5; i++) {
		jigsim_device_info info;

		ck_assert_int_eq(jigsim_device_get(sim, i, &info), 0);
		ck_assert_uint_eq(info.keygens, 1);
		ck_assert_msg(stu_event(&r, "passed", info.serial) != NULL, "no passed event for %s", info.serial);
		stu_check_device_cert(w, sim, i, &paths, &npaths);
	}
	ck_assert_uint_eq(j.n, 5);
	stu_journal_check_live(&j);
	stu_openssl_verify(w, paths, npaths);
	stu_audit_verify(w);

	ub_serial_get_stats(line, &st);
	ck_assert_uint_ge(st.tiocm, 1);
	if (junk) {
		ck_assert_uint_ge(st.junk_light, 5 * 8);
		ck_assert_uint_ge(st.junk_heavy, 5);
		ck_assert_uint_ge(st.repeats, 1); /* a bad frame cost a retransmission, and no second KEYGEN */
	}
	for (i = 0; i < npaths; i++)
		free(paths[i]);
	free(paths);
	stu_journal_clear(&j);
	stu_run_clear(&r);
	stu_ws_free(w);
}

START_TEST(test_run_five)
{
	run_five(0);
}
END_TEST

START_TEST(test_run_five_with_garbage)
{
	run_five(1);
}
END_TEST

/* A line setting the URI cannot mean is a configuration error (exit 2)
 * before anything else happens. */
START_TEST(test_run_config_error)
{
	stu_ws *w = stu_ws_new(tu_pki);
	stu_run r;

	stu_station_run(w, "serial:/dev/ttyUSB0?baud=115200&flow=xon", 1, 0, &r);
	ck_assert_msg(r.status == 2, "station run: exit %d\n%s\n%s", r.status, stu_tail(r.out), stu_tail(r.err));
	ub_assert_has(r.err, "flow \"xon\": expected none or rtscts");
	ck_assert_uint_eq(jigsim_device_count(sim), 1); /* the jig never heard of it: no device moved */
	ck_assert_uint_eq(jigsim_released(sim), 0);
	stu_run_clear(&r);
	stu_ws_free(w);
}
END_TEST

static Suite *
suite(void)
{
	TCase *tc;
	Suite *s = tu_pki_suite("usb-serial", "serial", 60, &tc);

	tcase_add_checked_fixture(tc, bed_setup, bed_teardown);
	tcase_add_test(tc, test_list);
	tcase_add_test(tc, test_info);
	tcase_add_test(tc, test_stable_name);
	tcase_add_test(tc, test_line_settings);
	tcase_add_test(tc, test_config_errors);
	tcase_add_test(tc, test_stale_input_flushed);
	tcase_add_test(tc, test_resync_after_garbage);
	tcase_add_test(tc, test_run_five);
	tcase_add_test(tc, test_run_five_with_garbage);
	tcase_add_test(tc, test_run_config_error);
	return s;
}

int
main(void)
{
	return tu_run_suite(suite());
}
