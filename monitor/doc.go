// Package monitor runs berth's per-container monitor: one small process
// per container, like podman's conmon but inside berth's own static
// binary, that starts the container through the runtime, keeps its
// stdio, writes docker's json-file log, serves attach clients, reaps the
// container's init and records its exit.
//
// The monitor is C (monitor.c), run from an ELF constructor before the Go
// runtime starts, so it never pays for Go's runtime: importing this
// package links it into the binary, and the constructor does nothing
// unless the process carries one of two markers:
//
//   - the environment variable _BERTH_MONITOR (the number of the socket
//     Start configures it through): the process is a monitor;
//   - argv[0] "/dev/init" followed by "--": the process is a container's
//     init for `berth run --init` (the engine bind-mounts the berth binary
//     read-only at /dev/init and sets the process args to
//     ["/dev/init", "--", cmd, args...]). It runs cmd as its child, passes
//     every catchable signal on to it, reaps all zombies and exits with
//     the child's status (128+N for signal N; 127 if cmd is not found,
//     126 if it cannot be executed).
//
// cmd/berth imports the package for that side effect.
//
// # Life of a monitor
//
// Start execs Options.Exe with the marker; the process forks, the parent
// exits at once and the child calls setsid, so the monitor is not a child
// of the caller and survives it. It sets PR_SET_CHILD_SUBREAPER, puts its
// stdio on /dev/null, moves into RunDir and listens on RunDir/attach. With
// Options.Attach it waits for the first attach client before running the
// runtime (StartAttached connects as soon as the socket listens). It runs
// Options.Runtime (with RunDir as its working directory) with pipes as
// stdio, or with Terminal receives the pty master on RunDir/console.sock,
// and reports the container's pid (the runtime's PidFile) or the
// runtime's error (the last "msg" of RunDir/runtime.log, which the
// runtime must write in JSON: --log RUNDIR/runtime.log --log-format json).
//
// While the container runs the monitor writes its output to LogPath in
// docker's json-file format, one {"log","stream","time"} object per line,
// lines longer than 16 KiB split, rotated at LogMaxSize keeping
// LogMaxFiles files; forwards output to attach clients and their input to
// the container's stdin; and runs HealthCmd every HealthInterval. A slow
// client never blocks it: one more than 1 MiB behind is disconnected.
// When the container's init exits it drains the output (for at most a
// second: a grandchild may hold the pipes), writes RunDir/exit
// atomically ("CODE FINISHED_UNIX_NANOS\n", CODE in shell form), sends
// clients the exit frame, starts ExitCommand (unless a client that
// claimed the cleanup got the exit frame) and exits.
//
// If the init the pid file names is not the monitor's child (the runtime
// reaped it itself), its status is unknown and the exit file says 255.
//
// # Launch: the caller as the runtime
//
// With Launch the monitor runs no runtime process: the caller creates the
// container with the runtime's Go code in its own process
// (runtime/container.Runtime.Launch, which takes the Launcher as its
// Starter) and asks the monitor for one thing, to fork and exec the
// container's stage 0 (StartStage0: the sealed binary, the environment and
// the files for fds 3... passed over the configuration socket with
// SCM_RIGHTS; stdio are the monitor's pipes). Stage 0's init (CLONE_PARENT)
// is then the monitor's child. Until the caller names it (Running), the
// monitor reaps only stage 0, so the caller can still kill init by pid;
// from then on it is as after Start. If the caller closes the socket
// first (Abort, or its death), the monitor kills its children and exits
// without an exit file or exit command. This saves the runtime process's
// start (for berth, a Go runtime) on every container start.
//
// The monitor ignores SIGTERM, SIGINT, SIGHUP and SIGPIPE: it lives as
// long as its container, which berth stops through the runtime's kill.
//
// # Attach protocol
//
// RunDir/attach is a stream socket; frames both ways are 1 byte type,
// 4 bytes big-endian payload length, payload. Client to monitor: 0 stdin
// data, 1 close stdin (honoured with StdinOnce, like docker; with a
// terminal it sends ^D), 2 resize (uint16 rows, uint16 cols, big-endian),
// 3 claim (the client runs the cleanup: if a claiming client receives the
// exit frame, the monitor does not start ExitCommand).
// Monitor to client: 1 stdout, 2 stderr, 3 exit (int32 code, big-endian,
// the last frame). A client more than 1 MiB behind is dropped without an
// exit frame; it can read the exit file instead. With StdinOnce, the disconnection of a client that
// sent stdin also closes the container's stdin.
//
// # Go API
//
// Start (or StartAttached, which also returns the first attach
// connection) runs a monitor and returns the monitor's and the init's
// pids once the container runs; Attach connects to a running monitor;
// Conn streams output (Stream), takes input (Write, CloseStdin) and
// resizes the terminal; ReadExit reads the exit file.
package monitor
