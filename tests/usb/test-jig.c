/* USB jigs under umockdev: enumeration, `station jig list|info`, zero-length
 * packets, a jig that stops answering and one unplugged mid-command — all
 * through the real libusb calls of jig-protocol/transport-usb.c, in this
 * process and in `station` child processes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "jig.h"
#include "stutil.h"
#include "testutil.h"
#include "usbbed.h"

static ub_bed *bed; /* a fresh testbed per test (checked fixture) */
static jigsim *sim;

static void
bed_setup(void)
{
	bed = ub_bed_new();
	sim = ub_sim(7, 0, 0, 0);
}

static void
bed_teardown(void)
{
	ub_bed_free(bed);
	jigsim_free(sim);
}

static const char *
se_serial(jigsim *s)
{
	static jigsim_device_info info;

	ck_assert_int_eq(jigsim_device_get(s, 0, &info), 0);
	return info.serial;
}

START_TEST(test_enumerate_in_process)
{
	const uint16_t ids[] = { JIG_USB_VID, JIG_USB_PID, 0x1209, 0xbeef };
	jig_port_info *v = NULL;
	size_t n = 0;
	st_err err;

	ub_jig_add(bed, sim, "1-1.4", JIG_USB_VID, JIG_USB_PID, "JIG-A");
	ub_jig_add(bed, sim, "1-2", 0x1209, 0xbeef, "LINE7-B");

	/* The default identity only: the hub, the root hub, the FTDI adapter and
	 * the 1209:beef jig are left out. */
	ck_assert_int_eq(jig_usb_list(ids, 1, &v, &n, &err), 0);
	ck_assert_uint_eq(n, 1);
	ck_assert_str_eq(v[0].uri, "usb:1209:0001?serial=JIG-A");
	ck_assert_uint_eq(v[0].vid, 0x1209);
	ck_assert_uint_eq(v[0].pid, 0x0001);
	ck_assert_int_eq(v[0].bus, 1);
	ck_assert_str_eq(v[0].port_path, "1-1.4");
	ck_assert_str_eq(v[0].serial, "JIG-A");
	ck_assert_str_eq(v[0].description, "station test jig");
	free(v);

	/* A line's own VID:PID (from its recipe) as well. */
	ck_assert_int_eq(jig_usb_list(ids, 2, &v, &n, &err), 0);
	ck_assert_uint_eq(n, 2);
	ck_assert(strcmp(v[0].serial, "LINE7-B") == 0 || strcmp(v[1].serial, "LINE7-B") == 0);
	ck_assert(strcmp(v[0].port_path, "1-2") == 0 || strcmp(v[1].port_path, "1-2") == 0);
	free(v);
}
END_TEST

START_TEST(test_station_list)
{
	json_t *root, *usb, *ser, *e;
	json_error_t jerr;
	char *out = NULL;
	int rc;

	ub_jig_add(bed, sim, "1-1.4", JIG_USB_VID, JIG_USB_PID, "JIG-A");
	ub_jig_add(bed, sim, "1-2", 0x1209, 0xbeef, "LINE7-B");

	rc = tu_station(&out, "jig", "list", NULL);
	ck_assert_msg(rc == 0, "exit %d: %s", rc, out);
	ub_assert_has(out, "usb:1209:0001?serial=JIG-A");
	ub_assert_has(out, "1-1.4");
	ub_assert_has(out, "station test jig");
	ck_assert_msg(!strstr(out, "LINE7-B"), "a jig of another VID:PID listed without --usb:\n%s", out);
	ck_assert_msg(!strstr(out, "usb:0403"), "the serial adapter listed as a USB jig:\n%s", out);
	free(out);

	rc = tu_station(&out, "jig", "list", "--usb", "1209:beef", "--json", NULL);
	ck_assert_msg(rc == 0, "exit %d: %s", rc, out);
	root = json_loads(out, 0, &jerr);
	ck_assert_msg(root != NULL, "not JSON (%s): %s", jerr.text, out);
	usb = json_object_get(root, "usb");
	ser = json_object_get(root, "serial");
	ck_assert(json_is_array(usb) && json_is_array(ser));
	ck_assert_uint_eq(json_array_size(usb), 2);
	ck_assert_uint_eq(json_array_size(ser), 0);
	e = json_array_get(usb, 0);
	if (strcmp(json_string_value(json_object_get(e, "serial")), "JIG-A") != 0)
		e = json_array_get(usb, 1);
	ck_assert_str_eq(json_string_value(json_object_get(e, "uri")), "usb:1209:0001?serial=JIG-A");
	ck_assert_str_eq(json_string_value(json_object_get(e, "vid")), "1209");
	ck_assert_str_eq(json_string_value(json_object_get(e, "pid")), "0001");
	ck_assert_int_eq(json_integer_value(json_object_get(e, "bus")), 1);
	ck_assert_str_eq(json_string_value(json_object_get(e, "port")), "1-1.4");
	json_decref(root);
	free(out);
}
END_TEST

