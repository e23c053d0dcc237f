/* libjig-codec: the station <-> jig protocol's bytes (PROTOCOL.md is
 * normative).  Frames, messages and attestation structures are encoded and
 * decoded on buffers: no I/O, no libusb, no libserialport.  jigsim and the
 * fuzz targets link this alone (plus jig-wire.h for jigsim). */
#ifndef JIG_CODEC_H
#define JIG_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "st.h"

#define JIG_SOF 0xA5
/* Protocol versions as the frame's version byte and HELLO carry them:
 * 1 is protocol 1.0, 2 is 1.1, 3 is 1.2 (PROTOCOL.md section 3). */
#define JIG_VERSION_1_0 1
#define JIG_VERSION_1_1 2
#define JIG_VERSION_1_2 3
#define JIG_VERSION_MIN JIG_VERSION_1_0
#define JIG_VERSION_MAX JIG_VERSION_1_2
#define JIG_HEADER_LEN 6
#define JIG_CRC_LEN 4
#define JIG_MAX_PAYLOAD 4096
#define JIG_MAX_FRAME (JIG_HEADER_LEN + JIG_MAX_PAYLOAD + JIG_CRC_LEN)
#define JIG_STR_MAX 64    /* serial, model, jig id, firmware text */
#define JIG_ERRMSG_MAX 200
#define JIG_BLOB_MAX 2048 /* certificate, CSR, public key, signature */
#define JIG_MAX_CERTS 4
#define JIG_NONCE_LEN 32
#define JIG_MAX_SLOT 15
/* Largest attestation structure (section 6): tag, nonce, serial, model, ... */
#define JIG_ATTEST_MAX (17 + 1 + JIG_NONCE_LEN + 1 + JIG_STR_MAX + 1 + JIG_STR_MAX + 4 + 1 + 1 + 32 + 32)
/* Largest tool-auth / rework challenge message (section 5). */
#define JIG_CHALLENGE_MSG_MAX (20 + 1 + JIG_STR_MAX + JIG_NONCE_LEN)/* A TPM device's serial (PROTOCOL.md section 11): "TPM" and the first 8
 * bytes of SHA-256(ek_public, the marshalled TPM2B_PUBLIC of TPM_INFO) in
 * upper-case hex.  The station and the DUT compute it the same way. */
void jig_tpm_serial(const uint8_t *ek_public, size_t len, char out[20]);

/* The lock receipt (1.1, section 5): tag, nonce, serial, lifecycle, slot, certificate hash. */
#define JIG_LOCK_RECEIPT_MAX (15 + 1 + JIG_NONCE_LEN + 1 + JIG_STR_MAX + 1 + 1 + 32)
#define JIG_SHA256_LEN 32
#define JIG_MAX_RATES 8 /* HELLO (1.1): serial line rates a jig lists */
#define JIG_SIG_MAX 139 /* DER ECDSA signature, P-521 at most */
#define JIG_BAUD_CONFIRM_MIN_MS 50   /* SET_BAUD: how long the jig waits at the new rate */
#define JIG_BAUD_CONFIRM_MAX_MS 5000

/* The jig's USB identity (PROTOCOL.md section 10): pid.codes test VID:PID. */
#define JIG_USB_VID 0x1209
#define JIG_USB_PID 0x0001
#define JIG_USB_CLASS 0xFF

enum jig_cmd {
	JIG_CMD_HELLO = 0x01,
	JIG_CMD_DUT_STATUS = 0x02,
	JIG_CMD_DUT_POWER = 0x03,
	JIG_CMD_SE_INFO = 0x04,
	JIG_CMD_AUTH_CHALLENGE = 0x05,
	JIG_CMD_AUTH_RESPONSE = 0x06,
	JIG_CMD_KEYGEN = 0x07,
	JIG_CMD_GET_CSR = 0x08,
	JIG_CMD_INSTALL_CERT = 0x09,
	JIG_CMD_READ_CERT = 0x0A,
	JIG_CMD_LOCK = 0x0B,
	JIG_CMD_REWORK_CHALLENGE = 0x0C,
	JIG_CMD_RETIRE = 0x0D,
	JIG_CMD_LAST_1_0 = JIG_CMD_RETIRE, /* the last command protocol 1.0 has */
	JIG_CMD_VENDOR_CHAIN = 0x0E,       /* 1.1 */
	JIG_CMD_SET_BAUD = 0x0F,           /* 1.1, serial jigs */
	JIG_CMD_LAST = JIG_CMD_SET_BAUD,
	JIG_CMD_CERT_TEMPLATE = 0x19, /* 1.2: a certificate template INSTALL_CERT deltas name */
};
#define JIG_RESPONSE 0x80 /* response type = command | JIG_RESPONSE */
#define JIG_T_ERROR 0xFF

