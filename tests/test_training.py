"""A real small network (MLP on scikit-learn's digits) follows torch.optim's loss curve."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).parents[1] / "examples" / "train_small_models.py"


def _example():
    spec = importlib.util.spec_from_file_location("train_small_models", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


train = _example()


@pytest.mark.parametrize("name", list(train.CONFIGS))
def test_loss_curve_matches_torch_step_for_step(name: str) -> None:
    theirs, ours = train.loss_curves(name, steps=40)
    assert ours == pytest.approx(theirs, rel=1e-5, abs=1e-6)
    assert ours[-1] < 0.8 * ours[0], "the network should learn"
