"""Screen layout and the sparse plate x gene design of the demo screen.

Cheap on purpose (numpy and pandas only): ``screen_layout`` runs when Snakemake parses
the workflow. Random draws use ``numpy.random.default_rng([seed, stream])`` with a fixed
stream per purpose, so each part is reproducible on its own.
"""

from __future__ import annotations

import math
import string

import numpy as np
import pandas as pd

from opsembed.io.errors import InputError

from .complexes import gene_library

SGRNAS_PER_GENE = 4
"""Guides per library gene, named ``{gene}_sg1`` .. ``{gene}_sg4``."""

CONTROL_SGRNAS = 8
"""Non-targeting guides, named ``{controls}_sg1`` .. ``{controls}_sg8``."""

STREAM_DESIGN, STREAM_CELLS = 1, 2


def rng_for(sim: dict, *stream: int) -> np.random.Generator:
    """The generator of one random stream of the simulation (``simulate.seed`` >= 0)."""
    seed = int(sim["seed"])
    if seed < 0:
        raise InputError(f"simulate.seed is {seed}; use a seed >= 0.")
    return np.random.default_rng([seed, *stream])


def plate_names(n_plates: int) -> list[str]:
    """``["P1", ..., "Pn"]``."""
    return [f"P{i + 1}" for i in range(n_plates)]


def well_names(n_wells: int) -> list[str]:
    """96-well names in row-major order: A1..A12, B1..B12, ... (more rows past H: I, J, ...)."""
    rows = string.ascii_uppercase
    if n_wells > 12 * len(rows):
        raise InputError(f"simulate.wells_per_plate is {n_wells}; at most {12 * len(rows)} are named.")
    return [f"{rows[i // 12]}{i % 12 + 1}" for i in range(n_wells)]


def screen_layout(sim: dict) -> pd.DataFrame:
    """One row per tile, str columns ``plate, well, tile``, in plate, well, tile order.

    Tiles are named ``"0"`` .. ``str(tiles_per_well - 1)`` within each well.
    """
    rows = [(plate, well, str(tile))
            for plate in plate_names(int(sim["n_plates"]))
            for well in well_names(int(sim["wells_per_plate"]))
            for tile in range(int(sim["tiles_per_well"]))]
    return pd.DataFrame(rows, columns=["plate", "well", "tile"])


def plate_genes(sim: dict) -> dict[str, list[str]]:
    """Plate -> the library genes on that plate (library order).

    Each plate carries ``max(round(plate_gene_fraction * G), ceil(G / n_plates))`` of the
    G library genes. Every gene is on at least two plates when there is room for that
    (``n_plates * per_plate >= 2 G``), otherwise on at least one; the remaining places on
    each plate are filled with a seeded random choice of the genes not yet on it.
    """
    genes = gene_library()
    n_genes, n_plates = len(genes), int(sim["n_plates"])
    per_plate = min(n_genes, max(round(float(sim["plate_gene_fraction"]) * n_genes),
                                 math.ceil(n_genes / n_plates)))
    copies = min(2, n_plates) if n_plates * per_plate >= 2 * n_genes else 1
    rng = rng_for(sim, STREAM_DESIGN)
    on_plate = np.zeros((n_plates, n_genes), dtype=bool)
    for g in rng.permutation(n_genes):
        load = on_plate.sum(axis=1)
        order = np.lexsort((rng.random(n_plates), load))  # least loaded first, random ties
        on_plate[order[:copies], g] = True
    for p in range(n_plates):
        free = np.flatnonzero(~on_plate[p])
        extra = per_plate - int(on_plate[p].sum())
        on_plate[p, rng.choice(free, size=extra, replace=False)] = True
    return {plate: [g for g, on in zip(genes, on_plate[p]) if on]
            for p, plate in enumerate(plate_names(n_plates))}


def sgrna_names(gene: str, controls: str) -> list[str]:
    """The guides of ``gene`` (``CONTROL_SGRNAS`` of them for the control label)."""
    n = CONTROL_SGRNAS if gene == controls else SGRNAS_PER_GENE
    return [f"{gene}_sg{i + 1}" for i in range(n)]


def draw_labels(genes: list[str], n: int, controls: str, control_fraction: float,
                rng: np.random.Generator, balanced: bool) -> tuple[list[str], list[str]]:
    """Genes and sgRNAs of ``n`` cells from one pooled well.

    ``balanced``: exactly ``max(1, round(control_fraction * n))`` controls and the other
    cells spread evenly over ``genes`` (counts differ by at most one), shuffled. Otherwise
    each cell is a control with probability ``control_fraction``, else a uniform gene.
    The sgRNA is uniform among the gene's guides.
    """
    if balanced:
        n_ctrl = min(n, max(1, round(control_fraction * n)))
        labels = [controls] * n_ctrl + list(np.resize(rng.permutation(genes), n - n_ctrl))
        labels = [str(g) for g in rng.permutation(np.array(labels, dtype=object))]
    else:
        is_ctrl = rng.random(n) < control_fraction
        picks = rng.integers(len(genes), size=n)
        labels = [controls if c else genes[i] for c, i in zip(is_ctrl, picks)]
    guides = [sgrna_names(g, controls)[int(rng.integers(len(sgrna_names(g, controls))))]
              for g in labels]
    return labels, guides


def assign_cells(sim: dict, controls: str) -> pd.DataFrame:
    """The listed cells of the whole screen with their perturbation.

    Returns str columns ``plate, well, tile, gene, sgRNA`` with ``cells_per_tile`` rows per
    tile, in ``screen_layout`` order. Within a plate all wells draw from the same pool
    (the plate's genes plus controls), balanced over the whole plate.
    """
    layout = screen_layout(sim)
    per_tile = int(sim["cells_per_tile"])
    pools = plate_genes(sim)
    rng = rng_for(sim, STREAM_CELLS)
    parts = []
    for plate, tiles in layout.groupby("plate", sort=False):
        n = len(tiles) * per_tile
        genes, guides = draw_labels(pools[plate], n, controls, float(sim["control_fraction"]),
                                    rng, balanced=True)
        part = tiles.loc[tiles.index.repeat(per_tile)].reset_index(drop=True)
        part["gene"], part["sgRNA"] = genes, guides
        parts.append(part)
    return pd.concat(parts, ignore_index=True)
