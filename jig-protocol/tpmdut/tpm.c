/* tpmdut's TPM side: tpm2-tss ESAPI, one context per TPM.  Keys are
 * created in the TPM from fixed templates and persisted; nothing here ever
 * holds a private key of the TPM's (the one software key is the imported
 * IDevID of a test fault, which is the point of that fault).  Transient
 * objects and sessions are flushed after each use: without a resource
 * manager the TPM has few object slots. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/obj_mac.h>
#include <openssl/x509.h>

#include <tss2/tss2_esys.h>
#include <tss2/tss2_mu.h>
#include <tss2/tss2_rc.h>
#include <tss2/tss2_tctildr.h>

#include "eckey.h"
#include "tpmdut.h"

typedef struct tpm_ctx {
	TSS2_TCTI_CONTEXT *tcti;
	ESYS_CONTEXT *esys;
} tpm_ctx;

struct tpm_dev {
	tpm_ctx main, other; /* other: the keys' TPM when keys_tcti is set */
	unsigned faults;
	ESYS_TR imported;    /* the imported IDevID (fault), loaded for this session */
	TPM2B_PUBLIC imported_pub;
	int rework_signed;   /* TPM_REWORK_SIGN answered since the DUT was powered: TPM_RETIRE may run */
};

/* The one place a TSS2_RC becomes words. */
static int
tss_fail(st_err *err, int jig_code, const char *what, TSS2_RC rc)
{
	const char *text = Tss2_RC_Decode(rc);
	char clean[160];
	size_t i;

	/* Only printable ASCII goes into an ERROR message (PROTOCOL.md section 4). */
	for (i = 0; text && text[i] && i + 1 < sizeof(clean); i++)
		clean[i] = text[i] >= 0x20 && text[i] <= 0x7e ? text[i] : '?';
	clean[i] = '\0';
	st_err_set(err, ST_E_REMOTE, "%s: 0x%x %s", what, rc, clean);
	err->remote = jig_code;
	return -1;
}

static int
jig_fail(st_err *err, int jig_code, const char *why)
{
	st_err_set(err, ST_E_REMOTE, "%s", why);
	err->remote = jig_code;
	return -1;
}

static int
ctx_open(tpm_ctx *c, const char *tcti, st_err *err)
{
	TSS2_RC rc;

	if ((rc = Tss2_TctiLdr_Initialize(tcti, &c->tcti)) != TSS2_RC_SUCCESS) {
		c->tcti = NULL;
		return tss_fail(err, JIG_E_SE_FAILURE, "TCTI", rc);
	}
	if ((rc = Esys_Initialize(&c->esys, c->tcti, NULL)) != TSS2_RC_SUCCESS) {
		c->esys = NULL;
		return tss_fail(err, JIG_E_SE_FAILURE, "Esys_Initialize", rc);
	}
	return 0;
}

static void
ctx_close(tpm_ctx *c)
{
	if (c->esys)
		Esys_Finalize(&c->esys);
	if (c->tcti)
		Tss2_TctiLdr_Finalize(&c->tcti);
}

tpm_dev *
tpm_dev_open(const tpmdut_device_cfg *cfg, st_err *err)
{
	tpm_dev *d = calloc(1, sizeof(*d));

	if (!d) {
		st_err_set(err, ST_E_NOMEM, "out of memory");
		return NULL;
	}
	d->faults = cfg->faults;
	d->imported = ESYS_TR_NONE;
	if (ctx_open(&d->main, cfg->tcti, err) < 0 || (cfg->keys_tcti && ctx_open(&d->other, cfg->keys_tcti, err) < 0)) {
		st_err_prefix(err, "TPM %s", cfg->keys_tcti && d->main.esys ? cfg->keys_tcti : cfg->tcti);
		tpm_dev_close(d);
		return NULL;
	}
	return d;
}

void
tpm_dev_close(tpm_dev *d)
{
	if (!d)
		return;
	if (d->imported != ESYS_TR_NONE)
		Esys_FlushContext(d->main.esys, d->imported);
	ctx_close(&d->main);
	ctx_close(&d->other);
	free(d);
}

/* Where the IAK and IDevID live. */
static ESYS_CONTEXT *
keys_ctx(tpm_dev *d)
{
	return d->other.esys ? d->other.esys : d->main.esys;
}

static void
flush(ESYS_CONTEXT *e, ESYS_TR *h)
{
	if (*h != ESYS_TR_NONE)
		Esys_FlushContext(e, *h);
	*h = ESYS_TR_NONE;
}

static int
blob_put(jig_blob *b, const uint8_t *p, size_t n, const char *what, st_err *err)
{
	if (n > JIG_BLOB_MAX) {
		st_err_set(err, ST_E_REMOTE, "%s: %zu bytes do not fit in a protocol blob", what, n);
		err->remote = JIG_E_SE_FAILURE;
		return -1;
	}
	memcpy(b->data, p, n);
	b->len = n;
	return 0;
}

static int
put_public(jig_blob *b, const TPM2B_PUBLIC *pub, st_err *err)
{
	size_t off = 0;
	uint8_t buf[sizeof(TPM2B_PUBLIC)];
	TSS2_RC rc = Tss2_MU_TPM2B_PUBLIC_Marshal(pub, buf, sizeof(buf), &off);

	if (rc != TSS2_RC_SUCCESS)
		return tss_fail(err, JIG_E_SE_FAILURE, "marshal TPM2B_PUBLIC", rc);
	return blob_put(b, buf, off, "TPM2B_PUBLIC", err);
}

static int
put_signature(jig_blob *b, const TPMT_SIGNATURE *sig, st_err *err)
{
	size_t off = 0;
	uint8_t buf[sizeof(TPMT_SIGNATURE)];
	TSS2_RC rc = Tss2_MU_TPMT_SIGNATURE_Marshal(sig, buf, sizeof(buf), &off);

	if (rc != TSS2_RC_SUCCESS)
		return tss_fail(err, JIG_E_SE_FAILURE, "marshal TPMT_SIGNATURE", rc);
	return blob_put(b, buf, off, "TPMT_SIGNATURE", err);
}

/* ---- templates ---------------------------------------------------------- */

/* TCG EK Credential Profile, template L-1 (RSA 2048): the EK that the EK
 * certificate at 0x01c00002 certifies. */
