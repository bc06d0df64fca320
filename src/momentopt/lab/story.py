"""The lineage the report walks: SGD → momentum → Nesterov → AdaGrad → AdaDelta → RMSprop →
Adam → NAdam → AdamW, one section per step — the problem the step addresses and what it
changes in the four steps — then the newer optimizers, each against AdamW (``--modern``). The
change itself is not written here: :func:`changes` generates it from the two optimizers'
recipes (``opt.describe()``, as ``momentopt show`` prints it).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import torch

from .optimizers import Spec


@dataclass(frozen=True)
class Section:
    """One step of the lineage: the optimizer it introduces and the one before it
    (``previous_kwargs``: hyperparameters that make the comparison show the change)."""

    key: str  # the optimizer's name in the registry
    title: str
    previous: str | None
    problem: str
    change: str
    source: str
    previous_kwargs: dict[str, Any] = field(default_factory=dict)
    intro: str = ""  # printed before the section: the first of a new part of the story


SECTIONS: tuple[Section, ...] = (
    Section(
        "SGD",
        "Stochastic gradient descent",
        None,
        "The starting point: step against the gradient, w ← w − α·g, with one learning rate α "
        "for every coordinate. Its weakness shows on ill-conditioned problems: α must stay "
        "below 2/L for the steepest direction L, so a shallow direction moves at a crawl, and "
        "just below that limit the steep direction overshoots back and forth.",
        "No first moment beyond g itself, no second moment (V = 1).",
        "Robbins & Monro (1951)",
    ),
    Section(
        "Momentum",
        "Momentum (heavy ball)",
        "SGD",
        "SGD zig-zags across a ravine and crawls along its floor: each step forgets the last.",
        "φ keeps a running sum of the gradients, b ← μ·b + g, and steps along it: gradients "
        "that keep their sign add up, gradients that alternate cancel.",
        "Polyak (1964)",
    ),
    Section(
        "Nesterov",
        "Nesterov's accelerated gradient",
        "Momentum",
        "Momentum's velocity overshoots: it reacts to the slope only after it has already "
        "carried the point past the floor, and the swing lingers.",
        "φ steps along g + μ·b: the momentum step is taken first and corrected by the gradient "
        "that it leads to — a look-ahead.",
        "Nesterov (1983); Sutskever, Martens, Dahl & Hinton (2013)",
    ),
    Section(
        "Adagrad",
        "AdaGrad: a learning rate per coordinate",
        "SGD",
        "One α for every coordinate: rare features and flat directions get the same α as "
        "frequent, steep ones, so they barely learn.",
        "ψ adds up each coordinate's squared gradients, V ← V + g², and the step divides by √V: "
        "coordinates with small or rare gradients get large steps.",
        "Duchi, Hazan & Singer (2011)",
    ),
    Section(
        "Adadelta",
        "AdaDelta: a window instead of a sum",
        "Adagrad",
        "AdaGrad's V only grows, so its effective lr α/√V decays to zero and learning stops "
        "while there is still something to learn.",
        "ψ becomes a moving average V ← ρ·V + (1−ρ)·g², a window of ≈ 1/(1−ρ) steps; φ rescales "
        "the step by √(U+ε), the root of the recent squared steps, so that it has the units of "
        "w and the default lr is 1.",
        "Zeiler (2012)",
    ),
    Section(
        "RMSprop",
        "RMSprop: the window alone",
        "Adadelta",
        "The same decay as AdaGrad's; AdaDelta's unit correction is not needed for that.",
        "ψ is the same moving average of g² (α = 0.99: a window of ≈ 100 steps), the step is "
        "α·g/(√V + ε) with an lr to choose. The window also lets the effective lr follow the "
        "gradients when their scale changes.",
        "Hinton, Neural Networks for Machine Learning, lecture 6e (2012)",
    ),
    Section(
        "Adam",
        "Adam: momentum and RMSprop together",
        "RMSprop",
        "RMSprop has no momentum, and both of its averages start at zero, which biases the "
        "first steps.",
        "φ is momentum's average m ← β1·m + (1−β1)·g, ψ is RMSprop's v ← β2·v + (1−β2)·g², each "
        "divided by (1 − β^t) to undo the zero start. Its known flaw — with a short memory "
        "v underweights a rare large gradient — has a fix, AMSGrad, which divides by the "
        "running maximum of v.",
        "Kingma & Ba (2015); Reddi, Kale & Kumar (2018) for AMSGrad",
    ),
    Section(
        "NAdam",
        "NAdam: Nesterov inside Adam",
        "Adam",
        "Adam took momentum, but not Nesterov's look-ahead.",
        "φ mixes the current gradient and the momentum with the coefficients of the next "
        "step, μ_t and μ_{t+1}: Nesterov's correction in Adam's averages.",
        "Dozat (2016)",
    ),
    Section(
        "AdamW",
        "AdamW: weight decay taken out of the gradient",
        "Adam",
        "Adam's weight_decay adds λ·w to the gradient, and so divides it by √V too: weights "
        "with large gradients are hardly decayed at all.",
        "Step 1 no longer adds λ·w to g; instead every weight shrinks by w ← w·(1 − α·λ) before "
        "the step, the same for all.",
        "Loshchilov & Hutter (2019)",
        {"weight_decay": 0.01},
    ),
)

MODERN_INTRO = (
    "Beyond AdamW: the optimizers people ask for today, each tested against AdamW on the claim "
    "its paper makes, on two problems — the digits network, judged by its training-set loss at "
    "the end of the run, and a noisy quadratic. Every optimizer gets the same budget: the "
    "shared lr grid with its half-decade points (eleven lrs), the same steps and seeds, one lr "
    "chosen by the final loss averaged over the seeds. Prodigy and Schedule-Free are also run "
    "untuned, at their default lr, as their users run them."
)

MODERN_SECTIONS: tuple[Section, ...] = (
    Section(
        "Lion",
        "Lion: the sign of the momentum",
        "AdamW",
        "AdamW keeps two moments per weight and its step size per coordinate follows their "
        "ratio; the search that found Lion looked for something simpler and cheaper.",
        "φ interpolates the momentum and the gradient, u = β1·m + (1−β1)·g, and the step is "
        "its sign: every coordinate moves by exactly α; no second moment (V = 1); the momentum "
        "is updated with a second coefficient β2 after the step.",
        "Chen et al. (2023), found by program search",
        intro=MODERN_INTRO,
    ),
    Section(
        "ADOPT",
        "ADOPT: normalise first, then average",
        "AdamW",
        "Adam can diverge unless β2 is chosen for the problem (Reddi et al.'s counterexample): "
        "the current gradient enters the V it is divided by.",
        "ψ is used before it is updated: the gradient is divided by the previous √V (and "
        "clipped), then averaged into m; no step on the first iteration.",
        "Taniguchi et al. (2024)",
    ),
    Section(
        "AdEMAMix",
        "AdEMAMix: a second, slow momentum",
        "AdamW",
        "One average of the gradients must choose: a short memory follows the loss, a long one "
        "keeps old gradients that are still useful but reacts slowly.",
        "φ keeps two averages, Adam's fast m1 (β1 = 0.9) and a slow m2 (β3 = 0.9999, not "
        "bias-corrected), and steps along m̂1 + α·m2.",
        "Pagliardini, Ablin & Grangier (2024)",
    ),
    Section(
        "ScheduleFreeAdamW",
        "Schedule-Free: averaging instead of a schedule",
        "AdamW",
        "The best runs decay the lr (cosine, linear), which needs the run's length in advance; "
        "a constant lr stalls at a noise floor.",
        "Momentum is replaced by interpolation and averaging: z takes the AdamW-like step, the "
        "gradient is taken at y between z and the average x, and x — where the model is "
        "evaluated — is a weighted average of the z's.",
        "Defazio et al. (2024)",
    ),
    Section(
        "Prodigy",
        "Prodigy: the step size estimated",
        "AdamW",
        "Adam's lr must be tuned per problem; a wrong decade costs the run.",
        "A scalar d, re-estimated before every step from sums over all parameters (how far "
        "they have moved from the start, against the gradients' weighted sum), multiplies the "
        "moments and the lr: Adam with a step size it finds itself, lr = 1 by default.",
        "Mishchenko & Defazio (2024)",
    ),
    Section(
        "CautiousAdamW",
        "Cautious AdamW: no step against the gradient",
        "AdamW",
        "Momentum can point uphill for some coordinates: the update disagrees in sign with "
        "the current gradient there.",
        "A direction rule after φ: the update is masked where u·g ≤ 0 and the rest is rescaled "
        "by the mask's mean, so the step keeps its size on average.",
        "Liang et al. (2024)",
    ),
)
"""The newer optimizers' sections (``--modern``), each introduced against AdamW."""

