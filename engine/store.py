"""The output folder as a cache: durable parts, checkpoints, a manifest, a lock.

Layout of an output folder::

    DIR/
      manifest.json                      finished configurations, data fingerprint
      labels/config=<id>/part-<k>.parquet
      .labeler/lock                      the writer lock: {pid, host, started, ...}
      .labeler/progress/<id>.json        finished chunks of an unfinished config

Every file reaches its final name by ``os.replace`` from a dot-prefixed
temporary name in the same folder, after an fsync of the file and before an
fsync of the folder, so a run killed at any instant leaves either the old or
the new file, never half of one. Readers of ``labels/`` (``pyarrow.dataset``
and friends skip names starting with ``.``) never see a temporary file, and a
configuration enters ``manifest.json`` only once all of its parts are in place.

One :class:`Store` at a time writes a folder; it holds the lock from
``__enter__`` to ``__exit__``. :func:`read_status` reads a folder without the
lock and changes nothing.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import os
import re
import shutil
import socket
import threading
import time
import uuid
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from engine.errors import OutputError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

logger = logging.getLogger(__name__)

MANIFEST_FORMAT = 1
MANIFEST = "manifest.json"
LABELS = "labels"
STATE = ".labeler"
DEFAULT_PARQUET = {"compression": "zstd"}
#: Encodings the label columns take well (measured in BENCHMARKS.md): sorted
#: indexes and timestamps as deltas, floats split by byte.
DEFAULT_ENCODINGS = {
    **dict.fromkeys(
        ("event_index", "event_time", "exit_index", "exit_time"),
        "DELTA_BINARY_PACKED",
    ),
    **dict.fromkeys(("ret", "mfe", "mae"), "BYTE_STREAM_SPLIT"),
}

_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,199}$")
_PART = re.compile(r"^part-(\d+)\.parquet$")
_SUBDIR = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=[^/\\.][^/\\]{0,199}$")
_TEMP = re.compile(r"^\..+\.tmp-\d+$")
_HASH_SLICE = 1 << 24
_HOST = socket.gethostname()
_STALE_UNREADABLE_LOCK_S = 10.0


class DamagedOutputWarning(UserWarning):
    """A configuration marked complete has a missing or altered part file."""


@dataclass(frozen=True)
class PartInfo:
    """One written part: ``file`` relative to the output folder, its rows, size
    in bytes and ``checksum`` (``"blake2b:<hex>"`` of the file's bytes)."""

    file: str
    rows: int
    bytes: int
    checksum: str

    @property
    def chunk(self) -> int:
        """The chunk number ``k`` of ``part-<k>.parquet``."""
        m = _PART.match(PurePosixPath(self.file).name)
        if m is None:
            raise ValueError(f"{self.file!r} is not a part file name")
        return int(m.group(1))

    def to_json(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "rows": self.rows,
            "bytes": self.bytes,
            "checksum": self.checksum,
        }

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> PartInfo:
        return cls(
            file=str(obj["file"]),
            rows=int(obj["rows"]),
            bytes=int(obj["bytes"]),
            checksum=str(obj["checksum"]),
        )


@dataclass(frozen=True)
class ConfigState:
    """What :meth:`Store.plan` found for one configuration.

    ``status`` is ``"complete"`` (nothing to compute; ``done`` lists every
    part), ``"partial"`` (resume: ``done`` maps the finished chunk numbers to
    their parts) or ``"new"`` (compute everything; ``done`` is empty).
    ``reason`` says in words why, for logs and progress displays.
    """

    status: str
    done: dict[int, PartInfo] = field(default_factory=dict)
    reason: str = ""

    @property
    def rows(self) -> int:
        """Rows already written in ``done``."""
        return sum(p.rows for p in self.done.values())


def fingerprint_arrays(
    arrays: Sequence[Any], extra: Mapping[str, Any] | None = None
) -> str:
    """Hash the contents of ``arrays`` (and ``extra``) into a hex string.

    Each array contributes its dtype, shape and raw bytes (blake2b, hashed in
    slices without copies; arrays that are not C-contiguous are copied once).
    ``extra`` is hashed as sorted JSON. ``None`` entries are allowed and
    distinct from every array. Equal inputs give equal strings on every
    platform with the same byte order.
    """
    digests = [None] * len(arrays)

    def one(i: int) -> None:
        digests[i] = _array_digest(arrays[i])

    workers = min(len(arrays), os.cpu_count() or 1)
    if workers > 1:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            list(pool.map(one, range(len(arrays))))
    else:
        for i in range(len(arrays)):
            one(i)

    h = hashlib.blake2b(digest_size=16, person=b"labeler-data")
    h.update(f"arrays:{len(arrays)};".encode())
    for d in digests:
        h.update(d)
    text = json.dumps(dict(extra or {}), sort_keys=True, default=str)
    h.update(b"extra:" + text.encode())
    return h.hexdigest()


def _array_digest(array: Any) -> bytes:
    h = hashlib.blake2b(digest_size=32)
    if array is None:
        h.update(b"none")
        return h.digest()
    a = np.asarray(array)
    if a.dtype.hasobject:
        raise TypeError("fingerprint_arrays takes numeric arrays, not object arrays")
    h.update(f"{a.dtype.str};{a.shape};".encode())
    flat = np.ascontiguousarray(a).reshape(-1).view(np.uint8)
    for start in range(0, flat.size, _HASH_SLICE):
        h.update(flat[start : start + _HASH_SLICE])
    return h.digest()


class Store:
    """The writer of one output folder: lock, plan, parts, manifest.

    Use it as a context manager; ``__enter__`` creates ``out_dir`` if needed,
    takes the lock (waiting up to ``wait`` seconds for a live holder, taking
    over from a dead one on this host) and records the current data block and
    versions in ``manifest.json``. ``parquet_options`` are passed to
    ``pyarrow.parquet.write_table`` over ``compression="zstd"``; unless they
    set ``use_dictionary``, dictionary encoding is used for int8 and bool
    columns only. ``verify_checksums`` makes :meth:`plan` hash the parts of a
    complete configuration as well as checking their sizes.
    """

    def __init__(
        self,
        out_dir: str | os.PathLike[str],
        *,
        data_fingerprint: str,
        data_info: Mapping[str, Any] | None = None,
        engine_version: str,
        semantics_version: int,
        wait: float = 0.0,
        poll: float = 0.2,
        parquet_options: Mapping[str, Any] | None = None,
        verify_checksums: bool = True,
    ) -> None:
        self.out_dir = Path(out_dir)
        self.data_fingerprint = str(data_fingerprint)
        self.data_info = dict(data_info or {})
        self.engine_version = str(engine_version)
        self.semantics_version = semantics_version
        self.wait = float(wait)
        self.poll = float(poll)
        self.parquet_options = dict(parquet_options or {})
        self.verify_checksums = verify_checksums
        self._lock_info: dict[str, Any] | None = None
        self._manifest: dict[str, Any] = {}
        self._planned: dict[str, str] = {}
        self._progress: dict[str, dict[str, Any]] = {}
        self._record_lock = threading.Lock()

    # -- paths ----------------------------------------------------------------

    @property
    def labels_dir(self) -> Path:
        return self.out_dir / LABELS

    @property
    def lock_path(self) -> Path:
        return self.out_dir / STATE / "lock"

    @property
    def manifest_path(self) -> Path:
        return self.out_dir / MANIFEST

    def config_dir(self, config_id: str) -> Path:
        """The folder of one configuration's parts."""
        return self.labels_dir / f"config={config_id}"

    def _progress_path(self, config_id: str) -> Path:
        return self.out_dir / STATE / "progress" / f"{config_id}.json"

    # -- lifecycle ------------------------------------------------------------

    def __enter__(self) -> Store:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def open(self) -> None:
        """Take the lock and load (or start) the manifest."""
        if self._lock_info is not None:
            return
        try:
            _mkdirs(self.out_dir / STATE / "progress")
        except OSError as exc:
            raise OutputError(
                f"cannot create output folder {self.out_dir}: {exc}"
            ) from exc
        self._acquire()
        try:
            self._clean_state_temps()
            self._manifest = self._load_manifest()
            self._write_manifest()
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Release the lock if this store still holds it."""
        if self._lock_info is None:
            return
        try:
            with self._guard():
                held = _read_json(self.lock_path)
                if held is not None and held.get("token") == self._lock_info["token"]:
                    self.lock_path.unlink()
                    _fsync_dir(self.lock_path.parent)
                else:
                    logger.warning(
                        "lock %s no longer belongs to this run; leaving it",
                        self.lock_path,
                    )
        finally:
            self._lock_info = None

    # -- the lock -------------------------------------------------------------

    @contextlib.contextmanager
    def _guard(self) -> Iterator[None]:
        """Serialise lock checks and takeovers between cooperating processes."""
        if fcntl is None:  # pragma: no cover - Windows
            yield
            return
        fd = os.open(self.out_dir / STATE / "lock.guard", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _acquire(self) -> None:
        deadline = time.monotonic() + max(self.wait, 0.0)
        while True:
            with self._guard():
                holder = self._try_acquire()
            if holder is None:
                return
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise OutputError(self._held_message(holder))
            time.sleep(min(self.poll, remaining))

    def _try_acquire(self) -> dict[str, Any] | None:
        """Take the lock (returning None) or return what is known of its holder."""
        info = _new_lock_info()
        try:
            fd = os.open(self.lock_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            pass
        except OSError as exc:
            raise OutputError(f"cannot create lock {self.lock_path}: {exc}") from exc
        else:
            with os.fdopen(fd, "w") as f:
                json.dump(info, f)
                f.flush()
                os.fsync(f.fileno())
            _fsync_dir(self.lock_path.parent)
            self._lock_info = info
            return None

        holder = _read_json(self.lock_path)
        state = _holder_state(holder, self.lock_path)
        if state == "gone":
            return self._try_acquire()
        if state == "dead":
            logger.warning(
                "taking over lock %s left by %s",
                self.lock_path,
                _describe_holder(holder),
            )
            _write_json(self.lock_path, info)
            self._lock_info = info
            return None
        return {"state": state, **(holder or {})}

    def _held_message(self, holder: dict[str, Any]) -> str:
        who = _describe_holder(holder)
        if holder.get("state") == "foreign":
            return (
                f"output folder {self.out_dir} is locked by {who}, another host; "
                f"if no run is writing it any more, delete {self.lock_path} and "
                "try again"
            )
        waited = f" (waited {self.wait:g} s)" if self.wait > 0 else ""
        return (
            f"output folder {self.out_dir} is in use by another labeler run: "
            f"{who}{waited}; wait for it to finish or write to another folder"
        )

    def _check_lock(self) -> None:
        if self._lock_info is None:
            raise RuntimeError("the store is not open; use it in a 'with' block")
        held = _read_json(self.lock_path)
        if held is None or held.get("token") != self._lock_info["token"]:
            raise OutputError(
                f"lost the lock on {self.out_dir}: {self.lock_path} now belongs to "
                f"{_describe_holder(held)}; stopping so that two runs do not write "
                "the same folder"
            )

    # -- manifest -------------------------------------------------------------

    def _load_manifest(self) -> dict[str, Any]:
        path = self.manifest_path
        data = {"fingerprint": self.data_fingerprint, **self.data_info}
        fresh = {
            "format": MANIFEST_FORMAT,
            "engine_version": self.engine_version,
            "semantics_version": self.semantics_version,
            "data": data,
            "configs": [],
            "updated": _now(),
        }
        if not path.exists():
            return fresh
        try:
            manifest = json.loads(path.read_text())
            if not isinstance(manifest, dict) or not isinstance(
                manifest.get("configs", []), list
            ):
                raise ValueError("not a labeler manifest")
        except (OSError, ValueError) as exc:
            aside = path.with_name(f"{MANIFEST}.unreadable-{int(time.time())}")
            logger.warning(
                "manifest %s is unreadable (%s); moved it to %s and starting a new "
                "one; its configurations will be recomputed",
                path,
                exc,
                aside.name,
            )
            os.replace(path, aside)
            _fsync_dir(self.out_dir)
            return fresh
        fmt = manifest.get("format")
        if fmt != MANIFEST_FORMAT:
            raise OutputError(
                f"{path} has format {fmt!r}; this labeler reads format "
                f"{MANIFEST_FORMAT} only; write to another folder"
            )
        old = (manifest.get("data") or {}).get("fingerprint")
        if old != self.data_fingerprint:
            logger.info(
                "data in %s changed (fingerprint %s -> %s); configurations of the "
                "old data are recomputed when planned",
                self.out_dir,
                old,
                self.data_fingerprint,
            )
        manifest.update(
            engine_version=self.engine_version,
            semantics_version=self.semantics_version,
            data=data,
        )
        manifest["configs"] = [c for c in manifest["configs"] if isinstance(c, dict)]
        return manifest

    def _write_manifest(self) -> None:
        self._manifest["updated"] = _now()
        _write_json(self.manifest_path, self._manifest)

    def entry(self, config_id: str) -> dict[str, Any] | None:
        """A copy of the manifest entry of ``config_id``, or ``None``."""
        found = self._entry(config_id)
        return None if found is None else dict(found)

    def _entry(self, config_id: str) -> dict[str, Any] | None:
        for entry in self._manifest["configs"]:
            if entry.get("id") == config_id:
                return entry
        return None

    def _set_entry(self, config_id: str, entry: dict[str, Any] | None) -> None:
        configs = self._manifest["configs"]
        for i, old in enumerate(configs):
            if old.get("id") == config_id:
                if entry is None:
                    del configs[i]
                else:
                    configs[i] = entry
                break
        else:
            if entry is None:
                return
            configs.append(entry)
        self._write_manifest()

    # -- planning -------------------------------------------------------------

    def plan(
        self, config_id: str, describe: Mapping[str, Any], key: str
    ) -> ConfigState:
        """Decide what is left to compute for one configuration under ``key``.

        A manifest entry with the same key whose parts are intact is
        ``complete``; a damaged one is wiped with a
        :class:`DamagedOutputWarning` and is ``new``. A progress record with
        the same key keeps its intact chunks (``partial``). Anything under
        another key is stale and removed. Files in the configuration's folder
        that are not kept are deleted, so parts of different keys never mix.
        """
        _check_id(config_id)
        self._check_lock()
        self._planned[config_id] = key
        folder = self.config_dir(config_id)
        entry = self._entry(config_id)
        record = self._read_progress(config_id)

        if entry is not None and entry.get("key") == key:
            parts, problem = self._verify_entry(entry)
            if problem is None:
                if record is not None:
                    self._remove_progress(config_id)
                self._remove_unlisted(folder, _names(parts.values()))
                return ConfigState("complete", parts, "already computed")
            warnings.warn(
                f"configuration {config_id}: {problem}; recomputing it",
                DamagedOutputWarning,
                stacklevel=2,
            )
            self._drop(config_id)
            return ConfigState("new", {}, f"damaged: {problem}")

        if entry is not None:
            logger.info(
                "configuration %s is stale (data, parameters or semantics changed); "
                "removing %s",
                config_id,
                folder,
            )
            self._drop(config_id)
            return ConfigState("new", {}, "stale: computed under another key")

        if record is not None and record.get("key") == key:
            return self._resume(config_id, record)

        if record is not None:
            logger.info(
                "configuration %s: discarding a partial run under another key",
                config_id,
            )
            self._drop(config_id)
            return ConfigState("new", {}, "stale: partial run under another key")

        if folder.exists():
            logger.info("removing %s, which no record describes", folder)
            self._drop(config_id)
        return ConfigState("new", {}, "not computed yet")

    def _resume(self, config_id: str, record: dict[str, Any]) -> ConfigState:
        folder = self.config_dir(config_id)
        kept: dict[int, PartInfo] = {}
        for k_text, obj in sorted(record["parts"].items(), key=lambda kv: int(kv[0])):
            part = PartInfo.from_json(obj)
            problem = _check_part(folder, part, checksum=self.verify_checksums)
            if problem is None:
                kept[int(k_text)] = part
            else:
                logger.warning(
                    "configuration %s: chunk %s is dropped and recomputed: %s",
                    config_id,
                    k_text,
                    problem,
                )
        self._remove_unlisted(folder, _names(kept.values()))
        if len(kept) != len(record["parts"]):
            record = {**record, "parts": {str(k): p.to_json() for k, p in kept.items()}}
            self._write_progress(config_id, record)
        self._progress[config_id] = record
        if not kept:
            return ConfigState("new", {}, "an earlier run finished no chunk")
        return ConfigState("partial", kept, f"resuming after {len(kept)} chunks")

    def _verify_entry(
        self, entry: Mapping[str, Any]
    ) -> tuple[dict[int, PartInfo], str | None]:
        try:
            parts = [PartInfo.from_json(p) for p in entry.get("parts", [])]
            by_chunk = {p.chunk: p for p in parts}
        except (KeyError, TypeError, ValueError) as exc:
            return {}, f"its manifest entry is malformed ({exc})"
        folder = self.config_dir(str(entry["id"]))
        for p in parts:
            problem = _check_part(folder, p, checksum=self.verify_checksums)
            if problem is not None:
                return by_chunk, problem
        return by_chunk, None

    # -- writing --------------------------------------------------------------

    def write_part(
        self,
        config_id: str,
        key: str,
        k: int,
        table: pa.Table,
        subdir: str | None = None,
    ) -> PartInfo:
        """Write chunk ``k`` durably and record it in the progress record.

        The table goes to ``part-<k>.parquet`` through a dot-prefixed temporary
        file in the same folder: the configuration's folder, or its
        ``subdir`` (a Hive partition such as ``symbol=AAPL``). A failure
        removes the temporary file and raises :class:`OutputError` naming the
        file; the chunk is then not recorded.
        """
        self._check_planned(config_id, key)
        if isinstance(k, bool) or not isinstance(k, int) or k < 0:
            raise ValueError(f"chunk number must be an int >= 0, got {k!r}")
        self._check_lock()
        folder = self.config_dir(config_id)
        if subdir is not None:
            if not _SUBDIR.match(subdir):
                raise ValueError(f"{subdir!r} is not a partition folder name")
            folder = folder / subdir
        name = f"part-{k}.parquet"
        final = folder / name
        tmp = folder / f".{name}.tmp-{os.getpid()}"

        try:
            _mkdirs(folder)
            pq.write_table(table, str(tmp), **self._parquet_kwargs(table.schema))
            with open(tmp, "r+b") as f:
                checksum = _file_checksum(f)
                os.fsync(f.fileno())
                size = os.fstat(f.fileno()).st_size
            os.replace(tmp, final)
            _fsync_dir(folder)
        except BaseException as exc:
            _unlink_quiet(tmp)
            if isinstance(exc, OSError | pa.ArrowException):
                raise OutputError(f"cannot write {final}: {exc}") from exc
            raise

        info = PartInfo(
            file=final.relative_to(self.out_dir).as_posix(),
            rows=table.num_rows,
            bytes=size,
            checksum=checksum,
        )
        with self._record_lock:  # parts may be written from several threads
            record = self._progress.get(config_id)
            if record is None or record.get("key") != key:
                record = {
                    "format": MANIFEST_FORMAT,
                    "id": config_id,
                    "key": key,
                    "fingerprint": self.data_fingerprint,
                    "parts": {},
                }
            parts = {**record["parts"], str(k): info.to_json()}
            record = {**record, "parts": parts}
            try:
                self._write_progress(config_id, record)
            except BaseException:
                _unlink_quiet(final)
                raise
            self._progress[config_id] = record
        logger.debug("wrote %s (%d rows)", final, info.rows)
        return info

    def complete(
        self,
        config_id: str,
        describe: Mapping[str, Any],
        key: str,
        parts: Sequence[PartInfo] | int,
    ) -> dict[str, Any]:
        """Record a configuration as complete in ``manifest.json``.

        ``parts`` lists the configuration's parts, or gives their number
        ``n`` (chunks ``0..n-1`` of the progress record). Every part must be
        in place with its recorded size; files of the folder that are not
        listed are removed first. The manifest entry is ``describe`` plus
        ``id``, ``key``, ``fingerprint``, ``rows``, ``parts`` and ``completed``;
        it is returned.
        """
        self._check_planned(config_id, key)
        self._check_lock()
        folder = self.config_dir(config_id)
        if isinstance(parts, int):
            record = self._progress.get(config_id) or {"parts": {}}
            missing = [k for k in range(parts) if str(k) not in record["parts"]]
            if missing:
                raise OutputError(
                    f"configuration {config_id}: chunks {missing} were never written "
                    f"to {folder}; cannot mark it complete"
                )
            infos = [PartInfo.from_json(record["parts"][str(k)]) for k in range(parts)]
        else:
            infos = list(parts)
        infos.sort(key=lambda p: p.chunk)
        for p in infos:
            problem = _check_part(folder, p, checksum=False)
            if problem is not None:
                raise OutputError(
                    f"configuration {config_id}: {problem}; cannot mark it complete"
                )

        self._remove_unlisted(folder, _names(infos))
        if folder.exists():
            _fsync_dir(folder)
            _fsync_dir(self.labels_dir)
        entry = {
            **describe,
            "id": config_id,
            "key": key,
            "fingerprint": self.data_fingerprint,
            "rows": sum(p.rows for p in infos),
            "parts": [p.to_json() for p in infos],
            "completed": _now(),
        }
        self._set_entry(config_id, entry)
        self._remove_progress(config_id)
        return entry

    def remove_config(self, config_id: str) -> bool:
        """Remove a configuration's entry, progress record and parts.

        Returns whether there was anything to remove.
        """
        _check_id(config_id)
        self._check_lock()
        found = (
            self._entry(config_id) is not None
            or self._progress_path(config_id).exists()
            or self.config_dir(config_id).exists()
        )
        self._drop(config_id)
        self._planned.pop(config_id, None)
        return found

    def prune(self) -> list[str]:
        """Remove every configuration that is not valid for the current data.

        That is, manifest entries and progress records of another data
        fingerprint, and configuration folders that nothing records. Returns
        the removed ids.
        """
        self._check_lock()
        removed = []
        for entry in list(self._manifest["configs"]):
            if entry.get("fingerprint") != self.data_fingerprint:
                removed.append(str(entry.get("id")))
        progress_dir = self.out_dir / STATE / "progress"
        for path in sorted(progress_dir.glob("[!.]*.json")):
            rec = _read_json(path)
            if rec is None or rec.get("fingerprint") != self.data_fingerprint:
                removed.append(path.stem)
        listed = {str(e.get("id")) for e in self._manifest["configs"]}
        for cid in _config_folders(self.labels_dir):
            if cid not in listed and not self._progress_path(cid).exists():
                removed.append(cid)
        removed = sorted({r for r in removed if _SAFE_ID.match(r)})
        for cid in removed:
            logger.info("pruning configuration %s", cid)
            self._drop(cid)
        return removed

    # -- helpers --------------------------------------------------------------

    def _check_planned(self, config_id: str, key: str) -> None:
        planned = self._planned.get(config_id)
        if planned is None:
            raise RuntimeError(f"call plan() for configuration {config_id} first")
        if planned != key:
            raise RuntimeError(
                f"configuration {config_id} was planned under another key"
            )

    def _parquet_kwargs(self, schema: pa.Schema) -> dict[str, Any]:
        opts = {**DEFAULT_PARQUET, **self.parquet_options}
        if "use_dictionary" not in opts:
            opts["use_dictionary"] = [
                f.name
                for f in schema
                if pa.types.is_int8(f.type) or pa.types.is_boolean(f.type)
            ]
        if "column_encoding" not in opts and opts["use_dictionary"] is not True:
            dictionary = set(opts["use_dictionary"] or ())
            encodings = {
                f.name: DEFAULT_ENCODINGS[f.name]
                for f in schema
                if f.name in DEFAULT_ENCODINGS and f.name not in dictionary
            }
            if encodings:
                opts["column_encoding"] = encodings
        return opts

    def _read_progress(self, config_id: str) -> dict[str, Any] | None:
        path = self._progress_path(config_id)
        if not path.exists():
            self._progress.pop(config_id, None)
            return None
        record = _read_json(path)
        if (
            record is None
            or not isinstance(record.get("parts"), dict)
            or "key" not in record
        ):
            logger.warning("progress record %s is unreadable; ignoring it", path)
            self._remove_progress(config_id)
            return None
        self._progress[config_id] = record
        return record

    def _write_progress(self, config_id: str, record: dict[str, Any]) -> None:
        _write_json(self._progress_path(config_id), {**record, "updated": _now()})

    def _remove_progress(self, config_id: str) -> None:
        self._progress.pop(config_id, None)
        path = self._progress_path(config_id)
        if path.exists():
            path.unlink()
            _fsync_dir(path.parent)

    def _drop(self, config_id: str) -> None:
        """Forget a configuration: manifest entry first, then record, then files."""
        self._set_entry(config_id, None)
        self._remove_progress(config_id)
        folder = self.config_dir(config_id)
        if folder.exists():
            shutil.rmtree(folder)
            _fsync_dir(folder.parent)

    def _remove_unlisted(self, folder: Path, keep: set[str]) -> None:
        if not folder.is_dir():
            return
        removed = False
        for child in folder.iterdir():
            if child.name in keep:
                continue
            inner = {k.split("/", 1)[1] for k in keep if k.startswith(child.name + "/")}
            if inner and child.is_dir() and not child.is_symlink():
                self._remove_unlisted(child, inner)
                continue
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()
            level = logging.DEBUG if _TEMP.match(child.name) else logging.INFO
            logger.log(level, "removed %s, which belongs to no finished chunk", child)
            removed = True
        if removed:
            _fsync_dir(folder)

    def _clean_state_temps(self) -> None:
        for folder in (self.out_dir, self.out_dir / STATE / "progress"):
            for child in folder.iterdir():
                if _TEMP.match(child.name) and child.is_file():
                    child.unlink()
                    logger.debug("removed temporary file %s", child)


# -- read-only status ---------------------------------------------------------


def read_status(
    out_dir: str | os.PathLike[str], *, checksums: bool = False
) -> dict[str, Any]:
    """Describe an output folder without locking or changing anything.

    Returns a dict with ``dir``, ``fingerprint`` (of the data the folder was
    last run on), ``data``, ``engine_version``, ``semantics_version``,
    ``updated``, ``lock`` (``None`` or the holder with ``state`` ``live``,
    ``dead``, ``foreign`` or ``unreadable``), ``counts`` per status, and
    ``configs``: one dict per configuration seen in the manifest, progress
    records or ``labels/``, sorted by id, with ``id``, ``status``
    (``complete``, ``partial``, ``stale`` or ``damaged``), ``rows``,
    ``parts`` and ``detail``. Part sizes are always checked; ``checksums``
    also hashes every part.
    """
    out = Path(out_dir)
    if not out.is_dir():
        raise OutputError(f"{out} is not a folder")
    manifest_path = out / MANIFEST
    manifest: dict[str, Any] = {}
    manifest_error = None
    if manifest_path.exists():
        try:
            manifest = json.loads(manifest_path.read_text())
            if not isinstance(manifest, dict):
                raise ValueError("not a JSON object")
        except (OSError, ValueError) as exc:
            manifest, manifest_error = {}, f"{manifest_path} is unreadable: {exc}"
    elif not (out / LABELS).is_dir() and not (out / STATE).is_dir():
        raise OutputError(f"{out} holds no labeler output (no {MANIFEST})")

    data = manifest.get("data") if isinstance(manifest.get("data"), dict) else None
    fp = data.get("fingerprint") if data else None
    entries = {
        str(e["id"]): e
        for e in manifest.get("configs") or []
        if isinstance(e, dict) and "id" in e
    }
    records: dict[str, dict[str, Any] | None] = {}
    progress_dir = out / STATE / "progress"
    if progress_dir.is_dir():
        for path in progress_dir.glob("[!.]*.json"):
            records[path.stem] = _read_json(path)
    folders = set(_config_folders(out / LABELS))

    configs = []
    for cid in sorted(set(entries) | set(records) | folders):
        folder = out / LABELS / f"config={cid}"
        if cid in entries:
            row = _status_of_entry(entries[cid], folder, fp, checksums)
        elif cid in records:
            row = _status_of_record(records[cid], folder, fp, checksums)
        elif not any(_part_files(folder)):
            # A run stopped during the first write of this configuration: only
            # a temporary file (or nothing) is there, and nothing is lost.
            row = {
                "status": "partial",
                "rows": 0,
                "parts": 0,
                "detail": "stopped before its first chunk was written",
            }
        else:
            row = {
                "status": "stale",
                "rows": None,
                "parts": sum(1 for _ in _part_files(folder)),
                "detail": "a folder no manifest entry or progress record lists",
            }
        configs.append({"id": cid, **row})

    lock_path = out / STATE / "lock"
    lock = None
    if lock_path.exists():
        holder = _read_json(lock_path)
        state = _holder_state(holder, lock_path)
        lock = {**(holder or {}), "state": "unreadable" if holder is None else state}
        lock.pop("token", None)

    counts = {s: 0 for s in ("complete", "partial", "stale", "damaged")}
    for c in configs:
        counts[c["status"]] += 1
    return {
        "dir": str(out),
        "fingerprint": fp,
        "data": data,
        "engine_version": manifest.get("engine_version"),
        "semantics_version": manifest.get("semantics_version"),
        "updated": manifest.get("updated"),
        "manifest_error": manifest_error,
        "lock": lock,
        "counts": counts,
        "configs": configs,
    }


def _status_of_entry(
    entry: Mapping[str, Any], folder: Path, fp: str | None, checksums: bool
) -> dict[str, Any]:
    rows = entry.get("rows")
    try:
        parts = [PartInfo.from_json(p) for p in entry.get("parts", [])]
    except (KeyError, TypeError, ValueError) as exc:
        return {
            "status": "damaged",
            "rows": rows,
            "parts": None,
            "detail": f"malformed manifest entry ({exc})",
        }
    row = {"rows": rows, "parts": len(parts)}
    if fp is not None and entry.get("fingerprint") != fp:
        return {
            **row,
            "status": "stale",
            "detail": "computed on other data (fingerprint "
            f"{entry.get('fingerprint')}, the folder's data is {fp})",
        }
    for p in parts:
        problem = _check_part(folder, p, checksum=checksums)
        if problem is not None:
            return {**row, "status": "damaged", "detail": problem}
    listed = _names(parts)
    extra = sorted(
        f.relative_to(folder).as_posix()
        for f in _part_files(folder)
        if f.relative_to(folder).as_posix() not in listed
    )
    if extra:
        return {
            **row,
            "status": "damaged",
            "detail": f"unlisted part files in {folder}: {', '.join(extra)}",
        }
    return {**row, "status": "complete", "detail": ""}


def _status_of_record(
    record: Mapping[str, Any] | None, folder: Path, fp: str | None, checksums: bool
) -> dict[str, Any]:
    if record is None or not isinstance(record.get("parts"), dict):
        return {
            "status": "damaged",
            "rows": None,
            "parts": None,
            "detail": "unreadable progress record",
        }
    if fp is not None and record.get("fingerprint") != fp:
        return {
            "status": "stale",
            "rows": None,
            "parts": len(record["parts"]),
            "detail": "a partial run on other data",
        }
    intact = []
    problems = []
    for obj in record["parts"].values():
        try:
            part = PartInfo.from_json(obj)
        except (KeyError, TypeError, ValueError):
            problems.append("a malformed chunk record")
            continue
        problem = _check_part(folder, part, checksum=checksums)
        if problem is None:
            intact.append(part)
        else:
            problems.append(problem)
    detail = f"{len(intact)} chunks done"
    if problems:
        detail += f"; {len(problems)} to redo ({problems[0]})"
    return {
        "status": "partial",
        "rows": sum(p.rows for p in intact),
        "parts": len(intact),
        "detail": detail,
    }


# -- file-system helpers ------------------------------------------------------


def _check_id(config_id: str) -> None:
    if not isinstance(config_id, str) or not _SAFE_ID.match(config_id):
        raise ValueError(
            f"configuration id {config_id!r} is not file-system safe: use letters, "
            "digits, '_', '.' and '-', starting with a letter or digit"
        )


def _check_part(folder: Path, part: PartInfo, *, checksum: bool) -> str | None:
    """Why ``part`` is not intact in ``folder``, or None when it is."""
    path = folder / _inside(part)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return f"{path} is missing"
    if size != part.bytes:
        return f"{path} has {size} bytes, {part.bytes} were written"
    if checksum:
        with open(path, "rb") as f:
            actual = _file_checksum(f)
        if actual != part.checksum:
            return f"{path} does not match its checksum"
    return None


def _inside(part: PartInfo) -> str:
    """A part's path inside its configuration's folder (labels/config=<id>/...)."""
    return PurePosixPath(*PurePosixPath(part.file).parts[2:]).as_posix()


def _names(parts: Iterable[PartInfo]) -> set[str]:
    return {_inside(p) for p in parts}


def _part_files(folder: Path) -> Iterator[Path]:
    if folder.is_dir():
        for child in folder.iterdir():
            if _PART.match(child.name):
                yield child
            elif child.is_dir() and _SUBDIR.match(child.name):
                yield from _part_files(child)


def _config_folders(labels: Path) -> Iterator[str]:
    if labels.is_dir():
        for child in labels.iterdir():
            if child.is_dir() and child.name.startswith("config="):
                yield child.name[len("config=") :]


def _file_checksum(f: Any) -> str:
    digest = hashlib.file_digest(f, lambda: hashlib.blake2b(digest_size=16))
    return "blake2b:" + digest.hexdigest()


def _mkdirs(path: Path) -> None:
    """Create ``path`` and missing parents, making each new entry durable."""
    missing = []
    p = path
    while not p.exists():
        missing.append(p)
        p = p.parent
    for p in reversed(missing):
        with contextlib.suppress(FileExistsError):
            p.mkdir()
        _fsync_dir(p.parent)


def _fsync_dir(path: Path) -> None:
    if os.name == "nt":  # pragma: no cover - directories cannot be fsynced there
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
            raise
    finally:
        os.close(fd)


def _write_json(path: Path, obj: Any) -> None:
    """Replace ``path`` with ``obj`` as JSON: temp file, fsync, rename, fsync dir."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    text = json.dumps(obj, indent=2, default=str) + "\n"
    try:
        with open(tmp, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        _unlink_quiet(tmp)
        if isinstance(exc, OSError):
            raise OutputError(f"cannot write {path}: {exc}") from exc
        raise
    _fsync_dir(path.parent)


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        obj = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return obj if isinstance(obj, dict) else None


def _unlink_quiet(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


# -- lock helpers -------------------------------------------------------------


def _boot_id() -> str | None:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return None


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """State letter and start time (ticks after boot) of ``pid``, on Linux."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
        rest = text[text.rindex(")") + 2 :].split()
        return rest[0], int(rest[19])
    except (OSError, ValueError, IndexError):
        return None


def _new_lock_info() -> dict[str, Any]:
    info: dict[str, Any] = {
        "pid": os.getpid(),
        "host": _HOST,
        "started": _now(),
        "token": uuid.uuid4().hex,
    }
    boot = _boot_id()
    stat = _proc_stat(os.getpid())
    if boot is not None:
        info["boot_id"] = boot
    if stat is not None:
        info["proc_start"] = stat[1]
    return info


def _holder_state(holder: Mapping[str, Any] | None, lock_path: Path) -> str:
    """``live``, ``dead``, ``foreign`` (another host) or ``gone`` (no lock)."""
    if holder is None:
        try:
            age = time.time() - lock_path.stat().st_mtime
        except FileNotFoundError:
            return "gone"
        # The lock is written right after it is created; an empty or garbled
        # lock that stays so was left by a process that died in between.
        return "dead" if age > _STALE_UNREADABLE_LOCK_S else "live"
    if holder.get("host") != _HOST:
        return "foreign"
    boot = _boot_id()
    if boot is not None and holder.get("boot_id") not in (None, boot):
        return "dead"
    pid = holder.get("pid")
    if not isinstance(pid, int) or pid <= 0:
        return "dead"
    if os.name == "nt":  # pragma: no cover - os.kill(pid, 0) would end it there
        return "live"
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return "dead"
    except PermissionError:
        pass
    stat = _proc_stat(pid)
    if stat is not None:
        if stat[0] == "Z":
            return "dead"
        start = holder.get("proc_start")
        if start is not None and start != stat[1]:
            return "dead"
    return "live"


def _describe_holder(holder: Mapping[str, Any] | None) -> str:
    if not holder:
        return "an unknown process (the lock file is unreadable)"
    return (
        f"pid {holder.get('pid')} on {holder.get('host')}, "
        f"started {holder.get('started')}"
    )
