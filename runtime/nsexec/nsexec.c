// nsexec: the part of a container's init (and of every exec'd process) that
// must run before the Go runtime starts, while the process is still
// single-threaded. setns(2) into a mount or user namespace and unshare of a
// user namespace are refused to multithreaded callers, and joining or
// creating a pid namespace only takes effect for children, so this code
// enters and creates the namespaces, forks the process that becomes the
// container's init, and lets only that child go on into Go.
//
// It runs as an ELF constructor, so it costs one getenv() in every other
// berth invocation.
//
// Protocol on the sync socket (fd in _BERTH_INITPIPE), parent <-> stage 0:
//   parent -> u32 length, then NUL-separated "key=value" records:
//             clone=<decimal clone flags of namespaces to create>
//             ns=<CLONE_NEW* decimal>:<path>   (namespaces to join; repeated)
//             timens=<text for /proc/self/timens_offsets>
//             setgroups=deny                    (rootless: groups cannot be set)
//   stage 0 -> 'U' after unsharing a user namespace; waits for one byte from
//             the parent once it has written uid_map and gid_map
//   stage 0 -> 'P' + int32 pid of the forked init (as seen from the host)
//   on any failure -> 'E' + u32 length + message, and exit 1.
// The forked child (stage 1) keeps the socket and continues in Go, which
// speaks JSON on it from then on (see runtime/container).
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
#endif
#ifndef CLONE_NEWCGROUP
#define CLONE_NEWCGROUP 0x02000000
#endif

#define MAX_NS 16
#define MAX_BOOTSTRAP (1 << 20)

static int sync_fd = -1;

static void write_all(const void *buf, size_t n)
{
	const char *p = buf;
	while (n > 0) {
		ssize_t w = write(sync_fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			_exit(1);
		p += w;
		n -= (size_t)w;
	}
}

static void bail(const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	int saved = errno;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (saved) {
		size_t l = strlen(msg);
		snprintf(msg + l, sizeof(msg) - l, ": %s", strerror(saved));
	}
	uint32_t len = (uint32_t)strlen(msg);
	write_all("E", 1);
	write_all(&len, sizeof(len));
	write_all(msg, len);
	_exit(1);
}

static void read_all(void *buf, size_t n)
{
	char *p = buf;
	while (n > 0) {
		ssize_t r = read(sync_fd, p, n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r == 0) {
			errno = 0;
			bail("nsexec: parent closed the sync socket");
		}
		if (r < 0)
			bail("nsexec: read sync socket");
		p += r;
		n -= (size_t)r;
	}
}

static const char *ns_name(int type)
{
	switch (type) {
	case CLONE_NEWUSER: return "user";
	case CLONE_NEWNS: return "mount";
	case CLONE_NEWPID: return "pid";
	case CLONE_NEWNET: return "network";
	case CLONE_NEWUTS: return "uts";
	case CLONE_NEWIPC: return "ipc";
	case CLONE_NEWCGROUP: return "cgroup";
	case CLONE_NEWTIME: return "time";
	}
	return "unknown";
}

static void write_file(const char *path, const char *data)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		bail("open %s", path);
	size_t n = strlen(data);
	if (write(fd, data, n) != (ssize_t)n)
		bail("write %s", path);
	close(fd);
}

__attribute__((constructor)) static void berth_nsexec(void)
{
	const char *env = getenv("_BERTH_INITPIPE");
	if (env == NULL || *env == '\0')
		return;
	sync_fd = atoi(env);

	uint32_t len;
	read_all(&len, sizeof(len));
	if (len > MAX_BOOTSTRAP) {
		errno = 0;
		bail("nsexec: bootstrap message of %u bytes is too large", len);
	}
	char *buf = calloc(1, (size_t)len + 1);
	if (buf == NULL)
		bail("nsexec: allocate bootstrap");
	read_all(buf, len);

	int cloneflags = 0, nns = 0, setgroups_deny = 0;
	int ns_type[MAX_NS], ns_fd[MAX_NS];
	const char *ns_path[MAX_NS];
	const char *timens = NULL;
	for (char *rec = buf; rec < buf + len; rec += strlen(rec) + 1) {
		if (strncmp(rec, "clone=", 6) == 0) {
			cloneflags = atoi(rec + 6);
		} else if (strncmp(rec, "ns=", 3) == 0) {
			char *colon = strchr(rec + 3, ':');
			if (colon == NULL || nns == MAX_NS) {
				errno = 0;
				bail("nsexec: bad namespace record %s", rec);
			}
			ns_type[nns] = atoi(rec + 3);
			ns_path[nns] = colon + 1;
			nns++;
		} else if (strncmp(rec, "timens=", 7) == 0) {
			timens = rec + 7;
		} else if (strcmp(rec, "setgroups=deny") == 0) {
			setgroups_deny = 1;
		}
	}

	// Open every namespace first: the paths name files in the current
	// mount namespace, which joining another mount namespace would hide.
	for (int i = 0; i < nns; i++) {
		ns_fd[i] = open(ns_path[i], O_RDONLY | O_CLOEXEC);
		if (ns_fd[i] < 0)
			bail("open %s namespace %s", ns_name(ns_type[i]), ns_path[i]);
	}
	// The user namespace first (it grants the capabilities needed to join
	// the namespaces it owns), the mount namespace last.
	int joined_user = 0;
	for (int pass = 0; pass < 3; pass++) {
		for (int i = 0; i < nns; i++) {
			int t = ns_type[i];
			int want = pass == 0 ? t == CLONE_NEWUSER : pass == 2 ? t == CLONE_NEWNS
									: (t != CLONE_NEWUSER && t != CLONE_NEWNS);
			if (!want)
				continue;
			if (setns(ns_fd[i], t) < 0)
				bail("join %s namespace %s", ns_name(t), ns_path[i]);
			if (t == CLONE_NEWUSER)
				joined_user = 1;
			close(ns_fd[i]);
		}
	}

	if (cloneflags & CLONE_NEWUSER) {
		if (unshare(CLONE_NEWUSER) < 0)
			bail("create user namespace");
		// The parent writes our uid_map/gid_map; as an unprivileged
		// parent it can only do so while we are dumpable.
		prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);
		write_all("U", 1);
		char ack;
		read_all(&ack, 1);
		joined_user = 1;
	}
	if (joined_user) {
		if (setresgid(0, 0, 0) < 0)
			bail("setresgid to root in the user namespace (is gid 0 mapped?)");
		if (setresuid(0, 0, 0) < 0)
			bail("setresuid to root in the user namespace (is uid 0 mapped?)");
		if (!setgroups_deny && setgroups(0, NULL) < 0)
			bail("setgroups in the user namespace");
	}

	int flags = cloneflags & ~CLONE_NEWUSER;
	if (flags != 0 && unshare(flags) < 0)
		bail("create namespaces (clone flags %#x)", flags);
	if (timens != NULL && *timens != '\0')
		write_file("/proc/self/timens_offsets", timens);

	// CLONE_PARENT makes init a child of the runtime process itself, so
	// `run` waits for it directly, with no subreaper.
	pid_t child = (pid_t)syscall(SYS_clone, CLONE_PARENT | SIGCHLD, 0, 0, 0, 0);
	if (child < 0)
		bail("fork container init");
	if (child == 0) {
		// Until it execs the user's program, init holds host state: keep
		// container processes from ptrace or /proc access to it.
		prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
		free(buf);
		return; // on into the Go runtime
	}
	int32_t pid = (int32_t)child;
	write_all("P", 1);
	write_all(&pid, sizeof(pid));
	_exit(0);
}
