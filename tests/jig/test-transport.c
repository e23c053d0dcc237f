/* Transport URIs, configuration errors, and the tcp, fd and mem backends for
 * real.  (USB and serial end to end run under umockdev: tests/jig later.) */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <termios.h>
#include <unistd.h>

#include "jig.h"
#include "testutil.h"

static void
assert_err(int rc, const st_err *err, int code, const char *want)
{
	ck_assert_int_eq(rc, -1);
	ck_assert_msg(err->code == code, "code %s, want %s: %s", st_code_name(err->code), st_code_name(code), err->msg);
	ck_assert_msg(strstr(err->msg, want), "\"%s\" not in \"%s\"", want, err->msg);
}

START_TEST(test_uri_parse)
{
	jig_uri u;
	st_err err;

	ck_assert_int_eq(jig_uri_parse("tcp:127.0.0.1:7000", &u, &err), 0);
	ck_assert_str_eq(u.scheme, "tcp");
	ck_assert_str_eq(u.host, "127.0.0.1");
	ck_assert_uint_eq(u.port, 7000);
	ck_assert_int_eq(jig_uri_parse("tcp:[::1]:0", &u, &err), 0);
	ck_assert_str_eq(u.host, "::1");
	ck_assert_uint_eq(u.port, 0);
	ck_assert_int_eq(jig_uri_parse("tcp:jig-3.line-a:65535", &u, &err), 0);
	ck_assert_str_eq(u.host, "jig-3.line-a");
	ck_assert_int_eq(jig_uri_parse("serial:/dev/ttyUSB0", &u, &err), 0);
	ck_assert_str_eq(u.path, "/dev/ttyUSB0");
	ck_assert_uint_eq(u.baud, 115200);
	ck_assert_int_eq(u.rtscts, 0);
	ck_assert_int_eq(jig_uri_parse("serial:/dev/ttyACM1?baud=9600&flow=rtscts", &u, &err), 0);
	ck_assert_str_eq(u.path, "/dev/ttyACM1");
	ck_assert_uint_eq(u.baud, 9600);
	ck_assert_int_eq(u.rtscts, 1);
	ck_assert_int_eq(jig_uri_parse("serial:/dev/ttyS0?flow=none", &u, &err), 0);
	ck_assert_int_eq(u.rtscts, 0);
	ck_assert_int_eq(jig_uri_parse("usb:1209:0001", &u, &err), 0);
	ck_assert_str_eq(u.scheme, "usb");
	ck_assert_uint_eq(u.vid, 0x1209);
	ck_assert_uint_eq(u.pid, 0x0001);
	ck_assert_str_eq(u.serial, "");
	ck_assert_int_eq(jig_uri_parse("usb:CAFE:b0?serial=JIG-0042", &u, &err), 0);
	ck_assert_uint_eq(u.vid, 0xcafe);
	ck_assert_uint_eq(u.pid, 0xb0);
	ck_assert_str_eq(u.serial, "JIG-0042");
}
END_TEST

START_TEST(test_uri_errors)
{
	static const struct {
		const char *uri, *want;
	} bad[] = {
		{ "", "unknown kind" },
		{ "http://jig", "unknown kind" },
		{ "tcp", "unknown kind" },
		{ "tcp:host", "expected tcp:HOST:PORT" },
		{ "tcp::7000", "host" },
		{ "tcp:host:", "port \"\"" },
		{ "tcp:host:70000", "port \"70000\"" },
		{ "tcp:host:7x", "port \"7x\"" },
		{ "tcp:[::1:7000", "tcp:[ADDRESS]:PORT" },
		{ "serial:", "expected serial:PATH" },
		{ "serial:?baud=9600", "expected serial:PATH" },
		{ "serial:/dev/ttyUSB0?baud=fast", "baud \"fast\" is not a baud rate" },
		{ "serial:/dev/ttyUSB0?baud=0", "baud \"0\"" },
		{ "serial:/dev/ttyUSB0?baud=-9600", "baud \"-9600\"" },
		{ "serial:/dev/ttyUSB0?baud=99999999", "baud \"99999999\"" },
		{ "serial:/dev/ttyUSB0?flow=xonxoff", "flow \"xonxoff\": expected none or rtscts" },
		{ "serial:/dev/ttyUSB0?parity=even", "unknown option \"parity\"" },
		{ "serial:/dev/ttyUSB0?baud", "has no value" },
		{ "usb:1209", "expected usb:VID:PID" },
		{ "usb:12345:0001", "1..4 hex digits" },
		{ "usb:1209:", "1..4 hex digits" },
		{ "usb:zz09:0001", "1..4 hex digits" },
		{ "usb:1209:0001?serial=", "serial must be" },
		{ "usb:1209:0001?bus=3", "unknown option \"bus\"" },
	};
	jig_transport *t = NULL;
	jig_uri u;
	st_err err;
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		st_err_clear(&err);
		assert_err(jig_uri_parse(bad[i].uri, &u, &err), &err, ST_E_CONFIG, bad[i].want);
		/* the message names the URI (so the operator sees which one) */
		ck_assert_msg(strstr(err.msg, bad[i].uri), "URI missing in \"%s\"", err.msg);
		/* and opening refuses it the same way, before touching any device */
		assert_err(jig_transport_open(bad[i].uri, &t, &err), &err, ST_E_CONFIG, bad[i].want);
		ck_assert_ptr_null(t);
	}
}
END_TEST

