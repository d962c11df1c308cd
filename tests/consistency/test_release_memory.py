"""``jobs.release_freed_memory`` gives a worker's freed heap pages back to the OS: a
large agreement run left its worker at ~940 MB until flags stacked their own peak on it.
Checked by resident memory from /proc, on a heap fragmented on purpose: blocks below the
mmap threshold, all freed but the last, so the heap's top cannot shrink by itself."""

from __future__ import annotations

import ctypes
import os
import platform

import pytest

from consistency import jobs

pytestmark = pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
    reason="malloc_trim is glibc's; elsewhere the call is a no-op by design",
)

PAGE = os.sysconf("SC_PAGE_SIZE")


def resident_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


def test_freed_heap_pages_are_returned_only_after_the_release():
    libc = ctypes.CDLL("libc.so.6")
    libc.malloc.restype = ctypes.c_void_p
    libc.free.argtypes = [ctypes.c_void_p]
    libc.memset.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t]
    block, n = 64 * 1024, 3200  # 200 MB in blocks under the 128 kB mmap threshold
    pointers = []
    for _ in range(n):
        p = libc.malloc(block)
        libc.memset(p, 1, block)  # touch every page: resident
        pointers.append(p)
    before = resident_bytes()
    for p in pointers[:-1]:  # the last block pins the top of the heap
        libc.free(p)
    after_free = resident_bytes()
    assert jobs.release_freed_memory() is True
    after_release = resident_bytes()
    libc.free(pointers[-1])
    freed = block * (n - 1)
    assert before - after_free < freed / 2  # free() alone kept most of the pages
    assert after_free - after_release > freed * 0.8  # the release gave them back
