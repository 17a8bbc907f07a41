"""`streams replay`: log files through the whole pipeline into an output folder."""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path

import orjson

from ..addresses import elasticsearch_url, host_port
from ..config import Config, ConfigError, load_config
from ..enrich.geoip import GeoIP, GeoIPError, build_geoip, default_city_database
from ..enrich.host import local_host_name
from ..enrich.metrics import DerivedMetrics
from ..logfiles import Skipped, expand_paths
from ..parse.dispatch import LineParser
from ..pipeline.replay import Replay, ReplayStats
from ..sinks.bulk_files import BulkFileSink, IndexNamer
from ..telemetry import UNLIMITED
from .outputs import metrics_template, network_outputs
from .stopping import Stop, stopping

log = logging.getLogger("streams.replay")


def config_from_args(args) -> Config:
    cfg = load_config(args.config)
    p = cfg.parse
    if args.year is not None:
        p.year = args.year
    if args.timezone != "UTC" or p.timezone is None:
        p.timezone = args.timezone
    p.patterns_dirs = [*p.patterns_dirs, *args.patterns_dir]
    if args.max_line is not None:
        p.max_line = args.max_line
    if args.output != Path("out"):
        cfg.output.dir = args.output
    if getattr(args, "host", None):
        cfg.replay.host = args.host
    stall = getattr(args, "stall_timeout", None)
    if stall is not None:
        cfg.output.elasticsearch.stall_timeout = cfg.output.graphite.stall_timeout = stall
    g = cfg.geoip
    if args.no_geoip:
        g.enabled = False
    if args.geoip_city:
        g.city = args.geoip_city
    if args.geoip_asn:
        g.asn = args.geoip_asn
    for kind, target in getattr(args, "to", None) or ():
        try:
            if kind == "elasticsearch":
                cfg.output.elasticsearch.url = elasticsearch_url(target)
            elif kind == "graphite":
                host_port(target)
                cfg.output.graphite.address = target
            else:
                raise ConfigError(f"--to {kind}: unknown output (known: elasticsearch URL, graphite HOST:PORT)")
        except ValueError as e:
            raise ConfigError(f"--to {kind}: {e}") from None
    output_folder(cfg.output.dir)
    return cfg


