/* A jig on a USB-serial adapter under umockdev: libserialport lists and opens
 * /dev/ttyUSB0 (a pty whose modem-control ioctls the test answers), jigsim
 * serves the other end; `station jig list|info` over it, the line settings
 * the station applies, configuration errors, stale input and garbage on
 * the line; the line rate protocol 1.1 negotiates (SET_BAUD). */
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
	ck_assert_uint_eq(st.responses, 4);  /* HELLO, DUT_STATUS, SE_INFO, VENDOR_CHAIN (1.2) */
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

/* ---- the line rate (issue 17 item 3, PROTOCOL.md section 8) ---------------------
 *
 * These tests put a jigsim with an emulated line (`baud`) on the pty, so the
 * bed passes bytes only while both ends run at one rate (usbbed.h): a station
 * end left at the wrong rate loses the conversation. */

#define CONFIRM_MS 500             /* ENG_BAUD_CONFIRM_MS: what the station asks for */
#define DUT_STATUS_TIMEOUT_MS 2000 /* the demo recipe's default timeout */

/* Replace the fixture's line with a jigsim starting at `baud` whose HELLO
 * lists rates[0..n), failing every switch when `fail`. */
static void
rate_line(unsigned baud, const uint32_t *rates, unsigned n, int fail)
{
	jigsim_config c;

	bed_teardown();
	jigsim_config_init(&c);
	c.id = 7;
	c.devices = 2;
	c.baud = baud;
	c.nrates = n;
	memcpy(c.rates, rates, n * sizeof(rates[0]));
	c.baud_fail = fail;
	bed = ub_bed_new();
	sim = ub_sim_new(tu_pki, &c);
	line = ub_serial_add(bed, sim);
}

static unsigned
count_of(const char *hay, const char *needle)
{
	unsigned n = 0;

	for (; (hay = strstr(hay, needle)); hay += strlen(needle))
		n++;
	return n;
}

/* Two devices at URI's rate; both pass, no byte ever crossed between ends
 * at different rates. */
static void
run_two(const char *uri, stu_run *r, ub_serial_stats *st)
{
	stu_ws *w = stu_ws_new(tu_pki);

	stu_station_run(w, uri, 2, 1, r);
	ck_assert_msg(r->status == 0 && stu_event_count(r, "passed") == 2, "station run: exit %d\n%s\n%s", r->status,
	    stu_tail(r->out), stu_tail(r->err));
	ck_assert_uint_eq(jigsim_released(sim), 2);
	stu_ws_free(w);
	ub_serial_get_stats(line, st);
	ck_assert_msg(st->garbled_in == 0 && st->garbled_out == 0, "%u bytes and %u answers crossed at the wrong rate",
	    st->garbled_in, st->garbled_out);
}

/* (a) The station moves both ends to the highest rate HELLO lists and the
 * conversation goes on there: every answer after SET_BAUD's own went at
 * 921600, the pty's termios says 921600 at the end, and nothing is noted. */
START_TEST(test_baud_switch)
{
	static const uint32_t rates[] = { 115200, 460800, 921600 };
	ub_serial_stats st;
	unsigned baud = 0;
	int rtscts = -1, is_8n1 = 0;
	stu_run r;

	rate_line(115200, rates, 3, 0);
	run_two(URI, &r, &st);
	ck_assert_uint_eq(st.requests[JIG_CMD_SET_BAUD], 1);
	ck_assert_uint_eq(st.nchanges, 2); /* the open at 115200, the switch */
	ck_assert_uint_eq(st.changes[0].baud, 115200);
	ck_assert_uint_eq(st.changes[1].baud, 921600);
	/* at 115200: HELLO and SET_BAUD; then the confirmation and both devices */
	ck_assert_uint_eq(ub_serial_responses_at(&st, 115200), 2);
	ck_assert_uint_ge(ub_serial_responses_at(&st, 921600), 1 + 2 * 8);
	ck_assert_uint_eq(st.fallback_ms, 0);
	ub_serial_termios(line, &baud, &rtscts, &is_8n1);
	ck_assert_uint_eq(baud, 921600);
	ck_assert(is_8n1);
	ck_assert_uint_eq(jigsim_line_baud(sim), 921600);
	ck_assert_msg(!strstr(r.out, "SET_BAUD"), "a note about a switch that worked\n%s", stu_tail(r.out));
	stu_run_clear(&r);
}
END_TEST

