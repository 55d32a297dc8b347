"""The `random` baseline: one seeded Gaussian vector per screened gene."""

from __future__ import annotations

import logging
import os

import numpy as np

from ..io.embeddings import write_embeddings
from ..io.h5 import screened_genes
from ..io.schema import block_config

log = logging.getLogger(__name__)


def random_embeddings(genes, dim: int, seed: int) -> np.ndarray:
    """Standard-normal float64 values (len(genes), dim) from ``numpy.random.default_rng(seed)``.

    Row i belongs to ``genes[i]``; the same seed, gene count and dim give the same array.
    """
    if dim < 1:
        raise ValueError(f"random_embeddings: dim must be >= 1, got {dim}")
    return np.random.default_rng(seed).standard_normal((len(list(genes)), int(dim)))


def run_random(cells_path: str | os.PathLike, cfg: dict, out_path: str | os.PathLike) -> None:
    """Rule `embed_random`: ``cfg`` is the ``methods.random`` block (dim, seed; schema defaults
    for keys it leaves out)."""
    cfg = block_config("methods.random", cfg)
    genes = screened_genes(cells_path)
    dim, seed = int(cfg["dim"]), int(cfg["seed"])
    log.info("random: %d genes x %d dims, seed %d", len(genes), dim, seed)
    write_embeddings(out_path, genes, random_embeddings(genes, dim, seed))
