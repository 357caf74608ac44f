"""cjepa: C-JEPA (I-JEPA + VICReg) pretraining, ablations and sweeps."""

__version__ = "0.1.0"