def output_folder(path: Path) -> None:
    """Create the output folder, or say in one line why it cannot be (shared with `run`)."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise ConfigError(f"output folder {path}: a file is in the way") from None
    except OSError as e:
        raise ConfigError(f"output folder {path}: {e.strerror or e}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise ConfigError(f"output folder {path}: not writable")


def build_stages(cfg: Config) -> tuple[LineParser, GeoIP | None]:
    """The parser and the optional GeoIP enricher, as configured (shared with `streams run`)."""
    parser = LineParser(cfg.parse.patterns_dirs, year=cfg.parse.year, timezone=cfg.parse.timezone,
                        max_line=cfg.parse.max_line)
    geoip = None
    if cfg.geoip.enabled:
        city = cfg.geoip.city or default_city_database()
        if city is None and cfg.geoip.asn is None:
            log.warning("no GeoIP database: install streams[geolite] or pass --geoip-city; enrichment off")
        g = cfg.geoip
        try:
            geoip = build_geoip(city, g.asn, fields=g.fields, cache_size=g.cache_size, layouts=g.layouts,
                                wazuh_alerts=g.wazuh_alerts, reload_check_seconds=g.reload_check_seconds,
                                max_age_days=g.max_age_days)
        except GeoIPError as e:  # a missing or damaged database: a configuration error, not a traceback
            raise ConfigError(f"[geoip] {e}") from None
    return parser, geoip


def build_replay(cfg: Config) -> Replay:
    parser, geoip = build_stages(cfg)
    out = cfg.output.dir
    # close_timeout None: a replay ends when its archive is delivered, or when an output
    # took nothing for its stall_timeout (give_up)
    sink, metrics_sink = network_outputs(cfg, close_timeout=None, give_up=True)
    if sink is None:
        sink = BulkFileSink(out / "elasticsearch", IndexNamer(cfg.output.index))
    metrics = DerivedMetrics(cfg.metrics.bucket_seconds, metrics_template(cfg))
    return Replay(parser, out, geoip=geoip, metrics=metrics, sink=sink, metrics_sink=metrics_sink,
                  metrics_retention=cfg.output.graphite.retention_days * 86400,
                  host=cfg.replay.host or local_host_name())


def _progress(total: int, enabled: bool):
    if not enabled:
        return None, None
    from tqdm import tqdm
    bar = tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc="replay",
               file=sys.stderr, mininterval=0.5)
    return bar.update, bar.close  # called once per block read (1 MiB)


def summary_table(stats: ReplayStats, elapsed: float, extra: dict, geo: dict | None) -> str:
    rows = [f"lines read        {stats.lines:>10,}   ({stats.empty:,} empty, skipped)",
            f"events written    {stats.events:>10,}   in {elapsed:.2f}s ({stats.lines / max(elapsed, 1e-9):,.0f} lines/s)",
            f"indices           {extra['indices']:>10,}   metric points {extra['metric_points']:,}"
            + (f" ({old:,} older than the graphite retention: not kept by carbon)"
               if (old := extra.get("metric_points_past_retention")) else ""),
            *([f"elasticsearch     {es['sent']:>10,} indexed, {es['duplicates']:,} already there, "
               f"{es['dead_lettered']:,} dead-lettered, {es['retried']:,} retried"] if (es := extra.get("elasticsearch"))
              else []),
            "", "events per dataset"]
    rows += [f"  {k:<24}{v:>10,}" for k, v in stats.datasets.most_common()]
    rows += ["", "problems (tagged, kept)"]
    rows += [f"  {k:<24}{v:>10,}" for k, v in sorted(stats.problems.items())] or ["  none"]
    if stats.unreadable_files:
        rows += [f"  unreadable file: {f}" for f in stats.unreadable_files]
    for title, counter in (("top banned addresses", stats.banned), ("top attacking addresses", stats.attackers)):
        if counter:
            rows += ["", title]
            rows += [f"  {ip:<40}{n:>8,}  {stats.country.get(ip, '--')}" for ip, n in counter.most_common(10)]
    if geo:
        rows += ["", f"geoip cache: {geo['hits']:,} hits, {geo['misses']:,} misses, hit rate {geo['hit_rate']:.1%}"]
    return "\n".join(rows)


def run_replay(args) -> int:
    """Exit 0; 1 some input unreadable; 2 configuration; 3 an output could not take the
    events; 128 + N stopped by signal N (130 SIGINT, 143 SIGTERM). The summary is written
    whenever the replay started."""
    with stopping() as stop:
        try:
            cfg = config_from_args(args)
            replay = build_replay(cfg)
        except ConfigError as e:
            log.error("configuration: %s", e)
            return 2
        except OSError as e:   # e.g. DIR/elasticsearch is a file
            log.error("cannot prepare the outputs: %s", e)
            return 2
        stop.on_stop = replay.interrupt
        if stop.signal is not None:   # it came while building
            replay.interrupt(stop.signal)
        return _replay(args, cfg, replay, stop)


def _replay(args, cfg: Config, replay: Replay, stop: Stop) -> int:
    skipped: list[Skipped] = []
    paths = expand_paths(args.paths, skipped, output=cfg.output.dir)
    for s in skipped:   # one line per file, every one of them (past the log rate limit)
        if s.unreadable:  # it may hold lines: counted as unreadable (exit 1)
            log.error("cannot read %s: %s", s.path, s.reason, extra=UNLIMITED)
            replay.stats.unreadable_files.append(s.path)
        else:
            log.warning("left out of the replay: %s: %s", s.path, s.reason, extra=UNLIMITED)
    total = sum(os.path.getsize(p) for p in paths if p != "-" and os.path.isfile(p))
    step, close = _progress(total, sys.stderr.isatty() and not args.no_progress)
    start = time.perf_counter()
    for p in paths:
        replay.process_file(p, step)
    extra = replay.finish()
    elapsed = time.perf_counter() - start
    if close:
        close()
    geo = replay.geoip.cache_stats() if replay.geoip else None
    summary = {"lines": replay.stats.lines, "events": replay.stats.events, "empty": replay.stats.empty,
               "datasets": dict(replay.stats.datasets), "problems": dict(replay.stats.problems),
               "unreadable_files": replay.stats.unreadable_files,
               "skipped_files": [s.as_dict() for s in skipped], "interrupted": replay.interrupted,
               "output_failures": replay.failures, "seconds": round(elapsed, 3), **extra, "geoip_cache": geo}
    try:
        (cfg.output.dir / "summary.json").write_bytes(orjson.dumps(summary, option=orjson.OPT_INDENT_2))
    except OSError as e:
        log.error("cannot write the summary: %s", e)
        replay.failures.append(str(e))
    if replay.interrupted:
        log.warning("interrupted by %s: stopped after %d lines; what was read is written (%s)%s",
                    replay.interrupted, replay.stats.lines, cfg.output.dir,
                    "; documents Elasticsearch has not taken stay in its spool for the next replay or run"
                    if cfg.output.elasticsearch.url else "", extra={"signal": replay.interrupted})
        return stop.exit_code
    if not args.quiet:
        print(summary_table(replay.stats, elapsed, extra, geo))
    if replay.failures:
        return 3
    return 1 if replay.stats.unreadable_files else 0
