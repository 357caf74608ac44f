"""Plain-PyTorch training engine: steps, schedules, exact checkpoints, reporters. No Ray, no MLflow."""

from cjepa.engine.checkpoint import CHECKPOINT_NAME, load_checkpoint, save_checkpoint
from cjepa.engine.reporting import ConsoleReporter, JsonlReporter, Reporter, read_metrics
from cjepa.engine.schedules import Schedules
from cjepa.engine.trainer import TrainResult, train

__all__ = ["CHECKPOINT_NAME", "ConsoleReporter", "JsonlReporter", "Reporter", "Schedules", "TrainResult",
           "load_checkpoint", "read_metrics", "save_checkpoint", "train"]
