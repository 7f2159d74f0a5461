"""Checkpoints: model (+ optimizer, + trainer) state in one ``.npz``, no pickle.

Layout: arrays ``model/<name>`` and ``optim/<name>``, plus ``__meta__``, a UTF-8
JSON document stored as a uint8 array:

    {"format": "pydrop-checkpoint", "version": 1, "model": "DropoutMLP",
     "hparams": {...}, "trainer": {...} | null, "pydrop": "<version>",
     "sha256": "<hex>"}

``sha256`` covers every array (name, dtype, shape, bytes, in name order) and the
JSON without the ``sha256`` field, so any flipped byte is detected. Files are
written to a temporary name in the target directory, fsync'd, then renamed, so a
crash never leaves a half-written checkpoint under the final name. Loading uses
``allow_pickle=False``; every failure is a ValueError naming the file.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ._version import __version__
from .models import MODELS, Classifier

__all__ = ["FORMAT_VERSION", "Checkpoint", "save_checkpoint", "load_checkpoint", "load_model"]

FORMAT = "pydrop-checkpoint"
FORMAT_VERSION = 1
_META = "__meta__"


@dataclass
class Checkpoint:
    path: Path
    meta: dict[str, Any]
    model_state: dict[str, np.ndarray]
    optim_state: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def hparams(self) -> dict[str, Any]:
        return self.meta["hparams"]

    @property
    def trainer(self) -> dict[str, Any] | None:
        return self.meta.get("trainer")

    def build_model(self) -> Classifier:
        """A new model of the saved class and hyper-parameters, with the saved weights;
        ValueError naming the file if they do not make one."""
        name = self.meta["model"]
        cls = {c.__name__: c for c in MODELS.values()}.get(name)
        if cls is None:
            raise ValueError(f"{self.path}: unknown model class {name!r}")
        try:
            model = cls(**self.hparams)
            model.load_state_dict(self.model_state)
        except (TypeError, ValueError, KeyError) as e:
            raise in_file(self.path, e) from None
        return model


def _digest(arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> str:
    h = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(f"{name}\0{a.dtype.str}\0{a.shape}\0".encode())
        h.update(a.tobytes())
    body = {k: v for k, v in meta.items() if k != "sha256"}
    h.update(json.dumps(body, sort_keys=True).encode())
    return h.hexdigest()


def save_checkpoint(
    path: str | os.PathLike[str],
    model: Classifier,
    *,
    optimizer: Any = None,
    trainer: dict[str, Any] | None = None,
) -> Path:
    """Write model (and optionally optimizer and trainer) state atomically to ``path``."""
    path = Path(path)
    arrays: dict[str, np.ndarray] = {f"model/{k}": v for k, v in model.state_dict().items()}
    if optimizer is not None:
        arrays.update({f"optim/{k}": v for k, v in optimizer.state_dict().items()})
    meta: dict[str, Any] = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "model": type(model).__name__,
        "hparams": getattr(model, "hparams", {}),
        "trainer": trainer,
        "pydrop": __version__,
    }
    meta["sha256"] = _digest(arrays, meta)
    blob = np.frombuffer(json.dumps(meta, sort_keys=True).encode(), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **{**arrays, _META: blob})  # type: ignore[arg-type]
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return path


def in_file(path: str | os.PathLike[str], e: Exception) -> ValueError:
    """A ValueError for what e found wrong with the checkpoint at path, naming it."""
    return ValueError(f"{path}: {e.args[0] if e.args else e}")  # (KeyError's str() quotes)


def load_checkpoint(path: str | os.PathLike[str]) -> Checkpoint:
    """Read and verify a checkpoint; ValueError naming the file if it is not valid."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except FileNotFoundError:
        raise
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as e:
        raise ValueError(f"{path}: not a readable checkpoint ({type(e).__name__}: {e})") from None
    blob = arrays.pop(_META, None)
    if blob is None or blob.dtype != np.uint8 or blob.ndim != 1:
        raise ValueError(f"{path}: not a pydrop checkpoint (no {_META} record)")
    try:
        meta = json.loads(blob.tobytes().decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: corrupt checkpoint metadata ({e})") from None
    if not isinstance(meta, dict):
        raise ValueError(f"{path}: not a pydrop checkpoint ({_META} is not a JSON object)")
    if meta.get("format") != FORMAT:
        raise ValueError(f"{path}: not a pydrop checkpoint (format {meta.get('format')!r})")
    if meta.get("version") != FORMAT_VERSION:
        raise ValueError(
            f"{path}: checkpoint format version {meta.get('version')!r}; this pydrop reads "
            f"version {FORMAT_VERSION}"
        )
    if meta.get("sha256") != _digest(arrays, meta):
        raise ValueError(f"{path}: checksum mismatch; the checkpoint is corrupt")
    trainer = meta.get("trainer")
    if not (
        isinstance(meta.get("model"), str)
        and isinstance(meta.get("hparams"), dict)
        and (trainer is None or isinstance(trainer, dict))
    ):
        raise ValueError(
            f"{path}: corrupt checkpoint metadata (model, hparams or trainer missing or of "
            "the wrong type)"
        )
    model_state = {k[6:]: v for k, v in arrays.items() if k.startswith("model/")}
    optim_state = {k[6:]: v for k, v in arrays.items() if k.startswith("optim/")}
    return Checkpoint(path, meta, model_state, optim_state)


def load_model(path: str | os.PathLike[str]) -> Classifier:
    """The model saved at ``path`` (class, hyper-parameters and weights)."""
    return load_checkpoint(path).build_model()