/* The recipe's usb: jig is a known identity too ("known or recipe VID:PIDs"). */
START_TEST(test_station_list_recipe)
{
	stu_ws *w = stu_ws_new(tu_pki);
	char *out = NULL;
	int rc;

	ub_jig_add(bed, sim, "1-2", 0x1209, 0xbeef, "LINE7-B");
	stu_recipe_edit(w, "uri: tcp:127.0.0.1:7700", "uri: usb:1209:beef?serial=LINE7-B");
	rc = tu_station(&out, "jig", "list", "--recipe", w->recipe, NULL);
	ck_assert_msg(rc == 0, "exit %d: %s", rc, out);
	ub_assert_has(out, "usb:1209:beef?serial=LINE7-B");
	free(out);
	rc = tu_station(&out, "jig", "list", "--recipe", "/nonexistent/recipe.yaml", NULL);
	ck_assert_msg(rc == 2, "exit %d: %s", rc, out);
	ub_assert_has(out, "station recipe check");
	free(out);
	stu_ws_free(w);
}
END_TEST

START_TEST(test_station_info)
{
	ub_jig *j = ub_jig_add(bed, sim, "1-1.4", JIG_USB_VID, JIG_USB_PID, "JIG-A");
	ub_jig_stats st;
	char *out = NULL, want[128];
	int rc;

	rc = tu_station(&out, "jig", "info", "--jig", "usb:1209:0001", NULL);
	ck_assert_msg(rc == 0, "exit %d: %s", rc, out);
	ub_assert_has(out, "jig id        jigsim-7");
	snprintf(want, sizeof(want), "SE serial     %s", se_serial(sim));
	ub_assert_has(out, want);
	ub_assert_has(out, "lifecycle     factory");
	free(out);

	ub_jig_get_stats(j, &st);
	ck_assert_uint_eq(st.requests[JIG_CMD_HELLO], 1);
	ck_assert_uint_eq(st.requests[JIG_CMD_DUT_STATUS], 1);
	ck_assert_uint_eq(st.requests[JIG_CMD_SE_INFO], 1);
	/* protocol 1.2: the attestation certificate is rebuilt against the chain */
	ck_assert_uint_eq(st.requests[JIG_CMD_VENDOR_CHAIN], 1);
	ck_assert_uint_ge(st.ctrl_urbs, 2); /* the serial string, read while looking for the jig */
	ck_assert_uint_eq(st.out_urbs, 4);
	ck_assert_uint_eq(st.in_urbs, 4);
	ck_assert_uint_eq(st.bad_urbs, 0);
	ck_assert_uint_eq(st.repeats[JIG_CMD_SE_INFO], 0);
	/* claimed with a kernel driver detached first, given back on close */
	ck_assert_uint_eq(st.detach_claims, 1);
	ck_assert_uint_eq(st.plain_claims, 0);
	ck_assert_uint_eq(st.releases, 1);
	ck_assert_uint_eq(st.reattaches, 1);
}
END_TEST