enum jig_error_code {
	JIG_E_UNSUPPORTED_VERSION = 1,
	JIG_E_UNKNOWN_COMMAND = 2,
	JIG_E_BAD_REQUEST = 3,
	JIG_E_NO_DUT = 4,
	JIG_E_NOT_AUTHENTICATED = 5,
	JIG_E_AUTH_FAILED = 6,
	JIG_E_BAD_STATE = 7,
	JIG_E_LOCKED = 8,
	JIG_E_SLOT_EMPTY = 9,
	JIG_E_BAD_SLOT = 10,
	JIG_E_SE_FAILURE = 11,
	JIG_E_BUSY = 12,
	JIG_E_NO_TEMPLATE = 13, /* 1.2: INSTALL_CERT named a template the jig does not hold */
};

enum jig_lifecycle {
	JIG_LC_FACTORY = 1,
	JIG_LC_PROVISIONED = 2,
	JIG_LC_REWORK = 3,
};

enum jig_power_action { JIG_POWER_OFF = 0, JIG_POWER_ON = 1, JIG_POWER_RELEASE = 2 };
enum jig_alg { JIG_ALG_P256 = 1, JIG_ALG_P384 = 2 };
#define JIG_KEYGEN_KEEP 0x01
#define JIG_CAP_DUT_DETECT 0x01
#define JIG_CAP_DUT_POWER 0x02
#define JIG_CAP_REWORK 0x04
#define JIG_CAP_TPM 0x08 /* the DUT's secure element is a TPM 2.0: the TPM_* commands (PROTOCOL.md section 11) */

/* TPM 2.0 devices (PROTOCOL.md section 11), offered only with JIG_CAP_TPM. */
enum jig_tpm_cmd {
	JIG_CMD_TPM_INFO = 0x10,
	JIG_CMD_TPM_KEYGEN = 0x11,
	JIG_CMD_TPM_ACTIVATE = 0x12,
	JIG_CMD_TPM_CERTIFY = 0x13,
	JIG_CMD_TPM_NV_WRITE = 0x14,
	JIG_CMD_TPM_NV_READ = 0x15,
	JIG_CMD_TPM_LOCK = 0x16,
	JIG_CMD_TPM_REWORK_SIGN = 0x17, /* rework: the IDevID signs the station's challenge (TPM2_Sign) */
	JIG_CMD_TPM_RETIRE = 0x18,      /* rework: certificate indices deleted, keys evicted */
	JIG_CMD_TPM_FIRST = JIG_CMD_TPM_INFO,
	JIG_CMD_TPM_LAST = JIG_CMD_TPM_RETIRE,
};
#define JIG_CMD_MAX 0x1F /* the highest command code any part of the protocol may use */
#define JIG_TPM_MAX_EKCERTS 3
/* Which certificate index TPM_NV_WRITE / TPM_NV_READ mean. */
enum jig_tpm_nv { JIG_TPM_NV_IAK = 1, JIG_TPM_NV_IDEVID = 2 };
/* READ_CERT form (1.1): the certificate itself or its SHA-256. */
enum jig_cert_form { JIG_CERT_DER = 0, JIG_CERT_SHA256 = 1 };

#define JIG_TAG_TOOL_AUTH "station-tool-auth-v1"
#define JIG_TAG_REWORK "station-rework-v1"
#define JIG_TAG_ATTEST "station-attest-v1"
#define JIG_TAG_LOCK "station-lock-v1"
#define JIG_TAG_TPM_REWORK "station-tpm-rework-v1"

