"""Each job of a parallel sweep on one machine (Hydra's joblib launcher: ``hydra/launcher=joblib
hydra.launcher.n_jobs=N``) gets its share of the CPU threads: a Hydra callback (``conf/hydra/default.yaml``) that
Hydra calls in every job's process before the job runs."""

from __future__ import annotations

import logging
from typing import Any

import torch
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from ssad.data.loaders import machine_cpus, resolve_num_workers, set_job_cpus

log = logging.getLogger(__name__)
JOBLIB = "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher"


def threads_per_job(n_jobs: int, cpus: int) -> int:
    """PyTorch's threads for one of ``n_jobs`` jobs running at once on ``cpus`` CPUs: ``cpus // n_jobs``, at least
    one; ``n_jobs`` below 1 counts as joblib counts it (-1: as many jobs as CPUs, -2: one fewer, ...)."""
    jobs = n_jobs if n_jobs > 0 else cpus + 1 + n_jobs
    return max(1, cpus // max(1, jobs))


class JobThreads(Callback):
    """In a job of the joblib launcher, the job's share of this machine's CPUs (the launcher's ``n_jobs`` run at
    once) becomes its PyTorch threads (``torch.set_num_threads``) and the CPUs that ``data.num_workers=auto``
    divides (:func:`ssad.data.loaders.set_job_cpus`), so that the jobs side by side do not oversubscribe the cores;
    under any other launcher (a single run, the basic sweep, SLURM) nothing changes."""

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        launcher = config.hydra.get("launcher") or {}
        if launcher.get("_target_") == JOBLIB:
            n_jobs, cpus = int(launcher.get("n_jobs", -1)), machine_cpus()
            share = threads_per_job(n_jobs, cpus)
            torch.set_num_threads(share)
            set_job_cpus(share)
            log.info("joblib launcher, n_jobs=%d on %d CPUs: %d torch thread(s) for this run, "
                     "data.num_workers=auto gives %d", n_jobs, cpus, torch.get_num_threads(),
                     resolve_num_workers("auto"))