START_TEST(test_two_jigs_need_serial)
{
	jigsim *sim2 = ub_sim(8, 0, 0, 0);
	ub_jig *a = ub_jig_add(bed, sim, "1-1.4", JIG_USB_VID, JIG_USB_PID, "JIG-A");
	ub_jig_stats st;
	char *out = NULL;
	int rc;

	ub_jig_add(bed, sim2, "1-2", JIG_USB_VID, JIG_USB_PID, "JIG-B");

	rc = tu_station(&out, "jig", "info", "--jig", "usb:1209:0001", NULL);
	ck_assert_msg(rc == 2, "exit %d: %s", rc, out);
	ub_assert_has(out, "2 USB devices 1209:0001 match");
	ub_assert_has(out, "JIG-A (port 1-1.4)");
	ub_assert_has(out, "JIG-B (port 1-2)");
	ub_assert_has(out, "?serial=S");
	free(out);

	rc = tu_station(&out, "jig", "info", "--jig", "usb:1209:0001?serial=JIG-B", NULL);
	ck_assert_msg(rc == 0, "exit %d: %s", rc, out);
	ub_assert_has(out, "jig id        jigsim-8");
	free(out);
	ub_jig_get_stats(a, &st);
	ck_assert_uint_eq(st.out_urbs, 0); /* the other jig was never talked to */

	rc = tu_station(&out, "jig", "info", "--jig", "usb:1209:0001?serial=JIG-C", NULL);
	ck_assert_msg(rc == 1, "exit %d: %s", rc, out);
	ub_assert_has(out, "no USB device 1209:0001 with serial JIG-C is connected");
	ub_assert_has(out, "station jig list");
	free(out);
	jigsim_free(sim2);
}
END_TEST

/* A transfer that fills its last packet must end with a zero-length packet
 * (PROTOCOL.md section 10), or the jig waits for more.  Frames of exactly
 * 512 and 1024 bytes, sent in this process through libusb. */
START_TEST(test_zero_length_packet)
{
	ub_jig *j = ub_jig_add(bed, sim, "1-1.4", JIG_USB_VID, JIG_USB_PID, "JIG-A");
	static jig_msg req, resp;
	jig_transport *t = NULL;
	jig_client *c;
	ub_jig_stats st;
	st_err err;
	size_t sizes[] = { 512, 1024, 700 }, i;

	ck_assert_msg(jig_transport_open("usb:1209:0001", &t, &err) == 0, "%s", err.msg);
	ck_assert_ptr_nonnull(c = jig_client_new(t));
	jig_client_set_timeout(c, 0, 3000);
	jig_client_set_retries(c, 0);
	ck_assert_msg(jig_client_hello(c, &resp, &err) == 0, "%s", err.msg);
	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		/* frame = 6 header + 2 length + signature + 4 CRC */
		memset(&req, 0, sizeof(req));
		req.type = JIG_CMD_AUTH_RESPONSE;
		req.u.signature.len = sizes[i] - 12;
		memset(req.u.signature.data, 0x30, req.u.signature.len);
		ck_assert_int_eq(jig_client_call(c, &req, &resp, &err), -1);
		/* not a signature over the challenge: the jig refuses it, but it got it whole */
		ck_assert_msg(err.code == ST_E_REMOTE, "frame of %zu bytes: %s", sizes[i], err.msg);
	}
	jig_client_free(c);

	ub_jig_get_stats(j, &st);
	ck_assert_uint_eq(st.zlps, 2);
	ck_assert_uint_eq(st.requests[JIG_CMD_AUTH_RESPONSE], 3);
	ck_assert_uint_eq(st.repeats[JIG_CMD_AUTH_RESPONSE], 0);
}
END_TEST

