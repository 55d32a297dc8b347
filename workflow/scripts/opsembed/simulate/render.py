"""Render cells into a uint16 camera image of up to four channels.

The four phenotype channels, in this order, are:
0. DNA: elliptical, textured nuclei with dark nucleoli; a bright metaphase plate in mitosis;
1. gamma-H2AX: faint pan-nuclear signal plus diffraction-limited foci;
2. alpha-tubulin: microtubules radiating from a centrosome next to the nucleus; a bipolar
   spindle with bright poles in mitosis;
3. F-actin: a cortical ring at the cell edge, diffuse cytoplasm and parallel stress fibres.
A screen with C channels renders the first C of these, whatever the channels are called.

Image formation, per plate (``batch.PlateEffects``): signal (photons) plus
autofluorescence, blurred by a Gaussian PSF, times channel gain and illumination field;
then Poisson shot noise, ``CAMERA_OFFSET`` and Gaussian read noise (``READ_NOISE`` ADU),
rounded and clipped to uint16. With ``simulate.technical_scale`` > 0 the effects of
``technical`` (extra blur, bleed-through, non-linear stain response, low-frequency
background, per-plate read noise, per-well gain) enter that chain.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import ndimage

from opsembed.io.errors import InputError

from .batch import PlateEffects
from .technical import TechnicalEffects, background_field, bleed_through, stain_response

PHENOTYPE_CHANNELS = ("DNA", "gH2AX", "tubulin", "actin")
CAMERA_OFFSET = 100.0
"""Camera offset (ADU) added to every pixel."""
READ_NOISE = 2.0
"""Gaussian read noise (ADU, standard deviation)."""

# peak brightness (photons per pixel) of each structure at intensity factor 1
DNA, GH2AX_PAN, FOCUS, TUBULIN, ACTIN = 1200.0, 120.0, 900.0, 350.0, 600.0
FOCUS_SIGMA = 1.2
PAD = 64
"""Canvas margin (px) around the tile: cells near or beyond the edge are drawn whole."""


def check_channels(n_channels: int) -> None:
    """Raise InputError unless 1 <= n_channels <= 4."""
    if not 1 <= n_channels <= len(PHENOTYPE_CHANNELS):
        raise InputError(
            f"the simulated screen renders 1 to {len(PHENOTYPE_CHANNELS)} channels "
            f"({', '.join(PHENOTYPE_CHANNELS)}); config `channels` lists {n_channels}. "
            "List at most four channels when input.* point at the demo screen.")


def render_tile(cells: pd.DataFrame, tile_size: int, n_channels: int, plate: PlateEffects,
                rng: np.random.Generator, technical: TechnicalEffects | None = None,
                well_gain: np.ndarray | None = None,
                background_rng: np.random.Generator | None = None) -> np.ndarray:
    """Render ``cells`` into a (n_channels, tile_size, tile_size) uint16 image (ADU).

    ``cells`` has ``y, x`` (nucleus centre, px in tile coordinates, may lie outside the
    tile) and the factor columns of ``phenotypes.sample_factors``. ``technical``: the
    plate's ``technical.TechnicalEffects`` (extra blur, then bleed-through, stain response,
    a low-frequency background drawn from ``background_rng``, and its read noise);
    ``well_gain`` (n_channels,): the well's gain. Both None: the image without them,
    bit-identical to a render that never heard of them.
    """
    check_channels(n_channels)
    size = tile_size + 2 * PAD
    canvas = np.zeros((len(PHENOTYPE_CHANNELS), size, size), dtype=np.float32)
    white = rng.standard_normal((size, size), dtype=np.float32)
    textures = [_smooth(white, 1.0), _smooth(white.T, 2.0), _smooth(white[::-1], 3.0)]
    for cell in cells.itertuples(index=False):
        _draw_cell(canvas, textures, cell, rng)
    sigma = plate.psf_sigma if technical is None else technical.psf_sigma(plate.psf_sigma)
    margin = int(math.ceil(4 * sigma)) + 1
    lo, hi = PAD - margin, PAD + tile_size + margin
    field = plate.field(tile_size)
    inner = np.empty((n_channels, tile_size, tile_size), dtype=np.float32)
    for c in range(n_channels):
        blurred = ndimage.gaussian_filter(canvas[c, lo:hi, lo:hi], sigma)
        inner[c] = blurred[margin:margin + tile_size, margin:margin + tile_size]
    background = list(plate.background[:n_channels])     # scalars: the same float32 sums as before
    if technical is not None:
        inner = stain_response(bleed_through(inner, technical.bleed), technical.gamma)
        background = [b * background_field((tile_size, tile_size), technical.background_amp[c], background_rng)
                      for c, b in enumerate(background)]
    signal = np.empty((n_channels, tile_size, tile_size))
    for c in range(n_channels):
        signal[c] = (inner[c] + background[c]) * plate.gains[c] * field
    if well_gain is not None:
        signal *= np.asarray(well_gain, dtype=np.float64)[:n_channels, None, None]
    read_noise = READ_NOISE if technical is None else technical.read_noise
    read = rng.standard_normal(signal.shape, dtype=np.float32) * np.float32(read_noise)
    adu = rng.poisson(signal) + (read + CAMERA_OFFSET)
    return np.clip(np.rint(adu), 0, 65535).astype(np.uint16)


def _smooth(white: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian-filtered white noise rescaled to unit standard deviation (texture field)."""
    field = ndimage.gaussian_filter(white, sigma, truncate=3.0)
    return field / field.std()


