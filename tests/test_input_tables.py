"""A user's tables as written: ids read as text, batches within plates, the ground truth's
layouts and its overlap with the screen at validation, garbage files, path-safe names,
and the missing-genes warning on the terminal (issue 12, cases 4, 5, 6, 8, 10, 12)."""

import functools
import os
import re
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import tifffile
import yaml

from conftest import REPO
from opsembed.cli import main as cli_main
from opsembed.evaluate.curate import curate_ground_truth
from opsembed.io.cells import check_path_names, read_cells
from opsembed.io.embeddings import read_embeddings, write_embeddings
from opsembed.io.errors import InputError
from opsembed.io.ground_truth import read_complexes
from opsembed.io.h5 import read_obs
from opsembed.io.logs import script_logging
from opsembed.io.tables import read_table, table_columns, write_table
from opsembed.preprocess.crops import run_crop_well
from opsembed.preprocess.flatfield import run_fit_flatfield
from opsembed.preprocess.merge import merge_cells
from opsembed.preprocess.rescale import run_rescale_percentiles
from opsembed.preprocess.validate import run_validate_inputs, terminal_warning, validate_inputs
from opsembed.preprocess.zscore import batch_labels

CHANNELS = ["DNA", "actin"]
SIZE, CROP = 32, 8
GT_CFG = {"min_genes": 2, "max_genes": 10, "max_complexes": None, "seed": 0}
# Two plates "001", "002" with a well "01" each (same name), two tiles "000", "001" per well.
PLATES, WELL, TILES = ("001", "002"), "01", ("000", "001")


def _screen(root, genes=("G1", "G2", "G3", "G4"), complexes="C1\tG1 G2\nC2\tG3 G4\n"):
    """Tiles at root/tiles/{plate}/{well}/{tile}.tif (2, 32, 32) uint16; cells.csv written
    with zero-padded ids as text; 1 control + the genes per tile, all well inside."""
    rng = np.random.default_rng(0)
    rows = []
    for p, plate in enumerate(PLATES):
        for tile in TILES:
            path = root / "tiles" / plate / WELL / f"{tile}.tif"
            path.parent.mkdir(parents=True, exist_ok=True)
            tifffile.imwrite(path, rng.integers(100, 1000 + 500 * p, (2, SIZE, SIZE), dtype=np.uint16))
            for k, gene in enumerate(("nontargeting",) + tuple(genes)):
                rows.append((plate, WELL, tile, 8.0 + 4 * k, 16.0, gene, f"{gene}_sg1",
                             f"{plate}{tile}{k:03d}"))
    pd.DataFrame(rows, columns=["plate", "well", "tile", "y", "x", "gene", "sgRNA", "cell_id"]).to_csv(
        root / "cells.csv", index=False)
    (root / "complexes.tsv").write_text(complexes)
    return root


def _validate(root, **kw):
    args = dict(columns={}, channels=CHANNELS, controls="nontargeting", batch_key="plate",
                tiles_pattern=str(root / "tiles/{plate}/{well}/{tile}.tif"), crop_size=CROP)
    args.update(kw)
    return validate_inputs(root / "cells.csv", root / "complexes.tsv", **args)


# ---- case 4: every id column is read as text, exactly as written ----

@pytest.mark.parametrize("name", ["t.csv", "t.tsv", "t.tsv.gz", "t.parquet"])
def test_read_table_keeps_ids_as_written(tmp_path, name):
    df = pd.DataFrame({"plate": ["007", "010"], "well": ["01", "1"], "tile": ["000", "001"],
                       "cell_id": ["0001", "2"], "sgRNA": ["0", "1e3"], "gene": ["NA", "1"],
                       "series": ["01", "02"], "y": [1.5, 2.0]})
    path = tmp_path / name
    if name.endswith(".parquet"):
        df.to_parquet(path)
    else:
        df.to_csv(path, sep="," if name.endswith(".csv") else "\t", index=False)
    got = read_table(path)
    pd.testing.assert_frame_equal(got.drop(columns="y"), df.drop(columns="y"), check_dtype=False)
    assert got["y"].dtype == np.float64


