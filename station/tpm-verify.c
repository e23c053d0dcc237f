/* The TPM 2.0 attestation gate (tpm-verify.h).  Every TPM structure is
 * unmarshalled by libtss2-mu and must use all the bytes it came in; the
 * checks follow PROTOCOL.md section 11's list. */
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509v3.h>

#include <tss2/tss2_mu.h>

#include "eckey.h"
#include "tpm-verify.h"
#include "verify.h"

int
tv_public_parse(const uint8_t *p, size_t n, const char *what, TPM2B_PUBLIC *out, st_err *err)
{
	size_t off = 0;
	TSS2_RC rc;

	memset(out, 0, sizeof(*out)); /* libtss2-mu refuses a destination with a size set */
	if ((rc = Tss2_MU_TPM2B_PUBLIC_Unmarshal(p, n, &off, out)) != TSS2_RC_SUCCESS)
		return st_err_set(err, ST_E_PROTO, "%s: not a TPM2B_PUBLIC (%zu bytes; libtss2-mu: 0x%x)", what, n, rc);
	if (out->size == 0)
		return st_err_set(err, ST_E_PROTO, "%s: the TPM2B_PUBLIC is empty (size 0: no public area)", what);
	if (off != n)
		return st_err_set(err, ST_E_PROTO, "%s: %zu bytes after the TPM2B_PUBLIC", what, n - off);
	/* libtss2-mu reads the public area without holding it to the size in
	 * front of it: the size must count exactly the public area's bytes. */
	if (out->size != n - 2) /* n >= 2: the size itself unmarshalled */
		return st_err_set(err, ST_E_PROTO, "%s: the TPM2B_PUBLIC's size says %u bytes, its public area has %zu", what,
		    out->size, n - 2);
	return 0;
}

int
tv_name(const TPM2B_PUBLIC *pub, uint8_t name[TV_NAME_LEN], st_err *err)
{
	uint8_t buf[sizeof(TPMT_PUBLIC)];
	size_t off = 0;

	if (pub->publicArea.nameAlg != TPM2_ALG_SHA256)
		return st_err_set(err, ST_E_VERIFY, "nameAlg 0x%04x, not SHA-256", pub->publicArea.nameAlg);
	if (Tss2_MU_TPMT_PUBLIC_Marshal(&pub->publicArea, buf, sizeof(buf), &off) != TSS2_RC_SUCCESS)
		return st_err_set(err, ST_E_PROTO, "public area does not marshal again");
	name[0] = (uint8_t)(TPM2_ALG_SHA256 >> 8);
	name[1] = (uint8_t)TPM2_ALG_SHA256;
	st_sha256(buf, off, name + 2);
	return 0;
}

/* The attributes a key must have (want) and must not have (deny). */
static int
check_attrs(TPMA_OBJECT a, TPMA_OBJECT want, TPMA_OBJECT deny, const char *what, st_err *err)
{
	static const struct { TPMA_OBJECT bit; const char *name, *why; } bits[] = {
		{ TPMA_OBJECT_FIXEDTPM, "fixedTPM", "the key could be duplicated out of its TPM" },
		{ TPMA_OBJECT_FIXEDPARENT, "fixedParent", "the key could be duplicated to another parent" },
		{ TPMA_OBJECT_SENSITIVEDATAORIGIN, "sensitiveDataOrigin", "the TPM did not generate the key (imported?)" },
		{ TPMA_OBJECT_RESTRICTED, "restricted", "the key signs only TPM-made structures" },
		{ TPMA_OBJECT_SIGN_ENCRYPT, "sign", "a signing key" },
		{ TPMA_OBJECT_DECRYPT, "decrypt", "a decryption key" },
		{ TPMA_OBJECT_ADMINWITHPOLICY, "adminWithPolicy", "administration by policy" },
	};
	size_t i;

	for (i = 0; i < sizeof(bits) / sizeof(bits[0]); i++) {
		if ((want & bits[i].bit) && !(a & bits[i].bit))
			return st_err_set(err, ST_E_VERIFY, "%s: attributes 0x%08x: %s is not set (%s)", what, a, bits[i].name,
			    bits[i].why);
		if ((deny & bits[i].bit) && (a & bits[i].bit))
			return st_err_set(err, ST_E_VERIFY, "%s: attributes 0x%08x: %s is set (%s: not this key's role)", what,
			    a, bits[i].name, bits[i].why);
	}
	return 0;
}

