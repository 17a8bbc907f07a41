"""The private syslog-ng 3.38 the benchmarks measure as a peer (unpacked by
deploy/dev/install-syslog-ng-private, as tests/integration/test_syslog_ng_sender.py runs it)."""

from __future__ import annotations

import glob
import os
from pathlib import Path

SYSLOG_NG_ROOT = Path(__file__).resolve().parents[1] / ".cache" / "syslog-ng-root"


def syslog_ng_available(modules: tuple[str, ...] = ()) -> tuple[list[str] | None, dict[str, str], str]:
    """(argv prefix, environment, "") of the private syslog-ng, or (None, {}, why not);
    `modules`: plugins the caller's configuration needs (`regexp-parser`, ...)."""
    exe = SYSLOG_NG_ROOT / "usr" / "sbin" / "syslog-ng"
    found = sorted(glob.glob(str(SYSLOG_NG_ROOT / "usr" / "lib" / "syslog-ng" / "[0-9]*")))
    if not exe.exists() or not found:
        return None, {}, f"syslog-ng not unpacked into {SYSLOG_NG_ROOT} (deploy/dev/install-syslog-ng-private)"
    for mod in modules:
        if not Path(found[-1], f"lib{mod}.so").exists():
            return None, {}, f"syslog-ng module {mod} missing in {found[-1]}"
    libs = [str(SYSLOG_NG_ROOT / "usr" / "lib" / "syslog-ng"),
            *glob.glob(str(SYSLOG_NG_ROOT / "usr" / "lib" / "*-linux-gnu")),
            *glob.glob(str(SYSLOG_NG_ROOT / "lib" / "*-linux-gnu"))]
    env = {**os.environ, "LD_LIBRARY_PATH": os.pathsep.join([*libs, os.environ.get("LD_LIBRARY_PATH", "")])}
    return [str(exe), "--no-caps", f"--module-path={found[-1]}"], env, ""
