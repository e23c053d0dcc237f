/* The umockdev testbed with USB jigs and a USB-serial line (usbbed.h).
 *
 * What the handler does for a jig's /dev/bus/usb/BBB/DDD, modelled on the
 * kernel's usbfs (libusb's tests/umockdev.c showed the way):
 *   SUBMITURB     control: GET_DESCRIPTOR(string) is answered at once, any
 *                 other request stalls (-EPIPE).  Bulk OUT: the data joins
 *                 the jig's receive buffer; a transfer ends with a short or a
 *                 zero-length packet, and then the frame goes to jigsim_handle.
 *                 Bulk IN: completes with the next response frame.
 *   REAPURBNDELAY the oldest completed URB of this client, or EAGAIN.
 *   DISCARDURB    an URB still in flight completes with -ENOENT (libusb's
 *                 timeout and cancel path); EINVAL once it has completed.
 *   unplugged     in-flight URBs complete with -ESHUTDOWN, everything else
 *                 fails with ENODEV, and the device leaves sysfs and /dev.
 * umockdev makes the usbfs node of an emulated device a plain file, so poll()
 * always says "ready" and libusb reaps in a loop while it waits: waiting
 * costs CPU time here, nothing else. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <termios.h>
#include <unistd.h>

#include <linux/usbdevice_fs.h>

#include <openssl/crypto.h>
#include <umockdev.h>

#include "testutil.h"
#include "usbbed.h"

#define PCI "/devices/pci0000:00/0000:00:14.0"
#define JIG_EP_IN 0x83  /* listed first: the station must read the descriptors */
#define JIG_EP_OUT 0x02
#define JIG_PACKET 512  /* high-speed bulk wMaxPacketSize */
#define MAX_JIGS 4

/* Descriptors as hex, one descriptor a line, spaces between fields (they
 * are dropped).  Device: length, type, bcdUSB, class, subclass, protocol,
 * EP0 size, VID, PID, bcdDevice, string indexes, configurations (16-bit
 * fields little-endian).  Then configuration, interface, endpoints. */
#define ROOT_HUB_DESC                                                                                        \
	"12 01 0002 09 00 01 40 6b1d 0200 0206 03 02 01 01"                                                      \
	"09 02 1900 01 01 00 e0 00"                                                                              \
	"09 04 00 00 01 09 00 00 00"                                                                             \
	"07 05 81 03 0400 0c"
#define HUB_DESC                                                                                             \
	"12 01 1002 09 00 02 40 e305 1006 6093 00 01 00 01"                                                      \
	"09 02 1900 01 01 00 e0 32"                                                                              \
	"09 04 00 00 01 09 00 00 00"                                                                             \
	"07 05 81 03 0100 0c"
#define FTDI_DESC                                                                                            \
	"12 01 0002 00 00 00 08 0304 0160 0006 01 02 03 01"                                                      \
	"09 02 2000 01 01 00 a0 2d"                                                                              \
	"09 04 00 00 02 ff ff ff 02"                                                                             \
	"07 05 81 02 4000 00"                                                                                    \
	"07 05 02 02 4000 00"

struct ub_bed {
	UMockdevTestbed *tb;
	char *root;
	ub_jig *jigs[MAX_JIGS];
	size_t njigs;
	ub_serial *serial;
};

/* ---- device descriptions ---------------------------------------------------- */

/* Sysfs path of a USB device by its kernel name: "usb1", "1-1", "1-1.4". */
static char *
usb_syspath(const char *name)
{
	const char *dot = strrchr(name, '.');
	char *parent, *p;

	if (strncmp(name, "usb", 3) == 0)
		return g_strdup_printf("%s/%s", PCI, name);
	if (!dot)
		return g_strdup_printf("%s/usb1/%s", PCI, name);
	parent = g_strndup(name, (size_t)(dot - name));
	p = usb_syspath(parent);
	g_free(parent);
	parent = p;
	p = g_strdup_printf("%s/%s", parent, name);
	g_free(parent);
	return p;
}

/* umockdev's record format for one USB device on bus 1: the sysfs
 * attributes the kernel has, and the `descriptors` blob libusb reads.
 * Spaces in `hex` are ignored. */
static char *
usb_description(const char *name, unsigned devnum, unsigned speed, uint16_t vid, uint16_t pid, const char *manufacturer,
    const char *product, const char *serial, const char *hex)
{
	char *path = usb_syspath(name), *h = g_strdup(hex), *s, *d, *desc;

	for (s = d = h; *s; s++)
		if (*s != ' ')
			*d++ = *s;
	*d = '\0';
	desc = g_strdup_printf("P: %s\n"
	                       "N: bus/usb/001/%03u\n"
	                       "E: SUBSYSTEM=usb\nE: DEVTYPE=usb_device\nE: DRIVER=usb\n"
	                       "E: BUSNUM=001\nE: DEVNUM=%03u\nE: DEVNAME=/dev/bus/usb/001/%03u\n"
	                       "E: ID_VENDOR_ID=%04x\nE: ID_MODEL_ID=%04x\n"
	                       "A: busnum=1\\n\nA: devnum=%u\\n\nA: speed=%u\\n\nA: bConfigurationValue=1\\n\n"
	                       "A: dev=189:%u\\n\nA: idVendor=%04x\\n\nA: idProduct=%04x\\n\n"
	                       "A: manufacturer=%s\\n\nA: product=%s\\n\n"
	                       "A: serial=%s\\n\n"
	                       "H: descriptors=%s\n",
	    path, devnum, devnum, devnum, vid, pid, devnum, speed, devnum - 1, vid, pid, manufacturer, product,
	    serial, h);
	g_free(path);
	g_free(h);
	return desc;
}

static void
add_description(ub_bed *b, const char *desc)
{
	GError *e = NULL;

	ck_assert_msg(umockdev_testbed_add_from_string(b->tb, desc, &e), "umockdev: %s", e ? e->message : "?");
}

