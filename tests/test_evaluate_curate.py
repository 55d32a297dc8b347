"""Ground-truth curation: screened genes, min_genes, greedy non-overlap, cap, max_complexes."""

import pandas as pd
import pytest

from opsembed.evaluate.curate import curate_complexes
from opsembed.io.errors import InputError

# A (6 genes) is the largest and is taken first. B and C each lose genes to A: B keeps 3
# (>= min_genes 3), C keeps 2 (dropped). D has 2 screened genes, the control and an
# unscreened gene. E and G tie at 3 genes and share e1: E wins by name, G is dropped.
RAW = {
    "A": ["a1", "a2", "a3", "a4", "a5", "a6"],
    "B": ["b1", "b2", "b3", "a1"],
    "C": ["c1", "c2", "a2", "a3"],
    "D": ["d1", "d2", "nontargeting", "zz"],
    "E": ["e1", "e2", "e3"],
    "G": ["g1", "g2", "e1"],
}
SCREENED = sorted({g for genes in RAW.values() for g in genes} - {"zz"})  # includes the control


def _raw():
    return pd.DataFrame([(c, g) for c, genes in RAW.items() for g in genes], columns=["complex", "gene"])


def _reasons(log):
    return {(c, g): r for c, g, r in log[["complex", "gene", "reason"]].itertuples(index=False)}


def test_hand_example():
    curated, log = curate_complexes(_raw(), SCREENED, "nontargeting", min_genes=3, max_genes=4, max_complexes=None, seed=0)
    assert list(curated.columns) == ["gene", "complex"]
    groups = curated.groupby("complex")["gene"].apply(set).to_dict()
    assert set(groups) == {"A", "B", "E"}
    assert groups["B"] == {"b1", "b2", "b3"}
    assert groups["E"] == {"e1", "e2", "e3"}
    assert len(groups["A"]) == 4 and groups["A"] <= set(RAW["A"])
    assert not curated["gene"].duplicated().any()
    assert "nontargeting" not in set(curated["gene"])
    reasons = _reasons(log)
    dropped_a = set(RAW["A"]) - groups["A"]
    expected = {("D", "nontargeting"): "control", ("D", "zz"): "not_screened",
                ("D", "d1"): "too_few_screened", ("D", "d2"): "too_few_screened",
                ("B", "a1"): "overlap", ("C", "a2"): "overlap", ("C", "a3"): "overlap",
                ("C", "c1"): "overlap", ("C", "c2"): "overlap",
                ("G", "e1"): "overlap", ("G", "g1"): "overlap", ("G", "g2"): "overlap",
                **{("A", g): "subsampled" for g in dropped_a}}
    assert reasons == expected
    # every input row is either kept or logged exactly once
    assert len(curated) + len(log) == len(_raw())
    assert set(log.loc[log["gene"] == "a1", "detail"]) == {"kept in complex A"}


def test_subsample_is_seeded_and_per_complex():
    a0, _ = curate_complexes(_raw(), SCREENED, "nontargeting", 3, 4, None, 0)
    again, _ = curate_complexes(_raw(), SCREENED, "nontargeting", 3, 4, None, 0)
    pd.testing.assert_frame_equal(a0, again)
    samples = {tuple(curate_complexes(_raw(), SCREENED, "nontargeting", 3, 4, None, s)[0]
                     .query("complex == 'A'")["gene"]) for s in range(8)}
    assert len(samples) > 1  # the seed matters
    # dropping an unrelated complex does not change A's sample
    fewer = _raw().query("complex != 'E'")
    b0, _ = curate_complexes(fewer, SCREENED, "nontargeting", 3, 4, None, 0)
    assert list(b0.query("complex == 'A'")["gene"]) == list(a0.query("complex == 'A'")["gene"])


def test_max_complexes_keeps_the_largest():
    curated, log = curate_complexes(_raw(), SCREENED, "nontargeting", 3, 10, max_complexes=2, seed=0)
    assert set(curated["complex"]) == {"A", "B"}  # A (6), then B and E tie at 3: B by name
    assert set(log.loc[log["reason"] == "max_complexes", "gene"]) == {"e1", "e2", "e3"}


def test_tie_break_is_by_name():
    raw = pd.DataFrame([("Z", g) for g in ["x", "y1", "y2"]] + [("M", g) for g in ["x", "m1", "m2"]],
                       columns=["complex", "gene"])
    curated, log = curate_complexes(raw.assign(complex=raw["complex"].replace({"Z": "K"})),
                                    ["x", "y1", "y2", "m1", "m2"], None, 2, 5, None, 0)
    assert set(curated.query("gene == 'x'")["complex"]) == {"K"}  # K < M
    curated, _ = curate_complexes(raw, ["x", "y1", "y2", "m1", "m2"], None, 2, 5, None, 0)
    assert set(curated.query("gene == 'x'")["complex"]) == {"M"}  # M < Z


def test_fewer_than_two_complexes_is_an_input_error():
    with pytest.raises(InputError, match=r"fewer than 2 usable complexes.*6 complex\(es\) in the input"):
        curate_complexes(_raw(), SCREENED, "nontargeting", min_genes=5, max_genes=10, max_complexes=None, seed=0)
    with pytest.raises(InputError, match="min_genes"):
        curate_complexes(_raw(), SCREENED, "nontargeting", min_genes=6, max_genes=5, max_complexes=None, seed=0)
