#!/usr/bin/env python3
"""Interleaved A/B of jail start-up: airlock binaries against each other and
bubblewrap. On demand only (never in CI); run it under the bench lock:

  flock /tmp/bench.lock [chrt -f 10] python3 crates/cli/benches/jail_ab.py \\
      300 OLD/airlock NEW/airlock NEW/airlock:nonet bwrap

Each round runs every case once, in alternating order. Wall time is until
`airlock run` (or bwrap) exits, as in jail_startup; CPU is that of every
process the run started, the jail's detached ones included: this process is
a subreaper and reaps them all before the next case. A case `BIN:nonet`
runs without `--allow-net`. CMD (default `true`) is the command.
"""
import ctypes
import os
import resource
import statistics
import sys
import tempfile
import time

PR_SET_CHILD_SUBREAPER = 36
NOBODY = 65534
WARMUP = 3


def argv(case, workdir, cmd):
    if case == "bwrap":
        # The binds airlock makes too, as in jail_startup.rs.
        return ["bwrap", "--unshare-all", "--unshare-net", "--die-with-parent",
                "--new-session", "--ro-bind", "/", "/", "--dev", "/dev",
                "--proc", "/proc", "--tmpfs", "/tmp", "--bind", workdir,
                workdir, "--chdir", workdir] + cmd
    binary, _, mode = case.partition(":")
    net = [] if mode == "nonet" else ["--allow-net", "example.com"]
    return [binary, "run", "--workdir", workdir] + net + ["--"] + cmd


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    rounds, cases = int(sys.argv[1]), sys.argv[2:]
    cmd = os.environ.get("CMD", "true").split()
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        sys.exit("cannot become a subreaper")
    workdir = tempfile.mkdtemp(prefix="airlock-ab-")
    os.chmod(workdir, 0o755)
    if os.geteuid() == 0:
        # A root launcher runs the jail as nobody, who must enter it.
        os.chown(workdir, NOBODY, NOBODY)
    devnull = os.open(os.devnull, os.O_WRONLY)
    wall = {c: [] for c in cases}
    cpu = {c: [] for c in cases}
    for r in range(rounds + WARMUP):
        for case in cases if r % 2 == 0 else cases[::-1]:
            a = argv(case, workdir, cmd)
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            t0 = time.perf_counter()
            pid = os.posix_spawnp(a[0], a, os.environ,
                                  file_actions=[(os.POSIX_SPAWN_DUP2, devnull, 1)])
            _, status = os.waitpid(pid, 0)
            t1 = time.perf_counter()
            if os.waitstatus_to_exitcode(status) != 0:
                sys.exit(f"{case}: exit status {status:#x}")
            while True:
                try:
                    os.waitpid(-1, 0)
                except ChildProcessError:
                    break
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            if r >= WARMUP:
                wall[case].append((t1 - t0) * 1e3)
                cpu[case].append((after.ru_utime - before.ru_utime
                                  + after.ru_stime - before.ru_stime) * 1e3)
    os.rmdir(workdir)
    print(f"{rounds} rounds, `{' '.join(cmd)}`, load {os.getloadavg()[0]:.2f}")
    for c in cases:
        print(f"{c:40s} wall median {statistics.median(wall[c]):6.2f} ms"
              f"  p25 {statistics.quantiles(wall[c], n=4)[0]:6.2f}"
              f"  CPU median {statistics.median(cpu[c]):6.2f} ms")


if __name__ == "__main__":
    main()