const char *jig_cmd_name(uint8_t cmd);        /* "KEYGEN"; "0x42" style for unknown */
const char *jig_error_name(uint16_t code);    /* "NO_DUT" */
const char *jig_lifecycle_name(uint8_t lc);   /* "factory" */
/* 1 if type is a request, response or error type some version defines. */
int jig_type_known(uint8_t type);
/* 1 if protocol `version` (1 = 1.0, 2 = 1.1, 3 = 1.2) has command cmd. */
int jig_cmd_in_version(uint8_t cmd, uint8_t version);
/* "1.0", "1.1", "1.2", or "v4" style for a version byte this code does not know. */
const char *jig_version_name(uint8_t version);
/* An SE firmware version (major << 24 | minor << 16 | patch, PROTOCOL.md
 * section 4) as the operator reads it: "major.minor.patch". */
#define JIG_FW_TEXT_MAX sizeof("255.255.65535")
void jig_fw_format(uint32_t fw, char out[JIG_FW_TEXT_MAX]);

/* ---- frames (frame.c) ------------------------------------------------- */

uint32_t jig_crc32(const uint8_t *p, size_t len);

typedef struct jig_frame {
	uint8_t version;
	uint8_t type;
	uint8_t seq;
	uint16_t len;
	uint8_t payload[JIG_MAX_PAYLOAD];
} jig_frame;

/* Encode a frame into out (cap >= JIG_HEADER_LEN + len + JIG_CRC_LEN). */
int jig_frame_encode(const jig_frame *f, uint8_t *out, size_t cap, size_t *outlen, st_err *err);

enum jig_decode_result {
	JIG_DECODE_OK = 0,      /* one frame decoded; *consumed bytes used */
	JIG_DECODE_NEED_MORE,   /* a valid prefix: wait for more bytes */
	JIG_DECODE_BAD,         /* not a frame at buf[0]; err says why; skip 1 byte */
};
/* Decode one frame that starts at buf[0]. */
int jig_frame_decode(const uint8_t *buf, size_t len, jig_frame *f, size_t *consumed, st_err *err);

/* Byte-stream reassembly with resynchronisation (serial, TCP, USB IN). */
typedef struct jig_stream {
	uint8_t buf[2 * JIG_MAX_FRAME];
	size_t len;
	uint64_t skipped;  /* bytes discarded while resynchronising */
	uint64_t bad_frames; /* complete candidate frames refused for their CRC */
	st_err last_bad;   /* why the last discarded candidate frame was rejected */
	uint8_t foreign_version; /* version of the first frame refused for its version since it was reset (0: none) */
} jig_stream;

void jig_stream_init(jig_stream *s);
/* Append received bytes; returns -1 only if more than the buffer can hold was offered. */
int jig_stream_feed(jig_stream *s, const uint8_t *p, size_t n);
/* 1 and *f filled when a frame is ready, 0 when more bytes are needed. */
int jig_stream_next(jig_stream *s, jig_frame *f);
/* Abandon buffered bytes (a truncated frame at a timeout); counted as skipped. */
void jig_stream_discard(jig_stream *s);

/* ---- commands (msg.c) ------------------------------------------------- */

typedef struct jig_blob {
	size_t len;
	uint8_t data[JIG_BLOB_MAX];
} jig_blob;

typedef struct jig_se_info {
	char serial[JIG_STR_MAX + 1];
	char model[JIG_STR_MAX + 1];
	uint32_t firmware;
	uint8_t lifecycle;
	uint8_t challenge[JIG_NONCE_LEN];
	size_t ncerts;
	jig_blob certs[JIG_MAX_CERTS]; /* attestation certificate first */
	/* 1.1: SE_INFO carries only the attestation certificate (ncerts 1 on the
	 * wire) and the SHA-256 of the vendor chain (jig_chain_digest); the
	 * station appends the chain it has for that digest to certs[]. */
	int chain_by_digest;
	uint8_t chain_sha256[JIG_SHA256_LEN];
	/* 1.2: the attestation certificate travels as a delta against the
	 * vendor chain's payload (jig_delta_apply); ncerts is 0 until the
	 * station has rebuilt it into certs[0]. */
	int cert_by_delta;
	jig_blob attest_delta;
	/* 1.2: the template VENDOR_CHAIN sent with the chain (a dictionary for
	 * the delta, covered by chain_sha256), once the chain is resolved */
	int chain_has_tmpl;
	jig_blob chain_tmpl;
} jig_se_info;