ub_bed *
ub_bed_new(void)
{
	ub_bed *b = calloc(1, sizeof(*b));
	char *d, *tty;

	ck_assert_ptr_nonnull(b);
	b->tb = umockdev_testbed_new();
	ck_assert_ptr_nonnull(b->tb);
	/* The preload library finds the testbed through this, here and in every
	 * child; it must be set before anything asks umockdev_in_mock_environment. */
	ck_assert_ptr_nonnull(getenv("UMOCKDEV_DIR"));
	ck_assert_msg(umockdev_in_mock_environment(),
	    "not under umockdev: run with LD_PRELOAD=libumockdev-preload.so.0 (meson test does; the library is in "
	    "the umockdev package, see scripts/deps)");
	b->root = umockdev_testbed_get_root_dir(b->tb);
	/* Every Linux system has the tty class even without serial ports;
	 * libserialport's port list fails without it. */
	tty = g_strdup_printf("%s/sys/class/tty", b->root);
	ck_assert_int_eq(g_mkdir_with_parents(tty, 0755), 0);
	g_free(tty);
	d = usb_description("usb1", 1, 480, 0x1d6b, 0x0002, "Linux xhci-hcd", "xHCI Host Controller", "0000:00:14.0",
	    ROOT_HUB_DESC);
	add_description(b, d);
	g_free(d);
	d = usb_description("1-1", 2, 480, 0x05e3, 0x0610, "GenesysLogic", "USB2.1 Hub", "", HUB_DESC);
	add_description(b, d);
	g_free(d);
	/* Not a jig: `station jig list` must leave it out of the USB jigs. */
	d = usb_description("1-3", 4, 12, 0x0403, 0x6001, "FTDI", "FT232R USB UART", "A10KZ3Q1", FTDI_DESC);
	add_description(b, d);
	g_free(d);
	return b;
}

/* ---- USB jig: the usbfs handler --------------------------------------------- */

/* One URB a client submitted and has not reaped yet. */
struct urb_rec {
	UMockdevIoctlClient *client;
	UMockdevIoctlData *urb; /* the client's struct usbdevfs_urb (a local copy, synced back on reap) */
	UMockdevIoctlData *buf; /* its buffer, NULL for a zero-length one */
	int in;                 /* bulk IN, waiting for a response */
	int done;
};

struct ub_jig {
	ub_bed *bed;
	jigsim *sim;
	char *syspath, *devnode, *desc, *serial;
	UMockdevIoctlBase *handler;
	GMutex lock;
	GPtrArray *urbs;     /* struct urb_rec *, in submit order */
	GQueue responses;    /* GBytes *, frames waiting for an IN transfer */
	uint8_t rx[JIG_MAX_FRAME + JIG_PACKET]; /* the OUT transfer being received */
	size_t rx_len;
	uint8_t last[JIG_MAX_FRAME]; /* the previous request frame */
	size_t last_len;
	int gone;
	int unplug_next_in; /* pull the plug once the station waits for the answer */
	uint8_t mute_cmd, unplug_cmd;
	int muted;
	ub_jig_stats st;
};

static struct usbdevfs_urb *
urb_of(struct urb_rec *r)
{
	return (struct usbdevfs_urb *)r->urb->data;
}

static void
urb_rec_free(gpointer p)
{
	struct urb_rec *r = p;

	g_object_unref(r->client);
	g_object_unref(r->urb);
	if (r->buf)
		g_object_unref(r->buf);
	g_free(r);
}

static void
finish(struct urb_rec *r, int status, int actual)
{
	urb_of(r)->status = status;
	urb_of(r)->actual_length = actual;
	r->done = 1;
}

/* The kernel's view of an unplug: pending transfers end, the device is gone
 * from sysfs and /dev.  Called with the lock held. */
static void
unplug_locked(ub_jig *j)
{
	guint i;

	if (j->gone)
		return;
	j->gone = 1;
	j->st.unplugs++;
	for (i = 0; i < j->urbs->len; i++) {
		struct urb_rec *r = g_ptr_array_index(j->urbs, i);

		if (!r->done)
			finish(r, -ESHUTDOWN, 0);
	}
	while (!g_queue_is_empty(&j->responses))
		g_bytes_unref(g_queue_pop_head(&j->responses));
	umockdev_testbed_remove_device(j->bed->tb, j->syspath);
}

/* Give queued responses to waiting IN transfers, oldest first. */
static void
complete_in(ub_jig *j)
{
	guint i;

	for (i = 0; i < j->urbs->len && !g_queue_is_empty(&j->responses); i++) {
		struct urb_rec *r = g_ptr_array_index(j->urbs, i);
		GBytes *resp;
		const uint8_t *p;
		gsize n;
		int len = urb_of(r)->buffer_length;

		if (!r->in || r->done)
			continue;
		resp = g_queue_pop_head(&j->responses);
		p = g_bytes_get_data(resp, &n);
		if (!r->buf || (gsize)len < n) { /* the host asked for less than the jig sends */
			if (r->buf)
				memcpy(r->buf->data, p, (size_t)len);
			finish(r, -EOVERFLOW, len);
		} else {
			memcpy(r->buf->data, p, n);
			finish(r, 0, (int)n);
		}
		g_bytes_unref(resp);
	}
}

/* A whole request frame arrived on bulk OUT. */
static void
on_frame(ub_jig *j, const uint8_t *req, size_t len)
{
	static uint8_t resp[JIG_MAX_FRAME]; /* only the worker thread gets here, under the lock */
	size_t resp_len = 0;
	uint8_t cmd = len > 2 ? req[2] : 0;
	st_err err;
	int act;

	j->st.requests[cmd]++;
	if (len == j->last_len && memcmp(req, j->last, len) == 0)
		j->st.repeats[cmd]++;
	memcpy(j->last, req, len);
	j->last_len = len;
	if (j->mute_cmd && cmd == j->mute_cmd)
		j->muted = 1;
	if (j->muted)
		return;
	if (j->unplug_cmd && cmd == j->unplug_cmd) {
		j->unplug_next_in = 1;
		return;
	}
	act = jigsim_handle(j->sim, req, len, resp, sizeof(resp), &resp_len, &err);
	/* This is umockdev's worker thread, which outlives the test: give back
	 * its per-thread OpenSSL state (DRBGs) now, or LeakSanitizer reports it. */
	OPENSSL_thread_stop();
	if (act < 0) {
		fprintf(stderr, "usbbed: jigsim: %s\n", err.msg);
		return;
	}
	if (act == JIGSIM_DISCONNECT) { /* a USB jig that drops off mid-command */
		j->unplug_next_in = 1;
		return;
	}
	if (act == JIGSIM_PAUSED)
		j->muted = 1;
	if (resp_len > 0)
		g_queue_push_tail(&j->responses, g_bytes_new(resp, resp_len));
	complete_in(j);
}

