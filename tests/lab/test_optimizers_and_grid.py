"""The seed's names and the shared lr grid."""

from __future__ import annotations

import math

import pytest

import momentopt
from momentopt.lab import lrsearch
from momentopt.lab.optimizers import NAMES, UnknownName, resolve, split_names


def test_the_ten_names_exactly():
    assert NAMES == (
        "SGD",
        "Momentum",
        "Nesterov",
        "Adagrad",
        "Adadelta",
        "RMSprop",
        "Adam",
        "AMSGrad",
        "NAdam",
        "AdamW",
    )
    specs = {s.name: s for s in resolve(None)}
    assert specs["Momentum"].cls is momentopt.SGD and specs["Momentum"].kwargs == {"momentum": 0.9}
    assert specs["Nesterov"].kwargs == {"momentum": 0.9, "nesterov": True}
    assert specs["AMSGrad"].cls is momentopt.Adam and specs["AMSGrad"].kwargs == {"amsgrad": True}


def test_resolve_is_case_insensitive_and_rejects_unknown_names():
    assert [s.name for s in resolve(["adam", "SGD", "Adam"])] == ["Adam", "SGD"]
    with pytest.raises(UnknownName, match="unknown optimizer 'Adamax'.*AMSGrad"):
        resolve(["Adamax"])
    assert split_names(" Adam, SGD ,") == ["Adam", "SGD"]
    assert split_names("all") is None and split_names(None) is None


def test_grid_is_shared_log_spaced_and_wide():
    assert lrsearch.grid() == [1e-4, 1e-3, 1e-2, 0.1, 1.0, 10.0]
    fine = lrsearch.grid(11)
    assert fine[0] == 1e-4 and fine[-1] == 10.0 and len(fine) == 11
    with pytest.raises(ValueError):
        lrsearch.grid(0)


def test_score_pick_and_edge():
    assert lrsearch.score([1.0, 3.0]) == 2.0
    assert lrsearch.score([1.0, math.nan]) == math.inf
    assert lrsearch.pick([math.inf, 2.0, 1.0, 1.0]) == 2
    assert lrsearch.at_edge(0, 6) and lrsearch.at_edge(5, 6) and not lrsearch.at_edge(3, 6)
