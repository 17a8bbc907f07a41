"""`streams replay FOLDER`: every file read or listed with its reason, rotations oldest first."""

from __future__ import annotations

import bz2
import gzip
import json
import lzma
import os
import socket

import pytest

from streams.cli import main


def lines(tag: str, n: int = 2) -> bytes:
    return b"".join(b"Nov 24 00:05:%02d mx1 sshd[4007]: %s line %d\n" % (i, tag.encode(), i) for i in range(n))


@pytest.fixture
def var_log(tmp_path):
    """A /var/log as logrotate leaves it, with what a replay must not read."""
    d = tmp_path / "log"
    d.mkdir()
    readable = {
        "auth.log": lines("auth"), "auth.log.1": lines("auth1", 3), "auth.log.2.gz": gzip.compress(lines("auth2")),
        "syslog": lines("syslog"), "syslog.1": lines("syslog1"), "syslog.2.gz": gzip.compress(lines("syslog2", 4)),
        "fail2ban.log.3": lines("f2b3"), "mail.warn": lines("warn"), "mail.err": lines("err"),
        "messages": lines("messages"), "debug": lines("debug"), "kern.log-20261201": lines("kern-dated"),
        "daemon.log.1.bz2": bz2.compress(lines("bz2")), "user.log.2.xz": lzma.compress(lines("xz", 5)),
        "sub/nginx-error.log.1": lines("sub"),
    }
    for name, data in readable.items():
        (d / name).parent.mkdir(exist_ok=True)
        (d / name).write_bytes(data)
    (d / "mail.log.3.zst").write_bytes(b"\x28\xb5\x2f\xfd" + b"\x00" * 20)
    (d / "wtmp").write_bytes(b"\x07\x00\x00\x00" * 100)
    (d / "state.bin").write_bytes(b"binary\x00junk\n")
    (d / "README").write_text("Logs are now in the journal.\n")
    (d / "loop").symlink_to(d / "loop")
    (d / "dangling").symlink_to(d / "gone")
    (d / "sub" / "up").symlink_to(d)
    (d / "current").symlink_to(d / "auth.log")
    os.mkfifo(d / "fifo")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(d / "sock"))
    yield d, readable
    sock.close()


def test_every_file_of_a_folder_is_read_or_listed_with_its_reason(var_log, capsysbinary):
    d, readable = var_log
    out = d.parent / "out"
    rc = main(["replay", "-q", "--no-progress", "--no-geoip", "--year", "2026", "-o", str(out), str(d)])
    summary = json.loads((out / "summary.json").read_text())
    expected_lines = sum(len(data.splitlines()) if not name.endswith((".gz", ".bz2", ".xz"))
                         else len(gzip.decompress(data).splitlines()) if name.endswith(".gz")
                         else len(bz2.decompress(data).splitlines()) if name.endswith(".bz2")
                         else len(lzma.decompress(data).splitlines()) for name, data in readable.items())
    assert summary["lines"] == summary["events"] == expected_lines == 36
    reasons = {os.path.relpath(s["path"], d): s["reason"] for s in summary["skipped_files"]}
    assert set(reasons) == {"mail.log.3.zst", "wtmp", "state.bin", "README", "loop", "dangling", "sub/up",
                            "current", "fifo", "sock"}
    assert "zstd" in reasons["mail.log.3.zst"] and "binary" in reasons["wtmp"] == reasons["state.bin"]
    assert "loop" in reasons["loop"] and "loop" in reasons["sub/up"] and "broken" in reasons["dangling"]
    assert "same file as" in reasons["current"] and "FIFO" in reasons["fifo"] and "socket" in reasons["sock"]
    # the zstd archive holds lines that were not read: unreadable, exit 1
    assert summary["unreadable_files"] == [str(d / "mail.log.3.zst")] and rc == 1
    err = capsysbinary.readouterr().err.decode()
    for path in reasons:   # one log line each
        assert sum(f'{d / path}:' in line for line in err.splitlines()) == 1, path


