"""``momentopt`` command line: one entry point, one module per subcommand.

Each subcommand module exposes ``register(subparsers)``, which adds its parser and sets
``func`` (called with the parsed arguments, returning the exit code). Modules are imported
only when their command runs, so the library itself never needs the lab's extras.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# subcommand → module that registers it
COMMANDS: dict[str, str] = {
    "compare": "momentopt.lab.cli",
    "show": "momentopt.lab.show",
    "bench": "momentopt.bench.cli",
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="momentopt",
        description="momentopt: the SGD → AdamW lineage as one four-step engine.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module in COMMANDS.items():
        if command in (None, name):
            importlib.import_module(module).register(subparsers)
        else:
            subparsers.add_parser(name, help=f"see 'momentopt {name} --help'")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in args_list if a in COMMANDS), None)
    parser = build_parser(command)
    args = parser.parse_args(args_list)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