def test_read_table_text_columns_and_parquet_numbers(tmp_path):
    """``text`` adds id columns; an integer Parquet id column comes back as its digits."""
    (tmp_path / "t.csv").write_text("Site,replicate,area\n000,01,5\n,02,\n")
    got = read_table(tmp_path / "t.csv", text=["Site", "replicate"])
    assert got["Site"].tolist()[0] == "000" and pd.isna(got["Site"].iloc[1])  # empty stays missing
    assert got["replicate"].tolist() == ["01", "02"]
    assert got["area"].tolist()[0] == 5 and pd.isna(got["area"].iloc[1])
    pd.DataFrame({"tile": [0, 12], "x": [1, 2]}).to_parquet(tmp_path / "n.parquet")
    assert read_table(tmp_path / "n.parquet")["tile"].tolist() == ["0", "12"]


def test_read_cells_ids_stay_as_written_when_renamed(tmp_path):
    (tmp_path / "c.csv").write_text(
        "Metadata_Plate,well,Site,y,x,gene,lane\n001,01,000,1,2,0123,07\n001,01,001,3,4,nontargeting,07\n")
    cells = read_cells(tmp_path / "c.csv", {"Metadata_Plate": "plate", "Site": "tile"}, text=["lane"])
    assert cells["plate"].tolist() == ["001", "001"]
    assert cells["tile"].tolist() == ["000", "001"]
    assert cells["gene"].tolist() == ["0123", "nontargeting"]
    assert cells["lane"].tolist() == ["07", "07"]
    assert cells["y"].dtype == np.float64


def test_zero_padded_screen_runs_through_preprocessing(tmp_path):
    """Tiles 000.tif, 001.tif of plates 001, 002: found, and cells.h5's obs keeps the ids."""
    root = _screen(tmp_path)
    res = root / "results"
    pattern = str(root / "tiles/{plate}/{well}/{tile}.tif")
    run_validate_inputs(root / "cells.csv", root / "complexes.tsv", res / "cells.parquet", {},
                        CHANNELS, "nontargeting", "plate", pattern, CROP)
    ff = {"enabled": False, "n_tiles": 2, "get_darkfield": False, "offset": 0.0}
    for plate in PLATES:
        tiles = [root / f"tiles/{plate}/{WELL}/{t}.tif" for t in TILES]
        run_fit_flatfield(tiles, res / f"ff/{plate}.npz", res / f"ff/{plate}.png", ff, CHANNELS, 0, plate)
    run_rescale_percentiles(res / "cells.parquet", [res / f"ff/{p}.npz" for p in PLATES],
                            res / "percentiles.tsv", None,
                            {"low": 0.0, "high": 100.0, "scope": "plate", "n_tiles": 2},
                            CHANNELS, list(PLATES), 0, pattern)
    crops = [res / f"crops/{p}/{WELL}.h5" for p in PLATES]
    for plate, path in zip(PLATES, crops):
        run_crop_well(res / "cells.parquet", res / f"ff/{plate}.npz", res / "percentiles.tsv", path,
                      {"size": CROP, "edge": "drop"}, CHANNELS, pattern, plate, WELL)
    merge_cells(crops, res / "cells.parquet", res / "cells.h5", res / "zscore.tsv",
                res / "summary.tsv", "nontargeting", "plate", CHANNELS, 0, CROP)
    obs = read_obs(res / "cells.h5")
    assert sorted(set(obs["plate"])) == ["001", "002"] and set(obs["well"]) == {"01"}
    assert sorted(set(obs["tile"])) == ["000", "001"]
    assert obs["cell_id"].iloc[0] == "001000000"
    assert read_table(res / "zscore.tsv")["batch"].tolist() == ["001"] * 2 + ["002"] * 2


# ---- case 5: a well is a batch within its plate ----

def test_batch_labels_nest_wells_and_tiles_in_their_plate():
    cells = pd.DataFrame({"plate": ["P1", "P1", "P2"], "well": ["A1", "A1", "A1"],
                          "tile": ["0", "1", "0"], "imaging": ["b1", "b1", "b1"]})
    assert batch_labels(cells, "plate").tolist() == ["P1", "P1", "P2"]
    assert batch_labels(cells, "well").tolist() == ["P1/A1", "P1/A1", "P2/A1"]
    assert batch_labels(cells, "tile").tolist() == ["P1/A1/0", "P1/A1/1", "P2/A1/0"]
    assert batch_labels(cells, "imaging").tolist() == ["b1"] * 3  # the user's own id spans plates
    cells.loc[1, "imaging"] = None
    with pytest.raises(InputError, match=r"c\.csv: row 2 has an empty 'imaging'"):
        batch_labels(cells, "imaging", "c.csv")