static void
on_out(ub_jig *j, struct urb_rec *r)
{
	int len = urb_of(r)->buffer_length;

	if (len == 0)
		j->st.zlps++;
	if (j->rx_len + (size_t)len > sizeof(j->rx)) /* longer than any frame: the firmware drops it */
		j->rx_len = 0;
	else if (len > 0) {
		memcpy(j->rx + j->rx_len, r->buf->data, (size_t)len);
		j->rx_len += (size_t)len;
	}
	finish(r, 0, len);
	/* A full last packet does not end a transfer; a short or empty one does. */
	if (len % JIG_PACKET == 0 && len > 0)
		return;
	if (j->rx_len > 0) {
		size_t n = j->rx_len;

		j->rx_len = 0;
		on_frame(j, j->rx, n);
	}
}

/* String descriptors: language, manufacturer, product, serial. */
static void
on_control(ub_jig *j, struct urb_rec *r)
{
	uint8_t *setup = r->buf ? r->buf->data : NULL, out[256];
	int len = urb_of(r)->buffer_length, n = 0, want;
	const char *s = NULL;
	size_t i;

	if (!setup || len < 8 || setup[0] != 0x80 || setup[1] != 0x06 || setup[3] != 0x03) {
		finish(r, -EPIPE, 0); /* stall: a jig answers only what libusb asks of it here */
		return;
	}
	switch (setup[2]) {
	case 0:
		out[0] = 4, out[1] = 3, out[2] = 0x09, out[3] = 0x04; /* en-US */
		n = 4;
		break;
	case 1:
		s = "Station Test";
		break;
	case 2:
		s = "station test jig";
		break;
	case 3:
		s = j->serial;
		break;
	default:
		finish(r, -EPIPE, 0);
		return;
	}
	if (s) {
		for (i = 0; s[i] && 2 + 2 * i + 1 < sizeof(out); i++) {
			out[2 + 2 * i] = (uint8_t)s[i];
			out[3 + 2 * i] = 0;
		}
		n = (int)(2 + 2 * i);
		out[0] = (uint8_t)n;
		out[1] = 3;
	}
	want = setup[6] | setup[7] << 8;
	if (n > want)
		n = want;
	if (n > len - 8)
		n = len - 8;
	memcpy(setup + 8, out, (size_t)n);
	finish(r, 0, n);
}

static int
on_submit(ub_jig *j, UMockdevIoctlClient *c)
{
	UMockdevIoctlData *arg = umockdev_ioctl_client_get_arg(c);
	struct urb_rec *r = g_new0(struct urb_rec, 1);
	struct usbdevfs_urb *u;

	r->client = g_object_ref(c);
	r->urb = umockdev_ioctl_data_resolve(arg, 0, sizeof(struct usbdevfs_urb), NULL);
	ck_assert_ptr_nonnull(r->urb);
	u = urb_of(r);
	if (u->buffer_length > 0)
		r->buf = umockdev_ioctl_data_resolve(r->urb, offsetof(struct usbdevfs_urb, buffer), (gsize)u->buffer_length,
		    NULL);
	if (u->type == USBDEVFS_URB_TYPE_CONTROL && u->endpoint == 0) {
		j->st.ctrl_urbs++;
		on_control(j, r);
	} else if (u->type == USBDEVFS_URB_TYPE_BULK && u->endpoint == JIG_EP_OUT) {
		j->st.out_urbs++;
		on_out(j, r);
	} else if (u->type == USBDEVFS_URB_TYPE_BULK && u->endpoint == JIG_EP_IN) {
		j->st.in_urbs++;
		r->in = 1;
	} else {
		j->st.bad_urbs++;
		urb_rec_free(r);
		return EINVAL;
	}
	g_ptr_array_add(j->urbs, r);
	if (r->in && j->unplug_next_in) {
		/* the IN transfer is in flight: the kernel ends it with -ESHUTDOWN */
		j->unplug_next_in = 0;
		unplug_locked(j);
	}
	complete_in(j);
	return 0;
}

static int
on_reap(ub_jig *j, UMockdevIoctlClient *c)
{
	UMockdevIoctlData *ptr;
	struct urb_rec *r = NULL;
	guint i;

	for (i = 0; i < j->urbs->len; i++) {
		struct urb_rec *x = g_ptr_array_index(j->urbs, i);

		if (x->done && x->client == c) {
			r = x;
			break;
		}
	}
	if (!r)
		return j->gone ? ENODEV : EAGAIN;
	/* The client gets its own URB pointer back; the changed fields and the
	 * IN data are written into its memory when the ioctl completes. */
	ptr = umockdev_ioctl_data_resolve(umockdev_ioctl_client_get_arg(c), 0, sizeof(void *), NULL);
	ck_assert_ptr_nonnull(ptr);
	umockdev_ioctl_data_set_ptr(ptr, 0, r->urb);
	g_object_unref(ptr);
	g_ptr_array_remove_index(j->urbs, i);
	return 0;
}

static int
on_discard(ub_jig *j, UMockdevIoctlClient *c)
{
	gulong addr = *(gulong *)umockdev_ioctl_client_get_arg(c)->data; /* _IO: the URB's address itself */
	guint i;

	for (i = 0; i < j->urbs->len; i++) {
		struct urb_rec *r = g_ptr_array_index(j->urbs, i);

		if (r->client != c || r->urb->client_addr != addr)
			continue;
		if (r->done)
			return EINVAL; /* completed already: libusb reaps it */
		j->st.discards++;
		finish(r, -ENOENT, 0);
		return 0;
	}
	return EINVAL;
}

/* Forget the URBs of clients that went away (a station that exited). */
static void
drop_dead_clients(ub_jig *j)
{
	guint i = 0;

	while (i < j->urbs->len) {
		struct urb_rec *r = g_ptr_array_index(j->urbs, i);

		if (umockdev_ioctl_client_get_connected(r->client))
			i++;
		else
			g_ptr_array_remove_index(j->urbs, i);
	}
}

