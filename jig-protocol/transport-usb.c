/* usb:VID:PID[?serial=S] through libusb: vendor interface 0, one bulk OUT and
 * one bulk IN endpoint found from the descriptors, one frame per transfer
 * (PROTOCOL.md sections 1 and 10).  Every libusb error becomes an st_err in
 * usb_err() and nowhere else. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libusb.h>

#include "jig.h"
#include "transport-int.h"

/* A multiple of every bulk packet size (64, 512, 1024) holding a whole frame. */
#define USB_RX_BUF ((JIG_MAX_FRAME + 1023) / 1024 * 1024)

struct usb_priv {
	libusb_context *ctx;
	libusb_device_handle *h;
	uint8_t ep_in, ep_out;
	uint16_t out_packet;  /* wMaxPacketSize of OUT: a full last packet needs a ZLP */
	int claimed;
	uint8_t rx[USB_RX_BUF]; /* one IN transfer; handed out over several reads */
	size_t rx_off, rx_len;
};

static int
usb_err(st_err *err, int r, const char *what)
{
	int code;

	switch (r) {
	case LIBUSB_ERROR_NO_DEVICE:
		return st_err_set(err, ST_E_DISCONNECTED, "%s: the USB jig was unplugged (%s)", what, libusb_error_name(r));
	case LIBUSB_ERROR_TIMEOUT:
		code = ST_E_TIMEOUT;
		break;
	case LIBUSB_ERROR_ACCESS:
		return st_err_set(err, ST_E_CONFIG, "%s: permission denied (%s); install the udev rule for the jig",
		    what, libusb_error_name(r));
	case LIBUSB_ERROR_BUSY:
		return st_err_set(err, ST_E_IO, "%s: the interface is claimed by another program (%s)", what,
		    libusb_error_name(r));
	case LIBUSB_ERROR_NOT_FOUND:
		code = ST_E_NOTFOUND;
		break;
	case LIBUSB_ERROR_NO_MEM:
		code = ST_E_NOMEM;
		break;
	case LIBUSB_ERROR_NOT_SUPPORTED:
	case LIBUSB_ERROR_INVALID_PARAM:
		code = ST_E_CONFIG;
		break;
	default:
		code = ST_E_IO;
		break;
	}
	return st_err_set(err, code, "%s: %s (%s)", what, libusb_strerror(r), libusb_error_name(r));
}

static int
usb_write(jig_transport *t, const uint8_t *p, size_t n, int timeout_ms, st_err *err)
{
	struct usb_priv *u = t->priv;
	unsigned tmo = timeout_ms > 0 ? (unsigned)timeout_ms : 1;
	int sent = 0, r;

	if (n > JIG_MAX_FRAME)
		return st_err_set(err, ST_E_INTERNAL, "write: %zu bytes is more than one frame", n);
	r = libusb_bulk_transfer(u->h, u->ep_out, (uint8_t *)p, (int)n, &sent, tmo);
	if (r == 0 && (size_t)sent == n && u->out_packet && n % u->out_packet == 0) {
		int zlp = 0; /* a full last packet does not end the transfer: say so */

		r = libusb_bulk_transfer(u->h, u->ep_out, (uint8_t *)p, 0, &zlp, tmo);
	}
	if (r < 0)
		return usb_err(err, r, "bulk OUT");
	if ((size_t)sent != n)
		return st_err_set(err, ST_E_TIMEOUT, "bulk OUT: %d of %zu bytes sent", sent, n);
	return 0;
}

static int
usb_read(jig_transport *t, uint8_t *p, size_t cap, size_t *got, int timeout_ms, st_err *err)
{
	struct usb_priv *u = t->priv;
	uint64_t deadline = st_now_ms() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0);
	size_t k;

	*got = 0;
	while (u->rx_off == u->rx_len) {
		int left = jig_ms_left(deadline), n = 0, r;

		r = libusb_bulk_transfer(u->h, u->ep_in, u->rx, (int)sizeof(u->rx), &n, left > 0 ? (unsigned)left : 1);
		if (r < 0 && !(r == LIBUSB_ERROR_TIMEOUT && n > 0)) {
			if (r == LIBUSB_ERROR_TIMEOUT)
				return st_err_set(err, ST_E_TIMEOUT, "no data in %d ms", timeout_ms);
			return usb_err(err, r, "bulk IN");
		}
		u->rx_off = 0;
		u->rx_len = (size_t)n;
		if (n == 0 && jig_ms_left(deadline) == 0) /* zero-length packets only */
			return st_err_set(err, ST_E_TIMEOUT, "no data in %d ms", timeout_ms);
	}
	k = u->rx_len - u->rx_off < cap ? u->rx_len - u->rx_off : cap;
	memcpy(p, u->rx + u->rx_off, k);
	u->rx_off += k;
	*got = k;
	return 0;
}

