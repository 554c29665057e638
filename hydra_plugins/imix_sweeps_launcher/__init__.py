"""Hydra launcher plugin for imix-sweeps: each run of a sweep becomes one SLURM (or local
submitit) job of ``nodes x tasks_per_node`` DDP tasks.

This package only declares the launcher's config schema (built on hydra-submitit-launcher's)
and a thin ``Launcher`` that delegates to :mod:`launchers.sweep`, the only code that imports
submitit. The presets live in ``conf/hydra/launcher/`` (``slurm``, ``slurm_cpu``, ``local``).
"""
