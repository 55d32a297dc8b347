"""Gene predictors of the OOD benchmark, trained on one fold's training cells.

Every predictor is a ``GeneClassifier`` (ResNet-18 with instance norm) learning the gene
of gene-balanced batches by cross-entropy. Kinds:

- ``naive``: the images as they are;
- ``dr``: plus a linear OE head behind a gradient-reversal layer (weight ``dr_alpha``)
  on the penultimate features, loss ce + dr_weight * domain_ce;
- ``mixstyle``: with probability ``mixstyle_p`` per batch, MixStyle after the trunk
  stages ``mixstyle_stages``, each sample mixed with a sample of another OE,
  lambda ~ Beta(mixstyle_alpha, mixstyle_alpha);
- ``stargan`` / ``ist``: the interventional distribution: each content image is re-imaged
  by the fold's frozen generator into the OE of a style draw (OE-balanced), and kept
  as it is with probability ``p_original``.

With ``augment``, every training image is flipped and rotated by a random multiple of
90 degrees (cells have no preferred orientation). Randomness of a step (MixStyle draws,
which images stay original, augmentation) comes from (seed, step), so a resumed run
repeats the uninterrupted one.
"""

from __future__ import annotations

import logging

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..io.embeddings import write_embeddings
from ..io.errors import InputError
from ..io.folds import INTERVENTIONAL, PREDICTOR_KINDS
from ..io.schema import block_config
from ..models.predictors import MODEL_KEYS, GeneClassifier, MixStyleSpec, Predictor, cross_oe_partners, grad_reverse
from ..models.restyler import Restyler, load_restyler
from .data import CellImages, dihedral, step_generator
from .device import adam, autocast, resolve_device
from .fold_data import FoldData, fold_sample_choice, load_fold
from .gan import mosaic, update
from .loop import Trainer, run_training

log = logging.getLogger(__name__)

LOSSES = ["ce", "domain_ce", "total", "train_acc"]


def predictor_config(cfg: dict | None) -> dict:
    """The full ``ood.predictor`` block: the schema's defaults updated by ``cfg``; InputError
    on unknown or invalid keys."""
    return block_config("ood.predictor", cfg)


class PredictorTrainer(Trainer):
    """One predictor of kind ``kind`` on one fold; ``restyler`` for the interventional kinds. No EMA."""

    loss_names = LOSSES
    model_keys = MODEL_KEYS
    operational_keys = Trainer.operational_keys + ("n_sample_cells", "n_sample_views", "eval_batch_size",
                                                   "test_time_styles")

    def __init__(self, kind: str, data: FoldData, cfg: dict, seed: int, restyler: Restyler | None = None):
        if kind not in PREDICTOR_KINDS:
            raise InputError(f"unknown predictor {kind!r}; choose from {PREDICTOR_KINDS}.")
        if (kind in INTERVENTIONAL) != (restyler is not None):
            raise ValueError(f"predictor {kind!r}: a generator is needed exactly for {INTERVENTIONAL}")
        if restyler is not None and restyler.image_size != cfg["image_size"]:
            raise InputError(f"ood.predictor.image_size ({cfg['image_size']}) differs from the {kind} "
                             f"generator's ({restyler.image_size}); make them equal.")
        self.kind, self.name = kind, kind
        self.sample_caption = ("training cells (rows) as the classifier sees them re-imaged into training OEs (columns)"
                               if restyler is not None else "training cells")
        self.data, self.images, self.cfg, self.seed = data, data.images, cfg, int(seed)
        self.device, self.restyler = self.images.device, restyler
        torch.manual_seed(self.seed)
        nets = {"classifier": GeneClassifier(len(self.images.channels), len(self.images.genes), cfg)}
        if kind == "dr":
            nets["domain"] = nn.Linear(nets["classifier"].trunk.out_dim, len(data.oes))
        self.nets = nn.ModuleDict(nets).to(self.device)
        self.optimizers = {"all": adam(self.nets.parameters(), cfg["lr"], cfg["betas"], cfg["weight_decay"],
                                       self.device)}
        self.samplers = {"x": data.gene_sampler(cfg["batch_size"], self.seed, stream=0)}
        if restyler is not None:
            self.samplers["style"] = data.oe_sampler(cfg["batch_size"], self.seed, stream=1)

    def _inputs(self, step: int, batch: dict) -> torch.Tensor:
        """The images the classifier sees at this step (re-imaged for interventional kinds,
        then augmented when asked)."""
        x = batch["x"][0]
        if self.restyler is not None:
            s, lab_s = batch["style"]
            fake = self.restyler(x, s, lab_s[:, 1])
            if self.cfg["p_original"] > 0:
                gen = step_generator(self.seed, 201, step, self.device)
                keep = torch.rand(len(x), generator=gen, device=self.device) < self.cfg["p_original"]
                fake = torch.where(keep[:, None, None, None], x, fake)
            x = fake
        if self.cfg["augment"]:
            x = dihedral(x, step_generator(self.seed, 204, step, self.device))
        return x

    def _mix(self, step: int, oe: torch.Tensor) -> MixStyleSpec | None:
        if self.kind != "mixstyle":
            return None
        rng = np.random.default_rng([self.seed, 202, step])
        if rng.random() >= self.cfg["mixstyle_p"]:
            return None
        lam = torch.as_tensor(rng.beta(self.cfg["mixstyle_alpha"], self.cfg["mixstyle_alpha"], len(oe)),
                              dtype=torch.float32, device=self.device)
        partner = cross_oe_partners(oe, step_generator(self.seed, 203, step, self.device))
        return MixStyleSpec(self.cfg["mixstyle_stages"], partner, lam)

    def train_step(self, step: int, batch: dict) -> torch.Tensor:
        lab = batch["x"][1]
        gene, oe = lab[:, 0], lab[:, 1]
        with autocast(self.device, self.cfg["bf16"]):
            x = self._inputs(step, batch)
            feats = self.nets["classifier"].features(x, self._mix(step, oe))
            logits = self.nets["classifier"].head(feats).float()
            ce = F.cross_entropy(logits, gene)
            if self.kind == "dr":
                dom = F.cross_entropy(self.nets["domain"](grad_reverse(feats, self.cfg["dr_alpha"])).float(), oe)
            else:
                dom = torch.zeros((), device=self.device)
            total = ce + self.cfg["dr_weight"] * dom
        update(self.optimizers["all"], total)
        acc = (logits.argmax(1) == gene).float().mean()
        return torch.stack([t.detach().float() for t in (ce, dom, total, acc)])

    @torch.no_grad()
    def sample_mosaic(self) -> tuple[np.ndarray, list[str]]:
        """Fixed training cells (rows); for interventional kinds, what the classifier sees when
        they are re-imaged into ``n_sample_views`` training OEs (columns)."""
        cells, styles = fold_sample_choice(self.data, self.cfg["n_sample_cells"], self.cfg["n_sample_views"],
                                           self.seed)
        x = self.images.get(cells)
        if self.restyler is None:
            return mosaic(x, x.new_empty((len(x), 0) + tuple(x.shape[1:])), [])
        s = self.images.get(styles)
        oe = torch.as_tensor(self.data.oe_ids[styles], device=self.device)
        out = torch.stack([self.restyler(x, s[i].expand_as(x), oe[i].expand(len(x))) for i in range(len(s))], 1)
        return mosaic(x, out, [self.data.oes[int(o)] for o in oe])

    def model_payload(self, step: int) -> dict:
        state = {k[len("classifier."):]: v for k, v in self.exported_state().items()
                 if k.startswith("classifier.")}
        return {"method": "predictor", "kind": self.kind, "step": step, "seed": self.seed,
                "config": {k: self.cfg[k] for k in MODEL_KEYS}, "genes": self.images.genes,
                "controls": self.images.controls, "channels": self.images.channels, "oes": self.data.oes,
                "train_genes": self.data.train_genes, "fold": self.data.fold["fold_id"], "state": state}


