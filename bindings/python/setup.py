"""Build step that puts the native library inside the package.

Where the library comes from, in order:
1. ``WPS_LIBRARY_PATH`` (a file or a directory holding it): copied as is.
2. The Rust workspace this folder belongs to (``../..``): ``cargo build --release -p
   webpubsub-client`` is run there (a no-op when up to date; skipped when ``WPS_SKIP_CARGO=1``
   or cargo is missing) and ``target/release`` is used.
The wheel is tagged ``py3-none-<platform>``: it has no CPython-ABI dependency (ctypes), but
it does carry a platform binary.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.dist import Distribution

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "webpubsub_client"))
from _loader import find_repo_root, library_file_name  # noqa: E402

sys.path.pop(0)


def _locate_library() -> Path:
    name = library_file_name()
    env = os.environ.get("WPS_LIBRARY_PATH")
    if env:
        path = Path(env)
        path = path / name if path.is_dir() else path
        if not path.is_file():
            raise SystemExit(f"WPS_LIBRARY_PATH={env!r}: {path} is not a file")
        return path
    root = find_repo_root(HERE)
    if root is None:
        raise SystemExit("native library not found: set WPS_LIBRARY_PATH (no Rust workspace around this package)")
    built = root / "target" / "release" / name
    if os.environ.get("WPS_SKIP_CARGO") != "1" and shutil.which("cargo"):
        cmd = ["cargo", "build", "--release", "-p", "webpubsub-client"]
        print("running", " ".join(cmd), "in", root, flush=True)
        result = subprocess.run(cmd, cwd=root)
        if result.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed with exit code {result.returncode}")
    if not built.is_file():
        raise SystemExit(f"native library not found at {built}; build it with cargo or set WPS_LIBRARY_PATH")
    return built


class BuildPyWithNative(build_py):
    """``build_py`` that also copies the native library to ``webpubsub_client/_lib/``."""

    def run(self) -> None:
        super().run()
        source = _locate_library()
        target_dir = Path(self.build_lib) / "webpubsub_client" / "_lib"
        target_dir.mkdir(parents=True, exist_ok=True)
        target = target_dir / library_file_name()
        shutil.copy2(source, target)
        print(f"copied {source} -> {target}", flush=True)


class BinaryDistribution(Distribution):
    """Marks the distribution as platform specific (it ships a shared library)."""

    def has_ext_modules(self) -> bool:
        return True


cmdclass = {"build_py": BuildPyWithNative}

try:
    from setuptools.command.bdist_wheel import bdist_wheel as _bdist_wheel
except ImportError:  # older setuptools
    from wheel.bdist_wheel import bdist_wheel as _bdist_wheel  # type: ignore


class BdistWheelPy3NonePlatform(_bdist_wheel):
    """Tag wheels ``py3-none-<platform>``."""

    def finalize_options(self) -> None:
        super().finalize_options()
        self.root_is_pure = False

    def get_tag(self):
        _, _, plat = super().get_tag()
        return "py3", "none", plat


cmdclass["bdist_wheel"] = BdistWheelPy3NonePlatform


def _build_base() -> str:
    """Intermediate build files go to the repository's ignored ``build/`` (or a temp dir), never
    into this source folder."""
    root = find_repo_root(HERE)
    if root is not None:
        return str(root / "build" / "python-setuptools")
    import tempfile

    return tempfile.mkdtemp(prefix="webpubsub-client-build-")


_BASE = _build_base()
os.makedirs(_BASE, exist_ok=True)
setup(
    cmdclass=cmdclass,
    distclass=BinaryDistribution,
    options={"build": {"build_base": _BASE}, "egg_info": {"egg_base": _BASE}},
)
