#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/bn.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "audit.h"
#include "rwutil.h"

stu_sim *
rw_sim(const char *pki, unsigned devices, unsigned faults)
{
	jigsim_config c;

	jigsim_config_init(&c);
	c.devices = devices;
	c.rma = 1;
	c.faults = faults;
	return stu_sim_start(pki, &c);
}

void
rw_provision(stu_ws *w, stu_sim *sim, unsigned index)
{
	jigsim_device_info info;
	stu_run r;

	stu_station_run(w, sim->uri, 1, 1, &r);
	ck_assert_int_eq(jigsim_device_get(sim->s, index, &info), 0);
	ck_assert_msg(r.status == 0 && stu_event(&r, "passed", info.serial) != NULL,
	    "station run did not provision device %u (%s): exit %d\n%s\n%s", index, info.serial, r.status,
	    stu_tail(r.out), stu_tail(r.err));
	/* The RMA return: the same SE, provisioned, back in the jig. */
	ck_assert_msg(info.present && info.lifecycle == JIG_LC_PROVISIONED, "device %u is %s and %s", index,
	    info.present ? "present" : "gone", jig_lifecycle_name(info.lifecycle));
	stu_run_clear(&r);
}

char *
rw_authorize(stu_ws *w, const char *serial, const char *reason)
{
	return rw_authorize_as(w, "rework", serial, reason);
}

char *
rw_authorize_as(stu_ws *w, const char *type, const char *serial, const char *reason)
{
	char *argv[64], *path = NULL, *out = NULL;
	json_t *recs = NULL, *rec;
	size_t n = 0, i, k;
	int rc;

	ck_assert_int_ne(asprintf(&path, "%s/authorization-%u.der", w->dir, ++w->runs), -1);
	argv[n++] = (char *)tu_station_exe();
	argv[n++] = (char *)"authorize";
	argv[n++] = (char *)type;
	argv[n++] = (char *)"--token";
	argv[n++] = (char *)"station-authorizer";
	argv[n++] = (char *)"--key-label";
	argv[n++] = (char *)"authorizer";
	argv[n++] = (char *)"--pin-env";
	argv[n++] = (char *)"STATION_AUTHORIZER_PIN";
	argv[n++] = (char *)"--reason";
	argv[n++] = (char *)reason;
	argv[n++] = (char *)"--expires";
	argv[n++] = (char *)"1h";
	argv[n++] = (char *)"--out";
	argv[n++] = path;
	if (serial) {
		argv[n++] = (char *)"--se";
		argv[n++] = (char *)serial;
	} else {
		/* Every SE the journal knows, once. */
		recs = rw_records(w, NULL);
		json_array_foreach(recs, i, rec) {
			const char *dev = stu_str(rec, "device");

			for (k = 16; dev[0] && k < n && strcmp(argv[k], dev) != 0; k += 2)
				;
			if (dev[0] && k >= n && n < 60) {
				argv[n++] = (char *)"--se";
				argv[n++] = (char *)dev;
			}
		}
	}
	argv[n] = NULL;
	ck_assert_msg(n > 15, "rw_authorize: no SE to authorize");
	rc = tu_run(argv, &out);
	ck_assert_msg(rc == 0, "station authorize %s: exit %d\n%s", type, rc, stu_tail(out));
	free(out);
	json_decref(recs);
	return path;
}

void
rw_rework(stu_ws *w, const char *jig, const char *reason, const char *who, stu_run *r)
{
	rw_rework_se(w, jig, NULL, reason, who, r);
}

