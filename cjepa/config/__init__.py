"""The one typed config of cjepa: the single source of defaults.

A :class:`Config` is a tree of dataclasses. It is built from defaults, then a YAML file, then
dotted overrides (``loss.beta_vicreg=0.01``), and validated once, before anything expensive
starts. Sweeps address exactly the same dotted keys. Defaults follow ../docs/method.md (the
paper's recipe); CPU presets in ``configs/`` override what must change for small images.

Why hand-written and not Hydra/OmegaConf: we need strict typing of dataclass fields, tuple
values and one-line error messages that name the key; OmegaConf would add a dependency and
still need the same validation code.
"""

from cjepa.config.loading import apply_dict, coerce, from_dict, from_saved, load_config, read_yaml, set_value
from cjepa.config.schema import (
    ATTENTIONS,
    DATASETS,
    DEVICES,
    EMA_SCHEDULES,
    JEPA_LOSSES,
    PRECISIONS,
    VICREG_MODES,
    Config,
    DataConfig,
    EMAConfig,
    EvalConfig,
    LossConfig,
    MaskConfig,
    ModelConfig,
    OptimConfig,
    RunConfig,
    SigregConfig,
)
from cjepa.config.validation import check_data_source, check_output_dir, validate

__all__ = ["ATTENTIONS", "DATASETS", "DEVICES", "EMA_SCHEDULES", "JEPA_LOSSES", "PRECISIONS", "VICREG_MODES",
           "Config", "DataConfig", "EMAConfig", "EvalConfig", "LossConfig", "MaskConfig", "ModelConfig",
           "OptimConfig", "RunConfig", "SigregConfig", "apply_dict", "check_data_source", "check_output_dir", "coerce",
           "from_dict", "from_saved", "load_config", "read_yaml", "set_value", "validate"]
