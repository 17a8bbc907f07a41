"""Line -> Event, on the native parse core (`streams._native.Parser`, see native/README.md).

The core does the whole line -> document path: the line's shape (JSON, the line forms a
product declares, syslog), the header, dispatch on the program, the product's grok rules
and their declarative ops. This class is the per-line adapter the pipelines call until
they take NDJSON batches (`parse_batch`) themselves; a line nobody understands is still
an event (`_grokparsefailure`, `event.original` kept).
"""

from __future__ import annotations

import importlib
import logging
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from ..clock import Clock, SystemClock
from ..event import Event
from ..inputs import DEFAULT_MAX_LINE
from .grok import PatternError
from .native import native_parser

log = logging.getLogger("streams.parse")


class LineParser:
    """Compiled once from pattern directories; `parse(line)` is the hot path."""

    def __init__(self, pattern_dirs: Iterable[Path] | None = None, *, year: int | None = None,
                 timezone: str | None = None, clock: Clock | None = None,
                 max_line: int = DEFAULT_MAX_LINE) -> None:
        self.clock = clock or SystemClock()
        self.native = native_parser(pattern_dirs, year=year, timezone=timezone, clock=self.clock,
                                    max_line=max_line)
        self.max_line = max_line
        # year-less stamps take their year from the clock: a long-running process keeps
        # the core's clock current (a fixed year needs none)
        self._set_now = self.native.set_now if year is None else None
        self._problems: Counter[str] = Counter()
        self._hooks: dict[str, object] = {}
        self.has_hooks = self.native.has_hooks
        if self.has_hooks:  # a hook that cannot be loaded fails at start, not per line
            for spec in self.native.hook_names():
                self._hook(spec)

    @property
    def stats(self) -> Counter[str]:
        """What the core counted (truncated lines, lines no rule matched, ...) and the
        input problems the callers add."""
        return Counter(self.native.stats()) + self._problems

    def count(self, problems: Iterable[str]) -> None:
        self._problems.update(problems)

    def set_now(self, now: float) -> None:
        """The time year-less stamps take their year from (nothing to do with a fixed year)."""
        if self._set_now is not None:
            self._set_now(now)

    def new_input(self) -> None:
        """The next line starts another file or stream: a header-less line there does not
        continue the last entry of the previous one."""
        self.native.new_input()

    def parse(self, line: str) -> Event:
        if self._set_now is not None:
            self._set_now(self.clock.now())
        try:
            fields, message, tags, rule, hooks = self.native.parse(line)
        except UnicodeEncodeError:
            # a lone surrogate (an API caller's `\ud800`): parsed as its escape
            line = line.encode("utf-8", "surrogatepass").decode("utf-8", "backslashreplace")
            fields, message, tags, rule, hooks = self.native.parse(line)
        ev = Event.from_parse(fields)
        ev.message = message
        ev.tags = tags
        if rule is not None:
            ev.meta["rule"] = rule
        if hooks is not None:
            return self._run_hooks(hooks, ev, line)
        return ev

    def hook_runner(self, fields: dict, message: str | None, tags: list[str], hooks: list[str],
                    line: str) -> tuple[dict, str | None, list[str]]:
        """What the native batch pipeline calls for a line whose rule names Python hooks."""
        ev = Event.from_parse(fields)
        ev.message = message
        ev.tags = tags
        ev = self._run_hooks(hooks, ev, line)
        return ev.fields, ev.message, ev.tags

    def batch_pipeline(self, sink, bucket_seconds: int, geoip=None):
        """The native batch pipeline over this parser, writing what `sink` takes
        (`chunk_format`) under its index names, enriching with `geoip` (a GeoIP) if any."""
        from .._native import Pipeline
        namer = sink.namer
        return Pipeline(self.native, index_template=namer.template, per_dataset=list(namer.per_dataset.items()),
                        format=sink.chunk_format, bucket_seconds=bucket_seconds,
                        hooks=self.hook_runner if self.has_hooks else None,
                        geoip=None if geoip is None else geoip.native)

    def _hook(self, spec: str):
        fn = self._hooks.get(spec)
        if fn is None:
            mod, _, name = spec.partition(":")
            try:
                fn = self._hooks[spec] = getattr(importlib.import_module(mod), name)
            except (ImportError, AttributeError, ValueError) as e:
                raise PatternError(f"hook {spec!r} cannot be loaded: {e}") from None
        return fn

    def _run_hooks(self, hooks: list[str], ev: Event, line: str) -> Event:
        """A rule's Python hooks (the escape hatch of the product YAML): `hook(fields,
        event, parser)`. A bug in one must not lose the line or stop the process."""
        try:
            for spec in hooks:
                self._hook(spec)(ev.fields, ev, self)
        except Exception as e:  # noqa: BLE001 - counted, logged, the line kept
            self._problems["parser_error"] += 1
            if self._problems["parser_error"] <= 10:
                log.exception("a parse hook failed on a line (kept, tagged _parser_error): %s", e,
                              extra={"line": line[:500]})
            cut = line[: self.max_line]  # as the core keeps a line
            ev = Event.from_parse({"event": {"original": cut}})
            ev.message = cut
            ev.tags.append("_parser_error")
            if len(line) > self.max_line:
                ev.tags.append("_line_truncated")
        return ev

    def parse_batch(self, data: bytes) -> bytes:
        """NDJSON of the documents of the non-blank lines of `data` (whole lines), the GIL
        released while the core runs (taken back for the lines whose rule names a Python hook)."""
        if self._set_now is not None:
            self._set_now(self.clock.now())
        return self.native.parse_batch(data, self.hook_runner if self.has_hooks else None)

