/* Signed rework authorizations (issue 15 item 2): `station rework` refuses
 * to start without one, with an expired one, one signed by a key the recipe
 * does not trust or of another role; it refuses a device the token does not
 * name, and a token that already completed a rework of that device.  The
 * authorizer's key is on a token of its own: the station's PIN cannot use
 * it. */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "audit.h"
#include "cms.h"
#include "rwutil.h"

/* `station rework --authorization PATH` of the device on sim: exit status,
 * stdout + stderr in *out. */
static int
rework_with(stu_ws *w, stu_sim *sim, const char *path, char **out)
{
	return tu_station(out, "rework", "--recipe", w->recipe, "--jig", sim->uri, "--authorization", path, NULL);
}

static void
expect(int rc, char *out, int want, const char *says, const char *what)
{
	ck_assert_msg(rc == want && strstr(out ? out : "", says), "%s: exit %d (expected %d), output does not say "
	    "\"%s\":\n%s", what, rc, want, says, stu_tail(out));
	free(out);
}

/* A token made with stock openssl: a file key whose certificate (issued
 * by CA/CA.key) holds role_oid, over a well-formed body naming serial. */
static char *
openssl_token(stu_ws *w, const char *name, const char *ca, const char *role_oid, const char *serial)
{
	char *path = NULL, *out = NULL;
	int rc;

	ck_assert_int_ne(asprintf(&path, "%s/%s.der", w->dir, name), -1);
	rc = tu_shf(&out,
	    "set -e; cd '%s'; openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out %s.key; "
	    "printf 'keyUsage=critical,digitalSignature\\nextendedKeyUsage=emailProtection,%s\\n' > %s.ext; "
	    "openssl req -new -key %s.key -subj '/O=Elsewhere/CN=%s' | openssl x509 -req -CA '%s.pem' -CAkey '%s.key' "
	    "-extfile %s.ext -days 2 -out %s.pem; "
	    "printf '{\"expires\":\"2099-01-01T00:00:00Z\",\"format\":\"station-authorization\",\"id\":"
	    "\"00112233445566778899aabbccddeeff\",\"issued\":\"2020-01-01T00:00:00Z\",\"reason\":\"r\",\"serials\":"
	    "[\"%s\"],\"signer\":\"me\",\"type\":\"rework\",\"version\":1}' > %s.json; "
	    "openssl cms -sign -binary -nodetach -outform DER -in %s.json -out '%s' -signer %s.pem -inkey %s.key",
	    w->dir, name, role_oid, name, name, name, ca, ca, name, name, serial, name, name, path, name, name);
	ck_assert_msg(rc == 0, "%s", out);
	free(out);
	return path;
}

