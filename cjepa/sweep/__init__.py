"""Ray Tune studies over cjepa configs: study definitions, the runner, results and statistics."""

from cjepa.sweep.study import Space, Study, arm_name, validate_study

__all__ = ["Space", "Study", "arm_name", "validate_study"]
