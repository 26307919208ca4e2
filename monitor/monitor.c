// monitor.c: berth's per-container monitor and its tiny --init, both run
// from an ELF constructor before the Go runtime starts, so neither ever
// pays for Go's threads, heap and stacks (an idle Go process costs about
// 1 MiB PSS; this monitor a small fraction of that).
//
// The constructor does nothing unless one of two markers is present:
//
//   _BERTH_MONITOR=<fd> in the environment: act as a container monitor.
//   fd is a SOCK_STREAM socket to the Go caller (monitor.Start), which
//   sends the configuration: u32 length (native endian), then
//   NUL-terminated "key=value" records (see read_config). The process
//   forks; the parent exits at once (its caller reaps it), the child
//   calls setsid and is the monitor, so it is not a child of the CLI and
//   outlives it. It reports on the socket:
//     'A' + i32 monitor pid   the attach socket listens (connect now)
//     'P' + i32 init pid      the container runs
//     'E' + u32 len + message the container could not be started
//   and then closes it.
//
//   argv[0] == "/dev/init" and argv[1] == "--": act as a container's
//   PID 1 (berth run --init bind-mounts the berth binary read-only at
//   /dev/init and runs ["/dev/init", "--", cmd, args...]). See init_main.
//
// The monitor: chdir to the run dir; bind the attach socket "attach"
// there (relative: full paths may exceed sun_path's 108 bytes); with
// attach=1 wait for the first client; create the stdio pipes (or, with
// terminal=1, the console socket "console.sock" on which the runtime
// sends the pty master); fork+exec the runtime argv with the pipes as its
// stdio (the container's init inherits them) and its cwd the run dir.
// When the runtime exits 0 the pid file names the init, which is now the
// monitor's child (PR_SET_CHILD_SUBREAPER); otherwise the last "msg" of
// the runtime's JSON log runtime.log is reported as the error.
//
// Then one poll(2) loop: SIGCHLD through a signalfd (SIGCHLD is blocked,
// so no handler, nothing async), container output to the json-file log
// and to attach clients, attach input to the container's stdin, health
// checks on a timer. When the init exits, output is drained for at most
// DRAIN_NS (a grandchild may hold the pipes), the exit file is written
// atomically (exit.tmp, rename to "exit": "CODE FINISHED_NANOS\n"),
// clients get the exit frame, the exit command is started and the
// monitor exits.
//
// SIGTERM, SIGINT, SIGHUP and SIGPIPE are ignored: a monitor lives as
// long as its container, which berth stops through the runtime's kill.
// Children get default dispositions and an empty signal mask back.
//
// Every fd the monitor opens is O_CLOEXEC; its stdio is /dev/null; the
// only fds a child inherits are its stdio.
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONFIG (1 << 20)
#define LINE_MAX_BYTES 16384	  // docker splits log lines at 16 KiB
#define CLIENT_BUF_MAX (1 << 20) // a client further behind is dropped
#define STDIN_BUF_MAX 65536	  // attach input waiting for the container
#define FRAME_MAX 65536		  // largest client frame payload
#define MAX_CLIENTS 64
#define DRAIN_NS 1000000000LL

// ---------------------------------------------------------------- helpers

