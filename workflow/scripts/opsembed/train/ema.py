"""Parameter averaging: GRAPE's periodic filter or StarGAN v2's per-step shadow EMA.

Modes (config ``ema.mode``):

- ``filter`` (GRAPE paper, "EMA filter every 2.5k iterations, gamma 0.5"). Our reading,
  since the paper gives no formula: at every ``every``-th step k the covered parameters
  theta are replaced by theta_bar_k = gamma * theta + (1 - gamma) * theta_bar_{k-1}, and
  training continues from theta_bar_k. The first filter step only records theta_bar_1 =
  theta (no pull back towards the random initialisation).
- ``step`` (StarGAN v2): a shadow copy follows theta_bar <- beta * theta_bar + (1 - beta) * theta
  after every step; training weights are untouched and the shadow is what gets exported.
- ``none``: nothing (the paper's "EMA off" ablation).
"""

from __future__ import annotations

import torch
from torch import nn

MODES = ("filter", "step", "none")


class ParamEMA:
    """Averaging of the parameters of ``nets[key]`` for ``key`` in ``keys``; ``every`` and
    ``gamma`` are needed in ``filter`` mode, ``beta`` in ``step`` mode (config ``ema.*``)."""

    def __init__(self, nets: nn.ModuleDict, keys: list[str], mode: str, every: int | None = None,
                 gamma: float | None = None, beta: float | None = None):
        if mode not in MODES:
            raise ValueError(f"ema.mode must be one of {MODES}, got {mode!r}")
        needed = {"filter": {"every": every, "gamma": gamma}, "step": {"beta": beta}}.get(mode, {})
        missing = [k for k, v in needed.items() if v is None]
        if missing:
            raise ValueError(f"ema.mode {mode!r} needs {missing}")
        self.mode = mode
        self.every, self.gamma, self.beta = (None if v is None else t(v) for v, t in
                                             ((every, int), (gamma, float), (beta, float)))
        self.names = [f"{k}.{n}" for k in keys for n, _ in nets[k].named_parameters()]
        lookup = dict(nets.named_parameters())
        self.params = [lookup[n] for n in self.names]
        self.average: list[torch.Tensor] | None = None
        if mode == "step":
            self.average = [p.detach().clone() for p in self.params]

    @torch.no_grad()
    def update(self, step: int) -> None:
        """Call after optimiser step number ``step`` (1-based: steps completed so far)."""
        if self.mode == "step":
            torch._foreach_lerp_(self.average, [p.detach() for p in self.params], 1.0 - self.beta)
        elif self.mode == "filter" and step % self.every == 0:
            if self.average is None:
                self.average = [p.detach().clone() for p in self.params]
                return
            for p, a in zip(self.params, self.average):
                p.mul_(self.gamma).add_(a, alpha=1.0 - self.gamma)
                a.copy_(p)

    def exported_state(self, nets: nn.ModuleDict) -> dict[str, torch.Tensor]:
        """``nets.state_dict()``, with the shadow parameters in ``step`` mode."""
        state = {k: v.detach().clone() for k, v in nets.state_dict().items()}
        if self.mode == "step":
            state.update({n: a.clone() for n, a in zip(self.names, self.average)})
        return state

    def state_dict(self) -> dict:
        return {"mode": self.mode, "average": self.average}

    def load_state_dict(self, state: dict) -> None:
        if state["mode"] != self.mode:
            raise ValueError(f"checkpoint EMA mode {state['mode']!r} differs from config {self.mode!r}")
        self.average = None if state["average"] is None else \
            [a.to(p.device) for a, p in zip(state["average"], self.params)]
