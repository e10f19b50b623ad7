"""The training loop: AdamW, linear warmup then cosine, gradient clipping, seeded.

The clip's answer is the prediction at its last real frame (the streaming protocol); the model
kept is the one with the best validation accuracy.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from stillmotion.data.tokens import pad_collate
from stillmotion.heads.model import VideoModel
from stillmotion.train.trainer import warmup_cosine


@dataclass
class TrainConfig:
    epochs: int = 15
    batch_size: int = 32
    lr: float = 2e-3
    weight_decay: float = 1e-4
    warmup_frac: float = 0.1
    grad_clip: float = 1.0
    seed: int = 0


@dataclass
class History:
    train_loss: list[float] = field(default_factory=list)
    val_accuracy: list[float] = field(default_factory=list)
    train_seconds: float = 0.0
    best_epoch: int = -1


def device_for(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


def fit(model: VideoModel, train: Dataset, val: Dataset, cfg: TrainConfig, desc: str = "train",
        progress: bool = True) -> History:
    """Train `model` in place; returns the per-epoch history. Leaves the best-validation weights."""
    torch.manual_seed(cfg.seed)
    device = device_for(model)
    loader = DataLoader(train, batch_size=cfg.batch_size, shuffle=True, collate_fn=pad_collate,
                        generator=torch.Generator().manual_seed(cfg.seed), drop_last=len(train) > cfg.batch_size)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    total = cfg.epochs * len(loader)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: warmup_cosine(s, total, max(1, int(cfg.warmup_frac * total))))
    history, best = History(), (-1.0, None)
    start = time.perf_counter()
    bar = tqdm(range(cfg.epochs), desc=desc, unit="epoch", disable=not progress)
    for epoch in bar:
        model.train()
        losses = []
        for x, mask, y in loader:
            x, mask, y = x.to(device), mask.to(device), y.to(device)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
                logits = model(x, mask)
            loss = F.cross_entropy(logits.float(), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            sched.step()
            losses.append(loss.item())
        history.train_loss.append(sum(losses) / len(losses))
        history.val_accuracy.append(evaluate(model, val)["accuracy"])
        if history.val_accuracy[-1] > best[0]:
            best = (history.val_accuracy[-1], copy.deepcopy(model.state_dict()))
            history.best_epoch = epoch
        bar.set_postfix(loss=f"{history.train_loss[-1]:.3f}", val_acc=f"{history.val_accuracy[-1]:.3f}")
    history.train_seconds = time.perf_counter() - start
    model.load_state_dict(best[1])
    return history


@torch.no_grad()
def evaluate(model: VideoModel, data: Dataset, batch_size: int = 64) -> dict:
    """Top-1 accuracy of the last-frame prediction; also returns the predictions and labels."""
    model.eval()
    device = device_for(model)
    preds, labels = [], []
    for x, mask, y in DataLoader(data, batch_size=batch_size, collate_fn=pad_collate):
        logits = model(x.to(device), mask.to(device))
        preds.append(logits.argmax(-1).cpu())
        labels.append(y)
    preds, labels = torch.cat(preds), torch.cat(labels)
    return {"accuracy": (preds == labels).float().mean().item(), "predictions": preds.tolist(), "labels": labels.tolist()}