static gboolean
jig_ioctl(UMockdevIoctlBase *handler, UMockdevIoctlClient *c, gpointer data)
{
	ub_jig *j = data;
	gulong req = umockdev_ioctl_client_get_request(c);
	int e = 0;

	g_mutex_lock(&j->lock);
	drop_dead_clients(j);
	if (j->gone && req != USBDEVFS_REAPURBNDELAY && req != USBDEVFS_REAPURB) {
		e = ENODEV;
	} else if (req == USBDEVFS_GET_CAPABILITIES) {
		UMockdevIoctlData *d = umockdev_ioctl_data_resolve(umockdev_ioctl_client_get_arg(c), 0, sizeof(guint32), NULL);

		/* One URB per transfer (scatter-gather), as a modern kernel does. */
		*(guint32 *)d->data = USBDEVFS_CAP_BULK_SCATTER_GATHER | USBDEVFS_CAP_NO_PACKET_SIZE_LIM |
		    USBDEVFS_CAP_REAP_AFTER_DISCONNECT | USBDEVFS_CAP_ZERO_PACKET;
		g_object_unref(d);
	} else if (req == USBDEVFS_SUBMITURB) {
		e = on_submit(j, c);
	} else if (req == USBDEVFS_REAPURBNDELAY || req == USBDEVFS_REAPURB) {
		e = on_reap(j, c);
	} else if (req == USBDEVFS_DISCARDURB) {
		e = on_discard(j, c);
	} else if (req == USBDEVFS_DISCONNECT_CLAIM) {
		j->st.detach_claims++;
	} else if (req == USBDEVFS_CLAIMINTERFACE) {
		j->st.plain_claims++;
	} else if (req == USBDEVFS_RELEASEINTERFACE) {
		j->st.releases++;
	} else if (req == USBDEVFS_CLEAR_HALT || req == USBDEVFS_RESETEP || req == USBDEVFS_SETINTERFACE) {
		e = 0;
	} else if (req == USBDEVFS_IOCTL) {
		UMockdevIoctlData *d = umockdev_ioctl_data_resolve(umockdev_ioctl_client_get_arg(c), 0,
		    sizeof(struct usbdevfs_ioctl), NULL);

		if (d && ((struct usbdevfs_ioctl *)d->data)->ioctl_code == (int)USBDEVFS_CONNECT)
			j->st.reattaches++;
		if (d)
			g_object_unref(d);
		e = ENODATA; /* no kernel driver for the vendor interface to go back to */
	} else if (req == USBDEVFS_GETDRIVER) {
		e = ENODATA; /* "no driver bound" */
	} else {
		fprintf(stderr, "usbbed: %s: unexpected usbfs ioctl 0x%lx\n", j->devnode, req);
		e = ENOTTY;
	}
	umockdev_ioctl_client_complete(c, e ? -1 : 0, e);
	g_mutex_unlock(&j->lock);
	return TRUE;
}

/* A new open() of the device node: a new station session. */
static void
jig_client_connected(UMockdevIoctlBase *handler, UMockdevIoctlClient *c, gpointer data)
{
	ub_jig *j = data;

	g_mutex_lock(&j->lock);
	j->st.opens++;
	j->rx_len = 0;
	while (!g_queue_is_empty(&j->responses))
		g_bytes_unref(g_queue_pop_head(&j->responses));
	g_mutex_unlock(&j->lock);
	jigsim_connection_reset(j->sim);
}

ub_jig *
ub_jig_add(ub_bed *b, jigsim *s, const char *port_path, uint16_t vid, uint16_t pid, const char *serial)
{
	ub_jig *j = calloc(1, sizeof(*j));
	unsigned devnum = 5 + (unsigned)b->njigs;
	char hex[256], *p = NULL;
	GError *e = NULL;

	ck_assert_ptr_nonnull(j);
	ck_assert_uint_lt(b->njigs, MAX_JIGS);
	j->bed = b;
	j->sim = s;
	j->serial = g_strdup(serial);
	j->syspath = g_strdup_printf("/sys%s", (p = usb_syspath(port_path)));
	g_free(p);
	j->devnode = g_strdup_printf("/dev/bus/usb/001/%03u", devnum);
	g_mutex_init(&j->lock);
	j->urbs = g_ptr_array_new_with_free_func(urb_rec_free);
	g_queue_init(&j->responses);
	/* USB 2.0, class per interface, VID:PID, bcdDevice 1.00, strings 1 2 3;
	 * one configuration (bus powered, 100 mA); interface 0 of class 0xFF
	 * with bulk IN 0x83 and bulk OUT 0x02 of 512 bytes (PROTOCOL.md 10). */
	snprintf(hex, sizeof(hex),
	    "12 01 0002 00 00 00 40 %02x%02x %02x%02x 0001 01 02 03 01"
	    "09 02 2000 01 01 00 80 32"
	    "09 04 00 00 02 ff 00 00 00"
	    "07 05 83 02 0002 00"
	    "07 05 02 02 0002 00",
	    vid & 0xff, vid >> 8, pid & 0xff, pid >> 8);
	j->desc = usb_description(port_path, devnum, 480, vid, pid, "Station Test", "station test jig", serial, hex);
	j->handler = umockdev_ioctl_base_new();
	g_signal_connect(j->handler, "handle-ioctl", G_CALLBACK(jig_ioctl), j);
	g_signal_connect(j->handler, "client-connected", G_CALLBACK(jig_client_connected), j);
	/* The handler first, so the node is served from the moment it exists. */
	ck_assert_msg(umockdev_testbed_attach_ioctl(b->tb, j->devnode, j->handler, &e), "attach_ioctl: %s",
	    e ? e->message : "?");
	add_description(b, j->desc);
	b->jigs[b->njigs++] = j;
	return j;
}

void
ub_jig_replug(ub_jig *j)
{
	g_mutex_lock(&j->lock);
	ck_assert(j->gone);
	j->gone = 0;
	j->unplug_next_in = 0;
	j->muted = 0;
	j->rx_len = 0;
	add_description(j->bed, j->desc);
	g_mutex_unlock(&j->lock);
}

void
ub_jig_mute_at(ub_jig *j, uint8_t cmd)
{
	g_mutex_lock(&j->lock);
	j->mute_cmd = cmd;
	j->muted = 0;
	g_mutex_unlock(&j->lock);
}