/* (b) A jig that takes SET_BAUD and then never hears a frame at the new
 * rate: the station goes back to 115200 after half the window, waits the
 * jig's window out, and the conversation is back at 115200 within
 * confirm_ms plus one timeout (asserted with a margin for a loaded
 * machine: a bound on the behaviour, not a performance figure).  The
 * operator is told once; both devices pass at 115200. */
START_TEST(test_baud_no_answer_at_new_rate)
{
	static const uint32_t rates[] = { 115200, 921600 };
	ub_serial_stats st;
	unsigned baud = 0, reverted_ms;
	int rtscts = -1, is_8n1 = 0;
	stu_run r;

	rate_line(115200, rates, 2, 1);
	run_two(URI, &r, &st);
	ck_assert_uint_eq(st.requests[JIG_CMD_SET_BAUD], 1);
	ck_assert_uint_eq(st.nchanges, 3);
	ck_assert_uint_eq(st.changes[0].baud, 115200);
	ck_assert_uint_eq(st.changes[1].baud, 921600);
	ck_assert_uint_eq(st.changes[2].baud, 115200);
	reverted_ms = (unsigned)(st.changes[2].ms - st.changes[1].ms);
	ck_assert_msg(reverted_ms >= CONFIRM_MS / 2 && reverted_ms <= CONFIRM_MS + 500,
	    "the station's end went back after %u ms (it waits confirm_ms / 2 = %d ms for the answer)", reverted_ms,
	    CONFIRM_MS / 2);
	ck_assert_msg(st.fallback_ms >= CONFIRM_MS && st.fallback_ms <= CONFIRM_MS + DUT_STATUS_TIMEOUT_MS + 1000,
	    "the failed switch took %u ms from the SET_BAUD answer to an answer at 115200 (bound: confirm_ms %d + one "
	    "timeout %d)", (unsigned)st.fallback_ms, CONFIRM_MS, DUT_STATUS_TIMEOUT_MS);
	printf("# failed switch: station end back after %u ms, conversation back at 115200 after %u ms\n", reverted_ms,
	    (unsigned)st.fallback_ms);
	ck_assert_uint_eq(ub_serial_responses_at(&st, 921600), 0);
	ck_assert_uint_ge(ub_serial_responses_at(&st, 115200), 3 + 2 * 8);
	ub_serial_termios(line, &baud, &rtscts, &is_8n1);
	ck_assert_uint_eq(baud, 115200);
	ck_assert_uint_eq(jigsim_line_baud(sim), 115200);
	ck_assert_msg(count_of(r.out, "SET_BAUD") == 1 && strstr(r.out, "no answer at 921600 baud within 250 ms") &&
	        strstr(r.out, "both ends are back at the old rate"),
	    "the failed switch was not noted exactly once\n%s", stu_tail(r.out));
	stu_run_clear(&r);
}
END_TEST

/* (c) A jig that answers SET_BAUD with BAD_REQUEST (its HELLO listed
 * 460800, its firmware refuses it): nothing changes, the operator reads
 * the jig's reason once, both devices pass at 115200. */
START_TEST(test_baud_refused)
{
	static const uint32_t rates[] = { 115200, 921600 }, claimed[] = { 115200, 230400, 460800 };
	ub_serial_stats st;
	stu_run r;

	rate_line(115200, rates, 2, 0);
	ub_serial_hello_rates(line, claimed, 3);
	run_two(URI, &r, &st);
	ck_assert_uint_eq(st.requests[JIG_CMD_SET_BAUD], 1);
	ck_assert_uint_eq(st.nchanges, 1); /* the open: never another rate */
	ck_assert_uint_eq(st.changes[0].baud, 115200);
	ck_assert_uint_eq(ub_serial_responses_at(&st, 921600), 0);
	ck_assert_uint_eq(jigsim_line_baud(sim), 115200);
	ck_assert_msg(count_of(r.out, "SET_BAUD") == 1 &&
	        strstr(r.out, "SET_BAUD: the jig refused: BAD_REQUEST: 460800 baud is not a rate this jig lists"),
	    "the refusal was not noted exactly once\n%s", stu_tail(r.out));
	stu_run_clear(&r);
}
END_TEST

