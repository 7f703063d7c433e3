"""Several processes, one writer.

Under ``accelerate launch`` or ``torchrun`` every process runs the same command: each trains on its
shard of the data and the gradients are averaged (TRL and transformers' Trainer do that part). What
lands on disk must be written once, by the main process, or the processes would race on the same
files (a checkpoint's tmp folder and rename, a run's records, state and ledger); the others wait for
it where they need what it wrote.

The launchers set RANK and WORLD_SIZE before the process group exists, so reading them costs no import;
a group started another way (``torch.distributed.init_process_group`` by hand) is asked directly.
"""

from __future__ import annotations

import os
import sys


def _running_group():
    """torch.distributed when a process group is up, else None (never imports torch)."""
    dist = sys.modules.get("torch.distributed")
    return dist if dist is not None and dist.is_available() and dist.is_initialized() else None


def rank() -> int:
    group = _running_group()
    return group.get_rank() if group is not None else int(os.environ.get("RANK", 0))


def world_size() -> int:
    group = _running_group()
    return group.get_world_size() if group is not None else int(os.environ.get("WORLD_SIZE", 1))


def is_main_process() -> bool:
    """The one process that writes files and talks on the terminal (the only one without a launcher)."""
    return rank() == 0


def wait_for_everyone() -> None:
    """A barrier across the processes, once their group is up (a trainer starts it); else nothing.

    torch.distributed's own barrier, as accelerate's is: asking accelerate's PartialState here, before a
    trainer has, would fix its settings (on a CPU, one process instead of several) for the trainer too."""
    group = _running_group()
    if group is not None:
        group.barrier()