void
ub_jig_unplug_at(ub_jig *j, uint8_t cmd)
{
	g_mutex_lock(&j->lock);
	j->unplug_cmd = cmd;
	g_mutex_unlock(&j->lock);
}

void
ub_jig_get_stats(ub_jig *j, ub_jig_stats *s)
{
	g_mutex_lock(&j->lock);
	*s = j->st;
	g_mutex_unlock(&j->lock);
}

static void
jig_free(ub_jig *j)
{
	GError *e = NULL;

	umockdev_testbed_detach_ioctl(j->bed->tb, j->devnode, &e);
	g_clear_error(&e);
	g_object_unref(j->handler);
	g_ptr_array_free(j->urbs, TRUE);
	while (!g_queue_is_empty(&j->responses))
		g_bytes_unref(g_queue_pop_head(&j->responses));
	g_mutex_clear(&j->lock);
	g_free(j->syspath);
	g_free(j->devnode);
	g_free(j->desc);
	g_free(j->serial);
	free(j);
}

/* ---- the USB-serial line ------------------------------------------------------ */

struct ub_serial {
	ub_bed *bed;
	jigsim *sim;
	int master;   /* umockdev's end of the pty (the testbed owns it) */
	int slave;    /* held open: the line stays up between station runs */
	UMockdevIoctlBase *handler;
	pthread_t th, rate_th;
	atomic_int stop;
	GMutex lock;
	int mbits;    /* modem lines: what TIOCMGET reports */
	int junk;
	jig_stream req; /* requests as the jig hears them, for the statistics */
	uint8_t last[JIG_MAX_FRAME];
	size_t last_len;
	ub_serial_stats st;
	/* The line rate: the station's end is the pty's termios (station_rate),
	 * the jig's is jigsim_line_baud(). */
	unsigned station_baud;
	unsigned jig_rx_baud;      /* the jig's rate when the last request came */
	unsigned baud_before;      /* the station's rate when SET_BAUD was answered */
	int switch_pending;        /* a SET_BAUD answered, no answer at baud_before since */
	uint64_t baud_answer_ms;
	/* HELLO's rate list as the station is to hear it (-1: as jigsim sends it) */
	int hello_n;
	uint32_t hello_rates[16];
};

/* The rate a termios c_cflag names (0: one not in this table). */
static unsigned
cflag_baud(tcflag_t cflag)
{
	static const struct { speed_t code; unsigned baud; } rates[] = {
		{ B9600, 9600 }, { B19200, 19200 }, { B38400, 38400 }, { B57600, 57600 }, { B115200, 115200 },
		{ B230400, 230400 }, { B460800, 460800 }, { B500000, 500000 }, { B921600, 921600 },
		{ B1000000, 1000000 }, { B1500000, 1500000 }, { B2000000, 2000000 }, { B3000000, 3000000 },
	};
	size_t i;

	for (i = 0; i < sizeof(rates) / sizeof(rates[0]); i++)
		if (rates[i].code == (cflag & CBAUD))
			return rates[i].baud;
	return 0;
}

/* The kernel's struct termios2 (<asm/termbits.h> cannot be included beside
 * <termios.h>): libserialport sets rates above 460800 through it, as BOTHER
 * with the rate in c_ospeed. */
struct ub_termios2 {
	tcflag_t c_iflag, c_oflag, c_cflag, c_lflag;
	cc_t c_line;
	cc_t c_cc[19];
	speed_t c_ispeed, c_ospeed;
};
#define UB_TCGETS2 _IOR('T', 0x2A, struct ub_termios2)
#define UB_BOTHER 0010000 /* <asm/termbits.h> */

/* The pty's output rate now.  A raw syscall: the preload library takes
 * ioctl() calls on the pty that backs /dev/ttyUSB0 for its own. */
static unsigned
pty_baud(ub_serial *p)
{
	struct ub_termios2 t;

	memset(&t, 0, sizeof(t));
	ck_assert_int_eq(syscall(SYS_ioctl, p->slave, UB_TCGETS2, &t), 0);
	return (t.c_cflag & CBAUD) == UB_BOTHER ? t.c_ospeed : cflag_baud(t.c_cflag);
}

/* The station's rate now; a new one joins the time line.  Called with the
 * lock held.  The station's termios calls do not reach the ioctl handler
 * (the preload library gives the pty what it knows), so the rate is read
 * where it matters (before bytes cross) and by a watcher thread that
 * times the changes. */
static unsigned
station_rate(ub_serial *p)
{
	unsigned b = pty_baud(p);

	if (b != p->station_baud) {
		p->station_baud = b;
		if (p->st.nchanges < UB_MAX_RATE_CHANGES) {
			p->st.changes[p->st.nchanges].ms = st_now_ms();
			p->st.changes[p->st.nchanges].baud = b;
		}
		p->st.nchanges++;
	}
	return b;
}

static void *
rate_thread(void *arg)
{
	ub_serial *p = arg;

	while (!atomic_load(&p->stop)) {
		g_mutex_lock(&p->lock);
		station_rate(p);
		g_mutex_unlock(&p->lock);
		usleep(1000);
	}
	return NULL;
}

/* A pty knows no modem lines: answer TIOCM* here, the rest is the pty's. */
static gboolean
tty_ioctl(UMockdevIoctlBase *handler, UMockdevIoctlClient *c, gpointer data)
{
	ub_serial *p = data;
	gulong req = umockdev_ioctl_client_get_request(c);
	UMockdevIoctlData *d;
	int r, e = 0;

	if (req != TIOCMGET && req != TIOCMSET && req != TIOCMBIS && req != TIOCMBIC) {
		r = umockdev_ioctl_client_execute(c, &e, NULL);
		umockdev_ioctl_client_complete(c, r, e);
		return TRUE;
	}
	d = umockdev_ioctl_data_resolve(umockdev_ioctl_client_get_arg(c), 0, sizeof(int), NULL);
	ck_assert_ptr_nonnull(d);
	g_mutex_lock(&p->lock);
	p->st.tiocm++;
	if (req == TIOCMGET)
		*(int *)d->data = p->mbits | TIOCM_CTS | TIOCM_DSR | TIOCM_CAR; /* the jig is there and ready */
	else if (req == TIOCMSET)
		p->mbits = *(int *)d->data;
	else if (req == TIOCMBIS)
		p->mbits |= *(int *)d->data;
	else
		p->mbits &= ~*(int *)d->data;
	g_mutex_unlock(&p->lock);
	g_object_unref(d);
	umockdev_ioctl_client_complete(c, 0, 0);
	return TRUE;
}

