"""Per-step optimizer diagnostics in your own training loop, written to CSV (and TensorBoard).

    python examples/diagnostics_tensorboard_or_csv.py [--out diagnostics.csv] [--tensorboard runs/diag]

Records, for every step: the effective learning rate α·c/√V per coordinate (quantiles), the
update-to-weight ratio, cos(m, g) and the share of coordinates where ε dominates √V — without
changing a single bit of the update (see momentopt.diagnostics).
"""

from __future__ import annotations

import argparse

import torch

import momentopt
from momentopt import diagnostics


def train(out: str = "diagnostics.csv", tensorboard: str | None = None, steps: int = 50) -> list[dict]:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(10, 32), torch.nn.ReLU(), torch.nn.Linear(32, 1))
    opt = momentopt.AdamW(model.parameters(), lr=3e-3)
    x, y = torch.randn(256, 10), torch.randn(256, 1)
    writer = None
    if tensorboard:
        from torch.utils.tensorboard import SummaryWriter  # needs the 'tensorboard' package

        writer = SummaryWriter(tensorboard)
    with diagnostics.record(opt) as rec:
        for step in range(steps):
            idx = torch.randint(0, 256, (32,))
            opt.zero_grad()
            torch.nn.functional.mse_loss(model(x[idx]), y[idx]).backward()
            opt.step()
            if writer is not None:
                for key, value in rec.latest().items():
                    writer.add_scalar(f"diagnostics/{key}", value, step)
    rec.to_csv(out)
    if writer is not None:
        writer.close()
    return rec.history


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="diagnostics.csv")
    parser.add_argument("--tensorboard", default=None, help="log directory for TensorBoard")
    args = parser.parse_args()
    history = train(args.out, args.tensorboard)
    last = history[-1]
    print(f"wrote {args.out}: {len(history)} steps; last step: "
          f"lr_eff median {last['lr_eff_q50']:.3g}, update/weight {last['update_to_weight']:.3g}, "
          f"cos(m, g) {last['cos_m_g']:.3f}, ε share {last['eps_share']:.2%}")