START_TEST(test_refusals)
{
	stu_ws *w = stu_ws_new(tu_pki);
	stu_sim *sim = rw_sim(tu_pki, 1, 0);
	jigsim_device_info info;
	char root[4200], *path, *out = NULL;
	json_t *recs;
	int rc;

	rw_provision(w, sim, 1);
	ck_assert_int_eq(jigsim_device_get(sim->s, 1, &info), 0);
	snprintf(root, sizeof(root), "%s/root-ca", tu_pki);

	/* None at all, or a file that is not there. */
	rc = tu_station(&out, "rework", "--recipe", w->recipe, "--jig", sim->uri, "--authorized-by", "QA lead", NULL);
	expect(rc, out, 2, "--authorization FILE is required", "rework without an authorization");
	rc = rework_with(w, sim, "/nonexistent/authz.der", &out);
	expect(rc, out, 2, "/nonexistent/authz.der", "rework with a missing authorization file");

	/* Expired. */
	ck_assert_int_ne(asprintf(&path, "%s/short.der", w->dir), -1);
	rc = tu_station(&out, "authorize", "rework", "--token", "station-authorizer", "--key-label", "authorizer",
	    "--pin-env", "STATION_AUTHORIZER_PIN", "--se", info.serial, "--reason", "RMA 1", "--expires", "1s", "--out",
	    path, NULL);
	ck_assert_msg(rc == 0, "%s", out);
	free(out);
	sleep(2);
	rc = rework_with(w, sim, path, &out);
	expect(rc, out, 2, "expired at", "rework with an expired authorization");
	free(path);

	/* Signed by a key of a CA the recipe does not trust. */
	ck_assert_int_ne(asprintf(&out, "cd '%s' && openssl req -new -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 "
	                                "-nodes -keyout other-ca.key -out other-ca.pem -subj '/CN=Other CA' -days 2 "
	                                "-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign",
	                     w->dir), -1);
	ck_assert_int_eq(tu_sh(out, NULL), 0);
	free(out);
	{
		char other[4200];

		snprintf(other, sizeof(other), "%s/other-ca", w->dir);
		path = openssl_token(w, "foreign", other, st_role_oid(ST_ROLE_AUTHORIZE), info.serial);
	}
	rc = rework_with(w, sim, path, &out);
	expect(rc, out, 2, "not signed by an authorizer the recipe trusts", "rework with a foreign-signed authorization");
	free(path);

	/* Under the trusted root, but a key of another role (engineering). */
	path = openssl_token(w, "engineer", root, st_role_oid(ST_ROLE_RECIPE), info.serial);
	rc = rework_with(w, sim, path, &out);
	expect(rc, out, 2, "does not hold the authorization role", "rework with an engineering-signed authorization");
	free(path);

	/* A valid token that names another SE: the device is refused, untouched. */
	path = rw_authorize(w, "SE-SOMEONE-ELSE", "RMA 2");
	rc = rework_with(w, sim, path, &out);
	expect(rc, out, 1, "does not name this SE", "rework of a device the authorization does not name");
	free(path);

	/* None of these retired or reissued anything. */
	recs = rw_records(w, info.serial);
	ck_assert_uint_eq(rw_count(recs, "retire", NULL), 0);
	ck_assert_uint_eq(rw_count(recs, "issued", NULL), 1);
	json_decref(recs);
	ck_assert_int_eq(jigsim_device_get(sim->s, 1, &info), 0);
	ck_assert_int_eq(info.retired, 0);

	/* The station's PIN does not open the authorizer's token. */
	ck_assert_int_ne(asprintf(&path, "%s/self.der", w->dir), -1);
	rc = tu_station(&out, "authorize", "rework", "--token", "station-authorizer", "--key-label", "authorizer",
	    "--se", info.serial, "--reason", "me", "--expires", "1h", "--out", path, NULL);
	expect(rc, out, 2, "wrong PIN", "authorize with the station's PIN");
	ck_assert_int_ne(access(path, F_OK), 0);
	/* Nor does a key of the station's token hold the role. */
	rc = tu_station(&out, "authorize", "rework", "--token", "station-test", "--key-label", "audit", "--se",
	    info.serial, "--reason", "me", "--expires", "1h", "--out", path, NULL);
	expect(rc, out, 2, "does not hold the authorization role", "authorize with the audit key");
	ck_assert_int_ne(access(path, F_OK), 0);
	free(path);

	stu_sim_stop(sim);
	stu_ws_free(w);
}
END_TEST

/* A token is good for one completed rework per SE: a journal that shows
 * one (a "done"/"pass" record naming the token) makes the next refuse. */
