"""The `streams` command line.

Exit codes: 0 success; 1 some input could not be read (the rest was processed), or a
server could not be reached (setup, query); 2 usage or configuration error (bad option,
config file, pattern, address, output folder); 3 an output could not take the events
(replay: Elasticsearch or carbon took nothing for their stall_timeout, an output file not
writable; what was not delivered is kept, the log line says where); 130/143 stopped by
SIGINT/SIGTERM (replay writes what it read and its summary first).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from . import __version__

MAX_LINE_LIMIT = 64 << 20   # config.MAX_LINE_LIMIT (not imported: --help stays quick)

EXIT_OK, EXIT_INPUT, EXIT_CONFIG = 0, 1, 2
log = logging.getLogger("streams")


def _bounded_int(low: int, high: int | None = None):
    """An argparse type: an integer in [low, high], else a usage error (exit 2)."""
    def convert(text: str) -> int:
        try:
            n = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
        if n < low or (high is not None and n > high):
            raise argparse.ArgumentTypeError(f"{n}: must be at least {low}" if high is None
                                             else f"{n}: must be between {low} and {high}")
        return n
    convert.__name__ = "integer"
    return convert


def _seconds(text: str) -> float:
    """An argparse type: a finite number of seconds, at least 0."""
    try:
        n = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 <= n < float("inf"):
        raise argparse.ArgumentTypeError(f"{text}: must be a number of seconds, at least 0")
    return n


def _common_parse_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--year", type=_bounded_int(1, 9999),
                   help="year for timestamps that carry none (default: from the clock)")
    p.add_argument("--timezone", default="UTC", help="time zone of naive timestamps (default: UTC)")
    p.add_argument("--patterns-dir", action="append", default=[], type=Path, metavar="DIR",
                   help="extra directory of *.grok / *.yaml pattern files (repeatable; overrides built-ins)")
    p.add_argument("--max-line", type=_bounded_int(1, MAX_LINE_LIMIT), metavar="N",
                   help="cut longer lines to N characters (event.original too) and tag them _line_truncated "
                        "(default: 65536)")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="streams", description="streams: an event-stream log and metrics processor for mail, SSH, "
                                    "Fail2ban and Wazuh hosts.", epilog=__doc__.split("\n\n", 1)[1])
    ap.add_argument("--version", action="version", version=f"streams {__version__}")
    ap.add_argument("--log-level", default="INFO", type=str.upper, choices=["DEBUG", "INFO", "WARNING", "ERROR"],
                    help="log level of streams' own logs (JSON lines on stderr)")
    sub = ap.add_subparsers(dest="command", required=True)

    p = sub.add_parser("parse", help="parse log lines to JSON, one object per non-empty line",
                       description="Parse log lines (syslog, Fail2ban, Wazuh alerts.json, ...) and write one "
                                   "JSON object per non-empty input line, in input order, to stdout.")
    _common_parse_args(p)
    p.add_argument("files", nargs="*", default=["-"], metavar="FILE", help="input files, or - for stdin")

    r = sub.add_parser("replay", help="run log files through the whole pipeline into an output folder",
                       description="Replay log files (or folders of them) through parse -> GeoIP -> "
                                   "outputs: Elasticsearch bulk NDJSON per dated index and Graphite "
                                   "plaintext metrics, in --output.")
    _common_parse_args(r)
    r.add_argument("paths", nargs="+", metavar="PATH", help="log files or folders")
    r.add_argument("--output", "-o", type=Path, default=Path("out"), help="output folder (default: ./out)")
    r.add_argument("--config", type=Path, help="TOML configuration file")
    r.add_argument("--geoip-city", type=Path, help="GeoIP2/GeoLite2 City .mmdb (default: the installed GeoLite2)")
    r.add_argument("--geoip-asn", type=Path, help="GeoIP2/GeoLite2 ASN .mmdb")
    r.add_argument("--no-geoip", action="store_true", help="turn GeoIP enrichment off")
    r.add_argument("--no-progress", action="store_true", help="no progress bar even on a terminal")
    r.add_argument("--to", nargs=2, action="append", metavar=("OUTPUT", "URL"),
                   help="send to a server instead of files: --to elasticsearch http://127.0.0.1:9200 (index "
                        "templates installed first; refused documents in DIR/elasticsearch-dead-letter.ndjson), "
                        "--to graphite 127.0.0.1:2003 (the metrics, plaintext protocol); repeatable")
    r.add_argument("--stall-timeout", type=_seconds, metavar="SECONDS",
                   help="give up on a server output that took nothing for this long: exit 3, what it did not "
                        "take kept (Elasticsearch: DIR/spool/elasticsearch, for the next replay or run; "
                        "carbon: DIR/graphite.txt); 0: wait forever (default: [output.*] stall_timeout, 60)")
    r.add_argument("--quiet", "-q", action="store_true", help="no summary table")
    r.add_argument("--host", metavar="NAME", help="host.name of the lines that name no host, e.g. Fail2ban's "
                                                  "own log (default: [replay] host, else this machine's name)")

    u = sub.add_parser("run", help="listen for RELP, syslog and Riemann; run the pipeline into an output folder",
                       description="Run the listeners (RELP 2514, syslog UDP+TCP 5514, Riemann TCP+UDP 5555, "
                                   "HTTP health/metrics 5556, on 127.0.0.1 unless configured in [listeners.*]) "
                                   "and the same parse -> GeoIP -> outputs chain as replay, until SIGTERM/SIGINT "
                                   "(graceful: drained, flushed, exit 0). SIGHUP reopens the output files.")
    _common_parse_args(u)
    u.add_argument("--output", "-o", type=Path, default=Path("out"), help="output folder (default: ./out)")
    u.add_argument("--config", type=Path, help="TOML configuration file ([listeners.NAME], [run], ...)")
    u.add_argument("--geoip-city", type=Path, help="GeoIP2/GeoLite2 City .mmdb (default: the installed GeoLite2)")
    u.add_argument("--geoip-asn", type=Path, help="GeoIP2/GeoLite2 ASN .mmdb")
    u.add_argument("--no-geoip", action="store_true", help="turn GeoIP enrichment off")

    st = sub.add_parser("setup", help="prepare a server for streams' outputs (Elasticsearch index templates)",
                        description="Install or upgrade streams' Elasticsearch component and index templates "
                                    "(never downgrading a newer one) without starting the pipeline. Exit 0 when "
                                    "every template is in place, 1 when the server cannot be reached or refuses.")
    st.add_argument("target", choices=["elasticsearch"], help="what to set up")
    st.add_argument("--url", default="http://127.0.0.1:9200", help="Elasticsearch URL (default: %(default)s)")
    st.add_argument("--config", type=Path, help="TOML configuration file (its [output.elasticsearch] credentials)")

    q = sub.add_parser("query", help="ask a running `streams run` for the indexed events matching a query",
                       description="Query the TTL index of a running `streams run` over its HTTP API, with "
                                   "Riemann's query language, e.g. 'service =~ \"fail2ban%%\" and metric > 0'. "
                                   "Prints one JSON object per matching event. Exit 0 on an answer (even an "
                                   "empty one), 1 when the server cannot be reached, 2 for a bad query.")
    q.add_argument("query", help="a Riemann query: = != < > <= >= =~ (LIKE, %% wildcard) ~= (regex), "
                                 "and/or/not, tagged \"x\", true/false/nil")
    q.add_argument("--url", default="http://127.0.0.1:5556", help="the HTTP listener (default: %(default)s)")
    q.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the answer")
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from .telemetry import LogSetup, setup_logging
    setup_logging(args.log_level)
    try:
        return _command(args)
    finally:
        LogSetup.flush_suppressed(final=True)   # the lines the rate limit held back, counted


def _command(args: argparse.Namespace) -> int:
    from .parse.grok import PatternError
    from .parse.timestamps import UnknownTimezone
    try:
        if args.command == "parse":
            from .commands.parse import run_parse
            return run_parse(args)
        if args.command == "replay":
            from .commands.replay import run_replay
            return run_replay(args)
        if args.command == "run":
            from .commands.run import run_run
            return run_run(args)
        if args.command == "setup":
            from .commands.setup import run_setup
            return run_setup(args)
        if args.command == "query":
            from .commands.query import run_query
            return run_query(args)
    except PatternError as e:
        log.error("pattern error: %s", e)
        return EXIT_CONFIG
    except UnknownTimezone as e:
        log.error("%s", e)
        return EXIT_CONFIG
    except BrokenPipeError:
        return EXIT_OK
    except KeyboardInterrupt:   # Ctrl-C in a command without its own handling (replay has it)
        log.warning("interrupted (SIGINT)")
        return 130
    return EXIT_CONFIG


if __name__ == "__main__":
    sys.exit(main())
