"""The ctypes layer: constants agree with the committed header, version reporting, library lookup."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import webpubsub_client
from webpubsub_client import _native as n
from webpubsub_client._loader import candidate_paths

HEADER = Path(__file__).resolve().parents[3] / "include" / "webpubsub_client.h"


def header_defines():
    if not HEADER.is_file():
        pytest.skip("include/webpubsub_client.h not present")
    text = HEADER.read_text()
    values = {}
    for name, value in re.findall(r"#define\s+(WPS_[A-Z0-9_]+)\s+\(?\s*([0-9xXa-fA-F]+)[uU]?\s*\)?", text):
        values[name] = int(value, 0)
    for name, value in re.findall(r"\b(WPS_[A-Z0-9_]+)\s*=\s*(-?[0-9xXa-fA-F]+)", text):
        values.setdefault(name, int(value, 0))
    return values


def test_constants_match_header():
    defines = header_defines()
    mirrored = {k: v for k, v in vars(n).items() if k.startswith("WPS_") and isinstance(v, int) and k != "WPS_ERR_PROVIDER"}
    missing = [k for k in mirrored if k not in defines]
    assert not missing, f"not in the header: {missing}"
    wrong = {k: (v, defines[k]) for k, v in mirrored.items() if defines[k] != v}
    assert not wrong, wrong


def test_event_struct_matches_header_field_order():
    if not HEADER.is_file():
        pytest.skip("no header")
    text = HEADER.read_text()
    body = re.search(r"typedef struct wps_event\s*\{(.*?)\}\s*wps_event;", text, re.S)
    if body is None:
        body = re.search(r"struct wps_event\s*\{(.*?)\};", text, re.S)
    assert body, "wps_event not found in the header"
    code = re.sub(r"/\*.*?\*/|//[^\n]*", "", body.group(1), flags=re.S)
    fields = re.findall(r"([A-Za-z_][A-Za-z0-9_]*)\s*;", code)
    ours = [f[0] for f in n.wps_event._fields_]
    assert fields[: len(ours)] == ours


def test_signatures_exist_in_library():
    lib = n.get_lib()
    assert not [m for m in lib.missing], f"optional symbols missing from the library: {lib.missing}"


def test_version_command():
    out = subprocess.run(
        [sys.executable, "-m", "webpubsub_client", "--version"], capture_output=True, text=True, check=True
    ).stdout
    assert f"webpubsub_client {webpubsub_client.__version__}" in out
    assert f"libwebpubsub_client {webpubsub_client.native_version()}" in out
    assert re.search(r"\d+\.\d+\.\d+", webpubsub_client.native_version())


def test_library_path_env_wins(tmp_path):
    os.environ["WPS_LIBRARY_PATH"] = str(tmp_path)
    try:
        assert candidate_paths()[0] == tmp_path / "libwebpubsub_client.so"
    finally:
        del os.environ["WPS_LIBRARY_PATH"]


def test_missing_library_path_is_a_clear_error(tmp_path):
    code = "import webpubsub_client; webpubsub_client.native_version()"
    env = dict(os.environ, WPS_LIBRARY_PATH=str(tmp_path / "nope.so"))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert proc.returncode != 0
    assert "WPS_LIBRARY_PATH" in proc.stderr