static void
ek_template(TPM2B_PUBLIC *t)
{
	static const uint8_t policy[32] = { 0x83, 0x71, 0x97, 0x67, 0x44, 0x84, 0xb3, 0xf8, 0x1a, 0x90, 0xcc, 0x8d, 0x46,
		0xa5, 0xd7, 0x24, 0xfd, 0x52, 0xd7, 0x6e, 0x06, 0x52, 0x0b, 0x64, 0xf2, 0xa1, 0xda, 0x1b, 0x33, 0x14, 0x69,
		0xaa };

	memset(t, 0, sizeof(*t));
	t->publicArea.type = TPM2_ALG_RSA;
	t->publicArea.nameAlg = TPM2_ALG_SHA256;
	t->publicArea.objectAttributes = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT |
	    TPMA_OBJECT_SENSITIVEDATAORIGIN | TPMA_OBJECT_ADMINWITHPOLICY | TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_DECRYPT;
	t->publicArea.authPolicy.size = 32;
	memcpy(t->publicArea.authPolicy.buffer, policy, 32);
	t->publicArea.parameters.rsaDetail.symmetric.algorithm = TPM2_ALG_AES;
	t->publicArea.parameters.rsaDetail.symmetric.keyBits.aes = 128;
	t->publicArea.parameters.rsaDetail.symmetric.mode.aes = TPM2_ALG_CFB;
	t->publicArea.parameters.rsaDetail.scheme.scheme = TPM2_ALG_NULL;
	t->publicArea.parameters.rsaDetail.keyBits = 2048;
	t->publicArea.unique.rsa.size = 256;
}

/* The parent of the IAK and IDevID: an ECC P-256 storage primary in the
 * endorsement hierarchy, so TPM2_Clear (which flushes the owner's storage
 * hierarchy) does not take the device's identity with it. */
static void
parent_template(TPM2B_PUBLIC *t)
{
	memset(t, 0, sizeof(*t));
	t->publicArea.type = TPM2_ALG_ECC;
	t->publicArea.nameAlg = TPM2_ALG_SHA256;
	t->publicArea.objectAttributes = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT |
	    TPMA_OBJECT_SENSITIVEDATAORIGIN | TPMA_OBJECT_USERWITHAUTH | TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_DECRYPT |
	    TPMA_OBJECT_NODA;
	t->publicArea.parameters.eccDetail.symmetric.algorithm = TPM2_ALG_AES;
	t->publicArea.parameters.eccDetail.symmetric.keyBits.aes = 128;
	t->publicArea.parameters.eccDetail.symmetric.mode.aes = TPM2_ALG_CFB;
	t->publicArea.parameters.eccDetail.scheme.scheme = TPM2_ALG_NULL;
	t->publicArea.parameters.eccDetail.curveID = TPM2_ECC_NIST_P256;
	t->publicArea.parameters.eccDetail.kdf.scheme = TPM2_ALG_NULL;
}

/* IAK (restricted signing) or IDevID (signing): ECC P-256, ECDSA-SHA256,
 * made in the TPM (sensitiveDataOrigin), never to leave it (fixedTPM,
 * fixedParent). */
static void
key_template(TPM2B_PUBLIC *t, int restricted)
{
	memset(t, 0, sizeof(*t));
	t->publicArea.type = TPM2_ALG_ECC;
	t->publicArea.nameAlg = TPM2_ALG_SHA256;
	t->publicArea.objectAttributes = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT |
	    TPMA_OBJECT_SENSITIVEDATAORIGIN | TPMA_OBJECT_USERWITHAUTH | TPMA_OBJECT_SIGN_ENCRYPT |
	    (restricted ? TPMA_OBJECT_RESTRICTED : 0);
	t->publicArea.parameters.eccDetail.symmetric.algorithm = TPM2_ALG_NULL;
	t->publicArea.parameters.eccDetail.scheme.scheme = TPM2_ALG_ECDSA;
	t->publicArea.parameters.eccDetail.scheme.details.ecdsa.hashAlg = TPM2_ALG_SHA256;
	t->publicArea.parameters.eccDetail.curveID = TPM2_ECC_NIST_P256;
	t->publicArea.parameters.eccDetail.kdf.scheme = TPM2_ALG_NULL;
}

/* ---- helpers -------------------------------------------------------------- */

/* An ESYS_TR for a persistent handle or NV index; ESYS_TR_NONE when absent. */
static ESYS_TR
from_tpm(ESYS_CONTEXT *e, TPM2_HANDLE h)
{
	ESYS_TR tr = ESYS_TR_NONE;

	if (Esys_TR_FromTPMPublic(e, h, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &tr) != TSS2_RC_SUCCESS)
		return ESYS_TR_NONE;
	return tr;
}

/* The RSA EK: the persisted one when there is one, else made again from
 * the template (the same key: primary keys derive from the EPS). */
static int
ek_load(ESYS_CONTEXT *e, ESYS_TR *ek, int *transient, TPM2B_PUBLIC **pub, st_err *err)
{
	TPM2B_SENSITIVE_CREATE sens = { 0 };
	TPM2B_DATA outside = { 0 };
	TPML_PCR_SELECTION pcrs = { 0 };
	TPM2B_PUBLIC tmpl;
	TSS2_RC rc;

	*transient = 0;
	if ((*ek = from_tpm(e, TPMDUT_EK_HANDLE)) != ESYS_TR_NONE) {
		if (!pub || Esys_ReadPublic(e, *ek, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, pub, NULL, NULL) ==
		        TSS2_RC_SUCCESS)
			return 0;
		Esys_TR_Close(e, ek);
	}
	ek_template(&tmpl);
	if ((rc = Esys_CreatePrimary(e, ESYS_TR_RH_ENDORSEMENT, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &sens,
	         &tmpl, &outside, &pcrs, ek, pub, NULL, NULL, NULL)) != TSS2_RC_SUCCESS)
		return tss_fail(err, JIG_E_SE_FAILURE, "TPM2_CreatePrimary (EK)", rc);
	*transient = 1;
	return 0;
}

static void
ek_done(ESYS_CONTEXT *e, ESYS_TR *ek, int transient)
{
	if (transient)
		flush(e, ek);
	else if (*ek != ESYS_TR_NONE)
		Esys_TR_Close(e, ek);
}

