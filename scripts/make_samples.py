#!/usr/bin/env python3
"""Writes samples/logs/: two days of a small mail + SSH server (mx1.example.org) guarded
by Fail2ban and watched by Wazuh. Deterministic (seeded): run it again, get the same files.

The line shapes are those of the real daemons (OpenSSH, Postfix, Dovecot, OpenDKIM,
spamd, Fail2ban 0.11, Wazuh 4.x alerts.json), as seen in the shared test corpus; the
content is invented. Attackers come from the networks of MaxMind's test databases, so
the GeoIP tests (which use those databases) see countries and coordinates.
"""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "samples" / "logs"
HOST = "mx1"
FQDN = "mx1.example.org"
TZ = UTC
START = datetime(2026, 11, 24, 0, 0, 0, tzinfo=TZ)
rng = random.Random(2026)

ATTACKERS = ([f"81.2.69.{i}" for i in (142, 143, 145, 150, 161, 170, 193, 200)]
             + [f"216.160.83.{i}" for i in (56, 58, 61)]
             + [f"89.160.20.{i}" for i in (112, 115, 120, 130, 140)]
             + [f"175.16.199.{i}" for i in (3, 17, 66, 120, 201)]
             + [f"67.43.156.{i}" for i in (7, 8, 99)]
             + [f"202.196.224.{i}" for i in (5, 77)]
             + ["2.125.160.217", "214.78.120.5", "2001:218::1:2", "2a02:ff00::7"])
USERS_BAD = ["admin", "test", "oracle", "ubuntu", "pi", "postgres", "git", "support", "user", "guest"]
USERS_OK = ["alice", "bob", "carol"]
OFFICE = ["192.0.2.10", "192.0.2.11", "198.51.100.23"]
SENDERS = [("mail-wm1-f48.google.com", "209.85.128.48"), ("mail-ej1-f54.google.com", "209.85.218.54"),
           ("mout.gmx.net", "212.227.15.15"), ("mail.example.net", "198.51.100.25")]

auth: list[tuple[datetime, str]] = []
mail: list[tuple[datetime, str]] = []
f2b: list[tuple[datetime, str]] = []
alerts: list[tuple[datetime, str]] = []
pid = [4000]


def next_pid() -> int:
    pid[0] += rng.randint(1, 40)
    return pid[0]


def bsd(t: datetime) -> str:
    return t.strftime("%b ") + f"{t.day:>2}" + t.strftime(" %H:%M:%S")


def iso(t: datetime) -> str:
    return t.isoformat(timespec="microseconds")


def f2b_ts(t: datetime) -> str:
    return t.strftime("%Y-%m-%d %H:%M:%S,") + f"{t.microsecond // 1000:03d}"


def qid() -> str:
    return "".join(rng.choice("0123456789ABCDEF") for _ in range(10))


def wazuh(t: datetime, rule_id: str, level: int, desc: str, groups: list[str], full_log: str,
          srcip: str | None = None, user: str | None = None) -> None:
    alert = {"timestamp": t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}+0000",
             "rule": {"level": level, "description": desc, "id": rule_id, "firedtimes": rng.randint(1, 40),
                      "mail": level >= 10, "groups": groups},
             "agent": {"id": "000", "name": HOST}, "manager": {"name": HOST},
             "id": f"{int(t.timestamp())}.{rng.randint(100000, 9999999)}",
             "full_log": full_log,
             "predecoder": {"program_name": full_log.split()[4].split("[")[0], "timestamp": full_log[:15],
                            "hostname": HOST},
             "decoder": {"parent": "sshd", "name": "sshd"} if "sshd" in full_log else {"name": "postfix"},
             "location": "/var/log/auth.log" if "sshd" in full_log else "/var/log/mail.log"}
    data = {}
    if srcip:
        data["srcip"] = srcip
    if user:
        data["srcuser"] = user
    if data:
        alert["data"] = data
    alerts.append((t, json.dumps(alert, separators=(",", ":"))))


