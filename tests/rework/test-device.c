/* `station device SERIAL`: one device's story from the local journal.  Two
 * devices provisioned by `station run` on jigsim; the first comes back and is
 * reworked, the second's certificate is revoked.  The reworked device's
 * records come in journal order (factory path, then the rework), its old
 * certificate is "superseded by a rework", its new one live; the revoked
 * one says its reason; the same in --json.  SERIAL in the spellings the
 * station reads (SE serial in another case, a certificate serial in
 * OpenSSL's form, lower case without leading zeros, 0x..., colons); an
 * unknown serial (exit 1) and malformed ones (exit 2) say what is wrong,
 * with no control byte of theirs on the terminal. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "rwutil.h"

static int
device_cmd(stu_ws *w, char **out, const char *serial, int json)
{
	return tu_station(out, "device", "--recipe", w->recipe, json ? "--json" : serial, json ? serial : NULL, NULL);
}

static json_t *
device_json(stu_ws *w, const char *serial)
{
	char *out = NULL;
	json_error_t e;
	json_t *o;
	int rc = device_cmd(w, &out, serial, 1);

	ck_assert_msg(rc == 0, "station device --json %s: exit %d\n%s", serial, rc, out);
	o = json_loads(out, 0, &e);
	ck_assert_msg(o != NULL, "station device --json %s: not JSON (%s)\n%s", serial, e.text, out);
	free(out);
	return o;
}

/* The certificate of a --json answer with this serial. */
static json_t *
cert_of(json_t *dev, const char *serial)
{
	json_t *c;
	size_t i;

	json_array_foreach(json_object_get(dev, "certificates"), i, c)
		if (strcmp(stu_str(c, "serial"), serial) == 0)
			return c;
	ck_assert_msg(0, "no certificate %s in the answer", serial);
	return NULL;
}

static void
upper(char *s)
{
	for (; *s; s++)
		*s = (char)toupper((unsigned char)*s);
}