ALL_SECTIONS: tuple[Section, ...] = SECTIONS + MODERN_SECTIONS


def recipe(spec: Spec) -> list[tuple[str, str]]:
    """``spec``'s four steps, (step, formula) pairs, generated from its recipe."""
    return spec.build([torch.zeros(1, requires_grad=True)]).describe()


def changes(spec: Spec, previous: Spec | None) -> list[tuple[str, str | None, str, bool]]:
    """(step, the previous method's formula, this one's, changed?) for each of the steps."""
    now = recipe(spec)
    if previous is None:
        return [(step, None, formula, False) for step, formula in now]
    before = dict(recipe(previous))
    return [(step, before.get(step), formula, before.get(step) != formula) for step, formula in now]


def sections_for(specs: Mapping[str, Spec]) -> list[tuple[Section, Spec | None, Spec | None]]:
    """Every section with the spec it introduces and its predecessor's, with the section's
    ``previous_kwargs`` (None where the run's registry lacks them)."""
    out = []
    for s in ALL_SECTIONS:
        previous = specs.get(s.previous) if s.previous else None
        if previous is not None and s.previous_kwargs:
            extra = ", ".join(f"{k}={v}" for k, v in s.previous_kwargs.items())
            previous = replace(
                previous,
                name=f"{previous.name} ({extra})",
                kwargs={**previous.kwargs, **s.previous_kwargs},
            )
        out.append((s, specs.get(s.key), previous))
    return out