def ssh_attack(t: datetime, ip: str, tries: int) -> datetime:
    for _ in range(tries):
        p, port = next_pid(), rng.randint(30000, 65000)
        invalid = rng.random() < 0.6
        user = rng.choice(USERS_BAD) if invalid else "root"
        if invalid:
            line = f"{bsd(t)} {HOST} sshd[{p}]: Invalid user {user} from {ip} port {port}"
            auth.append((t, line))
            wazuh(t, "5710", 5, "sshd: Attempt to login using a non-existent user",
                  ["syslog", "sshd", "authentication_failed", "invalid_login"], line, ip, user)
        t += timedelta(seconds=rng.uniform(0.5, 2))
        auth.append((t, f"{bsd(t)} {HOST} sshd[{p}]: pam_unix(sshd:auth): authentication failure; logname= "
                        f"uid=0 euid=0 tty=ssh ruser= rhost={ip}" + ("" if invalid else "  user=root")))
        t += timedelta(seconds=rng.uniform(0.5, 2))
        line = (f"{bsd(t)} {HOST} sshd[{p}]: Failed password for {'invalid user ' if invalid else ''}{user} "
                f"from {ip} port {port} ssh2")
        auth.append((t, line))
        if not invalid:
            wazuh(t, "5760", 5, "sshd: authentication failed.",
                  ["syslog", "sshd", "authentication_failed"], line, ip, user)
        t += timedelta(seconds=rng.uniform(0.2, 1))
        how = "invalid user " + user if invalid else "authenticating user root"
        auth.append((t, f"{bsd(t)} {HOST} sshd[{p}]: Connection closed by {how} {ip} port {port} [preauth]"))
        f2b.append((t + timedelta(milliseconds=rng.randint(5, 400)),
                    f"{f2b_ts(t + timedelta(milliseconds=rng.randint(5, 400)))} fail2ban.filter         [812]: "
                    f"INFO    [sshd] Found {ip} - {t.strftime('%Y-%m-%d %H:%M:%S')}"))
        t += timedelta(seconds=rng.uniform(1, 20))
    return t


def smtp_attack(t: datetime, ip: str, tries: int) -> datetime:
    p = next_pid()
    for _ in range(tries):
        mail.append((t, f"{iso(t)} {HOST} postfix/smtpd[{p}]: connect from unknown[{ip}]"))
        t += timedelta(seconds=rng.uniform(0.5, 3))
        mail.append((t, f"{iso(t)} {HOST} postfix/smtpd[{p}]: warning: unknown[{ip}]: SASL LOGIN "
                        f"authentication failed: UGFzc3dvcmQ6"))
        f2b.append((t, f"{f2b_ts(t + timedelta(milliseconds=50))} fail2ban.filter         [812]: INFO    "
                       f"[postfix-sasl] Found {ip} - {t.strftime('%Y-%m-%d %H:%M:%S')}"))
        t += timedelta(seconds=rng.uniform(0.2, 1))
        mail.append((t, f"{iso(t)} {HOST} postfix/smtpd[{p}]: disconnect from unknown[{ip}] ehlo=1 "
                        f"auth=0/1 rset=1 quit=1 commands=3/4"))
        t += timedelta(seconds=rng.uniform(5, 60))
    return t


def relay_probe(t: datetime, ip: str) -> datetime:
    p = next_pid()
    helo = rng.choice(["User", "WIN-CLJ1B0GQ6JP", "ylmf-pc", "localhost"])
    mail.append((t, f"{iso(t)} {HOST} postfix/smtpd[{p}]: connect from unknown[{ip}]"))
    t += timedelta(seconds=1.5)
    mail.append((t, f"{iso(t)} {HOST} postfix/smtpd[{p}]: NOQUEUE: reject: RCPT from unknown[{ip}]: 554 5.7.1 "
                    f"<spameri@tiscali.it>: Relay access denied; from=<spameri@tiscali.it> "
                    f"to=<spameri@tiscali.it> proto=SMTP helo=<{helo}>"))
    t += timedelta(seconds=0.3)
    mail.append((t, f"{iso(t)} {HOST} postfix/smtpd[{p}]: disconnect from unknown[{ip}] helo=1 mail=1 "
                    f"rcpt=0/1 quit=1 commands=3/4"))
    return t