START_TEST(test_device_story)
{
	stu_ws *w = stu_ws_new(tu_pki);
	stu_sim *sim = rw_sim(tu_pki, 2, 0);
	jigsim_device_info a, b;
	uint8_t der[JIG_BLOB_MAX];
	size_t len = 0, i, at;
	char old_serial[64], new_serial[64], b_serial[64], form[200], *out = NULL, *p;
	const char *steps_before[] = { "identify", "issuing", "issued", "install", "done", "rework-start", "retire",
		"revoke", "issuing", "issued", "install", "done" };
	json_t *dev, *c, *rec, *recs;
	uint64_t last_seq = 0;
	stu_run r;
	int rc;

	/* Device 1 is provisioned, comes back (RMA) and is reworked; then
	 * device 2 is provisioned and its certificate revoked. */
	rw_provision(w, sim, 1);
	ck_assert_int_eq(jigsim_device_get(sim->s, 1, &a), 0);
	rw_sim_cert(sim, 1, der, sizeof(der), &len);
	tu_der_serial_hex(der, len, old_serial);
	upper(old_serial);
	rw_rework_se(w, sim->uri, a.serial, "RMA 77", "QA lead", &r);
	ck_assert_msg(r.status == 0, "station rework: exit %d\n%s\n%s", r.status, stu_tail(r.out), stu_tail(r.err));
	snprintf(new_serial, sizeof(new_serial), "%s", stu_str(stu_event(&r, "passed", a.serial), "certificate_serial"));
	upper(new_serial);
	stu_run_clear(&r);
	rw_provision(w, sim, 2);
	ck_assert_int_eq(jigsim_device_get(sim->s, 2, &b), 0);
	rw_sim_cert(sim, 2, der, sizeof(der), &len);
	tu_der_serial_hex(der, len, b_serial);
	upper(b_serial);
	rc = tu_station(&out, "revoke", "--recipe", w->recipe, "--device", b.serial, "--reason", "keyCompromise", NULL);
	ck_assert_msg(rc == 0, "station revoke: exit %d\n%s", rc, out);
	free(out);

	/* Text: the story in order, the certificates and what became of each. */
	rc = device_cmd(w, &out, a.serial, 0);
	ck_assert_msg(rc == 0, "station device %s: exit %d\n%s", a.serial, rc, out);
	ck_assert_msg(strstr(out, "passed; 2 certificates issued, 1 revoked"), "no summary line:\n%s", stu_tail(out));
	for (i = 0, p = out; i < sizeof(steps_before) / sizeof(steps_before[0]); i++) {
		char word[40];

		snprintf(word, sizeof(word), " %s ", steps_before[i]);
		ck_assert_msg((p = strstr(p, word)) != NULL, "record %s (%zu) missing or out of order:\n%s", steps_before[i],
		    i, stu_tail(out));
		p += strlen(word);
	}
	ck_assert_msg(strstr(out, "[rework]  reason RMA 77; authorized by ") && strstr(out, "; note QA lead") &&
	        strstr(out, "on jig tcp:127.0.0.1:") && strstr(out, ", operator rw"),
	    "rework not told:\n%s", stu_tail(out));
	snprintf(form, sizeof(form), "%s", old_serial);
	ck_assert_msg((p = strstr(strstr(out, "certificates:\n"), form)) && strstr(p, "superseded by a rework") &&
	        strstr(p, "(superseded)"),
	    "old certificate %s not superseded by a rework:\n%s", old_serial, stu_tail(out));
	ck_assert_msg((p = strstr(strstr(out, "certificates:\n"), new_serial)) && strncmp(strstr(p, " l"), " live", 5) == 0,
	    "new certificate %s not live:\n%s", new_serial, stu_tail(out));
	free(out);

	/* --json: the same, in order. */
	dev = device_json(w, a.serial);
	ck_assert_str_eq(stu_str(dev, "device"), a.serial);
	ck_assert_str_eq(stu_str(dev, "state"), "passed");
	ck_assert_str_eq(stu_str(dev, "live_cert_serial"), new_serial);
	recs = json_object_get(dev, "records");
	ck_assert_uint_gt(json_array_size(recs), 20);
	json_array_foreach(recs, at, rec) {
		uint64_t seq = (uint64_t)json_integer_value(json_object_get(rec, "seq"));

		ck_assert_msg(seq > last_seq, "records out of order at %zu: seq %llu after %llu", at,
		    (unsigned long long)seq, (unsigned long long)last_seq);
		last_seq = seq;
	}
	c = cert_of(dev, old_serial);
	ck_assert_str_eq(stu_str(c, "status"), "superseded-by-rework");
	ck_assert_str_eq(stu_str(c, "reason"), "superseded");
	ck_assert(json_is_true(json_object_get(c, "installed")));
	ck_assert_str_eq(stu_str(cert_of(dev, new_serial), "status"), "live");
	ck_assert_uint_eq(json_array_size(json_object_get(dev, "certificates")), 2);
	json_decref(dev);

	dev = device_json(w, b.serial);
	c = cert_of(dev, b_serial);
	ck_assert_str_eq(stu_str(c, "status"), "revoked");
	ck_assert_str_eq(stu_str(c, "reason"), "keyCompromise");
	ck_assert_msg(json_is_null(json_object_get(dev, "live_cert_serial")) || !json_object_get(dev, "live_cert_serial"),
	    "a live certificate after revocation");
	json_decref(dev);

	/* SERIAL in other spellings: the SE serial in lower case; the old
	 * certificate's serial as OpenSSL, lower case without leading zeros,
	 * 0x... and colon-separated bytes all name device 1. */
	snprintf(form, sizeof(form), "%s", a.serial);
	for (p = form; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	dev = device_json(w, form);
	ck_assert_str_eq(stu_str(dev, "device"), a.serial);
	json_decref(dev);
	for (i = 0; i < 4; i++) {
		const char *s = old_serial;
		size_t k, n = 0;

		if (i == 1 || i == 2) {
			while (*s == '0')
				s++;
			n = (size_t)snprintf(form, sizeof(form), "%s%s", i == 2 ? "0x" : "", s);
			for (k = 0; k < n; k++)
				form[k] = (char)tolower((unsigned char)form[k]);
		} else if (i == 3) {
			for (k = 0; s[k]; k += 2)
				n += (size_t)snprintf(form + n, sizeof(form) - n, "%s%.2s", k ? ":" : "", s + k);
		} else {
			snprintf(form, sizeof(form), "%s", s);
		}
		dev = device_json(w, form);
		ck_assert_msg(strcmp(stu_str(dev, "device"), a.serial) == 0 &&
		        strcmp(stu_str(dev, "found_by_cert_serial"), old_serial) == 0,
		    "certificate serial \"%s\": device \"%s\", found by \"%s\"", form, stu_str(dev, "device"),
		    stu_str(dev, "found_by_cert_serial"));
		json_decref(dev);
	}
	rc = device_cmd(w, &out, old_serial, 0);
	ck_assert_msg(rc == 0 && strstr(out, "was issued to device") && strstr(out, a.serial), "exit %d\n%s", rc, out);
	free(out);
	stu_sim_stop(sim);
	stu_ws_free(w);
}
END_TEST

/* Unknown and malformed serials, and usage. */
START_TEST(test_device_errors)
{
	stu_ws *w = stu_ws_new(tu_pki);
	stu_sim *sim = rw_sim(tu_pki, 1, 0);
	char *out = NULL, long_serial[80];
	int rc;

	rw_provision(w, sim, 1);
	rc = device_cmd(w, &out, "SE0000000000000000", 0);
	ck_assert_msg(rc == 1 && strstr(out, "has no device or certificate SE0000000000000000") &&
	        strstr(out, "1 devices in it"),
	    "unknown serial: exit %d\n%s", rc, out);
	free(out);
	rc = device_cmd(w, &out, "SE0000000000000000", 1);
	ck_assert_msg(rc == 1 && strstr(out, "\"known\":false"), "unknown serial --json: exit %d\n%s", rc, out);
	free(out);
	/* A certificate serial the journal does not hold is unknown too. */
	rc = device_cmd(w, &out, "0x7f:00", 0);
	ck_assert_msg(rc == 1 && strstr(out, "has no device or certificate"), "unknown certificate: exit %d\n%s", rc, out);
	free(out);

	rc = device_cmd(w, &out, "SE01;rm -rf", 0);
	ck_assert_msg(rc == 2 && strstr(out, "SERIAL \"SE01;rm -rf\": byte 5 (0x3b)") && strstr(out, "A-Z a-z 0-9"),
	    "serial with ';': exit %d\n%s", rc, out);
	free(out);
	rc = device_cmd(w, &out, "SE\033[2J\033]0;x\007", 0);
	ck_assert_msg(rc == 2 && !strchr(out, '\033') && !strchr(out, '\007') && strstr(out, "\\x1b"),
	    "serial with control bytes: exit %d\n%s", rc, out);
	free(out);
	rc = device_cmd(w, &out, "", 0);
	ck_assert_msg(rc == 2 && strstr(out, "SERIAL is empty"), "empty serial: exit %d\n%s", rc, out);
	free(out);
	memset(long_serial, 'A', 65);
	long_serial[65] = '\0';
	rc = device_cmd(w, &out, long_serial, 0);
	ck_assert_msg(rc == 2 && strstr(out, "is 65 characters; an SE serial has at most 64"), "65 characters: exit %d\n%s",
	    rc, out);
	free(out);
	rc = device_cmd(w, &out, "0c:5f:zz", 0);
	ck_assert_msg(rc == 2 && strstr(out, "byte 3 (0x3a)"), "bad colon form: exit %d\n%s", rc, out);
	free(out);

	rc = tu_station(&out, "device", "--recipe", w->recipe, NULL);
	ck_assert_msg(rc == 2 && strstr(out, "need one SERIAL"), "no serial: exit %d\n%s", rc, out);
	free(out);
	rc = tu_station(&out, "device", "--recipe", w->recipe, "--dir", w->audit, "SE01", NULL);
	ck_assert_msg(rc == 2 && strstr(out, "exactly one of --recipe FILE or --dir DIR"), "both: exit %d\n%s", rc, out);
	free(out);
	rc = tu_station(&out, "device", "--dir", "/nonexistent/journal", "SE01", NULL);
	ck_assert_msg(rc == 2 && strstr(out, "audit journal /nonexistent/journal"), "no journal: exit %d\n%s", rc, out);
	free(out);
	stu_sim_stop(sim);
	stu_ws_free(w);
}
END_TEST

static Suite *
suite(void)
{
	TCase *tc;
	Suite *s = tu_pki_suite("device", "device", 120, &tc);

	tcase_add_test(tc, test_device_story);
	tcase_add_test(tc, test_device_errors);
	return s;
}

int
main(void)
{
	return tu_run_suite(suite());
}
