"""Shared pieces of the GRAPE/IMPA tests: a tiny fabricated ``cells.h5``, tiny widths."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from opsembed.io.h5 import write_cells_h5

GENES = ["GENEA", "GENEB", "GENEC", "GENED", "ctrl"]
"""Vocabulary (sorted, as preprocessing writes it, the control label among the genes)."""

TINY = {"image_size": 16, "dim_in": 4, "max_conv_dim": 8, "style_dim": 4, "embed_dim": 8,
        "mapping_hidden": 8, "batch_size": 10, "log_every": 2, "checkpoint_every": 4,
        "device": "cpu", "num_workers": 0, "progress_interval": 60.0, "n_sample_cells": 2,
        "n_sample_genes": 2, "warmup_iters": 0}
"""Widths and run settings small enough for a CPU training step in milliseconds."""


def write_cells(path, n_per_gene: int = 6, size: int = 32, channels: int = 2, seed: int = 0) -> None:
    """``n_per_gene`` cells per gene of GENES: a centred Gaussian blob whose channel-0
    brightness is 1 + the gene's index, on N(0, 0.3^2) noise; (C, size, size) crops."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size] - (size - 1) / 2
    blob = np.exp(-(yy ** 2 + xx ** 2) / (2 * (size / 6) ** 2))
    crops, rows = [], []
    for g, gene in enumerate(GENES):
        for i in range(n_per_gene):
            crop = rng.normal(0, 0.3, (channels, size, size))
            crop[0] += (1 + g) * blob
            crop[1:] += blob
            crops.append(crop)
            rows.append({"plate": "P1", "well": "A1", "tile": "0", "cell_id": f"{gene}_{i}",
                         "y": 0.0, "x": 0.0, "gene": gene, "sgRNA": gene, "batch": "P1", "gene_id": g})
    attrs = {"channels": [f"ch{c}" for c in range(channels)], "genes": GENES, "controls": "ctrl",
             "crop_size": size, "batch_key": "plate", "seed": seed}
    write_cells_h5(path, pd.DataFrame(rows), [np.stack(crops)], attrs)


@pytest.fixture
def cells_h5(tmp_path):
    """Path of a freshly written tiny cells file (30 cells, 5 genes, 2 x 32 x 32)."""
    path = tmp_path / "cells.h5"
    write_cells(path)
    return path
