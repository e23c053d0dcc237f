/* jigsim over a byte stream: one connection at a time, each served until
 * the station goes away.  The DUT and its SE outlive every connection. */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "jigsim-int.h"

#define POLL_MS 100 /* how soon jigsim_stop() is noticed */

int
jigsim_serve(jigsim *s, jig_transport *t, st_err *err)
{
	jig_stream *st = malloc(sizeof(*st));
	jig_frame *f = malloc(sizeof(*f));
	uint8_t *raw = malloc(JIG_MAX_FRAME), *resp = malloc(JIG_MAX_FRAME), buf[4096];
	size_t got, raw_len, resp_len;
	int paused = 0, ret = -1, act;
	st_err e;

	if (!st || !f || !raw || !resp) {
		st_err_set(err, ST_E_NOMEM, "out of memory");
		goto out;
	}
	jigsim_connection_reset(s);
	jig_stream_init(st);
	while (!atomic_load(&s->stop)) {
		if (t->ops->read(t, buf, sizeof(buf), &got, POLL_MS, &e) < 0) {
			if (e.code == ST_E_TIMEOUT)
				continue;
			if (e.code == ST_E_DISCONNECTED)
				break;
			*err = e;
			goto out;
		}
		if (paused)
			continue; /* paused: say nothing until the station is gone */
		if (jig_stream_feed(st, buf, got) < 0) {
			jig_stream_discard(st); /* a flood of garbage: start afresh */
			jig_stream_feed(st, buf, got);
		}
		while (!paused && jig_stream_next(st, f)) {
			/* Re-encoding gives back the exact bytes received (the CRC
			 * checked), which is what the retransmission cache keys on. */
			if (jig_frame_encode(f, raw, JIG_MAX_FRAME, &raw_len, err) < 0 ||
			    (act = jigsim_handle(s, raw, raw_len, resp, JIG_MAX_FRAME, &resp_len, err)) < 0)
				goto out;
			if (resp_len > 0 && t->ops->write(t, resp, resp_len, 5000, &e) < 0) {
				if (e.code == ST_E_DISCONNECTED)
					break;
				*err = e;
				goto out;
			}
			if (act == JIGSIM_DISCONNECT) {
				ret = 0;
				goto out;
			}
			paused = act == JIGSIM_PAUSED;
		}
	}
	ret = 0;
out:
	/* Whatever was pending for this connection is not for the next one. */
	jigsim_connection_reset(s);
	if (ret < 0)
		st_err_prefix(err, "jigsim %s", t->uri);
	free(st);
	free(f);
	free(raw);
	free(resp);
	return ret;
}

int
jigsim_listen(jigsim *s, const char *uri, char *bound, size_t bound_cap, st_err *err)
{
	if (s->listen_fd >= 0)
		return st_err_set(err, ST_E_STATE, "jigsim already listens on %s", s->listen_uri);
	if (jig_transport_tcp_listen(uri, &s->listen_fd, s->listen_uri, sizeof(s->listen_uri), err) < 0) {
		s->listen_fd = -1;
		return st_err_prefix(err, "jigsim: listen");
	}
	if (bound)
		snprintf(bound, bound_cap, "%s", s->listen_uri);
	return 0;
}

int
jigsim_run(jigsim *s, st_err *err)
{
	struct pollfd p;
	jig_transport *t;
	char name[300];
	int fd, one = 1;
	st_err e;

	if (s->listen_fd < 0)
		return st_err_set(err, ST_E_STATE, "jigsim: jigsim_listen() first");
	p.fd = s->listen_fd;
	p.events = POLLIN;
	while (!atomic_load(&s->stop)) {
		int n = poll(&p, 1, POLL_MS);

		if (n < 0 && errno != EINTR)
			return st_err_errno(err, ST_E_IO, errno, "jigsim %s: poll", s->listen_uri);
		if (n <= 0)
			continue;
		if ((fd = accept4(s->listen_fd, NULL, NULL, SOCK_CLOEXEC)) < 0) {
			if (errno == EINTR || errno == ECONNABORTED || errno == EAGAIN)
				continue;
			return st_err_errno(err, ST_E_IO, errno, "jigsim %s: accept", s->listen_uri);
		}
		/* Small frames, one at a time: do not let Nagle hold them back. */
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		snprintf(name, sizeof(name), "%s (station connection)", s->listen_uri);
		if (!(t = jig_transport_fd_new(fd, name)))
			return st_err_set(err, ST_E_NOMEM, "out of memory");
		st_err_clear(&e);
		if (jigsim_serve(s, t, &e) < 0)
			st_log("jigsim", "%s", e.msg); /* the station went away badly; wait for the next */
		jig_transport_free(t);
	}
	return 0;
}