int
tv_check_ek(const TPM2B_PUBLIC *ek, X509 *ek_cert, st_err *err)
{
	const TPMT_PUBLIC *p = &ek->publicArea;
	const TPMS_RSA_PARMS *r = &p->parameters.rsaDetail;
	EVP_PKEY *k = X509_get0_pubkey(ek_cert);
	BIGNUM *n = NULL, *e = NULL, *tn = NULL;
	int ret = -1;

	if (p->type != TPM2_ALG_RSA)
		return st_err_set(err, ST_E_VERIFY, "EK public area: type 0x%04x, not RSA", p->type);
	if (p->nameAlg != TPM2_ALG_SHA256)
		return st_err_set(err, ST_E_VERIFY, "EK public area: nameAlg 0x%04x, not SHA-256", p->nameAlg);
	if (check_attrs(p->objectAttributes,
	        TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT | TPMA_OBJECT_SENSITIVEDATAORIGIN |
	            TPMA_OBJECT_ADMINWITHPOLICY | TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_DECRYPT,
	        TPMA_OBJECT_SIGN_ENCRYPT, "EK public area", err) < 0)
		return -1;
	if (r->symmetric.algorithm != TPM2_ALG_AES || r->symmetric.keyBits.aes != 128 || r->symmetric.mode.aes != TPM2_ALG_CFB)
		return st_err_set(err, ST_E_VERIFY, "EK public area: symmetric algorithm is not AES-128-CFB");
	if (r->keyBits != 2048 || p->unique.rsa.size != 256)
		return st_err_set(err, ST_E_VERIFY, "EK public area: %u-bit RSA with a %u-byte modulus, not 2048", r->keyBits,
		    p->unique.rsa.size);
	if (!k || EVP_PKEY_get_base_id(k) != EVP_PKEY_RSA || !EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_RSA_N, &n) ||
	    !EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_RSA_E, &e)) {
		st_err_set(err, ST_E_VERIFY, "EK certificate: not an RSA key");
		goto out;
	}
	if (!(tn = BN_bin2bn(p->unique.rsa.buffer, p->unique.rsa.size, NULL)) || BN_cmp(n, tn) != 0 ||
	    !BN_is_word(e, r->exponent ? r->exponent : 65537)) {
		st_err_set(err, ST_E_VERIFY, "the EK certificate certifies another key than the EK the device sent");
		goto out;
	}
	ret = 0;
out:
	BN_free(n);
	BN_free(e);
	BN_free(tn);
	return ret;
}

int
tv_check_ek_chain(X509 *ek_cert, STACK_OF(X509) *bundle, st_err *err)
{
	X509_STORE *store = X509_STORE_new();
	X509_STORE_CTX *ctx = X509_STORE_CTX_new();
	STACK_OF(X509) *untrusted = sk_X509_new_null();
	int i, ret = -1;

	if (!store || !ctx || !untrusted) {
		st_err_openssl(err, ST_E_NOMEM, "EK chain");
		goto out;
	}
	for (i = 0; i < sk_X509_num(bundle); i++) {
		X509 *x = sk_X509_value(bundle, i);

		if (X509_check_issued(x, x) == X509_V_OK ? !X509_STORE_add_cert(store, x) : !sk_X509_push(untrusted, x)) {
			st_err_openssl(err, ST_E_NOMEM, "EK chain");
			goto out;
		}
	}
	if (X509_STORE_CTX_init(ctx, store, ek_cert, untrusted) != 1) {
		st_err_openssl(err, ST_E_NOMEM, "EK chain");
		goto out;
	}
	if (X509_verify_cert(ctx) != 1) {
		st_err_set(err, ST_E_VERIFY, "EK certificate does not chain to a TPM vendor root of the recipe: %s",
		    X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx)));
		goto out;
	}
	ret = 0;
out:
	sk_X509_free(untrusted); /* the bundle owns them */
	X509_STORE_CTX_free(ctx);
	X509_STORE_free(store);
	return ret;
}

static TPMI_ECC_CURVE
tpm_curve(int nid)
{
	return nid == NID_secp384r1 ? TPM2_ECC_NIST_P384 : TPM2_ECC_NIST_P256;
}

