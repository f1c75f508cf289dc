"""The Affinity-VAE: encoder, decoders (CNN and explicit rotation), losses, schedules, checkpoints."""

from affinitomo.model.config import ModelConfig
from affinitomo.model.vae import AffinityVAE

__all__ = ["AffinityVAE", "ModelConfig"]
