"""StarGAN v2 over observational environments (OEs): the generator of the OOD benchmark's
StarGANv2 predictor, trained on one fold's training cells.

GRAPE's networks and losses (``opsembed.train.grape_trainer``) with the fold's OEs in
place of genes: G(x, F(M_oe)) re-images x as if recorded in OE oe. It runs in
``opsembed.train.loop.run_training`` and writes a model file that
``opsembed.models.restyler.load_restyler`` turns into a re-imaging function.
"""

from __future__ import annotations

from ..io.schema import block_config
from ..models.grape import build_grape
from .device import resolve_device
from .fold_data import FoldData, fold_fields, fold_sample_choice, load_fold
from .grape_trainer import GrapeTrainer
from .loop import run_training


def stargan_config(cfg: dict | None) -> dict:
    """The full ``ood.stargan`` block (GRAPE's keys): the schema's defaults updated by ``cfg``;
    InputError on unknown or invalid keys."""
    return block_config("ood.stargan", cfg)


class StarGanOETrainer(GrapeTrainer):
    """StarGAN v2 with GRAPE's networks and losses, its domains being the fold's OEs.

    The GRAPE step is inherited: reals x of OE y through D_y, fakes G(x, F(M_z)) with
    targets z (y shuffled within the OE-balanced batch).
    """

    name = "stargan"
    sample_caption = "training cells (rows) restyled to OEs (columns)"

    def __init__(self, data: FoldData, cfg: dict, seed: int):
        self.data, self.images, self.cfg, self.seed = data, data.images, cfg, int(seed)
        self.device = self.images.device
        self.setup_networks(lambda: build_grape(len(data.oes), len(self.images.channels), cfg))
        self.samplers = {"x": data.oe_sampler(cfg["batch_size"], self.seed, stream=0, labels="oe")}
        self.sample_cells, styles = fold_sample_choice(data, cfg["n_sample_cells"], cfg["n_sample_genes"], self.seed)
        self.sample_domains = [int(data.oe_ids[r]) for r in styles]      # OE ids, GRAPE's sample grid

    def column_labels(self) -> list[str]:
        return [self.data.oes[i] for i in self.sample_domains]

    def model_payload(self, step: int) -> dict:
        return {**super().model_payload(step), **fold_fields(self.data)}


def train_stargan(cells_path, ood_cfg: dict | None, cfg: dict | None, fold: str, seed: int, model_path,
                  losses_path, samples_path, checkpoint_dir, classes=None) -> None:
    """Train StarGAN v2 over the OEs of fold ``fold`` (GRAPE's backbone); outputs as
    ``opsembed.train.ist_trainer.train_ist``."""
    cfg = stargan_config(cfg)
    device = resolve_device(cfg["device"])
    data = load_fold(cells_path, ood_cfg, fold, cfg["image_size"], device, cfg["data_in_memory"],
                     cfg["memory_fraction"], classes)
    run_training(StarGanOETrainer(data, cfg, seed), checkpoint_dir, model_path, losses_path, samples_path)
