"""`host.name` for the document of a line that names no host.

A syslog header names its host (the parser writes `host.hostname` and `host.name`); a
Fail2ban log file, a Wazuh `alerts.json`, Roundcube's and exim's own files do not. Their
host is where the line came from, as other shippers say it: in `replay` the `--host`
given (`[replay] host`), else the machine streams runs on (Logstash's and Vector's file
inputs take the local hostname); in `run` the sender's address (rsyslog's `fromhost-ip`).
`host.hostname` stays what the line says, absent when it says nothing, and `streams
parse` adds no host: it prints what the line holds. The native batch pipeline fills it in
(`default_host` in native/src/pipeline.rs); this module names the local host.
"""

from __future__ import annotations

import socket


def local_host_name() -> str:
    return socket.gethostname()
