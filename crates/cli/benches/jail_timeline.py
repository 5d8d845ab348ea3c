#!/usr/bin/env python3
"""Where the wall-clock time of `airlock run` (or bwrap) goes: a system-wide
`perf trace` of every syscall with the exec/exit tracepoints (system-wide,
so no per-task tracing is inherited at each fork) around N runs of each
case, and per run the milestones in ms from the exec of the launcher.
On demand only, as root, under the bench lock:

  flock /tmp/bench.lock [chrt -f 10] python3 crates/cli/benches/jail_timeline.py \\
      18 A/airlock B/airlock bwrap

Columns: netns (the first unshare/clone with CLONE_NEWNET), exec (the
command's exec), cmd exit (its exit_group), launcher exit (its exit_group),
gone (its main thread's sched_process_exit), reaped (the wait4 of this
script returns it: every thread gone, the parent told); only those syscalls are traced. With
DETAIL=all every syscall is (slower runs); with DETAIL set, for the last run of each case
it prints every event from the command's exit to the launcher's.
CMD (default `true`) is the command.
"""
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from jail_ab import argv  # noqa: E402

LINE = re.compile(r"^\s*([0-9.]+)\s+(?:\(\s*([0-9.]*)(?: ms)?\s*\):\s+)?(\S*?)/(\d+)\s+(.*)$")
CLONE_NEWNET = 0x40000000


def newnet(e):
    if not (e.startswith("unshare(") or e.startswith("clone(") or e.startswith("clone3(")):
        return False
    if "NEWNET" in e:
        return True
    return any(int(h, 16) & CLONE_NEWNET for h in re.findall(r"0x([0-9a-f]+)", e.split(")")[0]))


def parse(path):
    ev = []
    for raw in open(path, errors="replace"):
        m = LINE.match(raw)
        if m:
            t = float(m.group(1))
            if m.group(2) and "wait4(" in m.group(5):
                # A wait's moment is its return.
                t += float(m.group(2))
            ev.append((t, m.group(3), int(m.group(4)), m.group(5)))
    return ev


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    rounds, cases = int(sys.argv[1]), sys.argv[2:]
    cmd = os.environ.get("CMD", "true").split()
    workdir = tempfile.mkdtemp(prefix="airlock-tl-")
    os.chmod(workdir, 0o755)
    if os.geteuid() == 0:
        os.chown(workdir, 65534, 65534)
    out = tempfile.mktemp(prefix="airlock-tl-", suffix=".txt")
    events = "sched:sched_process_exec,sched:sched_process_exit"
    # Every syscall only for the detail: tracing them all slows each run.
    sel = ["--syscalls"] if os.environ.get("DETAIL") == "all" else [
        "-e", "clone,clone3,unshare,exit_group,wait4"]
    perf = subprocess.Popen(
        ["perf", "trace", "-a", "-o", out, "--no-inherit"] + sel + ["-e", events],
        stderr=subprocess.DEVNULL)
    time.sleep(1.5)
    order = []
    null = open(os.devnull, "wb")
    for r in range(rounds):
        for case in (cases if r % 2 == 0 else cases[::-1]):
            p = subprocess.Popen(argv(case, workdir, cmd), stdout=null)
            order.append((case, p.pid))
            p.wait()
            time.sleep(0.05)
    time.sleep(0.5)
    perf.send_signal(signal.SIGINT)
    perf.wait()
    ev = parse(out)
    cmd_name = os.path.basename(cmd[0])[:15]
    per_case = {c: [] for c in cases}
    me = os.getpid()
    for case, pid in order:
        t0 = next((t for t, _, p, e in ev if p == pid and "sched_process_exec" in e), None)
        if t0 is None:
            continue
        gone = next((t for t, _, p, e in ev if t >= t0 and p == pid and "sched_process_exit" in e), None)
        reaped = next((t for t, _, p, e in ev if t >= t0 and p == me and "wait4(" in e and re.search(rf"= {pid}\b", e)), None)
        if gone is None:
            continue
        win = [x for x in ev if t0 <= x[0] <= (reaped or gone)]
        netns = next((t for t, _, _, e in win if newnet(e)), None)
        execd = next((t for t, _, _, e in win if "sched_process_exec" in e and f'/{cmd_name}"' in e), None)
        cpid = next((p for t, _, p, e in win if "sched_process_exec" in e and t == execd), None)
        cexit = next((t for t, _, p, e in win if p == cpid and e.startswith("exit_group")), None)
        lexit = next((t for t, _, p, e in win if p == pid and e.startswith("exit_group")), None)
        row = [netns, execd, cexit, lexit, gone, reaped]
        per_case[case].append([None if x is None else x - t0 for x in row])
        if os.environ.get("DETAIL") and cexit is not None:
            per_case.setdefault("_detail_" + case, []).clear()
            per_case["_detail_" + case].extend(
                f"{t - t0:8.3f} {c}/{p} {e[:110]}" for t, c, p, e in win if t >= cexit)
    print(f"{'case':<28} {'netns':>7} {'exec':>7} {'cmd exit':>9} {'l. exit':>8} {'gone':>7} {'reaped':>7}  (ms, medians of n)")
    for c in cases:
        rows = per_case[c]
        cols = []
        for i in range(6):
            v = [r[i] for r in rows if r[i] is not None]
            cols.append(f"{statistics.median(v):7.2f}" if v else "      -")
        print(f"{c[-28:]:<28} {cols[0]} {cols[1]} {cols[2]:>9} {cols[3]:>8} {cols[4]} {cols[5]}  n={len(rows)}")
    for c in cases:
        if "_detail_" + c in per_case:
            print(f"\n--- {c}: from the command's exit_group")
            print("\n".join(per_case["_detail_" + c]))
    if os.environ.get("KEEP"):
        print(f"trace kept in {out}")
    else:
        os.unlink(out)


if __name__ == "__main__":
    main()
