"""The model: a frozen encoder's tokens -> temporal core -> readout (`VideoModel`), and a trained
or imported run loaded as one (`load_model`)."""

from stillmotion.model.load import LoadedModel, TaskOutputs, load_model, model_for, task_outputs
from stillmotion.model.video import VideoModel, last_real

__all__ = ["LoadedModel", "TaskOutputs", "VideoModel", "last_real", "load_model", "model_for", "task_outputs"]
