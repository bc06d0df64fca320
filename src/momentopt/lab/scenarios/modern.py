"""Beyond AdamW: the claims made for the newer optimizers — Lion, ADOPT, AdEMAMix,
Schedule-Free AdamW and SGD, Prodigy and cautious AdamW — tested against AdamW on two problems:
the digits network judged at the end of its run, and a noisy quadratic (:mod:`.quadratic`).

Every optimizer is tuned the same way: every lr of the lab's shared grid refined to two points
per decade (1e-4, 3.16e-4, …, 10: eleven trials by default), the same steps and seeds, one lr
per optimizer chosen by its **final loss** averaged over the seeds (the loss at the point a
user evaluates — schedule-free's average ``x``, in ``eval()`` mode — over the last 10 % of the
run, which is what the papers report). Prodigy and the schedule-free optimizers are *also* run
untuned, at their own default lr (Prodigy 1, ScheduleFreeAdamW 0.0025, ScheduleFreeSGD 1), as
their users run them. The cosine-scheduled baselines (:mod:`..schedules`) are told the
horizon; nothing else is.

Each claim is one paper's, stated with a criterion fixed before the run; a claim is tested
on each problem separately (``lion-digits``, ``lion-quadratic``, …). "Matches" is read the same
way in every claim: at most :data:`TOLERANCE` times the other's final loss, in every seed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ..optimizers import MODERN_NAMES
from .base import (
    Check,
    CopyResult,
    GridTrace,
    Run,
    Scenario,
    end_metrics,
    estimated_lr,
    mean,
)
from .digits import Digits
from .quadratic import all_finite

TOLERANCE = 1.1
"""What "matches" means in this section's claims: a final loss at most 10 % above the other's,
in every seed. Fixed before any run, one value for every claim, so that no claim gets a
tolerance of its own; it does not absorb the grid: a method whose best lr falls between two
points of the half-decade grid pays for it, as AdamW does."""

DEFAULTS = ("Prodigy", "ScheduleFreeAdamW", "ScheduleFreeSGD")
"""The optimizers also run untuned, at their own default lr (their packages recommend it:
prodigyopt "lr=1. (default) for all networks"; schedulefree's defaults)."""


class DigitsFinal(Digits):
    """The lineage's digits network (same data, splits, initialisations, batches and steps),
    tuned and judged by its final full training-set loss at the evaluation point."""

    name = "digits-final"
    title = "The digits network, judged at the end of the run"
    setup = (
        Digits.setup + " Judged at the end: the full training-set loss every 10 steps, at the "
        "point a user evaluates (schedule-free in eval mode), averaged over the last 10 % of "
        "the run (steps 230–250 of 250)."
    )
    refine = 2
    only = ("AdamW", "Adam", *MODERN_NAMES)  # Adam: AdamW without decay, a control
    at_default = DEFAULTS
    judged = ("train_loss", "training-set loss at the evaluation point")
    criterion = (
        "final loss: the full training-set loss at the evaluation point, mean over the "
        "evaluations in the last 10 % of the run, averaged over the seeds"
    )

    def score(self, result: CopyResult) -> float:
        return result.metrics["final_loss"] if all_finite(result.loss) else math.inf

    def copy_metrics(
        self, trace: GridTrace, copy: int, curves: dict[str, list[Any]], steps: int
    ) -> dict[str, float]:
        return end_metrics(curves["eval_step"], curves["train_loss"], steps) | estimated_lr(
            trace.optimizer, copy
        )


PROBLEMS = {"digits-final": "digits", "noisy-quadratic": "quadratic"}
PROBLEM_TITLES = {"digits-final": "the digits network", "noisy-quadratic": "a noisy quadratic"}


# -- measuring ------------------------------------------------------------------------------
def finals(run: Run) -> list[float]:
    """The final loss per seed at the tuned lr."""
    return list(run.metrics["final_loss"])


def default_finals(run: Run) -> list[float]:
    """The final loss per seed at the optimizer's own default lr (untuned); [] if not run."""
    return list(run.default.get("metrics", {}).get("final_loss", []))


def ratio(mine: float, theirs: float) -> float:
    """``mine / theirs``: inf if ``mine`` diverged, 0 if only ``theirs`` did."""
    if not math.isfinite(mine):
        return math.inf
    if not math.isfinite(theirs):
        return 0.0
    return mine / theirs if theirs > 0 else math.inf


@dataclass(frozen=True)
class Comparison:
    """One criterion's comparison: ``mine``'s per-seed values against ``theirs``'s, met in a
    seed where ``mine / theirs`` is at most ``limit`` (below it, if ``strict``)."""

    mine: str  # e.g. "Lion" or "Prodigy at its default lr"
    theirs: str
    a: list[float]
    b: list[float]
    limit: float
    strict: bool
    what: str  # "final loss" or "mean loss over the run"
    lrs: str  # e.g. "lr 0.001 / 0.01"
    tag: str  # the figures' key: ratio_{tag}

    @property
    def ratios(self) -> list[float]:
        return [ratio(x, y) for x, y in zip(self.a, self.b, strict=True)]

    @property
    def passed(self) -> list[bool]:
        return [r < self.limit if self.strict else r <= self.limit for r in self.ratios]

    def measured(self) -> str:
        pairs = ", ".join(
            f"{x:.3g} / {y:.3g} (×{r:.2f})"
            for x, y, r in zip(self.a, self.b, self.ratios, strict=True)
        )
        return f"{self.what} {self.mine} / {self.theirs} per seed: {pairs} ({self.lrs})"

    def figures(self) -> dict[str, Any]:
        return {
            f"{self.tag}_mine": self.a,
            f"{self.tag}_theirs": self.b,
            f"ratio_{self.tag}": self.ratios,
        }


def tuned(
    runs: dict[str, Run], mine: str, theirs: str, limit: float, *, strict: bool = False
) -> Comparison:
    """``mine``'s final loss against ``theirs``'s, each at its tuned lr."""
    return Comparison(
        mine,
        theirs,
        finals(runs[mine]),
        finals(runs[theirs]),
        limit,
        strict,
        "final loss",
        f"lr {runs[mine].lr:g} / {runs[theirs].lr:g}",
        f"{mine}_{theirs}",
    )


class ModernClaim(Scenario):
    """One paper's claim for a newer optimizer, tested on one problem (``experiment``): each
    criterion is a :class:`Comparison` (:meth:`comparisons`), which the figure draws too."""

    key = ""  # the claim's name, before the problem's
    headline = ""  # the title, before the problem's
    kind = "tuned performance (same half-decade grid, steps and seeds; several seeds)"

    def __init__(self, experiment: str) -> None:
        self.experiment = experiment
        self.name = f"{self.key}-{PROBLEMS[experiment]}"
        self.title = f"{self.headline}: {PROBLEM_TITLES[experiment]}"

    def comparisons(self, runs: dict[str, Run]) -> list[Comparison]:
        raise NotImplementedError

    def judge(self, runs: dict[str, Run]) -> list[Check]:
        return [
            self.check(i, c.measured(), c.passed, **c.figures())
            for i, c in enumerate(self.comparisons(runs))
        ]

    decay_control = True  # the claim's optimizer defaults to no weight decay, AdamW to 0.01

    def accuracy_note(self, runs: dict[str, Run]) -> str:
        """Not judged, shown with every claim: AdamW without its weight decay (a control the
        newer optimizers' defaults call for: all but cautious AdamW have none) and, on the
        digits network, the test accuracy."""
        text = ""
        if self.decay_control and "Adam" in runs and "AdamW" in runs:
            r = mean(
                [
                    ratio(a, b)
                    for a, b in zip(finals(runs["Adam"]), finals(runs["AdamW"]), strict=True)
                ]
            )
            text += (
                " Control, not judged: AdamW without its weight decay λ = 0.01 (torch's Adam, "
                f"tuned the same way, lr {runs['Adam'].lr:g}) ends at {r:.2f}× AdamW's final "
                "loss (mean of the per-seed ratios); the newer optimizers but cautious AdamW "
                "default to no decay."
            )
        if self.experiment == "digits-final":
            acc = ", ".join(
                f"{n} {100 * runs[n].metric('test_acc'):.1f} %"
                for n in self.participants
                if n in runs
            )
            text += f" Not judged: the test accuracy at the end (mean over seeds): {acc}."
        return text


class LionClaim(ModernClaim):
    key = "lion"
    section = "Lion"
    headline = "Lion matches AdamW"
    claim = (
        "Lion — the sign of an interpolated momentum, one state instead of two — matches or "
        "beats AdamW when each is tuned."
    )
    reason = (
        "Chen et al. (2023, 'Symbolic Discovery of Optimization Algorithms') report Lion "
        "matching or outperforming AdamW on image classification, language modelling and "
        "diffusion, each tuned (Lion's best lr 3–10× smaller than AdamW's). 'Matches or "
        f"beats' is read as this section reads every 'matches': at most {TOLERANCE}× AdamW's "
        "final loss, in every seed."
    )
    participants = ("AdamW", "Lion")
    criteria = (f"tuned: Lion's final loss is at most {TOLERANCE}× AdamW's, in every seed",)

    def comparisons(self, runs: dict[str, Run]) -> list[Comparison]:
        return [tuned(runs, "Lion", "AdamW", TOLERANCE)]

    def note(self, runs: dict[str, Run]) -> str:
        return (
            f"Tuned lrs: Lion {runs['Lion'].lr:g}, AdamW {runs['AdamW'].lr:g} (the paper: "
            "Lion's 3–10× smaller)." + self.accuracy_note(runs)
        )


class AdoptClaim(ModernClaim):
    key = "adopt"
    section = "ADOPT"
    headline = "ADOPT matches AdamW"
    claim = (
        "ADOPT — the gradient normalised by the previous second moment, before the momentum, "
        "so that it converges with any β2 — loses nothing against Adam in practice."
    )
    reason = (
        "Taniguchi et al. (2024, 'ADOPT: Modified Adam Can Converge with Any β2 with the "
        "Optimal Rate') prove convergence where Adam can fail and report ADOPT matching or "
        "improving on Adam/AdamW in image classification, language-model pre-training and "
        "fine-tuning and deep RL. Here: at its package's defaults (β2 = 0.9999, ε = 1e-6, "
        f"clipping), tuned like AdamW; 'matches' is at most {TOLERANCE}× AdamW's final loss, "
        "in every seed."
    )
    participants = ("AdamW", "ADOPT")
    criteria = (f"tuned: ADOPT's final loss is at most {TOLERANCE}× AdamW's, in every seed",)

    def comparisons(self, runs: dict[str, Run]) -> list[Comparison]:
        return [tuned(runs, "ADOPT", "AdamW", TOLERANCE)]

    def note(self, runs: dict[str, Run]) -> str:
        return (
            f"Tuned lrs: ADOPT {runs['ADOPT'].lr:g}, AdamW {runs['AdamW'].lr:g}."
            + self.accuracy_note(runs)
        )


class AdemamixClaim(ModernClaim):
    key = "ademamix"
    section = "AdEMAMix"
    headline = "AdEMAMix beats AdamW"
    claim = (
        "AdEMAMix — a second, slow average of the gradients (β3 = 0.9999) mixed into Adam's "
        "step — reaches a lower loss than AdamW in the same number of steps."
    )
    reason = (
        "Pagliardini, Ablin & Grangier (2024, 'The AdEMAMix Optimizer: Better, Faster, "
        "Older') report AdEMAMix below AdamW's loss, e.g. a 1.3B-parameter model trained on "
        "101B tokens matching AdamW on 197B. The claim is a strict improvement, so the "
        "criterion is: below AdamW's final loss in every seed. Their runs are long (the slow "
        "average remembers ≈ 1/(1−β3) = 10⁴ steps, and they warm α and β3 up over the run); "
        "here it runs at the reference's defaults (no warm-up) for 250 and 1000 steps, so "
        "this tests whether any of the gain shows on a short run."
    )
    participants = ("AdamW", "AdEMAMix")
    criteria = ("tuned: AdEMAMix's final loss is below AdamW's, in every seed",)

    def comparisons(self, runs: dict[str, Run]) -> list[Comparison]:
        return [tuned(runs, "AdEMAMix", "AdamW", 1.0, strict=True)]

    def note(self, runs: dict[str, Run]) -> str:
        steps = len(runs["AdEMAMix"].curves["loss"][0])
        held = 1 - 0.9999**steps
        return (
            f"After {steps} steps the slow average (β3 = 0.9999, not bias-corrected) holds "
            f"{held:.1%} of its full weight." + self.accuracy_note(runs)
        )


class ScheduleFreeClaim(ModernClaim):
    key = "schedule-free"
    section = "ScheduleFreeAdamW"
    headline = "Schedule-Free needs no schedule"
    claim = (
        "Schedule-Free AdamW and SGD, at a constant lr and without knowing when the run ends, "
        "match the same optimizers under a cosine schedule that is told the run's length."
    )
    reason = (
        "Defazio et al. (2024, 'The Road Less Scheduled'): Schedule-Free 'typically "
        "out-performs, or at worst matches' cosine and linear-decay schedules. Each is tuned "
        "on the same grid; the cosine baselines decay from the tuned lr to 0 over exactly the "
        "run (torch's CosineAnnealingLR, T = the run's steps), with no warm-up on either side "
        f"(the defaults). 'Matches' is at most {TOLERANCE}× the scheduled run's final loss, "
        "in every seed; Schedule-Free is judged at its average x (eval mode), where its users "
        "evaluate."
    )
    participants = ("ScheduleFreeAdamW", "AdamW+cosine", "ScheduleFreeSGD", "Momentum+cosine")
    criteria = (
        "tuned: ScheduleFreeAdamW's final loss (constant lr) is at most "
        f"{TOLERANCE}× AdamW+cosine's, in every seed",
        "tuned: ScheduleFreeSGD's final loss (constant lr) is at most "
        f"{TOLERANCE}× Momentum+cosine's, in every seed",
    )

    def comparisons(self, runs: dict[str, Run]) -> list[Comparison]:
        return [
            tuned(runs, "ScheduleFreeAdamW", "AdamW+cosine", TOLERANCE),
            tuned(runs, "ScheduleFreeSGD", "Momentum+cosine", TOLERANCE),
        ]

    def note(self, runs: dict[str, Run]) -> str:
        parts = []
        if "AdamW" in runs:
            control = mean(
                [
                    ratio(a, b)
                    for a, b in zip(
                        finals(runs["AdamW"]), finals(runs["AdamW+cosine"]), strict=True
                    )
                ]
            )
            parts.append(
                f"Control: AdamW at a constant lr (tuned, {runs['AdamW'].lr:g}) ends at "
                f"{control:.2f}× AdamW+cosine's final loss (mean of the per-seed ratios): how "
                "much a schedule matters on this problem."
            )
        for name, base in (
            ("ScheduleFreeAdamW", "AdamW+cosine"),
            ("ScheduleFreeSGD", "Momentum+cosine"),
        ):
            untuned = default_finals(runs[name])
            if untuned:
                r = mean([ratio(a, b) for a, b in zip(untuned, finals(runs[base]), strict=True)])
                parts.append(
                    f"Untuned, at its default lr {runs[name].default['lr']:g}, {name} ends at "
                    f"{r:.2f}× tuned {base}'s final loss."
                )
        return " ".join(parts) + self.accuracy_note(runs)


class ProdigyClaim(ModernClaim):
    key = "prodigy"
    section = "Prodigy"
    headline = "Prodigy needs no lr tuning"
    claim = (
        "Prodigy estimates its own step size: left at lr = 1, untuned, it comes close to AdamW "
        "with a tuned lr, and tuning its lr gains little."
    )
    reason = (
        "Mishchenko & Defazio (2024, 'Prodigy: An Expeditiously Adaptive Parameter-Free "
        "Learner') report Prodigy close to tuned Adam; prodigyopt recommends 'lr=1. (default) "
        f"for all networks'. 'Close' is read as this section's 'matches': at most {TOLERANCE}× "
        "the tuned AdamW's final loss, in every seed; 'gains little' as: its run at lr 1 is at "
        f"most {TOLERANCE}× its own at its best lr of the grid. Both at constant lr (Prodigy's "
        "README allows either no schedule or a cosine)."
    )
    participants = ("Prodigy", "AdamW")
    criteria = (
        "untuned, at its default lr (1): Prodigy's final loss is at most "
        f"{TOLERANCE}× tuned AdamW's, in every seed",
        f"Prodigy's final loss at its default lr is at most {TOLERANCE}× its own at its best "
        "lr of the grid, in every seed",
    )

    def judge(self, runs: dict[str, Run]) -> list[Check]:
        if not runs["Prodigy"].default:
            return [
                Check(c, "Prodigy was not run at its default lr", "not checked")
                for c in self.criteria
            ]
        return super().judge(runs)

    def comparisons(self, runs: dict[str, Run]) -> list[Comparison]:
        prodigy, adamw = runs["Prodigy"], runs["AdamW"]
        untuned, lr = default_finals(prodigy), prodigy.default["lr"]
        mine = "Prodigy at its default lr"
        return [
            Comparison(
                mine,
                "AdamW",
                untuned,
                finals(adamw),
                TOLERANCE,
                False,
                "final loss",
                f"lr {lr:g}, untuned / {adamw.lr:g}",
                "Prodigy_default_AdamW",
            ),
            Comparison(
                mine,
                "Prodigy at its tuned lr",
                untuned,
                finals(prodigy),
                TOLERANCE,
                False,
                "final loss",
                f"lr {lr:g} / {prodigy.lr:g}",
                "Prodigy_default_tuned",
            ),
        ]

    def note(self, runs: dict[str, Run]) -> str:
        prodigy = runs["Prodigy"]
        d = prodigy.default.get("metrics", {}).get("estimated_lr", [])
        text = ""
        if d:
            text = (
                "Prodigy's step-size estimate d·lr at the end, at lr "
                f"{prodigy.default['lr']:g}: " + ", ".join(f"{v:.3g}" for v in d) + " per seed; "
                f"AdamW's tuned lr: {runs['AdamW'].lr:g}."
            )
        return text + self.accuracy_note(runs)


class CautiousClaim(ModernClaim):
    key = "cautious"
    section = "CautiousAdamW"
    headline = "Cautious AdamW is no worse, and faster"
    claim = (
        "Masking the coordinates where AdamW's update disagrees in sign with the gradient "
        "(and rescaling the rest) loses nothing and trains faster."
    )
    reason = (
        "Liang et al. (2024, 'Cautious Optimizers: Improving Training with One Line of Code') "
        "prove the mask keeps the optimizer's convergence guarantee (no worse) and report "
        "faster training than AdamW (e.g. a 1.47× speed-up in LLaMA pre-training). No worse: "
        f"at most {TOLERANCE}× AdamW's final loss, in every seed; faster: a lower mean loss "
        "over the run (the area under the evaluated loss curve), in every seed — each at its "
        "own tuned lr."
    )
    participants = ("AdamW", "CautiousAdamW")
    decay_control = False  # both decay by λ = 0.01
    criteria = (
        f"tuned: CautiousAdamW's final loss is at most {TOLERANCE}× AdamW's, in every seed "
        "(no worse)",
        "tuned: CautiousAdamW's mean loss over the run is below AdamW's, in every seed (faster)",
    )

    def comparisons(self, runs: dict[str, Run]) -> list[Comparison]:
        cautious, adamw = runs["CautiousAdamW"], runs["AdamW"]
        return [
            tuned(runs, "CautiousAdamW", "AdamW", TOLERANCE),
            Comparison(
                "CautiousAdamW",
                "AdamW",
                list(cautious.metrics["mean_loss"]),
                list(adamw.metrics["mean_loss"]),
                1.0,
                True,
                "mean loss over the run",
                f"lr {cautious.lr:g} / {adamw.lr:g}",
                "mean_loss_CautiousAdamW_AdamW",
            ),
        ]

    def note(self, runs: dict[str, Run]) -> str:
        return (
            f"Tuned lrs: CautiousAdamW {runs['CautiousAdamW'].lr:g}, AdamW "
            f"{runs['AdamW'].lr:g}." + self.accuracy_note(runs)
        )


CLAIMS = (LionClaim, AdoptClaim, AdemamixClaim, ScheduleFreeClaim, ProdigyClaim, CautiousClaim)

EXPERIMENTS = (DigitsFinal(),)
SCENARIOS = tuple(claim(e) for claim in CLAIMS for e in PROBLEMS)
"""Each claim on the digits network, then on the noisy quadratic, in the sections' order."""