def test_batch_key_well_keeps_same_named_wells_of_two_plates_apart(tmp_path):
    """Both plates have well "01": two batches, each z-scored against its own controls."""
    root = _screen(tmp_path)
    cells = _validate(root, batch_key="well")
    assert sorted(set(cells["batch"])) == ["001/01", "002/01"]
    # merge: fake well files with the validated obs, crops of plate 002 brighter
    paths = []
    for p, plate in enumerate(PLATES):
        obs = cells[cells["plate"] == plate].reset_index(drop=True)
        crops = np.full((len(obs), 2, CROP, CROP), 0.2 + 0.4 * p, np.float32)
        crops[:, :, 0, 0] += 0.1  # not constant
        path = tmp_path / f"w{p}.h5"
        from opsembed.io.h5 import write_cells_h5

        write_cells_h5(path, obs, [crops], {"plate": plate, "well": WELL, "n_cells": len(obs),
                                            "n_kept": len(obs), "n_dropped_edge": 0, "n_padded": 0,
                                            "crop_size": CROP, "edge": "drop", "channels": CHANNELS})
        paths.append(path)
    write_table(cells, tmp_path / "cells.parquet")
    merge_cells(paths, tmp_path / "cells.parquet", tmp_path / "cells.h5", tmp_path / "z.tsv",
                tmp_path / "s.tsv", "nontargeting", "well", CHANNELS, 0, CROP)
    z = read_table(tmp_path / "z.tsv")
    assert z["batch"].tolist() == ["001/01", "001/01", "002/01", "002/01"]
    means = z.groupby("batch")["mean"].first()
    assert means["002/01"] - means["001/01"] == pytest.approx(0.4, abs=1e-3)


# ---- case 6: the two ground-truth layouts, detected explicitly ----

def test_long_form_keeps_symbols_with_spaces(tmp_path):
    (tmp_path / "h.tsv").write_text("complex\tgene\nMHC\tHLA A\nMHC\tB2M\nOne\tX Y\n")
    (tmp_path / "n.tsv").write_text("MHC\tHLA A\nMHC\tB2M\n")  # no header: MHC repeats -> long
    for name in ("h.tsv", "n.tsv"):
        got = read_complexes(tmp_path / name)
        assert got[got["complex"] == "MHC"]["gene"].tolist() == ["HLA A", "B2M"]
    assert read_complexes(tmp_path / "h.tsv").query("complex == 'One'")["gene"].tolist() == ["X Y"]


def test_wide_form_splits_on_spaces(tmp_path):
    (tmp_path / "w.tsv").write_text("MCM\tMCM2 MCM3  MCM4\nArp2/3\tACTR2 ACTR3\n")
    (tmp_path / "wh.tsv").write_text("name\tgenes\nMCM\tMCM2 MCM3  MCM4\nArp2/3\tACTR2 ACTR3\n")
    for name in ("w.tsv", "wh.tsv"):
        got = read_complexes(tmp_path / name)
        assert got.groupby("complex")["gene"].apply(list).to_dict() == {
            "Arp2/3": ["ACTR2", "ACTR3"], "MCM": ["MCM2", "MCM3", "MCM4"]}


def test_ambiguous_headerless_ground_truth_asks_for_a_header(tmp_path):
    """Names repeat (long?) but most lines list several genes (wide?): neither is guessed."""
    (tmp_path / "a.tsv").write_text("MCM\tMCM2 MCM3\nMCM\tMCM4 MCM5\nArp\tACTR2\n")
    with pytest.raises(InputError, match=r"a\.tsv: cannot tell the layout.*Add a header line"):
        read_complexes(tmp_path / "a.tsv")
    (tmp_path / "a.tsv").write_text("name\tgenes\nMCM\tMCM2 MCM3\nMCM\tMCM4 MCM5\nArp\tACTR2\n")
    assert len(read_complexes(tmp_path / "a.tsv")) == 5  # with the wide header: MCM's 4 + ACTR2


def test_real_corum_file_reads_as_wide(real_data):
    got = read_complexes(real_data / "corum" / "CORUM_clusters.tsv")
    assert got["complex"].nunique() == 2696
    assert not got["gene"].str.contains(" ").any()
    assert set(got[got["complex"] == "(E.F.G) complex"]["gene"]) == {"SNRPE", "SNRPF", "SNRPG"}


