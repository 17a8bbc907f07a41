"""Elasticsearch-bulk-ready NDJSON files, one per dated index.

Each event is an action line plus its document, so a file can be sent as is to
`POST /_bulk`. `_id` is deterministic (source, position, original text), so loading
the same archive twice overwrites instead of duplicating.
"""

from __future__ import annotations

from pathlib import Path
from string import Formatter
from typing import BinaryIO

import orjson

from .._native import event_id_of, index_name

DEFAULT_INDEX = "streams-{dataset}-{date}"
WAZUH_INDEX = "wazuh-alerts-4.x-{date}"
_FIELDS = frozenset({"dataset", "date"})


def event_id(source: str, position: int, original: str) -> str:
    """The deterministic `_id` the native pipeline gives its documents (BLAKE2b, 12 bytes,
    of the parts joined by NUL), for the few documents that do not come through it."""
    return event_id_of([x.encode("utf-8", "surrogatepass") for x in (source, str(position), original)])


def check_template(template: str) -> str:
    """An index template names `{dataset}` and `{date}` only (`{{`, `}}` for braces)."""
    try:
        names = {name for _, name, spec, conv in Formatter().parse(template) if name is not None}
    except ValueError as e:
        raise ValueError(f"index template {template!r}: {e}") from None
    if names - _FIELDS or any(spec or conv for _, name, spec, conv in Formatter().parse(template) if name):
        raise ValueError(f"index template {template!r}: only {{dataset}} and {{date}} may be named")
    return template


def dataset_of(doc: dict) -> str:
    """The document's `event.dataset`, which names its index ("unknown" without one)."""
    return (doc.get("event") or {}).get("dataset") or "unknown"


class IndexNamer:
    """Index names: the template with `{dataset}` and `{date}` (`YYYY.MM.DD`), lower case,
    what Elasticsearch refuses as `_` (rendered by the native core, which names the
    documents of the batches the same way)."""

    def __init__(self, template: str = DEFAULT_INDEX, per_dataset: dict[str, str] | None = None) -> None:
        self.template = check_template(template)
        self.per_dataset = {"wazuh.alerts": WAZUH_INDEX, **(per_dataset or {})}
        for t in self.per_dataset.values():
            check_template(t)
        self._cache: dict[tuple[str, str], str] = {}

    def __call__(self, dataset: str, timestamp: str) -> str:
        key = (dataset, timestamp[:10])
        name = self._cache.get(key)
        if name is None:
            name = self._cache[key] = index_name(self.per_dataset.get(dataset, self.template), dataset, timestamp)
        return name

    def for_doc(self, doc: dict) -> str:
        return self(dataset_of(doc), doc["@timestamp"])


class BulkFileSink:
    """Memory stays flat however many dated indices an archive spans: at most
    `max_open` files are open (least recently used closed first, reopened to append)."""

    def __init__(self, directory: Path, namer: IndexNamer | None = None, max_open: int = 256,
                 buffer_size: int = 32 * 1024) -> None:
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self.namer = namer or IndexNamer()
        self.max_open = max_open
        self.buffer_size = buffer_size
        self.files: dict[str, BinaryIO] = {}  # insertion order = least recently opened first
        self.counts: dict[str, int] = {}
        self.sent = 0

    def _file(self, index: str) -> BinaryIO:
        f = self.files.get(index)
        if f is None:
            if len(self.files) >= self.max_open:
                self.files.pop(next(iter(self.files))).close()
            seen = index in self.counts
            f = self.files[index] = (self.directory / f"{index}.ndjson").open(
                "ab" if seen else "wb", buffering=self.buffer_size)
            if not seen:
                self.counts[index] = 0
        return f

    chunk_format = "bulk"   # what the native pipeline writes for write_chunk()

    def write_chunk(self, index: str, data: bytes, count: int) -> None:
        """`count` documents of one index, as bulk lines the native pipeline wrote."""
        self._file(index).write(data)
        self.counts[index] += count
        self.sent += count

    def write(self, doc: dict, doc_id: str) -> None:
        """One document (the pipelines write chunks; this is for a single one): the bulk
        action line and the document, as the native pipeline writes them."""
        index = self.namer.for_doc(doc)
        action = orjson.dumps({"index": {"_index": index, "_id": doc_id}})
        self.write_chunk(index, action + b"\n" + orjson.dumps(doc, option=orjson.OPT_APPEND_NEWLINE), 1)

    def close(self) -> None:
        """Close every file, even when one fails to (its error is raised after)."""
        files, self.files = self.files, {}
        error: OSError | None = None
        for f in files.values():
            try:
                f.close()
            except OSError as e:
                error = error or e
        if error is not None:
            raise error
