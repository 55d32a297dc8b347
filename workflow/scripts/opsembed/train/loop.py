"""The training loop shared by GRAPE and IMPA: resume, step, log, checkpoint, finish.

A trainer object supplies the method (see ``GanTrainer``); ``run_training`` drives it:

- resumes from ``<checkpoint_dir>/last.pt`` when present (nets, optimisers, EMA, loss
  window, RNG states, step), refusing one made with different settings;
- checkpoints atomically every ``checkpoint_every`` steps and at the end;
- logs window-mean losses every ``log_every`` steps (TSV rows, TensorBoard, progress bar);
- writes a sample grid to TensorBoard every ``sample_every`` steps;
- stops with NonFiniteLossError on a NaN/inf loss, before it reaches any checkpoint;
- finally writes the model file, the loss table and the sample grid PNG.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..io.errors import InputError
from .checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from .data import BalancedSampler, CellImages, iterate_batches
from .device import adam, memory_format
from .ema import ParamEMA
from .gan import GENERATOR_SIDE, compiled_nets
from .monitor import Monitor, save_grid_png

log = logging.getLogger(__name__)

OPERATIONAL_KEYS = {"enabled", "iterations", "checkpoint_every", "log_every", "sample_every", "device",
                    "compile", "data_in_memory", "memory_fraction", "num_workers", "progress_interval",
                    "n_cells_p3", "n_cells_generative", "n_cells", "n_sample_cells", "n_sample_genes", "sample_genes"}
"""Config keys that may change between a checkpoint and its resumption."""


def merge_config(defaults: dict, cfg: dict | None, where: str) -> dict:
    """``defaults`` updated by ``cfg`` (one level of nested dicts merged too).

    Raises InputError naming ``where`` and the key for keys ``defaults`` lacks.
    """
    out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in defaults.items()}
    for key, value in (cfg or {}).items():
        if key not in defaults:
            raise InputError(f"{where}: unknown key {key!r}. Known keys: {sorted(defaults)}.")
        if isinstance(defaults[key], dict):
            unknown = set(value or {}) - set(defaults[key])
            if unknown:
                raise InputError(f"{where}.{key}: unknown key(s) {sorted(unknown)}. "
                                 f"Known: {sorted(defaults[key])}.")
            out[key].update(value or {})
        else:
            out[key] = value
    return out


class GanTrainer:
    """What ``run_training`` needs from a method; subclasses fill in the method.

    Attributes set by subclasses: ``name`` (str), ``cfg`` (merged dict), ``seed`` (int),
    ``device``, ``images`` (CellImages), ``nets`` (ModuleDict), ``optimizers`` (dict of
    torch optimisers), ``ema`` (ParamEMA), ``samplers`` (dict of BalancedSampler),
    ``loss_names`` (list[str]), ``model_keys`` (keys of cfg that shape the nets).
    """

    name: str
    cfg: dict
    seed: int
    device: torch.device
    images: CellImages
    nets: nn.ModuleDict
    optimizers: dict[str, torch.optim.Optimizer]
    ema: ParamEMA
    samplers: dict[str, BalancedSampler]
    loss_names: list[str]
    model_keys: tuple[str, ...]

    def setup_networks(self, build) -> None:
        """Seed torch, build ``self.nets = build()`` on the device (memory format from cfg),
        and give them one Adam per network, optional ``torch.compile`` and the configured EMA.
        Needs ``self.cfg``, ``self.seed`` and ``self.device``."""
        cfg = self.cfg
        self.fmt = memory_format(self.device, cfg["channels_last"])
        torch.manual_seed(self.seed)
        self.nets = build().to(self.device, memory_format=self.fmt)
        self.optimizers = {k: adam(m.parameters(), cfg["lr"], cfg["betas"], cfg["weight_decay"], self.device)
                           for k, m in self.nets.items()}
        self.run = compiled_nets(self.nets, cfg["compile"])
        ema = cfg["ema"]
        self.ema = ParamEMA(self.nets, GENERATOR_SIDE, ema["mode"], ema["every"], ema["gamma"], ema["beta"])

    def train_step(self, step: int, batch: dict) -> torch.Tensor:
        """One optimisation step (0-based ``step``); returns the losses (len(loss_names),)."""
        raise NotImplementedError

    def sample_restyle(self) -> tuple[np.ndarray, list[str]]:
        """(uint8 RGB mosaic of fixed cells restyled to fixed genes, its column labels)."""
        raise NotImplementedError

    def fingerprint(self) -> dict:
        """Settings a checkpoint must share with the run resuming it."""
        keep = {k: v for k, v in self.cfg.items() if k not in OPERATIONAL_KEYS}
        return {"method": self.name, "seed": self.seed, "cfg": keep,
                "samplers": {k: s.state_dict() for k, s in self.samplers.items()}}

    def model_payload(self, step: int) -> dict:
        """The final weights file: exported (EMA) weights plus what extraction needs."""
        return {"method": self.name, "step": step, "seed": self.seed,
                "config": {k: self.cfg[k] for k in self.model_keys},
                "genes": self.images.genes, "controls": self.images.controls,
                "channels": self.images.channels, "state": self.ema.exported_state(self.nets)}


def run_training(trainer: GanTrainer, checkpoint_dir: str | os.PathLike, model_path: str | os.PathLike,
                 losses_path: str | os.PathLike, samples_path: str | os.PathLike,
                 tensorboard_dir: str | os.PathLike | None = None) -> None:
    """Train ``trainer`` to ``cfg['iterations']`` steps, resuming where a checkpoint left off."""
    cfg = trainer.cfg
    total = int(cfg["iterations"])
    ckpt_path = Path(checkpoint_dir) / "last.pt"
    state = load_checkpoint(ckpt_path, map_location=trainer.device)
    start = 0
    monitor_state = None
    if state is not None:
        _check_fingerprint(state["fingerprint"], trainer.fingerprint(), ckpt_path)
        trainer.nets.load_state_dict(state["nets"])
        for name, opt in trainer.optimizers.items():
            opt.load_state_dict(state["optimizers"][name])
        trainer.ema.load_state_dict(state["ema"])
        set_rng_state(state["rng"])
        start, monitor_state = int(state["step"]), state["monitor"]
        log.info("%s: resuming from %s at step %d of %d", trainer.name, ckpt_path, start, total)
    monitor = Monitor(trainer.loss_names, total, start, cfg["log_every"], trainer.device,
                      None if tensorboard_dir is None else str(tensorboard_dir),
                      cfg["progress_interval"], label=trainer.name)
    if monitor_state is not None:
        monitor.load_state_dict(monitor_state)
    saved = start if state is not None else None
    t0 = time.perf_counter()

    def where_kept() -> str:
        return (f"the last good checkpoint (step {saved}) is kept at {ckpt_path}" if saved is not None
                else "no checkpoint had been written yet")

    try:
        batches = iterate_batches(trainer.images, trainer.samplers, start, total, cfg["num_workers"])
        for step, batch in batches:
            monitor.record(step, trainer.train_step(step, batch))
            done = step + 1
            trainer.ema.update(done)
            if done % cfg["log_every"] == 0 or done == total:
                monitor.flush(done)
                monitor.check_finite(where_kept())
            if monitor.writer is not None and cfg["sample_every"] and done % cfg["sample_every"] == 0:
                monitor.add_image("samples", trainer.sample_restyle()[0], done)
            if done % cfg["checkpoint_every"] == 0 or done == total:
                monitor.check_finite(where_kept())
                save_checkpoint(_checkpoint(trainer, monitor, done), ckpt_path)
                saved = done
        monitor.check_finite(where_kept())
        seconds = time.perf_counter() - t0
        log.info("%s: %d steps in %.1f s (%.2f it/s)", trainer.name, total - start, seconds,
                 (total - start) / max(seconds, 1e-9))
        mosaic, columns = trainer.sample_restyle()
        monitor.add_image("samples", mosaic, total)
    finally:
        monitor.close()
    payload = trainer.model_payload(total)
    save_checkpoint(payload, model_path)
    monitor.write_table(losses_path)
    save_grid_png(samples_path, mosaic, columns,
                  f"{trainer.name}: control cells (rows) restyled to genes (columns), step {total}")


def _checkpoint(trainer: GanTrainer, monitor: Monitor, done: int) -> dict:
    return {"step": done, "fingerprint": trainer.fingerprint(), "nets": trainer.nets.state_dict(),
            "optimizers": {k: o.state_dict() for k, o in trainer.optimizers.items()},
            "ema": trainer.ema.state_dict(), "monitor": monitor.state_dict(), "rng": rng_state()}


def _check_fingerprint(saved: dict, current: dict, path: Path) -> None:
    if saved == current:
        return
    diffs = sorted(k for k in set(saved["cfg"]) | set(current["cfg"])
                   if saved["cfg"].get(k) != current["cfg"].get(k))
    other = [k for k in sorted(set(saved) | set(current)) if k != "cfg" and saved.get(k) != current.get(k)]
    raise InputError(f"{path}: this checkpoint was made with other settings ({', '.join(other + diffs)} "
                     "differ). Restore those settings to resume, or delete the checkpoint folder to "
                     "train from scratch.")