START_TEST(test_open_missing_devices)
{
	jig_transport *t = NULL;
	st_err err;
	int rc;

	/* A valid serial URI for a port that is not there: not a config error. */
	rc = jig_transport_open("serial:/dev/station-no-such-tty?baud=9600", &t, &err);
	assert_err(rc, &err, ST_E_NOTFOUND, "jig serial:/dev/station-no-such-tty?baud=9600: serial port /dev/station-no-such-tty");
	/* A regular file is no serial port: refused, naming the URI. */
	rc = jig_transport_open("serial:/dev/null", &t, &err);
	ck_assert_int_eq(rc, -1);
	ck_assert_ptr_nonnull(strstr(err.msg, "jig serial:/dev/null"));
	/* No USB jig 1209:0001 with this serial on a test machine. */
	rc = jig_transport_open("usb:1209:0001?serial=station-test-none", &t, &err);
	ck_assert_int_eq(rc, -1);
	ck_assert_ptr_nonnull(strstr(err.msg, "jig usb:1209:0001?serial=station-test-none"));
	ck_assert_int_ne(err.code, ST_E_CONFIG);
	/* tcp port 0 cannot be connected to */
	assert_err(jig_transport_open("tcp:127.0.0.1:0", &t, &err), &err, ST_E_CONFIG, "port 0");
	ck_assert_ptr_null(t);
}
END_TEST

/* A listening socket that is closed again: connecting to its port is refused. */
START_TEST(test_tcp_refused)
{
	char bound[128], uri[160];
	jig_transport *t = NULL;
	int fd;
	st_err err;

	ck_assert_int_eq(jig_transport_tcp_listen("tcp:127.0.0.1:0", &fd, bound, sizeof(bound), &err), 0);
	close(fd);
	snprintf(uri, sizeof(uri), "%s", bound);
	ck_assert_int_eq(jig_transport_open(uri, &t, &err), -1);
	ck_assert_msg(strstr(err.msg, uri) && strstr(err.msg, "cannot connect") && strstr(err.msg, "refused"), "%s",
	    err.msg);
	ck_assert_int_eq(jig_transport_tcp_listen("serial:/dev/ttyS0", &fd, bound, sizeof(bound), &err), -1);
	ck_assert_int_eq(err.code, ST_E_CONFIG);
	ck_assert_int_eq(jig_transport_tcp_listen("tcp:no-such-host.invalid:0", &fd, bound, sizeof(bound), &err), -1);
	ck_assert_ptr_nonnull(strstr(err.msg, "no-such-host.invalid"));
}
END_TEST

struct big {
	jig_transport *t;
	size_t n;
	int rc;
};

static void *
write_big(void *arg)
{
	struct big *b = arg;
	uint8_t *p = malloc(b->n);
	size_t i;

	for (i = 0; i < b->n; i++)
		p[i] = (uint8_t)(i * 31);
	b->rc = b->t->ops->write(b->t, p, b->n, 5000, NULL);
	free(p);
	return NULL;
}

/* Both directions, a write larger than the socket buffer (partial writes),
 * a read timeout, and the peer going away. */
