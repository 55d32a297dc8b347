"""The schema is the one source of defaults: opsembed.io.schema fills blocks as validation does,
and the library keeps no copy of them."""

import ast

import pytest
from snakemake.utils import validate

from conftest import REPO
from opsembed.io.errors import InputError
from opsembed.io.schema import block_config, schema_defaults

SCHEMA = str(REPO / "config" / "schema" / "config.schema.yaml")


def test_schema_defaults_are_what_validation_fills_in():
    cfg = {}
    validate(cfg, SCHEMA, set_default=True)
    assert schema_defaults() == cfg
    assert schema_defaults("methods.grape") == cfg["methods"]["grape"]
    assert schema_defaults("ood") == cfg["ood"]


def test_anchored_blocks_take_the_shared_keys_and_their_own_overrides():
    grape, stargan, impa = schema_defaults("methods.grape"), schema_defaults("ood.stargan"), \
        schema_defaults("methods.impa")
    assert "enabled" not in stargan and grape["enabled"] is True
    assert (stargan["embed_dim"], stargan["iterations"], stargan["num_workers"]) == (16, 150, 2)
    assert (grape["embed_dim"], grape["iterations"], grape["num_workers"]) == (500, 2000, 4)
    assert stargan["shared_heads"] == grape["shared_heads"] and stargan["lambda_cyc"] == grape["lambda_cyc"]
    assert stargan["ema"] == {"mode": "none", "every": 2500, "gamma": 0.5, "beta": 0.999}
    assert grape["ema"]["mode"] == "filter" and impa["ema"]["mode"] == "none"
    assert impa["embed_init_std"] == 1.0 and grape["embed_init_std"] == 0.003
    assert grape["skips"] and impa["residual"] and not stargan["skips"] and not stargan["residual"]
    assert (grape["output_norm"], impa["output_norm"], stargan["output_norm"]) == ("none", "instance", "instance")
    assert grape["padding"] == impa["padding"] == stargan["padding"] == "zeros"
    assert (grape["iterations"], impa["iterations"]) == (2000, 2000)


def test_block_config_fills_checks_and_applies_cross_key_rules():
    out = block_config("ood.ist", {"width": 4})
    assert out["width"] == 4 and out["iterations"] == schema_defaults("ood.ist")["iterations"]
    levels = block_config("ood", {"levels": [{"name": "plate", "columns": ["plate"]}], "batch_level": "plate"})
    assert levels["levels"][0]["max_folds"] is None              # array items are filled too
    with pytest.raises(InputError, match="unknown key 'widht'"):
        block_config("ood.ist", {"widht": 4})
    with pytest.raises(InputError, match=r"ood\.ist\.image_size: 20 is not a multiple of 8"):
        block_config("ood.ist", {"image_size": 20})
    with pytest.raises(InputError, match=r"ood\.ist\.pretrain_iterations \(9\) must be below ood\.ist\.iterations"):
        block_config("ood.ist", {"pretrain_iterations": 9, "iterations": 9})
    with pytest.raises(InputError, match="batch_level"):
        block_config("ood", {"batch_level": "nowhere"})


def test_simulate_falls_back_to_the_schema_default_batch_and_effect_scale():
    """Before, plate_effects fell back to batch_scale 1.0 and gene_effects to effect_scale 1.0
    while the schema's defaults are 6.0 and 2.0."""
    from opsembed.simulate.batch import plate_effects
    from opsembed.simulate.phenotypes import gene_effects

    sim = {"seed": 0, "n_plates": 2, "tile_size": 128}
    default = schema_defaults("simulate")
    assert (default["batch_scale"], default["effect_scale"]) == (6.0, 2.0)
    implicit, explicit = plate_effects(sim), plate_effects({**sim, "batch_scale": default["batch_scale"]})
    assert implicit["P1"].shift == explicit["P1"].shift != plate_effects({**sim, "batch_scale": 1.0})["P1"].shift
    assert gene_effects(sim, "nt").equals(gene_effects({**sim, "effect_scale": 2.0}, "nt"))


def test_the_library_holds_no_copy_of_a_default_block():
    """No module-level ``*DEFAULTS`` dict: defaults come from the schema (opsembed.io.schema)."""
    found = []
    for path in (REPO / "workflow" / "scripts" / "opsembed").rglob("*.py"):
        for node in ast.parse(path.read_text()).body:
            targets = node.targets if isinstance(node, ast.Assign) else \
                [node.target] if isinstance(node, ast.AnnAssign) else []
            found += [f"{path.name}:{t.id}" for t in targets if isinstance(t, ast.Name) and t.id.endswith("DEFAULTS")]
    assert found == []
