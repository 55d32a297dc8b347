"""Assemble ``results/report.html`` from the pipeline's outputs."""

from __future__ import annotations

import datetime
import logging
import os

import pandas as pd

from ..io.atomic import atomic_path
from ..io.errors import InputError
from ..io.h5 import read_attrs, read_obs
from ..io.tables import read_table
from . import sections as s
from .html import esc, page
from .vae import vae_section

log = logging.getLogger(__name__)


def build_report(
    out_html: str | os.PathLike,
    *,
    metrics,
    ksweep_png,
    umaps: list,
    curated,
    curation_log,
    cells,
    summary,
    percentiles,
    flatfield_qc: list,
    zscore,
    methods: list[str],
    config: dict,
    training: dict | None = None,
    benchmarks: dict | None = None,
    heatmaps=(),
    complex_aps=(),
    ap_tables=(),
    montage_cells: int = 0,
) -> None:
    """Write one self-contained HTML report (inline CSS, images as base64 data URIs).

    Paths: ``metrics`` (metrics.tsv, one row per method), ``ksweep_png``, ``umaps`` (one
    image per method, in ``methods`` order), ``curated`` (gene, complex), ``curation_log``
    (complex, gene, reason), ``cells`` (cells.h5), ``summary`` (plate, well, n_cells,
    n_kept, n_dropped_edge, n_padded), ``percentiles`` (plate, channel, low, high, ...),
    ``flatfield_qc`` (one image per plate), ``zscore`` (batch, channel, mean, std,
    n_control_cells). ``config`` is the run's config dict; ``training`` maps a learned
    method to {"losses": TSV, "samples": image} (empty or None: none ran). ``benchmarks``
    maps a further benchmark to its files; "ood" ({"table", "folds", "umap"}) adds the
    out-of-distribution section; "vae" (evaluate_vae's and vae_traversals' files, see
    :func:`opsembed.report.vae.vae_section`) the disentangled-latents section, left out when
    its tables are missing. ``heatmaps`` and ``complex_aps`` (images) and ``ap_tables``
    (``ap_per_gene.tsv``), one per method in ``methods`` order, add the complexes and the
    significance sections (empty: left out). ``montage_cells`` > 0 adds a montage of that
    many random real cells per curated gene (seeded by the config's ``seed``).
    """
    benchmarks = dict(benchmarks or {})
    metrics_df = _read(metrics, ["method"])
    curated_df = _read(curated, ["gene", "complex"])
    log_df = _read(curation_log, ["complex", "gene", "reason"])
    summary_df = _read(summary, ["plate", "well"])
    controls = read_attrs(cells).get("controls")
    parts = [
        s.metrics_section(metrics_df, config),
        s.ksweep_section(ksweep_png),
        s.umap_section(list(methods), _paths(umaps)),
        *([s.complexes_section(list(methods), _paths(heatmaps), _paths(complex_aps))]
          if _paths(heatmaps) else []),
        *([s.significance_section(list(methods), _paths(ap_tables), metrics_df)]
          if _paths(ap_tables) else []),
        *([s.montage_section(cells, curated_df, controls, int(montage_cells), int(config.get("seed", 0)))]
          if montage_cells else []),
        *([s.ood_section(benchmarks["ood"])] if "ood" in benchmarks else []),
        *([vae_section(benchmarks["vae"])] if "vae" in benchmarks else []),
        s.dataset_section(read_obs(cells), controls, summary_df),
        s.preprocessing_section(_paths(flatfield_qc), read_table(percentiles), read_table(zscore), config),
        s.ground_truth_section(curated_df, log_df, config),
        s.training_section(dict(training or {})),
        s.config_section(config),
        s.versions_section(),
    ]
    parts = [p for p in parts if p is not None]
    now = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    intro = (f"<p class=\"note\">Generated {esc(now)} by opsembed. Methods compared: "
             f"{esc(', '.join(methods))}. Genes are scored against curated protein complexes: "
             "the better a method's embedding places members of one complex together, the higher "
             "its scores.</p>")
    text = page("opsembed report: gene embeddings from an optical pooled screen", intro, parts)
    with atomic_path(out_html) as tmp:
        tmp.write_text(text, encoding="utf-8")
    log.info("report: %s (%.1f MB, %d sections)", out_html, len(text) / 1e6, len(parts))


def _read(path, required: list[str]) -> pd.DataFrame:
    df = read_table(path)
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise InputError(f"{path}: missing column(s) {missing} needed by the report; has {list(df.columns)}.")
    return df


def _paths(value) -> list:
    """One path or a list of paths (Snakemake gives either) as a list."""
    return [value] if isinstance(value, (str, os.PathLike)) else list(value)