def _ramp(inside: np.ndarray, width: float) -> np.ndarray:
    """Soft edge: 0 outside, 1 inside, a linear ramp ``width`` px wide (``inside`` in px)."""
    return np.clip(inside / width + 0.5, 0.0, 1.0)


def _rotate(y, x, angle):
    """Coordinates (u along ``angle``, v across it) of offsets (y, x)."""
    c, s = math.cos(angle), math.sin(angle)
    return c * x + s * y, -s * x + c * y


def _draw_cell(canvas, textures, cell, rng) -> None:
    """Add one cell's photons to ``canvas`` (4, S, S), all four phenotype channels."""
    size = canvas.shape[1]
    cy, cx = cell.y + PAD, cell.x + PAD
    rn, aspect = cell.nucleus_radius, cell.nucleus_aspect
    an, bn = rn * math.sqrt(aspect), rn / math.sqrt(aspect)
    rc, elong = cell.cell_radius, cell.cell_elongation
    ac, bc = rc * math.sqrt(elong), rc / math.sqrt(elong)
    half = int(math.ceil(1.15 * max(ac, an) + math.hypot(cell.cell_dy, cell.cell_dx) + 4))
    y0, x0 = max(int(cy) - half, 0), max(int(cx) - half, 0)
    y1, x1 = min(int(cy) + half + 1, size), min(int(cx) + half + 1, size)
    if y0 >= y1 or x0 >= x1:
        return
    win = np.s_[y0:y1, x0:x1]
    yy = (np.arange(y0, y1) - cy).astype(np.float32)[:, None]
    xx = (np.arange(x0, x1) - cx).astype(np.float32)[None, :]
    # nucleus
    un, vn = _rotate(yy, xx, cell.nucleus_angle)
    rho_n = np.sqrt((un / an) ** 2 + (vn / bn) ** 2)
    nucleus = _ramp((1.0 - rho_n) * rn, 1.2)
    # cell body with an irregular outline
    ycell, xcell = yy - cell.cell_dy, xx - cell.cell_dx
    uc, vc = _rotate(ycell, xcell, cell.cell_angle)
    rho_c = np.sqrt((uc / ac) ** 2 + (vc / bc) ** 2)
    outline = _outline(uc / ac / np.maximum(rho_c, 1e-6), vc / bc / np.maximum(rho_c, 1e-6), rng)
    depth = (outline - rho_c) * rc  # px inside the cell edge (approximately)
    body = _ramp(depth, 1.5)
    if cell.mitotic:
        layers = _mitotic(cell, yy, xx, body, depth, textures, win, canvas[1], rng)
    else:
        layers = _interphase(cell, yy, xx, un, vn, rho_n, nucleus, body, depth, textures, win,
                             canvas[1], rng)
    for c, layer in enumerate(layers):
        canvas[c][win] += layer


