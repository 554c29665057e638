"""imix-sweeps: Hydra-configured sweeps for mixing-based contrastive self-supervised learning."""

__version__ = "0.1.0"
