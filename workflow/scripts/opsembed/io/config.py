"""The pipeline configuration: the files a run merges, numeric strings made numbers,
validation against the JSON schema (defaults filled in) and the cross-key rules.

A run's config is, from bottom to top: ``config/config.yaml`` (the schema's defaults,
written out), then ``config/demo.yaml`` when the run is the simulated demo (``input.cells``
is the demo's), then the user's ``--configfile`` files and ``--config`` values. The
Snakefile builds it with ``configfile:`` directives; :func:`load_config` builds the same
outside Snakemake, and both check it with :func:`validate_config`.
"""

from __future__ import annotations

import copy
import os
import re
from pathlib import Path
from typing import Sequence

import yaml

from .errors import InputError

CONFIG_DIR = Path(__file__).resolve().parents[4] / "config"
"""``<repo>/config`` (this file is workflow/scripts/opsembed/io/config.py)."""
SCHEMA = CONFIG_DIR / "schema" / "config.schema.yaml"
DEFAULT_CONFIG = CONFIG_DIR / "config.yaml"
DEMO_CONFIG = CONFIG_DIR / "demo.yaml"
"""Settings that suit only the simulated demo, applied beneath the user's files."""

DEMO_DIR = "resources/demo"
DEMO_INPUT = {
    "tiles": f"{DEMO_DIR}/tiles/{{plate}}/{{well}}/{{tile}}.tif",
    "cells": f"{DEMO_DIR}/cells.csv",
    "ground_truth": f"{DEMO_DIR}/complexes.tsv",
}
"""The demo's input paths (the schema's defaults of ``input.*``)."""

_NUMBER = re.compile(r"[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?")
"""A decimal or scientific number as users write it; PyYAML reads ``1e-4`` (no dot) as text."""


def is_demo(cfg: dict) -> bool:
    """Whether ``cfg`` (merged, defaults filled in or not) runs the simulated demo screen:
    its ``input.cells`` is the demo's, or left out. (A malformed ``input`` is not the demo;
    validation then names it.)"""
    given = cfg.get("input", {}) if isinstance(cfg, dict) else None
    return isinstance(given, dict) and given.get("cells", DEMO_INPUT["cells"]) == DEMO_INPUT["cells"]


def read_config_file(path: str | os.PathLike) -> dict:
    """The mapping in a YAML config file; InputError naming the file when it is missing,
    not YAML, or not a mapping."""
    if not os.path.exists(path):
        raise InputError(f"{path}: config file not found.")
    with open(path) as handle:
        try:
            cfg = yaml.safe_load(handle)
        except yaml.YAMLError as exc:
            raise InputError(f"{path}: not valid YAML ({exc}).") from None
    if cfg is None:
        return {}
    if not isinstance(cfg, dict):
        raise InputError(f"{path}: the config must be a mapping of keys to values.")
    return cfg


def load_config(path: str | os.PathLike | Sequence[str | os.PathLike] | None = None) -> dict:
    """The config a workflow run given ``--configfile path`` (one file or several, in order;
    None: none) sees: config.yaml, demo.yaml when the result runs the demo, the user's files,
    validated and with every missing key at the schema's default. Raises InputError naming
    the file and the offending key.
    """
    from snakemake.utils import update_config  # Snakemake's merge: mappings key by key

    paths = [] if path is None else [path] if isinstance(path, (str, os.PathLike)) else list(path)
    user: dict = {}
    for p in paths:
        update_config(user, read_config_file(p))
    cfg = read_config_file(DEFAULT_CONFIG)
    update_config(cfg, copy.deepcopy(user))
    if is_demo(cfg):
        update_config(cfg, read_config_file(DEMO_CONFIG))
        update_config(cfg, copy.deepcopy(user))
    source = " + ".join(str(p) for p in paths) if paths else str(DEFAULT_CONFIG)
    return copy.deepcopy(validate_config(cfg, source))


def validate_config(cfg: dict, source: str = "config") -> dict:
    """Check ``cfg`` in place and return it: numbers written as text (``1e-4``) become
    numbers where the schema asks for one, then the schema (Snakemake's validator, which
    fills in every default), then the cross-key rules (opsembed.io.config_rules).
    ``source`` names the config in error messages. Raises InputError naming the key.
    """
    from snakemake.exceptions import WorkflowError
    from snakemake.utils import validate

    from .config_rules import check_config_rules
    from .schema import schema_of  # the schema, read once per process

    if not isinstance(cfg, dict):
        raise InputError(f"{source}: the config must be a mapping of keys to values.")
    coerce_numbers(cfg, schema_of(""))
    try:
        validate(cfg, str(SCHEMA), set_default=True)
    except WorkflowError as exc:
        cause = exc.__context__ if exc.__context__ is not None else exc
        where = "/".join(str(p) for p in getattr(cause, "absolute_path", [])) or "(top level)"
        message = getattr(cause, "message", str(cause))
        raise InputError(f"{source}: invalid config at {where}: {message}. "
                         f"See config/README.md and {SCHEMA}.") from None
    check_config_rules(cfg, source)
    return cfg


def coerce_numbers(value, schema: dict):
    """Turn strings that spell a number (``"1e-4"``, ``"5e3"``) into numbers wherever
    ``schema`` (a JSON-schema node) expects a number or an integer and not a string;
    containers are converted in place. An integer's text must spell a whole number
    (``"5e3"`` -> 5000); any other text is left for the validator to reject."""
    if isinstance(value, dict):
        props = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        for key, item in value.items():
            sub = props.get(key, extra if isinstance(extra, dict) else None)
            if sub is not None:
                value[key] = coerce_numbers(item, sub)
        return value
    if isinstance(value, list):
        items = schema.get("items")
        if isinstance(items, dict):
            value[:] = [coerce_numbers(item, items) for item in value]
        return value
    if not isinstance(value, str) or not _NUMBER.fullmatch(value.strip()):
        return value
    types = schema.get("type", [])
    types = [types] if isinstance(types, str) else list(types)
    if "string" in types:
        return value
    number = float(value)
    if "integer" in types and number.is_integer():
        return int(number)
    if "number" in types:
        return number
    return value