static UINT16
nv_buffer_max(ESYS_CONTEXT *e)
{
	TPMS_CAPABILITY_DATA *cap = NULL;
	TPMI_YES_NO more;
	UINT16 n = 512;

	if (Esys_GetCapability(e, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, TPM2_CAP_TPM_PROPERTIES,
	        TPM2_PT_NV_BUFFER_MAX, 1, &more, &cap) == TSS2_RC_SUCCESS && cap->data.tpmProperties.count == 1 &&
	    cap->data.tpmProperties.tpmProperty[0].property == TPM2_PT_NV_BUFFER_MAX &&
	    cap->data.tpmProperties.tpmProperty[0].value >= 64 && cap->data.tpmProperties.tpmProperty[0].value <= 2048)
		n = (UINT16)cap->data.tpmProperties.tpmProperty[0].value;
	Esys_Free(cap);
	return n;
}

/* Attributes of an NV index (0 when it is not defined) and, with data, its
 * contents when written. */
static int
nv_get(ESYS_CONTEXT *e, TPM2_HANDLE index, uint32_t *attrs, jig_blob *data, st_err *err)
{
	TPM2B_NV_PUBLIC *pub = NULL;
	TPM2B_MAX_NV_BUFFER *chunk = NULL;
	ESYS_TR nv = from_tpm(e, index);
	UINT16 max, off = 0, size;
	TSS2_RC rc;
	int ret = -1;

	*attrs = 0;
	if (data)
		data->len = 0;
	if (nv == ESYS_TR_NONE)
		return 0;
	if ((rc = Esys_NV_ReadPublic(e, nv, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &pub, NULL)) != TSS2_RC_SUCCESS) {
		tss_fail(err, JIG_E_SE_FAILURE, "TPM2_NV_ReadPublic", rc);
		goto out;
	}
	*attrs = pub->nvPublic.attributes;
	size = pub->nvPublic.dataSize;
	if (!data || !(*attrs & TPMA_NV_WRITTEN)) {
		ret = 0;
		goto out;
	}
	if (size > JIG_BLOB_MAX) {
		jig_fail(err, JIG_E_SE_FAILURE, "NV index larger than a protocol blob");
		goto out;
	}
	max = nv_buffer_max(e);
	while (off < size) {
		UINT16 n = size - off < max ? size - off : max;

		/* Read with the index's own (empty) authorization: AUTHREAD. */
		if ((rc = Esys_NV_Read(e, nv, nv, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, n, off, &chunk)) !=
		    TSS2_RC_SUCCESS) {
			tss_fail(err, JIG_E_SE_FAILURE, "TPM2_NV_Read", rc);
			goto out;
		}
		memcpy(data->data + off, chunk->buffer, chunk->size);
		off += chunk->size;
		Esys_Free(chunk);
		chunk = NULL;
		if (n == 0)
			break;
	}
	data->len = off;
	ret = 0;
out:
	Esys_Free(pub);
	Esys_TR_Close(e, &nv);
	return ret;
}

/* ---- TPM_INFO --------------------------------------------------------------- */

int
tpm_dev_info(tpm_dev *d, jig_tpm_info *out, st_err *err)
{
	static const TPM2_HANDLE ek_cert_idx[] = { 0x01c00002, 0x01c0000a, 0x01c00016 }; /* RSA 2048, P-256, P-384 */
	ESYS_CONTEXT *e = d->main.esys;
	TPMS_CAPABILITY_DATA *cap = NULL;
	TPM2B_PUBLIC *ekpub = NULL;
	ESYS_TR ek = ESYS_TR_NONE;
	TPMI_YES_NO more;
	uint8_t vendor[16] = { 0 };
	uint32_t attrs;
	size_t i, n = 0;
	int transient = 0, ret = -1;
	TSS2_RC rc;

	memset(out, 0, sizeof(*out));
	if ((rc = Esys_GetCapability(e, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, TPM2_CAP_TPM_PROPERTIES, TPM2_PT_FIXED,
	         TPM2_MAX_TPM_PROPERTIES, &more, &cap)) != TSS2_RC_SUCCESS)
		return tss_fail(err, JIG_E_SE_FAILURE, "TPM2_GetCapability", rc);
	for (i = 0; i < cap->data.tpmProperties.count; i++) {
		const TPMS_TAGGED_PROPERTY *p = &cap->data.tpmProperties.tpmProperty[i];

		if (p->property == TPM2_PT_MANUFACTURER)
			out->manufacturer = p->value;
		else if (p->property >= TPM2_PT_VENDOR_STRING_1 && p->property <= TPM2_PT_VENDOR_STRING_4) {
			size_t k = (p->property - TPM2_PT_VENDOR_STRING_1) * 4;

			vendor[k] = (uint8_t)(p->value >> 24);
			vendor[k + 1] = (uint8_t)(p->value >> 16);
			vendor[k + 2] = (uint8_t)(p->value >> 8);
			vendor[k + 3] = (uint8_t)p->value;
		} else if (p->property == TPM2_PT_FIRMWARE_VERSION_1)
			out->fw1 = p->value;
		else if (p->property == TPM2_PT_FIRMWARE_VERSION_2)
			out->fw2 = p->value;
	}
	/* The vendor string as a protocol text: NULs dropped, anything else
	 * outside printable ASCII shown as '?'. */
	for (i = 0; i < sizeof(vendor); i++)
		if (vendor[i])
			out->vendor[n++] = vendor[i] >= 0x20 && vendor[i] <= 0x7e ? (char)vendor[i] : '?';
	while (n > 0 && out->vendor[n - 1] == ' ')
		n--;
	out->vendor[n] = '\0';
	if (nv_get(e, TPMDUT_NV_IAK_CERT, &out->nv_attrs[0], NULL, err) < 0 ||
	    nv_get(e, TPMDUT_NV_IDEVID_CERT, &out->nv_attrs[1], NULL, err) < 0)
		goto out;
	if (ek_load(e, &ek, &transient, &ekpub, err) < 0 || put_public(&out->ek_public, ekpub, err) < 0)
		goto out;
	for (i = 0; i < sizeof(ek_cert_idx) / sizeof(ek_cert_idx[0]); i++) {
		if (nv_get(e, ek_cert_idx[i], &attrs, &out->ek_certs[out->n_ekcerts], err) < 0)
			goto out;
		if (out->ek_certs[out->n_ekcerts].len > 0)
			out->n_ekcerts++;
	}
	ret = 0;
out:
	ek_done(e, &ek, transient);
	Esys_Free(ekpub);
	Esys_Free(cap);
	return ret;
}

