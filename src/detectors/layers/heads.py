"""Classification heads."""

from __future__ import annotations

from torch import Tensor, nn


class BinaryHead(nn.Module):
    """Pooled features (B, C) or a feature map (B, C, H, W) -> one logit per sample (B,).

    A feature map is global-average-pooled first. Dropout precedes the linear
    layer, as in the Xception/RECCE/F3-Net heads the papers use.
    """

    def __init__(self, in_features: int, drop_rate: float = 0.0) -> None:
        super().__init__()
        self.dropout = nn.Dropout(drop_rate)
        self.fc = nn.Linear(in_features, 1)

    def forward(self, features: Tensor) -> Tensor:
        if features.dim() == 4:
            features = features.mean(dim=(2, 3))
        return self.fc(self.dropout(features)).squeeze(1)
