"""The paper's evaluation protocol on features (Sec. 4, Figs. 2–3; docs/explanation/method.md).

``evaluate_features`` is pure (features in, metrics out) so baselines (raw pixels, an untrained network)
are scored exactly like a trained teacher; ``evaluate_network`` extracts the features first.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import torch
from torch import Tensor

from ssad.config.schema import EvalSettings  # the schema's eval.settings node, with its defaults
from ssad.data.loaders import evaluation_loader
from ssad.data.sources import ArraySet
from ssad.method.heads import MultiCropNetwork
from ssad.scoring.diagnostics import effective_rank, mean_pairwise_cosine, output_entropies
from ssad.scoring.features import extract, gather_in_order
from ssad.scoring.metrics import knn_accuracy, occupied_soft_classes, ood_metrics, sensitivity
from ssad.scoring.results import BY_LABEL, MEAN_AUROC, NN_AUROC, average_metrics, empty_results
from ssad.scoring.scores import Eq6Score, MeanFeatureScore, NearestNeighbourScore, Scorer


def ood_skipped_reason(set_names: Iterable[str], add_with: str = "+data.ood") -> str | None:
    """Why no OOD metric can be computed from the evaluation sets ``set_names`` (``train``, ``test`` and the OOD
    sets' names), and how to fix it (``add_with``: the override that adds an OOD set, ``+data.ood`` for
    training, ``+add_ood`` for ``ssad.evaluate``); None when there is nothing missing."""
    names = set(set_names)
    reasons = []
    if "test" not in names:
        reasons.append("there is no in-distribution test set (set data.test, or data.holdout=0.1 to hold out 10% of "
                       "the training images)")
    if not names - {"train", "test"}:
        reasons.append(f"there is no OOD set to compare the in-distribution images with; add one with "
                       f"{add_with}.NAME='{{format: image_folder, path: /data/other_images}}' (or format: npy, "
                       "path: FILE.npy)")
    return "; ".join(reasons) or None


def below_chance_note(results: Mapping, temperature: float) -> str | None:
    """A note naming the OOD sets whose AUROC is below 50% (Eq. 6 finds their images more typical of the training
    images than the in-distribution test images), with the AUROCs of Eq. 6's two limits where the results have
    them (nearest neighbour, τ → 0; mean training feature, τ → ∞) and the docs page on what to do. None when there
    is no such set."""
    low = {name: m["auroc"] for name, m in (results.get("ood") or {}).items()
           if m.get("auroc") is not None and m["auroc"] < 0.5}
    if not low:
        return None

    def limit(key: str) -> str:
        shown = [f"{name} {100 * results['ood'][name][key]:.1f}" for name in low
                 if results["ood"][name].get(key) is not None]
        return ", ".join(shown)

    sets = ", ".join(f"{name} ({100 * auroc:.1f})" for name, auroc in low.items())
    limits = [f"Eq. 6 as τ → 0: AUROC-1NN {limit(NN_AUROC)}" if limit(NN_AUROC) else "",
              f"as τ → ∞: AUROC-mean {limit(MEAN_AUROC)}" if limit(MEAN_AUROC) else ""]
    limits_text = "; ".join(part for part in limits if part)
    return (f"AUROC below 50 on {sets}: Eq. 6 at τ={temperature} scores these images as more typical of the training "
            f"images than the in-distribution test images{f' ({limits_text})' if limits_text else ''}. "
            "What it means and the ways out: docs/howto/is-it-learning.md#below-chance")


def evaluate_features(
    train: Tensor,
    test: Tensor | None,
    ood: Mapping[str, Tensor],
    settings: EvalSettings,
    train_labels: Tensor | None = None,
    test_labels: Tensor | None = None,
    ood_labels: Mapping[str, Tensor | None] | None = None,
    scorer: Scorer | None = None,
) -> tuple[dict, dict[str, Tensor]]:
    """Metrics of one feature space: per-OOD-set AUROC/AUPR-In/AUPR-Out/FPR95 of the OOD score ``scorer``
    (:mod:`ssad.scoring.scores`; default Eq. 6 at ``settings.temperature``) and the AUROCs of Eq. 6's two limits (the
    nearest-neighbour score, ``auroc_1nn``, τ → 0; the cosine to the mean training feature, ``auroc_mean``, τ → ∞)
    and their average, kNN
    accuracy (when both splits have labels), sensitivity (train leave-one-out vs test), and for an OOD set
    with labels (``ood_labels``) the AUROC of each of its labels against the test set (``auroc_by_label``:
    which OOD classes the detector misses). Returns the results and the scores by set (for plots)."""
    results = empty_results()
    scores: dict[str, Tensor] = {}
    if test is None:
        return results, scores
    scorer = (scorer or Eq6Score(settings.temperature)).fit(train)
    scores["test"] = scorer.score(test)
    limits = {key: limit.fit(train) for key, limit in ((NN_AUROC, NearestNeighbourScore()),
                                                       (MEAN_AUROC, MeanFeatureScore()))} if ood else {}
    limits_test = {key: limit.score(test) for key, limit in limits.items()}
    for name, feats in ood.items():
        scores[name] = scorer.score(feats)
        results["ood"][name] = ood_metrics(scores["test"], scores[name])
        for key, limit in limits.items():
            results["ood"][name][key] = ood_metrics(limits_test[key], limit.score(feats))["auroc"]
        labels = (ood_labels or {}).get(name)
        if labels is not None:
            results.setdefault(BY_LABEL, {})[name] = auroc_by_label(scores["test"], scores[name], labels)
    results["average"] = average_metrics(results["ood"])
    if train_labels is not None and test_labels is not None:
        results["knn_accuracy"] = knn_accuracy(train, train_labels, test, test_labels, settings.knn_k,
                                               settings.knn_temperature)
    results["sensitivity"] = sensitivity(train, test, scorer)
    return results, scores


def auroc_by_label(scores_in: Tensor, scores_out: Tensor, labels: Tensor) -> dict[str, float]:
    """AUROC of the in-distribution scores against the OOD images of each label, by label (as a string, JSON's
    key type), in label order."""
    return {str(int(label)): ood_metrics(scores_in, scores_out[labels == label])["auroc"]
            for label in torch.unique(labels)}


def network_features(network: MultiCropNetwork, array_set: ArraySet, size: int, settings: EvalSettings,
                     with_head: bool = False) -> tuple[Tensor, Tensor | None]:
    """Features (and head logits) of one set, sharded over processes and gathered in dataset order."""
    feats, logits = extract(network.backbone, evaluation_loader(array_set, settings.batch_size), size,
                            head=network.head if with_head else None, desc=array_set.name,
                            progress=settings.progress)
    feats = gather_in_order(feats, len(array_set))
    return feats, (gather_in_order(logits, len(array_set)) if logits is not None else None)


def soft_class_probs(logits: Tensor, center: Tensor, settings: EvalSettings) -> Tensor:
    """Teacher softmax((g_t − c)/τ) with c the running centre or the split's mean logit (Fig. 2)."""
    c = logits.mean(0, keepdim=True) if settings.soft_classes_center == "dataset" else center.cpu()
    return torch.softmax((logits - c) / settings.soft_classes_temperature, dim=-1)