void
rw_rework_se(stu_ws *w, const char *jig, const char *serial, const char *reason, const char *who, stu_run *r)
{
	char *authz = rw_authorize(w, serial, reason);
	char *argv[] = { (char *)tu_station_exe(), (char *)"rework", (char *)"--recipe", w->recipe, (char *)"--jig", (char *)jig,
		(char *)"--authorization", authz, (char *)"--authorized-by", (char *)who, (char *)"--operator",
		(char *)"rw", (char *)"--json", NULL };

	memset(r, 0, sizeof(*r));
	w->runs++;
	snprintf(r->out_path, sizeof(r->out_path), "%s/rework-%u.out", w->dir, w->runs);
	snprintf(r->err_path, sizeof(r->err_path), "%s/rework-%u.err", w->dir, w->runs);
	r->json = 1;
	r->start_s = stu_now();
	r->pid = stu_spawn(argv, r->out_path, r->err_path);
	stu_station_wait(r, 60);
	free(authz);
}

void
rw_crl(stu_ws *w, const char *out, const char *extra1, const char *extra2)
{
	char *text = NULL;
	int rc = tu_station(&text, "crl", "--recipe", w->recipe, "--out", out, extra1, extra2, NULL);

	ck_assert_msg(rc == 0, "station crl: exit %d:\n%s", rc, stu_tail(text));
	free(text);
}

void
rw_sim_cert(stu_sim *sim, unsigned index, uint8_t *der, size_t cap, size_t *len)
{
	*len = 0;
	ck_assert_int_eq(jigsim_device_cert(sim->s, index, 0, der, cap, len), 0);
}

char *
rw_write_cert(stu_ws *w, const char *name, const uint8_t *der, size_t len)
{
	const unsigned char *p = der;
	X509 *x = d2i_X509(NULL, &p, (long)len);
	char *path = NULL;
	FILE *f;

	ck_assert_ptr_nonnull(x);
	ck_assert_int_ne(asprintf(&path, "%s/%s", w->dir, name), -1);
	ck_assert_ptr_nonnull(f = fopen(path, "w"));
	ck_assert_int_eq(PEM_write_X509(f, x), 1);
	ck_assert_int_eq(fclose(f), 0);
	X509_free(x);
	return path;
}

/* ---- CRLs ------------------------------------------------------------------ */

X509_CRL *
rw_crl_load(const char *path, int der)
{
	FILE *f = fopen(path, "rb");
	X509_CRL *crl;

	ck_assert_msg(f != NULL, "no CRL at %s", path);
	crl = der ? d2i_X509_CRL_fp(f, NULL) : PEM_read_X509_CRL(f, NULL, NULL, NULL);
	fclose(f);
	ck_assert_msg(crl != NULL, "%s is not a %s CRL", path, der ? "DER" : "PEM");
	return crl;
}

long
rw_crl_number(X509_CRL *crl)
{
	ASN1_INTEGER *n = X509_CRL_get_ext_d2i(crl, NID_crl_number, NULL, NULL);
	long v = n ? ASN1_INTEGER_get(n) : -1;

	ASN1_INTEGER_free(n);
	return v;
}

int
rw_crl_reason(X509_CRL *crl, const char *serial_hex)
{
	STACK_OF(X509_REVOKED) *revs = X509_CRL_get_REVOKED(crl);
	BIGNUM *want = NULL;
	int i, ret = -2;

	ck_assert_int_gt(BN_hex2bn(&want, serial_hex), 0);
	for (i = 0; i < sk_X509_REVOKED_num(revs); i++) {
		X509_REVOKED *rv = sk_X509_REVOKED_value(revs, i);
		BIGNUM *bn = ASN1_INTEGER_to_BN(X509_REVOKED_get0_serialNumber(rv), NULL);
		int same = bn && BN_cmp(bn, want) == 0;

		BN_free(bn);
		if (same) {
			ASN1_ENUMERATED *r = X509_REVOKED_get_ext_d2i(rv, NID_crl_reason, NULL, NULL);

			ret = r ? (int)ASN1_ENUMERATED_get(r) : -1;
			ASN1_ENUMERATED_free(r);
			break;
		}
	}
	BN_free(want);
	return ret;
}

