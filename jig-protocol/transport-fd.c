/* Stream file descriptors: TCP sockets, pty masters and the in-memory pair
 * (a socketpair).  Every errno is turned into an st_err by fd_err(). */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "transport-int.h"

struct fd_priv {
	int fd;
	int is_socket; /* send(MSG_NOSIGNAL): a vanished peer is EPIPE, not SIGPIPE */
};

/* The one place this backend turns errno into an error. */
static int
fd_err(st_err *err, int errnum, const char *what)
{
	if (errnum == EIO || errnum == ECONNRESET || errnum == EPIPE)
		return st_err_errno(err, ST_E_DISCONNECTED, errnum, "%s: the jig connection is gone", what);
	return st_err_errno(err, jig_errno_code(errnum), errnum, "%s", what);
}

/* Wait for events until deadline: 1 ready, 0 timeout, -1 error (errno). */
static int
fd_wait(int fd, short events, uint64_t deadline)
{
	struct pollfd p = { .fd = fd, .events = events };
	int r;

	do {
		r = poll(&p, 1, jig_ms_left(deadline));
	} while (r < 0 && errno == EINTR);
	return r;
}

static int
fd_write(jig_transport *t, const uint8_t *p, size_t n, int timeout_ms, st_err *err)
{
	struct fd_priv *fp = t->priv;
	uint64_t deadline = st_now_ms() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0);
	size_t off = 0;

	while (off < n) {
		ssize_t w = fp->is_socket ? send(fp->fd, p + off, n - off, MSG_NOSIGNAL) : write(fp->fd, p + off, n - off);
		int r;

		if (w > 0) {
			off += (size_t)w;
			continue;
		}
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
			return fd_err(err, errno, "write");
		if ((r = fd_wait(fp->fd, POLLOUT, deadline)) < 0)
			return fd_err(err, errno, "poll");
		if (r == 0)
			return st_err_set(err, ST_E_TIMEOUT, "write: %zu of %zu bytes sent in %d ms", off, n, timeout_ms);
	}
	return 0;
}

static int
fd_read(jig_transport *t, uint8_t *p, size_t cap, size_t *got, int timeout_ms, st_err *err)
{
	struct fd_priv *fp = t->priv;
	uint64_t deadline = st_now_ms() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0);

	*got = 0;
	for (;;) {
		ssize_t r = read(fp->fd, p, cap);
		int w;

		if (r > 0) {
			*got = (size_t)r;
			return 0;
		}
		if (r == 0)
			return st_err_set(err, ST_E_DISCONNECTED, "read: the jig closed the connection");
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return fd_err(err, errno, "read");
		if ((w = fd_wait(fp->fd, POLLIN, deadline)) < 0)
			return fd_err(err, errno, "poll");
		if (w == 0)
			return st_err_set(err, ST_E_TIMEOUT, "no data in %d ms", timeout_ms);
	}
}

static void
fd_close(jig_transport *t)
{
	struct fd_priv *fp = t->priv;

	if (fp) {
		close(fp->fd);
		free(fp);
	}
}

static const struct jig_transport_ops fd_ops = { "fd", fd_write, fd_read, fd_close, NULL };

jig_transport *
jig_transport_fd_new(int fd, const char *name)
{
	struct fd_priv *fp = NULL;
	jig_transport *t = NULL;
	struct stat st;
	int fl;

	if (fd < 0)
		return NULL;
	if ((fl = fcntl(fd, F_GETFL)) < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0 || fstat(fd, &st) < 0 ||
	    !(fp = calloc(1, sizeof(*fp))))
		goto out;
	fp->fd = fd;
	fp->is_socket = S_ISSOCK(st.st_mode);
	if ((t = jig_transport_alloc(&fd_ops, name, fp)))
		fp = NULL; /* owned by t now */
out:
	if (!t)
		close(fd);
	free(fp);
	return t;
}

/* getaddrinfo has its own error space: translated here only. */
static int
resolve(const jig_uri *u, const char *uri, int passive, struct addrinfo **res, st_err *err)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE : 0) };
	char port[8];
	int r;

	snprintf(port, sizeof(port), "%u", u->port);
	if ((r = getaddrinfo(u->host, port, &hints, res)) != 0)
		return st_err_set(err, r == EAI_SYSTEM ? ST_E_IO : ST_E_CONFIG, "jig %s: cannot resolve \"%s\": %s", uri,
		    u->host, gai_strerror(r));
	return 0;
}

