/* tpmdut: the DUT side of a TPM 2.0 device (issue 18).  A program an OEM's
 * factory test image runs: the jig protocol (PROTOCOL.md, section 11 for
 * the TPM commands) on one side, the TPM through tpm2-tss ESAPI on the
 * other (TCTI "device:/dev/tpmrm0" on a device, "swtpm:host=H,port=P" in
 * the tests).  It never reads or moves a private key: every key is made in
 * the TPM and stays there; what travels is public areas, attestation
 * structures, signatures, and certificates. */
#ifndef TPMDUT_H
#define TPMDUT_H

#include <stddef.h>
#include <stdint.h>

#include "jig-codec.h"

/* Persistent handles of the keys and NV indices of their certificates:
 * PROTOCOL.md section 11 says where they come from. */
#define TPMDUT_IAK_HANDLE 0x81020000u
#define TPMDUT_IDEVID_HANDLE 0x81020001u
#define TPMDUT_NV_IAK_CERT 0x01400100u
#define TPMDUT_NV_IDEVID_CERT 0x01400101u
#define TPMDUT_EK_HANDLE 0x81010001u /* TCG EK Credential Profile: the RSA EK, when persisted */

/* Faults a test switches on per device: the misbehaviour of a DUT that
 * should never get a certificate. */
enum tpmdut_fault {
	TPMDUT_F_IMPORTED_IDEVID = 1u << 0,   /* IDevID key made in software and loaded (LoadExternal) */
	TPMDUT_F_STALE_NONCE = 1u << 1,       /* TPM_CERTIFY certifies with the previous request's nonce */
	TPMDUT_F_CERTIFY_OTHER_KEY = 1u << 2, /* the certification is signed by another restricted key than the IAK */
	TPMDUT_F_REWORK_OTHER_KEY = 1u << 3,  /* TPM_REWORK_SIGN signs with a new key of the TPM, not the IDevID */
	TPMDUT_F_REPLAY_CHALLENGE = 1u << 4,  /* TPM_REWORK_SIGN signs the previous request's challenge */
	TPMDUT_F_STALL_NV_WRITE = 1u << 5,    /* TPM_NV_WRITE answers after 20 s (a test kills the station meanwhile) */
};
unsigned tpmdut_fault_parse(const char *name); /* 0 when unknown */

typedef struct tpmdut_device_cfg {
	char *tcti;      /* the device's TPM */
	char *keys_tcti; /* NULL; else the IAK and IDevID live in this other TPM (a DUT that lies about
	                    where its keys are: activation must fail) */
	unsigned faults;
} tpmdut_device_cfg;

typedef struct tpmdut tpmdut;

tpmdut *tpmdut_new(unsigned id, const tpmdut_device_cfg *devs, size_t ndevs, st_err *err);
/* Print "timing DEVICE COMMAND MS" on stdout for every TPM command: how
 * long the TPM side took (the benchmark reads it). */
void tpmdut_set_timing(tpmdut *t, int on);
void tpmdut_free(tpmdut *t);
/* One request frame in, one response frame out (cap >= JIG_MAX_FRAME). */
int tpmdut_handle(tpmdut *t, const uint8_t *req, size_t len, uint8_t *resp, size_t cap, size_t *resp_len, st_err *err);
void tpmdut_connection_reset(tpmdut *t);

/* ---- the TPM side (tpm.c) --------------------------------------------- */

typedef struct tpm_dev tpm_dev;
/* Open the device's TPM(s).  Errors name the TCTI. */
tpm_dev *tpm_dev_open(const tpmdut_device_cfg *cfg, st_err *err);
void tpm_dev_close(tpm_dev *d);
/* Each fills the response message; on a TPM failure it returns -1 with
 * err->remote set to the jig error code to answer and err->msg the reason. */
int tpm_dev_info(tpm_dev *d, jig_tpm_info *out, st_err *err);
int tpm_dev_keygen(tpm_dev *d, int keep, jig_blob *iak, jig_blob *idevid, st_err *err);
int tpm_dev_activate(tpm_dev *d, const jig_blob *credential, const jig_blob *secret, jig_blob *cert_info, st_err *err);
int tpm_dev_certify(tpm_dev *d, const uint8_t nonce[JIG_NONCE_LEN], const uint8_t prev_nonce[JIG_NONCE_LEN],
    jig_blob *attest, jig_blob *sig, jig_blob *csr, st_err *err);
int tpm_dev_nv_write(tpm_dev *d, uint8_t which, const jig_blob *data, st_err *err);
int tpm_dev_nv_read(tpm_dev *d, uint8_t which, uint32_t *attrs, jig_blob *data, st_err *err);
int tpm_dev_lock(tpm_dev *d, uint32_t attrs[2], st_err *err);
/* Rework: TPM2_Sign by the IDevID over JIG_TAG_TPM_REWORK's message for
 * this TPM's serial and the challenge; then RETIRE deletes both certificate
 * indices and evicts both keys (refused unless REWORK_SIGN was answered
 * since the TPM was opened). */
int tpm_dev_rework_sign(tpm_dev *d, const uint8_t challenge[JIG_NONCE_LEN], jig_blob *sig, st_err *err);
int tpm_dev_retire(tpm_dev *d, uint32_t attrs[2], st_err *err);

#endif
