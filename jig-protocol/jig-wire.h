/* libjig-wire: the transport interface and the transports that need only
 * POSIX: a stream fd (TCP, pty), a TCP listener, an in-memory pair; and jig
 * URI parsing.  No libusb, no libserialport: jigsim serves through these. */
#ifndef JIG_WIRE_H
#define JIG_WIRE_H

#include "jig-codec.h"

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
	/* Serial lines: wait until what was written has left, then switch the
	 * line to baud; *old gets the rate before.  NULL where there is no line
	 * rate (TCP, USB). */
	int (*set_baud)(jig_transport *t, unsigned baud, unsigned *old, st_err *err);
};

struct jig_transport {
	const struct jig_transport_ops *ops;
	char uri[256];
	void *priv;
	unsigned baud; /* a serial line: the rate this end runs at now; 0 where there is none */
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

#endif