# ---- case 8: < 2 usable complexes is an error at validation ----

def test_validation_rejects_a_ground_truth_leaving_one_complex(tmp_path):
    root = _screen(tmp_path, complexes="C1\tG1 G2\nC2\tG3 OTHER\nC3\tX1 X2 X3\n")
    out = root / "results" / "cells.parquet"
    check = functools.partial(curate_ground_truth, root / "complexes.tsv", controls="nontargeting",
                              cfg=GT_CFG)
    with pytest.raises(InputError, match=r"complexes\.tsv: fewer than 2 usable complexes \(3 complex"
                                         r"\(es\) in the input, 2 with any screened gene, 1 with >= "
                                         r"min_genes=2 screened genes"):
        run_validate_inputs(root / "cells.csv", root / "complexes.tsv", out, {}, CHANNELS,
                            "nontargeting", "plate", str(root / "tiles/{plate}/{well}/{tile}.tif"),
                            CROP, check_genes=check)
    assert not out.exists()
    (root / "complexes.tsv").write_text("C1\tG1 G2\nC2\tG3 G4\n")  # two usable: passes, is written
    run_validate_inputs(root / "cells.csv", root / "complexes.tsv", out, {}, CHANNELS,
                        "nontargeting", "plate", str(root / "tiles/{plate}/{well}/{tile}.tif"),
                        CROP, check_genes=check)
    assert out.exists()


# ---- case 10: garbage files give one line naming the file and what was expected ----

BINARY = b"\x89HDF\r\n\x1a\n\x00\x00\x00\x00\x01\x08\x08\x00\x04\x00\x10\x00" * 20
LATIN1 = "plate,well,tile,y,x,gene\nP1,A1,0,1,2,G\u00e8ne\n".encode("latin-1")


@pytest.mark.parametrize("name, data, expected", [
    ("cells.csv", BINARY, r"cells\.csv: binary data.*expected a comma-separated UTF-8 text table"),
    ("cells.tsv", LATIN1, r"cells\.tsv: not UTF-8 text \(byte 0xe8 at offset 38\); expected a tab-sep"),
    ("cells.csv.gz", BINARY, r"cells\.csv\.gz: cannot be read \(Not a gzipped file"),
    ("cells.parquet", BINARY, r"cells\.parquet: not readable as a Parquet file"),
    ("cells.csv", b"", r"cells\.csv: the file is empty; expected a comma-separated"),
])
def test_garbage_cell_table_is_one_line_naming_the_file(tmp_path, name, data, expected):
    (tmp_path / name).write_bytes(data)
    for read in (read_cells, table_columns):
        with pytest.raises(InputError, match=expected) as info:
            read(tmp_path / name)
        assert "\n" not in str(info.value)


def test_non_utf8_beyond_the_sniffed_head_is_still_named(tmp_path):
    body = "plate,well,tile,y,x,gene\n" + "P1,A1,0,1,2,G\n" * 6000
    (tmp_path / "c.csv").write_bytes(body.encode() + "P1,A1,0,1,2,G\u00e8ne\n".encode("latin-1"))
    with pytest.raises(InputError, match=r"c\.csv: not UTF-8 text .*expected a comma-separated"):
        read_cells(tmp_path / "c.csv")


def test_a_table_with_the_wrong_separator_says_so(tmp_path):
    (tmp_path / "c.csv").write_text("plate;well;tile;y;x;gene\nP1;A1;0;1;2;G\n")
    with pytest.raises(InputError, match=r"c\.csv: missing required.*one column, 'plate;well;.*"
                                         r"must be comma-separated"):
        read_cells(tmp_path / "c.csv")


def test_utf8_bom_is_not_part_of_the_first_column(tmp_path):
    (tmp_path / "c.csv").write_bytes("\ufeffplate,well,tile,y,x,gene\nP1,A1,0,1,2,G\n".encode())
    assert read_cells(tmp_path / "c.csv")["plate"].tolist() == ["P1"]


