"""One way into a trained model: a checkpoint (or a run directory) -> its config and encoders.

dinov2 has one ``build_model_for_eval``; here the checkpoint's layout (``online`` holds the
encoder under ``encoder.``, ``target`` is the EMA encoder) is read in this one place, for
``cjepa eval``, the report's attention figures and anything else that evaluates a finished run.
Loads with ``weights_only=True`` (:func:`cjepa.engine.checkpoint.load_checkpoint`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from torch import nn

from cjepa.config import Config, from_saved
from cjepa.engine.checkpoint import load_checkpoint
from cjepa.errors import CheckpointError

if TYPE_CHECKING:
    from cjepa.method import CJEPA

CHECKPOINT = "checkpoint.pt"


@dataclass
class Trained:
    """A finished (or stopped) run: its resolved config, both encoders in eval mode, on CPU."""

    path: Path
    cfg: Config
    target: nn.Module
    context: nn.Module
    step: int
    epoch: int

    def encoder(self, name: str) -> nn.Module:
        """``target`` (the EMA encoder, the paper's), ``context`` (the online one) or ``random``: the
        same network as this run initialised it (its seed), the reference every read-out is read against."""
        if name == "random":
            from cjepa.model import initial_encoder

            return initial_encoder(self.cfg.model, self.cfg.run.seed).eval()
        return self.target if name == "target" else self.context


def checkpoint_path(path: str | Path) -> Path:
    """A checkpoint file, or the ``checkpoint.pt`` inside a run directory."""
    p = Path(path).expanduser()
    if p.is_dir():
        p = p / CHECKPOINT
    if not p.is_file():
        raise CheckpointError(f"checkpoint {p}: not found; expected a checkpoint file or a run directory holding "
                              f"{CHECKPOINT}")
    return p


def saved_config(state: dict[str, Any]) -> Config:
    """The run's config (:func:`cjepa.config.from_saved`: a run older than the validation split
    reads as ``data.val_samples = 0``)."""
    return from_saved(state["config"])


def encoder_weights(state: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(target, online encoder) state dicts of a checkpoint."""
    online = {k.removeprefix("encoder."): v for k, v in state["online"].items() if k.startswith("encoder.")}
    return state["target"], online


def load_method(path: str | Path) -> tuple[Config, CJEPA]:
    """The whole method (online encoder, predictor, regulariser, EMA target) of the run at ``path``,
    in eval mode, on CPU: for what needs more than the encoders (the predictor's spread)."""
    from cjepa.method import CJEPA

    file = checkpoint_path(path)
    state = load_checkpoint(file)
    cfg = saved_config(state)
    model = CJEPA(cfg)
    model.load_online_state_dict(state["online"])
    model.target.load_state_dict(state["target"])
    return cfg, model.eval()


def load_trained(path: str | Path) -> Trained:
    """The run at ``path`` (a checkpoint or its run directory), ready to evaluate."""
    from cjepa.model import build_encoder

    file = checkpoint_path(path)
    state = load_checkpoint(file)
    cfg = saved_config(state)
    encoders = []
    for weights in encoder_weights(state):
        enc = build_encoder(cfg.model)
        enc.load_state_dict(weights)
        encoders.append(enc.eval())
    return Trained(file, cfg, encoders[0], encoders[1], int(state["step"]), int(state["epoch"]))
