"""Per-cell generating factors: gene phenotypes, guide efficacy, cell-to-cell variation.

Every continuous parameter ``p`` of a cell is ``offset + scale * exp(sigma * s)`` with

    s = z + penetrant * effect[gene, p] + plate_shift[p] + cycle[p] * (cell_cycle - 0.5),

``z ~ N(0, 1)`` per cell, so gene effects and plate shifts are in units of the
cell-to-cell spread ``sigma`` (on the log scale). ``penetrant`` is 1 with probability the
sgRNA's efficacy (0 for controls): knockouts are incomplete. Mitosis is a Bernoulli draw
with log-odds ``logit(MITOTIC_BASE) + penetrant * effect[gene, "mitotic"] + plate_shift``.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from opsembed.io.schema import block_config

from .complexes import COMPLEXES, PHENOTYPES, complex_of
from .design import rng_for, sgrna_names

PARAMS: dict[str, tuple[float, float, float]] = {
    # name: (offset, scale, sigma); pixels for radii, relative units otherwise
    "nucleus_radius": (0.0, 11.0, 0.10),    # px, geometric mean of the semi-axes
    "nucleus_aspect": (1.0, 0.30, 0.35),    # major / minor axis
    "dna_intensity": (0.0, 1.0, 0.15),
    "dna_texture": (0.0, 0.30, 0.25),       # relative amplitude of chromatin texture
    "foci_rate": (0.0, 1.0, 0.50),          # mean number of gamma-H2AX foci
    "tubulin_intensity": (0.0, 1.0, 0.15),
    "tubulin_filaments": (0.0, 0.60, 0.20),  # microtubule contrast
    "actin_intensity": (0.0, 1.0, 0.15),    # cortical actin
    "stress_fibres": (0.0, 0.35, 0.30),
    "cell_radius": (0.0, 24.0, 0.10),       # px, geometric mean of the semi-axes
    "cell_elongation": (1.0, 0.35, 0.35),   # major / minor axis
}
"""Continuous phenotype parameters and their neutral (control) distribution."""

CYCLE = {"nucleus_radius": 2.0, "dna_intensity": 1.5, "cell_radius": 1.5}
"""Effect of the cell-cycle position (0 = G1, 1 = G2) in units of sigma, centred."""

MITOTIC_BASE = 0.04
"""Fraction of control cells in mitosis."""

GENE_STRENGTH = (0.75, 1.15)
"""Each gene's effect is its complex's effect times a uniform strength in this range ..."""

GENE_NOISE = 0.3
"""... plus N(0, GENE_NOISE) on every parameter (gene-specific phenotype)."""

EFFICACY = (0.65, 0.95)
"""Uniform range of sgRNA efficacy (probability that a cell shows the phenotype)."""

STREAM_EFFECTS, STREAM_EFFICACY = 3, 4
EFFECTS = list(PARAMS) + ["mitotic"]


def gene_effects(sim: dict, controls: str) -> pd.DataFrame:
    """Effect table indexed by gene (library genes then ``controls``), columns ``EFFECTS``.

    Every library gene's row is multiplied by ``sim["effect_scale"]`` (the schema's default
    when ``sim`` leaves it out);
    controls have all-zero effects (the neutral phenotype).
    """
    rng = rng_for(sim, STREAM_EFFECTS)
    rows = {}
    for name, genes in COMPLEXES.items():
        base = np.array([PHENOTYPES[name].get(p, 0.0) for p in EFFECTS])
        for gene in genes:
            strength = rng.uniform(*GENE_STRENGTH)
            rows[gene] = base * strength + rng.normal(0.0, GENE_NOISE, len(EFFECTS))
    scale = float(block_config("simulate", sim)["effect_scale"])
    rows = {gene: row * scale for gene, row in rows.items()}
    rows[controls] = np.zeros(len(EFFECTS))
    return pd.DataFrame.from_dict(rows, orient="index", columns=EFFECTS)


def sgrna_efficacy(sim: dict, controls: str) -> dict[str, float]:
    """sgRNA -> efficacy in ``EFFICACY`` (0.0 for the non-targeting guides)."""
    rng = rng_for(sim, STREAM_EFFICACY)
    out = {}
    for gene in list(complex_of()) + [controls]:
        for guide in sgrna_names(gene, controls):
            out[guide] = 0.0 if gene == controls else float(rng.uniform(*EFFICACY))
    return out


def sample_factors(genes: list[str], guides: list[str], effects: pd.DataFrame,
                   efficacy: dict[str, float], plate_shift: dict[str, float],
                   rng: np.random.Generator) -> pd.DataFrame:
    """Draw the generating factors of cells with the given genes and sgRNAs.

    Returns one row per cell with columns ``sgrna_efficacy, penetrant (0/1), cell_cycle,
    mitotic (0/1)``, every ``PARAMS`` entry, ``foci_count`` (Poisson around ``foci_rate``,
    30% of it in mitosis), ``nucleus_angle, cell_angle`` (radians in [0, pi)), and
    ``cell_dy, cell_dx`` (cell centre minus nucleus centre, px). Mitotic cells are drawn
    round (elongation 1.05) and 15% smaller; the table holds the values as rendered.
    """
    n = len(genes)
    eff = np.array([efficacy[g] for g in guides])
    penetrant = (rng.random(n) < eff).astype(np.int64)
    gene_eff = effects.loc[genes].to_numpy() * penetrant[:, None]
    cycle = rng.random(n)
    out = {"sgrna_efficacy": eff, "penetrant": penetrant, "cell_cycle": cycle}
    logit = (math.log(MITOTIC_BASE / (1 - MITOTIC_BASE)) + gene_eff[:, -1]
             + plate_shift.get("mitotic", 0.0))
    mitotic = rng.random(n) < 1.0 / (1.0 + np.exp(-logit))
    out["mitotic"] = mitotic.astype(np.int64)
    z = rng.normal(size=(n, len(PARAMS)))
    for j, (name, (offset, scale, sigma)) in enumerate(PARAMS.items()):
        s = z[:, j] + gene_eff[:, j] + plate_shift.get(name, 0.0) + CYCLE.get(name, 0.0) * (cycle - 0.5)
        out[name] = offset + scale * np.exp(sigma * s)
    out["nucleus_radius"] = np.clip(out["nucleus_radius"], 5.0, 22.0)
    out["cell_radius"] = np.clip(np.maximum(out["cell_radius"], 1.35 * out["nucleus_radius"]), 8.0, 40.0)
    out["cell_radius"] = np.where(mitotic, 0.85 * out["cell_radius"], out["cell_radius"])
    out["cell_elongation"] = np.where(mitotic, 1.05, np.minimum(out["cell_elongation"], 3.0))
    out["nucleus_aspect"] = np.minimum(out["nucleus_aspect"], 2.5)
    out["foci_count"] = rng.poisson(np.where(mitotic, 0.3, 1.0) * out["foci_rate"]).clip(0, 60)
    out["cell_angle"] = rng.uniform(0.0, math.pi, n)
    out["nucleus_angle"] = np.mod(out["cell_angle"] + rng.normal(0.0, 0.25, n), math.pi)
    # the nucleus sits off-centre but inside the cell: at most 30% of the free room
    room = np.maximum(out["cell_radius"] / np.sqrt(out["cell_elongation"])
                      - out["nucleus_radius"] * np.sqrt(out["nucleus_aspect"]), 0.0)
    shift, direction = rng.uniform(0.0, 0.3, n) * room, rng.uniform(0.0, 2 * math.pi, n)
    out["cell_dy"], out["cell_dx"] = shift * np.sin(direction), shift * np.cos(direction)
    return pd.DataFrame(out)
