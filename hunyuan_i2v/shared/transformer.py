"""A loaded transformer, whichever family it belongs to."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class LoadedTransformer:
    model: torch.nn.Module
    family: str  # hunyuan_i2v.families name
    variant: str  # the family's release name (e.g. "token_replace", "720p_i2v_distilled")
    source: str
    compute_dtype: torch.dtype
    notes: list[str] = field(default_factory=list)
    offload_mode: str = "model"  # see acceleration.OFFLOAD_MODES
    loras: tuple = ()  # loras.LoraSpec, applied only while sampling
    # parallel.pool.WorkerPool when the weights live in worker processes, one per GPU (``model`` is then a
    # weightless copy on the meta device, for the model's config and size).
    pool: object = None

    @property
    def latent_channels(self) -> int:
        return int(self.model.config.out_channels)

    def summary(self) -> list[str]:
        """The family's description of what was found in the checkpoint."""
        return [f"{self.family} {self.variant} from {self.source}"]

    def describe(self) -> str:
        lines = self.summary()
        lines += [f"LoRA {spec.path.name} at {spec.strength:g}" for spec in self.loras]
        return "\n".join(lines + self.notes)