int
tv_check_key(const TPM2B_PUBLIC *k, int restricted, int curve_nid, const char *what, st_err *err)
{
	const TPMT_PUBLIC *p = &k->publicArea;
	const TPMS_ECC_PARMS *e = &p->parameters.eccDetail;
	size_t coord = curve_nid == NID_secp384r1 ? 48 : 32;

	if (p->type != TPM2_ALG_ECC)
		return st_err_set(err, ST_E_VERIFY, "%s: type 0x%04x, not ECC", what, p->type);
	if (p->nameAlg != TPM2_ALG_SHA256)
		return st_err_set(err, ST_E_VERIFY, "%s: nameAlg 0x%04x, not SHA-256", what, p->nameAlg);
	if (e->curveID != tpm_curve(curve_nid))
		return st_err_set(err, ST_E_VERIFY, "%s: curve 0x%04x, the recipe's key_algorithm is %s", what, e->curveID,
		    curve_nid == NID_secp384r1 ? "p384" : "p256");
	if (p->unique.ecc.x.size != coord || p->unique.ecc.y.size != coord)
		return st_err_set(err, ST_E_VERIFY, "%s: point coordinates of %u and %u bytes, not %zu", what,
		    p->unique.ecc.x.size, p->unique.ecc.y.size, coord);
	if (check_attrs(p->objectAttributes,
	        TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT | TPMA_OBJECT_SENSITIVEDATAORIGIN | TPMA_OBJECT_SIGN_ENCRYPT |
	            (restricted ? TPMA_OBJECT_RESTRICTED : 0),
	        TPMA_OBJECT_DECRYPT | (restricted ? 0 : TPMA_OBJECT_RESTRICTED), what, err) < 0)
		return -1;
	if (e->scheme.scheme == TPM2_ALG_ECDSA ? e->scheme.details.ecdsa.hashAlg != TPM2_ALG_SHA256 :
	                                         restricted || e->scheme.scheme != TPM2_ALG_NULL)
		return st_err_set(err, ST_E_VERIFY, "%s: signing scheme 0x%04x is not ECDSA with SHA-256", what,
		    e->scheme.scheme);
	return 0;
}

EVP_PKEY *
tv_pkey(const TPM2B_PUBLIC *k, st_err *err)
{
	const TPMS_ECC_POINT *q = &k->publicArea.unique.ecc;
	int nid = k->publicArea.parameters.eccDetail.curveID == TPM2_ECC_NIST_P384 ? NID_secp384r1 : NID_X9_62_prime256v1;
	EVP_PKEY *pk;

	if (k->publicArea.type != TPM2_ALG_ECC ||
	    !(pk = st_ec_public_key(nid, q->x.buffer, q->x.size, q->y.buffer, q->y.size))) {
		st_err_openssl(err, ST_E_VERIFY, "public area: not a point on the curve");
		return NULL;
	}
	return pk;
}

int
tv_spki(const TPM2B_PUBLIC *k, uint8_t **spki, size_t *len, st_err *err)
{
	EVP_PKEY *pk = tv_pkey(k, err);
	unsigned char *der = NULL;
	int n;

	*spki = NULL;
	if (!pk)
		return -1;
	n = i2d_PUBKEY(pk, &der);
	EVP_PKEY_free(pk);
	if (n <= 0)
		return st_err_openssl(err, ST_E_INTERNAL, "SubjectPublicKeyInfo");
	*spki = der;
	*len = (size_t)n;
	return 0;
}

/* ---- MakeCredential ------------------------------------------------------ */

/* KDFa (TPM 2.0 Part 1, 11.4.10.2): SP 800-108 counter mode with
 * HMAC-SHA256; the label's terminating NUL is part of the input. */
static int
hmac_sha256(const uint8_t *key, size_t key_len, const uint8_t *data, size_t len, uint8_t out[32])
{
	size_t n = 0;

	return EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, key, key_len, data, len, out, 32, &n) && n == 32 ? 0 : -1;
}

/* KDFa (TPM 2.0 Part 1, 11.4.10.2): SP 800-108 counter mode with
 * HMAC-SHA256; the label's terminating NUL is part of the input. */