START_TEST(test_timeout)
{
	ub_jig *j = ub_jig_add(bed, sim, "1-1.4", JIG_USB_VID, JIG_USB_PID, "JIG-A");
	ub_jig_stats st;
	char *out = NULL;
	int rc;

	ub_jig_mute_at(j, JIG_CMD_SE_INFO);
	rc = tu_station(&out, "jig", "info", "--jig", "usb:1209:0001", "--timeout", "700", NULL);
	ck_assert_msg(rc == 1, "exit %d: %s", rc, out);
	ub_assert_has(out, "jig usb:1209:0001: SE_INFO: no answer after 700 ms (2 retries)");
	ub_assert_has(out, "check that the jig is powered and connected");
	free(out);

	ub_jig_get_stats(j, &st);
	ck_assert_uint_eq(st.requests[JIG_CMD_SE_INFO], 3);
	ck_assert_uint_eq(st.repeats[JIG_CMD_SE_INFO], 2); /* retransmitted byte for byte */
	ck_assert_uint_ge(st.discards, 3);    /* libusb cancelled each IN transfer at its timeout */
}
END_TEST

START_TEST(test_unplug_mid_command)
{
	ub_jig *j = ub_jig_add(bed, sim, "1-1.4", JIG_USB_VID, JIG_USB_PID, "JIG-A");
	ub_jig_stats st;
	char *out = NULL, serial[JIG_STR_MAX + 1], want[128];
	uint64_t t0;
	int rc;

	snprintf(serial, sizeof(serial), "%s", se_serial(sim));
	ub_jig_unplug_at(j, JIG_CMD_SE_INFO);
	t0 = st_now_ms();
	rc = tu_station(&out, "jig", "info", "--jig", "usb:1209:0001", "--timeout", "20000", NULL);
	ck_assert_msg(rc == 1, "exit %d: %s", rc, out);
	ub_assert_has(out, "jig usb:1209:0001: SE_INFO: bulk IN: the USB jig was unplugged (LIBUSB_ERROR_NO_DEVICE)");
	/* reported as a disconnect at once, not after the 20 s timeout */
	ck_assert_uint_lt(st_now_ms() - t0, 15000);
	free(out);
	ub_jig_get_stats(j, &st);
	ck_assert_uint_eq(st.unplugs, 1);
	ck_assert_uint_eq(st.requests[JIG_CMD_SE_INFO], 1);

	/* Gone from the bus: not listed, not found. */
	rc = tu_station(&out, "jig", "list", NULL);
	ck_assert_msg(rc == 0, "exit %d: %s", rc, out);
	ck_assert_msg(!strstr(out, "usb:1209:0001"), "an unplugged jig listed:\n%s", out);
	free(out);
	rc = tu_station(&out, "jig", "info", "--jig", "usb:1209:0001", NULL);
	ck_assert_msg(rc == 1, "exit %d: %s", rc, out);
	ub_assert_has(out, "no USB device 1209:0001 is connected");
	free(out);

	/* Plugged back in: the same device is still in the jig. */
	ub_jig_unplug_at(j, 0);
	ub_jig_replug(j);
	rc = tu_station(&out, "jig", "info", "--jig", "usb:1209:0001", NULL);
	ck_assert_msg(rc == 0, "exit %d: %s", rc, out);
	snprintf(want, sizeof(want), "SE serial     %s", serial);
	ub_assert_has(out, want);
	free(out);
}
END_TEST

/* Every device in `passed` (panel indexes) passed: the station's certificate
 * is what the SE holds, names its serial, the SE is locked, one key was
 * generated; one `openssl verify` for all; the journal verifies and no SE
 * has two live certificates. */
