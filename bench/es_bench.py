#!/usr/bin/env python3
"""Events/s into a local Elasticsearch through our sink (spool -> sender thread -> _bulk,
every item classified), next to the client's `helpers.bulk` of the same pre-built documents
in the same run (the ceiling). Both write `create` actions with the same ids, 1000 per
request, into indices our templates map the same way.

    .venv/bin/python bench/es_bench.py [--docs 100000] [--url URL]

Without --url it starts its own node (deploy/dev/elasticsearch, full JIT) on a free port and
removes it at the end. Prints a table and writes bench/results/elasticsearch.json.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from elasticsearch import Elasticsearch, helpers  # noqa: E402

from streams.sinks.elasticsearch import ElasticsearchSettings, ElasticsearchSink, record  # noqa: E402
from streams.sinks.es_templates import install_templates  # noqa: E402

SCRIPT = ROOT / "deploy" / "dev" / "elasticsearch"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sample_docs(n: int) -> list[dict]:
    """The samples replayed to files, repeated (with distinct hosts) up to n documents."""
    with tempfile.TemporaryDirectory() as d:
        subprocess.run([sys.executable, "-m", "streams.cli", "replay", "--no-progress", "-q", "--year", "2026",
                        "--geoip-city", str(ROOT / "tests/data/geoip/GeoIP2-City-Test.mmdb"), "--output", d,
                        str(ROOT / "samples/logs")], check=True, capture_output=True)
        base = []
        for f in sorted(Path(d, "elasticsearch").glob("streams-*.ndjson")):
            base += [json.loads(x) for x in f.read_text().splitlines()[1::2]]
    out = []
    for i in range(n):
        doc = json.loads(json.dumps(base[i % len(base)]))
        doc.setdefault("host", {})["name"] = f"bench{i // len(base)}"
        out.append(doc)
    return out


def index_of(prefix: str, doc: dict) -> str:
    return f"streams-{prefix}-{doc['event']['dataset']}-{doc['@timestamp'][:10].replace('-', '.')}"


def ceiling(client: Elasticsearch, docs: list[dict]) -> float:
    t = time.perf_counter()
    ok, errors = helpers.bulk(client, ({"_op_type": "create", "_index": index_of("ceiling", d), "_id": str(i),
                                        "_source": d} for i, d in enumerate(docs)), chunk_size=1000,
                              raise_on_error=False, stats_only=True)
    took = time.perf_counter() - t
    assert ok == len(docs), (ok, errors)
    return len(docs) / took


def ours(url: str, docs: list[dict], tmp: Path) -> tuple[float, dict]:
    class Namer:
        def __call__(self, dataset: str, ts: str) -> str:
            return f"streams-ours-{dataset}-{ts[:10].replace('-', '.')}"

    sink = ElasticsearchSink(ElasticsearchSettings(url=url, batch_size=1000, flush_seconds=0.05, close_timeout=None),
                             tmp / "spool", tmp / "dlq.ndjson", Namer())
    # what the native pipeline hands the sink: spool records of one index per chunk, pre-built
    # as the ceiling's documents are
    namer = Namer()
    chunks: list[tuple[str, bytes, int]] = []
    for start in range(0, len(docs), 1000):
        by_index: dict[str, list[bytes]] = {}
        for i, d in enumerate(docs[start:start + 1000], start):
            index = namer(d["event"]["dataset"], d["@timestamp"])
            by_index.setdefault(index, []).append(record(index, str(i), d))
        chunks += [(index, b"".join(recs), len(recs)) for index, recs in by_index.items()]
    t = time.perf_counter()
    for index, data, n in chunks:
        sink.write_chunk(index, data, n)
        sink.flush()
    sink.close()
    took = time.perf_counter() - t
    assert sink.stats["sent"] == len(docs), sink.stats
    return len(docs) / took, dict(sink.stats)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", type=int, default=100_000)
    ap.add_argument("--url")
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    port = None
    url = args.url
    if url is None:
        port = free_port()
        env = {**os.environ, "ES_JIT_OPTS": "", "ES_RUN_DIR": str(ROOT / ".cache" / "run" / f"bench-es-{port}")}
        url = subprocess.run([str(SCRIPT), "start", str(port)], check=True, capture_output=True, text=True,
                             env=env).stdout.strip().splitlines()[-1]
    try:
        client = Elasticsearch(url, request_timeout=120)
        install_templates(client)
        docs = sample_docs(args.docs)
        res: dict = {"docs": len(docs), "url": url, "rounds": []}
        for r in range(args.rounds):  # alternate the order: the node warms up as it goes
            client.indices.delete(index="streams-ceiling-*,streams-ours-*", ignore_unavailable=True,
                                  allow_no_indices=True)
            with tempfile.TemporaryDirectory() as d:
                if r % 2 == 0:
                    c = ceiling(client, docs)
                    o, stats = ours(url, docs, Path(d))
                else:
                    o, stats = ours(url, docs, Path(d))
                    c = ceiling(client, docs)
            res["rounds"].append({"helpers_bulk_per_s": round(c), "streams_sink_per_s": round(o),
                                  "ratio": round(o / c, 3)})
            print(res["rounds"][-1], flush=True)
        res["streams_sink_per_s"] = max(x["streams_sink_per_s"] for x in res["rounds"])
        res["helpers_bulk_per_s"] = max(x["helpers_bulk_per_s"] for x in res["rounds"])
        res["ratio_best_to_best"] = round(res["streams_sink_per_s"] / res["helpers_bulk_per_s"], 3)
        res["sink_stats_last"] = stats
    finally:
        if port is not None:
            subprocess.run([str(SCRIPT), "clean", str(port)], capture_output=True,
                           env={**os.environ, "ES_RUN_DIR": str(ROOT / ".cache" / "run" / f"bench-es-{port}")})
    (ROOT / "bench" / "results").mkdir(exist_ok=True)
    (ROOT / "bench" / "results" / "elasticsearch.json").write_text(json.dumps(res, indent=2) + "\n")
    for k in ("docs", "helpers_bulk_per_s", "streams_sink_per_s", "ratio_best_to_best"):
        print(f"{k:22s} {res[k]}")


if __name__ == "__main__":
    main()