/* ---- TPM_KEYGEN ------------------------------------------------------------- */

static int
read_public(ESYS_CONTEXT *e, ESYS_TR h, jig_blob *out, TPM2B_PUBLIC *copy, st_err *err)
{
	TPM2B_PUBLIC *pub = NULL;
	TSS2_RC rc = Esys_ReadPublic(e, h, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &pub, NULL, NULL);
	int ret;

	if (rc != TSS2_RC_SUCCESS)
		return tss_fail(err, JIG_E_SE_FAILURE, "TPM2_ReadPublic", rc);
	ret = put_public(out, pub, err);
	if (copy)
		*copy = *pub;
	Esys_Free(pub);
	return ret;
}

static int
parent_load(ESYS_CONTEXT *e, ESYS_TR *parent, st_err *err)
{
	TPM2B_SENSITIVE_CREATE sens = { 0 };
	TPM2B_DATA outside = { 0 };
	TPML_PCR_SELECTION pcrs = { 0 };
	TPM2B_PUBLIC tmpl;
	TSS2_RC rc;

	parent_template(&tmpl);
	if ((rc = Esys_CreatePrimary(e, ESYS_TR_RH_ENDORSEMENT, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &sens,
	         &tmpl, &outside, &pcrs, parent, NULL, NULL, NULL, NULL)) != TSS2_RC_SUCCESS)
		return tss_fail(err, JIG_E_SE_FAILURE, "TPM2_CreatePrimary (parent)", rc);
	return 0;
}

/* Create a key under parent and load it (a transient handle in *key). */
static int
key_create(ESYS_CONTEXT *e, ESYS_TR parent, int restricted, ESYS_TR *key, st_err *err)
{
	TPM2B_SENSITIVE_CREATE sens = { 0 };
	TPM2B_DATA outside = { 0 };
	TPML_PCR_SELECTION pcrs = { 0 };
	TPM2B_PRIVATE *priv = NULL;
	TPM2B_PUBLIC *pub = NULL, tmpl;
	TSS2_RC rc;
	int ret = -1;

	key_template(&tmpl, restricted);
	if ((rc = Esys_Create(e, parent, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &sens, &tmpl, &outside, &pcrs,
	         &priv, &pub, NULL, NULL, NULL)) != TSS2_RC_SUCCESS) {
		tss_fail(err, JIG_E_SE_FAILURE, restricted ? "TPM2_Create (IAK)" : "TPM2_Create (IDevID)", rc);
		goto out;
	}
	if ((rc = Esys_Load(e, parent, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, priv, pub, key)) != TSS2_RC_SUCCESS) {
		tss_fail(err, JIG_E_SE_FAILURE, "TPM2_Load", rc);
		goto out;
	}
	ret = 0;
out:
	Esys_Free(priv);
	Esys_Free(pub);
	return ret;
}

/* Replace whatever key is at handle by the transient key (then flushed). */
static int
persist(ESYS_CONTEXT *e, ESYS_TR *key, TPM2_HANDLE handle, st_err *err)
{
	ESYS_TR old = from_tpm(e, handle), out = ESYS_TR_NONE;
	TSS2_RC rc;

	if (old != ESYS_TR_NONE &&
	    (rc = Esys_EvictControl(e, ESYS_TR_RH_OWNER, old, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, handle,
	         &out)) != TSS2_RC_SUCCESS) {
		Esys_TR_Close(e, &old);
		return tss_fail(err, JIG_E_SE_FAILURE, "TPM2_EvictControl (remove the old key)", rc);
	}
	if ((rc = Esys_EvictControl(e, ESYS_TR_RH_OWNER, *key, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, handle,
	         &out)) != TSS2_RC_SUCCESS)
		return tss_fail(err, JIG_E_SE_FAILURE, "TPM2_EvictControl", rc);
	flush(e, key);
	Esys_TR_Close(e, &out);
	return 0;
}

/* The imported-IDevID fault: a P-256 key made by OpenSSL, loaded into the
 * TPM with TPM2_LoadExternal.  The TPM marks it for what it is: neither
 * fixedTPM, fixedParent nor sensitiveDataOrigin. */
static int
load_imported(tpm_dev *d, st_err *err)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");
	BIGNUM *priv = NULL, *x = NULL, *y = NULL;
	TPM2B_SENSITIVE sens = { 0 };
	TPM2B_PUBLIC pub;
	TSS2_RC rc;
	int ret = -1;

	if (!k || !EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_PRIV_KEY, &priv) ||
	    !EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_EC_PUB_X, &x) || !EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_EC_PUB_Y, &y)) {
		jig_fail(err, JIG_E_SE_FAILURE, "imported key: OpenSSL failed");
		goto out;
	}
	key_template(&pub, 0);
	pub.publicArea.objectAttributes = TPMA_OBJECT_USERWITHAUTH | TPMA_OBJECT_SIGN_ENCRYPT;
	pub.publicArea.unique.ecc.x.size = 32;
	pub.publicArea.unique.ecc.y.size = 32;
	BN_bn2binpad(x, pub.publicArea.unique.ecc.x.buffer, 32);
	BN_bn2binpad(y, pub.publicArea.unique.ecc.y.buffer, 32);
	sens.sensitiveArea.sensitiveType = TPM2_ALG_ECC;
	sens.sensitiveArea.sensitive.ecc.size = 32;
	BN_bn2binpad(priv, sens.sensitiveArea.sensitive.ecc.buffer, 32);
	flush(d->main.esys, &d->imported);
	if ((rc = Esys_LoadExternal(d->main.esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &sens, &pub, ESYS_TR_RH_NULL,
	         &d->imported)) != TSS2_RC_SUCCESS) {
		d->imported = ESYS_TR_NONE;
		tss_fail(err, JIG_E_SE_FAILURE, "TPM2_LoadExternal", rc);
		goto out;
	}
	d->imported_pub = pub;
	ret = 0;
