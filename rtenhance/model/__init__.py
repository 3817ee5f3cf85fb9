"""The GTCRN model: network, streaming state and checkpoints."""

from rtenhance.model.gtcrn import GTCRN
from rtenhance.model.state import StreamState

__all__ = ["GTCRN", "StreamState"]
