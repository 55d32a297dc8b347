"""The report's generative-check block: every headline metric with its meaning and goal verdict."""

import re

import pandas as pd

from opsembed.evaluate.generative_quality import METRIC_TEXT
from opsembed.report.sections import training_section


def _metrics(path, **values):
    base = {"nucleus_iou": 0.8, "centroid_shift_px": 1.0, "input_dependence": 0.2, "gap_closed_mean": 0.4,
            "gap_closed": 0.5, "class_accuracy_generated": 0.3, "class_accuracy_inputs": 0.1,
            "class_accuracy_chance": 0.1, "class_accuracy_real_cv": 0.6, "frechet_generated": 5.0,
            "frechet_inputs": 9.0, "n_inputs": 200, "n_targets": 56}
    base.update(values)
    pd.DataFrame({"metric": list(base), "value": list(base.values()),
                  "meaning": [METRIC_TEXT.get(k, "") for k in base]}).to_csv(path, sep="\t", index=False)
    return path


def _rows(html: str) -> dict[str, list[str]]:
    """{first cell: the row's cells} of every table row of ``html``."""
    cells = [re.findall(r"<td[^>]*>(.*?)</td>", row) for row in re.findall(r"<tr>(.*?)</tr>", html)]
    return {c[0]: c for c in cells if c}


def test_metrics_are_shown_with_meaning_and_verdict(tmp_path):
    table = _metrics(tmp_path / "m.tsv")
    html = training_section({"grape": {"check_table": str(table)}}).body
    assert "200 control cells restyled to each of 56 genes" in html
    for name in ("nucleus_iou", "input_dependence", "class_accuracy_generated", "frechet_inputs"):
        assert name in html
    assert METRIC_TEXT["input_dependence"].split(";")[0] in html
    rows = _rows(html)                                                   # metric, value, meets goal, meaning
    assert rows["nucleus_iou"][1:3] == ["0.800", "yes"]
    assert rows["input_dependence"][2] == "no"                           # 0.2 < 0.5: collapsed
    assert rows["class_accuracy_generated"][2] == "yes"                  # 0.3 >= 2 x 0.1 and > 0.1
    assert rows["frechet_generated"][2] == "yes"                         # 5 < 9
    assert rows["class_accuracy_chance"][2] == ""                        # a reference, no goal


def test_class_accuracy_below_twice_chance_fails(tmp_path):
    table = _metrics(tmp_path / "m.tsv", class_accuracy_generated=0.15)
    rows = _rows(training_section({"impa": {"check_table": str(table)}}).body)
    assert rows["class_accuracy_generated"][2] == "no"