@pytest.mark.parametrize("data, expected", [(BINARY, "binary data"), (LATIN1, "not UTF-8 text")])
def test_garbage_ground_truth_and_embeddings(tmp_path, data, expected):
    (tmp_path / "gt.tsv").write_bytes(data)
    with pytest.raises(InputError, match=rf"gt\.tsv: {expected}.*expected a complex TSV") as info:
        read_complexes(tmp_path / "gt.tsv")
    assert "\n" not in str(info.value)
    (tmp_path / "emb.tsv").write_bytes(data)
    with pytest.raises(InputError, match=rf"emb\.tsv: {expected}.*expected an embedding TSV") as info:
        read_embeddings(tmp_path / "emb.tsv")
    assert "\n" not in str(info.value)


def test_embedding_gene_names_are_text(tmp_path):
    (tmp_path / "e.tsv").write_text("gene\td0\n0001\t1.0\nNA\t2.0\n")
    assert read_embeddings(tmp_path / "e.tsv").index.tolist() == ["0001", "NA"]


def test_cli_evaluate_reports_garbage_inputs_without_a_traceback(tmp_path, capsys):
    write_embeddings(tmp_path / "m.tsv", ["A", "B"], np.eye(2))
    (tmp_path / "gt.tsv").write_text("C1\tA B\nC2\tA B\n")
    (tmp_path / "bin.tsv").write_bytes(BINARY)
    (tmp_path / "latin.yaml").write_bytes("evaluation: {}\n# G\u00e8ne\n".encode("latin-1"))
    cases = [(["bin.tsv", "--ground-truth", "gt.tsv"], r"bin\.tsv: binary data"),
             (["m.tsv", "--ground-truth", "bin.tsv"], r"bin\.tsv: binary data"),
             (["m.tsv", "--ground-truth", "gt.tsv", "--config", "latin.yaml"], r"latin\.yaml: not UTF-8")]
    for args, expected in cases:
        argv = ["evaluate", *[str(tmp_path / a) if a.endswith((".tsv", ".yaml")) else a for a in args],
                "--out", str(tmp_path / "out")]
        assert cli_main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert err[-1].startswith("opsembed evaluate: error: ") and "Traceback" not in "".join(err)
        assert re.search(expected, err[-1]), err[-1]


# ---- case 12: names that cannot be file names; the missing-genes warning on the terminal ----

@pytest.mark.parametrize("column, value, shown", [
    ("plate", "..", "is '..'"), ("plate", ".", "is '.'"), ("well", "A/1", "is 'A/1'"),
    ("tile", ".hidden", "is '.hidden'"), ("well", "A 1", "is 'A 1'"), ("plate", "P\u00e9", "is 'P\u00e9'"),
    ("tile", "t{x}", "is 't{x}'"), ("well", None, "is empty"),
])
def test_unsafe_names_are_rejected_naming_row_and_value(column, value, shown):
    df = pd.DataFrame({"plate": ["P1", "P1"], "well": ["A1", "A2"], "tile": ["0", "1"]})
    df.loc[1, column] = value
    with pytest.raises(InputError, match=rf"c\.csv: row 2: {column} {shown}, which cannot be a file"):
        check_path_names(df, "c.csv")


def test_safe_names_pass_and_case_clashes_do_not():
    ok = pd.DataFrame({"plate": ["20200202_6W-LaC024A", "P+2"], "well": ["A01", "A01"],
                       "tile": ["r01c01f01", "Tile_1.b"]})
    check_path_names(ok, "c.csv")
    clash = pd.DataFrame({"plate": ["P1", "p1"], "well": ["A1", "A1"], "tile": ["0", "0"]})
    with pytest.raises(InputError, match=r"plate names \['P1', 'p1'\] differ only in letter case"):
        check_path_names(clash, "c.csv")


def test_validation_rejects_a_dot_dot_well(tmp_path):
    root = _screen(tmp_path)
    df = pd.read_csv(root / "cells.csv", dtype=str)
    df.loc[3, "well"] = ".."
    df.to_csv(root / "cells.csv", index=False)
    with pytest.raises(InputError, match=r"cells\.csv: row 4: well is '\.\.'"):
        _validate(root)


def test_terminal_warning_reaches_the_real_stderr_inside_a_job_log(tmp_path, capfd):
    with script_logging(str(tmp_path / "job.log")):
        terminal_warning("3 of 4 genes are absent")
    assert "opsembed: WARNING: 3 of 4 genes are absent" in capfd.readouterr().err
    assert "WARNING" in (tmp_path / "job.log").read_text()


