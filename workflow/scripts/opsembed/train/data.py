"""Training data from ``cells.h5``: crops at the training size, gene-balanced batches.

Every batch is a pure function of (seed, stream, step): the sampler reseeds a generator
from those three numbers, so a resumed run draws exactly the batches an uninterrupted run
would, whether crops sit in memory or are streamed from disk by DataLoader workers.
"""

from __future__ import annotations

import logging
import os
from typing import Iterator

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from ..io.errors import InputError
from ..io.h5 import iter_crop_blocks, missing_sources, read_attrs, read_crops, read_obs

log = logging.getLogger(__name__)


def step_generator(seed: int, stream: int, step: int, device: torch.device) -> torch.Generator:
    """A torch.Generator on ``device`` seeded from the triple (seed, stream, step)."""
    state = np.random.SeedSequence([int(seed), int(stream), int(step)]).generate_state(2, np.uint32)
    gen = torch.Generator(device=device)
    gen.manual_seed(int(state[0]) << 31 | int(state[1]) >> 1)
    return gen


def resize(x: torch.Tensor, size: int) -> torch.Tensor:
    """Resize crops (n, C, S, S) to (n, C, size, size): area averaging down, bilinear up."""
    if x.shape[-1] == size:
        return x
    mode = "area" if size < x.shape[-1] else "bilinear"
    return F.interpolate(x.float(), size=(size, size), mode=mode)


