"""EMA schedule study: start/end momentum, schedule shape, and EMA off.

Baseline: I-JEPA's 0.996 -> 1.0 linear. Arms vary the start momentum, the shape (cosine,
constant) and switch EMA off (momentum 0: the target is the online encoder, stop-gradient),
all with C-JEPA's VICReg terms on.

    python sweeps/ema_schedule.py [--full] [--resume]
"""

import sys

from cjepa.sweep import Study
from cjepa.sweep.cli import main
from cjepa.sweep.profiles import study_at

ARMS = {
    "0.996->1 linear": {"ema.start": 0.996, "ema.end": 1.0, "ema.schedule": "linear"},
    "0.99->1 linear": {"ema.start": 0.99, "ema.end": 1.0, "ema.schedule": "linear"},
    "0.999->1 linear": {"ema.start": 0.999, "ema.end": 1.0, "ema.schedule": "linear"},
    "0.996->1 cosine": {"ema.start": 0.996, "ema.end": 1.0, "ema.schedule": "cosine"},
    "0.996 constant": {"ema.start": 0.996, "ema.schedule": "constant"},
    "EMA off": {"ema.enabled": False},
}


def make_study(full: bool) -> Study:
    return study_at(full, "ema_schedule", arms=ARMS, baseline="0.996->1 linear",
                    **({} if full else {"seeds": (0, 1)}))  # quick: 2 seeds (5 arms)


if __name__ == "__main__":
    sys.exit(main(make_study, __doc__))