static int write_all(int fd, const void *buf, size_t n)
{
	const char *p = buf;
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static int read_all(int fd, void *buf, size_t n)
{
	char *p = buf;
	while (n > 0) {
		ssize_t r = read(fd, p, n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

static long long now_ns(clockid_t clk)
{
	struct timespec ts;
	clock_gettime(clk, &ts);
	return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);
	if (fl >= 0)
		fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

// reset_child undoes the monitor's signal setup in a forked child.
static void reset_child(void)
{
	sigset_t none;
	signal(SIGPIPE, SIG_DFL);
	signal(SIGHUP, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	signal(SIGINT, SIG_DFL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
}

struct buf {
	char *p;
	size_t len, cap;
};

static int buf_append(struct buf *b, const void *d, size_t n, size_t max)
{
	if (b->len + n > max)
		return -1;
	if (b->len + n > b->cap) {
		size_t c = b->cap ? b->cap : 1024;
		while (c < b->len + n)
			c *= 2;
		char *np = realloc(b->p, c);
		if (np == NULL)
			return -1;
		b->p = np;
		b->cap = c;
	}
	memcpy(b->p + b->len, d, n);
	b->len += n;
	return 0;
}

static void buf_consume(struct buf *b, size_t n)
{
	memmove(b->p, b->p + n, b->len - n);
	b->len -= n;
	if (b->len == 0 && b->cap > 65536) { // give big buffers back
		free(b->p);
		b->p = NULL;
		b->cap = 0;
	}
}

static void buf_free(struct buf *b)
{
	free(b->p);
	b->p = NULL;
	b->len = b->cap = 0;
}

// ----------------------------------------------------------------- config

struct argv {
	char **v;
	int n;
};

static struct {
	const char *dir, *pidfile, *logpath;
	struct argv rt, exitcmd, health;
	long long logmax, hint, hstart, hperiod;
	int logfiles, terminal, use_stdin, stdin_once, attach, inline_rt;
} cfg;

static int sync_fd = -1;

static void sync_send(char type, const void *data, size_t n)
{
	if (sync_fd < 0)
		return;
	if (write_all(sync_fd, &type, 1) < 0 || (n > 0 && write_all(sync_fd, data, n) < 0)) {
		close(sync_fd);
		sync_fd = -1;
	}
}

static void report_error(const char *msg)
{
	uint32_t len = (uint32_t)strlen(msg);
	char *m = malloc(sizeof(len) + len);
	if (m == NULL)
		return;
	memcpy(m, &len, sizeof(len));
	memcpy(m + sizeof(len), msg, len);
	sync_send('E', m, sizeof(len) + len);
	free(m);
}

static void cleanup_files(void)
{
	unlink("attach");
	unlink("console.sock");
}

// die reports an error (with errno's text when errno is set) and exits.
static void die(const char *fmt, ...)
{
	char msg[1024];
	int saved = errno;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (saved) {
		size_t l = strlen(msg);
		snprintf(msg + l, sizeof(msg) - l, ": %s", strerror(saved));
	}
	report_error(msg);
	if (cfg.dir != NULL)
		cleanup_files();
	_exit(1);
}

static void argv_add(struct argv *a, char *s)
{
	char **v = realloc(a->v, sizeof(char *) * (size_t)(a->n + 2));
	if (v == NULL) {
		errno = ENOMEM;
		die("monitor: configuration");
	}
	a->v = v;
	a->v[a->n++] = s;
	a->v[a->n] = NULL;
}

static void read_config(void)
{
	uint32_t len;
	if (read_all(sync_fd, &len, sizeof(len)) < 0)
		die("monitor: read configuration");
	if (len > MAX_CONFIG) {
		errno = 0;
		die("monitor: configuration of %u bytes is too large", len);
	}
	char *b = calloc(1, (size_t)len + 1);
	if (b == NULL)
		die("monitor: allocate configuration");
	if (read_all(sync_fd, b, len) < 0)
		die("monitor: read configuration");
	for (char *r = b, *next; r < b + len; r = next) {
		// The entry's end is taken before its '=' is cut: a value may
		// hold '=' itself (a path, an argument "a=b").
		next = r + strlen(r) + 1;
		char *v = strchr(r, '=');
		if (v == NULL)
			continue;
		*v++ = '\0';
		if (!strcmp(r, "dir"))
			cfg.dir = v;
		else if (!strcmp(r, "rt"))
			argv_add(&cfg.rt, v);
		else if (!strcmp(r, "exit"))
			argv_add(&cfg.exitcmd, v);
		else if (!strcmp(r, "health"))
			argv_add(&cfg.health, v);
		else if (!strcmp(r, "pidfile"))
			cfg.pidfile = v;
		else if (!strcmp(r, "log"))
			cfg.logpath = v;
		else if (!strcmp(r, "logmax"))
			cfg.logmax = atoll(v);
		else if (!strcmp(r, "logfiles"))
			cfg.logfiles = atoi(v);
		else if (!strcmp(r, "terminal"))
			cfg.terminal = 1;
		else if (!strcmp(r, "stdin"))
			cfg.use_stdin = 1;
		else if (!strcmp(r, "stdinonce"))
			cfg.stdin_once = 1;
		else if (!strcmp(r, "attach"))
			cfg.attach = 1;
		else if (!strcmp(r, "inline"))
			cfg.inline_rt = 1;
		else if (!strcmp(r, "hint"))
			cfg.hint = atoll(v);
		else if (!strcmp(r, "hstart"))
			cfg.hstart = atoll(v);
		else if (!strcmp(r, "hperiod"))
			cfg.hperiod = atoll(v);
	}
	errno = 0;
	if (cfg.dir == NULL || (!cfg.inline_rt && (cfg.rt.n == 0 || cfg.pidfile == NULL)))
		die("monitor: configuration lacks dir, rt or pidfile");
}

// ---------------------------------------------------------------- the log

static int log_fd = -1;
static long long log_size;

static void log_open(void)
{
	log_fd = open(cfg.logpath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
	if (log_fd < 0)
		return;
	struct stat st;
	log_size = fstat(log_fd, &st) == 0 ? st.st_size : 0;
}

// log_rotate: LOG.(n-2) -> LOG.(n-1), ..., LOG -> LOG.1, keeping
// cfg.logfiles files in all (docker's max-file); 1 file: truncate.
static void log_rotate(void)
{
	if (cfg.logfiles <= 1) {
		if (ftruncate(log_fd, 0) == 0)
			log_size = 0;
		return;
	}
	size_t n = strlen(cfg.logpath) + 24;
	char *from = malloc(n), *to = malloc(n);
	if (from == NULL || to == NULL) {
		free(from);
		free(to);
		return;
	}
	for (int i = cfg.logfiles - 1; i >= 1; i--) {
		if (i == 1)
			snprintf(from, n, "%s", cfg.logpath);
		else
			snprintf(from, n, "%s.%d", cfg.logpath, i - 1);
		snprintf(to, n, "%s.%d", cfg.logpath, i);
		rename(from, to); // ENOENT: not that many files yet
	}
	free(from);
	free(to);
	close(log_fd);
	log_open();
}

// A sink writes through a small buffer, or only counts (fd < 0).
struct sink {
	int fd;
	size_t n, total;
	char b[4096];
};

static void sink_put(struct sink *s, const char *p, size_t n)
{
	s->total += n;
	if (s->fd < 0)
		return;
	while (n > 0) {
		size_t k = sizeof(s->b) - s->n;
		if (k > n)
			k = n;
		memcpy(s->b + s->n, p, k);
		s->n += k;
		p += k;
		n -= k;
		if (s->n == sizeof(s->b)) {
			write_all(s->fd, s->b, s->n);
			s->n = 0;
		}
	}
}

static void sink_flush(struct sink *s)
{
	if (s->fd >= 0 && s->n > 0)
		write_all(s->fd, s->b, s->n);
	s->n = 0;
}

// utf8_len returns the length of the valid UTF-8 sequence at p (as Go's
// utf8.DecodeRune accepts: no overlongs, surrogates or > U+10FFFF), or 0.
static size_t utf8_len(const unsigned char *p, size_t n, uint32_t *cp)
{
	unsigned char c = p[0];
	size_t len;
	uint32_t v, min;
	if (c < 0x80) {
		*cp = c;
		return 1;
	} else if (c >= 0xc2 && c <= 0xdf) {
		len = 2, v = c & 0x1f, min = 0x80;
	} else if (c >= 0xe0 && c <= 0xef) {
		len = 3, v = c & 0x0f, min = 0x800;
	} else if (c >= 0xf0 && c <= 0xf4) {
		len = 4, v = c & 0x07, min = 0x10000;
	} else {
		return 0;
	}
	if (n < len)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		v = (v << 6) | (p[i] & 0x3f);
	}
	if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
		return 0;
	*cp = v;
	return len;
}

// json_string writes p escaped as the body of a JSON string, the way Go's
// encoding/json does (invalid UTF-8 becomes \ufffd).
static void json_string(struct sink *s, const unsigned char *p, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	size_t i = 0, start = 0;
	while (i < n) {
		unsigned char c = p[i];
		uint32_t cp;
		size_t l;
		const char *esc = NULL;
		char u[7];
		if (c >= 0x20 && c != '"' && c != '\\' && c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0x80) {
			l = utf8_len(p + i, n - i, &cp);
			if (l > 0 && cp != 0x2028 && cp != 0x2029) {
				i += l;
				continue;
			}
			sink_put(s, (const char *)p + start, i - start);
			if (l == 0) {
				sink_put(s, "\\ufffd", 6);
				i++;
			} else {
				sink_put(s, cp == 0x2028 ? "\\u2028" : "\\u2029", 6);
				i += l;
			}
			start = i;
			continue;
		}
		sink_put(s, (const char *)p + start, i - start);
		switch (c) {
		case '"': esc = "\\\""; break;
		case '\\': esc = "\\\\"; break;
		case '\n': esc = "\\n"; break;
		case '\r': esc = "\\r"; break;
		case '\t': esc = "\\t"; break;
		}
		if (esc != NULL) {
			sink_put(s, esc, 2);
		} else {
			memcpy(u, "\\u00", 4);
			u[4] = hex[c >> 4];
			u[5] = hex[c & 15];
			sink_put(s, u, 6);
		}
		i++;
		start = i;
	}
	sink_put(s, (const char *)p + start, n - start);
}

static void log_entry(const char *stream, const char *p, size_t n)
{
	if (log_fd < 0 || n == 0)
		return;
	char tbuf[64], tail[128];
	long long t = now_ns(CLOCK_REALTIME);
	time_t sec = (time_t)(t / 1000000000LL);
	struct tm tm;
	gmtime_r(&sec, &tm);
	size_t tl = strftime(tbuf, sizeof(tbuf), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(tbuf + tl, sizeof(tbuf) - tl, ".%09lldZ", t % 1000000000LL);
	int taillen = snprintf(tail, sizeof(tail), "\",\"stream\":\"%s\",\"time\":\"%s\"}\n", stream, tbuf);

	struct sink count = {.fd = -1};
	json_string(&count, (const unsigned char *)p, n);
	long long size = 8 + (long long)count.total + taillen;
	if (cfg.logmax > 0 && log_size > 0 && log_size + size > cfg.logmax) {
		log_rotate();
		if (log_fd < 0)
			return;
	}
	struct sink *s = malloc(sizeof(*s));
	if (s == NULL)
		return;
	s->fd = log_fd, s->n = 0, s->total = 0;
	sink_put(s, "{\"log\":\"", 8);
	json_string(s, (const unsigned char *)p, n);
	sink_put(s, tail, (size_t)taillen);
	sink_flush(s);
	free(s);
	log_size += size;
}

// -------------------------------------------------------- attach clients

struct client {
	int fd;
	int sent_stdin; // sent a stdin frame: its leaving closes stdin (StdinOnce)
	int claims;	// sent a claim frame: it runs the cleanup when told the exit
	struct buf out, in;
};

static struct client *clients[MAX_CLIENTS];
static int nclients;

static int stdin_fd = -1; // the container's stdin pipe, or the pty master
static struct buf stdin_buf;
static int stdin_close_pending;
static int pty_fd = -1;

static void close_stdin(void)
{
	if (stdin_fd >= 0 && stdin_fd != pty_fd)
		close(stdin_fd);
	stdin_fd = -1;
	buf_free(&stdin_buf);
	stdin_close_pending = 0;
}

static void drop_client(int i)
{
	struct client *c = clients[i];
	if (c->sent_stdin && cfg.stdin_once) {
		if (stdin_buf.len > 0)
			stdin_close_pending = 1;
		else
			close_stdin();
	}
	close(c->fd);
	buf_free(&c->out);
	buf_free(&c->in);
	free(c);
	clients[i] = clients[--nclients];
	clients[nclients] = NULL;
}

// client_flush writes what it can of c's pending output; -1: drop it.
static int client_flush(struct client *c)
{
	while (c->out.len > 0) {
		ssize_t w = write(c->fd, c->out.p, c->out.len);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno == EAGAIN)
			return 0;
		if (w < 0)
			return -1;
		buf_consume(&c->out, (size_t)w);
	}
	return 0;
}

static void frame_header(char *h, int type, uint32_t len)
{
	h[0] = (char)type;
	h[1] = (char)(len >> 24);
	h[2] = (char)(len >> 16);
	h[3] = (char)(len >> 8);
	h[4] = (char)len;
}

static void broadcast(int type, const char *p, size_t n)
{
	char h[5];
	frame_header(h, type, (uint32_t)n);
	for (int i = 0; i < nclients;) {
		struct client *c = clients[i];
		if (buf_append(&c->out, h, 5, CLIENT_BUF_MAX) < 0 || buf_append(&c->out, p, n, CLIENT_BUF_MAX) < 0 ||
		    client_flush(c) < 0) {
			drop_client(i);
			continue;
		}
		i++;
	}
}

static void accept_client(int lfd)
{
	int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	if (fd < 0)
		return;
	struct client *c;
	if (nclients == MAX_CLIENTS || (c = calloc(1, sizeof(*c))) == NULL) {
		close(fd);
		return;
	}
	c->fd = fd;
	clients[nclients++] = c;
}

static void handle_frame(struct client *c, int type, const char *p, uint32_t n)
{
	switch (type) {
	case 0: // stdin data
		c->sent_stdin = 1;
		if (stdin_fd >= 0 && !stdin_close_pending)
			buf_append(&stdin_buf, p, n, STDIN_BUF_MAX + FRAME_MAX);
		break;
	case 1: // close stdin
		c->sent_stdin = 1;
		if (cfg.stdin_once && stdin_fd >= 0) {
			if (pty_fd >= 0)
				buf_append(&stdin_buf, "\x04", 1, STDIN_BUF_MAX + FRAME_MAX);
			else
				stdin_close_pending = 1;
			if (stdin_buf.len == 0)
				close_stdin();
		}
		break;
	case 2: // resize
		if (pty_fd >= 0 && n >= 4) {
			const unsigned char *u = (const unsigned char *)p;
			struct winsize ws = {0};
			ws.ws_row = (unsigned short)(u[0] << 8 | u[1]);
			ws.ws_col = (unsigned short)(u[2] << 8 | u[3]);
			ioctl(pty_fd, TIOCSWINSZ, &ws);
		}
		break;
	case 3: // claim: this client cleans up after the exit
		c->claims = 1;
		break;
	}
}

// client_read reads and handles c's frames; -1: drop it.
static int client_read(struct client *c)
{
	char tmp[8192];
	ssize_t r = read(c->fd, tmp, sizeof(tmp));
	if (r < 0 && (errno == EINTR || errno == EAGAIN))
		return 0;
	if (r <= 0)
		return -1;
	if (buf_append(&c->in, tmp, (size_t)r, FRAME_MAX + 5 + sizeof(tmp)) < 0)
		return -1;
	size_t off = 0;
	while (c->in.len - off >= 5) {
		const unsigned char *h = (const unsigned char *)c->in.p + off;
		uint32_t n = (uint32_t)h[1] << 24 | (uint32_t)h[2] << 16 | (uint32_t)h[3] << 8 | h[4];
		if (n > FRAME_MAX)
			return -1;
		if (c->in.len - off < 5 + (size_t)n)
			break;
		handle_frame(c, h[0], (const char *)h + 5, n);
		off += 5 + n;
	}
	if (off > 0)
		buf_consume(&c->in, off);
	return 0;
}

static void stdin_flush(void)
{
	while (stdin_fd >= 0 && stdin_buf.len > 0) {
		ssize_t w = write(stdin_fd, stdin_buf.p, stdin_buf.len);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno == EAGAIN)
			return;
		if (w < 0) { // EPIPE: the container closed its stdin
			close_stdin();
			return;
		}
		buf_consume(&stdin_buf, (size_t)w);
	}
	if (stdin_close_pending && stdin_buf.len == 0)
		close_stdin();
}

// ---------------------------------------------------------------- streams

struct stream {
	int fd, type;
	const char *name;
	char *line;
	size_t len;
};

static struct stream streams[2] = {{-1, 1, "stdout", NULL, 0}, {-1, 2, "stderr", NULL, 0}};

static void stream_flush(struct stream *s)
{
	if (s->len > 0)
		log_entry(s->name, s->line, s->len);
	s->len = 0;
	free(s->line);
	s->line = NULL;
}

static void stream_eof(struct stream *s)
{
	stream_flush(s);
	if (s->fd == pty_fd) {
		if (stdin_fd == pty_fd)
			stdin_fd = -1;
		buf_free(&stdin_buf);
		pty_fd = -1;
	}
	close(s->fd);
	s->fd = -1;
}

static void stream_read(struct stream *s)
{
	if (s->line == NULL && (s->line = malloc(LINE_MAX_BYTES)) == NULL)
		return;
	ssize_t n = read(s->fd, s->line + s->len, LINE_MAX_BYTES - s->len);
	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return;
	if (n <= 0) { // EOF, or EIO: the pty's last slave closed
		stream_eof(s);
		return;
	}
	broadcast(s->type, s->line + s->len, (size_t)n);
	size_t from = s->len, start = 0;
	s->len += (size_t)n;
	char *nl;
	while ((nl = memchr(s->line + from, '\n', s->len - from)) != NULL) {
		size_t end = (size_t)(nl - s->line) + 1;
		log_entry(s->name, s->line + start, end - start);
		start = from = end;
	}
	if (start > 0) {
		memmove(s->line, s->line + start, s->len - start);
		s->len -= start;
	}
	if (s->len == LINE_MAX_BYTES) {
		log_entry(s->name, s->line, s->len);
		s->len = 0;
	}
	if (s->len == 0) {
		free(s->line);
		s->line = NULL;
	}
}

// ---------------------------------------------------------------- children

static pid_t spawn_detached(char **argv)
{
	pid_t pid = fork();
	if (pid == 0) {
		reset_child();
		setsid();
		execvp(argv[0], argv);
		_exit(127);
	}
	return pid;
}

// health_interval is the wait before the next health check, as docker
// counts it: from the end of the last check (or the container's start),
// the start interval while in the start period, the interval after.
static long long health_interval(long long now, long long running_since)
{
	if (cfg.hstart > 0 && now < running_since + cfg.hperiod)
		return cfg.hstart;
	return cfg.hint;
}

static int shell_code(int status)
{
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return 255;
}

// runtime_error finds the last "msg" in runtime.log (the last error's if
// there is one), decoded from its JSON string.
static void runtime_error(char *out, size_t outlen, int status)
{
	snprintf(out, outlen, "runtime %s exited with status %d", cfg.rt.v[0], shell_code(status));
	int fd = open("runtime.log", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	struct stat st;
	size_t max = 65536;
	char *b = malloc(max + 1);
	if (b == NULL || fstat(fd, &st) < 0) {
		free(b);
		close(fd);
		return;
	}
	off_t off = st.st_size > (off_t)max ? st.st_size - (off_t)max : 0;
	ssize_t n = pread(fd, b, max, off);
	close(fd);
	if (n <= 0) {
		free(b);
		return;
	}
	b[n] = '\0';
	int found_error = 0;
	for (char *line = b; line != NULL && *line;) {
		char *next = strchr(line, '\n');
		if (next != NULL)
			*next++ = '\0';
		int is_error = strstr(line, "\"level\":\"error\"") != NULL;
		char *m = strstr(line, "\"msg\":\"");
		if (m != NULL && (is_error || !found_error)) {
			found_error |= is_error;
			size_t o = 0;
			for (char *p = m + 7; *p && *p != '"' && o + 5 < outlen; p++) {
				if (*p == '\\' && p[1]) {
					p++;
					switch (*p) {
					case 'n': out[o++] = '\n'; break;
					case 't': out[o++] = '\t'; break;
					case 'r': out[o++] = '\r'; break;
					case 'u': {
						unsigned v = 0;
						int k;
						for (k = 1; k <= 4 && p[k]; k++) {
							char h = p[k];
							v = v * 16 + (unsigned)(h <= '9' ? h - '0' : (h | 0x20) - 'a' + 10);
						}
						if (k <= 4)
							break;
						p += 4;
						if (v < 0x80) {
							out[o++] = (char)v;
						} else if (v < 0x800) {
							out[o++] = (char)(0xc0 | v >> 6);
							out[o++] = (char)(0x80 | (v & 0x3f));
						} else {
							out[o++] = (char)(0xe0 | v >> 12);
							out[o++] = (char)(0x80 | ((v >> 6) & 0x3f));
							out[o++] = (char)(0x80 | (v & 0x3f));
						}
						break;
					}
					default: out[o++] = *p;
					}
				} else {
					out[o++] = *p;
				}
			}
			out[o] = '\0';
		}
		line = next;
	}
	free(b);
}

static pid_t read_pidfile(void)
{
	char b[32];
	int fd = open(cfg.pidfile, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t n;
	do
		n = read(fd, b, sizeof(b) - 1);
	while (n < 0 && errno == EINTR);
	close(fd);
	if (n <= 0)
		return -1;
	b[n] = '\0';
	long v = strtol(b, NULL, 10);
	return v > 0 ? (pid_t)v : -1;
}

// write_exit_file records the exit: written whole and renamed into place,
// so readers see all of it or nothing. Not fsynced: the file means
// nothing after a crash of the host (the engine compares boot ids, and the
// run directory is normally on tmpfs), and two fsyncs would delay every
// container's exit.
static void write_exit_file(int code)
{
	char b[64];
	int n = snprintf(b, sizeof(b), "%d %lld\n", code, now_ns(CLOCK_REALTIME));
	int fd = open("exit.tmp", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return;
	int ok = write_all(fd, b, (size_t)n) == 0;
	close(fd);
	if (ok)
		rename("exit.tmp", "exit");
}

// recv_fd takes the pty master init sends on c, a connection to
// console.sock, and closes c.
static int recv_fd(int c)
{
	char name[256];
	union {
		char b[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	struct iovec iov = {name, sizeof(name)};
	struct msghdr mh = {0};
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	mh.msg_control = u.b;
	mh.msg_controllen = sizeof(u.b);
	ssize_t n;
	do
		n = recvmsg(c, &mh, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	close(c);
	struct cmsghdr *cm = n >= 0 ? CMSG_FIRSTHDR(&mh) : NULL;
	if (cm == NULL || cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS ||
	    cm->cmsg_len != CMSG_LEN(sizeof(int)))
		return -1;
	int fd;
	memcpy(&fd, CMSG_DATA(cm), sizeof(int));
	return fd;
}

// recv_console takes the pty master sent on console.sock (listening on
// lfd) by a runtime that has already sent it.
static int recv_console(int lfd)
{
	int c = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	if (c < 0)
		return -1;
	return recv_fd(c);
}

static int listen_unix(const char *name)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		die("monitor: socket");
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", name);
	unlink(name);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		die("monitor: bind %s/%s", cfg.dir, name);
	if (listen(fd, 16) < 0)
		die("monitor: listen on %s/%s", cfg.dir, name);
	return fd;
}

// ------------------------------------------------- inline runtime (Launcher)

#define MAX_PASSED_FDS 64

// kill_children SIGKILLs every child of the monitor (stage 0, the
// container's init before it was reported): the caller that was creating
// the container went away.
static void kill_children(void)
{
	char path[64], b[4096];
	snprintf(path, sizeof(path), "/proc/self/task/%d/children", (int)getpid());
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	ssize_t n = read(fd, b, sizeof(b) - 1);
	close(fd);
	if (n <= 0)
		return;
	b[n] = '\0';
	for (char *p = b, *end; *p; p = end) {
		long v = strtol(p, &end, 10);
		if (end == p)
			break;
		if (v > 0)
			kill((pid_t)v, SIGKILL);
	}
	// Reaped before the monitor exits, so that they do not become the
	// host init's zombies.
	while (waitpid(-1, NULL, 0) > 0 || errno == EINTR)
		;
}

// recv_request reads one request type byte from the caller, and the fds
// passed with it (at most max; *nfds is how many came). 0 on EOF.
static int recv_request(char *type, int *fds, int max, int *nfds)
{
	union {
		char b[CMSG_SPACE(sizeof(int) * MAX_PASSED_FDS)];
		struct cmsghdr align;
	} u;
	struct iovec iov = {type, 1};
	struct msghdr mh = {0};
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	mh.msg_control = u.b;
	mh.msg_controllen = sizeof(u.b);
	ssize_t n;
	do
		n = recvmsg(sync_fd, &mh, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	*nfds = 0;
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm != NULL; cm = CMSG_NXTHDR(&mh, cm)) {
		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		int k = (int)((cm->cmsg_len - CMSG_LEN(0)) / sizeof(int));
		for (int i = 0; i < k; i++) {
			int fd;
			memcpy(&fd, CMSG_DATA(cm) + sizeof(int) * (size_t)i, sizeof(int));
			if (*nfds < max)
				fds[(*nfds)++] = fd;
			else
				close(fd);
		}
	}
	if (mh.msg_flags & MSG_CTRUNC) {
		errno = 0;
		die("monitor: too many fds in a request");
	}
	return n > 0 ? 1 : 0;
}

// spawn_stage0 forks and execs stage 0 of the container's init for the
// caller: fds[0] is the binary to exec, fds[1..] become fds 3.. of the
// child, env the NUL-separated environment (len bytes), child_fd its
// stdio. Stage 0's init is then this monitor's child (CLONE_PARENT).
static pid_t spawn_stage0(int *fds, int nfds, char *env, uint32_t len, int child_fd[3])
{
	char *envp[64];
	int ne = 0;
	for (char *e = env; e < env + len && ne < 63; e += strlen(e) + 1)
		envp[ne++] = e;
	envp[ne] = NULL;
	char *argv[] = {"berth-init", NULL};
	pid_t pid = fork();
	if (pid != 0)
		return pid;
	reset_child();
	for (int i = 0; i < 3; i++)
		if (child_fd[i] >= 0 && dup2(child_fd[i], i) < 0)
			_exit(126);
	// Out of the way first, then into place: a passed fd may sit on a
	// number another one goes to.
	int hi[MAX_PASSED_FDS];
	for (int i = 0; i < nfds; i++)
		if ((hi[i] = fcntl(fds[i], F_DUPFD_CLOEXEC, 3 + nfds + MAX_PASSED_FDS)) < 0)
			_exit(126);
	for (int i = 1; i < nfds; i++)
		if (dup2(hi[i], 2 + i) < 0)
			_exit(126);
	syscall(SYS_execveat, hi[0], "", argv, envp, AT_EMPTY_PATH);
	_exit(127);
}

// ------------------------------------------------------------- the monitor

// close_inherited closes every fd above stdio but keep: the caller may
// have leaked some (an fd not opened by Go is inherited by its children),
// and a monitor holding, say, a shell's pipe would keep that shell waiting.
static void close_inherited(int keep)
{
	if ((keep <= 3 || syscall(SYS_close_range, 3, keep - 1, 0) == 0) &&
	    syscall(SYS_close_range, keep + 1, ~0U, 0) == 0)
		return;
	DIR *d = opendir("/proc/self/fd");
	if (d == NULL)
		return;
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		int fd = atoi(e->d_name);
		if (fd > 2 && fd != keep && fd != dirfd(d))
			close(fd);
	}
	closedir(d);
}

enum phase { RUNTIME, RUNNING, DRAIN };

// container_running is the move to RUNNING once init's pid is known: it
// tells the caller the pid, closes the sync channel and starts the health
// check timing. Init may be gone already, or (named wrongly, or reaped by
// the runtime) not be our child at all, its status then unknown: then it
// returns DRAIN, with the status and the drain deadline set.
static enum phase container_running(pid_t init, int *init_status, long long *drain_until,
				    long long *running_since, long long *next_health)
{
	int32_t ip = (int32_t)init;
	sync_send('P', &ip, sizeof(ip));
	if (sync_fd >= 0)
		close(sync_fd);
	sync_fd = -1;
	*running_since = now_ns(CLOCK_MONOTONIC);
	*next_health = *running_since + health_interval(*running_since, *running_since);
	int st;
	pid_t w = waitpid(init, &st, WNOHANG);
	if (w == init || (w < 0 && errno == ECHILD)) {
		*init_status = w == init ? st : (255 << 8);
		*drain_until = now_ns(CLOCK_MONOTONIC) + DRAIN_NS;
		return DRAIN;
	}
	return RUNNING;
}

static void monitor_main(void)
{
	close_inherited(sync_fd);
	read_config();

	pid_t pid = fork();
	if (pid < 0)
		die("monitor: fork");
	if (pid > 0)
		_exit(0); // the caller reaps us; the child lives on alone
	if (setsid() < 0)
		die("monitor: setsid");
	if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0)
		die("monitor: PR_SET_CHILD_SUBREAPER");
	signal(SIGPIPE, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	signal(SIGTERM, SIG_IGN);
	signal(SIGINT, SIG_IGN);
	sigset_t chld;
	sigemptyset(&chld);
	sigaddset(&chld, SIGCHLD);
	if (sigprocmask(SIG_BLOCK, &chld, NULL) < 0)
		die("monitor: block SIGCHLD");
	int sfd = signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);
	if (sfd < 0)
		die("monitor: signalfd");
	unsetenv("_BERTH_MONITOR");

	int null = open("/dev/null", O_RDWR);
	if (null < 0)
		die("monitor: open /dev/null");
	for (int i = 0; i < 3; i++)
		if (null != i && dup2(null, i) < 0)
			die("monitor: dup2 /dev/null");
	if (null > 2)
		close(null);
	if (chdir(cfg.dir) < 0)
		die("monitor: chdir %s", cfg.dir);

	int lfd = listen_unix("attach");
	// Before 'A': an inline caller dials it as soon as Launch returns.
	int cfd = cfg.terminal ? listen_unix("console.sock") : -1;
	int32_t mypid = (int32_t)getpid();
	sync_send('A', &mypid, sizeof(mypid));

	if (cfg.attach) { // wait for the first client (or the caller's going)
		int watch = 1; // poll the caller's socket for its going away
		while (nclients == 0) {
			struct pollfd p[2] = {{lfd, POLLIN, 0}, {sync_fd, POLLIN, 0}};
			if (poll(p, watch ? 2 : 1, -1) < 0) {
				if (errno == EINTR)
					continue;
				die("monitor: poll");
			}
			if (p[0].revents & POLLIN)
				accept_client(lfd);
			if (nclients == 0 && watch && p[1].revents) {
				char c;
				// An inline caller may send its next request as
				// soon as it connected: only its end is fatal.
				if (!cfg.inline_rt || recv(sync_fd, &c, 1, MSG_PEEK | MSG_DONTWAIT) <= 0) {
					errno = 0;
					die("monitor: the caller went away before attaching");
				}
				watch = 0;
			}
		}
	}

	int child_fd[3] = {-1, -1, -1};
	if (!cfg.terminal) {
		int p[2];
		for (int i = 0; i < 2; i++) {
			if (pipe2(p, O_CLOEXEC) < 0)
				die("monitor: pipe");
			streams[i].fd = p[0];
			set_nonblock(p[0]);
			child_fd[i + 1] = p[1];
		}
		if (cfg.use_stdin) {
			if (pipe2(p, O_CLOEXEC) < 0)
				die("monitor: pipe");
			child_fd[0] = p[0];
			stdin_fd = p[1];
			set_nonblock(p[1]);
		}
	}

	if (cfg.logpath != NULL && *cfg.logpath) {
		log_open();
		if (log_fd < 0)
			die("monitor: open log %s", cfg.logpath);
	}

	// Inline: the caller runs the runtime's code itself and asks for
	// stage 0 ('X'), then reports init's pid ('G'); see monitor.Launcher.
	pid_t rt = -1, stage0 = -1;
	if (!cfg.inline_rt) {
		rt = fork();
		if (rt < 0)
			die("monitor: fork runtime");
		if (rt == 0) {
			reset_child();
			for (int i = 0; i < 3; i++)
				if (child_fd[i] >= 0 && dup2(child_fd[i], i) < 0)
					_exit(126);
			execv(cfg.rt.v[0], cfg.rt.v);
			_exit(127);
		}
		for (int i = 0; i < 3; i++)
			if (child_fd[i] >= 0)
				close(child_fd[i]);
	}
	int ccon = -1; // an accepted console.sock connection, before the pty comes

	enum phase phase = RUNTIME;
	pid_t init = -1, health = 0;
	int init_status = 0;
	// next_health is when the next health check starts; 0 while one
	// runs (the next is timed from its end).
	long long drain_until = 0, next_health = 0, running_since = 0;
	struct pollfd pf[MAX_CLIENTS + 8];

	for (;;) {
		long long now = now_ns(CLOCK_MONOTONIC);
		if (phase == DRAIN && (now >= drain_until || (streams[0].fd < 0 && streams[1].fd < 0)))
			break;
		if (phase == RUNNING && cfg.health.n > 0 && cfg.hint > 0 && health == 0 && now >= next_health) {
			health = spawn_detached(cfg.health.v);
			if (health < 0)
				health = 0;
			next_health = health > 0 ? 0 : now + health_interval(now, running_since);
		}
		int timeout = -1;
		long long until = phase == DRAIN ? drain_until
				  : (phase == RUNNING && cfg.health.n > 0 && cfg.hint > 0 && health == 0) ? next_health : 0;
		if (until > 0)
			timeout = until > now ? (int)((until - now) / 1000000 + 1) : 0;

		int np = 0, ip_sfd = -1, ip_lfd = -1, ip_cfd = -1, ip_ccon = -1, ip_sync = -1, ip_in = -1, ip_s[2] = {-1, -1}, ip_c0;
		pf[ip_sfd = np++] = (struct pollfd){sfd, POLLIN, 0};
		if (cfg.inline_rt && phase == RUNTIME && sync_fd >= 0)
			pf[ip_sync = np++] = (struct pollfd){sync_fd, POLLIN, 0};
		if (ccon >= 0)
			pf[ip_ccon = np++] = (struct pollfd){ccon, POLLIN, 0};
		if (phase != DRAIN)
			pf[ip_lfd = np++] = (struct pollfd){lfd, POLLIN, 0};
		if (cfd >= 0)
			pf[ip_cfd = np++] = (struct pollfd){cfd, POLLIN, 0};
		for (int i = 0; i < 2; i++)
			if (streams[i].fd >= 0)
				pf[ip_s[i] = np++] = (struct pollfd){streams[i].fd, POLLIN, 0};
		if (stdin_fd >= 0 && stdin_buf.len > 0)
			pf[ip_in = np++] = (struct pollfd){stdin_fd, POLLOUT, 0};
		ip_c0 = np;
		for (int i = 0; i < nclients; i++) {
			short ev = 0;
			if (stdin_buf.len < STDIN_BUF_MAX)
				ev |= POLLIN;
			if (clients[i]->out.len > 0)
				ev |= POLLOUT;
			pf[np++] = (struct pollfd){clients[i]->fd, ev, 0};
		}
		int nready = poll(pf, (nfds_t)np, timeout);
		if (nready < 0) {
			if (errno == EINTR)
				continue;
			die("monitor: poll");
		}

		// Clients first: their indexes shift when one is dropped.
		for (int i = nclients - 1; i >= 0; i--) {
			short re = pf[ip_c0 + i].revents;
			struct client *c = clients[i];
			if ((re & POLLOUT) && client_flush(c) < 0) {
				drop_client(i);
				continue;
			}
			if ((re & (POLLIN | POLLHUP | POLLERR)) && client_read(c) < 0)
				drop_client(i);
		}
		if (ip_lfd >= 0 && (pf[ip_lfd].revents & POLLIN))
			accept_client(lfd);
		if (ip_in >= 0 && pf[ip_in].revents)
			stdin_flush();
		if (stdin_close_pending && stdin_buf.len == 0)
			close_stdin();
		for (int i = 0; i < 2; i++)
			if (ip_s[i] >= 0 && pf[ip_s[i]].revents && streams[i].fd >= 0)
				stream_read(&streams[i]);
		if (ip_cfd >= 0 && (pf[ip_cfd].revents & POLLIN) && pty_fd < 0 && ccon < 0)
			ccon = accept4(cfd, NULL, NULL, SOCK_CLOEXEC);
		if (ip_ccon >= 0 && pf[ip_ccon].revents && pty_fd < 0) {
			// Init sends the pty master when it has made it: until
			// then the connection is polled, not waited on.
			int m = recv_fd(ccon);
			ccon = -1;
			if (m >= 0) {
				set_nonblock(m);
				pty_fd = stdin_fd = m;
				streams[0].fd = m;
				close(cfd);
				cfd = -1;
				unlink("console.sock");
			}
		}
		if (ip_sync >= 0 && pf[ip_sync].revents) {
			char type = 0;
			int fds[MAX_PASSED_FDS], nfds = 0;
			if (!recv_request(&type, fds, MAX_PASSED_FDS, &nfds)) {
				kill_children();
				errno = 0;
				die("monitor: the caller went away before the container started");
			}
			if (type == 'X' && stage0 < 0 && nfds >= 1) {
				uint32_t len;
				char *env = NULL;
				if (read_all(sync_fd, &len, sizeof(len)) < 0 || len > MAX_CONFIG ||
				    (env = calloc(1, (size_t)len + 1)) == NULL || read_all(sync_fd, env, len) < 0)
					die("monitor: read stage 0 request");
				stage0 = spawn_stage0(fds, nfds, env, len, child_fd);
				if (stage0 < 0)
					die("monitor: fork stage 0");
				free(env);
				for (int i = 0; i < nfds; i++)
					close(fds[i]);
				for (int i = 0; i < 3; i++) {
					if (child_fd[i] >= 0)
						close(child_fd[i]);
					child_fd[i] = -1;
				}
				int32_t sp = (int32_t)stage0;
				sync_send('S', &sp, sizeof(sp));
			} else if (type == 'G' && stage0 > 0) {
				int32_t ip;
				if (read_all(sync_fd, &ip, sizeof(ip)) < 0)
					die("monitor: read init pid");
				init = (pid_t)ip;
				// Init was held unreaped until now.
				phase = container_running(init, &init_status, &drain_until, &running_since, &next_health);
			} else {
				kill_children();
				errno = 0;
				die("monitor: unexpected request %#x from the caller", (unsigned char)type);
			}
		}
		if (!(pf[ip_sfd].revents & POLLIN))
			continue;
		struct signalfd_siginfo si;
		while (read(sfd, &si, sizeof(si)) > 0)
			;
		if (cfg.inline_rt && phase == RUNTIME) {
			// Only stage 0 is reaped: init stays a zombie until the
			// caller reports it, so the caller can still kill it by
			// pid without hitting a reused one.
			if (stage0 > 0)
				waitpid(stage0, NULL, WNOHANG);
			continue;
		}
		if (phase == RUNTIME) {
			int st;
			pid_t w;
			do
				w = waitpid(rt, &st, WNOHANG);
			while (w < 0 && errno == EINTR);
			if (w != rt)
				continue;
			char msg[1024];
			if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
				runtime_error(msg, sizeof(msg), st);
				errno = 0;
				die("%s", msg);
			}
			if (cfg.terminal && pty_fd < 0) {
				// The runtime sent it and left.
				int m = ccon >= 0 ? recv_fd(ccon) : recv_console(cfd);
				ccon = -1;
				if (m < 0) {
					errno = 0;
					die("monitor: the runtime sent no pty master on console.sock");
				}
				set_nonblock(m);
				pty_fd = stdin_fd = streams[0].fd = m;
				close(cfd);
				cfd = -1;
				unlink("console.sock");
			}
			if ((init = read_pidfile()) < 0) {
				errno = 0;
				die("monitor: no pid in the runtime's pid file %s", cfg.pidfile);
			}
			phase = container_running(init, &init_status, &drain_until, &running_since, &next_health);
		}
		// Reap every child: we are the subreaper of the container's
		// orphans too.
		for (;;) {
			int st;
			pid_t w = waitpid(-1, &st, WNOHANG);
			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0)
				break;
			if (w == health) {
				health = 0;
				long long t = now_ns(CLOCK_MONOTONIC);
				next_health = t + health_interval(t, running_since);
			}
			if (w == init && phase == RUNNING) {
				init_status = st;
				phase = DRAIN;
				drain_until = now_ns(CLOCK_MONOTONIC) + DRAIN_NS;
			}
		}
	}

	// The container is gone: log what is left, record the exit, tell
	// the clients, run the exit command.
	for (int i = 0; i < 2; i++) {
		stream_flush(&streams[i]);
		if (streams[i].fd >= 0)
			close(streams[i].fd);
	}
	int code = shell_code(init_status);
	write_exit_file(code);
	if (log_fd >= 0)
		close(log_fd);
	char h[9];
	frame_header(h, 3, 4);
	h[5] = (char)(code >> 24), h[6] = (char)(code >> 16), h[7] = (char)(code >> 8), h[8] = (char)code;
	struct timeval tv = {2, 0};
	int claimed = 0; // a claiming client got the exit frame
	while (nclients > 0) {
		struct client *c = clients[nclients - 1];
		// A claim the client sent just before the exit may still be
		// unread (a container that exits at once): read what it sent.
		if (!c->claims && client_read(c) < 0) {
			drop_client(nclients - 1);
			continue;
		}
		int fl = fcntl(c->fd, F_GETFL);
		if (fl >= 0)
			fcntl(c->fd, F_SETFL, fl & ~O_NONBLOCK);
		setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
		if (buf_append(&c->out, h, 9, CLIENT_BUF_MAX + 9) == 0 && write_all(c->fd, c->out.p, c->out.len) == 0 &&
		    c->claims)
			claimed = 1;
		c->sent_stdin = 0;
		drop_client(nclients - 1);
	}
	close(lfd);
	cleanup_files();
	// A client that claimed the cleanup and got the exit frame does it
	// (or, if it dies first, the next berth command finds the exit file
	// and a dead monitor, and does it): no exit command.
	if (cfg.exitcmd.n > 0 && !claimed)
		spawn_detached(cfg.exitcmd.v);
	_exit(0);
}

// --------------------------------------------------------------- the init

// init_main is a container's PID 1 for --init: it runs argv[2...] as its
// child, passes every catchable signal on to it, reaps every process that
// is reparented to it, and exits with the child's status (128+N if a
// signal N killed it). exec failures: 127 not found, 126 otherwise.
static void init_main(char **argv)
{
	sigset_t all, old;
	sigfillset(&all);
	sigprocmask(SIG_BLOCK, &all, &old);
	if (getpid() != 1)
		prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
	pid_t child = fork();
	if (child < 0) {
		fprintf(stderr, "berth-init: fork: %s\n", strerror(errno));
		_exit(1);
	}
	if (child == 0) {
		sigprocmask(SIG_SETMASK, &old, NULL);
		execvp(argv[2], argv + 2);
		int e = errno;
		fprintf(stderr, "berth-init: exec %s: %s\n", argv[2], strerror(e));
		_exit(e == ENOENT ? 127 : 126);
	}
	for (;;) {
		siginfo_t si;
		int sig = sigwaitinfo(&all, &si);
		if (sig < 0)
			continue; // EINTR
		if (sig != SIGCHLD) {
			kill(child, sig);
			continue;
		}
		for (;;) {
			int st;
			pid_t w = waitpid(-1, &st, WNOHANG);
			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0)
				break;
			if (w == child)
				_exit(shell_code(st));
		}
	}
}

__attribute__((constructor)) static void berth_monitor(int argc, char **argv, char **envp)
{
	(void)envp;
	if (argc >= 3 && argv != NULL && strcmp(argv[0], "/dev/init") == 0 && strcmp(argv[1], "--") == 0)
		init_main(argv); // never returns
	const char *env = getenv("_BERTH_MONITOR");
	if (env == NULL || *env == '\0')
		return;
	sync_fd = atoi(env);
	if (fcntl(sync_fd, F_SETFD, FD_CLOEXEC) < 0)
		_exit(1);
	monitor_main(); // never returns
}