static void
check_passed(stu_ws *w, jigsim *s, const stu_run *r, const unsigned *passed, size_t n)
{
	char **paths = NULL;
	size_t npaths = 0, i;
	stu_journal j;

	stu_journal_load(w->audit, &j);
	for (i = 0; i < n; i++) {
		jigsim_device_info info;
		stu_ledger *l;

		ck_assert_int_eq(jigsim_device_get(s, passed[i], &info), 0);
		ck_assert_uint_eq(info.keygens, 1);
		ck_assert_msg(stu_event(r, "passed", info.serial) != NULL, "no passed event for %s", info.serial);
		stu_check_device_cert(w, s, passed[i], &paths, &npaths);
		ck_assert_ptr_nonnull(l = stu_journal_dev(&j, info.serial));
		ck_assert_uint_eq(l->passes, 1);
		ck_assert_uint_eq(stu_live(l), 1);
	}
	stu_journal_check_live(&j);
	stu_openssl_verify(w, paths, npaths);
	stu_audit_verify(w);
	for (i = 0; i < npaths; i++)
		free(paths[i]);
	free(paths);
	stu_journal_clear(&j);
}

/* Five devices provisioned over USB with the demo recipe. */
START_TEST(test_run_five)
{
	static const unsigned all[] = { 1, 2, 3, 4, 5 };
	jigsim *s = ub_sim(11, 5, 0, 0);
	ub_jig *jig = ub_jig_add(bed, s, "1-1.4", JIG_USB_VID, JIG_USB_PID, "JIG-A");
	stu_ws *w = stu_ws_new(tu_pki);
	ub_jig_stats st;
	stu_run r;

	stu_station_run(w, "usb:1209:0001?serial=JIG-A", 5, 1, &r);
	ck_assert_msg(r.status == 0, "station run: exit %d\n%s\n%s", r.status, stu_tail(r.out), stu_tail(r.err));
	ck_assert_uint_eq(stu_event_count(&r, "passed"), 5);
	ck_assert_uint_eq(stu_event_count(&r, "failed"), 0);
	ck_assert_uint_eq(jigsim_released(s), 5);
	check_passed(w, s, &r, all, 5);

	ub_jig_get_stats(jig, &st);
	ck_assert_uint_eq(st.requests[JIG_CMD_KEYGEN], 5);
	ck_assert_uint_eq(st.requests[JIG_CMD_GET_CSR], 5);
	ck_assert_uint_eq(st.requests[JIG_CMD_LOCK], 5);
	ck_assert_uint_eq(st.bad_urbs, 0);
	ck_assert_uint_eq(st.unplugs, 0);
	stu_run_clear(&r);
	stu_ws_free(w);
	jigsim_free(s);
}
END_TEST

/* The jig stops answering at KEYGEN: the device fails at KEYGEN, the reason
 * names the command, the jig and the timeout, and nothing was signed. */
START_TEST(test_run_timeout)
{
	jigsim *s = ub_sim(12, 5, 0, 0);
	ub_jig *jig = ub_jig_add(bed, s, "1-1.4", JIG_USB_VID, JIG_USB_PID, "JIG-A");
	stu_ws *w = stu_ws_new(tu_pki);
	jigsim_device_info info;
	ub_jig_stats st;
	json_t *ev;
	stu_run r;

	stu_recipe_edit(w, "keygen: 3000", "keygen: 400");
	ub_jig_mute_at(jig, JIG_CMD_KEYGEN);
	stu_station_run(w, "usb:1209:0001", 1, 1, &r);
	ck_assert_msg(r.status == 1, "station run: exit %d\n%s\n%s", r.status, stu_tail(r.out), stu_tail(r.err));
	ck_assert_int_eq(jigsim_device_get(s, 1, &info), 0);
	ck_assert_msg((ev = stu_event(&r, "failed", info.serial)) != NULL, "no failed event:\n%s", stu_tail(r.out));
	ck_assert_str_eq(stu_str(ev, "step"), "keygen");
	ub_assert_has(stu_str(ev, "reason"), "jig usb:1209:0001: KEYGEN: no answer after 400 ms (2 retries)");
	ck_assert_uint_eq(info.keygens, 0);
	ck_assert_uint_eq(stu_event_count(&r, "passed"), 0);

	ub_jig_get_stats(jig, &st);
	ck_assert_uint_eq(st.requests[JIG_CMD_KEYGEN], 3);
	ck_assert_uint_eq(st.repeats[JIG_CMD_KEYGEN], 2);
	ck_assert_uint_eq(st.requests[JIG_CMD_GET_CSR], 0);
	stu_run_clear(&r);
	stu_ws_free(w);
	jigsim_free(s);
}
END_TEST

