"""Embedding models and their minibatch optimisation, G independent runs per tensor program."""

from collapse.optimize.models import MODELS, FreeSampleEmbedding, MLPEmbedding, TiedModeEmbedding, make_model
from collapse.optimize.train import OPTIMIZERS, SCHEDULES, TrainResult, embed_all, train_embeddings

__all__ = [
    "MODELS",
    "OPTIMIZERS",
    "SCHEDULES",
    "FreeSampleEmbedding",
    "MLPEmbedding",
    "TiedModeEmbedding",
    "TrainResult",
    "embed_all",
    "make_model",
    "train_embeddings",
]
