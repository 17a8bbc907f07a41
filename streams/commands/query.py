"""`streams query EXPR`: the indexed events of a running `streams run` matching a query."""

from __future__ import annotations

import json
import logging
import sys
import urllib.error
import urllib.parse
import urllib.request

from ..addresses import http_url
from ..index.query import QueryError, compile_query

log = logging.getLogger("streams.query")


def run_query(args) -> int:
    try:
        compile_query(args.query)  # a bad query is told here, with its position, without a server
    except QueryError as e:
        print(str(e), file=sys.stderr)
        return 2
    try:
        base = http_url(args.url, 5556)
    except ValueError as e:
        log.error("--url: %s", e)
        return 2
    url = f"{base.rstrip('/')}/query?{urllib.parse.urlencode({'q': args.query})}"
    try:
        with urllib.request.urlopen(url, timeout=args.timeout) as r:
            body = json.loads(r.read())
    except urllib.error.HTTPError as e:
        detail = e.read().decode("utf-8", "replace")
        log.error("the server refused the query: HTTP %s %s", e.code, detail.strip(), extra={"url": args.url})
        return 2 if e.code == 400 else 1
    except (urllib.error.URLError, OSError, ValueError) as e:
        log.error("cannot query %s: %s", args.url, getattr(e, "reason", e))
        return 1
    out = sys.stdout
    for ev in body.get("events", []):
        out.write(json.dumps(ev, ensure_ascii=False, sort_keys=True) + "\n")
    out.flush()
    return 0
