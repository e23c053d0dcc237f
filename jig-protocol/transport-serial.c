/* serial:PATH?baud=N[&flow=none|rtscts] through libserialport: 8N1, explicit
 * flow control, input flushed on open.  Every sp_return becomes an st_err in
 * sp_err() and nowhere else. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include <libserialport.h>

#include "jig.h"
#include "transport-int.h"

static int
sp_err(st_err *err, enum sp_return r, const char *what)
{
	switch (r) {
	case SP_ERR_ARG:
		return st_err_set(err, ST_E_CONFIG, "%s: libserialport refused it (not a serial port it knows, or a setting it cannot apply)", what);
	case SP_ERR_MEM:
		return st_err_set(err, ST_E_NOMEM, "%s: out of memory", what);
	case SP_ERR_SUPP:
		return st_err_set(err, ST_E_CONFIG, "%s: not supported by this port or system", what);
	case SP_ERR_FAIL: {
		int e = sp_last_error_code(); /* errno on Unix */

		if (e == EACCES || e == EPERM)
			return st_err_errno(err, ST_E_CONFIG, e, "%s (is the user in the dialout group?)", what);
		return st_err_errno(err, jig_errno_code(e), e, "%s", what);
	}
	default:
		return st_err_set(err, ST_E_INTERNAL, "%s: libserialport returned %d", what, (int)r);
	}
}

static int
serial_write(jig_transport *t, const uint8_t *p, size_t n, int timeout_ms, st_err *err)
{
	enum sp_return r = sp_blocking_write(t->priv, p, n, timeout_ms > 0 ? (unsigned)timeout_ms : 1);

	if (r < 0)
		return sp_err(err, r, "write");
	if ((size_t)r < n)
		return st_err_set(err, ST_E_TIMEOUT, "write: %d of %zu bytes sent in %d ms", (int)r, n, timeout_ms);
	return 0;
}

static int
serial_read(jig_transport *t, uint8_t *p, size_t cap, size_t *got, int timeout_ms, st_err *err)
{
	/* timeout 0 means "forever" to libserialport: poll instead */
	enum sp_return r = timeout_ms > 0 ? sp_blocking_read_next(t->priv, p, cap, (unsigned)timeout_ms)
	                                  : sp_nonblocking_read(t->priv, p, cap);

	*got = 0;
	if (r < 0)
		return sp_err(err, r, "read");
	if (r == 0)
		return st_err_set(err, ST_E_TIMEOUT, "no data in %d ms", timeout_ms);
	*got = (size_t)r;
	return 0;
}

static void
serial_close(jig_transport *t)
{
	if (t->priv) {
		sp_close(t->priv);
		sp_free_port(t->priv);
	}
}

static int
serial_set_baud(jig_transport *t, unsigned baud, unsigned *old, st_err *err)
{
	struct sp_port_config *cfg = NULL;
	enum sp_return r;
	int cur = 0, ret = -1;

	if ((r = sp_new_config(&cfg)) != SP_OK || (r = sp_get_config(t->priv, cfg)) != SP_OK ||
	    (r = sp_get_config_baudrate(cfg, &cur)) != SP_OK) {
		sp_err(err, r, "read the line rate");
		goto out;
	}
	*old = (unsigned)cur;
	/* The bytes still in the UART go out at the rate they were written for. */
	if ((r = sp_drain(t->priv)) != SP_OK) {
		sp_err(err, r, "drain");
		goto out;
	}
	if ((r = sp_set_baudrate(t->priv, (int)baud)) != SP_OK) {
		sp_err(err, r, "switch the line");
		st_err_prefix(err, "%u baud", baud);
		goto out;
	}
	t->baud = baud;
	ret = 0;
out:
	sp_free_config(cfg);
	return ret;
}

static const struct jig_transport_ops serial_ops = { "serial", serial_write, serial_read, serial_close,
	serial_set_baud };

/* libserialport 0.1.1 puts CRTSCTS into c_iflag instead of c_cflag when the
 * kernel has no termiox (none has since Linux 5.12), and glibc drops that
 * bit: RTS/CTS is never switched on, and flow=none never switches off what
 * another program left on.  Set it where the kernel looks, and read it back. */
static int
set_rtscts(struct sp_port *port, int on, st_err *err)
{
	struct termios t;
	int fd = -1;

	if (sp_get_port_handle(port, &fd) != SP_OK)
		return st_err_set(err, ST_E_INTERNAL, "flow control: the port has no handle");
	if (tcgetattr(fd, &t) < 0)
		return st_err_errno(err, jig_errno_code(errno), errno, "flow control: read the line settings");
	if (on)
		t.c_cflag |= CRTSCTS;
	else
		t.c_cflag &= ~(tcflag_t)CRTSCTS;
	if (tcsetattr(fd, TCSANOW, &t) < 0 || tcgetattr(fd, &t) < 0)
		return st_err_errno(err, jig_errno_code(errno), errno, "flow control: set RTS/CTS %s", on ? "on" : "off");
	if (!(t.c_cflag & CRTSCTS) != !on)
		return st_err_set(err, ST_E_CONFIG, "flow %s: the port did not take it (an adapter without RTS/CTS lines?)",
		    on ? "rtscts" : "none");
	return 0;
}

