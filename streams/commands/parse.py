"""`streams parse`: one JSON object per non-empty input line, in input order."""

from __future__ import annotations

import logging
import sys

from ..inputs import DEFAULT_MAX_LINE, InputError, iter_blocks, open_input
from ..parse.dispatch import LineParser

log = logging.getLogger("streams.parse")


def build_line_parser(args) -> LineParser:
    return LineParser(args.patterns_dir, year=args.year, timezone=args.timezone,
                      max_line=args.max_line or DEFAULT_MAX_LINE)


def run_parse(args) -> int:
    parser = build_line_parser(args)
    out = sys.stdout.buffer
    status = 0
    for path in args.files:
        try:
            stream = open_input(path)
        except OSError as e:
            log.error("cannot read %s: %s", path, e)
            status = 1
            continue
        parser.new_input()
        with stream:
            try:
                # blocks of whole lines in, NDJSON out: one call of the native core per block
                for block in iter_blocks(stream, max_line=parser.max_line):
                    out.write(parser.parse_batch(block))
            except InputError as e:
                # a truncated or damaged `.gz`: the lines read before are written, the file
                # counts as unreadable (exit 1) and the next file goes on
                log.error("cannot read %s to its end: %s", path, e)
                status = 1
    out.flush()
    stats = parser.stats
    problems = {k: v for k, v in sorted(stats.items()) if v}
    lines = stats.get("lines", 0)
    log.info("parsed %d lines; %s", lines, ", ".join(f"{k}={v}" for k, v in problems.items() if k != "lines")
             or "no problems")
    return status
