"""The paper's tables and figures from a sweep: ``python -m ssad.report SWEEP_DIR_OR_WANDB_PROJECT``.

Reads every run directory under ``SWEEP_DIR`` (``results.json`` and ``.hydra/config.yaml``, at any depth; no
network) or the runs of a W&B project ``entity/project`` (public API), and writes to ``--out`` (default
``SWEEP_DIR/report``): ``table2.{md,tex,csv}`` (rows = OOD sets + Average, columns = negative variants),
``table1.{md,tex,csv}`` (per in-distribution: Rot. ImgN and Combined), ``figure2.png`` and ``figure3.png``;
for runs that group their OOD sets (``data.ood_groups``: OpenOOD's near and far), ``ood_groups.{md,tex,csv}``.
Cells are percent, mean ± sample std (ddof=1) over seeds, with the numbers published in Rafiee et al. (2022)
(or on the OpenOOD v1.5 leaderboard) beside them. A planned run without results is shown as ``missing``, never
filled in.

Modules: :mod:`~ssad.report.runs` (collect runs: disk, W&B, ``baselines.json``), :mod:`~ssad.report.published`
(the published numbers), :mod:`~ssad.report.tables` (Markdown, LaTeX, CSV),
:mod:`~ssad.report.names` (labels, dataset names, the paper's order), :mod:`~ssad.report.leaderboard`
(near-/far-OOD groups beside OpenOOD v1.5), :mod:`~ssad.report.figures` (Figures 2 and 3),
:mod:`~ssad.report.cli` (the command).
"""

from ssad.report.cli import main, write_report

__all__ = ["main", "write_report"]