START_TEST(test_used_once)
{
	stu_ws *w = stu_ws_new(tu_pki);
	stu_sim *sim = rw_sim(tu_pki, 1, 0);
	audit_config cfg = { NULL, NULL, NULL, 0, 0, NULL };
	jigsim_device_info info;
	char *path, *out = NULL, *id = NULL, *cmd = NULL;
	audit_journal *j;
	audit_event ev;
	json_t *details;
	st_err err;
	int rc;

	rw_provision(w, sim, 1);
	ck_assert_int_eq(jigsim_device_get(sim->s, 1, &info), 0);
	path = rw_authorize(w, info.serial, "RMA 3");
	/* The token's id, read with stock openssl. */
	ck_assert_int_ne(asprintf(&cmd, "openssl cms -verify -noverify -inform DER -in '%s' 2>/dev/null | "
	                                "sed 's/.*\"id\":\"\\([0-9a-f]*\\)\".*/\\1/'", path), -1);
	ck_assert_int_eq(tu_sh(cmd, &id), 0);
	free(cmd);
	id[strcspn(id, "\n")] = '\0';
	ck_assert_uint_eq(strlen(id), 32);

	ck_assert_ptr_nonnull(j = audit_open(w->audit, &cfg, &err));
	memset(&ev, 0, sizeof(ev));
	ev.device = info.serial;
	ev.step = "done";
	ev.result = "pass";
	ev.details = details = json_pack("{s:b,s:s}", "rework", 1, "authorization", id);
	ck_assert_msg(audit_append(j, &ev, NULL, &err) == 0, "%s", err.msg);
	json_decref(details);
	audit_close(j);

	rc = rework_with(w, sim, path, &out);
	expect(rc, out, 1, "was already used for this SE", "rework with a used authorization");
	ck_assert_int_eq(jigsim_device_get(sim->s, 1, &info), 0);
	ck_assert_int_eq(info.retired, 0);
	free(id);
	free(path);
	stu_sim_stop(sim);
	stu_ws_free(w);
}
END_TEST

/* Issue 15 item 8: where the recipe says so, `station revoke` takes the
 * same kind of authorization (type revoke) naming the device. */
START_TEST(test_revoke_needs_authorization)
{
	stu_ws *w = stu_ws_new(tu_pki);
	stu_sim *sim = rw_sim(tu_pki, 1, 0);
	jigsim_device_info info;
	char *out = NULL, *path;
	json_t *recs, *rec;
	int rc;

	stu_recipe_edit(w, "allow_foreign_devices: false",
	    "allow_foreign_devices: false\n  revoke_needs_authorization: true");
	rw_provision(w, sim, 1);
	ck_assert_int_eq(jigsim_device_get(sim->s, 1, &info), 0);

	rc = tu_station(&out, "revoke", "--recipe", w->recipe, "--device", info.serial, "--reason", "keyCompromise",
	    NULL);
	expect(rc, out, 2, "revokes only under a signed authorization", "revoke without an authorization");
	path = rw_authorize(w, info.serial, "RMA 4"); /* a rework authorization */
	rc = tu_station(&out, "revoke", "--recipe", w->recipe, "--device", info.serial, "--reason", "keyCompromise",
	    "--authorization", path, NULL);
	expect(rc, out, 2, "is for rework, not revoke", "revoke with a rework authorization");
	free(path);
	path = rw_authorize_as(w, "revoke", "SE-SOMEONE-ELSE", "stolen");
	rc = tu_station(&out, "revoke", "--recipe", w->recipe, "--device", info.serial, "--reason", "keyCompromise",
	    "--authorization", path, NULL);
	expect(rc, out, 2, "does not name device", "revoke of a device the authorization does not name");
	recs = rw_records(w, NULL);
	ck_assert_uint_eq(rw_count(recs, "revoke", NULL), 0);
	json_decref(recs);
	free(path);
	path = rw_authorize_as(w, "revoke", info.serial, "stolen");
	rc = tu_station(&out, "revoke", "--recipe", w->recipe, "--device", info.serial, "--reason", "keyCompromise",
	    "--authorization", path, NULL);
	expect(rc, out, 0, "revoked certificate", "revoke under its authorization");
	recs = rw_records(w, NULL);
	ck_assert_ptr_nonnull(rec = rw_record(recs, 0, "revoke", "ok", NULL));
	ck_assert_uint_eq(strlen(rw_detail(rec, "authorization")), 32);
	ck_assert_str_eq(rw_detail(rec, "authorized_by"), "O = Station Test, CN = Station Test Rework Authorizer 1");
	json_decref(recs);
	free(path);
	stu_sim_stop(sim);
	stu_ws_free(w);
}
END_TEST

static Suite *
suite(void)
{
	TCase *tc;
	Suite *s = tu_pki_suite("rework-authorization", "authorization", 120, &tc);

	tcase_add_test(tc, test_refusals);
	tcase_add_test(tc, test_used_once);
	tcase_add_test(tc, test_revoke_needs_authorization);
	return s;
}

int
main(void)
{
	signal(SIGPIPE, SIG_IGN);
	return tu_run_suite(suite());
}
