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
    mirrored = {k: v for k, v in vars(n).items() if k.startswith("WPS_") and isinstance(v, int)}
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


def _ctype_for(c_type: str):
    import ctypes

    t = " ".join(c_type.replace("const ", "").replace("struct ", "").split())
    t = t.replace(" *", "*")
    table = {
        "void": None,
        "bool": ctypes.c_bool,
        "int": ctypes.c_int,
        "int32_t": ctypes.c_int32,
        "wps_result": ctypes.c_int32,
        "uint32_t": ctypes.c_uint32,
        "uint64_t": ctypes.c_uint64,
        "size_t": ctypes.c_size_t,
        "char*": ctypes.c_char_p,
        "uint8_t*": ctypes.c_char_p,
        "void*": ctypes.c_void_p,
        "wps_client*": n.ClientP,
        "wps_client**": ctypes.POINTER(n.ClientP),
        "wps_options*": n.OptionsP,
        "wps_options**": ctypes.POINTER(n.OptionsP),
        "wps_stream*": n.StreamP,
        "wps_stream**": ctypes.POINTER(n.StreamP),
        "uint64_t*": ctypes.POINTER(ctypes.c_uint64),
        "uint32_t*": ctypes.POINTER(ctypes.c_uint32),
        "size_t*": ctypes.POINTER(ctypes.c_size_t),
        "wps_event_fn": n.EVENT_FN,
        "wps_url_provider_fn": n.URL_PROVIDER_FN,
        "wps_log_fn": n.LOG_FN,
        "wps_stats*": ctypes.POINTER(n.wps_stats),
    }
    return table[t]


def test_ctypes_signatures_match_header():
    """Every declared argtypes/restype agrees with the header's prototype."""
    if not HEADER.is_file():
        pytest.skip("no header")
    text = re.sub(r"/\*.*?\*/", "", HEADER.read_text(), flags=re.S)
    protos = {}
    for ret, name, params in re.findall(r"\n([A-Za-z_][\w ]*?\**)\s*\b(wps_\w+)\(([^;{]*?)\);", text, re.S):
        protos[name] = (ret.strip(), [p.strip() for p in params.split(",")] if params.strip() != "void" else [])
    mismatches = []
    for name, (restype, argtypes, _required) in n._SIGNATURES.items():
        assert name in protos, f"{name} is not declared in the header"
        ret, params = protos[name]
        if _ctype_for(ret) is not restype:
            mismatches.append((name, "return", ret))
        c_types = [re.sub(r"\s*\b\w+$", "", p) if not p.endswith("*") else p for p in params]
        if len(c_types) != len(argtypes):
            mismatches.append((name, "arity", len(c_types), len(argtypes)))
            continue
        for i, (c_t, py_t) in enumerate(zip(c_types, argtypes)):
            if _ctype_for(c_t) is not py_t:
                mismatches.append((name, i, c_t, py_t))
    assert not mismatches, mismatches