static int
configure(struct sp_port *port, const jig_uri *u, st_err *err)
{
	struct sp_port_config *cfg = NULL;
	enum sp_return r;
	int ret = -1;

	if ((r = sp_new_config(&cfg)) != SP_OK) {
		sp_err(err, r, "configure");
		goto out;
	}
	if ((r = sp_set_config_baudrate(cfg, (int)u->baud)) != SP_OK || (r = sp_set_config_bits(cfg, 8)) != SP_OK ||
	    (r = sp_set_config_parity(cfg, SP_PARITY_NONE)) != SP_OK || (r = sp_set_config_stopbits(cfg, 1)) != SP_OK ||
	    (r = sp_set_config_flowcontrol(cfg, u->rtscts ? SP_FLOWCONTROL_RTSCTS : SP_FLOWCONTROL_NONE)) != SP_OK ||
	    (r = sp_set_config(port, cfg)) != SP_OK) {
		sp_err(err, r, "configure");
		st_err_prefix(err, "baud %u, 8N1, flow %s", u->baud, u->rtscts ? "rtscts" : "none");
		goto out;
	}
	if (set_rtscts(port, u->rtscts, err) < 0)
		goto out;
	/* Whatever the jig said before we were listening is stale. */
	if ((r = sp_flush(port, SP_BUF_INPUT)) != SP_OK) {
		sp_err(err, r, "flush input");
		goto out;
	}
	ret = 0;
out:
	sp_free_config(cfg);
	return ret;
}

/* libserialport 0.1.1 looks a port up as /sys/class/tty/<path minus
 * "/dev/">, so udev's stable names (/dev/serial/by-id/..., SYMLINK+= rules)
 * are "not found".  Follow the links until the name is a tty the kernel
 * lists, and use /dev/<that name>; anything else is left as it was. */
static void
tty_name(const char *path, char *out, size_t len)
{
	char cur[512], next[512], sys[600];
	int hops;

	snprintf(out, len, "%s", path);
	snprintf(cur, sizeof(cur), "%s", path);
	for (hops = 0; hops < 8 && strncmp(cur, "/dev/", 5) == 0; hops++) {
		const char *base = strrchr(cur, '/') + 1;
		ssize_t n;

		snprintf(sys, sizeof(sys), "/sys/class/tty/%s", base);
		if (access(sys, F_OK) == 0) {
			snprintf(out, len, "/dev/%s", base);
			return;
		}
		if ((n = readlink(cur, next, sizeof(next) - 1)) <= 0)
			return;
		next[n] = '\0';
		if (next[0] != '/') { /* relative to the link's folder */
			size_t dir = (size_t)(base - cur);

			if (dir + (size_t)n >= sizeof(cur))
				return;
			memcpy(cur + dir, next, (size_t)n + 1);
		} else {
			memcpy(cur, next, (size_t)n + 1);
		}
	}
}

int
jig_serial_open(const jig_uri *u, const char *uri, jig_transport **out, st_err *err)
{
	struct sp_port *port = NULL;
	struct stat st;
	enum sp_return r;
	char name[512];
	int opened = 0, ret = -1;

	if (stat(u->path, &st) < 0) {
		st_err_errno(err, jig_errno_code(errno), errno, "serial port %s", u->path);
		goto out;
	}
	tty_name(u->path, name, sizeof(name));
	if ((r = sp_get_port_by_name(name, &port)) != SP_OK) {
		sp_err(err, r, "look up the port");
		goto out;
	}
	if ((r = sp_open(port, SP_MODE_READ_WRITE)) != SP_OK) {
		sp_err(err, r, "open");
		goto out;
	}
	opened = 1;
	if (configure(port, u, err) < 0)
		goto out;
	if (!(*out = jig_transport_alloc(&serial_ops, uri, port))) {
		st_err_set(err, ST_E_NOMEM, "out of memory");
		goto out;
	}
	port = NULL; /* owned by the transport now */
	(*out)->baud = u->baud;
	ret = 0;
out:
	if (port) {
		if (opened)
			sp_close(port);
		sp_free_port(port);
	}
	if (ret < 0)
		st_err_prefix(err, "jig %s", uri);
	return ret;
}

int
jig_serial_list(jig_port_info **out, size_t *count, st_err *err)
{
	struct sp_port **ports = NULL;
	jig_port_info *v = NULL;
	enum sp_return r;
	size_t n = 0, i;
	int ret = -1;

	*out = NULL;
	*count = 0;
	if ((r = sp_list_ports(&ports)) != SP_OK) {
		sp_err(err, r, "list serial ports");
		goto out;
	}
	while (ports[n])
		n++;
	if (n && !(v = calloc(n, sizeof(*v)))) {
		st_err_set(err, ST_E_NOMEM, "list serial ports: out of memory");
		goto out;
	}
	for (i = 0; i < n; i++) {
		const char *desc = sp_get_port_description(ports[i]);
		int vid, pid, bus, addr;

		snprintf(v[i].uri, sizeof(v[i].uri), "serial:%s?baud=115200", sp_get_port_name(ports[i]));
		snprintf(v[i].description, sizeof(v[i].description), "%s", desc ? desc : "");
		v[i].bus = -1;
		if (sp_get_port_transport(ports[i]) == SP_TRANSPORT_USB) {
			const char *sn = sp_get_port_usb_serial(ports[i]);

			if (sp_get_port_usb_vid_pid(ports[i], &vid, &pid) == SP_OK) {
				v[i].vid = (uint16_t)vid;
				v[i].pid = (uint16_t)pid;
			}
			if (sp_get_port_usb_bus_address(ports[i], &bus, &addr) == SP_OK)
				v[i].bus = bus;
			snprintf(v[i].serial, sizeof(v[i].serial), "%s", sn ? sn : "");
		}
	}
	*out = v;
	*count = n;
	v = NULL;
	ret = 0;
out:
	free(v);
	if (ports)
		sp_free_port_list(ports);
	return ret;
}
