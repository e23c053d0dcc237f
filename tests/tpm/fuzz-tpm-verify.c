/* Fuzz target: the TPM structure parsers and checks of station/tpm-verify.c
 * on arbitrary bytes.  The first byte picks one:
 *   0  a TPM2B_PUBLIC: parse, and if it parses, re-marshal to the same
 *      bytes and run the key checks, the name and the OpenSSL key on it;
 *   1  u16 n, IAK TPM2B_PUBLIC, u16 n, IDevID TPM2B_PUBLIC, u16 n, TPMS_ATTEST,
 *      then a TPMT_SIGNATURE: the certification check (with a fixed nonce);
 *   2  a TPM2B_DIGEST: the activation answer check.
 * Nothing may crash, and a refusal must say why (a message). */
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <tss2/tss2_mu.h>

#include "tpm-verify.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint8_t fixed[32] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
	17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32 };

/* u16 length-prefixed piece at *p; NULL when it does not fit. */
static const uint8_t *
piece(const uint8_t **p, size_t *left, size_t *n)
{
	const uint8_t *q;

	if (*left < 2)
		return NULL;
	*n = (size_t)(*p)[0] << 8 | (*p)[1];
	if (*left - 2 < *n)
		return NULL;
	q = *p + 2;
	*p += 2 + *n;
	*left -= 2 + *n;
	return q;
}

static void
refused(int rc, const st_err *err)
{
	if (rc < 0 && !err->msg[0])
		abort(); /* every refusal says why */
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	TPM2B_PUBLIC a, b;
	uint8_t again[sizeof(TPM2B_PUBLIC)], name[TV_NAME_LEN];
	const uint8_t *p = data + 1, *x, *y, *att;
	size_t left = size ? size - 1 : 0, nx, ny, na, off = 0;
	EVP_PKEY *k;
	st_err err;

	if (!size)
		return 0;
	err.msg[0] = '\0';
	switch (data[0] % 3) {
	case 0:
		if (tv_public_parse(p, left, "public", &a, &err) < 0) {
			refused(-1, &err);
			break;
		}
		if (Tss2_MU_TPM2B_PUBLIC_Marshal(&a, again, sizeof(again), &off) != TSS2_RC_SUCCESS || off != left ||
		    memcmp(again, p, left) != 0)
			abort(); /* what parses exactly must marshal back to the same bytes */
		refused(tv_check_key(&a, 1, 415 /* NID_X9_62_prime256v1 */, "IAK", &err), &err);
		refused(tv_check_key(&a, 0, 415, "IDevID", &err), &err);
		refused(tv_name(&a, name, &err), &err);
		if ((k = tv_pkey(&a, &err)))
			EVP_PKEY_free(k);
		else
			refused(-1, &err);
		break;
	case 1:
		if (!(x = piece(&p, &left, &nx)) || !(y = piece(&p, &left, &ny)) || !(att = piece(&p, &left, &na)))
			break;
		if (tv_public_parse(x, nx, "IAK", &a, &err) < 0 || tv_public_parse(y, ny, "IDevID", &b, &err) < 0) {
			refused(-1, &err);
			break;
		}
		refused(tv_check_certify(att, na, p, left, &a, &b, fixed, sizeof(fixed), &err), &err);
		break;
	default:
		refused(tv_check_activation(p, left, fixed, sizeof(fixed), &err), &err);
		break;
	}
	return 0;
}
