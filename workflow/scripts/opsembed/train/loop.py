"""The training loop of every learned method (GRAPE, IMPA, IST, StarGAN over OEs, the OOD
predictors): resume, step, log, checkpoint, finish.

A trainer object supplies the method (see ``Trainer``); ``run_training`` drives it:

- resumes from ``<checkpoint_dir>/last.pt`` when present (nets, optimisers, EMA, loss
  window, RNG states, step), refusing one made with different settings;
- checkpoints atomically every ``checkpoint_every`` steps and at the end;
- logs window-mean losses every ``log_every`` steps (TSV rows, TensorBoard, progress bar);
- writes a sample grid to TensorBoard every ``sample_every`` steps;
- stops with NonFiniteLossError on a NaN/inf loss, or on NaN/inf weights about to be
  saved, before they reach any checkpoint or the model file; refuses ``iterations`` below
  the checkpoint's step;
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
from .checkpoint import load_checkpoint, nonfinite_summary, rng_state, save_checkpoint, set_rng_state
from .data import BalancedSampler, CellImages, iterate_batches
from .device import adam, memory_format
from .ema import ParamEMA
from .gan import GENERATOR_SIDE, compiled_nets
from .monitor import Monitor, NonFiniteLossError, save_grid_png

log = logging.getLogger(__name__)

class Trainer:
    """What ``run_training`` needs from a method; subclasses fill in the method.

    Attributes set by subclasses: ``name`` (str), ``cfg`` (merged dict), ``seed`` (int),
    ``device``, ``images`` (CellImages), ``nets`` (ModuleDict), ``optimizers`` (dict of
    torch optimisers), ``samplers`` (dict of BalancedSampler), ``loss_names`` (list[str]),
    ``model_keys`` (keys of cfg that shape the nets) and, for methods that average their
    parameters, ``ema`` (ParamEMA; None, the default, for the others).
    ``sample_caption``: what the rows and columns of the sample grid are (its PNG's title).
    ``operational_keys``: keys of cfg that may change between a checkpoint and its
    resumption (they change how the run is carried out or what it writes besides the
    weights, not the weights); a subclass adds its own to these, the loop's.
    """

    name: str
    cfg: dict
    seed: int
    device: torch.device
    images: CellImages
    nets: nn.ModuleDict
    optimizers: dict[str, torch.optim.Optimizer]
    ema: ParamEMA | None = None
    sample_caption: str = "control cells (rows) restyled to genes (columns)"
    samplers: dict[str, BalancedSampler]
    loss_names: list[str]
    model_keys: tuple[str, ...]
    operational_keys: tuple[str, ...] = ("iterations", "checkpoint_every", "log_every", "sample_every",
                                         "num_workers", "progress_interval", "device", "data_in_memory",
                                         "memory_fraction")

    def setup_networks(self, build) -> None:
        """Seed torch, build ``self.nets = build()`` on the device (memory format from cfg),
        and give them one Adam per network, optional ``torch.compile`` and the configured EMA.
        Needs ``self.cfg``, ``self.seed`` and ``self.device``."""
        cfg = self.cfg
        self.fmt = memory_format(cfg["channels_last"])
        torch.manual_seed(self.seed)
        self.nets = build().to(self.device, memory_format=self.fmt)
        self.optimizers = {k: adam(m.parameters(), cfg["lr"], cfg["betas"], cfg["weight_decay"], self.device)
                           for k, m in self.nets.items()}
        self.run = compiled_nets(self.nets, cfg["compile"])
        ema = cfg["ema"]
        if ema["mode"] != "none":
            self.ema = ParamEMA(self.nets, GENERATOR_SIDE, ema["mode"], ema["every"], ema["gamma"], ema["beta"])

    def train_step(self, step: int, batch: dict) -> torch.Tensor:
        """One optimisation step (0-based ``step``); returns the losses (len(loss_names),)."""
        raise NotImplementedError

    def sample_mosaic(self) -> tuple[np.ndarray, list[str]]:
        """(uint8 RGB sample grid of fixed cells and what the method makes of them, e.g.
        restyled to fixed genes; its column labels)."""
        raise NotImplementedError

    def fingerprint(self) -> dict:
        """Settings a checkpoint must share with the run resuming it."""
        keep = {k: v for k, v in self.cfg.items() if k not in self.operational_keys}
        return {"method": self.name, "seed": self.seed, "cfg": keep,
                "samplers": {k: s.state_dict() for k, s in self.samplers.items()}}

    def model_payload(self, step: int) -> dict:
        """The final weights file: exported (EMA) weights plus what extraction needs."""
        return {"method": self.name, "step": step, "seed": self.seed,
                "config": {k: self.cfg[k] for k in self.model_keys},
                "genes": self.images.genes, "controls": self.images.controls,
                "channels": self.images.channels, "state": self.exported_state()}

    def exported_state(self) -> dict[str, torch.Tensor]:
        """The weights to export: the EMA's (``ParamEMA.exported_state``) or, without EMA, a
        copy of ``nets.state_dict()``."""
        if self.ema is not None:
            return self.ema.exported_state(self.nets)
        return {k: v.detach().clone() for k, v in self.nets.state_dict().items()}


def run_training(trainer: Trainer, checkpoint_dir: str | os.PathLike, model_path: str | os.PathLike,
                 losses_path: str | os.PathLike, samples_path: str | os.PathLike,
                 tensorboard_dir: str | os.PathLike | None = None) -> None:
    """Train ``trainer`` to ``cfg['iterations']`` steps, resuming where a checkpoint left off."""
    cfg = trainer.cfg
    total = int(cfg["iterations"])
    ckpt_path = Path(checkpoint_dir) / "last.pt"
    state = load_checkpoint(ckpt_path, map_location=trainer.device,
                            required=("step", "fingerprint", "nets", "optimizers", "monitor", "rng"))
    start = 0
    monitor_state = None
    if state is not None:
        _check_fingerprint(state["fingerprint"], trainer.fingerprint(), ckpt_path)
        _check_step(int(state["step"]), total, ckpt_path, trainer.name)
        trainer.nets.load_state_dict(state["nets"])
        for name, opt in trainer.optimizers.items():
            opt.load_state_dict(state["optimizers"][name])
        if trainer.ema is not None:
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
        if saved is None:
            return (f"no checkpoint had been written to {ckpt_path.parent} yet, so a rerun (with other "
                    "settings, e.g. a lower lr or bf16: false) trains from scratch")
        return (f"the last good checkpoint (step {saved}) is kept at {ckpt_path}. Two ways on: rerun with "
                "the same settings to resume from it (it replays the same steps, so the fault may recur), "
                f"or delete the folder {ckpt_path.parent} and rerun to train from scratch with new settings "
                "(e.g. a lower lr, or bf16: false)")

    try:
        batches = iterate_batches(trainer.images, trainer.samplers, start, total, cfg["num_workers"])
        for step, batch in batches:
            monitor.record(step, trainer.train_step(step, batch))
            done = step + 1
            if trainer.ema is not None:
                trainer.ema.update(done)
            if done % cfg["log_every"] == 0 or done == total:
                monitor.flush(done)
                monitor.check_finite(where_kept())
            if monitor.writer is not None and cfg["sample_every"] and done % cfg["sample_every"] == 0:
                monitor.add_image("samples", trainer.sample_mosaic()[0], done)
            if done % cfg["checkpoint_every"] == 0 or done == total:
                monitor.check_finite(where_kept())
                checkpoint = _checkpoint(trainer, monitor, done)
                _check_weights(checkpoint, f"the checkpoint of step {done}", where_kept())
                save_checkpoint(checkpoint, ckpt_path)
                saved = done
        monitor.check_finite(where_kept())
        seconds = time.perf_counter() - t0
        log.info("%s: %d steps in %.1f s (%.2f it/s)", trainer.name, total - start, seconds,
                 (total - start) / max(seconds, 1e-9))
        mosaic, columns = trainer.sample_mosaic()
        monitor.add_image("samples", mosaic, total)
    finally:
        monitor.close()
    payload = trainer.model_payload(total)
    _check_weights(payload, f"the model of step {total} (for {model_path})", where_kept())
    save_checkpoint(payload, model_path)
    monitor.write_table(losses_path)
    save_grid_png(samples_path, mosaic, columns,
                  f"{trainer.name}: {trainer.sample_caption}, step {total}")


def _checkpoint(trainer: Trainer, monitor: Monitor, done: int) -> dict:
    return {"step": done, "fingerprint": trainer.fingerprint(), "nets": trainer.nets.state_dict(),
            "optimizers": {k: o.state_dict() for k, o in trainer.optimizers.items()},
            "ema": None if trainer.ema is None else trainer.ema.state_dict(), "monitor": monitor.state_dict(),
            "rng": rng_state()}


def _check_weights(state: dict, what: str, context: str) -> None:
    """Raise NonFiniteLossError (nothing written) when a float tensor of ``state`` is NaN/inf."""
    bad = nonfinite_summary(state)
    if bad:
        raise NonFiniteLossError(f"{what} holds NaN or infinite values ({bad}) although the losses "
                                 f"were finite, so it was not saved. Training stopped; {context}.")


def _check_step(step: int, total: int, path: Path, name: str) -> None:
    if step > total:
        raise InputError(f"{path}: this checkpoint is at step {step}, beyond the {total} steps that "
                         f"{name}'s `iterations` asks for. Set `iterations` to {step} or more to resume "
                         "from it (or to rewrite its outputs), or delete the checkpoint folder "
                         f"{path.parent} to train {total} steps from scratch.")


def _check_fingerprint(saved: dict, current: dict, path: Path) -> None:
    if saved == current:
        return
    diffs = sorted(k for k in set(saved["cfg"]) | set(current["cfg"])
                   if saved["cfg"].get(k) != current["cfg"].get(k))
    other = [k for k in sorted(set(saved) | set(current)) if k != "cfg" and saved.get(k) != current.get(k)]
    raise InputError(f"{path}: this checkpoint was made with other settings ({', '.join(other + diffs)} "
                     f"differ). Restore those settings to resume, or delete the checkpoint folder "
                     f"{path.parent} to train from scratch with the new ones.")
