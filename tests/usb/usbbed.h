/* A umockdev testbed with station jigs in it, for the USB and serial tests.
 *
 * USB: a hand-written jig device (PROTOCOL.md section 10) whose usbfs ioctls
 * are answered by a "handle-ioctl" handler: bulk OUT transfers are fed to
 * jigsim's core (jigsim_handle) and bulk IN transfers complete with its
 * responses, so libusb in this process or in a `station` child process does
 * real URB traffic.  Serial: a USB-serial adapter whose ttyUSB0 is the pty
 * umockdev makes; jigsim serves the other end, the handler answers the modem
 * control ioctls a pty does not know.
 *
 * umockdev's handlers run on the testbed's own worker thread, which also
 * serves the ioctls of child processes (they find the testbed through
 * UMOCKDEV_DIR, which umockdev_testbed_new sets).  The test process must run
 * with LD_PRELOAD=libumockdev-preload.so.0 (tests/usb/meson.build does it). */
#ifndef USBBED_H
#define USBBED_H

#include <stdint.h>

#include "jigsim.h"

typedef struct ub_bed ub_bed;
typedef struct ub_jig ub_jig;
typedef struct ub_serial ub_serial;

/* A testbed with a root hub, an external hub on port 1 and an FTDI-like
 * USB-serial adapter without a tty (a USB device that is not a jig). */
ub_bed *ub_bed_new(void);
/* Stops the serial lines, removes the testbed (its directory too). */
void ub_bed_free(ub_bed *b);

/* ---- USB jigs ------------------------------------------------------------ */

/* Plug a jig VID:PID driven by s (not owned) into `port_path` ("1-1.4"
 * behind the hub, or "1-2" on the root hub; 1-3 is the serial adapter) with
 * iSerialNumber `serial`. */
ub_jig *ub_jig_add(ub_bed *b, jigsim *s, const char *port_path, uint16_t vid, uint16_t pid, const char *serial);
/* Plug an unplugged jig back in at the same place (the jigsim state stays). */
void ub_jig_replug(ub_jig *j);
/* Faults: from the first request of command `cmd` on, the jig takes OUT
 * transfers but never answers (0 = off).  Unplugged while the station waits
 * for the answer to a request of command `cmd`: its IN transfer ends with
 * -ESHUTDOWN (0 = off); jigsim's own disconnect fault unplugs it the same
 * way. */
void ub_jig_mute_at(ub_jig *j, uint8_t cmd);
void ub_jig_unplug_at(ub_jig *j, uint8_t cmd);

typedef struct ub_jig_stats {
	unsigned requests[256];  /* request frames seen, by command */
	unsigned repeats[256];   /* requests byte-identical to the one before (retransmissions), by command */
	unsigned out_urbs, in_urbs, zlps, discards, ctrl_urbs;
	unsigned unplugs, opens; /* opens: usbfs clients that connected */
	unsigned bad_urbs;       /* URBs the handler refused (wrong endpoint or type) */
	unsigned detach_claims;  /* claims that detach a kernel driver first (DISCONNECT_CLAIM) */
	unsigned plain_claims, releases;
	unsigned reattaches;     /* USBDEVFS_IOCTL(CONNECT): give the interface back to a driver */
} ub_jig_stats;
void ub_jig_get_stats(ub_jig *j, ub_jig_stats *s);

/* ---- the USB-serial line -------------------------------------------------- */

/* Add the adapter (0403:6001 "FT232R USB UART", serial A10KZ3Q1) on port 1-3
 * with /dev/ttyUSB0 and udev's /dev/UB_SERIAL_BY_ID link to it, and start
 * jigsim s (not owned) on its line. */
#define UB_SERIAL_BY_ID "serial/by-id/usb-FTDI_FT232R_USB_UART_A10KZ3Q1-if00-port0"
ub_serial *ub_serial_add(ub_bed *b, jigsim *s);
/* Write bytes on the line now, as if the jig had sent them; returns once
 * they wait in the tty's input queue. */
void ub_serial_inject(ub_serial *p, const void *bytes, size_t n);
/* Garbage on the line before every response (1) or not (0); see usbbed.c. */
void ub_serial_junk(ub_serial *p, int on);
/* Line settings the station left (the pty's termios). */
void ub_serial_termios(ub_serial *p, unsigned *baud, int *rtscts, int *is_8n1);
/* From now on HELLO's answer lists these n rates (n 0..16, unchecked:
 * unknown, descending or too many if the test says so) instead of jigsim's;
 * n = -1: jigsim's own list again. */
void ub_serial_hello_rates(ub_serial *p, const uint32_t *rates, int n);

/* The line rate.  The station's end is the pty's termios (read before bytes
 * cross, and every millisecond for the time line); the jig's end is jigsim_line_baud() (a jigsim with
 * `baud` set: its emulated line).  While the two differ every byte crosses
 * as a framing error (a zero byte) both ways, as on a real line; jigsim's
 * SET_BAUD answer goes at the rate its request came at. */
#define UB_MAX_RATE_CHANGES 16
#define UB_MAX_RATES 4
typedef struct ub_serial_stats {
	unsigned tiocm;          /* TIOCMGET/SET/BIS/BIC answered by the handler */
	unsigned responses;      /* response frames sent */
	unsigned junk_light;     /* responses preceded by garbage the decoder skips */
	unsigned junk_heavy;     /* ... by a bad-CRC frame (a retransmission) or a truncated one */
	unsigned repeats;        /* requests byte-identical to the one before */
	unsigned requests[256];  /* request frames the jig heard intact, by command */
	unsigned garbled_in;     /* bytes from the station that reached the jig at another rate */
	unsigned garbled_out;    /* responses that reached the station at another rate */
	/* the station's rate, each time it changed (the first: its open) */
	struct { uint64_t ms; unsigned baud; } changes[UB_MAX_RATE_CHANGES];
	unsigned nchanges;
	struct { unsigned baud, responses; } at[UB_MAX_RATES]; /* intact responses by the rate they went at */
	/* from the SET_BAUD answer to the first answer at the station's rate
	 * of before (a switch that fell back): ms, 0 when none */
	uint64_t fallback_ms;
} ub_serial_stats;
void ub_serial_get_stats(ub_serial *p, ub_serial_stats *s);
unsigned ub_serial_responses_at(const ub_serial_stats *s, unsigned baud);

/* ---- helpers ---------------------------------------------------------------- */

/* A jigsim with `base` (NULL: jigsim_config_init's defaults) and the test
 * PKI in `pki` (tu_make_pki): its SE vendor CA and the token's tool key. */
jigsim *ub_sim_new(const char *pki, const jigsim_config *base);
/* The same with the binary's test PKI (tu_pki): jig `id`, a panel of
 * `devices` (0: endless), faults every `every`th device. */
jigsim *ub_sim(unsigned id, unsigned devices, unsigned faults, unsigned every);
/* Wait (bounded; the test fails after timeout_s) until `want` is in the
 * file, or until the jig has been unplugged n times. */
void ub_wait_file_has(const char *path, const char *want, int timeout_s);
void ub_jig_wait_unplugs(ub_jig *j, unsigned n, int timeout_s);
/* Fail unless `want` occurs in out. */
void ub_assert_has(const char *out, const char *want);

#endif
