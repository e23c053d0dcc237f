#include <string.h>

#include <openssl/core_names.h>
#include <openssl/obj_mac.h>
#include <openssl/param_build.h>

#include "eckey.h"

EVP_PKEY *
st_ec_public_key(int nid, const uint8_t *x, size_t xlen, const uint8_t *y, size_t ylen)
{
	size_t coord = nid == NID_secp384r1 ? 48 : 32;
	const char *group = nid == NID_secp384r1 ? "secp384r1" : "prime256v1";
	OSSL_PARAM_BLD *b = NULL;
	OSSL_PARAM *params = NULL;
	EVP_PKEY_CTX *c = NULL;
	EVP_PKEY *k = NULL;
	uint8_t point[1 + 2 * 48];

	if ((nid != NID_secp384r1 && nid != NID_X9_62_prime256v1) || xlen != coord || ylen != coord)
		return NULL;
	point[0] = 4; /* uncompressed */
	memcpy(point + 1, x, coord);
	memcpy(point + 1 + coord, y, coord);
	if (!(b = OSSL_PARAM_BLD_new()) || !(c = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL)) ||
	    !OSSL_PARAM_BLD_push_utf8_string(b, OSSL_PKEY_PARAM_GROUP_NAME, group, 0) ||
	    !OSSL_PARAM_BLD_push_octet_string(b, OSSL_PKEY_PARAM_PUB_KEY, point, 1 + 2 * coord) ||
	    !(params = OSSL_PARAM_BLD_to_param(b)) || EVP_PKEY_fromdata_init(c) <= 0 ||
	    EVP_PKEY_fromdata(c, &k, EVP_PKEY_PUBLIC_KEY, params) <= 0)
		k = NULL;
	OSSL_PARAM_free(params);
	OSSL_PARAM_BLD_free(b);
	EVP_PKEY_CTX_free(c);
	return k;
}
