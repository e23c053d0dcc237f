/* An EC public key from its affine coordinates, as TPM structures carry
 * them (TPMS_ECC_POINT): shared by tpmdut and the station's TPM checks. */
#ifndef ST_ECKEY_H
#define ST_ECKEY_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

/* nid: NID_X9_62_prime256v1 or NID_secp384r1; x and y big-endian, each
 * exactly the curve's size.  NULL when the point is not on the curve (or
 * sizes are wrong); the OpenSSL error queue says why. */
EVP_PKEY *st_ec_public_key(int nid, const uint8_t *x, size_t xlen, const uint8_t *y, size_t ylen);

#endif