def collapse_signals(features: Tensor, logits: Tensor, center: Tensor, teacher_temp: float) -> dict[str, float]:
    """The collapse signals of one feature/logit set (ssad.scoring.diagnostics): mean entropy of the teacher's centred,
    sharpened output at τ_t and entropy of its mean, beside log K; effective rank of the features, beside
    their width; mean pairwise cosine of the features."""
    h, h_mean = output_entropies(logits, center.cpu(), teacher_temp)
    return {"teacher_entropy": h, "teacher_entropy_of_mean": h_mean, "log_k": math.log(logits.shape[1]),
            "effective_rank": effective_rank(features), "feature_dim": int(features.shape[1]),
            "mean_cosine": mean_pairwise_cosine(features)}


def evaluate_network(
    network: MultiCropNetwork,
    center: Tensor,
    sets: Mapping[str, ArraySet],
    size: int,
    settings: EvalSettings,
    teacher_temp: float | None = None,
    scorer: Scorer | None = None,
) -> tuple[dict, dict[str, Tensor]]:
    """Extract features of ``sets`` (keys ``train``, optional ``test``, the rest OOD) with ``network``
    (the teacher) and compute every metric, plus occupied soft-classes of its head and the collapse signals
    (``collapse_signals``) on the soft-classes split, the teacher's output sharpened by ``teacher_temp``
    (τ_t of the current epoch; default ``settings.soft_classes_temperature``). ``scorer``: the OOD score
    (default Eq. 6 at ``settings.temperature``)."""
    split = settings.soft_classes_split if settings.soft_classes_split in sets else "train"
    feats, logits = {}, None
    for name, array_set in sets.items():
        feats[name], out = network_features(network, array_set, size, settings, with_head=name == split)
        logits = out if out is not None else logits
    ood = {k: v for k, v in feats.items() if k not in ("train", "test")}
    results, scores = evaluate_features(feats["train"], feats.get("test"), ood, settings,
                                        set_labels(sets["train"]), set_labels(sets.get("test")),
                                        {name: set_labels(sets[name]) for name in ood}, scorer)
    results["occupied_soft_classes"] = occupied_soft_classes(soft_class_probs(logits, center, settings))
    results["soft_classes_split"] = split
    tau = settings.soft_classes_temperature if teacher_temp is None else teacher_temp
    if len(feats[split]) >= 2:
        results.update(collapse_signals(feats[split], logits, center, tau))
    return results, scores


def set_labels(array_set: ArraySet | None) -> Tensor | None:
    """The labels of a set as a tensor, or None when it has none (or there is no set)."""
    if array_set is None or array_set.labels is None:
        return None
    return torch.as_tensor(array_set.labels)
