/* libjig: the station's side of the jig protocol (PROTOCOL.md is normative).
 * The codecs (jig-codec.h) work on buffers and do no I/O; transports
 * (jig-wire.h, plus USB and serial here) move bytes; the client runs one
 * command at a time with timeouts and bounded retries. */
#ifndef JIG_H
#define JIG_H

#include "jig-wire.h"

/* Open by URI: tcp:HOST:PORT, serial:PATH?baud=N[&flow=none|rtscts], usb:VID:PID[?serial=S]. */
int jig_transport_open(const char *uri, jig_transport **out, st_err *err);

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
/* The protocol versions HELLO offers (default JIG_VERSION_MIN..MAX); -1 if
 * out of what this library speaks.  A station that saw a jig speak 1.1
 * offers only 1.1 from then on: a jig does not talk it down to 1.0. */
int jig_client_set_versions(jig_client *c, uint8_t min_version, uint8_t max_version);
/* The negotiated version (1 before HELLO). */
uint8_t jig_client_version(const jig_client *c);
/* Protocol 1.1, SET_BAUD with confirm-or-revert (PROTOCOL.md section 8):
 * the jig answers at the old rate and switches; this end switches its line
 * (where the transport has one) and confirms with DUT_STATUS at the new rate
 * within confirm_ms.  0: both ends at baud.  1: no confirmation came, both
 * ends are back at the old rate (this end at once, the jig when its
 * confirm_ms ran out), checked with a DUT_STATUS; err says why.  -1: the
 * jig refused the rate (ST_E_REMOTE, nothing changed) or the line is lost. */
int jig_client_set_baud(jig_client *c, uint32_t baud, unsigned confirm_ms, st_err *err);
/* The rate this end's line runs at now (a serial jig); 0 where the
 * transport has no line rate (TCP, USB). */
unsigned jig_client_line_baud(const jig_client *c);
/* Send req, wait for its response.  A jig ERROR frame gives ST_E_REMOTE with
 * err->remote = the jig's code.  Messages read "jig URI: CMD: what happened". */
int jig_client_call(jig_client *c, const jig_msg *req, jig_msg *resp, st_err *err);
/* HELLO with version negotiation; fills *hello. */
int jig_client_hello(jig_client *c, jig_msg *hello, st_err *err);
void jig_client_get_stats(const jig_client *c, jig_client_stats *s);
/* Told before each retransmission, so an operator sees a jig that answers
 * only on the second try: the command, the try (2 = the first retry), the
 * most tries, and why ("no answer after 2000 ms", "corrupt reply (...)").
 * It runs on the calling thread, inside jig_client_call. */
typedef void jig_retry_hook(void *ctx, uint8_t cmd, int attempt, int attempts, const char *why);
void jig_client_set_retry_hook(jig_client *c, jig_retry_hook *fn, void *ctx);

#endif