static int
connect_one(const struct addrinfo *ai, int *fdp, st_err *err)
{
	uint64_t deadline = st_now_ms() + JIG_CONNECT_TIMEOUT_MS;
	socklen_t len = sizeof(int);
	int fd, one = 1, soerr = 0, r, ret = -1;

	if ((fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol)) < 0)
		return fd_err(err, errno, "socket");
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
		if (errno != EINPROGRESS) {
			fd_err(err, errno, "cannot connect");
			goto out;
		}
		if ((r = fd_wait(fd, POLLOUT, deadline)) <= 0) {
			if (r == 0)
				st_err_set(err, ST_E_TIMEOUT, "cannot connect: no answer in %d ms", JIG_CONNECT_TIMEOUT_MS);
			else
				fd_err(err, errno, "cannot connect");
			goto out;
		}
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0 || soerr != 0) {
			fd_err(err, soerr ? soerr : errno, "cannot connect");
			goto out;
		}
	}
	/* One small frame per request: do not let Nagle hold it back. */
	if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0) {
		fd_err(err, errno, "TCP_NODELAY");
		goto out;
	}
	*fdp = fd;
	fd = -1;
	ret = 0;
out:
	if (fd >= 0)
		close(fd);
	return ret;
}

int
jig_tcp_open(const jig_uri *u, const char *uri, jig_transport **out, st_err *err)
{
	struct addrinfo *res = NULL, *ai;
	int fd = -1, ret = -1;

	if (u->port == 0) {
		st_err_set(err, ST_E_CONFIG, "jig %s: port 0 cannot be connected to", uri);
		goto out;
	}
	if (resolve(u, uri, 0, &res, err) < 0)
		goto out;
	for (ai = res; ai; ai = ai->ai_next)
		if (connect_one(ai, &fd, err) == 0)
			break;
	if (fd < 0) {
		st_err_prefix(err, "jig %s", uri);
		goto out;
	}
	if (!(*out = jig_transport_fd_new(fd, uri))) {
		st_err_set(err, ST_E_NOMEM, "jig %s: out of memory", uri);
		goto out;
	}
	ret = 0;
out:
	if (res)
		freeaddrinfo(res);
	return ret;
}

int
jig_transport_tcp_listen(const char *uri, int *fdp, char *bound_uri, size_t len, st_err *err)
{
	struct addrinfo *res = NULL;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char host[NI_MAXHOST], port[NI_MAXSERV];
	int fd = -1, one = 1, ret = -1;
	jig_uri u;

	*fdp = -1;
	if (jig_uri_parse(uri, &u, err) < 0)
		goto out;
	if (strcmp(u.scheme, "tcp") != 0) {
		st_err_set(err, ST_E_CONFIG, "listen on \"%s\": only tcp:HOST:PORT can be listened on", uri);
		goto out;
	}
	if (resolve(&u, uri, 1, &res, err) < 0)
		goto out;
	if ((fd = socket(res->ai_family, res->ai_socktype | SOCK_CLOEXEC, res->ai_protocol)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(fd, res->ai_addr, res->ai_addrlen) < 0 || listen(fd, 16) < 0 ||
	    getsockname(fd, (struct sockaddr *)&ss, &sl) < 0) {
		fd_err(err, errno, "listen");
		st_err_prefix(err, "%s", uri);
		goto out;
	}
	if (getnameinfo((struct sockaddr *)&ss, sl, host, sizeof(host), port, sizeof(port),
	        NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
		st_err_set(err, ST_E_IO, "%s: cannot name the bound address", uri);
		goto out;
	}
	snprintf(bound_uri, len, ss.ss_family == AF_INET6 ? "tcp:[%s]:%s" : "tcp:%s:%s", host, port);
	*fdp = fd;
	fd = -1;
	ret = 0;
out:
	if (fd >= 0)
		close(fd);
	if (res)
		freeaddrinfo(res);
	return ret;
}

int
jig_transport_mem_pair(jig_transport **a, jig_transport **b, st_err *err)
{
	int fds[2];

	*a = *b = NULL;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) < 0)
		return fd_err(err, errno, "socketpair");
	*a = jig_transport_fd_new(fds[0], "mem:a");
	*b = jig_transport_fd_new(fds[1], "mem:b");
	if (!*a || !*b) {
		jig_transport_free(*a);
		jig_transport_free(*b);
		*a = *b = NULL;
		return st_err_set(err, ST_E_NOMEM, "mem transport: out of memory");
	}
	return 0;
}
