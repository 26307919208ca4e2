#!/usr/bin/env python3
"""Time commands in alternation and compare them with the last one.

Usage: alternate.py RUNS WARMUP NAME=COMMAND... (the last one is the base)

Each round runs every command once, in an order that rotates from round
to round, so that whatever drifts on the machine during the benchmark
(its load, the page cache, a file system filling its block groups) falls
on all commands alike; run back to back in blocks, as hyperfine runs
them, the last block pays or gains the drift alone. Each command runs
WARMUP times first. A command is spawned directly (no shell), its
output to /dev/null; a failure ends the benchmark with its exit status.

Prints, per command, the mean, standard deviation, median and minimum
of its wall times, and the mean and median over the base's.
"""

import os
import shlex
import statistics
import sys
import time


def run(argv):
    """Runs argv once; returns its wall time in ms."""
    actions = [
        (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
        (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
        (os.POSIX_SPAWN_OPEN, 2, os.devnull, os.O_WRONLY, 0),
    ]
    t0 = time.perf_counter_ns()
    pid = os.posix_spawnp(argv[0], argv, os.environ, file_actions=actions)
    _, status = os.waitpid(pid, 0)
    t = (time.perf_counter_ns() - t0) / 1e6
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        sys.exit(f"alternate: {shlex.join(argv)} exited with {code}")
    return t


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    runs, warmup = int(sys.argv[1]), int(sys.argv[2])
    cmds = []
    for arg in sys.argv[3:]:
        name, sep, cmd = arg.partition("=")
        if not sep or not cmd:
            sys.exit(f"alternate: {arg!r} is not NAME=COMMAND")
        cmds.append((name, shlex.split(cmd)))
    for _, argv in cmds:
        for _ in range(warmup):
            run(argv)
    times = [[] for _ in cmds]
    for r in range(runs):
        for k in range(len(cmds)):
            i = (r + k) % len(cmds)
            times[i].append(run(cmds[i][1]))
    base = cmds[-1][0]
    bmean, bmed = statistics.mean(times[-1]), statistics.median(times[-1])
    print(f"  {'':8} {'mean':>9} {'± sd':>8} {'median':>9} {'min':>8}   ÷ {base}: mean median")
    for (name, _), t in zip(cmds, times):
        mean, med = statistics.mean(t), statistics.median(t)
        sd = statistics.stdev(t) if len(t) > 1 else 0.0
        print(f"  {name:8} {mean:7.1f}ms {sd:6.1f}ms {med:7.1f}ms {min(t):6.1f}ms   {mean / bmean:10.2f}x {med / bmed:6.2f}x")
    for (name, _), t in zip(cmds[:-1], times[:-1]):
        print(f"  {name} is {statistics.mean(t) / bmean:.2f}x {base} (mean), "
              f"{statistics.median(t) / bmed:.2f}x (median)")


if __name__ == "__main__":
    main()
