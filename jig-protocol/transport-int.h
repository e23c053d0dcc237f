/* Private to libjig and libjig-wire: what transport.c shares with its backends. */
#ifndef JIG_TRANSPORT_INT_H
#define JIG_TRANSPORT_INT_H

#include "jig-wire.h"

/* A transport owning priv; NULL when out of memory. */
jig_transport *jig_transport_alloc(const struct jig_transport_ops *ops, const char *uri, void *priv);
/* The st_code for an errno value (ENOENT -> ST_E_NOTFOUND, EIO -> ST_E_DISCONNECTED ...). */
int jig_errno_code(int errnum);
/* Milliseconds left until deadline (st_now_ms based), at least 0. */
int jig_ms_left(uint64_t deadline);

int jig_tcp_open(const jig_uri *u, const char *uri, jig_transport **out, st_err *err);
/* libjig only (need libserialport, libusb). */
int jig_serial_open(const jig_uri *u, const char *uri, jig_transport **out, st_err *err);
int jig_usb_open(const jig_uri *u, const char *uri, jig_transport **out, st_err *err);

#endif
