/* Helpers shared by libhsm's test suites and benchmark. */
#ifndef HSM_TU_H
#define HSM_TU_H

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "hsm.h"
#include "testutil.h"

/* Open the test token with the PIN from $STATION_HSM_PIN; asserts. */
hsm_ctx *ht_open(void);
X509 *ht_cert(const char *dir, const char *name);
/* A fresh EC key on "P-256" or "P-384". */
EVP_PKEY *ht_ec_key(const char *curve);
/* A CSR for key, self-signed by signer (NULL = key).  It asks for all the
 * things the station must ignore: subject CN=Evil, serialNumber=EVIL, a
 * SAN DNS:evil.example, basicConstraints CA:TRUE, keyUsage keyCertSign. */
X509_REQ *ht_csr(EVP_PKEY *key, EVP_PKEY *signer);
/* A typical profile (serial "SE0001" unless given). */
hsm_leaf_profile ht_profile(const char *serial);
void ht_write_pem(const char *path, X509 *cert);
/* `openssl verify -x509_strict` and `certtool --verify-chain` on leaf; asserts both pass. */
void ht_verify_both(const char *dir, X509 *leaf);
/* Run a shell command line in dir; returns the exit status, output in *out. */
int ht_sh(const char *dir, char **out, const char *fmt, ...) ST_PRINTF(3, 4);

#endif
