"""input.preset: CellProfiler, brieflow and Funk et al. 2022 cell tables in their own
column names parse into the contract columns (issue 13, item 4)."""

import pandas as pd
import pytest

from opsembed.io.cells import read_cells
from opsembed.io.errors import InputError
from opsembed.io.presets import PRESETS, resolve_columns
from opsembed.io.tables import read_table
from test_input_tables import _screen, _snakemake

# Two cells on two tiles; each centre is at row 20, column 5 (first) and row 7, column 30.
# Coordinate columns that a preset must not take hold distinct decoys (900+).
CELLPROFILER = pd.DataFrame({
    "ImageNumber": [1, 2], "ObjectNumber": [1, 1],
    "Metadata_Plate": ["P1", "P1"], "Metadata_Well": ["A01", "A01"], "Metadata_Site": ["01", "02"],
    "Nuclei_Location_Center_X": [5.0, 30.0], "Nuclei_Location_Center_Y": [20.0, 7.0],
    "Nuclei_AreaShape_Center_X": [901.0, 902.0], "Nuclei_AreaShape_Center_Y": [903.0, 904.0],
    "Cells_Location_Center_X": [905.0, 906.0], "Cells_Location_Center_Y": [907.0, 908.0],
    "Nuclei_AreaShape_Area": [120.0, 95.0],
    "Metadata_Gene": ["TP53", "nontargeting"], "Metadata_sgRNA": ["TP53_1", "nt_1"],
})
BRIEFLOW = pd.DataFrame({
    "plate": ["P1", "P1"], "well": ["A01", "A01"], "tile": ["01", "02"], "cell_0": [1, 1],
    "i_0": [20.0, 7.0], "j_0": [5.0, 30.0], "site": ["5", "6"], "cell_1": [3, 4],
    "i_1": [901.0, 902.0], "j_1": [903.0, 904.0], "distance": [0.5, 0.7],
    "cell_barcode_0": ["ACGT", "TTGA"], "gene_symbol_0": ["TP53", "nontargeting"],
    "sgRNA_0": ["TP53_1", "nt_1"], "mapped_single_gene": [True, True],
})
FUNK2022 = pd.DataFrame({
    "plate": ["P1", "P1"], "well": ["A01", "A01"], "tile": ["01", "02"], "cell": [1, 1],
    "i": [20.0, 7.0], "j": [5.0, 30.0], "cell_i": [901.0, 902.0], "cell_j": [903.0, 904.0],
    "gene_symbol_0": ["TP53", "nontargeting"], "sgRNA_0": ["TP53_1", "nt_1"],
})
TABLES = {"cellprofiler": CELLPROFILER, "brieflow": BRIEFLOW, "funk2022": FUNK2022}


def _write(df, path):
    if path.suffix == ".parquet":
        df.to_parquet(path, index=False)
    else:
        df.to_csv(path, index=False)
    return path


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
@pytest.mark.parametrize("preset", sorted(TABLES))
def test_each_preset_parses_its_table_into_the_contract(tmp_path, preset, suffix):
    path = _write(TABLES[preset], tmp_path / f"cells{suffix}")
    cells = read_cells(path, preset=preset)
    assert cells["plate"].tolist() == ["P1", "P1"]
    assert cells["well"].tolist() == ["A01", "A01"]
    assert cells["tile"].tolist() == ["01", "02"]  # ids as written: 01 stays 01
    assert cells["y"].tolist() == [20.0, 7.0]  # row: CellProfiler's Y, ops's i
    assert cells["x"].tolist() == [5.0, 30.0]  # column: CellProfiler's X, ops's j
    assert cells["gene"].tolist() == ["TP53", "nontargeting"]
    assert cells["sgRNA"].tolist() == ["TP53_1", "nt_1"]
    assert cells["cell_id"].tolist() == ["0", "1"]  # per-tile labels are not unique ids


def test_a_bare_cellprofiler_nuclei_export_uses_its_unprefixed_centres(tmp_path):
    """A Nuclei.csv export (as in CellProfiler's example pipelines) has no compartment
    prefix; with the barcode call named as PERISCOPE tables name it."""
    df = pd.DataFrame({"ImageNumber": [1], "ObjectNumber": [4], "Metadata_Plate": ["P1"],
                       "Metadata_Well": ["B02"], "Metadata_Site": ["3"],
                       "AreaShape_Center_X": [901.0], "AreaShape_Center_Y": [902.0],
                       "Location_Center_X": [11.5], "Location_Center_Y": [40.25],
                       "Metadata_Foci_Barcode_MatchedTo_GeneCode": ["KRAS"],
                       "Metadata_Foci_Barcode_MatchedTo_Barcode": ["GATTACA"]})
    cells = read_cells(_write(df, tmp_path / "Nuclei.csv"), preset="cellprofiler")
    assert cells[["tile", "y", "x", "gene", "sgRNA"]].values.tolist() == [["3", 40.25, 11.5, "KRAS", "GATTACA"]]


