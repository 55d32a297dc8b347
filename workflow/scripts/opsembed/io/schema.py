"""The defaults of the config schema (``config/schema/config.schema.yaml``), the one place
every default of a config key is written.

``schema_defaults("methods.grape")`` is what validation (``snakemake.utils.validate`` with
``set_default=True``) fills in for that block when the config leaves it out. The library
reads a block through ``block_config(path, cfg)``: the schema's defaults updated by what a
rule or a test passes, so a key left out by either takes the schema's value and no other.
"""

from __future__ import annotations

import copy
import functools

import yaml

from .config import SCHEMA
from .errors import InputError


@functools.lru_cache(maxsize=1)
def _schema() -> dict:
    with open(SCHEMA) as handle:
        return yaml.safe_load(handle)     # anchors and ``<<`` merge keys are resolved here


def fill_defaults(schema: dict, value):
    """``value`` (modified in place and returned) with the defaults of ``schema`` filled in,
    as validation fills them: a missing property with a ``default`` gets a copy of it, then
    objects are filled inside (also the items of arrays)."""
    if isinstance(value, dict):
        for key, sub in schema.get("properties", {}).items():
            if key not in value and "default" in sub:
                value[key] = copy.deepcopy(sub["default"])
            if key in value:
                fill_defaults(sub, value[key])
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for item in value:
            fill_defaults(schema["items"], item)
    return value


def schema_of(path: str = "") -> dict:
    """The schema of the config block at dotted ``path`` ("" the whole config)."""
    node = _schema()
    for part in filter(None, path.split(".")):
        props = node.get("properties", {})
        if part not in props:
            raise KeyError(f"the config schema has no block {path!r} (no {part!r}); known: {sorted(props)}")
        node = props[part]
    return node


def schema_defaults(path: str = "") -> dict:
    """Every key of the block at dotted ``path`` with its schema default, nested blocks
    filled (a fresh copy: callers may change it)."""
    return fill_defaults(schema_of(path), {})


def merge_block(defaults: dict, cfg: dict | None, where: str) -> dict:
    """``defaults`` updated by ``cfg`` (one level of nested dicts merged too).

    Raises InputError naming ``where`` and the key for keys ``defaults`` lacks.
    """
    out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in defaults.items()}
    for key, value in (cfg or {}).items():
        if key not in defaults:
            raise InputError(f"{where}: unknown key {key!r}. Known keys: {sorted(defaults)}.")
        if isinstance(defaults[key], dict):
            unknown = set(value or {}) - set(defaults[key])
            if unknown:
                raise InputError(f"{where}.{key}: unknown key(s) {sorted(unknown)}. "
                                 f"Known: {sorted(defaults[key])}.")
            out[key].update(value or {})
        else:
            out[key] = value
    return out


def block_config(path: str, cfg: dict | None) -> dict:
    """The config block at dotted ``path`` (e.g. "methods.grape") as a job uses it: the
    schema's defaults updated by ``cfg`` (``merge_block``), checked against the block's
    schema and its cross-key rules (``opsembed.io.config_rules``).

    ``cfg`` may be a whole block (what a rule passes, already validated) or a part of one
    (a test, a call outside Snakemake). Raises InputError naming ``path`` and the key.
    """
    from jsonschema import Draft202012Validator

    from .config_rules import check_block_rules

    schema = schema_of(path)
    out = fill_defaults(schema, merge_block(schema_defaults(path), cfg, path))
    error = next(iter(sorted(Draft202012Validator(schema).iter_errors(out), key=lambda e: list(e.path))), None)
    if error is not None:
        where = ".".join([path] + [str(p) for p in error.absolute_path])
        raise InputError(f"{where}: {error.message}. See config/README.md.")
    check_block_rules(path, out)
    return out