def dovecot_attack(t: datetime, ip: str, tries: int) -> datetime:
    for _ in range(tries):
        user = rng.choice(USERS_BAD + ["info", "webmaster"])
        sess = "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")
                       for _ in range(16))
        mail.append((t, f"{iso(t)} {HOST} dovecot: auth-worker({next_pid()}): pam({user},{ip},<{sess}>): "
                        f"unknown user"))
        t += timedelta(seconds=rng.uniform(1, 3))
        mail.append((t, f"{iso(t)} {HOST} dovecot: imap-login: Disconnected: Connection closed (auth failed, "
                        f"1 attempts in 2 secs): user=<{user}>, method=PLAIN, rip={ip}, lip=203.0.113.5, TLS, "
                        f"session=<{sess}>"))
        t += timedelta(seconds=rng.uniform(3, 30))
    return t


def inbound_mail(t: datetime) -> datetime:
    host, ip = rng.choice(SENDERS)
    p, q = next_pid(), qid()
    rcpt = rng.choice(USERS_OK)
    size = rng.randint(2000, 90000)
    mid = f"<{rng.randint(10**9, 10**10)}.{rng.randint(1000, 9999)}@{host.split('.', 1)[1]}>"
    score = round(rng.uniform(-3, 4), 1)
    spam = rng.random() < 0.1
    if spam:
        score = round(rng.uniform(6, 20), 1)
    steps = [
        f"postfix/smtpd[{p}]: connect from {host}[{ip}]",
        f"postfix/smtpd[{p}]: Anonymous TLS connection established from {host}[{ip}]: TLSv1.3 with cipher "
        f"TLS_AES_256_GCM_SHA384 (256/256 bits)",
        f"postfix/smtpd[{p}]: {q}: client={host}[{ip}]",
        f"postfix/cleanup[{p + 1}]: {q}: message-id={mid}",
        f"opendkim[611]: {q}: {host} [{ip}] not internal",
        f"opendkim[611]: {q}: not authenticated",
        f"opendkim[611]: {q}: DKIM verification successful",
        f"postfix/qmgr[902]: {q}: from=<news@{host.split('.', 1)[1]}>, size={size}, nrcpt=1 (queue active)",
        f"postfix/smtpd[{p}]: disconnect from {host}[{ip}] ehlo=2 starttls=1 mail=1 rcpt=1 data=1 quit=1 commands=7",
        "spamd[1342]: spamd: connection from localhost [127.0.0.1]:46110 to port 783, fd 5",
        f"spamd[1342]: spamd: processing message {mid} for {rcpt}:1001",
        (f"spamd[1342]: spamd: identified spam ({score}/5.0) for {rcpt}:1001 in 0.8 seconds, {size} bytes."
         if spam else
         f"spamd[1342]: spamd: clean message ({score}/5.0) for {rcpt}:1001 in 0.4 seconds, {size} bytes."),
        (f"spamd[1342]: spamd: result: {'Y' if spam else '.'} {int(score)} - "
         f"{'BAYES_99,HTML_MESSAGE,RDNS_NONE' if spam else 'DKIM_SIGNED,DKIM_VALID,HTML_MESSAGE'} "
         f"scantime=0.4,size={size},user={rcpt},uid=1001,required_score=5.0,rhost=localhost,raddr=127.0.0.1,"
         f"rport=46110,mid={mid},autolearn=no autolearn_force=no"),
        f"postfix/lmtp[{p + 2}]: {q}: to=<{rcpt}@example.org>, relay={FQDN}[private/dovecot-lmtp], "
        f"delay=0.91, delays=0.3/0.01/0.02/0.58, dsn=2.0.0, status=sent (250 2.0.0 <{rcpt}@example.org> "
        f"x1Y2z3 Saved)",
        f"postfix/qmgr[902]: {q}: removed",
    ]
    for s in steps:
        mail.append((t, f"{iso(t)} {HOST} {s}"))
        t += timedelta(milliseconds=rng.randint(20, 400))
    return t


