"""How the benchmarks measure a process: peak RSS of the process itself, CPU seconds of a
running one, instructions (perf stat, else valgrind cachegrind), a corpus file written by a
child process, the poller moved off the measured core."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

CORPUS_PY = Path(__file__).resolve().parent / "corpus.py"

# `streams ...` run as `python -c DRIVER ARGS` (what the console script does), reporting its
# peak RSS: VmHWM of the process itself at the end (/proc/self/status: the memory of this
# exec only; ru_maxrss would also carry the high-water mark of the forking parent, which may
# hold the corpus).
DRIVER = ("import sys; from streams.cli import main; rc = main(sys.argv[1:]); "
          "hwm = [x for x in open('/proc/self/status') if x.startswith('VmHWM:')][0].split()[1]; "
          "sys.stderr.write('VmHWM_kib ' + hwm + '\\n'); sys.exit(rc)")


def vmhwm_mib(stderr: str) -> float:
    """The peak RSS DRIVER wrote to stderr, in MiB."""
    return round(int(next(x for x in stderr.splitlines() if x.startswith("VmHWM_kib")).split()[1]) / 1024, 1)


def corpus_file(d: Path, n: int) -> Path:
    """N mixed lines, written by a child process (corpus.py) so that this one never holds them."""
    f = d / f"mixed-{n}.log"
    if not f.exists():
        subprocess.run([sys.executable, str(CORPUS_PY), str(n), str(f)], check=True)
    return f


def pin_elsewhere(core: int) -> set[int] | None:
    """Move this process off `core` (for the poller); the old affinity to restore."""
    old = os.sched_getaffinity(0)
    others = set(range(os.cpu_count() or 1)) - {core}
    if not others:
        return None
    try:
        os.sched_setaffinity(0, others)
    except OSError:
        return None
    return old


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and all its threads so far (/proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def stop(p: subprocess.Popen, timeout: float = 30, pid: int | None = None) -> None:
    """SIGTERM (to `pid` when given: the measured process under a wrapper such as perf,
    which then ends with it), then wait; SIGKILL after `timeout`."""
    if p.poll() is None:
        try:
            os.kill(pid or p.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


# -- instructions -----------------------------------------------------------------------------

def valgrind(out: Path) -> list[str]:
    """The cachegrind wrapper: user-space instructions of every thread, no cache simulation."""
    return ["valgrind", "--tool=cachegrind", "--cache-sim=no", f"--cachegrind-out-file={out}", "--quiet"]


def cachegrind_ir(out: Path) -> int:
    for x in out.read_text().splitlines():
        if x.startswith("summary:"):
            return int(x.split()[1])
    raise RuntimeError(f"no summary in {out}")


def valgrind_version() -> str | None:
    if shutil.which("valgrind") is None:
        return None
    return subprocess.run(["valgrind", "--version"], capture_output=True, text=True).stdout.strip()


PERF_EVENT = "instructions"   # user + kernel (no :u / :k modifier)


def perf(out: Path) -> list[str]:
    """The perf stat wrapper: instructions of the command and its threads and children, CSV in `out`."""
    return ["perf", "stat", "-e", PERF_EVENT, "-x,", "-o", str(out), "--"]


def perf_instructions(out: Path) -> int | None:
    """The count perf stat -x, wrote (None when the event is not supported or not counted)."""
    for x in out.read_text().splitlines():
        f = x.split(",")
        if len(f) > 2 and f[2].startswith(PERF_EVENT):
            return int(f[0]) if f[0].isdigit() else None
    return None


def perf_usable() -> str | None:
    """None when `perf stat -e instructions` counts on this machine, else why not (a VM
    without a virtual PMU says <not supported>)."""
    if shutil.which("perf") is None:
        return "perf not found"
    p = subprocess.run(["perf", "stat", "-e", PERF_EVENT, "-x,", "--", "true"], capture_output=True, text=True)
    for x in p.stderr.splitlines():
        f = x.split(",")
        if len(f) > 2 and f[2].startswith(PERF_EVENT):
            return None if f[0].isdigit() else f"perf stat -e {PERF_EVENT}: {f[0]} on this machine"
    return f"perf stat -e {PERF_EVENT} failed: {p.stderr.strip()[-300:]}"