out:
	OPENSSL_cleanse(&sens, sizeof(sens));
	BN_clear_free(priv);
	BN_free(x);
	BN_free(y);
	EVP_PKEY_free(k);
	return ret;
}

int
tpm_dev_keygen(tpm_dev *d, int keep, jig_blob *iak, jig_blob *idevid, st_err *err)
{
	ESYS_CONTEXT *e = keys_ctx(d);
	ESYS_TR parent = ESYS_TR_NONE, k1 = ESYS_TR_NONE, k2 = ESYS_TR_NONE;
	ESYS_TR p1 = from_tpm(e, TPMDUT_IAK_HANDLE), p2 = from_tpm(e, TPMDUT_IDEVID_HANDLE);
	uint32_t a1, a2;
	int ret = -1;

	/* A TPM whose certificate indices are locked is provisioned: its keys
	 * stay as they are. */
	if (nv_get(d->main.esys, TPMDUT_NV_IAK_CERT, &a1, NULL, err) < 0 ||
	    nv_get(d->main.esys, TPMDUT_NV_IDEVID_CERT, &a2, NULL, err) < 0)
		goto out;
	if ((a1 | a2) & TPMA_NV_WRITELOCKED) {
		jig_fail(err, JIG_E_LOCKED, "the TPM's identity certificates are written and locked");
		goto out;
	}
	if (keep && p1 != ESYS_TR_NONE && p2 != ESYS_TR_NONE && !(d->faults & TPMDUT_F_IMPORTED_IDEVID)) {
		ret = read_public(e, p1, iak, NULL, err) < 0 || read_public(e, p2, idevid, NULL, err) < 0 ? -1 : 0;
		goto out;
	}
	if (parent_load(e, &parent, err) < 0 || key_create(e, parent, 1, &k1, err) < 0 ||
	    persist(e, &k1, TPMDUT_IAK_HANDLE, err) < 0)
		goto out;
	if (d->faults & TPMDUT_F_IMPORTED_IDEVID) {
		if (load_imported(d, err) < 0 || put_public(idevid, &d->imported_pub, err) < 0)
			goto out;
	} else if (key_create(e, parent, 0, &k2, err) < 0 || persist(e, &k2, TPMDUT_IDEVID_HANDLE, err) < 0)
		goto out;
	if (p1 != ESYS_TR_NONE)
		Esys_TR_Close(e, &p1);
	if ((p1 = from_tpm(e, TPMDUT_IAK_HANDLE)) == ESYS_TR_NONE || read_public(e, p1, iak, NULL, err) < 0)
		goto out;
	if (!(d->faults & TPMDUT_F_IMPORTED_IDEVID)) {
		if (p2 != ESYS_TR_NONE)
			Esys_TR_Close(e, &p2);
		if ((p2 = from_tpm(e, TPMDUT_IDEVID_HANDLE)) == ESYS_TR_NONE || read_public(e, p2, idevid, NULL, err) < 0)
			goto out;
	}
	ret = 0;
out:
	flush(e, &k1);
	flush(e, &k2);
	flush(e, &parent);
	if (p1 != ESYS_TR_NONE)
		Esys_TR_Close(e, &p1);
	if (p2 != ESYS_TR_NONE)
		Esys_TR_Close(e, &p2);
	return ret;
}

/* ---- TPM_ACTIVATE ----------------------------------------------------------- */

int
tpm_dev_activate(tpm_dev *d, const jig_blob *credential, const jig_blob *secret, jig_blob *cert_info, st_err *err)
{
	ESYS_CONTEXT *e = keys_ctx(d); /* where the IAK is; its EK must be the one the station encrypted to */
	TPM2B_ID_OBJECT cred = { 0 };
	TPM2B_ENCRYPTED_SECRET sec = { 0 };
	TPM2B_DIGEST *info = NULL;
	TPMT_SYM_DEF sym = { .algorithm = TPM2_ALG_NULL };
	ESYS_TR ek = ESYS_TR_NONE, iak = ESYS_TR_NONE, session = ESYS_TR_NONE;
	size_t off = 0;
	int transient = 0, ret = -1;
	TSS2_RC rc;
	uint8_t buf[sizeof(TPM2B_DIGEST) + 2];

	if (Tss2_MU_TPM2B_ID_OBJECT_Unmarshal(credential->data, credential->len, &off, &cred) != TSS2_RC_SUCCESS ||
	    off != credential->len)
		return jig_fail(err, JIG_E_BAD_REQUEST, "credential: not exactly one TPM2B_ID_OBJECT");
	off = 0;
	if (Tss2_MU_TPM2B_ENCRYPTED_SECRET_Unmarshal(secret->data, secret->len, &off, &sec) != TSS2_RC_SUCCESS ||
	    off != secret->len)
		return jig_fail(err, JIG_E_BAD_REQUEST, "secret: not exactly one TPM2B_ENCRYPTED_SECRET");
	if ((iak = from_tpm(e, TPMDUT_IAK_HANDLE)) == ESYS_TR_NONE)
		return jig_fail(err, JIG_E_SLOT_EMPTY, "no IAK: TPM_KEYGEN first");
	if (ek_load(e, &ek, &transient, NULL, err) < 0)
		goto out;
	/* The EK's policy: PolicySecret(TPM_RH_ENDORSEMENT). */
	if ((rc = Esys_StartAuthSession(e, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, NULL,
	         TPM2_SE_POLICY, &sym, TPM2_ALG_SHA256, &session)) != TSS2_RC_SUCCESS) {
		tss_fail(err, JIG_E_SE_FAILURE, "TPM2_StartAuthSession", rc);
		goto out;
	}
	if ((rc = Esys_PolicySecret(e, ESYS_TR_RH_ENDORSEMENT, session, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, NULL,
	         NULL, NULL, 0, NULL, NULL)) != TSS2_RC_SUCCESS) {
		tss_fail(err, JIG_E_SE_FAILURE, "TPM2_PolicySecret", rc);
		goto out;
	}
	if ((rc = Esys_ActivateCredential(e, iak, ek, ESYS_TR_PASSWORD, session, ESYS_TR_NONE, &cred, &sec, &info)) !=
	    TSS2_RC_SUCCESS) {
		tss_fail(err, JIG_E_SE_FAILURE, "TPM2_ActivateCredential", rc);
		goto out;
	}
	off = 0;
	if ((rc = Tss2_MU_TPM2B_DIGEST_Marshal(info, buf, sizeof(buf), &off)) != TSS2_RC_SUCCESS) {
		tss_fail(err, JIG_E_SE_FAILURE, "marshal TPM2B_DIGEST", rc);
		goto out;
	}
	ret = blob_put(cert_info, buf, off, "certInfo", err);
out:
	flush(e, &session);
	ek_done(e, &ek, transient);
	Esys_TR_Close(e, &iak);
	if (info)
		OPENSSL_cleanse(info, sizeof(*info));
	Esys_Free(info);
	return ret;
}

