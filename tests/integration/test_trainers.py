"""Trainer frameworks: PyTorch Lightning and the Hugging Face transformers Trainer drive a
momentopt optimizer like a torch.optim one — train, checkpoint, resume.

Both are optional extras of the test environment (CI installs them with ``.[test]``).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import pytest
import torch

from ..helpers import assert_close_report
from .common import ALGORITHMS, KWARGS, PAIRS, TOL, batches, tiny_model

os.environ.setdefault("WANDB_DISABLED", "true")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _params(model: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.parameters()]


def _assert_close(a: list[torch.Tensor], b: list[torch.Tensor], exact: bool = False) -> None:
    for i, (x, y) in enumerate(zip(a, b, strict=True)):
        assert_close_report(x, y, f"param {i}", **({"rtol": 0.0, "atol": 0.0} if exact else TOL))


# -- PyTorch Lightning --------------------------------------------------------------------------
def _lightning_fit(
    name: str,
    cls: type,
    max_steps: int,
    root: Path,
    ckpt: Path | None = None,
    save: Path | None = None,
) -> list[torch.Tensor]:
    L = pytest.importorskip("lightning.pytorch")
    from torch.utils.data import DataLoader, TensorDataset

    class Module(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.net = tiny_model()

        def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
            x, y = batch
            return torch.nn.functional.mse_loss(self.net(x), y)

        def configure_optimizers(self) -> Any:
            opt = cls(self.parameters(), **KWARGS[name])
            sched = torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
            return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    data = batches(4, batch=8)
    xs, ys = torch.cat([x for x, _ in data]), torch.cat([y for _, y in data])
    loader = DataLoader(TensorDataset(xs, ys), batch_size=8, shuffle=False)
    trainer = L.Trainer(
        max_steps=max_steps,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        default_root_dir=root,
    )
    module = Module()
    trainer.fit(module, loader, ckpt_path=ckpt)
    if save is not None:
        trainer.save_checkpoint(save)
    assert isinstance(trainer.optimizers[0], cls)
    return _params(module)


@pytest.fixture
def quiet_lightning() -> None:
    for logger in ("lightning", "lightning.pytorch", "lightning.fabric", "pytorch_lightning"):
        logging.getLogger(logger).setLevel(logging.ERROR)


@pytest.mark.parametrize("name", ALGORITHMS)
def test_lightning_train_checkpoint_resume(
    name: str, tmp_path: Path, quiet_lightning: None
) -> None:
    """Train 4 steps, checkpoint, resume in a new Trainer to step 6: torch.optim's and
    momentopt's runs of this procedure agree (the checkpoint and the resumed weights)."""
    results = []
    for cls in PAIRS[name]:
        ckpt = tmp_path / f"{cls.__module__}.ckpt"
        half = _lightning_fit(name, cls, 4, tmp_path / cls.__module__, save=ckpt)
        resumed = _lightning_fit(name, cls, 6, tmp_path / f"{cls.__module__}-resumed", ckpt=ckpt)
        saved = torch.load(ckpt, weights_only=False)["optimizer_states"][0]
        results.append((half, resumed, saved))
    (half_t, resumed_t, saved_t), (half_o, resumed_o, saved_o) = results
    _assert_close(half_o, half_t)
    _assert_close(resumed_o, resumed_t)
    assert (
        saved_o["param_groups"][0]["lr"]
        == saved_t["param_groups"][0]["lr"]
        == KWARGS[name]["lr"] * 0.25
    )
    assert set(saved_o["state"]) == set(saved_t["state"])
    for k, s in saved_t["state"].items():
        assert set(saved_o["state"][k]) == set(s)


# -- Hugging Face transformers Trainer ----------------------------------------------------------
def _hf_train(name: str, cls: type, out: Path, resume: str | None = None) -> list[torch.Tensor]:
    transformers = pytest.importorskip("transformers")
    transformers.logging.set_verbosity_error()

    torch.manual_seed(0)
    config = transformers.GPT2Config(
        vocab_size=32,
        n_positions=8,
        n_embd=16,
        n_layer=1,
        n_head=2,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
    )
    model = transformers.GPT2LMHeadModel(config)
    # The key part of the attention bias has an exactly-zero gradient in exact arithmetic
    # (softmax ignores a constant shift), so in floats it is rounding noise that Adam-like
    # methods amplify: freeze it to compare real training.
    for block in model.transformer.h:
        block.attn.c_attn.bias.requires_grad_(False)
    g = torch.Generator().manual_seed(3)
    ids = torch.randint(0, 32, (16, 8), generator=g)
    dataset = [{"input_ids": row, "labels": row} for row in ids]
    args = transformers.TrainingArguments(
        output_dir=str(out),
        max_steps=4,
        per_device_train_batch_size=4,
        save_strategy="steps",
        save_steps=2,
        report_to=[],
        logging_strategy="no",
        disable_tqdm=True,
        use_cpu=True,
        seed=0,
        dataloader_num_workers=0,
        lr_scheduler_type="linear",
    )
    opt = cls(model.parameters(), **KWARGS[name])
    trainer = transformers.Trainer(
        model=model, args=args, train_dataset=dataset, optimizers=(opt, None)
    )
    trainer.train(resume_from_checkpoint=resume)
    assert trainer.optimizer is opt or getattr(trainer.optimizer, "optimizer", None) is opt
    return _params(model)


@pytest.mark.parametrize("name", ALGORITHMS)
def test_hf_trainer_train_checkpoint_resume(name: str, tmp_path: Path) -> None:
    torch_cls, our_cls = PAIRS[name]
    expected = _hf_train(name, torch_cls, tmp_path / "torch")
    ours = _hf_train(name, our_cls, tmp_path / "ours")
    _assert_close(ours, expected)
    checkpoint = tmp_path / "ours" / "checkpoint-2"
    assert (checkpoint / "optimizer.pt").exists()
    resumed = _hf_train(name, our_cls, tmp_path / "resumed", resume=str(checkpoint))
    _assert_close(resumed, ours, exact=True)
