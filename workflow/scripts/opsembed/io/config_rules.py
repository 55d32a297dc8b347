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


def _ood_image_sizes(ood: dict, where: str) -> None:
    """The ist and stargan predictors restyle their inputs with the fold's generator of that
    kind, so the generator's image_size must be the predictor's."""
    if not ood.get("enabled", True) or "predictor" not in ood:
        return
    size = ood["predictor"]["image_size"]
    for kind in ("ist", "stargan"):
        if kind in ood.get("predictors", ()) and kind in ood and ood[kind]["image_size"] != size:
            raise InputError(f"{where}.{kind}.image_size ({ood[kind]['image_size']}) differs from "
                             f"{where}.predictor.image_size ({size}); the {kind} predictor restyles "
                             f"its inputs with that generator, so make the two equal.")


def _rescale(rescale: dict, where: str) -> None:
    if rescale["low"] >= rescale["high"]:
        raise InputError(f"{where}.low ({rescale['low']}) must be below {where}.high ({rescale['high']}): "
                         f"they are the percentiles mapped to 0 and 1.")


def _ground_truth(gt: dict, where: str) -> None:
    if gt["min_genes"] > gt["max_genes"]:
        raise InputError(f"{where}.min_genes ({gt['min_genes']}) is larger than {where}.max_genes "
                         f"({gt['max_genes']}); lower min_genes or raise max_genes.")


def _kmeans(km: dict, where: str) -> None:
    if km["k_min"] > km["k_max"]:
        raise InputError(f"{where}.k_min ({km['k_min']}) is larger than {where}.k_max ({km['k_max']}); "
                         f"the k sweep would be empty.")


def _attention(gan: dict, where: str) -> None:
    if gan["attention"] and gan["embed_dim"] % gan["attention_heads"]:
        raise InputError(f"{where}.attention_heads ({gan['attention_heads']}) must divide "
                         f"{where}.embed_dim ({gan['embed_dim']}) when {where}.attention is true.")


def _ist(ist: dict, where: str) -> None:
    if not 0 <= ist["pretrain_iterations"] < ist["iterations"]:
        raise InputError(f"{where}.pretrain_iterations ({ist['pretrain_iterations']}) must be below "
                         f"{where}.iterations ({ist['iterations']}), the total step count.")
    if ist.get("warmup_iterations", 0) and ist["pretrain_iterations"] + ist["warmup_iterations"] >= ist["iterations"]:
        raise InputError(f"{where}.pretrain_iterations + {where}.warmup_iterations ({ist['pretrain_iterations']} + "
                         f"{ist['warmup_iterations']}) must be below {where}.iterations ({ist['iterations']}), "
                         "so that some steps train G adversarially; lower the warm-up or raise iterations.")


RULES: dict[str, list[Callable[[dict, str], None]]] = {
    "preprocess.rescale": [_rescale],
    "evaluation.ground_truth": [_ground_truth],
    "evaluation.kmeans": [_kmeans],
    "methods.grape": [_attention],
    "ood": [_ood, _ood_image_sizes],
    "ood.ist": [_ist],
    "ood.stargan": [_attention],
}
"""Dotted block path -> its rules (each called with the block, defaults filled, and its path)."""


def check_block_rules(path: str, block: dict) -> None:
    """Run the rules of the block at dotted ``path`` (if any) on ``block``; InputError on a breach."""
    for rule in RULES.get(path, ()):
        rule(block, path)


def check_config_rules(cfg: dict, source: str = "config") -> None:
    """Run every rule of ``RULES`` on a whole config (defaults filled in); one InputError
    starting with ``source`` (e.g. the config file's name) that lists every breach."""
    problems = []
    for path, rules in RULES.items():
        block = cfg
        for part in path.split("."):
            block = block.get(part) if isinstance(block, dict) else None
        if isinstance(block, dict):
            for rule in rules:
                try:
                    rule(block, path)
                except InputError as exc:
                    problems.append(str(exc))
    if problems:
        raise InputError(f"{source}: " + " ".join(problems))