/* ---- TPM_CERTIFY ------------------------------------------------------------ */

static EVP_PKEY *
ecc_public(const TPM2B_PUBLIC *pub)
{
	const TPMS_ECC_POINT *q = &pub->publicArea.unique.ecc;

	return st_ec_public_key(NID_X9_62_prime256v1, q->x.buffer, q->x.size, q->y.buffer, q->y.size);
}

/* PKCS#10 for the IDevID key, signed by it in the TPM (TPM2_Sign over the
 * SHA-256 of the CertificationRequestInfo). */
static int
make_csr(ESYS_CONTEXT *e, ESYS_TR idevid, const TPM2B_PUBLIC *pub, jig_blob *out, st_err *err)
{
	X509_REQ *req = X509_REQ_new();
	X509_NAME *name = X509_NAME_new();
	X509_ALGOR *alg = X509_ALGOR_new();
	ASN1_BIT_STRING *bits = ASN1_BIT_STRING_new();
	EVP_PKEY *k = ecc_public(pub);
	ECDSA_SIG *es = ECDSA_SIG_new();
	BIGNUM *r = NULL, *s = NULL;
	TPMT_SIG_SCHEME scheme = { .scheme = TPM2_ALG_ECDSA, .details.ecdsa.hashAlg = TPM2_ALG_SHA256 };
	TPMT_TK_HASHCHECK ticket = { .tag = TPM2_ST_HASHCHECK, .hierarchy = TPM2_RH_NULL };
	TPMT_SIGNATURE *sig = NULL;
	TPM2B_DIGEST dig = { .size = 32 };
	unsigned char *tbs = NULL, *der = NULL, *sder = NULL;
	int tbs_len, der_len, slen, ret = -1;
	TSS2_RC rc;

	if (!req || !name || !alg || !bits || !k || !es ||
	    !X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"TPM IDevID", -1, -1, 0) ||
	    !X509_REQ_set_version(req, 0) || !X509_REQ_set_subject_name(req, name) || !X509_REQ_set_pubkey(req, k) ||
	    (tbs_len = i2d_re_X509_REQ_tbs(req, &tbs)) <= 0 || !EVP_Digest(tbs, (size_t)tbs_len, dig.buffer, NULL, EVP_sha256(), NULL)) {
		jig_fail(err, JIG_E_SE_FAILURE, "CSR: OpenSSL failed");
		goto out;
	}
	if ((rc = Esys_Sign(e, idevid, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &dig, &scheme, &ticket, &sig)) !=
	    TSS2_RC_SUCCESS) {
		tss_fail(err, JIG_E_SE_FAILURE, "TPM2_Sign (CSR)", rc);
		goto out;
	}
	r = BN_bin2bn(sig->signature.ecdsa.signatureR.buffer, sig->signature.ecdsa.signatureR.size, NULL);
	s = BN_bin2bn(sig->signature.ecdsa.signatureS.buffer, sig->signature.ecdsa.signatureS.size, NULL);
	if (!r || !s || !ECDSA_SIG_set0(es, r, s)) {
		jig_fail(err, JIG_E_SE_FAILURE, "CSR: signature");
		goto out;
	}
	r = s = NULL; /* owned by es */
	if ((slen = i2d_ECDSA_SIG(es, &sder)) <= 0 || !ASN1_BIT_STRING_set(bits, sder, slen) ||
	    !X509_ALGOR_set0(alg, OBJ_nid2obj(NID_ecdsa_with_SHA256), V_ASN1_UNDEF, NULL)) {
		jig_fail(err, JIG_E_SE_FAILURE, "CSR: signature encoding");
		goto out;
	}
	bits->flags &= ~(ASN1_STRING_FLAG_BITS_LEFT | 0x07);
	bits->flags |= ASN1_STRING_FLAG_BITS_LEFT;
	X509_REQ_set0_signature(req, bits);
	bits = NULL; /* owned by req */
	if (!X509_REQ_set1_signature_algo(req, alg) || (der_len = i2d_X509_REQ(req, &der)) <= 0) {
		jig_fail(err, JIG_E_SE_FAILURE, "CSR: encoding");
		goto out;
	}
	ret = blob_put(out, der, (size_t)der_len, "CSR", err);
out:
	Esys_Free(sig);
	OPENSSL_free(tbs);
	OPENSSL_free(der);
	OPENSSL_free(sder);
	BN_free(r);
	BN_free(s);
	ECDSA_SIG_free(es);
	EVP_PKEY_free(k);
	ASN1_BIT_STRING_free(bits);
	X509_ALGOR_free(alg);
	X509_NAME_free(name);
	X509_REQ_free(req);
	return ret;
}

