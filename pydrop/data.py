"""Fashion-MNIST: find, download (verified, atomic), parse and batch.

The data directory is resolved as ``root=`` > ``$PYDROP_DATA`` >
``~/.cache/pydrop/fashion-mnist``; relative paths are taken against the current
working directory. Missing files are downloaded there when ``download=True``,
trying each mirror in turn; every file, downloaded or already present, must match
the SHA-256 recorded below before it is parsed.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import tempfile
import urllib.error
import urllib.request
import zlib
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np

from ._ops import _check_min_int, take_rows

__all__ = ["FashionMNIST", "DataLoader", "resolve_root", "read_idx", "download_file"]

# The four canonical gzip files and their SHA-256 (identical to the files the
# dataset's authors publish).
SHA256: dict[str, str] = {
    "train-images-idx3-ubyte.gz": "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",  # noqa: E501
    "train-labels-idx1-ubyte.gz": "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",  # noqa: E501
    "t10k-images-idx3-ubyte.gz": "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",  # noqa: E501
    "t10k-labels-idx1-ubyte.gz": "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",  # noqa: E501
}

# Public mirrors carrying the files under their canonical names, tried in order.
MIRRORS: tuple[str, ...] = (
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    "https://storage.googleapis.com/tensorflow/tf-keras-datasets/",
    "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
)

TEXT_LABELS = (
    "t-shirt",
    "trouser",
    "pullover",
    "dress",
    "coat",
    "sandal",
    "shirt",
    "sneaker",
    "bag",
    "ankle boot",
)

_IDX_IMAGES = 0x00000803  # unsigned byte, 3 dimensions
_IDX_LABELS = 0x00000801  # unsigned byte, 1 dimension
_SPLITS = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
_TIMEOUT = 30.0
_CHUNK = 1 << 16


def resolve_root(root: str | os.PathLike[str] | None = None) -> Path:
    """The data directory: ``root`` > ``$PYDROP_DATA`` > ``~/.cache/pydrop/fashion-mnist``."""
    if root is not None:
        chosen = Path(root)
    elif os.environ.get("PYDROP_DATA"):
        chosen = Path(os.environ["PYDROP_DATA"])
    else:
        chosen = Path("~/.cache/pydrop/fashion-mnist")
    return Path(os.path.abspath(chosen.expanduser()))


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def download_file(
    name: str, dest_dir: Path, sha256: str, mirrors: Sequence[str], timeout: float = _TIMEOUT
) -> Path:
    """Fetch ``name`` from the first mirror that serves bytes with the right SHA-256.

    The bytes go to a temporary file in ``dest_dir`` that is renamed onto the final
    name only after the checksum matches, so an interrupted or bad download never
    leaves a partial file under the final name. Raises OSError listing every
    mirror's failure when none succeeds.
    """
    dest_dir.mkdir(parents=True, exist_ok=True)
    final = dest_dir / name
    failures: list[str] = []
    for mirror in mirrors:
        url = mirror.rstrip("/") + "/" + name
        fd, tmp_name = tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=dest_dir)
        tmp = Path(tmp_name)
        try:
            h = hashlib.sha256()
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
                while chunk := resp.read(_CHUNK):
                    h.update(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            got = h.hexdigest()
            if got != sha256:
                failures.append(f"{url}: SHA-256 mismatch (expected {sha256}, got {got})")
                continue
            os.replace(tmp, final)
            return final
        except (OSError, urllib.error.URLError, ValueError) as e:
            failures.append(f"{url}: {e}")
        finally:
            tmp.unlink(missing_ok=True)
    raise OSError("could not download " + name + ":\n  " + "\n  ".join(failures))


def read_idx(path: Path, sha256: str | None, expect_magic: int) -> np.ndarray:
    """Parse a gzip'd IDX file of unsigned bytes after checking its SHA-256.

    Raises ValueError naming the file for a bad checksum, bad gzip data, a wrong
    magic number or a payload that is shorter or longer than the header says.
    """
    packed = path.read_bytes()
    if sha256 is not None:
        got = hashlib.sha256(packed).hexdigest()
        if got != sha256:
            raise ValueError(
                f"{path}: bad checksum: SHA-256 is {got}, expected {sha256}; the file is "
                "corrupt or not the original, delete it to download it again"
            )
    # zlib in one call is ~3x faster than gzip.open(...).read() on these files.
    dec = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        raw = dec.decompress(packed)
    except zlib.error as e:
        raise ValueError(f"{path}: bad gzip data ({e})") from None
    if not dec.eof:
        raise ValueError(f"{path}: bad gzip data (the compressed stream ends early)")
    if len(raw) < 4:
        raise ValueError(f"{path}: truncated: {len(raw)} bytes, too short for an IDX header")
    magic = int.from_bytes(raw[:4], "big")
    if magic != expect_magic:
        raise ValueError(
            f"{path}: wrong IDX magic number 0x{magic:08x}, expected 0x{expect_magic:08x}"
        )
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{path}: truncated: the IDX header needs {header} bytes")
    dims = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    need = int(np.prod(dims, dtype=np.int64))
    have = len(raw) - header
    if have < need:
        raise ValueError(
            f"{path}: truncated payload: header says {dims} = {need} bytes, found {have}"
        )
    if have > need:
        raise ValueError(f"{path}: {have - need} unexpected bytes after the {dims} payload")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def _load_split(
    root: Path, split: str, sha: Mapping[str, str | None]
) -> tuple[np.ndarray, np.ndarray]:
    img_name, lab_name = _SPLITS[split]
    images = read_idx(root / img_name, sha.get(img_name), _IDX_IMAGES)
    labels = read_idx(root / lab_name, sha.get(lab_name), _IDX_LABELS)
    if images.shape[1:] != (28, 28):
        raise ValueError(f"{root / img_name}: images are {images.shape[1:]}, expected (28, 28)")
    if images.shape[0] != labels.shape[0]:
        raise ValueError(
            f"{root / img_name}: {images.shape[0]} images but {root / lab_name} has "
            f"{labels.shape[0]} labels; the counts must match"
        )
    if labels.size and int(labels.max()) > 9:
        bad = int(np.argmax(labels > 9))
        raise ValueError(
            f"{root / lab_name}: label {int(labels[bad])} at index {bad} is outside 0..9"
        )
    X = np.empty((images.shape[0], 784), dtype=np.float32)
    np.multiply(images.reshape(-1, 784), np.float32(1.0 / 255.0), out=X)
    y = labels.astype(np.int64)
    X.setflags(write=False)
    y.setflags(write=False)
    return X, y


def _gather_rows(X: np.ndarray, idx: np.ndarray, out: np.ndarray) -> None:
    """out[:] = X[idx]: the threaded C gather for the dense float32 (n, 784) arrays
    the data module holds, np.take for any other array a caller hands the loader."""
    if X.dtype == np.float32 and X.ndim == 2 and X.flags.c_contiguous and X.flags.aligned:
        take_rows(X, idx, out=out)
    else:
        np.take(X, idx, axis=0, out=out)


class DataLoader:
    """Batches of ``(X float32 (b, 784), y int64 (b,))`` over one split.

    With ``shuffle`` the order is a permutation drawn from ``(seed, epoch)``;
    ``epoch`` advances after each full pass and may be set to resume a run.
    With ``reuse_buffers`` (what the Trainer uses) shuffled batches are gathered
    into two buffers that are overwritten by the next batch, so a pass allocates
    no batch-sized arrays; without it every batch is a fresh array. Unshuffled
    batches are read-only views of the data either way.
    """

    def __init__(
        self,
        X: np.ndarray,
        y: np.ndarray,
        batch_size: int,
        *,
        shuffle: bool,
        seed: int = 0,
        reuse_buffers: bool = False,
    ) -> None:
        self.X, self.y = X, y
        self.batch_size = _check_min_int("batch_size", batch_size, 1)
        self.shuffle = shuffle
        self.seed = _check_min_int("seed", seed, 0)
        self.epoch = 0
        self.reuse_buffers = reuse_buffers
        self._xbuf: np.ndarray | None = None
        self._ybuf: np.ndarray | None = None

    def __len__(self) -> int:
        return -(-len(self.y) // self.batch_size)

    @property
    def num_examples(self) -> int:
        return len(self.y)

    def order(self, epoch: int) -> np.ndarray:
        """The example order of pass ``epoch`` (a pure function of seed and epoch)."""
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, epoch]))
        return rng.permutation(len(self.y))

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        n, bs = len(self.y), self.batch_size
        if not self.shuffle:
            for s in range(0, n, bs):
                yield self.X[s : s + bs], self.y[s : s + bs]
            return
        idx = self.order(self.epoch)
        if self.reuse_buffers and (self._xbuf is None or len(self._xbuf) < min(bs, n)):
            self._xbuf = np.empty((min(bs, n), self.X.shape[1]), dtype=self.X.dtype)
            self._ybuf = np.empty(min(bs, n), dtype=self.y.dtype)
        for s in range(0, n, bs):
            sel = idx[s : s + bs]
            if self.reuse_buffers:
                assert self._xbuf is not None and self._ybuf is not None
                xb, yb = self._xbuf, self._ybuf
                if len(sel) < len(xb):
                    xb, yb = xb[: len(sel)], yb[: len(sel)]
                _gather_rows(self.X, sel, xb)
                np.take(self.y, sel, out=yb)
                yield xb, yb
            else:
                yield self.X[sel], self.y[sel]
        self.epoch += 1


class FashionMNIST:
    """The Fashion-MNIST data module, shaped like d2l's.

    ``FashionMNIST(batch_size=256, root=None, download=True, seed=None)`` loads the
    60,000 training and 10,000 test images as float32 in [0, 1], shape (n, 784).
    The shuffling seed is an integer >= 0; ``seed=None`` draws it from OS entropy
    (see ``self.seed``). ``num_train``/``num_val`` (integers >= 0, None for all)
    keep only the first examples of each split (quick runs and tests). ``mirrors``
    and ``sha256`` replace the built-in mirror list and checksums, for a private
    mirror or a test server.
    """

    def __init__(
        self,
        batch_size: int = 256,
        root: str | os.PathLike[str] | None = None,
        download: bool = True,
        seed: int | None = None,
        *,
        num_train: int | None = None,
        num_val: int | None = None,
        mirrors: Sequence[str] | None = None,
        sha256: Mapping[str, str | None] | None = None,
    ) -> None:
        self.batch_size = _check_min_int("batch_size", batch_size, 1)
        num_train = None if num_train is None else _check_min_int("num_train", num_train, 0)
        num_val = None if num_val is None else _check_min_int("num_val", num_val, 0)
        self.root = resolve_root(root)
        # seed=None: 63 bits of OS entropy, kept in self.seed so a run can be repeated.
        self.seed = secrets.randbits(63) if seed is None else _check_min_int("seed", seed, 0)
        self.mirrors = tuple(MIRRORS if mirrors is None else mirrors)
        self.sha256 = dict(SHA256 if sha256 is None else sha256)
        self._ensure_files(download)
        self.X_train, self.y_train = _load_split(self.root, "train", self.sha256)
        self.X_val, self.y_val = _load_split(self.root, "test", self.sha256)
        if num_train is not None:
            self.X_train, self.y_train = self.X_train[:num_train], self.y_train[:num_train]
        if num_val is not None:
            self.X_val, self.y_val = self.X_val[:num_val], self.y_val[:num_val]
        self._train_loader = DataLoader(
            self.X_train, self.y_train, self.batch_size, shuffle=True, seed=self.seed
        )

    def _ensure_files(self, download: bool) -> None:
        missing = [n for n in SHA256 if not (self.root / n).is_file()]
        if not missing:
            return
        errors: list[str] = []
        if download:
            for name in missing:
                try:
                    download_file(name, self.root, self.sha256[name] or "", self.mirrors)
                except OSError as e:
                    errors.append(str(e))
            if not errors:
                return
        why = "download=False" if not download else "downloading failed:\n" + "\n".join(errors)
        raise FileNotFoundError(
            f"Fashion-MNIST is not in {self.root} (missing: {', '.join(missing)}) and "
            f"{why}\nhelp: put the four files {', '.join(SHA256)} in that directory, or set "
            "PYDROP_DATA (or pass root= / --data-dir) to a directory that has them."
        )

    @property
    def num_train(self) -> int:
        return len(self.y_train)

    @property
    def num_val(self) -> int:
        return len(self.y_val)

    def train_dataloader(self) -> DataLoader:
        """The shuffled training batches; each full pass draws a new order."""
        return self._train_loader

    def val_dataloader(self) -> DataLoader:
        """The test split in file order."""
        return DataLoader(self.X_val, self.y_val, self.batch_size, shuffle=False)

    def text_labels(self, indices: Sequence[int] | np.ndarray) -> list[str]:
        """Class names for integer labels."""
        return [TEXT_LABELS[int(i)] for i in indices]

    def __repr__(self) -> str:
        return (
            f"FashionMNIST(batch_size={self.batch_size}, root={str(self.root)!r}, "
            f"seed={self.seed}, num_train={self.num_train}, num_val={self.num_val})"
        )