def outbound_mail(t: datetime) -> datetime:
    user = rng.choice(USERS_OK)
    office = rng.choice(OFFICE)
    p, q = next_pid(), qid()
    mid = f"<{rng.randint(10**6, 10**7)}@{FQDN}>"
    size = rng.randint(1500, 40000)
    bounce = rng.random() < 0.1
    steps = [
        f"postfix/submission/smtpd[{p}]: connect from office[{office}]",
        f"postfix/submission/smtpd[{p}]: {q}: client=office[{office}], sasl_method=PLAIN, sasl_username={user}",
        f"postfix/cleanup[{p + 1}]: {q}: message-id={mid}",
        f"opendkim[611]: {q}: DKIM-Signature field added (s=mail, d=example.org)",
        f"postfix/qmgr[902]: {q}: from=<{user}@example.org>, size={size}, nrcpt=1 (queue active)",
        (f"postfix/smtp[{p + 3}]: {q}: to=<nobody@example.net>, relay=mail.example.net[198.51.100.25]:25, "
         f"delay=1.4, delays=0.1/0.01/0.6/0.7, dsn=5.1.1, status=bounced (host mail.example.net"
         f"[198.51.100.25] said: 550 5.1.1 <nobody@example.net>: Recipient address rejected: User unknown "
         f"(in reply to RCPT TO command))" if bounce else
         f"postfix/smtp[{p + 3}]: {q}: to=<friend@example.net>, relay=mail.example.net[198.51.100.25]:25, "
         f"delay=1.2, delays=0.1/0.01/0.5/0.6, dsn=2.0.0, status=sent (250 2.0.0 Ok: queued as 4Xyz1234)"),
        f"postfix/qmgr[902]: {q}: removed",
        f"postfix/submission/smtpd[{p}]: disconnect from office[{office}] ehlo=2 starttls=1 auth=1 mail=1 "
        f"rcpt=1 data=1 quit=1 commands=8",
    ]
    if bounce:
        steps.insert(-2, f"postfix/bounce[{p + 4}]: {q}: sender non-delivery notification: {qid()}")
    for s in steps:
        mail.append((t, f"{iso(t)} {HOST} {s}"))
        t += timedelta(milliseconds=rng.randint(30, 600))
    return t


def user_login(t: datetime) -> datetime:
    user, ip, p = rng.choice(USERS_OK), rng.choice(OFFICE), next_pid()
    port = rng.randint(40000, 60000)
    line = (f"{bsd(t)} {HOST} sshd[{p}]: Accepted publickey for {user} from {ip} port {port} ssh2: ED25519 "
            f"SHA256:{''.join(rng.choice('abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789') for _ in range(43))}")
    auth.append((t, line))
    wazuh(t, "5715", 3, "sshd: authentication success.", ["syslog", "sshd", "authentication_success"], line, ip, user)
    t += timedelta(milliseconds=40)
    auth.append((t, f"{bsd(t)} {HOST} sshd[{p}]: pam_unix(sshd:session): session opened for user {user}(uid=1001) "
                    f"by (uid=0)"))
    auth.append((t, f"{bsd(t)} {HOST} systemd-logind[512]: New session {rng.randint(10, 900)} of user {user}."))
    t2 = t + timedelta(minutes=rng.randint(2, 90))
    auth.append((t2, f"{bsd(t2)} {HOST} sshd[{p}]: Received disconnect from {ip} port {port}:11: disconnected by user"))
    auth.append((t2, f"{bsd(t2)} {HOST} sshd[{p}]: Disconnected from user {user} {ip} port {port}"))
    auth.append((t2, f"{bsd(t2)} {HOST} sshd[{p}]: pam_unix(sshd:session): session closed for user {user}"))
    return t


def cron(t: datetime) -> None:
    p = next_pid()
    auth.append((t, f"{bsd(t)} {HOST} CRON[{p}]: pam_unix(cron:session): session opened for user root(uid=0) by (uid=0)"))
    t += timedelta(seconds=1)
    auth.append((t, f"{bsd(t)} {HOST} CRON[{p}]: pam_unix(cron:session): session closed for user root"))