static void
exercise_pair(jig_transport *a, jig_transport *b)
{
	struct big big = { .t = a, .n = 1u << 20 };
	uint8_t buf[4096];
	size_t got, total = 0, i;
	pthread_t th;
	uint64_t t0;
	st_err err;
	int bad = 0;

	ck_assert_int_eq(a->ops->write(a, (const uint8_t *)"hello", 5, 1000, &err), 0);
	ck_assert_int_eq(b->ops->read(b, buf, sizeof(buf), &got, 1000, &err), 0);
	ck_assert_uint_eq(got, 5);
	ck_assert_int_eq(memcmp(buf, "hello", 5), 0);
	ck_assert_int_eq(b->ops->write(b, (const uint8_t *)"back", 4, 1000, &err), 0);
	ck_assert_int_eq(a->ops->read(a, buf, sizeof(buf), &got, 1000, &err), 0);
	ck_assert_uint_eq(got, 4);

	pthread_create(&th, NULL, write_big, &big);
	while (total < big.n) {
		ck_assert_int_eq(b->ops->read(b, buf, sizeof(buf), &got, 5000, &err), 0);
		for (i = 0; i < got; i++)
			bad |= buf[i] != (uint8_t)((total + i) * 31);
		total += got;
	}
	pthread_join(th, NULL);
	ck_assert_int_eq(big.rc, 0);
	ck_assert_int_eq(bad, 0);

	t0 = st_now_ms();
	assert_err(b->ops->read(b, buf, sizeof(buf), &got, 100, &err), &err, ST_E_TIMEOUT, "100 ms");
	ck_assert_uint_ge(st_now_ms() - t0, 95);
	ck_assert_uint_lt(st_now_ms() - t0, 2000);

	jig_transport_free(a);
	assert_err(b->ops->read(b, buf, sizeof(buf), &got, 1000, &err), &err, ST_E_DISCONNECTED, "closed");
	/* writing into a closed connection is a disconnect, not a SIGPIPE */
	for (i = 0; i < 3 && b->ops->write(b, buf, sizeof(buf), 1000, &err) == 0; i++)
		;
	ck_assert_int_eq(err.code, ST_E_DISCONNECTED);
	jig_transport_free(b);
}

START_TEST(test_mem_pair)
{
	jig_transport *a = NULL, *b = NULL;
	st_err err;

	ck_assert_int_eq(jig_transport_mem_pair(&a, &b, &err), 0);
	ck_assert_str_eq(a->uri, "mem:a");
	exercise_pair(a, b);
	jig_transport_free(NULL);
}
END_TEST

START_TEST(test_tcp)
{
	char bound[128];
	jig_transport *a = NULL, *b = NULL;
	int lfd, cfd;
	st_err err;

	ck_assert_int_eq(jig_transport_tcp_listen("tcp:127.0.0.1:0", &lfd, bound, sizeof(bound), &err), 0);
	ck_assert_int_eq(strncmp(bound, "tcp:127.0.0.1:", 14), 0);
	ck_assert_int_gt(atoi(bound + 14), 0);
	ck_assert_msg(jig_transport_open(bound, &a, &err) == 0, "%s", err.msg);
	ck_assert_str_eq(a->uri, bound);
	ck_assert_int_ge(cfd = accept(lfd, NULL, NULL), 0);
	ck_assert_ptr_nonnull(b = jig_transport_fd_new(cfd, "peer"));
	close(lfd);
	exercise_pair(a, b);
}
END_TEST

START_TEST(test_pty)
{
	jig_transport *m = NULL;
	uint8_t buf[64];
	size_t got;
	int mfd, sfd;
	st_err err;

	ck_assert_int_ge(mfd = posix_openpt(O_RDWR | O_NOCTTY), 0);
	ck_assert_int_eq(grantpt(mfd), 0);
	ck_assert_int_eq(unlockpt(mfd), 0);
	ck_assert_int_ge(sfd = open(ptsname(mfd), O_RDWR | O_NOCTTY), 0);
	{
		/* raw mode on the slave so bytes pass unchanged */
		struct termios tio;

		tcgetattr(sfd, &tio);
		cfmakeraw(&tio);
		tcsetattr(sfd, TCSANOW, &tio);
	}
	ck_assert_ptr_nonnull(m = jig_transport_fd_new(mfd, "pty:test"));
	ck_assert_int_eq(m->ops->write(m, (const uint8_t *)"\xA5\x01\x00\xff", 4, 1000, &err), 0);
	ck_assert_int_eq(read(sfd, buf, sizeof(buf)), 4);
	ck_assert_int_eq(memcmp(buf, "\xA5\x01\x00\xff", 4), 0);
	ck_assert_int_eq(write(sfd, "\x0d\x0a\x11", 3), 3);
	ck_assert_int_eq(m->ops->read(m, buf, sizeof(buf), &got, 1000, &err), 0);
	ck_assert_uint_eq(got, 3);
	close(sfd);
	/* the other side is gone: EIO on a pty master */
	assert_err(m->ops->read(m, buf, sizeof(buf), &got, 1000, &err), &err, ST_E_DISCONNECTED, "gone");
	jig_transport_free(m);
	ck_assert_ptr_null(jig_transport_fd_new(-1, "x"));
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("jig-transport");
	TCase *tc = tcase_create("transport");

	tcase_add_test(tc, test_uri_parse);
	tcase_add_test(tc, test_uri_errors);
	tcase_add_test(tc, test_open_missing_devices);
	tcase_add_test(tc, test_tcp_refused);
	tcase_add_test(tc, test_mem_pair);
	tcase_add_test(tc, test_tcp);
	tcase_add_test(tc, test_pty);
	suite_add_tcase(s, tc);
	return tu_run_suite(s);
}
