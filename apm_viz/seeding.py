"""Seeded random init that several sessions can run at once.

torch has one CPU generator per process. `fork_rng` plus `manual_seed` gives
the weights a seed names only while no other thread draws from that generator:
two sessions building models at the same moment otherwise interleave their
draws, and neither gets the weights its seed names (measured: three APMs built
in three threads matched none of the same seeds built one after another).
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Iterator

import torch

_LOCK = threading.RLock()


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Inside the block torch's global CPU generator starts at `seed`; after it the
    generator is as it was. Blocks in different threads take turns."""
    with _LOCK, torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield
