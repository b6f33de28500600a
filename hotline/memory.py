"""Give freed heap memory back to the operating system after a one-off large job.

A long-running ``hotline serve`` process that once built a report (openpyxl, reportlab: tens of
MB of short-lived objects) keeps that memory in glibc's heap after Python frees it, so the
FastAGI process stays ~60 MB larger for its whole life (issue 13, memory). ``malloc_trim``
returns the free pages; it exists only in glibc, so elsewhere this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from collections.abc import Callable


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        return ctypes.CDLL(name).malloc_trim  # type: ignore[no-any-return]
    except (OSError, AttributeError):  # not glibc (musl, macOS)
        return None


def release_freed() -> bool:
    """Return the heap's free pages to the OS; True when the platform could (glibc)."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True
