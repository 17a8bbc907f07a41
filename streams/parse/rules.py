"""Product rule files (`patterns/*.yaml`): which programs a product owns and which
top-level grok patterns, tried in order, turn its messages into fields.

```yaml
parsers:
  - name: sshd
    dataset: sshd.log
    programs: [sshd, sshd-session]     # exact process names (after normalisation)
    hooks: [source_address]            # run after any rule of this parser matched
    rules:
      - pattern: SSHD_FAILED_PASSWORD  # a NAME from a .grok file
        set: {event.outcome: failure, event.category: [authentication]}
        hooks: []                      # run after this rule only
```
A rule file is data; `build_parsers` compiles all rules of a parser into one
alternation once, at start.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .grok import Alternation, GrokLibrary, KeyedAlternation, PatternError, field_path

_YamlLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when present

# Hooks are post-processing steps too irregular for a regex (key=value tails, JSON
# bodies). Names map to "module:function" (or are written that way in the rule file)
# and are imported only when a rule uses them.
HOOKS: dict[str, str] = {
    "source_address": "streams.parse.hooks:source_address",
    "postfix": "streams.parse.products.postfix:postfix_hook",
    "fail2ban": "streams.parse.products.fail2ban:fail2ban_hook",
    "wazuh_json": "streams.parse.products.wazuh:wazuh_json_hook",
    "wazuh_text": "streams.parse.products.wazuh:wazuh_text_hook",
}

# A hook gets (fields, event, parser): the parser offers `times` for timestamps.
Hook = Callable[[dict, Any, Any], None]


def resolve_hook(name: str, origin: str) -> Hook:
    target = HOOKS.get(name) or (name if ":" in name else None)
    if target is None:
        raise PatternError(f"unknown hook {name!r} (known: {', '.join(sorted(HOOKS))})", origin)
    mod, _, fn = target.partition(":")
    try:
        return getattr(importlib.import_module(mod), fn)
    except (ImportError, AttributeError) as e:
        raise PatternError(f"hook {name!r} cannot be loaded: {e}", origin) from None


def _setter(values: dict[str, Any], origin: str) -> tuple[tuple[tuple[str, ...], str, Any], ...]:
    out = []
    for k, v in (values or {}).items():
        try:
            path = field_path(k)
        except PatternError as e:
            raise PatternError(str(e), origin) from None
        # tuples: shared by every event, so they must be immutable (orjson writes arrays)
        out.append((path[:-1], path[-1], tuple(v) if isinstance(v, list) else v))
    return tuple(out)


@dataclass(slots=True)
class Rule:
    name: str
    sets: tuple[tuple[tuple[str, ...], str, Any], ...]
    hooks: tuple[Hook, ...]
    origin: str
    after: tuple[Hook, ...] = ()  # this rule's hooks, then its parser's


@dataclass(slots=True)
class ProductParser:
    name: str
    dataset: str
    programs: tuple[str, ...]
    rules: list[Rule]
    hooks: tuple[Hook, ...]
    origin: str
    matcher: Alternation | KeyedAlternation | None = None
    sets: tuple = field(default_factory=tuple)


def _expect(value: Any, kind: type | tuple[type, ...], what: str, origin: str) -> Any:
    """A rule file's value of the wrong shape (`programs: sshd` for `[sshd]`) is an error
    naming where it is, not a traceback or a silently different meaning."""
    if not isinstance(value, kind):
        raise PatternError(f"{what} must be {_SHAPES.get(kind, 'a string')}, not {value!r}", origin)
    return value


_SHAPES = {list: "a list", dict: "a mapping", str: "a string"}


def _strings(value: Any, what: str, origin: str) -> list[str]:
    """An optional list of strings (`programs`, `hooks`): [] when absent."""
    for item in _expect(value or [], list, what, origin):
        _expect(item, str, f"an item of {what}", origin)
    return value or []


def load_rule_file(path: Path, lib: GrokLibrary) -> list[ProductParser]:
    origin = str(path)
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_YamlLoader) or {}
    except yaml.YAMLError as e:
        raise PatternError(f"bad YAML: {e}", origin) from None
    except (OSError, UnicodeDecodeError) as e:
        raise PatternError(f"cannot read: {e}", origin) from None
    _expect(data, dict, "the file", origin)
    parsers = []
    for i, spec in enumerate(_expect(data.get("parsers") or [], list, "parsers", origin)):
        porigin = f"{origin}: parsers[{i}]"
        _expect(spec, dict, "a parser", porigin)
        for key in ("name", "dataset", "rules"):
            if key not in spec:
                raise PatternError(f"missing {key!r}", porigin)
        for key in ("name", "dataset"):
            _expect(spec[key], str, key, porigin)
        for key in ("programs", "hooks"):
            _strings(spec.get(key), key, porigin)
        _expect(spec.get("set") or {}, dict, "set", porigin)
        rules = []
        for j, r in enumerate(_expect(spec["rules"] or [], list, "rules", porigin)):
            rorigin = f"{porigin}.rules[{j}]"
            _expect(r, dict, "a rule", rorigin)
            _expect(r.get("set") or {}, dict, "set", rorigin)
            _strings(r.get("hooks"), "hooks", rorigin)
            name = r.get("pattern")
            if not isinstance(name, str) or name not in lib.definitions:
                raise PatternError(f"rule names unknown pattern {name!r}", rorigin)
            rules.append(Rule(name, _setter(r.get("set"), rorigin),
                              tuple(resolve_hook(h, rorigin) for h in r.get("hooks") or ()), rorigin))
        p = ProductParser(
            name=spec["name"], dataset=spec["dataset"], programs=tuple(spec.get("programs") or ()),
            rules=rules, hooks=tuple(resolve_hook(h, porigin) for h in spec.get("hooks") or ()),
            origin=porigin, sets=_setter(spec.get("set"), porigin))
        for rule in rules:
            rule.after = rule.hooks + p.hooks
        # constant fields are folded into each rule's generated fill function
        p.matcher = lib.compile_alternation(
            # errors name the rule (its `set` may be at fault) and the pattern's file:line
            (rule, f"%{{{rule.name}}}", f"{rule.origin} (pattern {rule.name} at {lib.definitions[rule.name].origin})",
             p.sets + rule.sets) for rule in rules)
        parsers.append(p)
    return parsers


def load_rules(directories: list[Path], lib: GrokLibrary) -> list[ProductParser]:
    """Later directories override parsers of the same name from earlier ones."""
    by_name: dict[str, ProductParser] = {}
    for d in directories:
        for path in sorted(Path(d).glob("*.yaml")):
            for p in load_rule_file(path, lib):
                by_name[p.name] = p
    return list(by_name.values())