int
rw_openssl_crl_verify(const char *path, const char *ca, char **out)
{
	char *argv[] = { (char *)"openssl", (char *)"crl", (char *)"-in", (char *)path, (char *)"-noout",
		(char *)"-CAfile", (char *)ca, NULL };
	int rc = tu_run(argv, out);

	return rc == 0 && *out && strstr(*out, "verify OK") != NULL;
}

int
rw_openssl_verify_crl(stu_ws *w, const char *crl, const char *cert, char **out)
{
	return rw_openssl_verify_crl_by(w, "intermediate.pem", crl, cert, out);
}

int
rw_openssl_verify_crl_by(stu_ws *w, const char *issuer, const char *crl, const char *cert, char **out)
{
	char bundle[4200], inter[4200], root[4200];
	char *a = NULL, *b = NULL, *c = NULL, *text = NULL;
	char *argv[] = { (char *)"openssl", (char *)"verify", (char *)"-crl_check", (char *)"-CAfile", bundle,
		(char *)cert, NULL };
	FILE *f;

	snprintf(bundle, sizeof(bundle), "%s/crl-bundle.pem", w->dir);
	snprintf(inter, sizeof(inter), "%s/%s", w->pki, issuer);
	snprintf(root, sizeof(root), "%s/root-ca.pem", w->pki);
	ck_assert_ptr_nonnull(a = tu_slurp(inter, NULL));
	ck_assert_ptr_nonnull(b = tu_slurp(root, NULL));
	ck_assert_ptr_nonnull(c = tu_slurp(crl, NULL));
	ck_assert_int_ne(asprintf(&text, "%s%s%s", a, b, c), -1);
	ck_assert_ptr_nonnull(f = fopen(bundle, "w"));
	ck_assert_int_eq(fputs(text, f) >= 0, 1);
	ck_assert_int_eq(fclose(f), 0);
	free(a);
	free(b);
	free(c);
	free(text);
	return tu_run(argv, out);
}

/* ---- the journal --------------------------------------------------------------- */

static int
on_record(const audit_record *rec, void *ctx)
{
	json_t *recs = ctx;

	return json_array_append_new(recs, json_pack("{s:I,s:s,s:s,s:s,s:s,s:O}", "seq", (json_int_t)rec->seq, "step",
	                                       rec->step, "result", rec->result, "operator",
	                                       rec->operator_name ? rec->operator_name : "", "device",
	                                       rec->device ? rec->device : "", "details", rec->details));
}

json_t *
rw_records(stu_ws *w, const char *device)
{
	json_t *recs = json_array();
	st_err err;
	int rc;

	st_err_clear(&err);
	ck_assert_ptr_nonnull(recs);
	rc = device ? audit_find_device(w->audit, device, on_record, recs, &err) : audit_scan(w->audit, on_record, recs, &err);
	ck_assert_msg(rc == 0, "journal %s: %s", w->audit, err.msg[0] ? err.msg : "out of memory");
	return recs;
}

json_t *
rw_record(json_t *recs, size_t from, const char *step, const char *result, size_t *at)
{
	size_t i;

	for (i = from; i < json_array_size(recs); i++) {
		json_t *r = json_array_get(recs, i);

		if (strcmp(stu_str(r, "step"), step) == 0 && (!result || strcmp(stu_str(r, "result"), result) == 0)) {
			if (at)
				*at = i;
			return r;
		}
	}
	return NULL;
}

unsigned
rw_count(json_t *recs, const char *step, const char *result)
{
	unsigned n = 0;
	size_t i;

	for (i = 0; i < json_array_size(recs); i++) {
		json_t *r = json_array_get(recs, i);

		n += strcmp(stu_str(r, "step"), step) == 0 && (!result || strcmp(stu_str(r, "result"), result) == 0);
	}
	return n;
}

const char *
rw_detail(json_t *rec, const char *key)
{
	return stu_str(json_object_get(rec, "details"), key);
}
