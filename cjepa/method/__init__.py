"""The C-JEPA method as one object (dinov2-style meta-architecture) and its registry of regularisers."""

from cjepa.method.cjepa import CJEPA, target_blocks, unwrap
from cjepa.method.regularizers import (
    REGULARIZERS,
    Regularizer,
    StepTensors,
    build_regularizer,
    needs_second_view,
    register,
)

__all__ = ["CJEPA", "REGULARIZERS", "Regularizer", "StepTensors", "build_regularizer", "needs_second_view",
           "register", "target_blocks", "unwrap"]
