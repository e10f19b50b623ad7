"""Process-wide settings for heavy tensor work on the CPU: how many cores, how many threads,
and how the C allocator treats the large short-lived buffers a network's activations need."""

from __future__ import annotations

import ctypes
import os

import torch

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc mallopt parameters
_tuned = False


def cores() -> int:
    """CPU cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def keep_freed_memory() -> bool:
    """Have glibc serve large blocks from the heap and keep freed memory for reuse.

    By default glibc hands every block of more than a few MB straight back to the kernel, so
    each convolution's activations are mapped, zero-filled and unmapped again; on the embedded
    encoder that page-fault traffic cost more system time than the convolutions themselves
    (bench/extract.py measured about 3x the frames/s at batch 64 with it off). Returns whether
    the setting took (False off glibc, where nothing changes). Safe to call again.
    """
    global _tuned
    if _tuned:
        return True
    try:
        libc = ctypes.CDLL("libc.so.6")
        ok = libc.mallopt(_M_MMAP_THRESHOLD, 1 << 30) == 1 and libc.mallopt(_M_TRIM_THRESHOLD, 1 << 31) == 1
    except (OSError, AttributeError):
        return False
    _tuned = ok
    return ok


def set_threads(threads: int | None = None) -> int:
    """torch's intra-op threads: `threads`, else one per core. Returns the number set."""
    threads = threads or cores()
    torch.set_num_threads(threads)
    return threads
