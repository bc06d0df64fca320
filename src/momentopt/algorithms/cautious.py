"""``cautious=True``: the option every recipe optimizer takes (keyword-only), which turns on
the cautious update of :class:`~momentopt.rules.direction.Cautious` (Liang et al., 2024).

The option is the group key ``cautious``, read by the rule; it is put into ``defaults`` only
when on, so an optimizer made without it keeps torch's (or the reference package's) ``defaults``,
``repr`` and ``state_dict`` layout exactly. Loading a checkpoint that lacks the key keeps the
optimizer's own choice (``RecipeOptimizer.kept_on_load``).
"""

from __future__ import annotations

from typing import Any

from .checks import require


def with_cautious(defaults: dict[str, Any], cautious: Any) -> dict[str, Any]:
    """``defaults``, with ``cautious=True`` added when it is on; ``TypeError`` unless
    ``cautious`` is a bool."""
    require(
        isinstance(cautious, bool),
        f"cautious must be True or False, got {cautious!r}",
        "cautious=True or cautious=False",
        TypeError,
    )
    return {**defaults, "cautious": True} if cautious else defaults
