"""Deterministic weights and inputs for forward-equivalence fixtures.

A fixture of the authors' model outputs is made (outside the project, with
their code) by filling every tensor of their state dict with
:func:`fill_state_dict` and running :func:`deterministic_input`; the test fills
dfbench's model with the same values through its importer and compares. The
values depend only on the key and shape, so both sides agree without sharing
a file of weights. Pure torch and the standard library: the fixture scripts run
it in another environment.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping

import torch
from torch import Tensor


def fill(key: str, shape: tuple[int, ...], dtype: torch.dtype = torch.float32) -> Tensor:
    """A tensor of ``shape`` fixed by ``key``: smooth pseudo-random values of a sane scale.

    Convolution and linear weights get about ``1/sqrt(fan_in)``; batch-norm
    ``running_var`` is positive (0.5-1.5), ``weight`` near 1, ``bias`` and
    ``running_mean`` small; integer tensors (``num_batches_tracked``) are 0.
    """
    if not dtype.is_floating_point:
        return torch.zeros(shape, dtype=dtype)
    code = zlib.crc32(key.encode())
    count = math.prod(shape)
    phase = (code % 10007) / 10007 * 2 * math.pi
    step = 0.7 + (code >> 16) % 1000 / 1000  # irrational-looking stride: no short period
    wave = torch.sin(torch.arange(count, dtype=torch.float64) * step + phase)
    leaf = key.rsplit(".", 1)[-1]
    if leaf == "running_var":
        values = 1.0 + 0.5 * wave
    elif leaf == "running_mean":
        values = 0.1 * wave
    elif len(shape) == 1 and leaf == "weight":
        values = 1.0 + 0.2 * wave
    elif len(shape) <= 1:
        values = 0.05 * wave
    else:
        fan_in = max(1, count // shape[0])
        values = wave * math.sqrt(3.0 / fan_in)
    return values.reshape(shape).to(dtype)


def fill_state_dict(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Every tensor of ``state`` replaced by :func:`fill` of its key, shape and dtype."""
    return {key: fill(key, tuple(value.shape), value.dtype) for key, value in state.items()}


def deterministic_input(batch: int, size: int, seed: int = 0) -> Tensor:
    """A (batch, 3, size, size) float32 image batch in about [-2, 2] (normalised-image scale)."""
    count = batch * 3 * size * size
    grid = torch.arange(count, dtype=torch.float64)
    values = 1.5 * torch.sin(grid * 0.013 + seed) * torch.cos(grid * 0.0007 + 2 * seed)
    return values.reshape(batch, 3, size, size).to(torch.float32)
