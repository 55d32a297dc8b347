"""Cross-key rules of the config: what the JSON schema cannot say (a key's value checked
against another key's), in one place.

Entry point: ``check_config_rules(cfg, source)`` on a whole validated config (called by
``opsembed.io.config.validate_config``, i.e. at workflow start and by ``load_config``).
``check_block_rules(path, block)`` runs the rules of one block; the library calls it when
it fills a block from the schema (``opsembed.io.schema.block_config``), so a block given
outside Snakemake is held to the same rules. A rule is a function of one block that raises
InputError naming the key; add it to ``RULES`` under the block's dotted path.
"""

from __future__ import annotations

from typing import Callable

from .errors import InputError

IID = "iid"
"""Fold id and level name of the OOD benchmark's IID split (no level may take it)."""


def _ood(ood: dict, where: str) -> None:
    names = [level["name"] for level in ood["levels"]]
    if IID in names or len(set(names)) != len(names):
        raise InputError(f"{where}.levels: names {names} must be unique and not {IID!r}.")
    if ood["batch_level"] not in names:
        raise InputError(f"{where}.batch_level {ood['batch_level']!r} is not one of {where}.levels' "
                         f"names {names}; name one of them.")


def _ist(ist: dict, where: str) -> None:
    if not 0 <= ist["pretrain_iterations"] < ist["iterations"]:
        raise InputError(f"{where}: pretrain_iterations ({ist['pretrain_iterations']}) must be below "
                         f"iterations ({ist['iterations']}), the total step count.")


RULES: dict[str, Callable[[dict, str], None]] = {"ood": _ood, "ood.ist": _ist}
"""Dotted block path -> its rule (called with the block, defaults filled, and its path)."""


def check_block_rules(path: str, block: dict) -> None:
    """Run the rule of the block at dotted ``path`` (if any) on ``block``; InputError on a breach."""
    if path in RULES:
        RULES[path](block, path)


def check_config_rules(cfg: dict, source: str = "config") -> None:
    """Run every rule of ``RULES`` on a whole config (defaults filled in); InputError
    starting with ``source`` (e.g. the config file's name) on the first breach."""
    for path, rule in RULES.items():
        block = cfg
        for part in path.split("."):
            block = block.get(part) if isinstance(block, dict) else None
        if isinstance(block, dict):
            try:
                rule(block, path)
            except InputError as exc:
                raise InputError(f"{source}: {exc}") from None
