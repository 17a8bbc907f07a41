"""Elasticsearch index templates: the versioned JSON files of `mappings/`, installed as
composable templates, component templates first, then the index templates composed of them.

The folder (data, not code; see mappings/README.md):

    mappings/component_templates/<name>.json   body of PUT _component_template/<name>
    mappings/index_templates/<name>.json       body of PUT _index_template/<name>
    mappings/versions.lock.json                 version + content hash of each (see `lock`)

Every file carries an integer `version` and `_meta.project: "streams"`; the loader adds
`_meta.project_version` (the streams release that installs it). The rule per template,
compared by `version` only (`decide`):

    absent on the server           -> installed
    the server's is older/unversioned -> upgraded
    the same version               -> up-to-date (nothing sent)
    the server's is newer          -> kept-newer (a newer streams put it there: never
                                      downgraded; logged)

Pure helpers (`load_templates`, `validate`, `decide`, `compose`, `field_mapping`,
`content_hash`) do no I/O beyond reading the folder; `install_templates` is the only one
that talks to Elasticsearch, through the official client's API (or anything with the same
four methods: `cluster.get_component_template`, `cluster.put_component_template`,
`indices.get_index_template`, `indices.put_index_template`).

The folder is `streams/mappings/`, inside the package (`default_directory`; the top-level
`mappings/` of the source tree is a link to it).

By hand: `python -m streams.sinks.es_templates install URL` installs them;
`python -m streams.sinks.es_templates lock` rewrites versions.lock.json after a change
(bump the `version` of each changed file first: the unit tests refuse a changed file whose
version was not raised, because servers would never receive it).
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import re
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from .. import __version__

logger = logging.getLogger("streams.sink.elasticsearch.templates")

PROJECT = "streams"
COMPONENT = "component"
INDEX = "index"
FOLDERS = {COMPONENT: "component_templates", INDEX: "index_templates"}
LOCK_FILE = "versions.lock.json"

INSTALLED = "installed"
UPGRADED = "upgraded"
UP_TO_DATE = "up-to-date"
KEPT_NEWER = "kept-newer"

_KEYS = {
    COMPONENT: {"template", "version", "_meta", "deprecated"},
    INDEX: {"index_patterns", "composed_of", "template", "priority", "version", "_meta",
            "ignore_missing_component_templates", "data_stream", "allow_auto_create", "deprecated"},
}
_TEMPLATE_KEYS = {"settings", "mappings", "aliases", "lifecycle", "data_stream_options"}
_NAME = re.compile(r"[a-z0-9][a-z0-9@._-]*")


class TemplateError(ValueError):
    """A template file that cannot be used; the message names the file and why."""


@dataclass(frozen=True)
class Template:
    kind: str                 # COMPONENT or INDEX
    name: str
    body: dict[str, Any]      # the PUT body, `_meta.project_version` added
    path: Path

    @property
    def version(self) -> int:
        return self.body["version"]

    @property
    def label(self) -> str:
        return f"{self.kind} template {self.name}"


# -- finding and loading ---------------------------------------------------------------------------

def default_directory() -> Path:
    """`streams/mappings/`, inside the package."""
    folder = Path(str(resources.files("streams") / "mappings"))
    if not (folder / FOLDERS[INDEX]).is_dir():
        raise FileNotFoundError(f"no Elasticsearch templates folder: looked for {folder}")
    return folder


def load_templates(directory: Path | str | None = None) -> list[Template]:
    """Every template of the folder, validated, in install order: component templates,
    then index templates (each group by name)."""
    root = Path(directory) if directory is not None else default_directory()
    out: list[Template] = []
    for kind in (COMPONENT, INDEX):
        folder = root / FOLDERS[kind]
        if not folder.is_dir():
            raise TemplateError(f"{folder}: missing folder")
        for path in sorted(folder.glob("*.json")):
            out.append(_load_one(kind, path))
    if not any(t.kind == INDEX for t in out):
        raise TemplateError(f"{root}: no index templates")
    validate(out)
    return out


def _load_one(kind: str, path: Path) -> Template:
    try:
        body = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise TemplateError(f"{path}: {e}") from e
    if not isinstance(body, dict):
        raise TemplateError(f"{path}: not a JSON object")
    name = path.stem
    if not _NAME.fullmatch(name):
        raise TemplateError(f"{path}: bad template name {name!r}")
    meta = body.get("_meta")
    if isinstance(meta, dict):
        body["_meta"] = {**meta, "project_version": __version__}
    return Template(kind, name, body, path)


def validate(templates: Iterable[Template]) -> None:
    """Raise TemplateError for a file Elasticsearch would refuse or that breaks our rules:
    unknown keys, no integer `version`, no `_meta.project`, an index template composed of a
    component that is neither here nor in `ignore_missing_component_templates`, two index
    templates sharing a pattern at the same priority, a composition that fails."""
    templates = list(templates)
    names: dict[str, Template] = {}
    for t in templates:
        if t.name in names:
            raise TemplateError(f"{t.path}: the name {t.name!r} is also {names[t.name].path}")
        names[t.name] = t
        b = t.body
        unknown = set(b) - _KEYS[t.kind]
        if unknown:
            raise TemplateError(f"{t.path}: unknown keys {sorted(unknown)}")
        v = b.get("version")
        if type(v) is not int or v < 1:
            raise TemplateError(f"{t.path}: `version` must be an integer >= 1, not {v!r}")
        meta = b.get("_meta")
        if not isinstance(meta, dict) or meta.get("project") != PROJECT:
            raise TemplateError(f'{t.path}: `_meta` must name the project ("project": "{PROJECT}")')
        tpl = b.get("template", {})
        if not isinstance(tpl, dict) or set(tpl) - _TEMPLATE_KEYS:
            raise TemplateError(f"{t.path}: `template` must be an object with keys among {sorted(_TEMPLATE_KEYS)}")
        if t.kind == INDEX:
            pats = b.get("index_patterns")
            if not isinstance(pats, list) or not pats or not all(isinstance(p, str) and p for p in pats):
                raise TemplateError(f"{t.path}: `index_patterns` must be a non-empty list of strings")
    components = {t.name: t.body for t in templates if t.kind == COMPONENT}
    seen: dict[tuple[str, int], str] = {}
    for t in templates:
        if t.kind != INDEX:
            continue
        try:
            compose(t.body, components)
        except TemplateError as e:
            raise TemplateError(f"{t.path}: {e}") from None
        for p in t.body["index_patterns"]:
            key = (p, t.body.get("priority", 0))
            if key in seen:
                raise TemplateError(f"{t.path}: pattern {p!r} at priority {key[1]} is also in {seen[key]}")
            seen[key] = t.name


def content_hash(body: Mapping[str, Any]) -> str:
    """A hash of what a template says, its `version` and the added project version left
    out: the lock file records it to catch a change without a version bump."""
    b = {k: v for k, v in body.items() if k != "version"}
    meta = b.get("_meta")
    if isinstance(meta, dict):
        b["_meta"] = {k: v for k, v in meta.items() if k != "project_version"}
    return hashlib.sha256(json.dumps(b, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def lock_entries(templates: Iterable[Template]) -> dict[str, dict[str, Any]]:
    return {f"{t.kind}/{t.name}": {"version": t.version, "sha256": content_hash(t.body)} for t in templates}


# -- composition (what an index gets), for checks without a server ---------------------------------

def compose(index_template: Mapping[str, Any], components: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The settings and mappings an index matching `index_template` gets, as Elasticsearch
    composes them: the components in `composed_of` order, then the index template's own
    `template`; later ones win. Settings are returned flat (`index.number_of_shards`)."""
    ignore = set(index_template.get("ignore_missing_component_templates") or ())
    settings: dict[str, Any] = {}
    mappings: dict[str, Any] = {}
    parts = []
    for name in index_template.get("composed_of") or ():
        comp = components.get(name)
        if comp is None:
            if name in ignore:
                continue
            raise TemplateError(f"composed of {name!r}, which does not exist")
        parts.append(comp.get("template") or {})
    parts.append(index_template.get("template") or {})
    for part in parts:
        settings.update(_flat_settings(part.get("settings") or {}))
        _merge_mappings(mappings, part.get("mappings") or {})
    return {"settings": settings, "mappings": mappings}