/* Garbage a jig's line may carry.  "Light" junk is refused by the decoder
 * byte by byte (noise, a SOF with a bad version, a SOF with an oversized
 * length); "heavy" junk looks like a frame until its CRC fails (a whole bad
 * frame, or a header whose length swallows the real frame's start); a bad
 * frame read on its own is a corrupt reply to the station, which
 * retransmits, and jigsim answers from its cache. */
static const uint8_t junk_light[] = { 0x00, 0xff, 0x13, 0x37, 'n', 'o', 'i', 's', 'e', 0xA5, 0x09, 0x81,
	                              0xA5, 0x01, 0x81, 0x01, 0xff, 0xff };
static const uint8_t junk_bad_frame[] = { 0xA5, 0x01, 0x82, 0x07, 0x00, 0x02, 0xde, 0xad, 0x00, 0x00, 0x00, 0x00 };
static const uint8_t junk_truncated[] = { 0xA5, 0x01, 0x84, 0x05, 0x00, 0x10 };

struct line {
	ub_serial *p;
	jig_transport *inner;
};

/* Bytes sent at one rate and received at another arrive as framing errors:
 * a UART that samples a slower signal mostly reads the start bit's low level,
 * one that samples a faster signal reads noise.  Here they arrive as zero
 * bytes, which no decoder takes for a frame.  A jigsim without an emulated
 * line (rate 0) has no rate to differ. */
static int
rates_differ(unsigned jig, unsigned station)
{
	return jig && station && jig != station;
}

/* HELLO's answer with the rate list the test chose: jigsim's own list (the
 * tail after max_payload) is replaced, the CRC made anew.  The list is not
 * checked: the point is to send the station what no jigsim would. */
static size_t
rewrite_hello(ub_serial *p, const uint8_t *in, size_t n, uint8_t *out, size_t cap)
{
	jig_frame *f = malloc(sizeof(*f));
	size_t used = 0, len = 0, off;
	uint16_t slen;
	st_rd rd;
	st_wr wr;
	st_err e;
	int i;

	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(jig_frame_decode(in, n, f, &used, &e), JIG_DECODE_OK);
	/* version (1.1: a rate list follows), jig_id, firmware, capabilities,
	 * max_payload */
	ck_assert(f->len > 0 && f->payload[0] >= JIG_VERSION_1_1);
	st_rd_init(&rd, f->payload, f->len);
	ck_assert(st_rd_take(&rd, 1) && st_rd_u16(&rd, &slen) == 0 && st_rd_take(&rd, slen));
	ck_assert(st_rd_u16(&rd, &slen) == 0 && st_rd_take(&rd, slen) && st_rd_take(&rd, 4 + 2));
	off = f->len - st_rd_left(&rd);
	st_wr_init(&wr, f->payload + off, sizeof(f->payload) - off);
	st_wr_u8(&wr, (uint8_t)p->hello_n);
	for (i = 0; i < p->hello_n; i++)
		st_wr_u32(&wr, p->hello_rates[i]);
	ck_assert(!wr.bad);
	f->len = (uint16_t)(off + wr.len);
	ck_assert_int_eq(jig_frame_encode(f, out, cap, &len, &e), 0);
	free(f);
	return len;
}

/* Wait (bounded) until the station says something: here, its retransmission. */
static void
wait_for_station(ub_serial *p)
{
	struct pollfd pfd = { .fd = p->master, .events = POLLIN };

	while (poll(&pfd, 1, 3000) < 0 && errno == EINTR)
		;
}

static int
line_write(jig_transport *t, const uint8_t *buf, size_t n, int timeout_ms, st_err *err)
{
	struct line *l = t->priv;
	ub_serial *p = l->p;
	uint8_t out[2 * JIG_MAX_FRAME], hello[JIG_MAX_FRAME];
	size_t off = 0;
	int split = 0, baud_answer = n > 2 && buf[0] == JIG_SOF && buf[2] == (JIG_CMD_SET_BAUD | JIG_RESPONSE);
	unsigned jig_baud = baud_answer ? 0 : jigsim_line_baud(p->sim), station;

	if (n > 2 && buf[0] == JIG_SOF && buf[2] == (JIG_CMD_HELLO | JIG_RESPONSE) && p->hello_n >= 0) {
		n = rewrite_hello(p, buf, n, hello, sizeof(hello));
		buf = hello;
	}
	g_mutex_lock(&p->lock);
	/* SET_BAUD's answer goes at the rate the request came at; the jig
	 * switches after it. */
	if (baud_answer)
		jig_baud = p->jig_rx_baud;
	station = station_rate(p);
	if (rates_differ(jig_baud, station)) {
		p->st.garbled_out++;
	} else {
		unsigned i;

		for (i = 0; i < UB_MAX_RATES && p->st.at[i].baud && p->st.at[i].baud != station; i++)
			;
		if (i < UB_MAX_RATES) {
			p->st.at[i].baud = station;
			p->st.at[i].responses++;
		}
		if (baud_answer) {
			p->baud_before = station;
			p->switch_pending = 1;
			p->baud_answer_ms = st_now_ms();
		} else if (p->switch_pending && station == p->baud_before) {
			/* the first answer at the old rate again: the switch is over */
			p->switch_pending = 0;
			p->st.fallback_ms = st_now_ms() - p->baud_answer_ms;
		}
	}
	p->st.responses++;
	if (p->junk) {
		memcpy(out, junk_light, sizeof(junk_light));
		off = sizeof(junk_light);
		p->st.junk_light++;
		/* now and then, never twice in a row: the station's retries are bounded */
		if (p->st.responses % 7 == 2) {
			split = p->st.junk_heavy % 2 == 0;
			memcpy(out + off, split ? junk_bad_frame : junk_truncated,
			    split ? sizeof(junk_bad_frame) : sizeof(junk_truncated));
			off += split ? sizeof(junk_bad_frame) : sizeof(junk_truncated);
			p->st.junk_heavy++;
		}
	}
	g_mutex_unlock(&p->lock);
	if (split) {
		/* The bad frame alone first: the station sees a corrupt reply and
		 * retransmits, which jigsim answers from its cache. */
		if (l->inner->ops->write(l->inner, out, off, timeout_ms, err) < 0)
			return -1;
		wait_for_station(p);
		off = 0;
	}
	ck_assert_uint_le(off + n, sizeof(out));
	memcpy(out + off, buf, n);
	if (rates_differ(jig_baud, station))
		memset(out, 0, off + n);
	return l->inner->ops->write(l->inner, out, off + n, timeout_ms, err);
}