/* TPM_INFO response (PROTOCOL.md section 11). */
typedef struct jig_tpm_info {
	uint32_t manufacturer;          /* TPM_PT_MANUFACTURER: four ASCII characters, e.g. "IBM\0" */
	char vendor[JIG_STR_MAX + 1];   /* TPM_PT_VENDOR_STRING_1..4, a text */
	uint32_t fw1, fw2;              /* TPM_PT_FIRMWARE_VERSION_1, _2 */
	uint32_t nv_attrs[2];           /* TPMA_NV of the IAK and IDevID certificate indices; 0: not defined */
	jig_blob ek_public;             /* TPM2B_PUBLIC of the RSA 2048 EK (TCG default template) */
	size_t n_ekcerts;
	jig_blob ek_certs[JIG_TPM_MAX_EKCERTS]; /* DER, from the TCG EK certificate NV indices */
} jig_tpm_info;

/* One decoded request, response or error.  `type` is the frame type;
 * `version` the protocol version of the frame (0 is taken as 1.0): the
 * payloads of SE_INFO, READ_CERT and LOCK differ between 1.0 and 1.1. */
typedef struct jig_msg {
	uint8_t type;
	uint8_t version;
	union {
		struct { uint8_t min_version, max_version; } hello_req;
		struct {
			uint8_t version;
			char jig_id[JIG_STR_MAX + 1];
			char firmware[JIG_STR_MAX + 1];
			uint32_t capabilities;
			uint16_t max_payload;
			/* 1.1 (present when version >= 2): serial line rates the jig
			 * can switch to (SET_BAUD), highest last; none for USB/TCP. */
			uint8_t nrates;
			uint32_t rates[JIG_MAX_RATES];
		} hello;
		struct { uint8_t action; } power_req;               /* DUT_POWER */
		struct { uint8_t present, powered; } dut;           /* DUT_STATUS, DUT_POWER responses */
		jig_se_info se_info;
		struct { uint8_t challenge[JIG_NONCE_LEN]; } challenge;  /* AUTH_CHALLENGE response */
		jig_blob signature;                                 /* AUTH_RESPONSE req, REWORK_CHALLENGE resp */
		struct { uint8_t slot, algorithm, flags; } keygen_req;
		jig_blob pubkey;                                    /* KEYGEN response */
		struct { uint8_t slot; uint8_t nonce[JIG_NONCE_LEN]; } csr_req;
		/* GET_CSR response; 1.2 carries csr_signature and signature only
		 * (both ends build the CSR and the attestation, section 6) */
		struct { jig_blob csr, attestation, signature, csr_signature; } csr;
		/* INSTALL_CERT request: 1.0 and 1.1 the certificate, 1.2 a delta
		 * against a template (CERT_TEMPLATE) and the slot's public key */
		struct { uint8_t slot; jig_blob cert; uint8_t template_sha256[JIG_SHA256_LEN]; jig_blob delta; } install_req;
		struct { uint8_t slot, form; } slot_req;            /* READ_CERT (form: 1.1), RETIRE */
		jig_blob cert;                                      /* READ_CERT response (1.1 form 1: 32 bytes or none), CERT_TEMPLATE request */
		struct { uint8_t slot; uint8_t nonce[JIG_NONCE_LEN]; } lock_req; /* LOCK request (1.1) */
		struct { uint8_t lifecycle; jig_blob signature; } lock; /* LOCK response (signature: 1.1) */
		/* VENDOR_CHAIN response; tmpl: 1.2 */
		struct { size_t n; jig_blob certs[JIG_MAX_CERTS - 1]; jig_blob tmpl; } chain;
		struct { uint32_t baud; uint16_t confirm_ms; } baud_req; /* SET_BAUD request */
		struct { uint8_t slot; uint8_t challenge[JIG_NONCE_LEN]; } rework_req;
		/* TPM 2.0 devices (section 11); TPM structures travel marshalled, as TPM2B_*. */
		jig_tpm_info tpm_info;
		struct { uint8_t flags; } tpm_keygen_req;                /* JIG_KEYGEN_KEEP */
		struct { jig_blob iak, idevid; } tpm_keys;              /* TPM_KEYGEN response: TPM2B_PUBLIC each */
		struct { jig_blob credential, secret; } tpm_activate_req; /* TPM2B_ID_OBJECT, TPM2B_ENCRYPTED_SECRET */
		jig_blob tpm_secret;                                    /* TPM_ACTIVATE response: TPM2B_DIGEST */
		struct { uint8_t nonce[JIG_NONCE_LEN]; } tpm_certify_req;
		struct { jig_blob attest, signature, csr; } tpm_certify; /* TPM2B_ATTEST, TPMT_SIGNATURE, PKCS#10 DER */
		struct { uint8_t which; jig_blob data; } tpm_nv_write_req;
		struct { uint8_t which; } tpm_nv_req;                   /* TPM_NV_READ request */
		struct { uint32_t attrs; jig_blob data; } tpm_nv;       /* TPM_NV_READ response */
		struct { uint32_t attrs[2]; } tpm_lock;                 /* TPM_LOCK and TPM_RETIRE responses: TPMA_NV after */
		struct { uint8_t challenge[JIG_NONCE_LEN]; } tpm_rework_req; /* TPM_REWORK_SIGN request */
		jig_blob tpm_signature;                                 /* TPM_REWORK_SIGN response: TPMT_SIGNATURE */
		struct {
			uint8_t command;
			uint16_t code;
			char message[JIG_ERRMSG_MAX + 1];
		} error;
	} u;
} jig_msg;

