"""The pipeline configuration, validated against the JSON schema with defaults filled in."""

from __future__ import annotations

import copy
import os
from pathlib import Path

import yaml

from .errors import InputError

SCHEMA = Path(__file__).resolve().parents[4] / "config" / "schema" / "config.schema.yaml"
"""``<repo>/config/schema/config.schema.yaml`` (this file is workflow/scripts/opsembed/io/config.py)."""


def load_config(path: str | os.PathLike | None = None) -> dict:
    """Read a YAML config (or start from ``{}`` when ``path`` is None) and validate it.

    Validation is Snakemake's own (``snakemake.utils.validate`` with ``set_default=True``),
    so the result equals the ``config`` a workflow run sees: every missing key gets the
    schema's default. Raises InputError naming the file and the offending key.
    """
    from snakemake.exceptions import WorkflowError
    from snakemake.utils import validate

    cfg: dict = {}
    if path is not None:
        if not os.path.exists(path):
            raise InputError(f"{path}: config file not found.")
        with open(path) as handle:
            try:
                cfg = yaml.safe_load(handle) or {}
            except yaml.YAMLError as exc:
                raise InputError(f"{path}: not valid YAML ({exc}).") from None
        if not isinstance(cfg, dict):
            raise InputError(f"{path}: the config must be a mapping of keys to values.")
    source = path if path is not None else "default config"
    try:
        validate(cfg, str(SCHEMA), set_default=True)
    except WorkflowError as exc:
        cause = exc.__context__ if exc.__context__ is not None else exc
        where = "/".join(str(p) for p in getattr(cause, "absolute_path", [])) or "(top level)"
        message = getattr(cause, "message", str(cause))
        raise InputError(f"{source}: invalid config at {where}: {message}. "
                         f"See config/README.md and {SCHEMA}.") from None
    return copy.deepcopy(cfg)