static int
line_read(jig_transport *t, uint8_t *buf, size_t cap, size_t *got, int timeout_ms, st_err *err)
{
	struct line *l = t->priv;
	ub_serial *p = l->p;
	unsigned jig_baud;
	jig_frame *f;

	if (atomic_load(&p->stop))
		return st_err_set(err, ST_E_DISCONNECTED, "line stopped");
	if (l->inner->ops->read(l->inner, buf, cap, got, timeout_ms, err) < 0)
		return -1;
	f = malloc(sizeof(*f));
	ck_assert_ptr_nonnull(f);
	jig_baud = jigsim_line_baud(p->sim);
	g_mutex_lock(&p->lock);
	p->jig_rx_baud = jig_baud;
	if (rates_differ(jig_baud, station_rate(p))) {
		memset(buf, 0, *got);
		p->st.garbled_in += (unsigned)*got;
	}
	if (jig_stream_feed(&p->req, buf, *got) < 0)
		jig_stream_init(&p->req);
	while (jig_stream_next(&p->req, f)) {
		uint8_t raw[JIG_MAX_FRAME];
		size_t len = 0;

		ck_assert_int_eq(jig_frame_encode(f, raw, sizeof(raw), &len, NULL), 0);
		if (len == p->last_len && memcmp(raw, p->last, len) == 0)
			p->st.repeats++;
		p->st.requests[f->type]++;
		memcpy(p->last, raw, len);
		p->last_len = len;
	}
	g_mutex_unlock(&p->lock);
	free(f);
	return 0;
}

static void
line_close(jig_transport *t)
{
	struct line *l = t->priv;

	jig_transport_free(l->inner);
	free(l);
}

static const struct jig_transport_ops line_ops = { "line", line_write, line_read, line_close, NULL };

/* The jig's side of the line: jigsim_serve until the test ends (it returns
 * early only when a jigsim fault drops the connection). */
static void *
line_thread(void *arg)
{
	ub_serial *p = arg;

	while (!atomic_load(&p->stop)) {
		jig_transport *t = calloc(1, sizeof(*t));
		struct line *l = calloc(1, sizeof(*l));
		int fd = fcntl(p->master, F_DUPFD_CLOEXEC, 0);
		st_err e;

		ck_assert(t && l && fd >= 0);
		l->p = p;
		l->inner = jig_transport_fd_new(fd, "ttyUSB0-jig");
		ck_assert_ptr_nonnull(l->inner);
		t->ops = &line_ops;
		t->priv = l;
		snprintf(t->uri, sizeof(t->uri), "jig end of /dev/ttyUSB0");
		if (jigsim_serve(p->sim, t, &e) < 0)
			fprintf(stderr, "usbbed: %s\n", e.msg);
		jig_transport_free(t);
	}
	return NULL;
}

ub_serial *
ub_serial_add(ub_bed *b, jigsim *s)
{
	static const char *tty = "/sys" PCI "/usb1/1-3/1-3:1.0/ttyUSB0/tty/ttyUSB0";
	ub_serial *p = calloc(1, sizeof(*p));
	char *pts = NULL, *link = NULL;
	GError *e = NULL;

	ck_assert_ptr_nonnull(p);
	ck_assert_ptr_null(b->serial);
	p->bed = b;
	p->sim = s;
	p->mbits = TIOCM_DTR | TIOCM_RTS;
	p->hello_n = -1;
	g_mutex_init(&p->lock);
	jig_stream_init(&p->req);
	p->handler = umockdev_ioctl_base_new();
	g_signal_connect(p->handler, "handle-ioctl", G_CALLBACK(tty_ioctl), p);
	ck_assert(umockdev_testbed_attach_ioctl(b->tb, "/dev/ttyUSB0", p->handler, &e));
	/* The FTDI adapter's interface, its usb-serial port and the tty, as the
	 * kernel's ftdi_sio lays them out; no N: contents, so umockdev backs
	 * /dev/ttyUSB0 with a pty. */
	add_description(b, "P: " PCI "/usb1/1-3/1-3:1.0\n"
	                   "E: SUBSYSTEM=usb\nE: DEVTYPE=usb_interface\nE: DRIVER=ftdi_sio\n"
	                   "A: bInterfaceClass=ff\\n\nA: bInterfaceNumber=00\\n\nA: interface=FT232R USB UART\\n\n");
	add_description(b, "P: " PCI "/usb1/1-3/1-3:1.0/ttyUSB0\n"
	                   "E: SUBSYSTEM=usb-serial\nE: DRIVER=ftdi_sio\n");
	add_description(b, "P: " PCI "/usb1/1-3/1-3:1.0/ttyUSB0/tty/ttyUSB0\n"
	                   "N: ttyUSB0\n"
	                   "E: SUBSYSTEM=tty\nE: DEVNAME=/dev/ttyUSB0\nE: MAJOR=188\nE: MINOR=0\n"
	                   "A: dev=188:0\\n\n");
	/* libserialport walks tty/ttyUSB0/device/.. up to the USB device. */
	umockdev_testbed_set_attribute_link(b->tb, tty, "device", "../../../ttyUSB0");
	/* udev's stable name for it, the one a recipe should use */
	link = g_strdup_printf("%s/dev/serial/by-id", b->root);
	ck_assert_int_eq(g_mkdir_with_parents(link, 0755), 0);
	g_free(link);
	link = g_strdup_printf("%s/dev/" UB_SERIAL_BY_ID, b->root);
	ck_assert_int_eq(symlink("../../ttyUSB0", link), 0);
	g_free(link);
	p->master = umockdev_testbed_get_dev_fd(b->tb, "/dev/ttyUSB0");
	ck_assert_int_ge(p->master, 0);
	link = g_strdup_printf("%s/dev/ttyUSB0", b->root);
	pts = g_file_read_link(link, NULL);
	ck_assert_ptr_nonnull(pts);
	/* Until some slave fd is open, reads of the master fail with EIO: keep one. */
	p->slave = open(pts, O_RDWR | O_NOCTTY | O_CLOEXEC);
	ck_assert_int_ge(p->slave, 0);
	p->station_baud = pty_baud(p); /* the pty's own, until the station sets one */
	ck_assert_int_eq(pthread_create(&p->rate_th, NULL, rate_thread, p), 0);
	g_free(pts);
	g_free(link);
	ck_assert_int_eq(pthread_create(&p->th, NULL, line_thread, p), 0);
	b->serial = p;
	return p;
}