static void
usb_close(jig_transport *t)
{
	struct usb_priv *u = t->priv;

	if (!u)
		return;
	if (u->claimed)
		libusb_release_interface(u->h, 0);
	if (u->h)
		libusb_close(u->h);
	if (u->ctx)
		libusb_exit(u->ctx);
	free(u);
}

static const struct jig_transport_ops usb_ops = { "usb", usb_write, usb_read, usb_close, NULL };

/* "1-2.3": bus, then the port numbers from the root hub */
static void
port_path(libusb_device *dev, char *buf, size_t len)
{
	uint8_t ports[8];
	int n = libusb_get_port_numbers(dev, ports, (int)sizeof(ports)), i;
	size_t off;

	off = (size_t)snprintf(buf, len, "%u", libusb_get_bus_number(dev));
	for (i = 0; i < n && off < len; i++)
		off += (size_t)snprintf(buf + off, len - off, "%c%u", i == 0 ? '-' : '.', ports[i]);
}

/* Fill serial and product strings; leaves them "" when the device cannot be opened. */
static void
describe(libusb_device *dev, const struct libusb_device_descriptor *d, jig_port_info *pi)
{
	libusb_device_handle *h = NULL;
	int r;

	pi->vid = d->idVendor;
	pi->pid = d->idProduct;
	pi->bus = libusb_get_bus_number(dev);
	port_path(dev, pi->port_path, sizeof(pi->port_path));
	if ((r = libusb_open(dev, &h)) < 0) {
		snprintf(pi->description, sizeof(pi->description), "(cannot open: %s)", libusb_error_name(r));
	} else {
		if (d->iSerialNumber)
			libusb_get_string_descriptor_ascii(h, d->iSerialNumber, (uint8_t *)pi->serial, (int)sizeof(pi->serial));
		if (d->iProduct)
			libusb_get_string_descriptor_ascii(h, d->iProduct, (uint8_t *)pi->description,
			    (int)sizeof(pi->description));
		libusb_close(h);
	}
	if (pi->serial[0])
		snprintf(pi->uri, sizeof(pi->uri), "usb:%04x:%04x?serial=%s", pi->vid, pi->pid, pi->serial);
	else
		snprintf(pi->uri, sizeof(pi->uri), "usb:%04x:%04x", pi->vid, pi->pid);
}

/* Devices of the list matching any VID:PID in ids (and serial when not ""). */
static int
find(libusb_context *ctx, const uint16_t *ids, size_t nids, const char *serial, libusb_device ***match,
    jig_port_info **info, size_t *count, st_err *err)
{
	libusb_device **list = NULL, **m = NULL;
	jig_port_info *v = NULL;
	ssize_t n;
	size_t k = 0, i, j;
	int ret = -1;

	*count = 0;
	if ((n = libusb_get_device_list(ctx, &list)) < 0) {
		usb_err(err, (int)n, "list USB devices");
		goto out;
	}
	if (!(m = calloc((size_t)n + 1, sizeof(*m))) || !(v = calloc((size_t)n + 1, sizeof(*v)))) {
		st_err_set(err, ST_E_NOMEM, "list USB devices: out of memory");
		goto out;
	}
	for (i = 0; i < (size_t)n; i++) {
		struct libusb_device_descriptor d;

		if (libusb_get_device_descriptor(list[i], &d) < 0)
			continue;
		for (j = 0; j < nids; j++)
			if (d.idVendor == ids[2 * j] && d.idProduct == ids[2 * j + 1])
				break;
		if (j == nids)
			continue;
		memset(&v[k], 0, sizeof(v[k]));
		describe(list[i], &d, &v[k]);
		if (serial && *serial && strcmp(v[k].serial, serial) != 0)
			continue;
		m[k++] = libusb_ref_device(list[i]);
	}
	*count = k;
	if (match) {
		*match = m;
		m = NULL;
	}
	*info = v;
	v = NULL;
	ret = 0;
out:
	if (m) {
		for (i = 0; m[i]; i++)
			libusb_unref_device(m[i]);
		free(m);
	}
	free(v);
	if (list)
		libusb_free_device_list(list, 1);
	return ret;
}

