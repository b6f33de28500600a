"""hotline.memory: freed heap handed back to the OS after a one-off job (issue 13, memory)."""

from __future__ import annotations

import platform

from hotline.memory import release_freed


def test_release_freed_trims_on_glibc_and_is_harmless_elsewhere() -> None:
    blocks = [bytearray(200_000) for _ in range(200)]  # ~40 MB on the heap, then freed
    del blocks
    trimmed = release_freed()
    assert trimmed == (platform.libc_ver()[0] == "glibc")
    assert release_freed() == trimmed  # calling it again is safe