def _outline(cos1, sin1, rng) -> np.ndarray:
    """Relative radius 1 + sum_k a_k cos(k phi + psi_k), k = 2, 3, 4, from cos/sin of phi."""
    cos2, sin2 = cos1 * cos1 - sin1 * sin1, 2 * cos1 * sin1
    harmonics = ((cos2, sin2), (cos2 * cos1 - sin2 * sin1, sin2 * cos1 + cos2 * sin1),
                 (cos2 * cos2 - sin2 * sin2, 2 * cos2 * sin2))
    outline = np.ones_like(cos1)
    for cos_k, sin_k in harmonics:
        amp, psi = rng.uniform(0.0, 0.07), rng.uniform(0.0, 2 * math.pi)
        outline += amp * (math.cos(psi) * cos_k - math.sin(psi) * sin_k)
    return outline


def _splat_foci(foci, ys, xs, rng) -> None:
    """Add point-like foci at canvas positions of the gamma-H2AX layer ``foci`` (S, S).

    The PSF blur makes them spots; the amount is FOCUS photons times the volume of a
    Gaussian of sigma FOCUS_SIGMA px (the peak is FOCUS when the PSF sigma is FOCUS_SIGMA).
    """
    iy, ix = np.rint(ys).astype(int), np.rint(xs).astype(int)
    ok = (iy >= 0) & (iy < foci.shape[0]) & (ix >= 0) & (ix < foci.shape[1])
    amp = (FOCUS * 2 * math.pi * FOCUS_SIGMA ** 2 * rng.lognormal(0.0, 0.3, len(iy))).astype(np.float32)
    np.add.at(foci, (iy[ok], ix[ok]), amp[ok])


