"""Simulate and write the whole demo screen: tiles, cell table, complexes, true factors."""

from __future__ import annotations

import logging
import os

import numpy as np
import pandas as pd
import tifffile
from tqdm import tqdm

from opsembed.io.atomic import atomic_path
from opsembed.io.tables import write_table
from opsembed.io.tiles import tile_path

from .batch import plate_effects
from .complexes import complex_of, write_complexes
from .design import assign_cells, draw_labels, plate_genes, rng_for
from .phenotypes import gene_effects, sample_factors, sgrna_efficacy
from .render import PHENOTYPE_CHANNELS, READ_NOISE, check_channels, render_tile
from .technical import technical_effects, tile_rng, well_gains

log = logging.getLogger(__name__)

BAND = 40
"""Cells centred up to this many px outside a tile are drawn too (partly visible, not listed)."""

SPACING = 0.8
"""Rejection sampling: nuclei of two cells are at least SPACING * (r1 + r2) apart (cell radii)."""

CANDIDATES = 64
STREAM_TILES = 6


def place_cells(radii: np.ndarray, n_inside: int, tile_size: int, rng: np.random.Generator) -> np.ndarray:
    """Nucleus centres (n, 2) as (y, x) px for cells with the given radii.

    The first ``n_inside`` cells are centred inside the tile, [0, tile_size - 1]; the others
    in the band up to ``BAND`` px outside it. Each cell takes the first of ``CANDIDATES``
    uniform positions keeping ``SPACING * (r_i + r_j)`` from all cells placed so far, or the
    roomiest candidate when none does (crowded tiles overlap rather than fail).
    """
    pos = np.empty((len(radii), 2))
    for i, radius in enumerate(radii):
        if i < n_inside:
            cand = rng.uniform(0.0, tile_size - 1.0, (CANDIDATES, 2))
        else:
            cand = rng.uniform(-BAND, tile_size - 1.0 + BAND, (8 * CANDIDATES, 2))
            outside = ((cand < 0) | (cand > tile_size - 1.0)).any(axis=1)
            cand = cand[outside][:CANDIDATES]
        if i == 0:
            pos[i] = cand[0]
            continue
        dist = np.linalg.norm(cand[:, None, :] - pos[None, :i, :], axis=2)
        slack = (dist - SPACING * (radius + radii[None, :i])).min(axis=1)
        ok = np.flatnonzero(slack >= 0)
        pos[i] = cand[ok[0] if len(ok) else int(np.argmax(slack))]
    return pos


