
import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from ssad.data.sources import ArraySet
from ssad.method.backbones import vit_backbone
from ssad.method.heads import DINOHead, MultiCropNetwork
from ssad.scoring.evaluation import EvalSettings, evaluate_features, network_features, soft_class_probs
from ssad.scoring.features import preprocess
from ssad.scoring.metrics import mean_feature_score, nearest_neighbour_score, ood_metrics, ood_score
from ssad.scoring.results import flatten_metrics

SETTINGS = EvalSettings(progress=False, batch_size=4)


def _network() -> MultiCropNetwork:
    torch.manual_seed(0)
    backbone = vit_backbone("vit_tiny_patch16_224", img_size=16, patch_size=8, embed_dim=16, depth=1,
                            num_heads=2, drop_path_rate=0.0)
    return MultiCropNetwork(backbone, DINOHead(16, out_dim=8, hidden_dim=8, bottleneck_dim=4)).eval()


def _images(n: int, seed: int) -> ArraySet:
    rng = np.random.default_rng(seed)
    return ArraySet(images=rng.integers(0, 256, (n, 3, 8, 8), dtype=np.uint8),
                    labels=rng.integers(0, 3, n), name=f"set{seed}")


def test_evaluate_features_per_set_and_average():
    torch.manual_seed(0)
    train, test = torch.randn(40, 5), torch.randn(12, 5)
    ood = {"near": torch.randn(9, 5) + 0.5, "far": torch.randn(7, 5) + 3.0}
    results, scores = evaluate_features(train, test, ood, SETTINGS)
    s_test, nn_test = ood_score(test, train, 0.04), nearest_neighbour_score(test, train)
    mean_test = mean_feature_score(test, train)
    for name, feats in ood.items():
        eq6 = ood_metrics(s_test, ood_score(feats, train, 0.04))
        nearest = ood_metrics(nn_test, nearest_neighbour_score(feats, train))["auroc"]
        middle = ood_metrics(mean_test, mean_feature_score(feats, train))["auroc"]
        assert results["ood"][name] == pytest.approx({**eq6, "auroc_1nn": nearest, "auroc_mean": middle})
        assert set(results["average"]) == set(results["ood"][name])  # the limits are averaged too
    assert results["average"]["auroc"] == pytest.approx(
        (results["ood"]["near"]["auroc"] + results["ood"]["far"]["auroc"]) / 2)
    assert results["knn_accuracy"] is None  # no labels: kNN is skipped, not invented
    assert 0.0 <= results["sensitivity"] <= 1.0
    assert torch.equal(scores["test"], s_test)


def test_auroc_by_label_finds_the_missed_ood_class():
    """OOD label 7 lies on the training images (the detector misses it, AUROC ≈ 0.5), label 3 far away (1.0); a
    set without labels gets no entry."""
    torch.manual_seed(0)
    inside, outside = torch.tensor([4.0, 0, 0, 0, 0]), torch.tensor([0, 0, 0, 0, 4.0])  # cosine 0 between them
    train, test = torch.randn(60, 5) + inside, torch.randn(30, 5) + inside
    near = torch.cat([torch.randn(30, 5) + inside, torch.randn(20, 5) + outside])
    labels = torch.tensor([7] * 30 + [3] * 20)
    results, scores = evaluate_features(train, test, {"near": near, "far": torch.randn(9, 5) + outside}, SETTINGS,
                                        ood_labels={"near": labels, "far": None})
    by_label = results["auroc_by_label"]
    assert list(by_label) == ["near"] and list(by_label["near"]) == ["3", "7"]
    assert by_label["near"]["3"] == 1.0
    assert 0.3 < by_label["near"]["7"] < 0.7
    assert by_label["near"]["7"] == pytest.approx(ood_metrics(scores["test"], scores["near"][:30])["auroc"])


def test_evaluate_features_knn_with_labels():
    train = torch.eye(4).repeat(5, 1)
    labels = torch.arange(4).repeat(5)
    results, _ = evaluate_features(train, torch.eye(4), {}, SETTINGS, labels, torch.arange(4))
    assert results["knn_accuracy"] == 1.0 and results["average"] is None