def dihedral(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Each crop of (B, C, S, S) under its own random one of the 8 rotations/reflections
    of the square (transpose, then flips of rows and columns, each with probability 1/2)."""
    bits = torch.rand(3, x.shape[0], 1, 1, 1, generator=gen, device=x.device) < 0.5
    x = torch.where(bits[0], x.transpose(-1, -2), x)
    x = torch.where(bits[1], x.flip(-1), x)
    return torch.where(bits[2], x.flip(-2), x)


class CellImages:
    """The crops of a cells file at the training size ``image_size``.

    Attributes: ``path``, ``n`` cells, ``channels`` (list[str]), ``genes`` (attrs vocabulary,
    controls included), ``controls`` (label), ``gene_ids`` (int64 (n,) into ``genes``),
    ``in_memory`` and ``storage`` (the device holding the crops when in memory).
    ``in_memory``: ``"auto"`` keeps all crops (float16) on ``device`` when they take less
    than ``memory_fraction`` of its free memory, else in host memory under the same rule,
    else streams them from disk; ``True`` forces memory, ``False`` forces streaming.
    ``rows`` (int, optional): hold only those cells in memory (an OOD fold's few classes of a
    large screen); rows still number the whole file, and ``get`` of a row not held raises
    ValueError (checked when the crops are in host memory). Streaming reads any row.
    """

    def __init__(self, path: str | os.PathLike, image_size: int, device: torch.device,
                 in_memory: bool | str, memory_fraction: float, rows=None):
        self.path = str(path)
        self.image_size = int(image_size)
        self.device = device
        attrs = read_attrs(path)
        lost = missing_sources(path)
        if lost:  # a virtual cells.h5 reads a lost well file as NaN: refuse instead
            raise InputError(f"{path}: its images read from {len(lost)} well file(s) that are missing "
                             f"({', '.join(lost[:3])}{' ...' if len(lost) > 3 else ''}, beside it); "
                             "rerun the preprocessing (rule zscore_well) to restore them.")
        obs = read_obs(path)
        self.n = len(obs)
        self.channels = list(attrs["channels"])
        self.genes = list(attrs["genes"])
        self.controls = str(attrs["controls"])
        self.gene_ids = _gene_ids(obs, self.genes, path)
        self.rows = None if rows is None else np.unique(np.asarray(rows, dtype=np.int64))
        if self.rows is not None and len(self.rows) and (self.rows[0] < 0 or self.rows[-1] >= self.n):
            raise ValueError(f"{path}: rows outside 0 .. {self.n - 1}")
        held = self.n if self.rows is None else len(self.rows)
        nbytes = held * len(self.channels) * self.image_size ** 2 * 2
        self.storage = _choose_storage(nbytes, device, in_memory, memory_fraction)
        self.in_memory = self.storage is not None
        self._images = self._load() if self.in_memory else None
        self._slot = None                       # row -> place in _images (-1: not held), with rows
        if self.in_memory and self.rows is not None:
            slot = torch.full((self.n,), -1, dtype=torch.long)
            slot[torch.from_numpy(self.rows)] = torch.arange(len(self.rows))
            self._slot = slot.to(self.storage)

    @classmethod
    def from_tensor(cls, images: torch.Tensor, gene_ids: np.ndarray, genes: list[str], controls: str,
                    channels: list[str] | None = None) -> "CellImages":
        """Crops already in memory: ``images`` (n, C, S, S) (kept as float16 where they are),
        ``gene_ids`` (n,) into ``genes``. For benchmarks and synthetic data."""
        self = cls.__new__(cls)
        self.path, self.image_size, self.device = None, int(images.shape[-1]), images.device
        self.n, self.genes, self.controls = len(images), list(genes), str(controls)
        self.channels = list(channels or [f"ch{i}" for i in range(images.shape[1])])
        self.gene_ids = np.asarray(gene_ids, dtype=np.int64)
        self.storage, self.in_memory, self._images = images.device, True, images.half()
        self.rows, self._slot = None, None
        return self

    def _load(self) -> torch.Tensor:
        held = self.n if self.rows is None else len(self.rows)
        out = torch.empty((held, len(self.channels), self.image_size, self.image_size),
                          dtype=torch.float16, device=self.storage)
        bar = tqdm(total=held, desc="loading crops", unit="cell", mininterval=10)
        if self.rows is None:
            blocks = ((start, resize(torch.from_numpy(block), self.image_size).half())
                      for start, block in iter_crop_blocks(self.path, 2048))
        else:
            blocks = ((start, read_resized(self.path, self.rows[start:start + 2048], self.image_size))
                      for start in range(0, held, 2048))
        for start, x in blocks:
            out[start:start + len(x)] = x.to(self.storage)
            bar.update(len(x))
        bar.close()
        log.info("%d of %d crops held in %s memory (%.1f MB)", held, self.n, self.storage,
                 out.numel() * 2 / 1e6)
        return out

    def get(self, index) -> torch.Tensor:
        """Crops of the cells ``index`` (ints), float32 (n, C, S, S) on ``device``."""
        if self.in_memory:
            idx = torch.as_tensor(index, dtype=torch.long).to(self.storage)
            if self._slot is not None:
                idx = self._slot[idx]
                # checked where it costs no device sync (on a GPU the callers draw held rows only)
                if idx.device.type == "cpu" and bool((idx < 0).any()):
                    raise ValueError(f"{self.path}: cells outside the rows held in memory were asked for")
            return self._images.index_select(0, idx).to(self.device, non_blocking=True).float()
        return read_resized(self.path, np.asarray(index), self.image_size).to(self.device).float()

    def genes_without_controls(self) -> list[int]:
        """Ids of the vocabulary's genes other than the control label, in vocabulary order."""
        return [i for i, g in enumerate(self.genes) if g != self.controls]

    def cells_of(self, gene_id: int) -> np.ndarray:
        """Row numbers of the cells of one gene."""
        return np.flatnonzero(self.gene_ids == gene_id)


def read_resized(path: str, index: np.ndarray, size: int) -> torch.Tensor:
    """Crops ``index`` read from disk (sorted for locality, returned in the given order),
    resized to ``size``: float16 (n, C, size, size) on the CPU."""
    order = np.argsort(index, kind="stable")
    crops = read_crops(path, index[order])
    out = torch.empty((len(index),) + crops.shape[1:2] + (size, size), dtype=torch.float16)
    out[torch.from_numpy(order)] = resize(torch.from_numpy(crops), size).half()
    return out


def crop_reader(path: str | os.PathLike, size: int, device: torch.device):
    """A function rows (int array) -> their crops at ``size``, float32 (n, C, size, size) on ``device``."""
    def read(rows: np.ndarray) -> torch.Tensor:
        return read_resized(str(path), np.asarray(rows), size).to(device).float()
    return read


def _gene_ids(obs, genes: list[str], path) -> np.ndarray:
    if "gene_id" in obs.columns:
        ids = obs["gene_id"].to_numpy(dtype=np.int64)
        if len(ids) and (ids.min() < 0 or ids.max() >= len(genes)):
            raise InputError(f"{path}: obs gene_id outside 0..{len(genes) - 1}; rerun preprocessing.")
        return ids
    lookup = {g: i for i, g in enumerate(genes)}
    missing = sorted(set(obs["gene"].astype(str)) - set(lookup))
    if missing:
        raise InputError(f"{path}: obs genes {missing[:5]} are not in the attrs gene list.")
    return obs["gene"].astype(str).map(lookup).to_numpy(dtype=np.int64)


def _choose_storage(nbytes: int, device: torch.device, in_memory, fraction: float):
    """The device to hold ``nbytes`` of crops on, or None to stream from disk."""
    if in_memory is False:
        return None
    if device.type == "cuda" and nbytes < fraction * torch.cuda.mem_get_info(device)[0]:
        return device
    host_free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    if in_memory is True or nbytes < fraction * host_free:
        return torch.device("cpu")
    log.info("crops (%.1f GB) exceed %.0f%% of free memory: streaming them from disk",
             nbytes / 1e9, fraction * 100)
    return None


class BalancedSampler:
    """Batches of ``batch_size`` cells with an equal number per gene (counts differ by <= 1).

    ``gene_ids`` (n,) labels every cell; ``pool`` lists the genes to draw from (each must
    have cells). Per batch, every pooled gene gets batch_size // len(pool) slots and
    batch_size % len(pool) genes drawn without replacement get one more; each slot then
    takes a cell of its gene uniformly at random (with replacement).
    """

    def __init__(self, gene_ids: np.ndarray, pool: list[int], batch_size: int, seed: int, stream: int):
        self.batch_size, self.seed, self.stream = int(batch_size), int(seed), int(stream)
        self.pool = torch.as_tensor(pool, dtype=torch.long)
        order = np.argsort(gene_ids, kind="stable")
        counts_all = np.bincount(gene_ids, minlength=int(max(pool)) + 1)
        starts_all = np.concatenate([[0], np.cumsum(counts_all)[:-1]])
        counts = counts_all[pool]
        if (counts == 0).any():
            raise ValueError(f"BalancedSampler: genes {list(np.asarray(pool)[counts == 0])} have no cells")
        self.order = torch.as_tensor(order, dtype=torch.long)
        self.starts = torch.as_tensor(starts_all[pool], dtype=torch.long)
        self.counts = torch.as_tensor(counts, dtype=torch.long)
        self._on: dict[torch.device, tuple] = {}

    def state_dict(self) -> dict:
        """What determines the batches besides the step: seed, stream and batch size."""
        return {"seed": self.seed, "stream": self.stream, "batch_size": self.batch_size}

    def draw(self, step: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """(cell rows (B,), gene ids (B,)), int64 on ``device``, for training step ``step``."""
        if device not in self._on:
            self._on[device] = tuple(t.to(device) for t in (self.pool, self.order, self.starts, self.counts))
        pool, order, starts, counts = self._on[device]
        gen = step_generator(self.seed, self.stream, step, device)
        n_genes = len(pool)
        base, extra = divmod(self.batch_size, n_genes)
        slots = torch.cat([torch.arange(n_genes, device=device).repeat(base),
                           torch.randperm(n_genes, generator=gen, device=device)[:extra]])
        u = torch.rand(len(slots), generator=gen, device=device)
        within = torch.minimum((u * counts[slots]).long(), counts[slots] - 1)
        return order[starts[slots] + within], pool[slots]


class _StepDataset(torch.utils.data.Dataset):
    """Item ``step`` = {stream name: (crops float16 (B, C, S, S), gene ids (B,))}, read from disk."""

    def __init__(self, path: str, image_size: int, samplers: dict[str, BalancedSampler], stop: int):
        self.path, self.image_size, self.samplers, self.stop = path, image_size, samplers, stop

    def __len__(self) -> int:
        return self.stop

    def __getitem__(self, step: int):
        out = {}
        for name, sampler in self.samplers.items():
            idx, y = sampler.draw(step, torch.device("cpu"))
            out[name] = (read_resized(self.path, idx.numpy(), self.image_size), y)
        return out


Batch = dict[str, tuple[torch.Tensor, torch.Tensor]]
"""{stream name: (crops float32 (B, C, S, S), gene ids int64 (B,))}, both on the compute device."""


def iterate_batches(images: CellImages, samplers: dict[str, BalancedSampler], start: int, stop: int,
                    num_workers: int) -> Iterator[tuple[int, Batch]]:
    """Yield (step, {stream: (crops float32 (B, C, S, S) on device, gene ids (B,) on device)})
    for steps ``start`` .. ``stop - 1``. Crops in memory are gathered where they live;
    streamed crops are read by ``num_workers`` DataLoader workers, a few steps ahead."""
    device = images.device
    if images.in_memory:
        for step in range(start, stop):
            batch = {}
            for name, sampler in samplers.items():
                idx, y = sampler.draw(step, images.storage)
                batch[name] = (images.get(idx), y.to(device))
            yield step, batch
        return
    loader = torch.utils.data.DataLoader(
        _StepDataset(images.path, images.image_size, samplers, stop), batch_size=None,
        sampler=range(start, stop), num_workers=num_workers, pin_memory=device.type == "cuda",
        prefetch_factor=4 if num_workers else None)
    for step, batch in zip(range(start, stop), loader):
        yield step, {name: (x.to(device, non_blocking=True).float(), y.to(device))
                     for name, (x, y) in batch.items()}
