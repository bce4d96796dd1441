"""Finding and loading the native library ``libwebpubsub_client``.

Lookup order: the ``WPS_LIBRARY_PATH`` environment variable (a file, or a directory holding
the library), the copy installed inside this package (``webpubsub_client/_lib/``), then the
``target/release`` and ``target/debug`` folders of the source checkout this package sits in.
"""

import ctypes
import os
import sys
from pathlib import Path
from typing import List, Optional

PACKAGE_DIR = Path(__file__).resolve().parent


def library_file_name() -> str:
    """The platform's file name of the shared library."""
    if sys.platform == "win32":
        return "webpubsub_client.dll"
    if sys.platform == "darwin":
        return "libwebpubsub_client.dylib"
    return "libwebpubsub_client.so"


def find_repo_root(start: Path) -> Optional[Path]:
    """The nearest ancestor of ``start`` holding the Rust workspace (``Cargo.toml`` naming the crate)."""
    for parent in [start, *start.parents]:
        manifest = parent / "Cargo.toml"
        if manifest.is_file():
            try:
                text = manifest.read_text(encoding="utf-8")
            except OSError:
                continue
            if 'name = "webpubsub-client"' in text:
                return parent
    return None


def candidate_paths() -> List[Path]:
    """Every place the library is looked for, in order."""
    name = library_file_name()
    out: List[Path] = []
    env = os.environ.get("WPS_LIBRARY_PATH")
    if env:
        p = Path(env)
        out.append(p / name if p.is_dir() else p)
    out.append(PACKAGE_DIR / "_lib" / name)
    root = find_repo_root(PACKAGE_DIR)
    if root is not None:
        out.append(root / "target" / "release" / name)
        out.append(root / "target" / "debug" / name)
    return out


def load_library() -> ctypes.CDLL:
    """Load the first library found; raise ``OSError`` naming every place tried otherwise.

    ``ctypes.CDLL`` (not ``PyDLL``) releases the GIL during every foreign call, so blocking calls
    never freeze other Python threads or the library's callback threads. Only the functions that
    never block are also called through a ``PyDLL`` view of the same library (``_native``).
    """
    env = os.environ.get("WPS_LIBRARY_PATH")
    if env:
        path = candidate_paths()[0]
        if not path.is_file():
            raise OSError(f"WPS_LIBRARY_PATH={env!r}: {path} is not a file")
        return ctypes.CDLL(str(path))
    tried = []
    for path in candidate_paths():
        if path.is_file():
            return ctypes.CDLL(str(path))
        tried.append(str(path))
    raise OSError(
        "libwebpubsub_client not found; set WPS_LIBRARY_PATH or build it with "
        "`cargo build --release -p webpubsub-client`. Tried: " + ", ".join(tried)
    )
