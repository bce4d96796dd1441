"""Build step that puts the native library inside the package.

Where the library comes from, in order:
1. ``WPS_LIBRARY_PATH`` (a file, or a directory holding it): copied as is.
2. ``native/``, the Rust crate an sdist carries (``cargo package`` of webpubsub-client):
   ``cargo build --release`` is run there (target directory ``CARGO_TARGET_DIR`` or
   ``native/target``).
3. The Rust workspace this folder belongs to (``../..``): ``cargo build --release -p
   webpubsub-client`` is run there (a no-op when up to date; skipped when ``WPS_SKIP_CARGO=1``
   or cargo is missing) and ``target/release`` is used.
The copy inside the package is stripped of debug information (``strip --strip-unneeded``)
unless ``WPS_NO_STRIP=1``. The wheel is tagged ``py3-none-<platform>``: it has no
CPython-ABI dependency (ctypes), but it does carry a platform binary;
``scripts/build-wheel.sh`` turns it into a manylinux wheel with ``auditwheel repair``.

``sdist`` puts the crate into ``native/`` (running ``cargo package``), so that an sdist builds
with nothing but cargo.
"""

import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.command.sdist import sdist
from setuptools.dist import Distribution

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "webpubsub_client"))
from _loader import find_repo_root, library_file_name  # noqa: E402

sys.path.pop(0)

NATIVE = HERE / "native"
CRATE = "webpubsub-client"


def _run(cmd, cwd: Path) -> None:
    print("running", " ".join(str(c) for c in cmd), "in", cwd, flush=True)
    result = subprocess.run(cmd, cwd=cwd)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(str(c) for c in cmd)} failed with exit code {result.returncode}")


def _locate_library() -> Path:
    name = library_file_name()
    env = os.environ.get("WPS_LIBRARY_PATH")
    if env:
        path = Path(env)
        path = path / name if path.is_dir() else path
        if not path.is_file():
            raise SystemExit(f"WPS_LIBRARY_PATH={env!r}: {path} is not a file")
        return path
    if (NATIVE / "Cargo.toml").is_file():
        if not shutil.which("cargo"):
            raise SystemExit("building webpubsub_client from source needs cargo (https://rustup.rs)")
        target = Path(os.environ.get("CARGO_TARGET_DIR") or NATIVE / "target")
        _run(["cargo", "build", "--release", "--locked", "--lib", "--target-dir", str(target)], NATIVE)
        return target / "release" / name
    root = find_repo_root(HERE)
    if root is None:
        raise SystemExit("native library not found: set WPS_LIBRARY_PATH (no Rust workspace around this package)")
    built = root / "target" / "release" / name
    if os.environ.get("WPS_SKIP_CARGO") != "1" and shutil.which("cargo"):
        _run(["cargo", "build", "--release", "-p", CRATE], root)
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
        if os.environ.get("WPS_NO_STRIP") != "1" and sys.platform.startswith("linux") and shutil.which("strip"):
            subprocess.run(["strip", "--strip-unneeded", str(target)], check=True)
        print(f"copied {source} -> {target}", flush=True)


class SdistWithCrate(sdist):
    """``sdist`` that adds the Rust crate (``cargo package``, extracted) as ``native/``."""

    def make_release_tree(self, base_dir, files) -> None:
        super().make_release_tree(base_dir, files)
        dest = Path(base_dir) / "native"
        if (NATIVE / "Cargo.toml").is_file():  # an sdist made from an sdist
            shutil.copytree(NATIVE, dest, ignore=shutil.ignore_patterns("target"), dirs_exist_ok=True)
            return
        root = find_repo_root(HERE)
        if root is None:
            raise SystemExit("sdist needs the Rust workspace around this package (or native/)")
        with tempfile.TemporaryDirectory(prefix="wps-sdist-") as tmp:
            # --allow-dirty: the sdist is built from the working tree as it is, like the Python files.
            _run(["cargo", "package", "--no-verify", "--allow-dirty", "-p", CRATE,
                  "--target-dir", tmp], root)
            crates = list((Path(tmp) / "package").glob(f"{CRATE}-*.crate"))
            if len(crates) != 1:
                raise SystemExit(f"cargo package made {crates}, expected one {CRATE} crate")
            with tarfile.open(crates[0]) as tar:
                tar.extractall(tmp)
            shutil.copytree(Path(tmp) / crates[0].name[: -len(".crate")], dest)


class BinaryDistribution(Distribution):
    """Marks the distribution as platform specific (it ships a shared library)."""

    def has_ext_modules(self) -> bool:
        return True


cmdclass = {"build_py": BuildPyWithNative, "sdist": SdistWithCrate}

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
    return tempfile.mkdtemp(prefix="webpubsub-client-build-")


_BASE = _build_base()
os.makedirs(_BASE, exist_ok=True)
setup(
    cmdclass=cmdclass,
    distclass=BinaryDistribution,
    options={"build": {"build_base": _BASE}, "egg_info": {"egg_base": _BASE}},
)