/* (c) A HELLO whose list breaks PROTOCOL.md section 4 (a rate outside the
 * standard ones, a list that does not ascend, more than eight) is a
 * malformed answer: the station talks no further to that jig, sends no
 * SET_BAUD, leaves its line alone, and says which rate is wrong and why. */
START_TEST(test_baud_bad_hello)
{
	static const struct {
		uint32_t rates[16];
		int n;
		const char *want;
	} cases[] = {
		{ { 115200, 250000 }, 2, "HELLO: malformed reply: HELLO response: rate 2: 250000 baud is not a standard rate" },
		{ { 921600, 115200 }, 2,
		    "HELLO: malformed reply: HELLO response: rate 2: 115200 baud after 921600: the list must ascend" },
		{ { 9600, 19200, 38400, 57600, 115200, 230400, 460800, 500000, 921600 }, 9,
		    "HELLO: malformed reply: HELLO response: rate count: 9, at most 8" },
	};
	static const uint32_t rates[] = { 115200, 921600 };
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		stu_ws *w = stu_ws_new(tu_pki);
		ub_serial_stats st;
		stu_run r;

		rate_line(115200, rates, 2, 0);
		ub_serial_hello_rates(line, cases[i].rates, cases[i].n);
		stu_station_run(w, URI, 1, 0, &r);
		ck_assert_msg(r.status == 2, "case %zu: exit %d\n%s\n%s", i, r.status, stu_tail(r.out), stu_tail(r.err));
		ck_assert_msg(strstr(r.err, cases[i].want) &&
		        strstr(r.err, "the jig answers but breaks the jig protocol: update its firmware"),
		    "case %zu: want \"%s\"\n%s", i, cases[i].want, stu_tail(r.err));
		ub_serial_get_stats(line, &st);
		ck_assert_uint_eq(st.requests[JIG_CMD_SET_BAUD], 0);
		ck_assert_uint_eq(st.requests[JIG_CMD_SE_INFO], 0);
		ck_assert_uint_eq(st.nchanges, 1);
		ck_assert_uint_eq(jigsim_released(sim), 0);
		stu_run_clear(&r);
		stu_ws_free(w);
	}
}
END_TEST

/* A line already faster than anything HELLO lists is not slowed down:
 * "the highest common rate" is the line's own, no SET_BAUD is sent. */
START_TEST(test_baud_no_downgrade)
{
	static const uint32_t rates[] = { 115200, 460800 };
	ub_serial_stats st;
	unsigned baud = 0;
	int rtscts = -1, is_8n1 = 0;
	stu_run r;

	rate_line(921600, rates, 2, 0);
	run_two("serial:/dev/ttyUSB0?baud=921600", &r, &st);
	ck_assert_uint_eq(st.requests[JIG_CMD_SET_BAUD], 0);
	ck_assert_uint_eq(st.nchanges, 1);
	ck_assert_uint_eq(st.changes[0].baud, 921600);
	ub_serial_termios(line, &baud, &rtscts, &is_8n1);
	ck_assert_uint_eq(baud, 921600);
	ck_assert_msg(!strstr(r.out, "SET_BAUD"), "%s", stu_tail(r.out));
	stu_run_clear(&r);
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
	tcase_add_test(tc, test_baud_switch);
	tcase_add_test(tc, test_baud_no_answer_at_new_rate);
	tcase_add_test(tc, test_baud_refused);
	tcase_add_test(tc, test_baud_bad_hello);
	tcase_add_test(tc, test_baud_no_downgrade);
	return s;
}

int
main(void)
{
	return tu_run_suite(suite());
}
