/* jigsim: a simulated jig + DUT + Secure Element that speaks PROTOCOL.md.
 * The SE is played faithfully with real ECDSA (OpenSSL): a factory
 * attestation key certified by a test SE vendor CA, the tool public key
 * pre-loaded, 16 key slots and the lifecycle factory -> provisioned ->
 * rework -> provisioned.  A panel of devices comes one after another: the
 * next DUT appears when the station releases the current one.  Faults can be
 * switched on per device.  The core (jigsim_handle) takes one request frame
 * and gives back zero or one response frame, so any transport can drive it. */
#ifndef JIGSIM_H
#define JIGSIM_H

#include <stddef.h>
#include <stdint.h>

#include "jig-wire.h"
#include "st.h"

/* Faults (PROTOCOL-level misbehaviour), one bit each. */
enum jigsim_fault {
	JIGSIM_F_CORRUPT_BYTE = 1u << 0,   /* first KEYGEN response: one byte flipped */
	JIGSIM_F_DROP_REPLY = 1u << 1,     /* first KEYGEN response: not sent */
	JIGSIM_F_DISCONNECT = 1u << 2,     /* first GET_CSR: nothing executed, connection closed */
	JIGSIM_F_SLOW_REPLY = 1u << 3,     /* every KEYGEN response delayed by slow_ms */
	JIGSIM_F_BAD_ATTEST_SIG = 1u << 4, /* attestation signature over other bytes */
	JIGSIM_F_ATTEST_WRONG_KEY = 1u << 5, /* CSR + attestation for another key than KEYGEN's */
	JIGSIM_F_REPLAY_NONCE = 1u << 6,   /* attestation carries the previous GET_CSR's nonce */
	JIGSIM_F_ALREADY_LOCKED = 1u << 7, /* SE starts provisioned with a foreign leaf certificate */
	JIGSIM_F_READBACK_MISMATCH = 1u << 8, /* READ_CERT returns the certificate with a byte changed */
	JIGSIM_F_UNKNOWN_VENDOR = 1u << 9, /* attestation certificate from a rogue CA */
	JIGSIM_F_REWORK_WRONG_KEY = 1u << 10, /* REWORK_CHALLENGE signed by another key than the slot's */
	JIGSIM_F_BAD_DELTA = 1u << 11,     /* 1.2: SE_INFO's certificate delta copies past its source */
	JIGSIM_F_FORGETS_TEMPLATE = 1u << 12, /* 1.2: INSTALL_CERT answers NO_TEMPLATE, CERT_TEMPLATE or not */
};

/* "corrupt-byte" -> JIGSIM_F_CORRUPT_BYTE; 0 when unknown. */
unsigned jigsim_fault_parse(const char *name);
/* Name of one fault bit, NULL if it is not one. */
const char *jigsim_fault_name(unsigned fault);

typedef struct jigsim_config {
	/* SE vendor batch CA (certificate + key, PEM) and the tool public key (PEM). */
	const char *vendor_ca_cert;
	const char *vendor_ca_key;
	const char *tool_pub;
	const char *serial_prefix; /* "SE": serial = prefix + 16 random hex digits */
	const char *fixed_serial;  /* NULL; else every device gets exactly this serial: clones,
	                              for testing what the station does with a duplicate serial */
	const char *model;         /* "TSE-100" */
	uint32_t firmware;         /* major << 24 | minor << 16 | patch; 1.4.2 */
	unsigned id;               /* jig id "jigsim-<id>" */
	unsigned devices;          /* devices in the panel; 0 = unlimited */
	unsigned keygen_ms, csr_ms, cmd_ms; /* latencies: KEYGEN, GET_CSR, every other command */
	unsigned baud;             /* emulated line: n bytes take n*10/baud s each way; 0 = off */
	/* 1.1: the rates HELLO lists and SET_BAUD switches to (ascending, at
	 * most JIG_MAX_RATES); none: SET_BAUD is refused.  After SET_BAUD the
	 * line runs at the new rate; a frame within confirm_ms keeps it, else
	 * the jig goes back to the old rate.  baud_fail: frames at the new rate
	 * never arrive intact (a cable or adapter that cannot do it), so the
	 * switch always reverts.  A new connection starts at `baud` again (the
	 * station closing the port drops DTR). */
	uint32_t rates[JIG_MAX_RATES];
	unsigned nrates;
	int baud_fail;
	int baud_busy;             /* the frame that confirms a switch is answered with ERROR BUSY */
	unsigned faults;           /* enum jigsim_fault bits */
	unsigned fault_every;      /* faults hit devices K, 2K, 3K... (from 1); 0 or 1 = every device */
	unsigned slow_ms;          /* slow-reply delay */
	/* One-shot pause: the first time any device gets pause_cmd, execute it
	 * (pause_after) or not, send nothing, and wait for the connection to
	 * close.  0 = no pause.  on_pause is called (without locks held) then. */
	/* RMA returns: a device released in the provisioned state comes straight
	 * back once (powered off, same SE), as if the field sent it back for
	 * rework; the panel goes on at its next release. */
	int rma;
	/* A jig without rework: HELLO leaves capability bit 2 clear and
	 * REWORK_CHALLENGE and RETIRE are UNKNOWN_COMMAND. */
	int no_rework;
	/* The highest protocol version this jig speaks: JIG_VERSION_1_1 by
	 * default, JIG_VERSION_1_0 to play a jig with 1.0 firmware (no vendor
	 * chain by digest, no read-back by digest, no lock receipt). */
	uint8_t max_version;
	uint8_t pause_cmd;
	int pause_after;
	void (*on_pause)(void *arg, uint8_t cmd, int after);
	void *on_pause_arg;
} jigsim_config;

