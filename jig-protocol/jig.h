/* libjig: the station <-> jig protocol (PROTOCOL.md is normative).
 * Codecs work on buffers and do no I/O; transports move bytes; the client
 * runs one command at a time with timeouts and bounded retries. */
#ifndef JIG_H
#define JIG_H

#include <stddef.h>
#include <stdint.h>

#include "st.h"

#define JIG_SOF 0xA5
#define JIG_VERSION_MIN 1
#define JIG_VERSION_MAX 1
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
#define JIG_CHALLENGE_MSG_MAX (20 + 1 + JIG_STR_MAX + JIG_NONCE_LEN)

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
	JIG_CMD_LAST = JIG_CMD_RETIRE,
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

#define JIG_TAG_TOOL_AUTH "station-tool-auth-v1"
#define JIG_TAG_REWORK "station-rework-v1"
#define JIG_TAG_ATTEST "station-attest-v1"

const char *jig_cmd_name(uint8_t cmd);        /* "KEYGEN"; "0x42" style for unknown */
const char *jig_error_name(uint16_t code);    /* "NO_DUT" */
const char *jig_lifecycle_name(uint8_t lc);   /* "factory" */
/* 1 if type is a request, response or error type this version defines. */
int jig_type_known(uint8_t type);

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
} jig_se_info;

/* One decoded request, response or error.  `type` is the frame type. */
typedef struct jig_msg {
	uint8_t type;
	union {
		struct { uint8_t min_version, max_version; } hello_req;
		struct {
			uint8_t version;
			char jig_id[JIG_STR_MAX + 1];
			char firmware[JIG_STR_MAX + 1];
			uint32_t capabilities;
			uint16_t max_payload;
		} hello;
		struct { uint8_t action; } power_req;               /* DUT_POWER */
		struct { uint8_t present, powered; } dut;           /* DUT_STATUS, DUT_POWER responses */
		jig_se_info se_info;
		struct { uint8_t challenge[JIG_NONCE_LEN]; } challenge;  /* AUTH_CHALLENGE response */
		jig_blob signature;                                 /* AUTH_RESPONSE req, REWORK_CHALLENGE resp */
		struct { uint8_t slot, algorithm, flags; } keygen_req;
		jig_blob pubkey;                                    /* KEYGEN response */
		struct { uint8_t slot; uint8_t nonce[JIG_NONCE_LEN]; } csr_req;
		struct { jig_blob csr, attestation, signature; } csr;    /* GET_CSR response */
		struct { uint8_t slot; jig_blob cert; } install_req;
		struct { uint8_t slot; } slot_req;                  /* READ_CERT, RETIRE */
		jig_blob cert;                                      /* READ_CERT response */
		struct { uint8_t lifecycle; } lock;                 /* LOCK response */
		struct { uint8_t slot; uint8_t challenge[JIG_NONCE_LEN]; } rework_req;
		struct {
			uint8_t command;
			uint16_t code;
			char message[JIG_ERRMSG_MAX + 1];
		} error;
	} u;
} jig_msg;

/* Encode m's payload for frame type m->type. */
int jig_msg_encode(const jig_msg *m, uint8_t *payload, size_t cap, size_t *len, st_err *err);
/* Decode a payload of frame type `type`; every length checked, exact consumption.
 * An unknown type fails with ST_E_NOTFOUND (a jig answers UNKNOWN_COMMAND), a
 * malformed payload with ST_E_PROTO (BAD_REQUEST). */
int jig_msg_decode(uint8_t type, const uint8_t *payload, size_t len, jig_msg *m, st_err *err);

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
 * authentication (JIG_TAG_TOOL_AUTH) and rework (JIG_TAG_REWORK). */
int jig_challenge_message(const char *tag, const char *serial, const uint8_t challenge[JIG_NONCE_LEN],
    uint8_t *out, size_t cap, size_t *len, st_err *err);

/* ---- transports (transport*.c) ---------------------------------------- */

typedef struct jig_transport jig_transport;

struct jig_transport_ops {
	const char *scheme;
	/* Write all n bytes (one frame) or fail. */
	int (*write)(jig_transport *t, const uint8_t *p, size_t n, int timeout_ms, st_err *err);
	/* Read what is available, waiting up to timeout_ms for the first byte:
	 * 0 and *got > 0 on data; -1 with ST_E_TIMEOUT when nothing came,
	 * ST_E_DISCONNECTED when the peer is gone. */
	int (*read)(jig_transport *t, uint8_t *p, size_t cap, size_t *got, int timeout_ms, st_err *err);
	void (*close)(jig_transport *t);
};