static int
kdfa(const uint8_t *key, size_t key_len, const char *label, const uint8_t *u, size_t ulen, uint8_t *out, size_t bytes)
{
	uint8_t in[4 + 16 + TV_NAME_LEN + 4], block[32];
	size_t llen = strlen(label) + 1, n, done = 0;
	uint32_t i, nbits = (uint32_t)bytes * 8;
	int ret = 0;

	if (llen > 16 || ulen > TV_NAME_LEN)
		return -1;
	memcpy(in + 4, label, llen);
	if (ulen)
		memcpy(in + 4 + llen, u, ulen);
	n = 4 + llen + ulen;
	in[n] = (uint8_t)(nbits >> 24);
	in[n + 1] = (uint8_t)(nbits >> 16);
	in[n + 2] = (uint8_t)(nbits >> 8);
	in[n + 3] = (uint8_t)nbits;
	for (i = 1; ret == 0 && done < bytes; i++) {
		size_t take = bytes - done < 32 ? bytes - done : 32;

		in[0] = (uint8_t)(i >> 24);
		in[1] = (uint8_t)(i >> 16);
		in[2] = (uint8_t)(i >> 8);
		in[3] = (uint8_t)i;
		if ((ret = hmac_sha256(key, key_len, in, n + 4, block)) == 0) {
			memcpy(out + done, block, take);
			done += take;
		}
	}
	OPENSSL_cleanse(block, sizeof(block));
	return ret;
}

