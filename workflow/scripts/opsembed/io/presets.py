"""Column presets for cell tables written by neighbouring tools (``input.preset``).

A preset is a list of *slots*; each slot is a list of candidate renames
``{file column: contract column}``, tried in order against the table's header: the first
candidate whose file columns are all present is taken. Coordinates are one slot, so y and
x always come from the same pair (y = row, x = column: CellProfiler's ``*_Y`` / ``*_X``,
the ``ops``/brieflow ``i`` / ``j``). A slot whose contract columns the file already has
under those names, or that ``input.columns`` sets, is skipped: the user's own renames win.
The columns each preset looks for are listed in config/README.md (keep the two in step).
"""

from __future__ import annotations

Slot = list[dict[str, str]]

PRESETS: dict[str, list[Slot]] = {
    # CellProfiler per-object table (Nuclei compartment; prefixed as in a merged
    # per-cell table, or unprefixed as in an exported Nuclei.csv), Image metadata joined in
    "cellprofiler": [
        [{"Metadata_Plate": "plate"}],
        [{"Metadata_Well": "well"}],
        [{"Metadata_Site": "tile"}, {"Metadata_Field": "tile"}],
        [{"Nuclei_Location_Center_Y": "y", "Nuclei_Location_Center_X": "x"},
         {"Nuclei_AreaShape_Center_Y": "y", "Nuclei_AreaShape_Center_X": "x"},
         {"Location_Center_Y": "y", "Location_Center_X": "x"},
         {"AreaShape_Center_Y": "y", "AreaShape_Center_X": "x"}],
        # the barcode call: a plate-map column, CellProfiler's barcode-calling output
        # (PERISCOPE), or brieflow-style columns joined in
        [{"Metadata_Gene": "gene"}, {"Metadata_Foci_Barcode_MatchedTo_GeneCode": "gene"},
         {"gene_symbol_0": "gene"}],
        [{"Metadata_sgRNA": "sgRNA"}, {"Metadata_Foci_Barcode_MatchedTo_Barcode": "sgRNA"},
         {"sgRNA_0": "sgRNA"}],
    ],
    # brieflow's merged table: suffix _0 = phenotype tile (tile), _1 = SBS tile (site)
    "brieflow": [
        [{"plate": "plate"}],
        [{"well": "well"}],
        [{"tile": "tile"}],
        [{"i_0": "y", "j_0": "x"}, {"i": "y", "j": "x"}, {"nucleus_i": "y", "nucleus_j": "x"}],
        [{"gene_symbol_0": "gene"}],
        [{"sgRNA_0": "sgRNA"}, {"cell_barcode_0": "sgRNA"}],
    ],
    # Funk et al. 2022 (OpticalPooledScreens, the ops package) cell tables
    "funk2022": [
        [{"plate": "plate"}],
        [{"well": "well"}],
        [{"tile": "tile"}],
        [{"i": "y", "j": "x"}, {"i_0": "y", "j_0": "x"}, {"i_nucleus": "y", "j_nucleus": "x"},
         {"cell_i": "y", "cell_j": "x"}],
        [{"gene_symbol_0": "gene"}, {"gene_symbol": "gene"}],
        [{"sgRNA_0": "sgRNA"}],
    ],
}
"""Preset name -> slots. Per-tile object labels (CellProfiler ``ObjectNumber``, brieflow
``cell_0``, ops ``cell``) are not unique across tiles, so no preset maps ``cell_id``: it
defaults to the row number, and those columns are carried along as they are."""


def resolve_columns(preset: str | None, columns: dict[str, str] | None,
                    header: list[str]) -> dict[str, str]:
    """``{file column: contract column}`` for a table with ``header``: the ``preset``'s
    renames (first matching candidate of each slot, see the module docstring), then the
    user's explicit ``columns`` on top. With ``preset`` None, ``columns`` unchanged.
    A slot with no candidate in ``header`` is left out (the missing-column check names it)."""
    explicit = dict(columns or {})
    if preset is None:
        return explicit
    present = set(header)
    claimed = set(explicit.values()) | set(explicit)  # contract names set, file columns renamed
    renames: dict[str, str] = {}
    for slot in PRESETS[preset]:
        targets = set(slot[0].values())
        if targets & claimed or targets <= present:
            continue
        pick = next((c for c in slot if set(c) <= present and not set(c) & claimed), None)
        if pick is not None:
            renames.update(pick)
    renames.update(explicit)
    return renames


def missing_hint(preset: str | None, missing: list[str]) -> str:
    """A sentence for a missing-column error: which file columns ``preset`` looked for,
    for each contract column of ``missing``; "" without a preset."""
    if preset is None:
        return ""
    looked = [f"{' + '.join(slot[0].values())} from {' or '.join(' + '.join(c) for c in slot)}"
              for slot in PRESETS[preset] if set(slot[0].values()) & set(missing)]
    return (f" input.preset {preset!r} looks for {'; '.join(looked)}; none is in the file. "
            "Name the column with input.columns (it wins over the preset).")
