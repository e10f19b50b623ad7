"""The frozen encoder interface every image model answers."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import torch
from torch import nn

from stillmotion.errors import UsageError
from stillmotion.video.transforms import normalize, square_input, to_tensor


class FrozenEncoder(nn.Module):
    """A frozen per-frame image model that turns frames into patch tokens.

    Subclasses set `name`, `dim`, `grid` (h', w'), `image_size`, `mean`, `std` (0..255 scale)
    and implement `forward(pixels (B, 3, S, S)) -> tokens (B, N, D)` with N = h' * w'.
    The module stays in eval mode with no gradients whatever `.train()` is asked.

    An encoder may give more than the last layer's patches (see `encoders.hf`): `extra` leading
    tokens per layer (the class token and registers) and the outputs of K blocks (`layers`),
    laid out layer by layer, so N = K * (extra + h' * w').
    """

    name: str
    dim: int
    grid: tuple[int, int]
    image_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    extra: int = 0  # leading tokens before each layer's patches (class token, registers)
    layers: tuple[int, ...] = ()  # the blocks whose outputs are given (0-based); () = the last one only
    resize: str = "antialias"  # how frames become its input (video.transforms.RESIZES); set by `encoders.load`

    def freeze(self) -> FrozenEncoder:
        for p in self.parameters():
            p.requires_grad_(False)
        return super().train(False)

    def train(self, mode: bool = True) -> FrozenEncoder:  # mode is ignored: frozen by design
        return super().train(False)

    @property
    def num_layers(self) -> int:
        """K: how many blocks' outputs each frame's tokens hold."""
        return max(1, len(self.layers))

    @property
    def num_tokens(self) -> int:
        return self.num_layers * (self.extra + self.grid[0] * self.grid[1])

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def preprocess(self, frames: np.ndarray | torch.Tensor) -> torch.Tensor:
        """uint8 frames (T, H, W, 3) -> normalized pixels (T, 3, S, S) float32: shorter side to
        S, centre crop (by `resize`, as the extraction workers do), normalized."""
        return self.normalize_crops(square_input(to_tensor(frames, torch.uint8), self.image_size, self.resize))

    def normalize_crops(self, crops: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Frames at the input size, uint8 (T, S, S, 3) or a (T, 3, S, S) tensor -> normalized
        pixels (T, 3, S, S) float32."""
        x = crops.float() if isinstance(crops, torch.Tensor) and crops.shape[1] == 3 else to_tensor(crops)
        if x.shape[-2:] != (self.image_size, self.image_size):
            raise UsageError(f"{self.name}: crops must be {self.image_size}x{self.image_size}, got "
                             f"{x.shape[-1]}x{x.shape[-2]}")
        return normalize(x, self.mean, self.std)

    @torch.inference_mode()
    def encode(self, pixels: torch.Tensor, batch_size: int = 64, out: str | torch.device = "cpu") -> torch.Tensor:
        """Normalized pixels (B, 3, S, S) -> patch tokens (B, N, D) float32 on `out` (the CPU,
        where the cache writer wants them; the encoder's device for a training step that uses
        them there). Runs in batches; on CUDA under bf16 autocast.
        """
        parts = []
        device = self.device
        for chunk in pixels.split(batch_size):
            chunk = chunk.to(device, non_blocking=True)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
                tokens = self(chunk)
            parts.append(tokens.float().to(out))
        return torch.cat(parts)

    def encode_frames(self, frames: np.ndarray, batch_size: int = 64) -> torch.Tensor:
        """uint8 frames (T, H, W, 3) -> tokens (T, N, D)."""
        return self.encode(self.preprocess(frames), batch_size=batch_size)

    def settings(self) -> dict:
        """What the tokens depend on besides the weights: recorded in every cache."""
        return {
            "encoder": self.name,
            "image_size": self.image_size,
            "resize": ("short side to S, uint8 antialiased bilinear, centre crop" if self.resize == "antialias" else
                       "short side to S, float bilinear without antialias (paper 000's inference), centre crop"),
            "mean": list(self.mean),
            "std": list(self.std),
            "grid": list(self.grid),
            "dim": self.dim,
            # recorded only when asked for, so caches of patch tokens keep their fingerprints
            **({"extra_tokens": self.extra} if self.extra else {}),
            **({"layers": list(self.layers)} if self.layers else {}),
        }

    @property
    def fingerprint(self) -> str:
        """Name + a hash of the weights and preprocessing; two encoders with equal fingerprints
        give equal tokens for equal frames."""
        if not hasattr(self, "_fingerprint"):
            h = hashlib.sha256(json.dumps(self.settings(), sort_keys=True).encode())
            for key, value in sorted(self.state_dict().items()):
                h.update(key.encode())
                h.update(value.detach().cpu().contiguous().numpy().tobytes())
            self._fingerprint = f"{self.name}:{h.hexdigest()[:16]}"
        return self._fingerprint
