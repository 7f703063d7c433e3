"""Where and in what precision local transformers weights run, chosen one way for every local model
(the hf backend and the reward heads), so the same options mean the same thing everywhere."""

from __future__ import annotations

import torch

from referee.errors import RefereeError

DTYPES = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16,
          "bf16": torch.bfloat16, "float16": torch.float16, "fp16": torch.float16}


def pick_device(device: str | None) -> str:
    """The device asked for, else the GPU when there is one."""
    if device:
        return device
    return "cuda" if torch.cuda.is_available() else "cpu"


def pick_dtype(dtype: str | None, device: str) -> torch.dtype:
    """The precision asked for, else bfloat16 on a GPU that supports it and float32 elsewhere."""
    if dtype:
        try:
            return DTYPES[dtype]
        except KeyError:
            raise RefereeError(f"dtype {dtype!r}: expected float32, bfloat16 or float16") from None
    if device.startswith("cuda") and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float32


def free_memory() -> None:
    """Give memory back after a model or a trainer is dropped: collect the reference cycles trainers
    leave, empty the GPU's cache, and hand freed heap pages back to the system (glibc keeps them
    otherwise), so a long protocol's resident size follows what it still holds."""
    import ctypes
    import gc

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass
