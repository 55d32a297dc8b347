"""The report's section on the Ada-GVAE's disentangled latents (rule evaluate_vae's and
rule vae_traversals' outputs): the Table-2 analogue, MIG/DCI, the latent x factor MI heat
map and the traversal strips."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from ..io.tables import read_table
from .html import Section, esc, fmt, image, table
from .sections import TITLES

log = logging.getLogger(__name__)

INPUTS = {"vae": "pixels", "vae_features": "deep features"}
"""Variant (the embedding method's name) -> what the VAE reads."""

MODELS = {  # (model, dataset) -> row label, in table order
    ("source", "source"): "Source model on Source",
    ("random", "source"): "random-init encoder on Source (floor)",
    ("finetuned", "screen"): "fine-tuned model on the screen",
    ("source", "screen"): "Source model on the screen (no fine-tuning)",
    ("random", "screen"): "random-init encoder on the screen (floor)",
}
DCI = [("MIG", "mig"), ("Disentanglement", "disentanglement"), ("Completeness", "completeness"),
       ("Informativeness", "informativeness")]

REQUIRED = ("disentanglement", "classification")
"""Files without which the section is left out."""


def vae_section(files: dict) -> Section | None:
    """The section, or None (with a warning) when a file of ``REQUIRED`` is missing.

    ``files``: {"disentanglement": TSV (variant, model, dataset, mig, disentanglement,
    completeness, informativeness), "classification": TSV (variant, finetuning in
    without/with, classifier in GBT/MLP, accuracy, sd, chance, n_seeds), and optionally
    "mi", "traversals", "source_traversals": PNGs}; figures whose file is missing are left out.
    """
    missing = [k for k in REQUIRED if not files.get(k) or not Path(files[k]).is_file()]
    if missing:
        log.warning("report: no VAE section, missing %s", ", ".join(f"{k} ({files.get(k)})" for k in missing))
        return None
    dis, cls = read_table(files["disentanglement"]), read_table(files["classification"])
    body = [
        "<div class=\"explain\">A weakly supervised Ada-GVAE (Locatello et al. 2020) is trained on a "
        "synthetic Source dataset rendered with known factors of variation (nucleus size, DNA "
        "intensity, foci, elongation …), then used on the screen as it is (<em>without</em> "
        "fine-tuning) or fine-tuned on pairs of screen cells (<em>with</em>). Its few latents are "
        "meant to be readable: the figures below show which factor each latent follows. The "
        "fine-tuned model's mean latent per gene is the <code>vae</code> embedding of the benchmark "
        "above.</div>",
        "<h3>Classifying a cell's complex from its latents (Table 2 analogue)</h3>",
        _classification(cls),
        "<h3>Disentanglement against the true factors (MIG, DCI)</h3>",
        _disentanglement(dis),
    ]
    figures = [
        ("mi", "latent x factor mutual information",
         "How to read: each cell is the mutual information between one latent (row) and one true "
         "factor (column) divided by the factor's entropy (each panel on its own colour scale); a "
         "disentangled model has one bright cell per factor column, each in a different latent row."),
        ("source_traversals", "Source model traversals",
         "How to read: each row decodes the median Source code with one latent swept from its 5th "
         "(left) to 95th (right) percentile, the others held fixed; name a latent after the one "
         "property that changes along its row (a row that does not change is an unused latent)."),
        ("traversals", "fine-tuned model traversals",
         "How to read: as above, for the fine-tuned model on the screen's codes; compare each row with "
         "the Source model's to see which latents kept their meaning after fine-tuning."),
    ]
    shown = [(k, alt, cap) for k, alt, cap in figures if files.get(k) and Path(files[k]).is_file()]
    if shown:
        body.append("<h3>What each latent encodes</h3>")
        body.extend(image(files[k], alt, cap) for k, alt, cap in shown)
    return Section("vae", TITLES["vae"], "".join(body))


def _pm(mean: float, sd: float) -> str:
    return f"{fmt(float(mean))} ± {fmt(float(sd))}"


def _classification(cls: pd.DataFrame) -> str:
    """Input x fine-tuning rows, GBT and MLP accuracy (mean ± sd; best per column in bold), chance."""
    classifiers = [c for c in ("GBT", "MLP") if c in set(cls["classifier"])]
    rows = []
    for variant in _variants(cls):
        for tuned in ("without", "with"):
            group = cls[(cls["variant"] == variant) & (cls["finetuning"] == tuned)]
            if not len(group):
                continue
            row = {"Input": INPUTS.get(variant, variant), "Fine-tuning": tuned}
            for c in classifiers:
                hit = group[group["classifier"] == c]
                row[c] = (float(hit["accuracy"].iloc[0]), float(hit["sd"].iloc[0])) if len(hit) else (np.nan, np.nan)
            row["Chance"] = float(group["chance"].mean())
            rows.append(row)
    shown = pd.DataFrame(rows)
    for c in classifiers:
        means = np.array([m for m, _ in shown[c]])
        best = np.nanmax(means) if np.isfinite(means).any() else np.nan
        shown[c] = [f"<b>{esc(_pm(m, s))}</b>" if np.isfinite(m) and np.isclose(m, best) else esc(_pm(m, s))
                    for m, s in shown[c]]
    n_seeds = int(cls["n_seeds"].max()) if "n_seeds" in cls.columns else None
    seeds = f"{n_seeds} seeds" if n_seeds else "seeds"
    note = ""
    if "vae_features" not in set(cls["variant"]):
        note = ("<p class=\"note\">Only the pixel rows ran: the deep-features rows need "
                "<code>methods.vae.features</code> and the GRAPE method enabled.</p>")
    return ("<div class=\"explain\">Gradient-boosted trees (GBT) and a one-hidden-layer MLP predict each "
            "screen cell's protein complex from its latent code alone, scored on held-out cells: "
            f"accuracy mean ± sd over {esc(seeds)} (splits and model seeds); best per column in "
            "<b>bold</b>. <em>Chance</em> is the share of the most frequent complex among the held-out "
            "cells; a useful code scores above it. <em>pixels</em>: the VAE reads the crops; <em>deep "
            "features</em>: it reads frozen features of a trained encoder instead.</div>"
            + table(shown, raw_html=tuple(classifiers)) + note)


def _disentanglement(dis: pd.DataFrame) -> str:
    """Model-on-dataset rows with MIG and DCI, and the fine-tuned model's MIG against the floor."""
    rows, sentences = [], []
    for variant in _variants(dis):
        sub = dis[dis["variant"] == variant]
        for (model, dataset), label in MODELS.items():
            hit = sub[(sub["model"] == model) & (sub["dataset"] == dataset)]
            if len(hit):
                rows.append({"Input": INPUTS.get(variant, variant), "Model on data": label,
                             **{name: float(hit[col].iloc[0]) for name, col in DCI}})
        sentences.append(_against_floor(sub, INPUTS.get(variant, variant)))
    shown = pd.DataFrame(rows)
    body = ("<div class=\"explain\"><b>MIG</b> (mutual information gap): per factor, the gap between the "
            "two latents that know most about it, over the factor's entropy, averaged over factors "
            "(1 = each factor in exactly one latent, 0 = spread out or absent). <b>DCI</b>: gradient-"
            "boosted trees predict each factor from the code; <b>disentanglement</b> is high when each "
            "latent matters for one factor only, <b>completeness</b> when each factor rests on one "
            "latent, <b>informativeness</b> is the held-out accuracy (Source: discrete factors) or "
            "R² (screen: continuous factors) of those predictions. The random-init encoder (same "
            "architecture, untrained) is the floor. Higher is better everywhere.</div>"
            + table(shown))
    body += "".join(f"<p>{s}</p>" for s in sentences if s)
    if not (dis["dataset"] == "screen").any():
        body += ("<p class=\"note\">No screen rows: the screen's true per-cell factors are known only for "
                 "the simulated demo (<code>factors.tsv</code>).</p>")
    return body


def _against_floor(sub: pd.DataFrame, name: str) -> str:
    """One sentence: the fine-tuned model's MIG on the screen against the random encoder's."""
    def value(model):
        hit = sub[(sub["model"] == model) & (sub["dataset"] == "screen")]
        return float(hit["mig"].iloc[0]) if len(hit) else np.nan

    tuned, floor = value("finetuned"), value("random")
    if not np.isfinite(tuned) or not np.isfinite(floor):
        return ""
    ratio = f"{tuned / floor:.1f}× the floor" if floor > 0 else "the floor is 0"
    return (f"{esc(name).capitalize()}: the fine-tuned model's MIG on the screen is <b>{fmt(tuned)}</b> "
            f"against {fmt(floor)} for the random-init encoder ({ratio}).")


def _variants(df: pd.DataFrame) -> list[str]:
    """The variants of ``df``: pixels first, then deep features, then any other in file order."""
    present = list(dict.fromkeys(df["variant"].astype(str)))
    return [v for v in INPUTS if v in present] + [v for v in present if v not in INPUTS]
