"""The Graphite/Carbon sink: plaintext lines over TCP (default) or UDP from a sender thread.

Why not PyPI `graphyte` (1.7.1, read in full): its background mode batches by time only
(`interval`), opens a new TCP connection per batch, and when carbon is down it catches the
error, logs the whole message at ERROR and drops the batch: no retry, no backoff, no counter.
A full queue drops the newest point with one ERROR line per point; `stop()` raises
`queue.Full` when the queue is full; UDP sends up to `batch_size` lines in one datagram with
no size bound. Only the line format would be reused, and `streams.protocols.graphite` has
it already. So: this small writer (one sender thread, blocking sockets).

Model (the same from a synchronous loop, `streams replay`, and from the asyncio pipeline):

- `send(points)` formats the lines and appends them to a bounded in-memory buffer, then
  returns: it never waits for the network (microseconds; safe to call from the event
  loop). When `buffer_max_points` are waiting (queued or being retried) the OLDEST waiting
  points are dropped and counted (`dropped`), with a warning at most every 10 s: for metrics
  the newest points matter most, and the pipeline must never stall on its metrics sink. The
  buffer is memory, not disk: a crash of the process loses what it holds.
- The sender thread writes a batch when `batch_size` points are waiting, when the oldest
  waiting point is `flush_seconds` old, or at `flush()`/`close()`.
- TCP: one persistent connection (SO_KEEPALIVE). Carbon acknowledges nothing, and a write
  into a connection carbon has closed succeeds once; worse, carbon-cache 1.1.7 stopped
  gracefully loses points it had already read but not yet written to whisper (its writer
  drains the cache once a second): 1 to 4 of 60 points sent 10/s around a restart, measured
  with the real server. So each written batch stays "unconfirmed" until the connection is
  seen alive (a non-blocking read: no EOF, no reset) `confirm_seconds` (2 s) after the write;
  the same read runs before every write, so a closed connection is found before writing into
  it. On a dead connection (EOF, reset, write error or timeout) every unconfirmed batch is
  RESENT on a new one, reconnecting with capped exponential backoff and jitter: none lost in
  the same measurement. At-least-once: carbon keeps one value per metric and timestamp, so a
  point received twice stores the same value, harmless. The unconfirmed window is bounded
  too (beyond `buffer_max_points` its oldest count as sent). `close()` half-closes the
  connection and waits for carbon's EOF: carbon closes only after reading every line before
  our FIN, so all of them were read.
- UDP: datagrams of whole lines up to `udp_max_bytes` (1400: one Ethernet frame), counted
  `sent` when the kernel took them; nothing is known of their delivery. The socket is
  connected, so a carbon that is down shows up as ECONNREFUSED on the next datagram
  (retried like TCP); the datagram that drew the ICMP error is lost unseen.

`stats` (a dict, shareable with telemetry): `received` (points given to send()), `sent`
(confirmed, see above), `retried` (points written again after a failure), `dropped` (buffer
overflow, or send() after close()), `failed` (still undelivered when close() gave up),
`buffered` (held now: waiting, in flight or unconfirmed), `reconnects`, `errors` (connect and
write failures), `batches`. Always `received == sent + dropped + failed + buffered`.

Graphite 1.1 tags: with `tags` on, paths such as `streams.events;dataset=x;host=y` (the
metrics module renders them from `CarbonSettings.template`) go out as they are; with tags off
a tagged path is flattened by `graphite.plain_path` (`streams.events.x.y`).
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass

from ..enrich.metrics import DEFAULT_TEMPLATE
from ..protocols.graphite import format_line, plain_path
from .backoff import backoff
from .stall import Progress

log = logging.getLogger("streams.sink.carbon")

TAGGED_TEMPLATE = "streams.<name>;dataset=<dataset>;host=<host>"
_WARN_EVERY = 10.0
STAT_KEYS = ("received", "sent", "retried", "dropped", "failed", "buffered", "reconnects", "errors", "batches")


@dataclass(frozen=True)
class CarbonSettings:
    host: str = "127.0.0.1"
    port: int = 2003
    protocol: str = "tcp"              # "tcp" | "udp"
    batch_size: int = 500              # points per write (TCP) / per batch of datagrams (UDP)
    flush_seconds: float = 1.0         # the longest a point waits for its batch to fill
    buffer_max_points: int = 100_000   # bounded: the oldest are dropped (and counted) beyond it
    backoff_initial: float = 0.1
    backoff_max: float = 30.0
    connect_timeout: float = 5.0
    send_timeout: float = 10.0         # one batch's write; a carbon that stops reading is dead
    confirm_seconds: float = 2.0       # a written batch is sent once the connection outlived it by this
    udp_max_bytes: int = 1400
    close_timeout: float | None = 10.0  # the default of close(); None: until delivered
    stall_timeout: float | None = None  # close(None) gives up after this long without a point delivered
    tags: bool = False                 # Graphite 1.1 tags (`name;tag=value`) in paths

    def __post_init__(self) -> None:
        if self.protocol not in ("tcp", "udp"):
            raise ValueError(f"carbon protocol must be 'tcp' or 'udp', not {self.protocol!r}")
        if self.batch_size < 1 or self.buffer_max_points < 1:
            raise ValueError("carbon batch_size and buffer_max_points must be at least 1")
        if self.backoff_initial <= 0 or self.backoff_max < self.backoff_initial:
            raise ValueError("carbon backoff: 0 < backoff_initial <= backoff_max")

    @property
    def template(self) -> str:
        """The path template for the metrics module (`DerivedMetrics(template=...)`)."""
        return TAGGED_TEMPLATE if self.tags else DEFAULT_TEMPLATE


class _Down(Exception):
    """The connection failed; the batches written on it may be lost."""


class _Tcp:
    """One persistent connection; all calls from the sender thread."""

    def __init__(self, s: CarbonSettings) -> None:
        self.s = s
        self.sock: socket.socket | None = None

    def connect(self, timeout: float) -> None:
        sock = socket.create_connection((self.s.host, self.s.port), timeout=timeout)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        for opt, val in (("TCP_KEEPIDLE", 30), ("TCP_KEEPINTVL", 10), ("TCP_KEEPCNT", 3)):
            if hasattr(socket, opt):
                sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, opt), val)
        self.sock = sock

    def alive(self) -> bool:
        """Non-blocking: False when carbon closed (EOF) or reset the connection."""
        sock = self.sock
        if sock is None:
            return False
        try:
            sock.settimeout(0.0)             # (with a timeout, recv would poll first)
            while True:
                data = sock.recv(4096)       # carbon never writes: EOF or nothing
                if not data:
                    return False
        except (BlockingIOError, InterruptedError):
            return True
        except OSError:
            return False

    def write(self, data: bytes, timeout: float) -> None:
        assert self.sock is not None
        self.sock.settimeout(max(timeout, 0.001))
        self.sock.sendall(data)

    def finish(self, timeout: float) -> bool | None:
        """Half-close and wait for carbon's EOF (it closes after reading everything before our
        FIN): True = all read, False = reset/error, None = no answer within `timeout`."""
        sock = self.sock
        assert sock is not None
        try:
            sock.shutdown(socket.SHUT_WR)
            deadline = time.monotonic() + timeout
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                sock.settimeout(left)
                if not sock.recv(4096):
                    return True
        except TimeoutError:
            return None
        except OSError:
            return False

    def close(self) -> None:
        if self.sock is not None:
            try:
                self.sock.close()
            finally:
                self.sock = None


class _Udp:
    def __init__(self, s: CarbonSettings) -> None:
        self.s = s
        self.sock: socket.socket | None = None

    def connect(self) -> None:
        addr = socket.getaddrinfo(self.s.host, self.s.port, type=socket.SOCK_DGRAM)[0]
        sock = socket.socket(addr[0], socket.SOCK_DGRAM)
        sock.connect(addr[4])        # connected: ICMP port-unreachable comes back as ECONNREFUSED
        self.sock = sock

    def datagrams(self, lines: list[bytes]) -> Iterator[tuple[bytes, int]]:
        """Whole lines, up to `udp_max_bytes` a datagram (a longer line goes alone)."""
        limit, chunk, size = self.s.udp_max_bytes, [], 0
        for line in lines:
            if chunk and size + len(line) > limit:
                yield b"".join(chunk), len(chunk)
                chunk, size = [], 0
            chunk.append(line)
            size += len(line)
        if chunk:
            yield b"".join(chunk), len(chunk)

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None


class CarbonSink:
    """`send(points)` from any thread (or the event loop), `flush()`, `close(timeout)`."""

    def __init__(self, settings: CarbonSettings, counters: dict[str, int] | None = None) -> None:
        self.settings = s = settings
        self.stats = counters if counters is not None else {}
        for k in STAT_KEYS:
            self.stats.setdefault(k, 0)
        self._cond = threading.Condition()
        self._queue: deque[bytes] = deque()
        self._oldest_at = 0.0           # monotonic time the oldest waiting point arrived
        self._held = 0                  # points taken from the queue, not yet written (or to rewrite)
        self._window = 0                # points written, unconfirmed (TCP)
        self._flush = False
        self._closing = False
        self._deadline: float | None = None
        self._done = threading.Event()
        self._ok = True
        self._abort = False             # set by abort() (a signal handler): close() stops waiting
        self.stalled = False            # close() gave up: nothing delivered for stall_timeout
        self._drops_unlogged = 0
        self._drop_warned_at = -_WARN_EVERY
        self._down_since: float | None = None
        self._connected_once = False
        self._attempt = 0
        # to write: [data, points, written before]; TCP, written: (written_at, data, points)
        self._pending: deque[list] = deque()
        self._unconfirmed: deque[tuple[float, bytes, int]] = deque()
        self._tcp = _Tcp(s) if s.protocol == "tcp" else None
        self._udp = _Udp(s) if s.protocol == "udp" else None
        self._thread = threading.Thread(target=self._run, name=f"carbon-sender-{s.host}:{s.port}", daemon=True)
        self._thread.start()

    # -- the caller's side ------------------------------------------------------------------

    def write(self, points: list[tuple[str, float, int]]) -> int:
        """The pipelines' metrics-writer side (`MetricsWriter`): `send`, returning the count."""
        self.send(points)
        return len(points)

    def send(self, points: list[tuple[str, float, int]]) -> None:
        """Queue points `(path, value, timestamp)`; never waits for the network."""
        if not points:
            return
        fmt = format_line
        if self.settings.tags:
            lines = [fmt(p, v, t) for p, v, t in points]
        else:
            lines = [fmt(plain_path(p) if ";" in p else p, v, t) for p, v, t in points]
        n = len(lines)
        with self._cond:
            st = self.stats
            st["received"] += n
            if self._closing:
                st["dropped"] += n
                self._note_drops(n, "the sink is closed")
                return
            q = self._queue
            was_empty = not q
            over = min(len(q) + n, len(q) + self._held + n - self.settings.buffer_max_points)
            if over > 0:                     # the oldest waiting points go first
                st["dropped"] += over
                self._note_drops(over, "buffer full")
                k = min(over, len(q))
                for _ in range(k):
                    q.popleft()
                if over > k:
                    lines = lines[over - k:]
            q.extend(lines)
            self._update_buffered()
            if was_empty:
                self._oldest_at = time.monotonic()
            if was_empty or len(q) >= self.settings.batch_size:
                self._cond.notify()

    def flush(self, timeout: float = 0.0) -> bool:
        """Wake the sender to write everything waiting now; with `timeout`, wait up to that
        long until nothing is buffered (sent and confirmed). True when nothing is."""
        with self._cond:
            self._flush = True
            self._cond.notify()
            if timeout > 0:
                self._cond.wait_for(lambda: self.stats["buffered"] == 0 or self._done.is_set(), timeout)
            return self.stats["buffered"] == 0

    def close(self, timeout: float | None = -1.0) -> bool:
        """Deliver what is buffered, waiting up to `timeout` seconds (negative, the default: the
        settings' `close_timeout`; None: until delivered); what is left then is counted `failed` and
        logged. True when everything was delivered. Blocking: from asyncio, run it in a thread."""
        if timeout is not None and timeout < 0:
            timeout = self.settings.close_timeout
        with self._cond:
            if not self._closing:
                self._closing = True
                self._deadline = None if timeout is None else time.monotonic() + timeout
            self._cond.notify_all()
        slack = 2 * self.settings.connect_timeout + 1
        if timeout is None:
            self._wait_progress()
            self._done.wait(slack + self.settings.send_timeout)
        else:
            self._done.wait(timeout + slack)
        self._thread.join(1.0)
        return self._ok and self._done.is_set()

    def problem(self) -> str | None:
        """Why /health is not ok because of this sink, if it is."""
        since = self._down_since
        if since is None:
            return None
        return (f"carbon {self.settings.host}:{self.settings.port} unreachable for {time.monotonic() - since:.0f}s "
                f"({self.stats['buffered']} points buffered, {self.stats['dropped']} dropped)")

    def abort(self) -> None:
        """Stop waiting in close() (a signal): what is undelivered is counted failed. Safe
        from a signal handler: it sets a flag, close() looks at it."""
        self._abort = True

    def _wait_progress(self) -> None:
        """close(None): wait while points get delivered at least every `stall_timeout`, until
        done or `abort()`; then the sender gets a deadline of now."""
        progress = Progress(lambda: self.stats["sent"], self.settings.stall_timeout, time.monotonic())
        while not self._done.wait(0.1):
            now = time.monotonic()
            if self._abort or progress.stalled(now):
                self.stalled = not self._abort
                with self._cond:
                    self._deadline = now
                    self._cond.notify_all()
                return

    @property
    def buffered(self) -> int:
        """Points held: waiting, being retried, or written but not yet confirmed."""
        return self.stats["buffered"]

    @property
    def unwritten(self) -> int:
        """Points not handed to the kernel yet (waiting or to be written again)."""
        with self._cond:
            return len(self._queue) + self._held

    # -- bookkeeping (under the lock) -------------------------------------------------------

    def _update_buffered(self) -> None:
        self.stats["buffered"] = len(self._queue) + self._held + self._window
        if not self.stats["buffered"]:
            self._cond.notify_all()        # flush(timeout) waiters

    def _note_drops(self, n: int, why: str) -> None:
        self._drops_unlogged += n
        now = time.monotonic()
        if now - self._drop_warned_at >= _WARN_EVERY:
            log.warning("carbon %s:%d: %s, %d points dropped (%d in all)", self.settings.host,
                        self.settings.port, why, self._drops_unlogged, self.stats["dropped"])
            self._drops_unlogged = 0
            self._drop_warned_at = now

    def _settle(self, sent: int, written: bool = True) -> None:
        """`sent` points are delivered: out of the unconfirmed window (TCP) or of held (UDP)."""
        with self._cond:
            self.stats["sent"] += sent
            if written:
                self._window -= sent
            else:
                self._held -= sent
            self._update_buffered()

    def _expired(self) -> bool:
        return self._deadline is not None and time.monotonic() >= self._deadline

    def _left(self, cap: float) -> float:
        if self._deadline is None:
            return cap
        return max(0.0, min(cap, self._deadline - time.monotonic()))

    # -- the sender thread ------------------------------------------------------------------

    def _next_batch(self) -> list[bytes] | None:
        """Waits for a batch to write; [] when only confirming or resending is due; None when
        the sink is closing and nothing is waiting (or the deadline passed)."""
        s = self.settings
        with self._cond:
            while True:
                q = self._queue
                now = time.monotonic()
                if self._closing and (not q or self._expired()):
                    return None
                if q and (len(q) >= s.batch_size or self._flush or self._closing
                          or now - self._oldest_at >= s.flush_seconds):
                    n = min(s.batch_size, len(q))
                    batch = [q.popleft() for _ in range(n)]
                    self._held += n
                    if q:
                        self._oldest_at = now   # the rest: a full flush_seconds from here at most
                    else:
                        self._flush = False
                    return batch
                if not q:
                    self._flush = False
                if self._pending:
                    return []
                wait = s.flush_seconds - (now - self._oldest_at) if q else None
                if self._unconfirmed:
                    due = self._unconfirmed[0][0] + s.confirm_seconds - now
                    if due <= 0:
                        return []
                    wait = due if wait is None else min(wait, due)
                self._cond.wait(wait)

    def _run(self) -> None:
        try:
            while True:
                batch = self._next_batch()
                if batch is None:
                    break
                try:
                    self._deliver(batch)
                except Exception:            # a bug must not end delivery silently
                    log.exception("carbon sender: unexpected error")
                    self._count("errors")
                    self._pause()
            if self._tcp is not None:
                self._finish_tcp()
        except Exception:
            log.exception("carbon sender: unexpected error while closing")
        finally:
            self._shutdown()

    def _count(self, key: str, n: int = 1) -> None:
        with self._cond:
            self.stats[key] += n

    def _deliver(self, batch: list[bytes]) -> None:
        if batch:
            grams = self._udp.datagrams(batch) if self._udp is not None else [(b"".join(batch), len(batch))]
            self._pending.extend([data, n, False] for data, n in grams)
        while not self._expired():
            try:
                if self._udp is not None:
                    if not self._pending:
                        return
                    self._write_udp()
                else:
                    if not (self._pending or self._unconfirmed):
                        return
                    self._ensure_connected()
                    self._confirm()
                    if not self._pending:
                        return
                    self._write_tcp()
                self._attempt = 0
            except (OSError, _Down) as e:
                self._failed(e)
                if not self._pause():
                    return

    def _write_tcp(self) -> None:
        tcp = self._tcp
        assert tcp is not None
        item = self._pending[0]
        data, n, again = item
        item[2] = True                      # from now on, writing it again is a retry
        if again:
            self._count("retried", n)
        tcp.write(data, self._left(self.settings.send_timeout))
        self._pending.popleft()
        self._unconfirmed.append((time.monotonic(), data, n))
        with self._cond:
            self.stats["batches"] += 1
            self._held -= n
            self._window += n
        # the resend window is bounded too: beyond buffer_max_points the oldest count as sent
        early = 0
        while self._window - early > self.settings.buffer_max_points and len(self._unconfirmed) > 1:
            early += self._unconfirmed.popleft()[2]
        if early:
            self._settle(early)

    def _write_udp(self) -> None:
        udp = self._udp
        assert udp is not None
        if udp.sock is None:
            udp.connect()
        item = self._pending[0]
        data, n, again = item
        item[2] = True
        if again:
            self._count("retried", n)
        udp.sock.send(data)
        self._pending.popleft()
        with self._cond:
            self.stats["batches"] += 1
        self._settle(n, written=False)
        self._back_up()

    def _ensure_connected(self) -> None:
        tcp = self._tcp
        assert tcp is not None
        if tcp.sock is not None:
            return
        tcp.connect(max(0.001, self._left(self.settings.connect_timeout)))
        with self._cond:
            if self._connected_once:
                self.stats["reconnects"] += 1
            self._connected_once = True
        self._back_up()

    def _back_up(self) -> None:
        if self._down_since is not None:
            log.info("carbon %s:%d (%s) is back after %.1f s; %d points to resend", self.settings.host,
                     self.settings.port, self.settings.protocol, time.monotonic() - self._down_since,
                     sum(item[1] for item in self._pending))
            self._down_since = None

    def _confirm(self) -> None:
        """Before each write and when due: is the connection alive? Then what it outlived
        by `confirm_seconds` is sent."""
        tcp = self._tcp
        assert tcp is not None
        if not tcp.alive():
            raise _Down("carbon closed the connection")
        limit = time.monotonic() - self.settings.confirm_seconds
        n = 0
        u = self._unconfirmed
        while u and u[0][0] <= limit:
            n += u.popleft()[2]
        if n:
            self._settle(n)

    def _failed(self, e: BaseException) -> None:
        """A connection (or datagram) failed: what was written on it is not known to be
        delivered, so it goes back in front of the pending batches."""
        transport = self._tcp if self._tcp is not None else self._udp
        assert transport is not None
        had = transport.sock is not None
        if self._tcp is not None:
            self._tcp.close()
        back = 0
        for _, data, n in reversed(self._unconfirmed):
            self._pending.appendleft([data, n, True])
            back += n
        self._unconfirmed.clear()
        with self._cond:
            self.stats["errors"] += 1
            self._window -= back
            self._held += back
        if self._down_since is None:
            self._down_since = time.monotonic()
            what = "refused a datagram" if self._udp is not None else "connection lost" if had else "unreachable"
            log.warning("carbon %s:%d (%s) %s: %s; %d points kept for resending", self.settings.host,
                        self.settings.port, self.settings.protocol, what, e, sum(item[1] for item in self._pending))

    def _pause(self) -> bool:
        """Backoff before the next attempt; False when the close deadline passed."""
        # equal jitter: at least half the step, so a reconnect storm still spaces out
        delay = backoff(self._attempt, self.settings.backoff_initial, self.settings.backoff_max, floor=0.5)
        self._attempt += 1
        end = time.monotonic() + delay
        with self._cond:
            while True:
                left = end - time.monotonic()
                if self._deadline is not None:
                    left = min(left, self._deadline - time.monotonic())
                if left <= 0:
                    break
                self._cond.wait(left)
        return not self._expired()

    def _finish_tcp(self) -> None:
        """Closing, the queue written: carbon confirms the whole stream by closing after our
        FIN (it reads everything before it first). Within the deadline."""
        tcp = self._tcp
        assert tcp is not None
        while (self._pending or self._unconfirmed) and not self._expired():
            if self._pending:
                self._deliver([])
                continue
            last_write = self._unconfirmed[-1][0]
            try:
                answer = tcp.finish(self._left(self.settings.confirm_seconds + 5.0))
                if answer is False:
                    raise _Down("connection reset while closing")
                if answer is None:  # no EOF (not carbon?): alive long enough after the last write?
                    if not tcp.alive() or time.monotonic() - last_write < self.settings.confirm_seconds:
                        break
                self._settle(sum(n for _, _, n in self._unconfirmed))
                self._unconfirmed.clear()
                tcp.close()
            except (OSError, _Down) as e:
                self._failed(e)
                if not self._pause():
                    break

    def _shutdown(self) -> None:
        if self._tcp is not None:
            self._tcp.close()
        if self._udp is not None:
            self._udp.close()
        with self._cond:
            left = len(self._queue) + self._held + self._window
            self._queue.clear()
            self._unconfirmed.clear()
            self._pending.clear()
            if left:
                self._ok = False
                self.stats["failed"] += left
                self._held = self._window = 0
                # the caller who gave up (stall_timeout) or aborted says what becomes of them
                log.log(logging.WARNING if self.stalled or self._abort else logging.ERROR,
                        "carbon %s:%d (%s): closing with %d points undelivered (counted as failed)",
                        self.settings.host, self.settings.port, self.settings.protocol, left)
            self._update_buffered()
            self._done.set()
            self._cond.notify_all()