def _interphase(cell, yy, xx, un, vn, rho_n, nucleus, body, depth, textures, win, foci, rng):
    """The four channel layers (photons) of an interphase cell in its window."""
    rn = cell.nucleus_radius
    an, bn = rn * math.sqrt(cell.nucleus_aspect), rn / math.sqrt(cell.nucleus_aspect)
    # DNA: textured, slightly brighter in the middle, 1-3 dark nucleoli
    dna = nucleus * (1.0 + cell.dna_texture * textures[0][win]) * (1.0 - 0.2 * np.minimum(rho_n, 1.0) ** 2)
    for _ in range(int(rng.integers(1, 4))):
        pu, pv = rng.uniform(-0.45, 0.45, 2) * (an, bn)
        dna *= 1.0 - 0.45 * np.exp(-((un - pu) ** 2 + (vn - pv) ** 2) / (2 * (0.18 * rn) ** 2))
    dna = DNA * cell.dna_intensity * np.maximum(dna, 0.0)
    # gamma-H2AX: pan-nuclear level grows with damage; foci uniform in the nucleus
    gh2ax = GH2AX_PAN * (0.5 + 0.1 * cell.foci_rate) * nucleus
    n = int(cell.foci_count)
    if n:
        r, t = 0.85 * np.sqrt(rng.random(n)), rng.uniform(0, 2 * math.pi, n)
        fu, fv = r * np.cos(t) * an, r * np.sin(t) * bn
        c, s = math.cos(cell.nucleus_angle), math.sin(cell.nucleus_angle)
        _splat_foci(foci, cell.y + PAD + s * fu + c * fv, cell.x + PAD + c * fu - s * fv, rng)
    # tubulin: radial microtubules from a centrosome beside the nucleus
    if cell.cell_dy or cell.cell_dx:
        direction = math.atan2(cell.cell_dy, cell.cell_dx)  # towards the cell centre
    else:
        direction = rng.uniform(0, 2 * math.pi)
    ty, tx = yy - 1.05 * rn * math.sin(direction), xx - 1.05 * rn * math.cos(direction)
    rt = np.sqrt(ty ** 2 + tx ** 2)
    filaments = (0.5 + 0.5 * np.cos(int(rng.integers(18, 29)) * np.arctan2(ty, tx)
                                     + 3.0 * textures[1][win] + rng.uniform(0, 2 * math.pi))) ** 6
    cytoplasm = body * (1.0 - 0.75 * nucleus)
    tubulin = TUBULIN * (cell.tubulin_intensity * cytoplasm * (0.6 + 0.4 * np.exp(-rt / cell.cell_radius))
                         * (0.5 + 1.6 * cell.tubulin_filaments * filaments)
                         + 1.5 * np.exp(-rt ** 2 / (2 * 1.3 ** 2)))
    # actin: cortex ring, diffuse cytoplasm, parallel stress fibres along the long axis
    cortex = np.exp(-((depth - 1.5) ** 2) / (2 * 1.6 ** 2)) * body
    fibre_angle = cell.cell_angle + rng.normal(0.0, 0.15)
    _, w = _rotate(yy - cell.cell_dy, xx - cell.cell_dx, fibre_angle)
    fibres = (0.5 + 0.5 * np.cos(2 * math.pi * w / rng.uniform(4.0, 6.0) + 1.5 * textures[2][win]
                                 + rng.uniform(0, 2 * math.pi))) ** 8
    fibres *= np.clip(depth / 3.0, 0.0, 1.0) * (1.0 - 0.6 * nucleus) * (0.7 + 0.3 * textures[2][win])
    actin = ACTIN * (cell.actin_intensity * (cortex + 0.25 * body)
                     + 1.2 * cell.stress_fibres * np.maximum(fibres, 0.0))
    return dna, gh2ax, tubulin, actin


def _mitotic(cell, yy, xx, body, depth, textures, win, foci, rng):
    """The four channel layers (photons) of a cell in metaphase in its window."""
    rn = cell.nucleus_radius
    # spindle axis along the cell angle; the metaphase plate lies across it
    us, vs = _rotate(yy, xx, cell.cell_angle)
    half_width, half_length = 0.25 * rn, 0.95 * rn
    plate = _ramp(half_width - np.abs(us), 1.0) * _ramp(half_length - np.abs(vs), 1.2)
    dna = DNA * 1.8 * cell.dna_intensity * plate * np.maximum(1.0 + 0.6 * textures[0][win], 0.0)
    gh2ax = GH2AX_PAN * 0.5 * plate
    n = int(cell.foci_count)
    if n:
        fu, fv = rng.uniform(-half_width, half_width, n), rng.uniform(-half_length, half_length, n)
        c, s = math.cos(cell.cell_angle), math.sin(cell.cell_angle)
        _splat_foci(foci, cell.y + PAD + s * fu + c * fv, cell.x + PAD + c * fu - s * fv, rng)
    pole, width = 1.15 * rn, 0.75 * rn
    lens = _ramp(width * (1.0 - (us / pole) ** 2) - np.abs(vs), 1.5)
    fibres = (0.5 + 0.5 * np.cos(14 * np.arctan2(vs, pole - np.abs(us) + 1.0)
                                 + 1.5 * textures[1][win])) ** 4
    poles = sum(np.exp(-((us - p) ** 2 + vs ** 2) / (2 * 1.5 ** 2)) for p in (-pole, pole))
    tubulin = TUBULIN * (cell.tubulin_intensity * (2.2 * lens * (0.5 + cell.tubulin_filaments * fibres)
                                                   + 0.35 * body) + 2.5 * poles)
    cortex = np.exp(-((depth - 1.5) ** 2) / (2 * 1.6 ** 2)) * body
    actin = ACTIN * cell.actin_intensity * (1.6 * cortex + 0.3 * body)
    return dna, gh2ax, tubulin, actin
