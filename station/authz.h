/* Signed authorizations: a person of the authorization role says, in a
 * CMS-signed JSON token, that these SEs may be reworked (or a halted run
 * resumed), why, and until when.  The token is one DER file (CMS with the
 * JSON inside); recipes/SCHEMA.md and audit/FORMAT.md describe it. */
#ifndef STATION_AUTHZ_H
#define STATION_AUTHZ_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "st.h"

#define AUTHZ_MAX_SERIALS 1000
#define AUTHZ_MAX_SECONDS (31L * 86400) /* the longest --expires */
#define AUTHZ_ID_HEX 32

typedef struct authz {
	char id[AUTHZ_ID_HEX + 1]; /* 128 random bits, lower-case hex */
	char type[16];             /* "rework", "resume" */
	char reason[256];
	char signer[512];          /* the signer's subject */
	time_t issued, expires;
	char **serials;            /* the SEs it names (rework) */
	size_t n_serials;
	uint64_t halt_seq;         /* resume: the halt it lifts, its record's seq ... */
	char halt_id[AUTHZ_ID_HEX + 1]; /* ... and halt_id */
} authz;

/* Parse a duration: N followed by s, m, h or d ("8h"); 1 s .. AUTHZ_MAX_SECONDS. */
int authz_duration_parse(const char *text, long *seconds, st_err *err);

/* Make a token: *der (malloc'd) signed by key/cert, which must hold the
 * authorization role.  A "resume" names the halt it lifts (halt_seq,
 * halt_id); the other types name none (0, NULL). */
int authz_create(const char *type, const char *const *serials, size_t n_serials, uint64_t halt_seq,
    const char *halt_id, const char *reason, long seconds, EVP_PKEY *key, X509 *cert, uint8_t **der, size_t *der_len,
    st_err *err);

/* Read and check the token at path: CMS up to trust_pem (the recipe's
 * authorizers), a signer of the authorization role, type want_type, issued
 * no later than now, not expired at now, a well-formed body.  Every refusal
 * says which file and why (ST_E_VERIFY for a bad token, ST_E_CONFIG for a
 * bad trust file or a missing token file). */
int authz_load(const char *path, const char *want_type, const char *trust_pem, time_t now, authz **out, st_err *err);
/* The signed body alone (authz_load calls it once the CMS verifies; the
 * fuzz target calls it directly), strictly: every key known and of its
 * type, nothing else.  a must be zeroed; authz_free frees what it filled
 * in, on success or not.  ST_E_VERIFY naming path and the key. */
int authz_parse_body(const char *path, const uint8_t *text, size_t len, authz *a, st_err *err);
/* 1 when a names serial. */
int authz_names(const authz *a, const char *serial);
void authz_free(authz *a);

#endif
