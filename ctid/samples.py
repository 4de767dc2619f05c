"""The sample configuration shipped inside the package, and `ctid init DIR`.

One source of truth: the repository's `config/` directory (the copy you edit in a checkout). The package
reaches it through `ctid/sample_config`, a symlink to `../config`; a wheel built from the tree (`pip install
.`) holds real copies of those files there (package data), so an installed ctid finds its samples with
importlib.resources wherever it runs, never relative to a source tree that is not there.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from functools import cache
from importlib.resources import as_file, files
from importlib.resources.abc import Traversable
from pathlib import Path

SAMPLE_FILES = (
    "ctid.yaml",
    "routing.yaml",
    "asterisk/extensions_ctid.conf",
    "asterisk/manager.conf",
)
"""The shipped samples, relative to the sample directory (and to the directory `ctid init` writes)."""


def _root() -> Traversable:
    return files("ctid").joinpath("sample_config")


@cache
def sample_dir() -> Path:
    """A directory on disk holding the samples: the installed package's own, or (for a package imported
    from a zip) a copy made once per process, so relative paths such as `routing: routing.yaml` resolve."""
    root = _root()
    if isinstance(root, Path):
        return root
    copy = Path(tempfile.mkdtemp(prefix="ctid-samples-"))
    for name in SAMPLE_FILES:
        with as_file(root.joinpath(name)) as source:
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, copy / name)
    return copy


def sample_path(name: str) -> Path:
    """The path of one shipped sample, e.g. `sample_path("routing.yaml")`."""
    if name not in SAMPLE_FILES:
        raise ValueError(f"no sample named {name!r} (one of: {', '.join(SAMPLE_FILES)})")
    return sample_dir() / name


@dataclass(frozen=True, slots=True)
class InitResult:
    """What `ctid init` did: the files written, and those left alone because they exist."""

    written: tuple[Path, ...]
    existing: tuple[Path, ...]


def write_samples(dest: Path, *, force: bool = False) -> InitResult:
    """Copy every sample into `dest`; existing files are kept (and listed) unless `force`.

    Nothing is written when any file exists and `force` is off, so a directory is never left half
    initialised. OSError (an unwritable directory) is the caller's to report.
    """
    targets = [(name, dest / name) for name in SAMPLE_FILES]
    existing = tuple(path for _, path in targets if path.exists())
    if existing and not force:
        return InitResult((), existing)
    root = _root()
    for name, path in targets:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(root.joinpath(name).read_bytes())
    return InitResult(tuple(path for _, path in targets), ())
