"""The base of every recipe optimizer whose hyperparameters are one table: defaults, ranges and
the reference's error texts (:class:`~.hyperparameters.HyperparameterTable`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from ..engine.optimizer import RecipeOptimizer
from .hyperparameters import HyperparameterTable


class TableDrivenOptimizer(RecipeOptimizer):
    """A :class:`RecipeOptimizer` checked by its ``hyperparameter_table``: the constructor's
    checks, those of ``load_state_dict`` and of a group added later are the table's."""

    hyperparameter_table: ClassVar[HyperparameterTable]

    @classmethod
    def check_hyperparameters(cls, group: Mapping[str, Any]) -> None:
        """Every check the constructor makes of ``group``'s values, with the reference's
        messages."""
        cls.hyperparameter_table.check(group)
