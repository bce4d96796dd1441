"""``python -m webpubsub_client --version``: package and native library versions."""

import argparse
import sys

from ._version import VERSION


def main(argv: "list[str] | None" = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m webpubsub_client", description=__doc__)
    parser.add_argument("--version", action="store_true", help="print the package and native library versions")
    args = parser.parse_args(argv)
    if not args.version:
        parser.print_help()
        return 0
    try:
        from ._native import get_lib, version_string

        native = version_string()
        path = get_lib().dll._name
    except OSError as err:
        print(f"webpubsub_client {VERSION}")
        print(f"native library: not loaded ({err})", file=sys.stderr)
        return 1
    print(f"webpubsub_client {VERSION}")
    print(f"libwebpubsub_client {native} ({path})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
