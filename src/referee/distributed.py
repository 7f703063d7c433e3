"""Several processes, one writer.

Under ``accelerate launch`` or ``torchrun`` every process runs the same command: each trains on its
shard of the data and the gradients are averaged (TRL and transformers' Trainer do that part). What
lands on disk must be written once, by the main process, or the processes would race on the same
files (a checkpoint's tmp folder and rename, a run's records, state and ledger); the others wait for
it where they need what it wrote.

The launchers set RANK and WORLD_SIZE before the process group exists, so reading them costs no import;
a group started another way (``torch.distributed.init_process_group`` by hand) is asked directly. TRL's
trainers start the group themselves; referee's own loop (reward-model training) starts it here.
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


def local_rank() -> int:
    """This process's place on its machine: which of the machine's GPUs is its own."""
    return int(os.environ.get("LOCAL_RANK", 0))


def process_device(device: str) -> str:
    """Under a launcher a bare "cuda" means this process's own GPU, so the processes do not all load onto GPU 0."""
    return f"cuda:{local_rank()}" if device == "cuda" and world_size() > 1 else device


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


def init_process_group_if_needed() -> None:
    """Start the process group a launcher asked for (WORLD_SIZE above 1) unless it is up already.

    gloo carries CPU tensors and pickled objects; with a GPU for every process, NCCL carries theirs, each
    process on the GPU of its LOCAL_RANK (as ``process_device`` placed its model)."""
    if world_size() <= 1 or _running_group() is not None:
        return
    import torch
    import torch.distributed as dist

    if int(os.environ.get("LOCAL_WORLD_SIZE", world_size())) <= torch.cuda.device_count():
        torch.cuda.set_device(local_rank())
        dist.init_process_group("cpu:gloo,cuda:nccl")
    else:
        dist.init_process_group("gloo")


def all_gather_objects(obj) -> list:
    """Every process's ``obj`` (anything picklable), in rank order; ``[obj]`` without a group."""
    group = _running_group()
    if group is None:
        return [obj]
    gathered = [None] * group.get_world_size()
    group.all_gather_object(gathered, obj)
    return gathered


def sum_across_processes(tensor):
    """``tensor`` replaced, in place, by its sum over the processes (left as it is without a group)."""
    group = _running_group()
    if group is not None:
        group.all_reduce(tensor)
    return tensor