def test_explicit_columns_win_over_the_preset(tmp_path):
    df = CELLPROFILER.assign(Metadata_Perturbation=["KRAS", "nontargeting"])
    path = _write(df, tmp_path / "cells.csv")
    explicit = {"Nuclei_AreaShape_Center_Y": "y", "Nuclei_AreaShape_Center_X": "x",
                "Metadata_Perturbation": "gene", "ImageNumber": "tile"}
    cells = read_cells(path, columns=explicit, preset="cellprofiler")
    assert cells["y"].tolist() == [903.0, 904.0] and cells["x"].tolist() == [901.0, 902.0]
    assert cells["gene"].tolist() == ["KRAS", "nontargeting"]
    assert cells["tile"].tolist() == ["1", "2"]
    # the preset's own picks for those slots are left as they were, under their names
    assert cells["Metadata_Gene"].tolist() == ["TP53", "nontargeting"]
    assert cells["Metadata_Site"].astype(str).tolist() == ["1", "2"]  # not an id column now


def test_a_column_already_named_by_its_contract_name_is_used_as_is(tmp_path):
    path = _write(FUNK2022.assign(gene=["MYC", "nontargeting"]), tmp_path / "cells.csv")
    assert read_cells(path, preset="funk2022")["gene"].tolist() == ["MYC", "nontargeting"]


@pytest.mark.parametrize("preset, drop, named", [
    ("cellprofiler", ["Metadata_Site"], "'tile'"),
    ("brieflow", ["gene_symbol_0"], "'gene'"),
    ("funk2022", ["j", "cell_j"], "'y', 'x'"),  # y and x come as a pair
])
def test_a_missing_column_error_names_the_preset(tmp_path, preset, drop, named):
    path = _write(TABLES[preset].drop(columns=drop), tmp_path / "cells.parquet")
    with pytest.raises(InputError, match=rf"cells\.parquet: missing required column\(s\) \[{named}\]"
                                         rf".*input\.preset '{preset}' looks for") as err:
        read_cells(path, preset=preset)
    for column in drop:  # the columns it looked for are listed
        assert column in str(err.value)


def test_without_a_preset_the_renames_are_the_explicit_ones():
    header = list(CELLPROFILER.columns)
    assert resolve_columns(None, {"a": "gene"}, header) == {"a": "gene"}
    assert resolve_columns("cellprofiler", None, header) == {
        "Metadata_Plate": "plate", "Metadata_Well": "well", "Metadata_Site": "tile",
        "Nuclei_Location_Center_Y": "y", "Nuclei_Location_Center_X": "x",
        "Metadata_Gene": "gene", "Metadata_sgRNA": "sgRNA"}
    assert set(PRESETS) == {"cellprofiler", "brieflow", "funk2022"}


def test_workflow_validates_a_cellprofiler_screen(tmp_path):
    """Parse-time tile listing and validate_inputs through Snakemake on a tiny screen whose
    table is in CellProfiler's names (zero-padded sites find 000.tif)."""
    root = _screen(tmp_path)
    contract = pd.read_csv(root / "cells.csv", dtype=str)
    contract.drop(columns=["cell_id"]).rename(columns={
        "plate": "Metadata_Plate", "well": "Metadata_Well", "tile": "Metadata_Site",
        "y": "Nuclei_Location_Center_Y", "x": "Nuclei_Location_Center_X",
        "gene": "Metadata_Gene", "sgRNA": "Metadata_sgRNA"}).to_csv(root / "cells.csv", index=False)
    proc = _snakemake(root, {"input": {"preset": "cellprofiler"}})
    assert proc.returncode == 0, proc.stderr[-4000:]
    out = read_table(root / "results/preprocess/cells.parquet")
    assert out["tile"].tolist() == contract["tile"].tolist()
    assert out["y"].tolist() == contract["y"].astype(float).tolist()
    assert out["x"].tolist() == contract["x"].astype(float).tolist()
    assert out["gene"].tolist() == contract["gene"].tolist()


def test_workflow_names_the_preset_when_a_tile_column_is_missing_at_parse_time(tmp_path):
    root = _screen(tmp_path)
    pd.read_csv(root / "cells.csv", dtype=str).rename(columns={
        "plate": "Metadata_Plate", "well": "Metadata_Well", "tile": "Site"}).to_csv(
        root / "cells.csv", index=False)
    proc = _snakemake(root, {"input": {"preset": "cellprofiler"}})
    assert proc.returncode != 0
    assert ("cells.csv: missing column(s) ['tile']; map other spellings with input.columns. "
            "input.preset 'cellprofiler' looks for tile from Metadata_Site or Metadata_Field") in proc.stderr
