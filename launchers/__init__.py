"""SLURM launching for imix-sweeps, built on submitit (the only package that imports it).

- :mod:`launchers.sweep`: the sweep driver behind ``hydra/launcher=slurm|slurm_cpu|local``
  (via the plugin in ``hydra_plugins/imix_sweeps_launcher``) and ``python -m launchers submit``;
- :mod:`launchers.job`: what runs in each task of a job (DDP set-up, preemption, requeue);
- ``local-cluster.sh``: a real single-node SLURM cluster for trying it on one machine and CI.

See ``launchers/README.md``.
"""
