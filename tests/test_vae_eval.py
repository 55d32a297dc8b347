"""The VAE evaluation's inputs as the pipeline writes them (evaluate.vae_eval)."""

import numpy as np
import pandas as pd

from opsembed.evaluate.vae_eval import cell_complexes, evaluate_vae
from opsembed.io.tables import read_table, write_table


def curated_file(tmp_path):
    """The curated ground truth as rule curate_ground_truth writes it: gene, complex."""
    curated = pd.DataFrame({"gene": ["PSMA1", "PSMA3", "MCM2", "MCM4"],
                            "complex": ["26S proteasome", "26S proteasome", "MCM complex", "MCM complex"]})
    path = tmp_path / "ground_truth.tsv"
    write_table(curated, path)
    return path


def test_cell_complexes_reads_the_curated_gene_complex_table(tmp_path):
    codes = pd.DataFrame({"gene": ["PSMA3", "MCM2", "nontargeting", "OTHER", "PSMA1"]})
    labels = cell_complexes(codes, curated_file(tmp_path), "nontargeting")
    assert labels.iloc[[0, 1, 4]].tolist() == ["26S proteasome", "MCM complex", "26S proteasome"]
    assert labels.iloc[[2, 3]].isna().all()  # controls and genes outside every complex


def test_evaluate_vae_fills_schema_defaults_and_scores_a_readable_code(tmp_path):
    rng = np.random.default_rng(0)
    n = 200
    f = rng.integers(0, 3, size=(n, 2))                       # two discrete Source factors
    z = f + 0.01 * rng.normal(size=f.shape)                    # code = factors: MIG near 1
    src = pd.DataFrame({"row": range(n), "size_index": f[:, 0], "foci_index": f[:, 1],
                        "z_0": z[:, 0], "z_1": z[:, 1]})
    genes = np.array(["PSMA1", "PSMA3", "MCM2", "MCM4", "nontargeting"])[np.arange(n) % 5]
    is_mcm = np.char.startswith(genes.astype(str), "MCM")
    screen = pd.DataFrame({"cell_id": [str(i) for i in range(n)], "gene": genes, "batch": "b",
                           "z_0": is_mcm * 2.0 + 0.05 * rng.normal(size=n), "z_1": rng.normal(size=n)})
    codes = {}
    for key, table in (("source_source", src), ("random_source", src.assign(z_0=rng.normal(size=n))),
                       ("source_screen", screen), ("finetuned_screen", screen), ("random_screen", screen)):
        codes[key] = tmp_path / f"{key}.tsv"
        write_table(table, codes[key])
    out = {k: tmp_path / f"vae_{k}.tsv" for k in ("disentanglement", "classification", "classification_runs")}
    out["mi"] = tmp_path / "vae_mi.png"
    evaluate_vae({"vae": codes}, curated_file(tmp_path), "nontargeting", {"eval_seeds": 2}, 0, out)
    dis = read_table(out["disentanglement"]).set_index("model")
    assert dis.loc["source", "mig"] > 0.8 and dis.loc["source", "mig"] > dis.loc["random", "mig"]
    cls = read_table(out["classification"])
    assert set(cls["n_seeds"]) == {2} and len(cls) == 4       # {without, with} x {GBT, MLP}
    # 160 labelled cells, 80 per complex; 30% held out = 48 cells, 24 + 24
    assert (cls["chance"] == 0.5).all()
    assert (cls["accuracy"] == 1.0).all()                      # z_0 separates them
    assert out["mi"].read_bytes()[:4] == b"\x89PNG"
