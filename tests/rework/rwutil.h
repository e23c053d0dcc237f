/* Helpers for the rework and revocation tests, on top of tests/station's
 * stutil (workspace, jigsim on a thread, the station program): `station
 * rework` with --json, `station crl`, the journal records of one device,
 * certificates and CRLs as files, and the openssl CLI checks. */
#ifndef RWUTIL_H
#define RWUTIL_H

#include <openssl/x509.h>

#include "stutil.h"

/* A jigsim panel of `devices` with RMA returns on and `faults` on every
 * device (0: none). */
stu_sim *rw_sim(const char *pki, unsigned devices, unsigned faults);

/* `station run --count 1` must pass device `index` of the panel; with RMA
 * it is back in the jig afterwards, provisioned. */
void rw_provision(stu_ws *w, stu_sim *sim, unsigned index);

/* `station authorize rework` with the test PKI's authorizer token for
 * serial (NULL: every SE in the workspace's journal), REASON, 1 h; the
 * token's path (malloc'd). */
char *rw_authorize(stu_ws *w, const char *serial, const char *reason);
/* The same for another type of authorization ("revoke"). */
char *rw_authorize_as(stu_ws *w, const char *type, const char *serial, const char *reason);
/* `station rework --recipe W/demo.yaml --jig JIG --authorization (made by
 * rw_authorize for serial, NULL: the journal's SEs) --authorized-by WHO
 * --operator rw --json`, parsed like stu_station_run. */
void rw_rework(stu_ws *w, const char *jig, const char *reason, const char *who, stu_run *r);
void rw_rework_se(stu_ws *w, const char *jig, const char *serial, const char *reason, const char *who, stu_run *r);

/* `station crl --recipe W/demo.yaml --out OUT [extra...]`: must exit 0. */
void rw_crl(stu_ws *w, const char *out, const char *extra1, const char *extra2);

/* The certificate in slot 0 of device index (len 0 when none). */
void rw_sim_cert(stu_sim *sim, unsigned index, uint8_t *der, size_t cap, size_t *len);
/* Write DER as a PEM certificate at W/name; returns the path (malloc'd). */
char *rw_write_cert(stu_ws *w, const char *name, const uint8_t *der, size_t len);

/* ---- CRLs ------------------------------------------------------------------ */

X509_CRL *rw_crl_load(const char *path, int der);
/* The CRL number (-1 when absent). */
long rw_crl_number(X509_CRL *crl);
/* The reason code of serial's entry (hex, any case): -1 when the entry has
 * no reason, -2 when serial is not listed. */
int rw_crl_reason(X509_CRL *crl, const char *serial_hex);
/* `openssl crl -in PATH -noout -CAfile CA`: 1 when it says "verify OK". */
int rw_openssl_crl_verify(const char *path, const char *ca, char **out);
/* `openssl verify -crl_check -CAfile (intermediate + root + CRL) CERT`:
 * the exit status, the output in *out. */
int rw_openssl_verify_crl(stu_ws *w, const char *crl, const char *cert, char **out);
/* The same with the test PKI's intermediate of that file name. */
int rw_openssl_verify_crl_by(stu_ws *w, const char *issuer, const char *crl, const char *cert, char **out);

/* ---- the journal --------------------------------------------------------------- */

/* Every record about device (NULL: every record) as an array of objects
 * {seq, step, result, operator, details}, in order. */
json_t *rw_records(stu_ws *w, const char *device);
/* The first record with this step (and result, unless NULL) at or after
 * position from; NULL when none.  *at gets its position. */
json_t *rw_record(json_t *recs, size_t from, const char *step, const char *result, size_t *at);
unsigned rw_count(json_t *recs, const char *step, const char *result);
/* details.key of a record ("" when absent). */
const char *rw_detail(json_t *rec, const char *key);

#endif