/* Defaults: prefix "SE", model "TSE-100", firmware 1.4.2, id 1, unlimited
 * devices, no latency, no faults, slow_ms 10000.  File paths are NULL. */
void jigsim_config_init(jigsim_config *c);

typedef struct jigsim jigsim;

/* Load the vendor CA and tool key, make the first DUT.  The config's strings
 * are copied. */
jigsim *jigsim_new(const jigsim_config *c, st_err *err);
void jigsim_free(jigsim *s);

/* What jigsim_handle asks of the transport besides sending *resp_len bytes. */
enum jigsim_action {
	JIGSIM_REPLY = 0,      /* send the response (if *resp_len > 0) and go on */
	JIGSIM_DISCONNECT = 1, /* close the connection now (disconnect-mid-command) */
	JIGSIM_PAUSED = 2,     /* paused: send nothing, wait for the connection to close */
};

/* One request frame in, zero or one response frame out (cap >= JIG_MAX_FRAME).
 * Returns an enum jigsim_action, or -1 on an internal failure.  Sleeps for
 * the configured latency and line time.  Thread-safe. */
int jigsim_handle(jigsim *s, const uint8_t *req, size_t len, uint8_t *resp, size_t cap, size_t *resp_len,
    st_err *err);
/* The rate the jig's end of the line runs at now (the emulated line's, or
 * what a harness compares with the station's end); 0 when not set. */
unsigned jigsim_line_baud(jigsim *s);
/* A new connection (or a lost one): forget the retransmission cache.  The
 * DUT and its SE stay as they are, the negotiated version is forgotten
 * (until the next HELLO only version-1 frames are taken). */
void jigsim_connection_reset(jigsim *s);

/* Serve one connection: read frames with jig_stream until the peer goes
 * away, a fault closes it, or jigsim_stop().  Returns 0 then. */
int jigsim_serve(jigsim *s, jig_transport *t, st_err *err);
/* Bind uri (tcp:HOST:PORT, port 0 = ephemeral); bound gets the URI with the
 * real port. */
int jigsim_listen(jigsim *s, const char *uri, char *bound, size_t bound_cap, st_err *err);
/* Accept and serve connections one at a time until jigsim_stop(). */
int jigsim_run(jigsim *s, st_err *err);
/* Make jigsim_run/jigsim_serve return soon.  Async-signal-safe. */
void jigsim_stop(jigsim *s);

/* ---- introspection, for tests ---------------------------------------- */

typedef struct jigsim_device_info {
	unsigned index;      /* 1 = first device of the panel */
	char serial[JIG_STR_MAX + 1];
	uint8_t lifecycle;   /* enum jig_lifecycle */
	int present;         /* still in the jig (not released) */
	int powered;
	int authenticated;
	unsigned faults;     /* faults active on this device */
	unsigned keygens;    /* keys generated by KEYGEN */
	unsigned retired;    /* retired records (RETIRE) */
} jigsim_device_info;

/* Devices that have appeared so far (the current one included). */
unsigned jigsim_device_count(jigsim *s);
/* Devices released with DUT_POWER release. */
unsigned jigsim_released(jigsim *s);
/* Info about device `index` (1-based; 0 = the one in the jig).  -1 if none. */
int jigsim_device_get(jigsim *s, unsigned index, jigsim_device_info *info);
/* Switch the faults of device `index` (0 = the one in the jig) from now on,
 * e.g. to break the rework of a device that was provisioned cleanly. */
int jigsim_device_set_faults(jigsim *s, unsigned index, unsigned faults);
/* Certificate installed in a slot (empty when none), or the public key
 * (SubjectPublicKeyInfo DER) of the slot's key.  -1 if no such device/slot
 * or cap too small. */
int jigsim_device_cert(jigsim *s, unsigned index, uint8_t slot, uint8_t *out, size_t cap, size_t *len);
int jigsim_device_pubkey(jigsim *s, unsigned index, uint8_t slot, uint8_t *out, size_t cap, size_t *len);
/* Retired record r of a device: its public key and certificate. */
int jigsim_device_retired(jigsim *s, unsigned index, unsigned r, uint8_t *pub, size_t pub_cap, size_t *pub_len,
    uint8_t *cert, size_t cert_cap, size_t *cert_len);

#endif