int
tpm_dev_certify(tpm_dev *d, const uint8_t nonce[JIG_NONCE_LEN], const uint8_t prev_nonce[JIG_NONCE_LEN],
    jig_blob *attest, jig_blob *sig, jig_blob *csr, st_err *err)
{
	ESYS_CONTEXT *e = keys_ctx(d);
	TPM2B_DATA qual = { .size = JIG_NONCE_LEN };
	TPMT_SIG_SCHEME scheme = { .scheme = TPM2_ALG_NULL };
	TPM2B_ATTEST *info = NULL;
	TPMT_SIGNATURE *s = NULL;
	TPM2B_PUBLIC *pub = NULL;
	ESYS_TR iak = from_tpm(e, TPMDUT_IAK_HANDLE), idevid = ESYS_TR_NONE, signer, parent = ESYS_TR_NONE;
	ESYS_TR other = ESYS_TR_NONE;
	TSS2_RC rc;
	int ret = -1;

	memcpy(qual.buffer, (d->faults & TPMDUT_F_STALE_NONCE) ? prev_nonce : nonce, JIG_NONCE_LEN);
	idevid = (d->faults & TPMDUT_F_IMPORTED_IDEVID) ? d->imported : from_tpm(e, TPMDUT_IDEVID_HANDLE);
	if (iak == ESYS_TR_NONE || idevid == ESYS_TR_NONE) {
		jig_fail(err, JIG_E_SLOT_EMPTY, "no IAK or IDevID: TPM_KEYGEN first");
		goto out;
	}
	signer = iak;
	if (d->faults & TPMDUT_F_CERTIFY_OTHER_KEY) {
		if (parent_load(e, &parent, err) < 0 || key_create(e, parent, 1, &other, err) < 0)
			goto out;
		signer = other;
	}
	if ((rc = Esys_Certify(e, idevid, signer, ESYS_TR_PASSWORD, ESYS_TR_PASSWORD, ESYS_TR_NONE, &qual, &scheme, &info,
	         &s)) != TSS2_RC_SUCCESS) {
		tss_fail(err, JIG_E_SE_FAILURE, "TPM2_Certify", rc);
		goto out;
	}
	if (blob_put(attest, info->attestationData, info->size, "TPMS_ATTEST", err) < 0)
		goto out;
	if (put_signature(sig, s, err) < 0)
		goto out;
	if ((rc = Esys_ReadPublic(e, idevid, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &pub, NULL, NULL)) !=
	    TSS2_RC_SUCCESS) {
		tss_fail(err, JIG_E_SE_FAILURE, "TPM2_ReadPublic (IDevID)", rc);
		goto out;
	}
	ret = make_csr(e, idevid, pub, csr, err);
out:
	flush(e, &other);
	flush(e, &parent);
	Esys_Free(info);
	Esys_Free(s);
	Esys_Free(pub);
	if (iak != ESYS_TR_NONE)
		Esys_TR_Close(e, &iak);
	if (idevid != ESYS_TR_NONE && idevid != d->imported)
		Esys_TR_Close(e, &idevid);
	return ret;
}

/* ---- certificates in NV ------------------------------------------------------ */

static TPM2_HANDLE
nv_index(uint8_t which)
{
	return which == JIG_TPM_NV_IAK ? TPMDUT_NV_IAK_CERT : TPMDUT_NV_IDEVID_CERT;
}

int
tpm_dev_nv_write(tpm_dev *d, uint8_t which, const jig_blob *data, st_err *err)
{
	ESYS_CONTEXT *e = d->main.esys;
	TPM2_HANDLE index = nv_index(which);
	TPM2B_AUTH auth = { 0 };
	TPM2B_NV_PUBLIC info = { 0 };
	TPM2B_MAX_NV_BUFFER chunk;
	ESYS_TR nv;
	uint32_t attrs;
	UINT16 max, off = 0;
	TSS2_RC rc;
	int ret = -1;

	if (nv_get(e, index, &attrs, NULL, err) < 0)
		return -1;
	if (attrs & TPMA_NV_WRITELOCKED)
		return jig_fail(err, JIG_E_LOCKED, "the certificate index is written and locked");
	if (attrs) { /* defined but not locked (a resumed device): define it anew, to this size */
		nv = from_tpm(e, index);
		if ((rc = Esys_NV_UndefineSpace(e, ESYS_TR_RH_OWNER, nv, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE)) !=
		    TSS2_RC_SUCCESS) {
			Esys_TR_Close(e, &nv);
			return tss_fail(err, JIG_E_SE_FAILURE, "TPM2_NV_UndefineSpace", rc);
		}
	}
	info.nvPublic.nvIndex = index;
	info.nvPublic.nameAlg = TPM2_ALG_SHA256;
	/* Written by the owner, readable by anyone (AUTHREAD with the empty
	 * auth), lockable for good (WRITEDEFINE: NV_WriteLock lasts until the
	 * index is deleted). */
	info.nvPublic.attributes = TPMA_NV_OWNERWRITE | TPMA_NV_OWNERREAD | TPMA_NV_AUTHREAD | TPMA_NV_WRITEDEFINE |
	    TPMA_NV_NO_DA | (TPM2_NT_ORDINARY << TPMA_NV_TPM2_NT_SHIFT);
	info.nvPublic.dataSize = (UINT16)data->len;
	if ((rc = Esys_NV_DefineSpace(e, ESYS_TR_RH_OWNER, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &auth, &info,
	         &nv)) != TSS2_RC_SUCCESS)
		return tss_fail(err, JIG_E_SE_FAILURE, "TPM2_NV_DefineSpace", rc);
	max = nv_buffer_max(e);
	while (off < data->len) {
		UINT16 n = (UINT16)(data->len - off < max ? data->len - off : max);

		chunk.size = n;
		memcpy(chunk.buffer, data->data + off, n);
		if ((rc = Esys_NV_Write(e, ESYS_TR_RH_OWNER, nv, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &chunk, off)) !=
		    TSS2_RC_SUCCESS) {
			tss_fail(err, JIG_E_SE_FAILURE, "TPM2_NV_Write", rc);
			goto out;
		}
		off += n;
	}
	ret = 0;
out:
	Esys_TR_Close(e, &nv);
	return ret;
}

int
tpm_dev_nv_read(tpm_dev *d, uint8_t which, uint32_t *attrs, jig_blob *data, st_err *err)
{
	return nv_get(d->main.esys, nv_index(which), attrs, data, err);
}

int
tpm_dev_lock(tpm_dev *d, uint32_t attrs[2], st_err *err)
{
	ESYS_CONTEXT *e = d->main.esys;
	uint8_t which;
	TSS2_RC rc;

	for (which = JIG_TPM_NV_IAK; which <= JIG_TPM_NV_IDEVID; which++) {
		ESYS_TR nv = from_tpm(e, nv_index(which));

		if (nv == ESYS_TR_NONE)
			return jig_fail(err, JIG_E_SLOT_EMPTY, "a certificate index is not defined: TPM_NV_WRITE first");
		rc = Esys_NV_WriteLock(e, ESYS_TR_RH_OWNER, nv, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE);
		Esys_TR_Close(e, &nv);
		if (rc != TSS2_RC_SUCCESS)
			return tss_fail(err, JIG_E_SE_FAILURE, "TPM2_NV_WriteLock", rc);
		if (nv_get(e, nv_index(which), &attrs[which - 1], NULL, err) < 0)
			return -1;
	}
	return 0;
}