int
tv_make_credential(const TPM2B_PUBLIC *ek, EVP_PKEY *ek_key, const uint8_t name[TV_NAME_LEN], const uint8_t *secret,
    size_t secret_len, uint8_t *cred, size_t cred_cap, size_t *cred_len, uint8_t *enc, size_t enc_cap, size_t *enc_len,
    st_err *err)
{
	static const char label[] = "IDENTITY"; /* with its NUL: the OAEP label of a credential's seed */
	uint8_t seed[32], sym[16], hkey[32], plain[2 + 64], enci[2 + 64 + TV_NAME_LEN], hmac[32], iv[16] = { 0 }, *lab = NULL;
	EVP_PKEY_CTX *pc = NULL;
	EVP_CIPHER_CTX *cc = NULL;
	size_t wrapped = 0, plen = 2 + secret_len;
	int outl = 0, fin = 0, ret = -1;

	if (ek->publicArea.nameAlg != TPM2_ALG_SHA256 || ek->publicArea.parameters.rsaDetail.symmetric.keyBits.aes != 128)
		return st_err_set(err, ST_E_INTERNAL, "MakeCredential: only a SHA-256, AES-128 EK");
	if (secret_len == 0 || secret_len > 64)
		return st_err_set(err, ST_E_INTERNAL, "MakeCredential: secret of %zu bytes", secret_len);
	/* credential: TPM2B_DIGEST(outerHMAC) || CFB(TPM2B_DIGEST(secret)); ID object: u16 size || that */
	if (cred_cap < 2 + 2 + 32 + plen || enc_cap < 2 + 512)
		return st_err_set(err, ST_E_INTERNAL, "MakeCredential: output buffers too small");
	plain[0] = (uint8_t)(secret_len >> 8);
	plain[1] = (uint8_t)secret_len;
	memcpy(plain + 2, secret, secret_len);
	if (RAND_bytes(seed, sizeof(seed)) != 1) {
		st_err_openssl(err, ST_E_CRYPTO, "MakeCredential: seed");
		goto out;
	}
	/* The seed, wrapped to the EK: RSA-OAEP, SHA-256, label "IDENTITY\0" (Part 1, B.10.3). */
	if (!(lab = OPENSSL_memdup(label, sizeof(label))) || !(pc = EVP_PKEY_CTX_new(ek_key, NULL)) ||
	    EVP_PKEY_encrypt_init(pc) <= 0 || EVP_PKEY_CTX_set_rsa_padding(pc, RSA_PKCS1_OAEP_PADDING) <= 0 ||
	    EVP_PKEY_CTX_set_rsa_oaep_md(pc, EVP_sha256()) <= 0 || EVP_PKEY_CTX_set_rsa_mgf1_md(pc, EVP_sha256()) <= 0 ||
	    EVP_PKEY_CTX_set0_rsa_oaep_label(pc, lab, sizeof(label)) <= 0) {
		st_err_openssl(err, ST_E_CRYPTO, "MakeCredential: RSA-OAEP");
		goto out;
	}
	lab = NULL; /* owned by pc */
	wrapped = enc_cap - 2;
	if (EVP_PKEY_encrypt(pc, enc + 2, &wrapped, seed, sizeof(seed)) <= 0 || wrapped > 0xffff) {
		st_err_openssl(err, ST_E_CRYPTO, "MakeCredential: RSA-OAEP");
		goto out;
	}
	enc[0] = (uint8_t)(wrapped >> 8);
	enc[1] = (uint8_t)wrapped;
	*enc_len = 2 + wrapped;
	/* symKey = KDFa(seed, "STORAGE", name), encIdentity = AES-128-CFB(symKey, IV 0, TPM2B_DIGEST(secret)) */
	if (kdfa(seed, sizeof(seed), "STORAGE", name, TV_NAME_LEN, sym, sizeof(sym)) < 0 ||
	    kdfa(seed, sizeof(seed), "INTEGRITY", NULL, 0, hkey, sizeof(hkey)) < 0 || !(cc = EVP_CIPHER_CTX_new()) ||
	    EVP_EncryptInit_ex(cc, EVP_aes_128_cfb128(), NULL, sym, iv) != 1 ||
	    EVP_EncryptUpdate(cc, enci, &outl, plain, (int)plen) != 1 || EVP_EncryptFinal_ex(cc, enci + outl, &fin) != 1 ||
	    (size_t)(outl + fin) != plen) {
		st_err_openssl(err, ST_E_CRYPTO, "MakeCredential: credential encryption");
		goto out;
	}
	/* outerHMAC = HMAC-SHA256(KDFa(seed, "INTEGRITY"), encIdentity || name) */
	memcpy(enci + plen, name, TV_NAME_LEN);
	if (hmac_sha256(hkey, sizeof(hkey), enci, plen + TV_NAME_LEN, hmac) < 0) {
		st_err_openssl(err, ST_E_CRYPTO, "MakeCredential: integrity HMAC");
		goto out;
	}
	*cred_len = 2 + 2 + 32 + plen;
	cred[0] = (uint8_t)((*cred_len - 2) >> 8);
	cred[1] = (uint8_t)(*cred_len - 2);
	cred[2] = 0;
	cred[3] = 32;
	memcpy(cred + 4, hmac, 32);
	memcpy(cred + 36, enci, plen);
	ret = 0;
out:
	OPENSSL_cleanse(seed, sizeof(seed));
	OPENSSL_cleanse(sym, sizeof(sym));
	OPENSSL_cleanse(hkey, sizeof(hkey));
	OPENSSL_cleanse(plain, sizeof(plain));
	OPENSSL_free(lab);
	EVP_CIPHER_CTX_free(cc);
	EVP_PKEY_CTX_free(pc);
	return ret;
}

int
tv_check_activation(const uint8_t *p, size_t n, const uint8_t *secret, size_t secret_len, st_err *err)
{
	TPM2B_DIGEST d = { 0 };
	size_t off = 0;

	if (Tss2_MU_TPM2B_DIGEST_Unmarshal(p, n, &off, &d) != TSS2_RC_SUCCESS || off != n)
		return st_err_set(err, ST_E_PROTO, "TPM_ACTIVATE certInfo: not exactly one TPM2B_DIGEST (%zu bytes)", n);
	if (d.size != secret_len || CRYPTO_memcmp(d.buffer, secret, secret_len) != 0)
		return st_err_set(err, ST_E_VERIFY, "credential activation gave back another secret: the IAK is not in the "
		                                    "TPM whose EK certificate verified");
	return 0;
}

/* ---- signatures ---------------------------------------------------------------- */

