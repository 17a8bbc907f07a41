"""`streams parse`: one JSON object per non-empty input line, in input order."""

from __future__ import annotations

import logging
import sys

import orjson

from ..inputs import DEFAULT_MAX_LINE, InputError, iter_lines, open_input
from ..parse.dispatch import LineParser

log = logging.getLogger("streams.parse")
_BATCH = 512


def build_line_parser(args) -> LineParser:
    return LineParser(args.patterns_dir, year=args.year, timezone=args.timezone,
                      max_line=args.max_line or DEFAULT_MAX_LINE)


def run_parse(args) -> int:
    parser = build_line_parser(args)
    out = sys.stdout.buffer
    dumps = orjson.dumps
    status = 0
    lines = 0
    for path in args.files:
        try:
            stream = open_input(path)
        except OSError as e:
            log.error("cannot read %s: %s", path, e)
            status = 1
            continue
        buf: list[bytes] = []
        parse = parser.parse
        parser.new_input()
        with stream:
            try:
                for text, problems in iter_lines(stream, max_line=parser.max_line):
                    if not text or text.isspace():
                        continue
                    ev = parse(text)
                    if problems:
                        ev.tags.extend(problems)
                        parser.stats.update(problems)
                    buf.append(dumps(ev.to_doc()))
                    lines += 1
                    if len(buf) >= _BATCH:
                        out.write(b"\n".join(buf) + b"\n")
                        buf.clear()
            except InputError as e:
                # a truncated or damaged `.gz`: the lines read before are written, the file
                # counts as unreadable (exit 1) and the next file goes on
                log.error("cannot read %s to its end: %s", path, e)
                status = 1
            if buf:
                out.write(b"\n".join(buf) + b"\n")
    out.flush()
    problems = {k: v for k, v in sorted(parser.stats.items()) if v}
    log.info("parsed %d lines; %s", lines, ", ".join(f"{k}={v}" for k, v in problems.items()) or "no problems")
    return status