/* ---- rework ------------------------------------------------------------------ */

/* The device's serial as the station names it: from the EK public area
 * TPM_INFO sends (jig_tpm_serial). */
static int
own_serial(ESYS_CONTEXT *e, char serial[20], st_err *err)
{
	TPM2B_PUBLIC *pub = NULL;
	ESYS_TR ek = ESYS_TR_NONE;
	jig_blob *b = malloc(sizeof(*b));
	int transient = 0, ret = -1;

	if (!b)
		return jig_fail(err, JIG_E_SE_FAILURE, "out of memory");
	if (ek_load(e, &ek, &transient, &pub, err) == 0 && put_public(b, pub, err) == 0) {
		jig_tpm_serial(b->data, b->len, serial);
		ret = 0;
	}
	ek_done(e, &ek, transient);
	Esys_Free(pub);
	free(b);
	return ret;
}

int
tpm_dev_rework_sign(tpm_dev *d, const uint8_t challenge[JIG_NONCE_LEN], jig_blob *sig, st_err *err)
{
	ESYS_CONTEXT *e = keys_ctx(d);
	TPMT_SIG_SCHEME scheme = { .scheme = TPM2_ALG_ECDSA, .details.ecdsa.hashAlg = TPM2_ALG_SHA256 };
	TPMT_TK_HASHCHECK ticket = { .tag = TPM2_ST_HASHCHECK, .hierarchy = TPM2_RH_NULL };
	TPM2B_DIGEST dig = { .size = 32 };
	TPMT_SIGNATURE *s = NULL;
	ESYS_TR idevid = from_tpm(e, TPMDUT_IDEVID_HANDLE), parent = ESYS_TR_NONE, other = ESYS_TR_NONE, signer;
	uint8_t msg[128];
	char serial[20];
	size_t len;
	st_err e2;
	TSS2_RC rc;
	int ret = -1;

	if (idevid == ESYS_TR_NONE)
		return jig_fail(err, JIG_E_SLOT_EMPTY, "no IDevID key at 0x81020001: nothing to rework");
	/* The bytes signed (PROTOCOL.md section 11): the domain tag, this TPM's
	 * serial, the challenge; the TPM signs their SHA-256. */
	if (own_serial(d->main.esys, serial, err) < 0)
		goto out;
	if (jig_challenge_message(JIG_TAG_TPM_REWORK, serial, challenge, msg, sizeof(msg), &len, &e2) < 0) {
		jig_fail(err, JIG_E_SE_FAILURE, e2.msg);
		goto out;
	}
	st_sha256(msg, len, dig.buffer);
	signer = idevid;
	if (d->faults & TPMDUT_F_REWORK_OTHER_KEY) {
		/* A key of the same TPM, but not the certified IDevID. */
		if (parent_load(e, &parent, err) < 0 || key_create(e, parent, 0, &other, err) < 0)
			goto out;
		signer = other;
	}
	if ((rc = Esys_Sign(e, signer, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &dig, &scheme, &ticket, &s)) !=
	    TSS2_RC_SUCCESS) {
		tss_fail(err, JIG_E_SE_FAILURE, "TPM2_Sign (rework)", rc);
		goto out;
	}
	if (put_signature(sig, s, err) < 0)
		goto out;
	d->rework_signed = 1;
	ret = 0;
out:
	flush(e, &other);
	flush(e, &parent);
	Esys_Free(s);
	Esys_TR_Close(e, &idevid);
	return ret;
}

/* Remove what is at a persistent handle or NV index (nothing there: done). */
static int
evict(ESYS_CONTEXT *e, TPM2_HANDLE handle, st_err *err)
{
	ESYS_TR h = from_tpm(e, handle), out = ESYS_TR_NONE;
	TSS2_RC rc;

	if (h == ESYS_TR_NONE)
		return 0;
	rc = Esys_EvictControl(e, ESYS_TR_RH_OWNER, h, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, handle, &out);
	if (rc != TSS2_RC_SUCCESS) {
		Esys_TR_Close(e, &h);
		return tss_fail(err, JIG_E_SE_FAILURE, "TPM2_EvictControl (retire a key)", rc);
	}
	return 0;
}

static int
undefine(ESYS_CONTEXT *e, TPM2_HANDLE index, st_err *err)
{
	ESYS_TR nv = from_tpm(e, index);
	TSS2_RC rc;

	if (nv == ESYS_TR_NONE)
		return 0;
	rc = Esys_NV_UndefineSpace(e, ESYS_TR_RH_OWNER, nv, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE);
	if (rc != TSS2_RC_SUCCESS) {
		Esys_TR_Close(e, &nv);
		return tss_fail(err, JIG_E_SE_FAILURE, "TPM2_NV_UndefineSpace (retire a certificate index)", rc);
	}
	return 0;
}

int
tpm_dev_retire(tpm_dev *d, uint32_t attrs[2], st_err *err)
{
	ESYS_CONTEXT *e = d->main.esys;

	/* As RETIRE on an SE: only after the identity was proven in this power
	 * cycle, so that a station cannot retire a device by mistake. */
	if (!d->rework_signed)
		return jig_fail(err, JIG_E_BAD_STATE, "TPM_RETIRE before TPM_REWORK_SIGN in this power cycle");
	/* The write lock ends with the index: TPM2_NV_UndefineSpace under the
	 * owner authorization that defined it.  The keys go too; TPM_KEYGEN
	 * makes new ones. */
	if (undefine(e, TPMDUT_NV_IAK_CERT, err) < 0 || undefine(e, TPMDUT_NV_IDEVID_CERT, err) < 0 ||
	    evict(keys_ctx(d), TPMDUT_IAK_HANDLE, err) < 0 || evict(keys_ctx(d), TPMDUT_IDEVID_HANDLE, err) < 0)
		return -1;
	if (nv_get(e, TPMDUT_NV_IAK_CERT, &attrs[0], NULL, err) < 0 || nv_get(e, TPMDUT_NV_IDEVID_CERT, &attrs[1], NULL, err) < 0)
		return -1;
	d->rework_signed = 0;
	return 0;
}
