import math

import pytest

from cjepa.config import load_config
from cjepa.engine.schedules import Schedules, cosine, linear, momentum_at, warmup_cosine


def test_warmup_cosine_hand_values():
    # warm-up 1e-4 -> 1e-3 over 10 steps, then cosine to 1e-6 at step 110
    assert warmup_cosine(0, 110, 10, 1e-4, 1e-3, 1e-6) == pytest.approx(1e-4)
    assert warmup_cosine(5, 110, 10, 1e-4, 1e-3, 1e-6) == pytest.approx(5.5e-4)
    assert warmup_cosine(10, 110, 10, 1e-4, 1e-3, 1e-6) == pytest.approx(1e-3)
    assert warmup_cosine(60, 110, 10, 1e-4, 1e-3, 1e-6) == pytest.approx(1e-6 + (1e-3 - 1e-6) * 0.5)
    assert warmup_cosine(110, 110, 10, 1e-4, 1e-3, 1e-6) == pytest.approx(1e-6)
    assert warmup_cosine(500, 110, 10, 1e-4, 1e-3, 1e-6) == pytest.approx(1e-6)  # clamps past the end


def test_weight_decay_rises_cosine_shaped():
    assert cosine(0, 100, 0.04, 0.4) == pytest.approx(0.04)
    assert cosine(50, 100, 0.04, 0.4) == pytest.approx(0.22)
    assert cosine(25, 100, 0.04, 0.4) == pytest.approx(0.4 + (0.04 - 0.4) * 0.5 * (1 + math.cos(math.pi / 4)))
    assert cosine(100, 100, 0.04, 0.4) == pytest.approx(0.4)


def test_momentum_shapes_and_off():
    assert momentum_at(0, 100, 0.996, 1.0, "linear") == pytest.approx(0.996)
    assert momentum_at(50, 100, 0.996, 1.0, "linear") == pytest.approx(0.998)
    assert momentum_at(100, 100, 0.996, 1.0, "linear") == pytest.approx(1.0)
    assert momentum_at(50, 100, 0.996, 1.0, "cosine") == pytest.approx(0.998)
    assert momentum_at(25, 100, 0.996, 1.0, "cosine") < momentum_at(25, 100, 0.996, 1.0, "linear")
    assert momentum_at(70, 100, 0.99, 1.0, "constant") == 0.99
    assert momentum_at(70, 100, 0.99, 1.0, "linear", enabled=False) == 0.0
    assert linear(7, 10, 2.0, 3.0) == pytest.approx(2.7)


def test_schedules_are_pure_functions_of_step():
    cfg = load_config(None, ["run.epochs=3", "optim.warmup_epochs=1"])
    s = Schedules(cfg, steps_per_epoch=10)
    assert (s.total_steps, s.warmup_steps) == (30, 10)
    first = [(s.lr(i), s.weight_decay(i), s.momentum(i)) for i in range(30)]
    again = [(Schedules(cfg, 10).lr(i), s.weight_decay(i), s.momentum(i)) for i in range(30)]
    assert first == again
    assert s.lr(10) == pytest.approx(cfg.optim.lr)