def _flat_settings(s: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in s.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(_flat_settings(v, key + "."))
        else:
            out[key] = v
    if not prefix:
        out = {(k if k.startswith("index.") else f"index.{k}"): v for k, v in out.items()}
    return out


def _merge_mappings(into: dict[str, Any], new: Mapping[str, Any]) -> None:
    for k, v in new.items():
        if k == "properties":
            _merge_properties(into.setdefault("properties", {}), v)
        elif k == "dynamic_templates":
            current = into.setdefault("dynamic_templates", [])
            for entry in v:
                (name,) = entry
                for i, old in enumerate(current):
                    if name in old:
                        current[i] = copy.deepcopy(entry)
                        break
                else:
                    current.append(copy.deepcopy(entry))
        else:
            into[k] = copy.deepcopy(v)


def _merge_properties(into: dict[str, Any], new: Mapping[str, Any]) -> None:
    for field, spec in new.items():
        old = into.get(field)
        if (old is not None and "properties" in old and "properties" in spec
                and old.get("type", "object") == spec.get("type", "object")):
            _merge_properties(old["properties"], spec["properties"])
            for k, v in spec.items():
                if k != "properties":
                    old[k] = copy.deepcopy(v)
        else:
            into[field] = copy.deepcopy(spec)


def field_mapping(mappings: Mapping[str, Any], path: str) -> dict[str, Any] | None:
    """The explicit mapping of a dotted field (`source.geo.location`), or None."""
    node: Any = mappings
    for part in path.split("."):
        props = node.get("properties") if isinstance(node, Mapping) else None
        if not isinstance(props, Mapping) or part not in props:
            return None
        node = props[part]
    return node


# -- the decision, and the install ------------------------------------------------------------------

def decide(ours: int, theirs: Mapping[str, Any] | None) -> str:
    """What to do with our template of version `ours`, the server holding `theirs` (its
    stored body, None when absent). A template without a version counts as version 0."""
    if theirs is None:
        return INSTALLED
    v = theirs.get("version")
    their_version = v if type(v) is int else 0
    if their_version < ours:
        return UPGRADED
    if their_version == ours:
        return UP_TO_DATE
    return KEPT_NEWER


def install_templates(client: Any, directory: Path | str | None = None, *,
                      log: logging.Logger = logger) -> dict[str, str]:
    """Install (or upgrade) the templates of `directory` (default: `default_directory()`)
    on the cluster behind `client`; returns {name: installed|upgraded|up-to-date|kept-newer}.
    Components go first: an index template is refused while a component it needs is
    missing. An error answer from the server (other than "not found" on a read) raises the
    client's exception; what was installed before it stays, which is harmless (the next
    start finds it up to date)."""
    templates = load_templates(directory)
    done: dict[str, str] = {}
    for t in templates:
        done[t.name] = _install_one(client, t, log)
    return done


def _install_one(client: Any, t: Template, log: logging.Logger) -> str:
    for attempt in range(2):
        theirs = _get(client, t)
        action = decide(t.version, theirs)
        their_version = None if theirs is None else theirs.get("version")
        extra = {"template": t.name, "kind": t.kind, "version": t.version, "server_version": their_version}
        if action == UP_TO_DATE:
            log.debug("elasticsearch %s is up to date", t.label, extra=extra)
            return action
        if action == KEPT_NEWER:
            log.warning("elasticsearch %s: the server has version %s, newer than ours (%s): kept",
                        t.label, their_version, t.version, extra=extra)
            return action
        try:
            # create=True when absent: two instances starting together cannot both "install",
            # the second one re-reads and decides again.
            _put(client, t, create=action == INSTALLED)
        except Exception as e:
            if action == INSTALLED and attempt == 0 and status_of(e) == 400 and "already exists" in str(e):
                continue
            raise
        log.info("elasticsearch %s %s (version %s%s)", t.label, action, t.version,
                 "" if their_version is None else f", was {their_version}", extra=extra)
        return action
    raise AssertionError("unreachable")


def status_of(e: BaseException) -> int | None:
    """The HTTP status an elasticsearch-py error carries (versions 8 and 9 differ), if any."""
    status = getattr(e, "status_code", None)
    if status is None:
        status = getattr(getattr(e, "meta", None), "status", None)
    return status if isinstance(status, int) else None


def body_of(resp: Any) -> Any:
    """The decoded body of an elasticsearch-py response (an ObjectApiResponse or a plain value)."""
    return getattr(resp, "body", resp)


def _get(client: Any, t: Template) -> dict[str, Any] | None:
    try:
        if t.kind == COMPONENT:
            found = body_of(client.cluster.get_component_template(name=t.name))["component_templates"]
            key = "component_template"
        else:
            found = body_of(client.indices.get_index_template(name=t.name))["index_templates"]
            key = "index_template"
    except Exception as e:
        if status_of(e) == 404:
            return None
        raise
    for item in found:
        if item.get("name") == t.name:
            return item[key]
    return None


def _put(client: Any, t: Template, *, create: bool) -> None:
    body = copy.deepcopy(t.body)
    if t.kind == COMPONENT:
        client.cluster.put_component_template(name=t.name, body=body, create=create)
    else:
        client.indices.put_index_template(name=t.name, body=body, create=create)


# -- by hand -------------------------------------------------------------------------------------------

def write_lock(directory: Path | str | None = None) -> Path:
    root = Path(directory) if directory is not None else default_directory()
    path = root / LOCK_FILE
    path.write_text(json.dumps(lock_entries(load_templates(root)), indent=2, sort_keys=True) + "\n")
    return path


def main(argv: list[str] | None = None) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="python -m streams.sinks.es_templates",
                                description="Elasticsearch index templates of streams")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("check", help="load and validate the templates")
    sub.add_parser("lock", help=f"rewrite {LOCK_FILE} (after raising the versions of changed files)")
    p.add_argument("--dir", type=Path, default=None, help="templates folder (default: the built-in one)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        if args.command == "check":
            for t in load_templates(args.dir):
                print(f"{t.label}: version {t.version}")
        else:
            print(write_lock(args.dir))
    except TemplateError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
