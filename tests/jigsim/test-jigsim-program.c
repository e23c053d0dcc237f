/* The jigsim program as a subprocess: --listen tcp:127.0.0.1:0, the
 * announced port, a panel of devices, --pause, and its usage errors. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "jsutil.h"

typedef struct proc {
	pid_t pid;
	int out; /* its stdout */
	char buf[4096];
	size_t len;
} proc;

static void
spawn(proc *p, char *const argv[])
{
	int fds[2];

	memset(p, 0, sizeof(*p));
	ck_assert_int_eq(pipe(fds), 0);
	ck_assert_int_ge(p->pid = fork(), 0);
	if (p->pid == 0) {
		dup2(fds[1], 1);
		close(fds[0]);
		close(fds[1]);
		execv(argv[0], argv);
		_exit(127);
	}
	close(fds[1]);
	p->out = fds[0];
}

/* The next stdout line (without newline), waiting at most timeout_ms. */
static int
read_line(proc *p, char *line, size_t cap, int timeout_ms)
{
	uint64_t deadline = st_now_ms() + (uint64_t)timeout_ms;

	for (;;) {
		char *nl = memchr(p->buf, '\n', p->len);
		struct pollfd pf = { .fd = p->out, .events = POLLIN };
		ssize_t n;

		if (nl) {
			size_t k = (size_t)(nl - p->buf);

			snprintf(line, cap, "%.*s", (int)k, p->buf);
			memmove(p->buf, nl + 1, p->len - k - 1);
			p->len -= k + 1;
			return 0;
		}
		if (st_now_ms() >= deadline || poll(&pf, 1, (int)(deadline - st_now_ms())) <= 0)
			return -1;
		if ((n = read(p->out, p->buf + p->len, sizeof(p->buf) - p->len - 1)) <= 0)
			return -1;
		p->len += (size_t)n;
	}
}