def fail2ban_startup(t: datetime) -> None:
    lines = ["fail2ban.server         [812]: INFO    --------------------------------------------------",
             "fail2ban.server         [812]: INFO    Starting Fail2ban v1.0.2",
             "fail2ban.observer       [812]: INFO    Observer start...",
             "fail2ban.database       [812]: INFO    Connected to fail2ban persistent database "
             "'/var/lib/fail2ban/fail2ban.sqlite3'",
             "fail2ban.jail           [812]: INFO    Creating new jail 'sshd'",
             "fail2ban.jail           [812]: INFO    Jail 'sshd' uses pyinotify {}",
             "fail2ban.filter         [812]: INFO    Added logfile: '/var/log/auth.log' (pos = 0, hash = )",
             "fail2ban.filter         [812]: INFO      maxRetry: 5",
             "fail2ban.filter         [812]: INFO      findtime: 600",
             "fail2ban.actions        [812]: INFO      banTime: 3600",
             "fail2ban.jail           [812]: INFO    Creating new jail 'postfix-sasl'",
             "fail2ban.jail           [812]: INFO    Creating new jail 'dovecot'",
             "fail2ban.jail           [812]: INFO    Creating new jail 'recidive'",
             "fail2ban.jail           [812]: INFO    Jail 'sshd' started",
             "fail2ban.jail           [812]: INFO    Jail 'postfix-sasl' started",
             "fail2ban.jail           [812]: INFO    Jail 'dovecot' started",
             "fail2ban.jail           [812]: INFO    Jail 'recidive' started"]
    for i, rest in enumerate(lines):
        tt = t + timedelta(milliseconds=7 * i)
        f2b.append((tt, f"{f2b_ts(tt)} {rest}"))


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    fail2ban_startup(START + timedelta(minutes=3))
    t = START + timedelta(minutes=5)
    end = START + timedelta(days=2)
    banned: dict[str, datetime] = {}
    bans_of: dict[str, int] = {}
    while t < end:
        r = rng.random()
        if r < 0.28:
            ip = rng.choice(ATTACKERS)
            tries = rng.randint(2, 7)
            t2 = ssh_attack(t, ip, tries)
            jail = "sshd"
        elif r < 0.40:
            ip = rng.choice(ATTACKERS)
            tries = rng.randint(2, 6)
            t2 = smtp_attack(t, ip, tries)
            jail = "postfix-sasl"
        elif r < 0.48:
            ip = rng.choice(ATTACKERS)
            tries = rng.randint(2, 6)
            t2 = dovecot_attack(t, ip, tries)
            jail = "dovecot"
        elif r < 0.55:
            t = relay_probe(t, rng.choice(ATTACKERS)) + timedelta(minutes=rng.randint(1, 20))
            continue
        elif r < 0.80:
            t = inbound_mail(t) + timedelta(minutes=rng.randint(1, 12))
            continue
        elif r < 0.90:
            t = outbound_mail(t) + timedelta(minutes=rng.randint(1, 20))
            continue
        elif r < 0.95:
            t = user_login(t) + timedelta(minutes=rng.randint(5, 40))
            continue
        else:
            cron(t)
            t += timedelta(minutes=rng.randint(5, 30))
            continue
        if tries >= 5:
            bt = t2 + timedelta(milliseconds=rng.randint(100, 900))
            if ip in banned and banned[ip] > bt:
                f2b.append((bt, f"{f2b_ts(bt)} fail2ban.actions        [812]: NOTICE  [{jail}] {ip} already banned"))
            else:
                f2b.append((bt, f"{f2b_ts(bt)} fail2ban.actions        [812]: NOTICE  [{jail}] Ban {ip}"))
                bans_of[ip] = bans_of.get(ip, 0) + 1
                ut = bt + timedelta(hours=1)
                banned[ip] = ut
                f2b.append((ut, f"{f2b_ts(ut)} fail2ban.actions        [812]: NOTICE  [{jail}] Unban {ip}"))
                if bans_of[ip] == 3:
                    rt = bt + timedelta(seconds=2)
                    f2b.append((rt, f"{f2b_ts(rt)} fail2ban.filter         [812]: INFO    [recidive] Found {ip} - "
                                    f"{bt.strftime('%Y-%m-%d %H:%M:%S')}"))
                    f2b.append((rt, f"{f2b_ts(rt + timedelta(milliseconds=300))} fail2ban.actions        [812]: "
                                    f"NOTICE  [recidive] Ban {ip}"))
            if jail == "sshd":
                line = auth[-1][1]
                wazuh(t2, "5763", 10, "sshd: brute force trying to get access to the system. Authentication failed.",
                      ["syslog", "sshd", "authentication_failures"], line.replace("Connection closed by", "Failed password for"), ip)
        t = t2 + timedelta(minutes=rng.randint(1, 15))
    for name, rows in (("auth.log", auth), ("mail.log", mail), ("fail2ban.log", f2b), ("alerts.json", alerts)):
        rows.sort(key=lambda r: r[0])
        (OUT / name).write_text("".join(line + "\n" for _, line in rows), encoding="utf-8")
        print(f"{name}: {len(rows)} lines")


if __name__ == "__main__":
    main()