static int
find_endpoints(libusb_device *dev, struct usb_priv *u, st_err *err)
{
	struct libusb_config_descriptor *cfg = NULL;
	const struct libusb_interface_descriptor *alt;
	int r, i, ret = -1;

	if ((r = libusb_get_active_config_descriptor(dev, &cfg)) < 0)
		return usb_err(err, r, "read the configuration descriptor");
	if (cfg->bNumInterfaces < 1 || cfg->interface[0].num_altsetting < 1) {
		st_err_set(err, ST_E_CONFIG, "the device has no interface 0: not a station jig");
		goto out;
	}
	alt = &cfg->interface[0].altsetting[0];
	if (alt->bInterfaceClass != JIG_USB_CLASS) {
		st_err_set(err, ST_E_CONFIG, "interface 0 has class 0x%02x, a jig's is 0x%02x (vendor-specific)",
		    alt->bInterfaceClass, JIG_USB_CLASS);
		goto out;
	}
	for (i = 0; i < alt->bNumEndpoints; i++) {
		const struct libusb_endpoint_descriptor *ep = &alt->endpoint[i];

		if ((ep->bmAttributes & LIBUSB_TRANSFER_TYPE_MASK) != LIBUSB_TRANSFER_TYPE_BULK)
			continue;
		if ((ep->bEndpointAddress & LIBUSB_ENDPOINT_DIR_MASK) == LIBUSB_ENDPOINT_IN) {
			if (!u->ep_in)
				u->ep_in = ep->bEndpointAddress;
		} else if (!u->ep_out) {
			u->ep_out = ep->bEndpointAddress;
			u->out_packet = ep->wMaxPacketSize;
		}
	}
	if (!u->ep_in || !u->ep_out) {
		st_err_set(err, ST_E_CONFIG, "interface 0 lacks a bulk %s endpoint: not a station jig", u->ep_in ? "OUT" : "IN");
		goto out;
	}
	ret = 0;
out:
	libusb_free_config_descriptor(cfg);
	return ret;
}

int
jig_usb_open(const jig_uri *uri_parts, const char *uri, jig_transport **out, st_err *err)
{
	const uint16_t ids[2] = { uri_parts->vid, uri_parts->pid };
	libusb_device **match = NULL;
	jig_port_info *info = NULL;
	struct usb_priv *u = NULL;
	size_t n = 0, i;
	int r, ret = -1;

	if (!(u = calloc(1, sizeof(*u)))) {
		st_err_set(err, ST_E_NOMEM, "out of memory");
		goto out;
	}
	if ((r = libusb_init(&u->ctx)) < 0) {
		u->ctx = NULL;
		usb_err(err, r, "initialise libusb");
		goto out;
	}
	if (find(u->ctx, ids, 1, uri_parts->serial, &match, &info, &n, err) < 0)
		goto out;
	if (n == 0) {
		st_err_set(err, ST_E_NOTFOUND, "no USB device %04x:%04x%s%s is connected", ids[0], ids[1],
		    uri_parts->serial[0] ? " with serial " : "", uri_parts->serial);
		goto out;
	}
	if (n > 1) {
		char list[512] = "";
		size_t off = 0;

		for (i = 0; i < n && off < sizeof(list); i++)
			off += (size_t)snprintf(list + off, sizeof(list) - off, "%s%s (port %s)", i ? ", " : "",
			    info[i].serial[0] ? info[i].serial : "no serial", info[i].port_path);
		st_err_set(err, ST_E_CONFIG, "%zu USB devices %04x:%04x match: %s; pick one with ?serial=S", n, ids[0], ids[1],
		    list);
		goto out;
	}
	if (find_endpoints(match[0], u, err) < 0)
		goto out;
	if ((r = libusb_open(match[0], &u->h)) < 0) {
		u->h = NULL;
		usb_err(err, r, "open");
		goto out;
	}
	/* A kernel driver bound to the interface is detached on claim and
	 * reattached on release; "not supported" just means there is none. */
	if ((r = libusb_set_auto_detach_kernel_driver(u->h, 1)) < 0 && r != LIBUSB_ERROR_NOT_SUPPORTED) {
		usb_err(err, r, "detach the kernel driver");
		goto out;
	}
	if ((r = libusb_claim_interface(u->h, 0)) < 0) {
		usb_err(err, r, "claim interface 0");
		goto out;
	}
	u->claimed = 1;
	if (!(*out = jig_transport_alloc(&usb_ops, uri, u))) {
		st_err_set(err, ST_E_NOMEM, "out of memory");
		goto out;
	}
	u = NULL; /* owned by the transport now */
	ret = 0;
out:
	if (u) {
		jig_transport tmp = { .priv = u };

		usb_close(&tmp);
	}
	if (match) {
		for (i = 0; match[i]; i++)
			libusb_unref_device(match[i]);
		free(match);
	}
	free(info);
	if (ret < 0)
		st_err_prefix(err, "jig %s", uri);
	return ret;
}

int
jig_usb_list(const uint16_t *ids, size_t n, jig_port_info **out, size_t *count, st_err *err)
{
	libusb_context *ctx = NULL;
	int r, ret = -1;

	*out = NULL;
	*count = 0;
	if ((r = libusb_init(&ctx)) < 0) {
		ctx = NULL;
		usb_err(err, r, "initialise libusb");
		goto out;
	}
	ret = find(ctx, ids, n, NULL, NULL, out, count, err);
out:
	if (ctx)
		libusb_exit(ctx);
	return ret;
}
