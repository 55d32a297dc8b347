"""Per-plate batch effects: illumination, channel gains, focus, background, biology.

Technical effects are strong on purpose, so that a model can tell plates apart:
- vignetting: a 2-D Gaussian falloff around a per-plate off-centre point, 1.0 at that
  point and ``floor`` (0.5-0.65) at the farthest tile corner, multiplying all channels;
- per-plate, per-channel gains spread evenly in log space over [-0.4, 0.4] (x0.67 to x1.49,
  permuted per channel, plus a little jitter), so any two plates differ;
- per-plate focus (Gaussian PSF sigma spread over 0.8-1.6 px) and autofluorescence;
- a biological shift of every phenotype parameter (N(0, 0.35) in cell-spread units) and of
  the mitotic log-odds (N(0, 0.3)), as from different culture conditions, both standard
  deviations times ``simulate.batch_scale``. Preprocessing removes most of the
  technical effects (flat-field correction, z-scoring against each plate's controls), but
  not this shift, so ``batch_scale`` sets how much the plates confound a gene classifier.

The technical effects that do survive that preprocessing (extra blur, stain response,
bleed-through, structured background, read noise, per-well gains) are in ``technical``,
scaled by ``simulate.technical_scale``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from opsembed.io.schema import block_config

from .design import plate_names, rng_for
from .phenotypes import EFFECTS

BACKGROUND = (40.0, 25.0, 30.0, 30.0)
"""Mean autofluorescence of the four phenotype channels (photons per pixel)."""

STREAM_BATCH = 5


@dataclass(frozen=True)
class PlateEffects:
    """The batch effects of one plate. Arrays are per phenotype channel (length 4)."""

    gains: np.ndarray
    background: np.ndarray
    psf_sigma: float
    field_centre: tuple[float, float]  # (y, x) in px
    field_floor: float
    shift: dict[str, float]

    def field(self, tile_size: int) -> np.ndarray:
        """Illumination (vignetting) field, float64 (tile_size, tile_size), in [floor, 1].

        A ``field_floor`` of 1 (or more) means flat illumination, all ones.
        """
        if self.field_floor >= 1.0:
            return np.ones((tile_size, tile_size))
        cy, cx = self.field_centre
        y = np.arange(tile_size)[:, None] - cy
        x = np.arange(tile_size)[None, :] - cx
        far = max(math.hypot(a, b) for a in (cy, tile_size - 1 - cy) for b in (cx, tile_size - 1 - cx))
        width2 = far ** 2 / (2.0 * math.log(1.0 / self.field_floor))
        return np.exp(-(y ** 2 + x ** 2) / (2.0 * width2))


def plate_effects(sim: dict) -> dict[str, PlateEffects]:
    """Plate -> its ``PlateEffects``, seeded by ``simulate.seed``; ``shift`` standard deviations
    times ``sim["batch_scale"]`` (>= 0; the same draws, only scaled; the schema's default
    when ``sim`` leaves it out)."""
    scale = float(block_config("simulate", sim)["batch_scale"])
    plates = plate_names(int(sim["n_plates"]))
    n, size = len(plates), int(sim["tile_size"])
    rng = rng_for(sim, STREAM_BATCH)
    ladder = np.linspace(-0.4, 0.4, n) if n > 1 else np.zeros(1)
    log_gains = np.stack([rng.permutation(ladder) for _ in BACKGROUND], axis=1)
    log_gains += rng.normal(0.0, 0.03, log_gains.shape)
    psf = rng.permutation(np.linspace(0.8, 1.6, n) if n > 1 else np.array([1.2]))
    out = {}
    for p, plate in enumerate(plates):
        out[plate] = PlateEffects(
            gains=np.exp(log_gains[p]),
            background=np.array(BACKGROUND) * rng.uniform(0.8, 1.25, len(BACKGROUND)),
            psf_sigma=float(psf[p]),
            field_centre=tuple(float(v) for v in rng.uniform(0.2, 0.8, 2) * (size - 1)),
            field_floor=float(rng.uniform(0.5, 0.65)),
            shift={name: scale * float(rng.normal(0.0, 0.3 if name == "mitotic" else 0.35))
                   for name in EFFECTS},
        )
    return out
