/* Helpers for the audit suites: a file-key signer certified by the test
 * root (the token's audit key is exercised through `station audit seal`),
 * and small file utilities. */
#ifndef AUDIT_TU_H
#define AUDIT_TU_H

#include <stddef.h>
#include <stdint.h>

#include "audit.h"
#include "testutil.h"

/* A signer made of PEM files in dir: base.key and base.pem. */
typedef struct atu_signer {
	EVP_PKEY *key;
	X509 *cert;
	audit_signer s;
} atu_signer;

/* Make, in the test PKI dir, a P-256 key + certificate named base signed by
 * issuer (the base name of a CA's .pem/.key in pki, e.g. "root-ca") or
 * self-signed (issuer NULL), with the
 * audit certificate's profile (digitalSignature, EKU emailProtection). */
void atu_make_signer(const char *pki, const char *base, const char *issuer);
void atu_signer_load(atu_signer *sg, const char *pki, const char *base);
void atu_signer_clear(atu_signer *sg);
X509_STORE *atu_trust(const char *pki); /* root-ca.pem */
/* One test PKI for a whole test binary, with the signers "seal" (issued by
 * root-ca) and "other" (self-signed): register atu_pki_setup and
 * atu_pki_teardown as an unchecked fixture; atu_pki is its directory. */
extern char *atu_pki;
void atu_pki_setup(void);
void atu_pki_teardown(void);

/* Whole file, ck_assert'ed to exist; NUL-terminated. */
char *atu_read(const char *dir, const char *name, size_t *len);
void atu_write(const char *dir, const char *name, const void *p, size_t len);
void atu_append_bytes(const char *dir, const char *name, const void *p, size_t len);
int atu_exists(const char *dir, const char *name);
/* Number of lines (newlines) in a file. */
unsigned atu_lines(const char *dir, const char *name);
/* Byte offset of the start of line `line` (1-based) in buf. */
size_t atu_line_offset(const char *buf, size_t len, unsigned line);
void atu_copy_dir(const char *src, const char *dst);

/* Append a simple event and return its seq (ck_assert on failure). */
uint64_t atu_append(audit_journal *j, const char *device, const char *step, const char *result);

#endif
