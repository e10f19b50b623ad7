"""Training and evaluation on cached tokens."""

from stillmotion.train.loop import History, TrainConfig, evaluate, fit

__all__ = ["History", "TrainConfig", "evaluate", "fit"]