def test_soft_class_probs_centring():
    logits = torch.tensor([[1.0, 0.0], [3.0, 0.0]])
    running = soft_class_probs(logits, torch.zeros(1, 2), SETTINGS)
    dataset = soft_class_probs(logits, torch.zeros(1, 2),
                               EvalSettings(soft_classes_center="dataset", progress=False))
    assert torch.allclose(running.sum(1), torch.ones(2))
    assert dataset[0, 0] < 0.5 < running[0, 0]  # centred by the mean logit, the first row falls below


def test_bad_settings_name_the_key():
    with pytest.raises(ValueError, match="soft_classes_split"):
        EvalSettings(soft_classes_split="val")


def test_flatten_metrics_keys():
    flat = flatten_metrics({"ood": {"svhn": {"auroc": 0.9}}, "average": {"auroc": 0.9}, "knn_accuracy": None,
                            "sensitivity": 0.5})
    assert flat == {"eval/svhn/auroc": 0.9, "eval/average/auroc": 0.9, "eval/sensitivity": 0.5}


def test_preprocess_resizes_and_normalises():
    x = torch.full((2, 3, 8, 8), 255, dtype=torch.uint8)
    out = preprocess(x, 16)
    assert out.shape == (2, 3, 16, 16)
    assert torch.allclose(out[:, 0], torch.full((2, 16, 16), (1 - 0.485) / 0.229), atol=1e-4)


def _ddp_worker(rank: int, world: int, store: str, out: dict) -> None:
    # a file store, not a TCP port: no race for a free port with other tests running beside this one
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    try:
        feats, logits = network_features(_network(), _images(11, 1), 16, SETTINGS, with_head=True)
        out[rank] = (feats, logits)
    finally:
        dist.destroy_process_group()


def test_ddp_features_gathered_in_dataset_order_equal_single_process(tmp_path):
    single, single_logits = network_features(_network(), _images(11, 1), 16, SETTINGS, with_head=True)
    with mp.Manager() as manager:
        out = manager.dict()
        mp.spawn(_ddp_worker, args=(2, str(tmp_path / "store"), out), nprocs=2, join=True)
        results = dict(out)
    for rank in (0, 1):
        feats, logits = results[rank]
        assert feats.shape == single.shape == (11, 16)  # sampler padding removed
        assert torch.allclose(feats, single, atol=1e-5)
        assert torch.allclose(logits, single_logits, atol=1e-5)
    # the metrics computed from the gathered features are therefore the single-process ones
    bank = results[0][0]
    assert ood_metrics(ood_score(bank[:5], bank), ood_score(bank[5:], bank)) == \
        ood_metrics(ood_score(single[:5], single), ood_score(single[5:], single))


def test_training_curves_from_metrics_jsonl(tmp_path):
    from ssad.scoring.plots import plot_curves
    from ssad.utils.files import append_jsonl, read_jsonl

    log = tmp_path / "metrics.jsonl"
    for epoch, auroc in ((2, 0.6), (4, 0.7), (4, 0.8)):  # epoch 4 evaluated again after a resume
        append_jsonl(log, {"epoch": epoch, "ood": {"svhn": {"auroc": auroc}}, "average": {"auroc": auroc},
                           "knn_accuracy": None, "sensitivity": 0.5, "occupied_soft_classes": 7})
    with open(log, "a") as f:
        f.write('{"epoch": 6, "ood": {"sv')  # a torn last line
    records = read_jsonl(log)
    assert [r["epoch"] for r in records] == [2, 4, 4]
    assert read_jsonl(tmp_path / "missing.jsonl") == []
    [path] = plot_curves(records, [3.0, 2.5, 2.4, 2.3], tmp_path / "plots", "digits / none")
    assert path.name == "training_curves.png" and path.stat().st_size > 0
    assert plot_curves([], [], tmp_path / "empty") == []
