"""Config error machinery: YAML with line numbers; pydantic errors turned into :class:`ConfigProblem` lines.

Split out of :mod:`edge.config` so the settings tree stays readable; :func:`edge.config.load_settings` is the
only caller. Every problem carries the dotted path, the 1-based YAML line, the value as written and a reason.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from edge.errors import ConfigError, ConfigProblem
from edge.logs import MASK, redact_url


def to_plain(node: Any) -> Any:
    """ruamel round-trip nodes -> plain dicts/lists/scalars."""
    if isinstance(node, Mapping):
        return {str(k): to_plain(v) for k, v in node.items()}
    if isinstance(node, list | tuple):
        return [to_plain(v) for v in node]
    if hasattr(node, "__float__") and type(node).__name__ == "ScalarFloat":
        return float(node)
    if type(node).__name__ == "ScalarBoolean":
        return bool(node)
    if type(node).__name__ in {"ScalarInt", "HexInt", "OctalInt", "BinaryInt", "HexCapsInt"}:
        return int(node)
    if isinstance(node, str):
        return str(node)
    return node


def locate(tree: Any, loc: Sequence[int | str]) -> tuple[list[int | str], int | None]:
    """Follow ``loc`` through the YAML tree; return the part of it that exists and the 1-based line."""
    path: list[int | str] = []
    line: int | None = None
    node = tree
    for key in loc:
        lc = getattr(node, "lc", None)
        if isinstance(node, Mapping) and isinstance(key, str) and key in node:
            if lc is not None:
                line = lc.key(key)[0] + 1
            path.append(key)
            node = node[key]
        elif isinstance(node, list) and isinstance(key, int) and 0 <= key < len(node):
            if lc is not None:
                line = lc.item(key)[0] + 1
            path.append(key)
            node = node[key]
        else:
            break
    return path, line


# Pydantic puts union member tags such as "str" or "literal['a','b']" into error locations; they are not
# keys a user wrote, so they are dropped from the dotted path.
_UNION_TAG = re.compile(r"^(str|int|float|bool|none|literal\[.*\]|tuple\[.*\]|list\[.*\]|function-.*)$")


# ----------------------------------------------------------------------------------------------------------
# Redaction: a config error never prints a secret (issue 15, items 8 and 9). Values under these keys are
# masked whatever their type (a numeric or list password too), a ``username`` next to one of them is masked
# as well (user + password together identify an account), URL userinfo is masked in every string, and every
# secret string found in the file, the environment or $CREDENTIALS_DIRECTORY is masked wherever it appears.

SECRET_KEYS = frozenset({"password", "passwd", "secret", "token", "api_key"})
_SECRET_LINE = re.compile(
    r"^\s*-?\s*[\"']?(?:password|passwd|secret|token|api_key)[\"']?\s*:\s*(?P<v>.+?)\s*$",
    re.IGNORECASE | re.MULTILINE,
)


def _is_secret_key(key: object) -> bool:
    return isinstance(key, str) and key.lower() in SECRET_KEYS


def harvest_secrets(tree: Any = None, text: str = "") -> list[str]:
    """Secret strings to mask: values under secret keys in ``tree`` or ``text``, env and credential files."""
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, Mapping):
            for k, v in node.items():
                if _is_secret_key(k) and not isinstance(v, Mapping | list):
                    found.append(str(v))
                walk(v)
        elif isinstance(node, list | tuple):
            for v in node:
                walk(v)

    walk(tree)
    found += [m["v"].strip("\"'") for m in _SECRET_LINE.finditer(text)]
    found += [
        v for k, v in os.environ.items() if k.startswith("EDGE_") and any(s in k.lower() for s in SECRET_KEYS)
    ]
    cred_dir = os.environ.get("CREDENTIALS_DIRECTORY")
    if cred_dir:
        for f in Path(cred_dir).glob("*password*"):
            try:
                found.append(f.read_text(encoding="utf-8").strip())
            except (OSError, UnicodeDecodeError):
                continue
    # Short strings are not masked everywhere: masking every "1" would destroy the message.
    return sorted({s for s in found if len(s) >= 3}, key=len, reverse=True)


def redact_text(text: str, secrets: Sequence[str]) -> str:
    """URL userinfo and every known secret string masked."""
    text = redact_url(text)
    for secret in secrets:
        text = text.replace(secret, MASK)
    return text


def redact_value(value: Any, key: object, secrets: Sequence[str], paired_user: bool = False) -> Any:
    """``value`` (found under ``key``) with every secret masked; containers are copied, never changed."""
    if _is_secret_key(key) or (paired_user and key == "username"):
        return None if value is None else MASK
    if isinstance(value, Mapping):
        has_secret = any(_is_secret_key(k) for k in value)
        return {k: redact_value(v, k, secrets, has_secret) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_value(v, None, secrets) for v in value]
    if isinstance(value, str):
        return redact_text(value, secrets)
    if value is not None and not isinstance(value, bool) and str(value) in secrets:
        return MASK
    return value


def _parent(tree: Any, loc: Sequence[int | str]) -> Any:
    node = tree
    for key in loc[:-1]:
        try:
            node = node[key]
        except (KeyError, IndexError, TypeError):
            return None
    return node


def problems_from_validation(
    err: ValidationError, tree: Any, env_keys: set[str], secrets: Sequence[str] | None = None
) -> list[ConfigProblem]:
    """One :class:`ConfigProblem` per pydantic error, with line numbers and every secret masked."""
    if secrets is None:
        secrets = harvest_secrets(tree)
    problems: list[ConfigProblem] = []
    seen: set[tuple[str, str]] = set()
    errors = err.errors(include_url=False)
    for e in errors:
        if e["type"] == "too_short" and any(
            o is not e and o["loc"][: len(e["loc"])] == e["loc"] for o in errors
        ):
            continue  # pydantic also calls a list "too short" when some of its items failed
        loc = [part for part in e["loc"] if not (isinstance(part, str) and _UNION_TAG.match(part))]
        found, line = locate(tree, loc)
        if len(found) < len(loc) and all(isinstance(p, int) for p in loc[len(found) :]):
            loc = found  # an index into a value the user wrote as a scalar (e.g. `providers: opencl`)
        dotted = ".".join(str(p) for p in loc)
        kind = e["type"]
        if kind == "missing":
            reason = "required field is missing"
            value: object = None
        elif kind == "extra_forbidden":
            reason = "unknown key (check the spelling; `edge schema` lists every key)"
            value = None
        else:
            reason = e["msg"].removeprefix("Value error, ")
            value = e.get("input")
            if isinstance(value, Mapping | list) and len(found) < len(loc):
                value = None  # the input is the parent object; printing it would not help
        if dotted.replace(".", "__").upper() in env_keys or any(
            k.startswith(dotted.split(".")[0].upper() + "__") for k in env_keys if "." not in dotted
        ):
            reason += " [from environment]"
        key = (dotted, reason)
        if key in seen:
            continue
        seen.add(key)
        parent = _parent(tree, loc)
        paired = isinstance(parent, Mapping) and any(_is_secret_key(k) for k in parent)
        shown = redact_value(to_plain(value), loc[-1] if loc else None, secrets, paired)
        problems.append(ConfigProblem(dotted, line, shown, redact_text(reason, secrets)))
    return problems


def read_yaml(path: Path) -> Any:
    from ruamel.yaml import YAML  # noqa: PLC0415 - keep import cost out of `edge --help`
    from ruamel.yaml.error import MarkedYAMLError  # noqa: PLC0415

    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        problem = ConfigProblem("", None, None, f"cannot read config: {exc.strerror}")
        raise ConfigError([problem], str(path)) from None
    except UnicodeDecodeError:
        raise ConfigError([ConfigProblem("", None, None, "config is not UTF-8 text")], str(path)) from None
    yaml = YAML(typ="rt")
    try:
        tree = yaml.load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        reason = redact_text(f"YAML syntax error: {exc.problem or exc.context}", harvest_secrets(text=text))
        raise ConfigError([ConfigProblem("", line, None, reason)], str(path)) from None
    except Exception as exc:  # ruamel raises a few non-Marked errors (e.g. duplicate keys)
        reason = redact_text(f"YAML error: {exc}", harvest_secrets(text=text))
        raise ConfigError([ConfigProblem("", None, None, reason)], str(path)) from None
    if tree is None:
        tree = {}
    if not isinstance(tree, Mapping):
        lc = getattr(tree, "lc", None)
        line = lc.line + 1 if lc is not None and lc.line is not None else 1
        raise ConfigError(
            [ConfigProblem("", line, None, "the config must be a mapping of keys (node:, cameras:, ...)")],
            str(path),
        )
    return tree
