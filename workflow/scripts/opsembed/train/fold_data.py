"""Training data of one OOD fold: the fold's training cells, their genes and OEs, samplers.

Samplers reuse ``BalancedSampler``: cells outside the fold's training set get a label
outside the sampler's pool, so they are never drawn, and the drawn rows index the whole
cells file. ``LabelledSampler`` returns each drawn cell's (gene id, OE id) instead of the
balancing label, so one stream serves tasks that need both. The folds themselves are
defined in ``opsembed.io.folds``.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import numpy as np
import torch

from ..io.folds import get_fold, oe_labels, ood_config, read_classes
from ..io.h5 import read_obs
from .data import BalancedSampler, CellImages

log = logging.getLogger(__name__)


class LabelledSampler(BalancedSampler):
    """A BalancedSampler over ``balance`` labels restricted to ``rows``, whose ``draw`` returns
    (cell rows (B,), labels[rows] (B, k)) with ``labels`` an int64 (n, k) table.

    ``balance`` (n,) int labels of all cells; only labels of ``rows`` enter the pool.
    """

    def __init__(self, balance: np.ndarray, rows: np.ndarray, labels: np.ndarray, batch_size: int,
                 seed: int, stream: int):
        balance = np.asarray(balance, dtype=np.int64)
        outside = int(balance.max()) + 1
        masked = np.full_like(balance, outside)
        masked[rows] = balance[rows]
        pool = sorted(set(balance[rows].tolist()))
        super().__init__(masked, pool, batch_size, seed, stream)
        self.rows = np.sort(np.asarray(rows, dtype=np.int64))
        self.labels = torch.as_tensor(np.asarray(labels, dtype=np.int64))
        self._labels_on: dict[torch.device, torch.Tensor] = {}

    def state_dict(self) -> dict:
        """BalancedSampler's, plus a digest of the rows it draws from and their labels, so that a
        checkpoint of one fold's cells (e.g. before the OOD classes changed) never resumes on others."""
        import hashlib

        h = hashlib.sha256(np.ascontiguousarray(self.rows).tobytes())
        h.update(np.ascontiguousarray(self.labels.numpy()[self.rows]).tobytes())
        return {**super().state_dict(), "cells": h.hexdigest()}

    def draw(self, step: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        rows, _ = super().draw(step, device)
        if device not in self._labels_on:
            self._labels_on[device] = self.labels.to(device)
        return rows, self._labels_on[device][rows]


@dataclass
class FoldData:
    """One fold's view of a cells file.

    ``images``: CellImages of the whole file, holding the fold's training and test cells
    in memory (``rows``; the other rows are never read); ``fold``: the ``ood_folds`` dict; ``oes``:
    sorted OE labels of the whole file (``ood.oe_columns``); ``oe_ids`` (n,) int64 into
    ``oes``; ``train_genes`` / ``train_oes``: sorted ids with training cells; ``cell_ids``:
    obs cell_id (str).
    """

    images: CellImages
    fold: dict
    oes: list[str]
    oe_ids: np.ndarray
    train_genes: list[int]
    train_oes: list[int]
    cell_ids: np.ndarray

    def label_table(self, which: str = "both") -> np.ndarray:
        """Labels of every cell: ``both`` (n, 2) int64 (gene id, OE id); ``oe`` (n,) OE ids."""
        if which == "oe":
            return self.oe_ids
        return np.stack([self.images.gene_ids, self.oe_ids], axis=1)

    def gene_sampler(self, batch_size: int, seed: int, stream: int, labels: str = "both") -> LabelledSampler:
        """Training cells balanced over genes, yielding ``label_table(labels)`` rows."""
        return LabelledSampler(self.images.gene_ids, self.fold["train_idx"], self.label_table(labels),
                               batch_size, seed, stream)

    def oe_sampler(self, batch_size: int, seed: int, stream: int, labels: str = "both") -> LabelledSampler:
        """Training cells balanced over OEs, yielding ``label_table(labels)`` rows."""
        return LabelledSampler(self.oe_ids, self.fold["train_idx"], self.label_table(labels),
                               batch_size, seed, stream)


def load_fold(cells_path: str | os.PathLike, ood_cfg: dict | None, fold: str, image_size: int,
              device: torch.device, in_memory: bool | str, memory_fraction: float,
              classes=None) -> FoldData:
    """The fold ``fold`` (an id of ``list_folds``) of the cells file, crops at ``image_size``.

    ``classes``: the OOD classes table (path, ``results/ood/classes.tsv``) or a dict gene ->
    class; only the cells of its genes are in the fold (``io.folds.gene_subset``), and only the
    fold's training and test cells are loaded. None: every cell, labelled by its gene. When a
    class is not its gene's name (``ood.labels: complex``), ``images.genes`` becomes the sorted
    class names then the control label, and ``images.gene_ids`` index it (cells outside every
    class get the control label's id; no fold holds them), so every trainer and scorer sees
    classes where it read genes.
    """
    cfg = ood_config(ood_cfg)
    obs = read_obs(cells_path)
    if classes is not None and not isinstance(classes, dict):
        classes = read_classes(classes)
    f = get_fold(obs, cfg, fold, classes)
    images = CellImages(cells_path, image_size, device, in_memory, memory_fraction,
                        rows=np.union1d(f["train_idx"], f["test_idx"]))
    if classes is not None and any(g != c for g, c in classes.items()):
        relabel_classes(images, obs["gene"].astype(str).to_numpy(), classes)
    labels = oe_labels(obs, cfg["oe_columns"])
    oes = sorted(set(labels.tolist()))
    lookup = {oe: i for i, oe in enumerate(oes)}
    oe_ids = np.array([lookup[oe] for oe in labels], dtype=np.int64)
    train = f["train_idx"]
    data = FoldData(images=images, fold=f, oes=oes, oe_ids=oe_ids,
                    train_genes=sorted(set(images.gene_ids[train].tolist())),
                    train_oes=sorted(set(oe_ids[train].tolist())), cell_ids=obs["cell_id"].astype(str).to_numpy())
    log.info("fold %s: %d training and %d test cells; %d classes and %d OEs in training", fold, len(train),
             len(f["test_idx"]), len(data.train_genes), len(data.train_oes))
    return data


def relabel_classes(images: CellImages, genes: np.ndarray, classes: dict[str, str]) -> None:
    """Point ``images.genes`` / ``gene_ids`` at the classes (``load_fold``): vocabulary = sorted
    class names + [control label]; a cell of no class gets the control label's id."""
    vocab = sorted(set(classes.values()) - {images.controls}) + [images.controls]
    lookup = {c: i for i, c in enumerate(vocab)}
    images.genes = vocab
    images.gene_ids = np.array([lookup[classes.get(g, images.controls)] for g in genes], dtype=np.int64)


def fold_sample_choice(data: FoldData, n_cells: int, n_styles: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows of the sample grid of a fold trainer: up to ``n_cells`` fixed training cells
    (sorted) and one style cell for each of up to ``n_styles`` distinct training OEs
    (spread evenly over them), both drawn with ``seed``; int64 rows into the cells file."""
    rng = np.random.default_rng(seed)
    train = data.fold["train_idx"]
    cells = np.sort(rng.choice(train, size=min(n_cells, len(train)), replace=False))
    oes = data.train_oes
    k = min(n_styles, len(oes))
    picks = [oes[i] for i in np.linspace(0, len(oes) - 1, k).round().astype(int)] if k else []
    in_train = np.zeros(data.images.n, dtype=bool)
    in_train[train] = True
    styles = np.array([rng.choice(np.flatnonzero(in_train & (data.oe_ids == o))) for o in picks], dtype=np.int64)
    return cells, styles


def fold_fields(data: FoldData) -> dict:
    """What a fold generator's model file adds to a trainer's (``Trainer.model_payload``):
    the fold's ``oes``, ``train_oes`` and ``fold`` id (``opsembed.models.restyler`` reads them)."""
    return {"oes": data.oes, "train_oes": data.train_oes, "fold": data.fold["fold_id"]}

