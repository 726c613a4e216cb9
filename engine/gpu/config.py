"""Launch and memory settings of the CUDA backend, read at every launch.

Each setting has an environment override, read once at import. Tests change
the module attributes directly (``monkeypatch.setattr(config, ...)``): the
backend looks them up at call time, never copies them.
"""

from __future__ import annotations

import os


def _env_int(name: str, default: int, minimum: int = 1) -> int:
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not a whole number") from None
    if value < minimum:
        raise ValueError(f"{name}={raw!r} must be >= {minimum}")
    return value


#: Threads per block. 256 always launches: a thread uses at most 255
#: registers (256 once rounded to the allocation unit), so 256 threads need at
#: most 65,536, one SM's whole register file on every architecture from sm_50
#: to sm_120, where 1,024 threads could need four times that. The tests shrink
#: it to 8 so that inputs of a few dozen events span several blocks and end in
#: a partly filled one, where the tail guard must hold.
THREADS_PER_BLOCK = _env_int("LABELER_CUDA_THREADS_PER_BLOCK", 256)

#: Most events labelled by one launch. Each stream's device buffers and pinned
#: host buffers hold this many events (76 bytes each: 20 MB for the default
#: 262,144), which bounds host and device memory whatever the batch; free
#: device memory can make a sub-chunk smaller still. The default splits the
#: engine's batches of a million events into four, so that the two streams
#: have copies to overlap with kernels, and still fills an H100 or H200 with
#: about one full wave of blocks per launch.
CHUNK_EVENTS = _env_int("LABELER_CUDA_CHUNK_EVENTS", 1 << 18)

#: Share of the device memory free after the path is loaded that the event
#: buffers of all streams together may take.
MEMORY_FRACTION = 0.5

#: Streams the sub-chunks of a batch rotate over: with two, one sub-chunk's
#: results copy back while the next one computes. 1 runs everything in order
#: on a single stream (for measuring what the overlap buys).
STREAMS = _env_int("LABELER_CUDA_STREAMS", 2)