def train_predictor(kind: str, cells_path, ood_cfg: dict | None, cfg: dict | None, fold: str, seed: int,
                    model_path, losses_path, samples_path, checkpoint_dir, generator_path=None,
                    classes=None) -> None:
    """Train the ``kind`` predictor on fold ``fold``; ``generator_path`` is the fold's IST or
    StarGAN model file for those kinds; ``classes`` the OOD classes table (``load_fold``).
    Writes the model file, loss TSV and sample PNG."""
    cfg = predictor_config(cfg)
    device = resolve_device(cfg["device"])
    data = load_fold(cells_path, ood_cfg, fold, cfg["image_size"], device, cfg["data_in_memory"],
                     cfg["memory_fraction"], classes)
    restyler = None
    if kind in INTERVENTIONAL:
        if generator_path is None:
            raise InputError(f"predictor {kind!r} needs its fold's generator model file.")
        restyler = load_restyler(generator_path, device, fold)
        if restyler.kind != kind:
            raise InputError(f"{generator_path}: a {restyler.kind} model, but predictor {kind!r} needs {kind}.")
    run_training(PredictorTrainer(kind, data, cfg, seed, restyler), checkpoint_dir, model_path, losses_path,
                 samples_path)


def gene_means(feats: np.ndarray, genes: np.ndarray, controls: str) -> tuple[list[str], np.ndarray]:
    """(sorted genes other than ``controls``, mean feature per gene (n_genes, d) float64)."""
    names = sorted(set(np.asarray(genes).tolist()) - {controls})
    return names, np.stack([feats[np.asarray(genes) == g].astype(np.float64).mean(0) for g in names])


def embed_predictor(cells_path, model_path, out_path, cfg: dict | None = None) -> None:
    """Gene embedding of a predictor: mean penultimate feature per gene over every cell of the
    cells file (for the IID fold's model: its training cells and its 20 % test cells, and the
    genes outside ``ood.genes`` too, so every screened gene gets a row), controls excluded;
    embedding contract."""
    cfg = predictor_config(cfg)
    device = resolve_device(cfg["device"])
    pred = Predictor(model_path, device)
    images = CellImages(cells_path, pred.image_size, device, cfg["data_in_memory"], cfg["memory_fraction"])
    _, feats = pred.outputs(images, np.arange(images.n), cfg["eval_batch_size"])
    genes = np.array(images.genes, dtype=object)[images.gene_ids]
    names, values = gene_means(feats, genes, pred.controls)
    write_embeddings(out_path, names, values)
    log.info("%s predictor (fold %s): embeddings of %d genes, %d dims", pred.kind, pred.fold, len(names),
             values.shape[1])