struct jig_transport {
	const struct jig_transport_ops *ops;
	char uri[256];
	void *priv;
};

/* A jig URI taken apart (transport.c).  Bad syntax or values are ST_E_CONFIG
 * naming the URI. */
typedef struct jig_uri {
	char scheme[8];            /* "tcp", "serial", "usb" */
	char host[256];            /* tcp: name or address ([v6] without brackets) */
	unsigned port;             /* tcp: 0..65535 (0 only to listen) */
	char path[256];            /* serial: device path */
	unsigned baud;             /* serial: default 115200 */
	int rtscts;                /* serial: flow=rtscts (default none) */
	uint16_t vid, pid;         /* usb */
	char serial[128];          /* usb: serial string to match, "" = any */
} jig_uri;
int jig_uri_parse(const char *uri, jig_uri *u, st_err *err);

#define JIG_CONNECT_TIMEOUT_MS 3000 /* tcp connect */

/* Open by URI: tcp:HOST:PORT, serial:PATH?baud=N[&flow=none|rtscts], usb:VID:PID[?serial=S]. */
int jig_transport_open(const char *uri, jig_transport **out, st_err *err);
/* Two connected in-memory endpoints, for tests (thread-safe: a socketpair). */
int jig_transport_mem_pair(jig_transport **a, jig_transport **b, st_err *err);
/* Wrap an open stream fd (TCP socket, pty master); takes ownership of fd,
 * closing it on failure too.  name becomes the transport's uri. */
jig_transport *jig_transport_fd_new(int fd, const char *name);
/* Listen on tcp:HOST:PORT (port 0 = ephemeral); *fd is the listening socket,
 * bound_uri gets the real tcp:HOST:PORT.  The caller accepts and wraps each
 * connection with jig_transport_fd_new. */
int jig_transport_tcp_listen(const char *uri, int *fd, char *bound_uri, size_t len, st_err *err);
void jig_transport_free(jig_transport *t);

/* What `station jig list` shows: USB jigs and serial ports. */
typedef struct jig_port_info {
	char uri[300];            /* what --jig takes */
	uint16_t vid, pid;        /* 0 when unknown */
	int bus;                  /* USB bus, -1 when unknown */
	char port_path[32];       /* USB port path "1-2.3", "" when unknown */
	char serial[128];         /* USB serial string, "" when unknown */
	char description[128];    /* product or port description */
} jig_port_info;
/* USB devices matching any of the n VID:PID pairs ids[2*i], ids[2*i+1].
 * *out is malloc'd (free()), *count may be 0. */
int jig_usb_list(const uint16_t *ids, size_t n, jig_port_info **out, size_t *count, st_err *err);
/* Serial ports the OS knows (sp_list_ports). */
int jig_serial_list(jig_port_info **out, size_t *count, st_err *err);

/* ---- client (client.c) ------------------------------------------------ */

typedef struct jig_client jig_client;

typedef struct jig_client_stats {
	uint64_t round_trips;    /* commands answered (retries not counted twice) */
	uint64_t retries;
	uint64_t bytes_out, bytes_in;       /* on the wire, frames included */
	uint64_t payload_out, payload_in;   /* payload bytes only */
	uint64_t stale;          /* frames with another seq, discarded */
	uint64_t corrupt;        /* replies refused for their checksum */
} jig_client_stats;

/* The client takes ownership of t (freed even when this fails: NULL). */
jig_client *jig_client_new(jig_transport *t);
void jig_client_free(jig_client *c);
const char *jig_client_uri(const jig_client *c);
/* Per-command timeout (ms; cmd 0 = every command; defaults 2000, KEYGEN and
 * GET_CSR 5000) and retries after a timeout or a corrupt reply (default 2). */
void jig_client_set_timeout(jig_client *c, uint8_t cmd, int timeout_ms);
void jig_client_set_retries(jig_client *c, int retries);
/* Send req, wait for its response.  A jig ERROR frame gives ST_E_REMOTE with
 * err->remote = the jig's code.  Messages read "jig URI: CMD: what happened". */
int jig_client_call(jig_client *c, const jig_msg *req, jig_msg *resp, st_err *err);
/* HELLO with version negotiation; fills *hello. */
int jig_client_hello(jig_client *c, jig_msg *hello, st_err *err);
void jig_client_get_stats(const jig_client *c, jig_client_stats *s);

#endif
