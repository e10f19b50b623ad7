import pytest
import torch
from torch.utils.data import Dataset

from stillmotion.heads.model import VideoModel
from stillmotion.train.loop import TrainConfig, evaluate, fit, warmup_cosine


def test_warmup_then_cosine_schedule_values():
    assert warmup_cosine(0, 100, 10) == pytest.approx(0.1)
    assert warmup_cosine(9, 100, 10) == pytest.approx(1.0)
    assert warmup_cosine(10, 100, 10) == pytest.approx(1.0)
    assert warmup_cosine(55, 100, 10) == pytest.approx(0.5)
    assert warmup_cosine(100, 100, 10) == pytest.approx(0.0)


class OrderTask(Dataset):
    """Label = whether a bump in token feature 0 comes early (0) or late (1): only order tells."""

    def __init__(self, n, seed):
        g = torch.Generator().manual_seed(seed)
        self.x = torch.randn(n, 6, 2, 4, generator=g) * 0.1
        self.y = torch.arange(n) % 2
        for i in range(n):
            self.x[i, 1 if self.y[i] == 0 else 4, :, 0] += 1.0
            self.x[i, 4 if self.y[i] == 0 else 1, :, 1] += 1.0

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return self.x[i], int(self.y[i])


def test_fit_learns_an_order_task_the_mean_cannot_and_is_deterministic():
    train, val = OrderTask(64, 0), OrderTask(128, 1)
    cfg = TrainConfig(epochs=20, batch_size=16, lr=1e-2, seed=0)

    torch.manual_seed(0)
    gru = VideoModel(4, "classes", 2, core="gru", core_kw={"hidden": 8})
    history = fit(gru, train, val, cfg, progress=False)
    assert len(history.train_loss) == 20 and history.train_loss[-1] < 0.1 * history.train_loss[0]
    assert evaluate(gru, val)["accuracy"] >= 0.9

    torch.manual_seed(0)
    mean = VideoModel(4, "classes", 2, core="mean")
    fit(mean, train, val, cfg, progress=False)
    assert evaluate(mean, val)["accuracy"] <= 0.65  # chance is 0.5

    torch.manual_seed(0)
    again = VideoModel(4, "classes", 2, core="gru", core_kw={"hidden": 8})
    assert fit(again, train, val, cfg, progress=False).train_loss == history.train_loss