/* The jig drops off the bus while the station waits for device 2's GET_CSR
 * answer (jigsim's disconnect fault): device 2 fails at CSR as a disconnect,
 * the station keeps trying to reopen the jig, and when it is plugged back in
 * the run goes on with device 3. */
START_TEST(test_run_unplug_and_return)
{
	static const unsigned ok[] = { 1, 3 };
	jigsim *s = ub_sim(13, 3, JIGSIM_F_DISCONNECT, 2);
	ub_jig *jig = ub_jig_add(bed, s, "1-1.4", JIG_USB_VID, JIG_USB_PID, "JIG-A");
	stu_ws *w = stu_ws_new(tu_pki);
	jigsim_device_info info;
	uint8_t cert[JIG_BLOB_MAX];
	size_t len = 0;
	json_t *ev;
	stu_run r;

	stu_station_start(w, "usb:1209:0001", 3, 1, &r);
	ub_jig_wait_unplugs(jig, 1, 60);
	/* gone: the station says it keeps trying */
	ub_wait_file_has(r.out_path, "is connected; retrying", 60);
	ub_jig_replug(jig);
	stu_station_wait(&r, 120);
	ck_assert_msg(r.status == 1, "station run: exit %d\n%s\n%s", r.status, stu_tail(r.out), stu_tail(r.err));
	ub_assert_has(r.out, "jig connected again");

	ck_assert_int_eq(jigsim_device_get(s, 2, &info), 0);
	ck_assert_msg((ev = stu_event(&r, "failed", info.serial)) != NULL, "no failed event:\n%s", stu_tail(r.out));
	ck_assert_str_eq(stu_str(ev, "step"), "csr");
	ub_assert_has(stu_str(ev, "reason"), "jig usb:1209:0001: GET_CSR: bulk IN: the USB jig was unplugged");
	ub_assert_has(stu_str(ev, "advice"), "re-seat");
	ck_assert_int_eq(jigsim_device_cert(s, 2, 0, cert, sizeof(cert), &len), 0);
	ck_assert_uint_eq(len, 0); /* nothing installed on the device that failed */
	ck_assert_uint_eq(stu_event_count(&r, "passed"), 2);
	ck_assert_uint_eq(stu_event_count(&r, "failed"), 1);
	check_passed(w, s, &r, ok, 2);
	stu_run_clear(&r);
	stu_ws_free(w);
	jigsim_free(s);
}
END_TEST

static Suite *
suite(void)
{
	TCase *tc;
	Suite *s = tu_pki_suite("usb-jig", "usb", 60, &tc);

	tcase_add_checked_fixture(tc, bed_setup, bed_teardown);
	tcase_add_test(tc, test_enumerate_in_process);
	tcase_add_test(tc, test_station_list);
	tcase_add_test(tc, test_station_list_recipe);
	tcase_add_test(tc, test_station_info);
	tcase_add_test(tc, test_two_jigs_need_serial);
	tcase_add_test(tc, test_zero_length_packet);
	tcase_add_test(tc, test_timeout);
	tcase_add_test(tc, test_unplug_mid_command);
	tcase_add_test(tc, test_run_five);
	tcase_add_test(tc, test_run_timeout);
	tcase_add_test(tc, test_run_unplug_and_return);
	return s;
}

int
main(void)
{
	return tu_run_suite(suite());
}
