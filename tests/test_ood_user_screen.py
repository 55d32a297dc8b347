"""The OOD benchmark on a screen of other genes with a config that sets only input: and
channels: (issue 14): before, it classified all 57 genes (those of one complex look alike)
and every predictor scored at chance; now it chooses its classes by phenotypic activity."""

import os
import subprocess
import sys

import pandas as pd
import pytest
import yaml

from conftest import REPO
from opsembed.io.schema import block_config
from opsembed.simulate.screen import simulate_screen


@pytest.mark.integration
def test_naive_scores_well_above_chance_on_a_user_screen_with_default_ood_settings(tmp_path):
    sim = dict(block_config("simulate", {}), seed=3, n_plates=3, wells_per_plate=2, tiles_per_well=5,
               tile_size=512, cells_per_tile=80, technical_scale=1.0)
    raw = tmp_path / "raw"
    channels = ["DNA", "gH2AX", "tubulin", "actin"]
    simulate_screen(sim, channels, "nontargeting", str(raw / "tiles" / "{plate}" / "{well}" / "{tile}.tif"),
                    raw / "cells.csv", raw / "complexes.tsv", raw / "factors.tsv")
    # other gene names (no list of the demo's can apply), the simulator's tiles as they are
    ren = lambda g: g if g == "nontargeting" else f"u{g.lower()}"      # noqa: E731
    cells = pd.read_csv(raw / "cells.csv", dtype=str)
    cells["gene"] = cells["gene"].map(ren)
    cells.to_csv(tmp_path / "cells.csv", index=False)
    with open(raw / "complexes.tsv") as f, open(tmp_path / "complexes.tsv", "w") as g:
        for line in f:
            name, genes = line.rstrip("\n").split("\t")
            g.write(f"{name}\t{' '.join(ren(x) for x in genes.split())}\n")
    config = {"input": {"tiles": str(raw / "tiles" / "{plate}" / "{well}" / "{tile}.tif"),
                        "cells": str(tmp_path / "cells.csv"), "ground_truth": str(tmp_path / "complexes.tsv")},
              "channels": channels}
    (tmp_path / "user.yaml").write_text(yaml.safe_dump(config))
    env = dict(os.environ, PYTHONPATH=str(REPO / "workflow" / "scripts"))
    proc = subprocess.run([sys.executable, "-m", "snakemake", "--cores", "1", "--directory", str(tmp_path),
                           "--snakefile", str(REPO / "Snakefile"), "--configfile", str(tmp_path / "user.yaml"), "--",
                           "results/ood/iid/naive/metrics.tsv"], capture_output=True, text=True, env=env,
                          cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    classes = pd.read_csv(tmp_path / "results" / "ood" / "classes.tsv", sep="\t", keep_default_na=False)
    chosen = classes[classes["chosen"].astype(str) == "True"]
    assert 2 <= len(chosen) <= 20 and chosen["gene"].str.startswith("u").all()
    assert chosen["complex"].is_unique                     # at most one gene per curated complex
    assert chosen["reason"].str.startswith("most active significant gene of").all()
    activity = pd.read_csv(tmp_path / "results" / "evaluation" / "activity.tsv", sep="\t")
    assert len(activity) == cells.loc[cells["gene"] != "nontargeting", "gene"].nunique()
    metrics = pd.read_csv(tmp_path / "results" / "ood" / "iid" / "naive" / "metrics.tsv", sep="\t")
    naive = metrics.set_index("method").loc["naive"]
    chance = 1.0 / len(chosen)
    assert naive["n_scored_genes"] == len(chosen)
    assert naive["macro_f1"] >= 3 * chance, (naive["macro_f1"], chance)