int
tv_check_signature(const uint8_t *sig, size_t sig_len, EVP_PKEY *key, const char *signer, const uint8_t *msg,
    size_t msg_len, const char *what, st_err *err)
{
	TPMT_SIGNATURE s;
	ECDSA_SIG *es = NULL;
	BIGNUM *r = NULL, *sv = NULL;
	unsigned char *der = NULL;
	size_t off = 0;
	int der_len, ret = -1;

	memset(&s, 0, sizeof(s));
	if (Tss2_MU_TPMT_SIGNATURE_Unmarshal(sig, sig_len, &off, &s) != TSS2_RC_SUCCESS || off != sig_len)
		return st_err_set(err, ST_E_PROTO, "%s: not exactly one TPMT_SIGNATURE (%zu bytes)", what, sig_len);
	if (s.sigAlg != TPM2_ALG_ECDSA || s.signature.ecdsa.hash != TPM2_ALG_SHA256)
		return st_err_set(err, ST_E_VERIFY, "%s: algorithm 0x%04x, not ECDSA with SHA-256", what, s.sigAlg);
	if (!(es = ECDSA_SIG_new()) ||
	    !(r = BN_bin2bn(s.signature.ecdsa.signatureR.buffer, s.signature.ecdsa.signatureR.size, NULL)) ||
	    !(sv = BN_bin2bn(s.signature.ecdsa.signatureS.buffer, s.signature.ecdsa.signatureS.size, NULL)) ||
	    !ECDSA_SIG_set0(es, r, sv)) {
		st_err_openssl(err, ST_E_NOMEM, "%s", what);
		goto out;
	}
	r = sv = NULL; /* owned by es */
	if ((der_len = i2d_ECDSA_SIG(es, &der)) <= 0) {
		st_err_openssl(err, ST_E_NOMEM, "%s", what);
		goto out;
	}
	if (sv_verify_sig(key, msg, msg_len, der, (size_t)der_len, err) < 0) {
		st_err_set(err, ST_E_VERIFY, "%s: not signed by %s", what, signer);
		goto out;
	}
	ret = 0;
out:
	OPENSSL_free(der);
	BN_free(r);
	BN_free(sv);
	ECDSA_SIG_free(es);
	return ret;
}

/* ---- Certify ----------------------------------------------------------------- */

int
tv_check_certify(const uint8_t *attest, size_t attest_len, const uint8_t *sig, size_t sig_len, const TPM2B_PUBLIC *iak,
    const TPM2B_PUBLIC *idevid, const uint8_t *nonce, size_t nonce_len, st_err *err)
{
	TPMS_ATTEST a;
	uint8_t name[TV_NAME_LEN];
	EVP_PKEY *pk;
	size_t off = 0;
	int ret;

	memset(&a, 0, sizeof(a));
	if (Tss2_MU_TPMS_ATTEST_Unmarshal(attest, attest_len, &off, &a) != TSS2_RC_SUCCESS)
		return st_err_set(err, ST_E_PROTO, "TPM_CERTIFY attest: not a TPMS_ATTEST (%zu bytes)", attest_len);
	if (off != attest_len)
		return st_err_set(err, ST_E_PROTO, "TPM_CERTIFY attest: %zu bytes after the TPMS_ATTEST", attest_len - off);
	if (a.magic != TPM2_GENERATED_VALUE)
		return st_err_set(err, ST_E_VERIFY, "TPMS_ATTEST magic 0x%08x is not TPM_GENERATED_VALUE: not made by a TPM",
		    a.magic);
	if (a.type != TPM2_ST_ATTEST_CERTIFY)
		return st_err_set(err, ST_E_VERIFY, "TPMS_ATTEST type 0x%04x is not TPM_ST_ATTEST_CERTIFY", a.type);
	if (a.extraData.size != nonce_len || CRYPTO_memcmp(a.extraData.buffer, nonce, nonce_len) != 0)
		return st_err_set(err, ST_E_VERIFY, "TPMS_ATTEST is not for this session's nonce (replayed certification?)");
	if (tv_name(idevid, name, err) < 0)
		return st_err_prefix(err, "IDevID");
	if (a.attested.certify.name.size != TV_NAME_LEN || memcmp(a.attested.certify.name.name, name, TV_NAME_LEN) != 0)
		return st_err_set(err, ST_E_VERIFY, "TPMS_ATTEST certifies another object than the IDevID key the device sent");
	if (!(pk = tv_pkey(iak, err)))
		return st_err_prefix(err, "IAK");
	ret = tv_check_signature(sig, sig_len, pk, "the IAK", attest, attest_len, "TPM_CERTIFY signature", err);
	EVP_PKEY_free(pk);
	return ret;
}
