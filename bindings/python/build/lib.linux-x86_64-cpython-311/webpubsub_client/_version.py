"""Version of the Python package (the native library reports its own)."""

VERSION = "0.1.0"
