import torch

from ssad.method.backbones import vit_backbone
from ssad.method.heads import DINOHead, MultiCropNetwork


def _tiny_backbone():
    return vit_backbone("vit_tiny_patch16_224", img_size=32, patch_size=8, embed_dim=32, depth=1, num_heads=2,
                        drop_path_rate=0.0)


class _CountingBackbone(torch.nn.Module):
    def __init__(self, inner):
        super().__init__()
        self.inner, self.calls, self.num_features = inner, [], inner.num_features

    def forward(self, x):
        self.calls.append(tuple(x.shape))
        return self.inner(x)


def test_one_backbone_call_per_resolution_and_outputs_split_back():
    backbone = _CountingBackbone(_tiny_backbone())
    net = MultiCropNetwork(backbone, DINOHead(backbone.num_features, out_dim=16, hidden_dim=8, bottleneck_dim=4))
    views = [torch.rand(3, 3, 32, 32) for _ in range(2)] + [torch.rand(2, 3, 32, 32)] + \
        [torch.rand(3, 3, 16, 16) for _ in range(4)]
    out = net(views)
    assert backbone.calls == [(8, 3, 32, 32), (12, 3, 16, 16)]
    assert [o.shape for o in out] == [torch.Size([v.shape[0], 16]) for v in views]
    # batching views together gives the same logits as running each view alone
    net.eval()
    alone = net([views[2]])[0]
    assert torch.allclose(net(views)[2], alone, atol=1e-5)


def test_head_last_layer_norm_fixed_or_free():
    fixed = DINOHead(8, out_dim=10, hidden_dim=8, bottleneck_dim=4, norm_last_layer=True)
    free = DINOHead(8, out_dim=10, hidden_dim=8, bottleneck_dim=4, norm_last_layer=False)
    g_fixed = fixed.last_layer.parametrizations.weight.original0
    assert not g_fixed.requires_grad and torch.all(g_fixed == 1)
    assert free.last_layer.parametrizations.weight.original0.requires_grad
    assert fixed.last_layer.bias is None


def test_head_logits_stay_fp32_under_bf16_autocast():
    head = DINOHead(8, out_dim=10, hidden_dim=8, bottleneck_dim=4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = head(torch.randn(2, 8))
    assert out.dtype == torch.float32


def test_fused_attention_switch_gives_same_features():
    """``fused_attn`` (the config key ``model.backbone.fused_attn``) picks the attention kernel of every block, and
    both kernels give the same features (the benchmark's lever changes speed only)."""
    torch.manual_seed(0)
    fused = vit_backbone("vit_tiny_patch16_224", img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=2,
                         drop_path_rate=0.0, fused_attn=True)
    plain = vit_backbone("vit_tiny_patch16_224", img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=2,
                         drop_path_rate=0.0, fused_attn=False)
    plain.load_state_dict(fused.state_dict())
    assert [b.attn.fused_attn for b in fused.blocks] == [True, True]
    assert [b.attn.fused_attn for b in plain.blocks] == [False, False]
    fused.eval(), plain.eval()
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(fused(x), plain(x), atol=1e-5, rtol=1e-5)