def test_a_folder_without_unreadable_files_exits_0_and_lists_what_it_left_out(tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "auth.log").write_bytes(lines("a"))
    (logs / "lastlog").write_bytes(b"\x00" * 1000)
    out = tmp_path / "out"
    assert main(["replay", "-q", "--no-progress", "--no-geoip", "-o", str(out), str(logs)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["skipped_files"] == [{"path": str(logs / "lastlog"), "reason": summary["skipped_files"][0]
                                         ["reason"]}] and "binary" in summary["skipped_files"][0]["reason"]
    assert summary["unreadable_files"] == [] and summary["events"] == 2


def test_rotation_families_are_read_oldest_first(tmp_path):
    from streams.logfiles import Skipped, expand_paths
    names = ["auth.log", "auth.log.1", "auth.log.2.gz", "auth.log.10.gz", "syslog-20261201", "syslog-20261130.gz",
             "syslog", "btmp.1", "mail.err", "mail.warn", "mail.warn.1"]
    for n in names:
        (tmp_path / n).write_bytes(gzip.compress(b"x\n") if n.endswith(".gz") else b"x\n")
    skipped: list[Skipped] = []
    got = [os.path.basename(p) for p in expand_paths([str(tmp_path)], skipped)]
    assert got == ["auth.log.10.gz", "auth.log.2.gz", "auth.log.1", "auth.log", "mail.err", "mail.warn.1",
                   "mail.warn", "syslog-20261130.gz", "syslog-20261201", "syslog"]
    assert [os.path.basename(s.path) for s in skipped] == ["btmp.1"]


def test_rotation_key():
    from streams.logfiles import rotation_key
    assert rotation_key("auth.log.2.gz") == ("auth.log", 1, -2)
    assert rotation_key("auth.log-20261201") == ("auth.log", 0, "20261201")
    assert rotation_key("auth.log-2026-12-01.xz") == ("auth.log", 0, "20261201")
    assert rotation_key("mail.warn") == ("mail.warn", 2, 0)


def test_a_file_named_on_its_own_is_read_whatever_it_is(tmp_path):
    from streams.logfiles import expand_paths
    (tmp_path / "wtmp").write_bytes(b"\x07\x00\x00\x00" * 100)
    assert expand_paths([str(tmp_path / "wtmp")]) == [str(tmp_path / "wtmp")]


def test_compressed_rotations_are_read_by_their_content_and_zstd_named_alone_is_unreadable(tmp_path, capsysbinary):
    (tmp_path / "auth.log.1").write_bytes(gzip.compress(lines("gz-without-suffix")))   # compressed, no .gz
    (tmp_path / "auth.log.2.zst").write_bytes(b"\x28\xb5\x2f\xfd" + b"\x01" * 20)
    out = tmp_path / "out"
    rc = main(["replay", "-q", "--no-progress", "--no-geoip", "-o", str(out), str(tmp_path / "auth.log.2.zst"),
               str(tmp_path / "auth.log.1")])
    summary = json.loads((out / "summary.json").read_text())
    assert rc == 1 and summary["unreadable_files"] == [str(tmp_path / "auth.log.2.zst")]
    written = b"".join(f.read_bytes() for f in (out / "elasticsearch").glob("*.ndjson"))
    assert summary["events"] == 2 and b"gz-without-suffix line 1" in written
    err = capsysbinary.readouterr().err
    assert b"zstd" in err and b"Traceback" not in err


def test_the_output_folder_inside_the_replayed_folder_is_not_read(tmp_path):
    # `replay /var/log -o /var/log/out`, twice: the second read the first's outputs as logs
    (tmp_path / "auth.log").write_bytes(lines("a"))
    out = tmp_path / "out"
    for _ in range(2):
        assert main(["replay", "-q", "--no-progress", "--no-geoip", "-o", str(out), str(tmp_path)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["lines"] == 2
    assert summary["skipped_files"] == [{"path": str(out), "reason": "the replay's own output folder"}]
