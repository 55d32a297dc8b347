"""Technical batch effects that survive flat-field correction and per-plate z-scoring.

``batch.PlateEffects`` holds the plate effects that preprocessing mostly removes (one
vignetting field and one gain per plate and channel) and the biological shift
(``simulate.batch_scale``). Real screens also differ in ways that a per-plate affine
correction cannot undo; ``simulate.technical_scale`` (s >= 0; 0 = none, and the rendered
screen is then bit-identical to one without this module) scales them. At s = 1:

Per plate (``TechnicalEffects``):
- PSF blur: an extra Gaussian blur of U(0, 1.2) px, added in quadrature to the plate's
  PSF sigma (autofocus offsets of a fraction of the depth of field; at 20x/0.75 NA a
  0.5-1 um defocus widens the PSF by about a pixel). Blur changes texture and spot
  features non-linearly, which z-scoring cannot restore.
- Non-linear stain response: photons p become ``REF * (p / REF) ** gamma`` per channel,
  log gamma ~ N(0, 0.15) (gamma about 0.75-1.35): antibody and dye saturation, and
  staining-time differences, bend the intensity scale differently per batch.
- Bleed-through: channel c receives U(0, 0.08) of channel c - 1's photons (spectral
  cross-talk of neighbouring fluorophores, typically 1-10 %, varying with filter sets and
  exposure between acquisitions).
- Structured low-frequency background: autofluorescence times exp(a F - a^2 / 2), F a
  smooth random field drawn per tile (correlation length a quarter of the tile; mean 0 and
  SD 1 over each tile), a ~ U(0.1, 0.5) per plate and channel (uneven washing, out-of-focus debris and meniscus
  effects; not a fixed per-plate field, so BaSiC's darkfield cannot remove it).
- Read noise: ``READ_NOISE * (1 + 3 U(0, 1))`` ADU (2-8 ADU, from scientific CMOS
  to older CCD cameras and different gain settings).

Per well (``well_gains``): every channel of every well times exp(N(0, 0.1)) (well-to-well
intensity CVs of 5-15 % are usual in Cell Painting and OPS plates, from seeding density,
stain volume and evaporation). Per-plate z-scoring cannot remove this: it normalises
plates, not wells.

s scales every size: the blur, log gamma, bleed-through fraction, background amplitude,
the read-noise excess and log well gain are all multiplied by s (the same random draws).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from opsembed.io.schema import block_config

from .design import plate_names, rng_for

STREAM_TECHNICAL, STREAM_TECHNICAL_TILE = 7, 8
REF = 500.0
"""Photons per pixel at which the non-linear response leaves the signal unchanged."""
EXTRA_BLUR, LOG_GAMMA_SD, BLEED_MAX = 1.2, 0.15, 0.08
BACKGROUND_AMP, READ_NOISE_EXCESS, LOG_WELL_GAIN_SD = (0.1, 0.5), 3.0, 0.1


@dataclass(frozen=True)
class TechnicalEffects:
    """One plate's technical effects (arrays per phenotype channel, length 4)."""

    extra_blur: float        # px, added in quadrature to the PSF sigma
    gamma: np.ndarray        # exponent of the stain response
    bleed: np.ndarray        # fraction of channel c - 1 added to channel c (bleed[0] unused, 0)
    background_amp: np.ndarray  # relative amplitude of the low-frequency background
    read_noise: float        # ADU (SD)

    def psf_sigma(self, base: float) -> float:
        """The plate's total PSF sigma: sqrt(base**2 + extra_blur**2) px."""
        return math.hypot(base, self.extra_blur)


def technical_scale(sim: dict) -> float:
    """``simulate.technical_scale`` (the schema's default when ``sim`` leaves it out)."""
    return float(block_config("simulate", sim)["technical_scale"])


def technical_effects(sim: dict, read_noise: float, n_channels: int = 4) -> dict[str, TechnicalEffects] | None:
    """Plate -> its TechnicalEffects, seeded by ``simulate.seed`` (own stream), sizes times
    ``technical_scale``; None when the scale is 0 (no effect, nothing drawn)."""
    s = technical_scale(sim)
    if s == 0:
        return None
    rng = rng_for(sim, STREAM_TECHNICAL)
    out = {}
    for plate in plate_names(int(sim["n_plates"])):
        blur = rng.uniform(0.0, EXTRA_BLUR)
        gamma = np.exp(s * rng.normal(0.0, LOG_GAMMA_SD, n_channels))
        bleed = s * rng.uniform(0.0, BLEED_MAX, n_channels)
        bleed[0] = 0.0
        amp = s * rng.uniform(*BACKGROUND_AMP, n_channels)
        noise = read_noise * (1.0 + s * READ_NOISE_EXCESS * rng.uniform())
        out[plate] = TechnicalEffects(s * blur, gamma, bleed, amp, float(noise))
    return out


def well_gains(sim: dict, wells: list[tuple[str, str]], n_channels: int = 4) -> dict[tuple[str, str], np.ndarray]:
    """(plate, well) -> per-channel gain exp(s N(0, 0.1)), in the order of ``wells`` (own
    stream); all ones when the scale is 0."""
    s = technical_scale(sim)
    if s == 0:
        return {w: np.ones(n_channels) for w in wells}
    rng = rng_for(sim, STREAM_TECHNICAL, 1)
    return {w: np.exp(s * rng.normal(0.0, LOG_WELL_GAIN_SD, n_channels)) for w in wells}


def tile_rng(sim: dict, index: int) -> np.random.Generator:
    """The random stream of tile ``index``'s background field (separate from the tile's own)."""
    return rng_for(sim, STREAM_TECHNICAL_TILE, index)


def stain_response(photons: np.ndarray, gamma: np.ndarray) -> np.ndarray:
    """``REF * (max(p, 0) / REF) ** gamma[c]`` per channel of ``photons`` (C, H, W); float64."""
    p = np.maximum(np.asarray(photons, dtype=np.float64), 0.0)
    return REF * (p / REF) ** np.asarray(gamma, dtype=np.float64)[: len(p), None, None]


def bleed_through(photons: np.ndarray, bleed: np.ndarray) -> np.ndarray:
    """Channel c plus ``bleed[c]`` times channel c - 1 (c >= 1) of ``photons`` (C, H, W)."""
    out = np.asarray(photons, dtype=np.float64).copy()
    for c in range(1, len(out)):
        out[c] += bleed[c] * photons[c - 1]
    return out


def background_field(shape: tuple[int, int], amp: float, rng: np.random.Generator) -> np.ndarray:
    """exp(amp * F - amp**2 / 2), F Gaussian-smoothed white noise (sigma a quarter of the
    side, wrap mode) rescaled to mean 0 and SD 1 over the tile: a positive field of median
    about 1 whose log has SD ``amp``. float64 ``shape``. (Positive, so that the background
    never vanishes: BaSiC fails on tiles with many pixels below the camera offset.)"""
    white = rng.standard_normal(shape)
    field = ndimage.gaussian_filter(white, max(shape) / 4.0, mode="wrap")
    field = (field - field.mean()) / (field.std() or 1.0)
    return np.exp(amp * field - amp ** 2 / 2.0)
