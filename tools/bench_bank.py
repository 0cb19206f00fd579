"""Scoring throughput against the size of a detector's bank, on this machine's CPU (docs/results/bank-size.md).

For each bank size M: a bank of M random normalised features of the backbone's width (stored in fp16, as a detector
file keeps them), then (1) Eq. 6 alone: random normalised query features scored against the bank
(:class:`ssad.scoring.scores.Eq6Score`), in features/s, and (2) the whole detector: uint8 images through the
backbone and Eq. 6 (:meth:`ssad.deploy.detector.Detector.score`), in images/s. The backbone is the one of a detector
file (``--detector``) or, by default, the quick-start's (``experiment=demo``: the small CNN on 32 px images); its
weights do not change the timing. Each figure is the best of ``--repeats`` timed runs after one warm-up run.

Usage: ``python tools/bench_bank.py [M ...] [--detector detector.pt] [--threads 2] [--images 2048]``
(M defaults to 10000 100000).
"""

from __future__ import annotations

import argparse
import platform
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from ssad.deploy.detector import Detector
from ssad.scoring.scores import Eq6Score


def quickstart_detector() -> Detector:
    """A detector with the quick-start's backbone (``experiment=demo``), untrained, and a one-row bank."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from ssad.config.keys import CONFIG_DIR, prepare_hydra
    from ssad.method.backbones import build_backbone, builder_name

    prepare_hydra()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("train", overrides=["experiment=demo"])
    args = OmegaConf.to_container(cfg.model.backbone, resolve=True)
    args["builder"] = builder_name(args.pop("_target_"))
    plain = dict(args)
    backbone = build_backbone(plain.pop("builder"), **plain)
    view_size = cfg.eval.size or cfg.augment.global_size
    return Detector(backbone, torch.zeros(1, 1), args, cfg.data.size, view_size, 0.04, threshold=0.5)


def best_seconds(run: Callable[[], object], repeats: int) -> float:
    """The shortest of ``repeats`` timed calls of ``run``, after one untimed call."""
    run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("banks", nargs="*", type=int, default=[10_000, 100_000], help="bank sizes M")
    parser.add_argument("--detector", help="a detector file whose backbone to time (default: the quick-start's)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--images", type=int, default=2048, help="images (and query features) scored per run")
    parser.add_argument("--batch-size", type=int, default=256, help="images per batch, as ssad.score's batch_size")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per figure (the best is printed)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    detector = Detector.load(args.detector, device="cpu") if args.detector else quickstart_detector()
    size = detector.data_size
    images = torch.randint(0, 256, (args.images, 3, size, size), dtype=torch.uint8)
    width = detector.features(images[:2]).shape[1]
    queries = F.normalize(torch.randn(args.images, width), dim=1)
    print(f"torch {torch.__version__}, {args.threads} threads, {platform.processor() or platform.machine()}; "
          f"{detector.backbone_args.get('builder')} backbone, {size} px images, feature width {width}; "
          f"{args.images} images per run, best of {args.repeats}")
    print(f"{'bank rows':>10}  {'Eq. 6 alone (features/s)':>25}  {'detector (images/s)':>20}")
    for rows in args.banks:
        detector.bank = F.normalize(torch.randn(rows, width), dim=1).half()
        scorer = Eq6Score(detector.temperature).fit(detector.bank.float())
        eq6 = best_seconds(lambda s=scorer: s.score(queries), args.repeats)
        whole = best_seconds(lambda: detector.score(images, args.batch_size), args.repeats)
        print(f"{rows:>10}  {args.images / eq6:>25.0f}  {args.images / whole:>20.0f}")


if __name__ == "__main__":
    main()