/* Encode m's payload for frame type m->type in protocol version m->version. */
int jig_msg_encode(const jig_msg *m, uint8_t *payload, size_t cap, size_t *len, st_err *err);
/* The same in protocol `version`, whatever m->version says. */
int jig_msg_encode_v(uint8_t version, const jig_msg *m, uint8_t *payload, size_t cap, size_t *len, st_err *err);
/* Decode a payload of frame type `type` of a frame of protocol `version`;
 * every length checked, exact consumption.  An unknown type, or a command
 * that version does not have, fails with ST_E_NOTFOUND (a jig answers
 * UNKNOWN_COMMAND), a malformed payload with ST_E_PROTO (BAD_REQUEST). */
int jig_msg_decode_v(uint8_t version, uint8_t type, const uint8_t *payload, size_t len, jig_msg *m, st_err *err);
/* The same for a version-1 (protocol 1.0) frame. */
int jig_msg_decode(uint8_t type, const uint8_t *payload, size_t len, jig_msg *m, st_err *err);
/* ---- the jig's side: answers every jig builds the same way ---- */
/* An ERROR answer to cmd: code and a printf-formatted message (cut to
 * JIG_ERRMSG_MAX). */
void jig_msg_error(jig_msg *m, uint8_t cmd, uint16_t code, const char *fmt, ...) ST_PRINTF(4, 5);
/* The HELLO answer of a jig that speaks JIG_VERSION_MIN..max to the HELLO
 * request req: 0 and m the response in the highest version both speak
 * (max_payload JIG_MAX_PAYLOAD; the caller adds jig id, firmware,
 * capabilities, rates), or -1 and m the UNSUPPORTED_VERSION error. */
int jig_hello_answer(const jig_msg *req, uint8_t max, jig_msg *m);
/* The VENDOR_CHAIN response payload, u8 n || n x (u16 length || DER), and
 * in 1.2 (tmpl not NULL) || u16 length || template: 0 and *len, or -1 if
 * it cannot be one.  In 1.2 it is the source attestation certificate
 * deltas are made against (with the SE serial after it). */
int jig_chain_payload(const jig_blob *certs, size_t n, const jig_blob *tmpl, uint8_t *out, size_t cap,
    size_t *len);
