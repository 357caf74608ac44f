"""cjepa: C-JEPA (I-JEPA + VICReg) pretraining, ablations and sweeps."""

from cjepa import faults as _faults

__version__ = "0.1.0"

_faults.install()  # test-only fault injection's one seam (cjepa/hooks.py); inert unless CJEPA_TEST_FAULT is set
