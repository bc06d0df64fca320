"""The lab: ``momentopt compare`` runs the seed's story on real problems, fairly tuned.

Built on momentopt's public API only (the optimizers, :mod:`momentopt.diagnostics`) and never
imported by the library itself. Needs the ``lab`` extra (matplotlib, rich, scikit-learn):
``pip install 'momentopt[lab]'``.
"""

from __future__ import annotations

import importlib.util
import sys

EXTRAS: tuple[str, ...] = ("numpy", "matplotlib", "rich", "sklearn")
HINT = "the lab needs optional extras: pip install 'momentopt[lab]'"


def missing_extras(modules: tuple[str, ...] = EXTRAS) -> list[str]:
    """The lab's extra modules that cannot be imported here."""
    missing = []
    for name in modules:
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):
            found = False
        if not found or sys.modules.get(name, "present") is None:
            missing.append(name)
    return missing


def extras_hint(modules: tuple[str, ...] = EXTRAS) -> int:
    """0 if the extras are importable; else print the one-line hint to stderr and return 2."""
    missing = missing_extras(modules)
    if missing:
        print(f"momentopt: {HINT} (missing: {', '.join(missing)})", file=sys.stderr)
        return 2
    return 0