#define JIG_CHAIN_PAYLOAD_MAX (1 + JIG_MAX_CERTS * (2 + JIG_BLOB_MAX) + JIG_STR_MAX)
/* SHA-256 of that payload: the digest SE_INFO names the chain by (1.1). */
void jig_chain_digest(const jig_blob *certs, size_t n, const jig_blob *tmpl, uint8_t out[JIG_SHA256_LEN]);
/* 1.2: SE_INFO's attestation certificate rebuilt into certs[0] from its
 * delta and the vendor chain the station put in certs[1..] (cert_by_delta
 * cleared); -1 with err saying why. */
int jig_attest_cert_rebuild(jig_se_info *info, st_err *err);

/* ---- certificate deltas (delta.c; 1.2, PROTOCOL.md section 4) ---------- */

#define JIG_DELTA_MIN_COPY 4
#define JIG_DELTA_MAX_COPY (0x7F + JIG_DELTA_MIN_COPY)
#define JIG_DELTA_MAX_LITERAL 0x80
/* Rebuild a target from src and a delta into out (at most cap bytes): 0 and
 * *len, or -1 (ST_E_PROTO) naming the op, its offset and what is wrong. */
int jig_delta_apply(const uint8_t *src, size_t slen, const uint8_t *delta, size_t dlen, uint8_t *out, size_t cap,
    size_t *len, st_err *err);
/* A delta that rebuilds target from src (greedy longest copies). */
int jig_delta_make(const uint8_t *src, size_t slen, const uint8_t *target, size_t tlen, uint8_t *out, size_t cap,
    size_t *len, st_err *err);

/* ---- signed structures (attest.c) ------------------------------------- */

typedef struct jig_attest {
	uint8_t nonce[JIG_NONCE_LEN];
	char serial[JIG_STR_MAX + 1];
	char model[JIG_STR_MAX + 1];
	uint32_t firmware;
	uint8_t lifecycle;
	uint8_t slot;
	uint8_t csr_sha256[32];
	uint8_t pubkey_sha256[32];
} jig_attest;

int jig_attest_encode(const jig_attest *a, uint8_t *out, size_t cap, size_t *len, st_err *err);
int jig_attest_decode(const uint8_t *p, size_t len, jig_attest *a, st_err *err);
/* tag || u8 len(serial) || serial || challenge: the bytes signed for tool
 * authentication (JIG_TAG_TOOL_AUTH), rework (JIG_TAG_REWORK) and a TPM
 * device's rework (JIG_TAG_TPM_REWORK, its serial from jig_tpm_serial). */
int jig_challenge_message(const char *tag, const char *serial, const uint8_t challenge[JIG_NONCE_LEN],
    uint8_t *out, size_t cap, size_t *len, st_err *err);

/* The lock receipt (1.1, PROTOCOL.md section 5): what the SE signs with its
 * attestation key after LOCK.  Both ends build these bytes from what they
 * know; only the signature travels. */
typedef struct jig_lock_receipt {
	uint8_t nonce[JIG_NONCE_LEN];
	char serial[JIG_STR_MAX + 1];
	uint8_t lifecycle;
	uint8_t slot;
	uint8_t cert_sha256[JIG_SHA256_LEN];
} jig_lock_receipt;
int jig_lock_receipt_encode(const jig_lock_receipt *r, uint8_t *out, size_t cap, size_t *len, st_err *err);

/* The 1.2 CSR (section 6), built the same by both ends: the
 * CertificationRequestInfo for an SE serial and the slot's public key
 * (SubjectPublicKeyInfo DER as KEYGEN returned it), and the CSR from that
 * and the slot key's DER ECDSA signature over it (SHA-256). */
#define JIG_CSR_MAX (JIG_BLOB_MAX + 256)
int jig_csr_info(const char *serial, const uint8_t *spki, size_t spki_len, uint8_t *out, size_t cap, size_t *len,
    st_err *err);
int jig_csr_assemble(const uint8_t *info, size_t info_len, const uint8_t *sig, size_t sig_len, uint8_t *out,
    size_t cap, size_t *len, st_err *err);

#endif
