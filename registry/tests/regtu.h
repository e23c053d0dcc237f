/* Stations for the registry tests: a real journal sealed with a file audit
 * key certified by the test PKI, devices with real certificates, exported
 * as `station audit export` does. */
#ifndef REGTU_H
#define REGTU_H

#include <openssl/evp.h>

#include "audit-tu.h"
#include "pgtu.h"

typedef struct regtu_station {
	char *dir; /* the journal */
	audit_journal *j;
	atu_signer sg;
} regtu_station;

/* Devices per batch of the journals opened next (4; the benchmark uses more). */
extern unsigned regtu_batch_devices;
/* A fresh journal for station id, sealed by signer (a PEM pair in tu_pki). */
void regtu_station_open(regtu_station *s, const char *station, const char *signer);
void regtu_station_close(regtu_station *s);
/* identify, keygen, issuing, issued (with a certificate of serial, issued by
 * the test intermediate's name, for key or a fresh key when NULL), done.
 * rework: every record carries the rework details. */
/* When set, regtu_provision journals that SE's attestation certificate
 * instead of the device's own: one attestation certificate under two serials. */
extern const char *regtu_attest_as;
void regtu_provision(regtu_station *s, const char *device, const char *serial, EVP_PKEY *key, int rework);
/* A revoke record for the certificate serial of device. */
/* One record of the caller's making (steals details). */
void regtu_append(regtu_station *s, const char *device, const char *step, const char *result, json_t *details);
void regtu_revoke(regtu_station *s, const char *device, const char *serial);
/* Seal what is open and export every sealed batch to a fresh folder (malloc'd path). */
char *regtu_export(regtu_station *s);
/* A fresh database name in pg, initialised by `station-registry init`;
 * returns the ingest role's conninfo for it and, when admin is not NULL,
 * the superuser's in *admin (both malloc'd). */
char *regtu_fresh_db(const pgtu *pg, const char *name, char **admin);
/* station-registry --db DB ARGS (a shell fragment, printf-style); its
 * status, its output in *out (malloc'd). */
int regtu_reg(const char *db, char **out, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* station-registry ingest of bundle, trusting the test PKI's root. */
int regtu_ingest(const char *db, const char *bundle, char **out);
/* A fresh P-256 key. */
EVP_PKEY *regtu_key(void);

#endif