# ---- the workflow: parse-time listing, validate_inputs wiring, the warning on the terminal ----

def _snakemake(root, extra, target="results/preprocess/cells.parquet"):
    config = {"input": {"tiles": str(root / "tiles/{plate}/{well}/{tile}.tif"),
                        "cells": str(root / "cells.csv"), "ground_truth": str(root / "complexes.tsv"),
                        **extra.pop("input", {})},
              "channels": CHANNELS, "preprocess": {"crop": {"size": CROP}},
              "evaluation": {"ground_truth": {"min_genes": 2}}, **extra}
    (root / "screen.yaml").write_text(yaml.safe_dump(config))
    env = dict(os.environ, PYTHONPATH=str(REPO / "workflow" / "scripts"))
    return subprocess.run([sys.executable, "-m", "snakemake", target, "--cores", "1", "--directory",
                           str(root), "--snakefile", str(REPO / "Snakefile"), "--configfile",
                           str(REPO / "config" / "config.yaml"), str(root / "screen.yaml")],
                          capture_output=True, text=True, env=env, timeout=600)


def _rename_tile_column(root):
    df = pd.read_csv(root / "cells.csv", dtype=str).rename(columns={"tile": "Site"})
    df.to_csv(root / "cells.csv", index=False)
    return {"input": {"columns": {"Site": "tile"}}}


def test_workflow_validates_a_zero_padded_screen_and_warns_on_the_terminal(tmp_path):
    """Renamed, zero-padded tile ids find 000.tif at parse time; a screen gene absent from
    the ground truth is warned about on Snakemake's terminal output, not only in the log."""
    root = _screen(tmp_path, genes=("G1", "G2", "G3", "G4", "G5"), complexes="C1\tG1 G2\nC2\tG3 G4\n")
    proc = _snakemake(root, _rename_tile_column(root))
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "opsembed: WARNING: 1 of 5 genes are absent from the ground truth" in proc.stderr
    assert read_table(root / "results/preprocess/cells.parquet")["tile"].tolist()[:2] == ["000", "000"]


def test_workflow_stops_at_validation_when_the_ground_truth_leaves_one_complex(tmp_path):
    root = _screen(tmp_path, complexes="C1\tG1 G2\nC2\tG3 OTHER\n")
    proc = _snakemake(root, {})
    assert proc.returncode != 0
    assert "Error in rule validate_inputs" in proc.stderr
    assert "complexes.tsv: fewer than 2 usable complexes" in proc.stderr


def test_workflow_rejects_an_unsafe_name_at_parse_time(tmp_path):
    root = _screen(tmp_path)
    df = pd.read_csv(root / "cells.csv", dtype=str)
    df.loc[0, "plate"] = ".."
    df.to_csv(root / "cells.csv", index=False)
    proc = _snakemake(root, {})
    assert proc.returncode != 0
    assert "cells.csv: row 1: plate is '..', which cannot be a file or folder name" in proc.stderr


def test_workflow_reports_a_binary_cell_table_at_parse_time(tmp_path):
    root = _screen(tmp_path)
    (root / "cells.csv").write_bytes(BINARY)
    proc = _snakemake(root, {})
    assert proc.returncode != 0
    assert "cells.csv: binary data (NUL bytes), not text; expected a comma-separated" in proc.stderr


@pytest.mark.integration
def test_workflow_preprocesses_zero_padded_ids_with_wells_as_batches(tmp_path):
    """all_preprocess through Snakemake: ids as written in cells.h5, batch_key well keeps
    the two plates' well "01" apart in zscore.tsv."""
    root = _screen(tmp_path)
    extra = _rename_tile_column(root) | {
        "batch_key": "well",
        "preprocess": {"crop": {"size": CROP}, "flatfield": {"n_tiles": 2}, "rescale": {"n_tiles": 2}}}
    proc = _snakemake(root, extra, target="all_preprocess")
    assert proc.returncode == 0, proc.stderr[-4000:]
    obs = read_obs(root / "results/preprocess/cells.h5")
    assert sorted(set(zip(obs["plate"], obs["tile"]))) == [(p, t) for p in PLATES for t in TILES]
    assert sorted(set(obs["batch"])) == ["001/01", "002/01"]
    assert read_table(root / "results/preprocess/zscore.tsv")["batch"].tolist() == [
        "001/01", "001/01", "002/01", "002/01"]