void
ub_serial_inject(ub_serial *p, const void *bytes, size_t n)
{
	uint64_t deadline = st_now_ms() + 10000;
	int queued = 0;

	ck_assert_int_eq(write(p->master, bytes, n), (ssize_t)n);
	/* The pty passes bytes on from a kernel work queue: wait until the
	 * station's side can read them, so "before it opened" really is before.
	 * A raw syscall: the preload library takes ioctl() calls on the pty that
	 * backs /dev/ttyUSB0 for its own. */
	while (syscall(SYS_ioctl, p->slave, FIONREAD, &queued) == 0 && (size_t)queued < n && st_now_ms() < deadline)
		usleep(1000);
	ck_assert_uint_ge((size_t)queued, n);
}

void
ub_serial_junk(ub_serial *p, int on)
{
	g_mutex_lock(&p->lock);
	p->junk = on;
	g_mutex_unlock(&p->lock);
}

void
ub_serial_hello_rates(ub_serial *p, const uint32_t *rates, int n)
{
	ck_assert_int_le(n, (int)(sizeof(p->hello_rates) / sizeof(p->hello_rates[0])));
	g_mutex_lock(&p->lock);
	p->hello_n = n;
	if (n > 0)
		memcpy(p->hello_rates, rates, (size_t)n * sizeof(rates[0]));
	g_mutex_unlock(&p->lock);
}

unsigned
ub_serial_responses_at(const ub_serial_stats *s, unsigned baud)
{
	unsigned i;

	for (i = 0; i < UB_MAX_RATES; i++)
		if (s->at[i].baud == baud)
			return s->at[i].responses;
	return 0;
}

void
ub_serial_termios(ub_serial *p, unsigned *baud, int *rtscts, int *is_8n1)
{
	struct termios t;

	ck_assert_int_eq(tcgetattr(p->slave, &t), 0);
	*baud = pty_baud(p);
	*rtscts = (t.c_cflag & CRTSCTS) != 0;
	*is_8n1 = (t.c_cflag & CSIZE) == CS8 && !(t.c_cflag & PARENB) && !(t.c_cflag & CSTOPB);
}

void
ub_serial_get_stats(ub_serial *p, ub_serial_stats *s)
{
	g_mutex_lock(&p->lock);
	*s = p->st;
	g_mutex_unlock(&p->lock);
}

static void
serial_free(ub_serial *p)
{
	GError *e = NULL;

	atomic_store(&p->stop, 1);
	pthread_join(p->th, NULL);
	pthread_join(p->rate_th, NULL);
	close(p->slave);
	umockdev_testbed_detach_ioctl(p->bed->tb, "/dev/ttyUSB0", &e);
	g_clear_error(&e);
	g_object_unref(p->handler);
	g_mutex_clear(&p->lock);
	free(p);
}

void
ub_bed_free(ub_bed *b)
{
	size_t i;

	if (!b)
		return;
	if (b->serial)
		serial_free(b->serial);
	for (i = 0; i < b->njigs; i++)
		jig_free(b->jigs[i]);
	g_object_unref(b->tb); /* removes the testbed directory */
	g_free(b->root);
	free(b);
}

/* ---- helpers ------------------------------------------------------------------ */

jigsim *
ub_sim_new(const char *pki, const jigsim_config *base)
{
	char ca[512], key[512], tool[512];
	jigsim_config c;
	jigsim *s;
	st_err e;

	if (base)
		c = *base;
	else
		jigsim_config_init(&c);
	snprintf(ca, sizeof(ca), "%s/se-vendor-ca.pem", pki);
	snprintf(key, sizeof(key), "%s/se-vendor-ca.key", pki);
	snprintf(tool, sizeof(tool), "%s/tool-pub.pem", pki);
	c.vendor_ca_cert = ca; /* jigsim_new copies them */
	c.vendor_ca_key = key;
	c.tool_pub = tool;
	s = jigsim_new(&c, &e);
	ck_assert_msg(s != NULL, "jigsim: %s", e.msg);
	return s;
}

void
ub_wait_file_has(const char *path, const char *want, int timeout_s)
{
	uint64_t deadline = st_now_ms() + (uint64_t)timeout_s * 1000;
	char *text = NULL;

	for (;;) {
		text = tu_slurp(path, NULL);
		if ((text && strstr(text, want)) || st_now_ms() > deadline)
			break;
		free(text);
		text = NULL;
		usleep(20000);
	}
	ck_assert_msg(text && strstr(text, want), "\"%s\" did not appear in %s within %d s:\n%s", want, path, timeout_s,
	    text ? text : "(no file)");
	free(text);
}

void
ub_jig_wait_unplugs(ub_jig *j, unsigned n, int timeout_s)
{
	uint64_t deadline = st_now_ms() + (uint64_t)timeout_s * 1000;
	ub_jig_stats st;

	for (;;) {
		ub_jig_get_stats(j, &st);
		if (st.unplugs >= n || st_now_ms() > deadline)
			break;
		usleep(10000);
	}
	ck_assert_msg(st.unplugs >= n, "the jig was unplugged %u times in %d s, want %u", st.unplugs, timeout_s, n);
}

void
ub_assert_has(const char *out, const char *want)
{
	ck_assert_msg(out && strstr(out, want), "\"%s\" not in:\n%s", want, out ? out : "(null)");
}

jigsim *
ub_sim(unsigned id, unsigned devices, unsigned faults, unsigned every)
{
	jigsim_config c;

	jigsim_config_init(&c);
	c.id = id;
	c.devices = devices;
	c.faults = faults;
	c.fault_every = every;
	return ub_sim_new(tu_pki, &c);
}
