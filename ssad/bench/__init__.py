"""``python -m ssad.bench``: training and evaluation speed of ssad beside a DINO-style reference (issue 5).

One job per module: :mod:`~ssad.bench.presets` (``conf/bench.yaml`` presets, fast-path levers, the composed
config), :mod:`~ssad.bench.flops` (FLOPs per image, MFU), :mod:`~ssad.bench.timing` (timers),
:mod:`~ssad.bench.step` (the training step loop), :mod:`~ssad.bench.reference` (the PIL reference pipeline),
:mod:`~ssad.bench.fit` (``trainer.fit``), :mod:`~ssad.bench.evaluation` (extraction and Eq. 6 scoring),
:mod:`~ssad.bench.run` (every figure), :mod:`~ssad.bench.table` (the printed report), :mod:`~ssad.bench.cli`.

``python -m ssad.bench.gpu.check`` (issue 38) runs every GPU figure in one call within time budgets:
:mod:`~ssad.bench.gpu.presets` (sizes, budgets), :mod:`~ssad.bench.gpu.budget` (stops), :mod:`~ssad.bench.gpu.sections`
(the sections), :mod:`~ssad.bench.gpu.table` (the printed report), :mod:`~ssad.bench.gpu.check` (the command).
"""