static int
finish(proc *p)
{
	int status = 0;

	kill(p->pid, SIGTERM);
	while (waitpid(p->pid, &status, 0) < 0 && errno == EINTR)
		;
	close(p->out);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static jig_client *
connect_uri(const char *uri, jig_msg *hello)
{
	jig_transport *t = NULL;
	jig_client *c;
	st_err e;

	ck_assert_msg(jig_transport_open(uri, &t, &e) == 0, "%s", e.msg);
	ck_assert_ptr_nonnull(c = jig_client_new(t));
	ck_assert_msg(jig_client_hello(c, hello, &e) == 0, "%s", e.msg);
	return c;
}

START_TEST(test_program_panel)
{
	char *exe = getenv("JIGSIM_EXE"), *port_file = NULL, *from_file, line[512], jig_id[64];
	js_device *dev = calloc(1, sizeof(*dev));
	jig_client *c;
	jig_msg req, resp;
	proc p;
	st_err e;

	ck_assert_ptr_nonnull(exe);
	ck_assert_int_ne(asprintf(&port_file, "%s/jigsim.port", js_test_pki->dir), -1);
	{
		const char *argv[] = { exe, "--pki", js_test_pki->dir, "--tool-pub", js_test_pki->tool_pub, "--listen",
			"tcp:127.0.0.1:0", "--port-file", port_file, "--devices", "2", "--serial-prefix", "LINE7-", "--model",
			"TSE-200", "--firmware", "2.0.17", NULL };

		spawn(&p, (char *const *)argv);
	}
	ck_assert_int_eq(read_line(&p, line, sizeof(line), 20000), 0);
	ck_assert_int_eq(strncmp(line, "jigsim: listening on tcp:127.0.0.1:", 35), 0);
	ck_assert_int_gt(atoi(line + 35), 0);
	ck_assert_ptr_nonnull(from_file = tu_slurp(port_file, NULL));
	ck_assert_str_eq(from_file, line + strlen("jigsim: listening on "));

	c = connect_uri(from_file, &resp);
	snprintf(jig_id, sizeof(jig_id), "jigsim-%d", (int)p.pid);
	ck_assert_str_eq(resp.u.hello.jig_id, jig_id);
	js_provision(js_client_call, c, js_test_pki, dev);
	ck_assert_msg(dev->failed_at == 0, "failed at %s: %s", jig_cmd_name(dev->failed_at), dev->err.msg);
	ck_assert_int_eq(strncmp(dev->info.serial, "LINE7-", 6), 0);
	ck_assert_str_eq(dev->info.model, "TSE-200");
	ck_assert_uint_eq(dev->info.firmware, 2u << 24 | 17u);
	js_provision(js_client_call, c, js_test_pki, dev);
	ck_assert_uint_eq(dev->failed_at, 0);
	js_req(&req, JIG_CMD_SE_INFO);
	ck_assert_int_eq(jig_client_call(c, &req, &resp, &e), -1);
	ck_assert_int_eq(e.remote, JIG_E_NO_DUT);
	jig_client_free(c);
	ck_assert_int_eq(finish(&p), 0);
	free(from_file);
	free(port_file);
	free(dev);
}
END_TEST

/* --pause KEYGEN:after: the key is made, no reply; the station "crashes"
 * and comes back to the same DUT, whose KEEP key is the one made. */
START_TEST(test_program_pause)
{
	char *exe = getenv("JIGSIM_EXE"), line[512], uri[512], serial[JIG_STR_MAX + 1];
	jig_client *c;
	jig_msg req, resp, info;
	proc p;
	st_err e;
	int i;

	{
		const char *argv[] = { exe, "--pki", js_test_pki->dir, "--tool-pub", js_test_pki->tool_pub, "--pause",
			"KEYGEN:after", NULL };

		spawn(&p, (char *const *)argv);
	}
	ck_assert_int_eq(read_line(&p, line, sizeof(line), 20000), 0);
	snprintf(uri, sizeof(uri), "%s", line + strlen("jigsim: listening on "));
	for (i = 0; i < 2; i++) {
		c = connect_uri(uri, &resp);
		js_req(&req, JIG_CMD_SE_INFO);
		ck_assert_int_eq(jig_client_call(c, &req, &info, &e), 0);
		if (i == 0)
			strcpy(serial, info.u.se_info.serial);
		ck_assert_str_eq(info.u.se_info.serial, serial);
		js_req(&req, JIG_CMD_AUTH_RESPONSE);
		js_sign(js_test_pki->tool, JIG_TAG_TOOL_AUTH, serial, info.u.se_info.challenge, &req.u.signature);
		ck_assert_int_eq(jig_client_call(c, &req, &resp, &e), 0);
		js_req(&req, JIG_CMD_KEYGEN);
		req.u.keygen_req.algorithm = JIG_ALG_P256;
		req.u.keygen_req.flags = JIG_KEYGEN_KEEP;
		jig_client_set_timeout(c, JIG_CMD_KEYGEN, 300);
		jig_client_set_retries(c, 1);
		if (i == 0) {
			ck_assert_int_eq(jig_client_call(c, &req, &resp, &e), -1);
			ck_assert_int_eq(e.code, ST_E_TIMEOUT);
			ck_assert_int_eq(read_line(&p, line, sizeof(line), 5000), 0);
			ck_assert_str_eq(line, "jigsim: paused KEYGEN after");
		} else {
			ck_assert_msg(jig_client_call(c, &req, &resp, &e) == 0, "%s", e.msg);
		}
		jig_client_free(c);
	}
	ck_assert_int_eq(finish(&p), 0);
}
END_TEST

START_TEST(test_program_usage)
{
	char *exe = getenv("JIGSIM_EXE"), *out = NULL, *missing = NULL;

	{
		const char *argv[] = { exe, "--pki", js_test_pki->dir, "--fault", "gremlins", NULL };

		ck_assert_int_eq(tu_run((char *const *)argv, &out), 2);
		ck_assert_ptr_nonnull(strstr(out, "gremlins"));
		free(out);
	}
	{
		const char *argv[] = { exe, "--listen", "tcp:127.0.0.1:0", NULL };

		ck_assert_int_eq(tu_run((char *const *)argv, &out), 2);
		ck_assert_ptr_nonnull(strstr(out, "--pki"));
		free(out);
	}
	ck_assert_int_ne(asprintf(&missing, "%s/missing", js_test_pki->dir), -1);
	{
		const char *argv[] = { exe, "--pki", missing, NULL };

		ck_assert_int_eq(tu_run((char *const *)argv, &out), 2);
		ck_assert_ptr_nonnull(strstr(out, "missing/se-vendor-ca.pem"));
		free(out);
	}
	{
		const char *argv[] = { exe, "--pki", js_test_pki->dir, "--pause", "KEYGEN:during", NULL };

		ck_assert_int_eq(tu_run((char *const *)argv, &out), 2);
		free(out);
	}
	{
		const char *argv[] = { exe, "--pki", js_test_pki->dir, "--protocol", "1.3", NULL };

		ck_assert_int_eq(tu_run((char *const *)argv, &out), 2);
		ck_assert_ptr_nonnull(strstr(out, "--protocol: expected 1.0, 1.1 or 1.2, got \"1.3\""));
		free(out);
	}
	{
		const char *argv[] = { exe, "--help", NULL };

		ck_assert_int_eq(tu_run((char *const *)argv, &out), 0);
		ck_assert_ptr_nonnull(strstr(out, "readback-mismatch"));
		free(out);
	}
	free(missing);
}
END_TEST

static Suite *
suite(void)
{
	Suite *s = suite_create("jigsim-program");
	TCase *tc = tcase_create("program");

	tcase_add_unchecked_fixture(tc, js_pki_setup, js_pki_teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_program_panel);
	tcase_add_test(tc, test_program_pause);
	tcase_add_test(tc, test_program_usage);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	signal(SIGPIPE, SIG_IGN);
	return tu_run_suite(suite());
}
