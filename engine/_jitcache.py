"""Keep numba's on-disk cache honest about the sources a kernel compiles in.

numba keys a cached kernel on its own file's time stamp only. The kernels
here compile in the rule from ``engine/rules.py`` (and friends), so an edit
to that file alone would leave a stale kernel in the cache. Before any kernel
is compiled, this module compares a digest of every source file the compiled
code depends on with the one recorded beside the cache, and drops the
engine's cached kernels when they differ.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

log = logging.getLogger(__name__)

_ROOT = Path(__file__).resolve().parent
#: Every module with ``cache=True`` functions, and what they compile in.
_SOURCES = (
    "rules.py", "prepare.py", "events.py", "fine.py", "cpu/kernels.py",
)  # fmt: skip
_STAMP = "labeler-sources.digest"


def refresh() -> None:
    """Drop the engine's cached kernels if their sources changed since caching."""
    try:
        import numba

        digest = hashlib.blake2b(numba.__version__.encode(), digest_size=16)
        for name in _SOURCES:
            path = _ROOT / name
            if path.exists():
                digest.update(name.encode() + b"\0" + path.read_bytes())
        value = digest.hexdigest()
        for folder in {(_ROOT / n).parent / "__pycache__" for n in _SOURCES}:
            stamp = folder / _STAMP
            if stamp.exists() and stamp.read_text() == value:
                continue
            if folder.is_dir():
                stale = list(folder.glob("*.nbi")) + list(folder.glob("*.nbc"))
                for f in stale:
                    f.unlink(missing_ok=True)
                if stale:
                    log.info("dropped %d stale cached kernels", len(stale))
            folder.mkdir(exist_ok=True)
            stamp.write_text(value)
    except OSError:
        # A read-only install: numba then caches elsewhere or not at all.
        log.debug("cannot check the kernel cache's sources", exc_info=True)