def simulate_screen(sim: dict, channels: list[str], controls: str, tiles_pattern: str,
                    cells_path: str | os.PathLike, complexes_path: str | os.PathLike,
                    factors_path: str | os.PathLike) -> None:
    """Simulate the screen described by the ``simulate`` config block and write it.

    Writes, each atomically:
    - one uint16 TIFF (len(channels), tile_size, tile_size) per tile of
      ``design.screen_layout(sim)`` at ``tiles_pattern.format(plate=, well=, tile=)``; the
      channels are the first len(channels) of ``render.PHENOTYPE_CHANNELS`` (1 to 4);
    - ``cells_path`` (CSV): plate, well, tile, y, x (nucleus centre, px), gene, sgRNA, cell_id;
    - ``complexes_path`` (TSV, EFAAR layout, no header): complex name, space-separated genes;
    - ``factors_path`` (TSV): cell_id, plate, gene, complex, then every generating factor of
      the cell (see ``phenotypes.sample_factors``), the illumination at the nucleus and the
      plate's psf_sigma, gain_<channel> and background_<channel> (photons); with
      ``simulate.technical_scale`` > 0 also the technical effects (``technical``):
      read_noise, gamma_/bleed_/background_amp_/well_gain_<channel>, psf_sigma the total.
    Same ``sim`` -> byte-identical files.
    """
    check_channels(len(channels))
    n_channels, size = len(channels), int(sim["tile_size"])
    per_tile = int(sim["cells_per_tile"])
    labels = assign_cells(sim, controls)
    pools = plate_genes(sim)
    effects, efficacy = gene_effects(sim, controls), sgrna_efficacy(sim, controls)
    batch = plate_effects(sim)
    technical = technical_effects(sim, READ_NOISE)
    fields = {plate: effect.field(size) for plate, effect in batch.items()}
    n_band = round(per_tile * ((size + 2 * BAND) ** 2 - size ** 2) / size ** 2)
    complexes = complex_of()
    cells, factors = [], []
    groups = labels.groupby(["plate", "well", "tile"], sort=False)
    gains = well_gains(sim, list(dict.fromkeys(zip(labels["plate"], labels["well"]))))
    for index, ((plate, well, tile), listed) in enumerate(tqdm(groups, desc="simulate tiles")):
        rng = rng_for(sim, STREAM_TILES, index)
        extra_genes, extra_guides = draw_labels(pools[plate], n_band, controls,
                                                float(sim["control_fraction"]), rng, balanced=False)
        genes, guides = list(listed["gene"]) + extra_genes, list(listed["sgRNA"]) + extra_guides
        tile_factors = sample_factors(genes, guides, effects, efficacy, batch[plate].shift, rng)
        radii = tile_factors["cell_radius"].to_numpy()
        pos = np.round(place_cells(radii, len(listed), size, rng), 2)
        tile_factors.insert(0, "y", pos[:, 0])
        tile_factors.insert(1, "x", pos[:, 1])
        if technical is None:
            image = render_tile(tile_factors, size, n_channels, batch[plate], rng)
        else:
            image = render_tile(tile_factors, size, n_channels, batch[plate], rng, technical[plate],
                                gains[(plate, well)], tile_rng(sim, index))
        with atomic_path(tile_path(tiles_pattern, plate, well, tile)) as tmp:
            tifffile.imwrite(tmp, image, photometric="minisblack",
                             metadata={"axes": "CYX", "channels": list(PHENOTYPE_CHANNELS[:n_channels]),
                                       "seed": int(sim["seed"])})
        head = tile_factors.iloc[:len(listed)].copy()
        ids = [f"{plate}_{well}_{tile}_{k}" for k in range(len(listed))]
        cells.append(pd.DataFrame({"plate": plate, "well": well, "tile": tile, "y": head["y"],
                                   "x": head["x"], "gene": genes[:len(listed)],
                                   "sgRNA": guides[:len(listed)], "cell_id": ids}))
        head.insert(0, "cell_id", ids)
        head.insert(1, "plate", plate)
        head.insert(2, "gene", genes[:len(listed)])
        head.insert(3, "complex", [complexes.get(g, controls) for g in genes[:len(listed)]])
        head.insert(4, "sgRNA", guides[:len(listed)])
        iy = np.clip(np.rint(head["y"]).astype(int), 0, size - 1)
        ix = np.clip(np.rint(head["x"]).astype(int), 0, size - 1)
        head["illumination"] = fields[plate][iy, ix]
        head["psf_sigma"] = batch[plate].psf_sigma
        for c, name in enumerate(channels):
            head[f"gain_{name}"] = batch[plate].gains[c]
            head[f"background_{name}"] = batch[plate].background[c]
        if technical is not None:       # only then, so that technical_scale 0 writes the same file
            tech = technical[plate]
            head["psf_sigma"] = tech.psf_sigma(batch[plate].psf_sigma)
            head["read_noise"] = tech.read_noise
            for c, name in enumerate(channels):
                head[f"gamma_{name}"] = tech.gamma[c]
                head[f"bleed_{name}"] = tech.bleed[c]
                head[f"background_amp_{name}"] = tech.background_amp[c]
                head[f"well_gain_{name}"] = gains[(plate, well)][c]
        factors.append(head.drop(columns=["y", "x"]))
    cells_df = pd.concat(cells, ignore_index=True)
    write_table(cells_df, cells_path)
    write_table(pd.concat(factors, ignore_index=True).round(6), factors_path)
    write_complexes(complexes_path)
    log.info("simulated %d tiles, %d cells, %d genes + %r (seed %d)", groups.ngroups, len(cells_df),
             cells_df["gene"].nunique() - 1, controls, int(sim["seed"]))
