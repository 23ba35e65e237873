"""Distillation terms and the student objective, on tiny stand-in networks of the real shapes."""

import copy
import json
from pathlib import Path

import pytest
from safetensors.torch import load_file
import torch
from torch import nn
import torch.nn.functional as F

from rcdepth_ros.models.outputs import StudentOutput, TeacherOutput
from rcdepth_ros.training.distill import (
    SCHEMES,
    LossWeights,
    d2kd_loss,
    image_feature_kd,
    inter_depth_kd,
    pairwise_similarity_kd,
    pairwise_similarity_kd_single,
    radar_feature_kd,
    student_loss,
    teacher_forward,
    teacher_saliency,
    xkd_loss,
    xkd_term,
)
from rcdepth_ros.training.losses import gt_masks

FIXTURES = Path(__file__).resolve().parent / 'fixtures' / 'losses'
H, W = 32, 64
IMAGE_WIDTHS = (64, 64, 128, 256, 512)  # 1/2 .. 1/32
RADAR_WIDTHS = (64, 128, 128, 512, 512)  # 1/2 .. 1/32
DECODER_WIDTHS = (512, 128, 128, 64, 32)  # 1/32 .. 1/2


class TinyDepthNet(nn.Module):
    """Stand-in with the documented output fields and widths (1x1 convs on pooled inputs)."""

    def __init__(self, teacher: bool, width: int = 4) -> None:
        super().__init__()
        self.teacher = teacher
        self.image_in = nn.Conv2d(3, width, 3, padding=1)
        self.radar_in = nn.Conv2d(4, width, 3, padding=1)
        self.image_proj = nn.ModuleList(nn.Conv2d(width, c, 1) for c in IMAGE_WIDTHS)
        self.radar_proj = nn.ModuleList(nn.Conv2d(width, c, 1) for c in RADAR_WIDTHS)
        self.decoder = nn.ModuleList(
            nn.Conv2d(IMAGE_WIDTHS[4 - k] + RADAR_WIDTHS[4 - k], c, 1)
            for k, c in enumerate(DECODER_WIDTHS))
        self.depth_heads = nn.ModuleList(nn.Conv2d(c, 1, 1) for c in DECODER_WIDTHS)
        self.side_heads = nn.ModuleList(nn.Conv2d(c, 1, 1) for c in DECODER_WIDTHS[2:])
        self.extra_head = nn.Conv2d(DECODER_WIDTHS[-1], 2, 1)

    def forward(self, image, radar):
        x_i = torch.tanh(self.image_in(image))
        x_r = torch.tanh(self.radar_in(radar))
        image_feats, radar_feats = [], []
        for k in range(5):
            s = 2 ** (k + 1)
            image_feats.append(F.relu(self.image_proj[k](F.avg_pool2d(x_i, s))))
            radar_feats.append(F.relu(self.radar_proj[k](F.avg_pool2d(x_r, s))))
        decoder = [F.relu(conv(torch.cat([image_feats[4 - k], radar_feats[4 - k]], 1)))
                   for k, conv in enumerate(self.decoder)]
        size = image.shape[-2:]
        logit = sum(F.interpolate(head(d), size=size, mode='bilinear', align_corners=False)
                    for head, d in zip(self.depth_heads, decoder))
        depth = 100.0 * torch.sigmoid(logit)
        inter = tuple(torch.sigmoid(F.interpolate(head(d), size=size, mode='nearest'))
                      for head, d in zip(self.side_heads, decoder[2:]))
        extra = F.interpolate(self.extra_head(decoder[-1]), size=size, mode='nearest')
        common = dict(depth=depth, inter_depths=inter, decoder_features=tuple(decoder),
                      image_features=tuple(image_feats), radar_features=tuple(radar_feats),
                      xkd_features=(image_feats[3], radar_feats[3], decoder[1]))
        if self.teacher:
            return TeacherOutput(confidence=torch.sigmoid(extra[:, :1]),
                                 coarse_depth=100.0 * torch.sigmoid(extra[:, 1:]), **common)
        return StudentOutput(log_scale=extra[:, :1], **common)


def _batch(b: int = 2, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    dense = (1 + 79 * torch.rand(b, 1, H, W, generator=g)) \
        * (torch.rand(b, 1, H, W, generator=g) < 0.6)
    single = (1 + 79 * torch.rand(b, 1, H, W, generator=g)) \
        * (torch.rand(b, 1, H, W, generator=g) < 0.2)
    single[-1, :, H // 2:] = 0.0
    return {'image': torch.randn(b, 3, H, W, generator=g),
            'radar': torch.rand(b, 4, H, W, generator=g) * (torch.rand(b, 1, H, W,
                                                                       generator=g) < 0.05),
            'depth_single': single, 'depth_dense': dense,
            'confidence_gt': (torch.rand(b, 1, H, W, generator=g) < 0.3).float()}


def _sub(batch: dict, s: slice) -> dict:
    return {k: v[s] for k, v in batch.items()}


@pytest.fixture(scope='module')
def nets():
    torch.manual_seed(0)
    teacher = TinyDepthNet(teacher=True).eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    students = {'student_a': TinyDepthNet(teacher=False).eval(),
                'student_b': TinyDepthNet(teacher=False, width=6).eval()}
    return teacher, students


@pytest.fixture(scope='module')
def golden():
    inputs = {k: v.double() for k, v in load_file(str(FIXTURES / 'inputs.safetensors')).items()}
    return inputs, json.loads((FIXTURES / 'expected.json').read_text())


def test_golden_values(golden):
    x, e = golden
    _, m_d = gt_masks(x['depth_single'], x['depth_dense'])
    got = {
        'similarity_kd': pairwise_similarity_kd_single(x['feat_student'], x['feat_teacher']),
        'inter_depth_kd_single': inter_depth_kd([x['inter_student']], [x['inter_teacher']], m_d),
        'd2kd_b80_t1': d2kd_loss(x['d2kd_student'], x['d2kd_teacher']),
        'd2kd_b16_t2': d2kd_loss(x['d2kd_student'], x['d2kd_teacher'], 16, 2.0),
    }
    for name, value in got.items():
        torch.testing.assert_close(value.item(), e[name], rtol=1e-6, atol=1e-9, msg=name)


def test_kd_terms_vanish_when_student_equals_teacher(nets):
    teacher, _ = nets
    batch = _batch()
    out, maps = teacher_forward(teacher, batch['image'], batch['radar'], saliency=True)
    _, m_d = gt_masks(batch['depth_single'], batch['depth_dense'])
    zero = torch.tensor(0.0)
    torch.testing.assert_close(image_feature_kd(out.image_features, out.image_features), zero)
    torch.testing.assert_close(radar_feature_kd(out.radar_features, out.radar_features), zero)
    torch.testing.assert_close(
        pairwise_similarity_kd(out.decoder_features, out.decoder_features), zero)
    torch.testing.assert_close(inter_depth_kd(out.inter_depths, out.inter_depths, m_d), zero)
    torch.testing.assert_close(d2kd_loss(out.depth, out.depth), zero, atol=1e-6, rtol=0)
    assert any(m.abs().sum() > 0 for m in maps)  # else the X-KD checks below are vacuous
    torch.testing.assert_close(xkd_loss(maps, maps), zero, atol=1e-6, rtol=0)
    # A differentiable copy of the teacher as student: its own saliency matches too.
    twin = copy.deepcopy(teacher).requires_grad_(True)
    twin_out = twin(batch['image'], batch['radar'])
    torch.testing.assert_close(xkd_term(twin_out, maps), zero, atol=1e-5, rtol=0)


def test_kd_terms_positive_for_different_networks(nets):
    teacher, students = nets
    batch = _batch()
    t_out, maps = teacher_forward(teacher, batch['image'], batch['radar'], saliency=True)
    s_out = students['student_a'](batch['image'], batch['radar'])
    _, terms = student_loss(s_out, batch, t_out, 'lircdepth')
    for name in ('kd_image', 'kd_radar', 'kd_similarity', 'kd_inter_depth'):
        assert terms[name] > 0, name
    _, terms = student_loss(s_out, batch, t_out, 'xdrcdepth', teacher_maps=maps)
    assert terms['xkd'] > 0 and terms['d2kd'] > 0


def test_terms_per_sample_not_broadcast(nets):
    teacher, students = nets
    batch = _batch()
    student = students['student_a']

    def losses(s: slice) -> dict:
        b = _sub(batch, s)
        t_out, maps = teacher_forward(teacher, b['image'], b['radar'], saliency=True)
        s_out = student(b['image'], b['radar'])
        _, m_d = gt_masks(b['depth_single'], b['depth_dense'])
        _, lir = student_loss(s_out, b, t_out, 'lircdepth')
        _, xd = student_loss(s_out, b, t_out, 'xdrcdepth', teacher_maps=maps)
        lir.update(xd)
        return lir

    both = losses(slice(0, 2))
    first, second = losses(slice(0, 1)), losses(slice(1, 2))
    for name, value in both.items():
        torch.testing.assert_close(value, (first[name] + second[name]) / 2, msg=name,
                                   rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize('scheme', SCHEMES)
@pytest.mark.parametrize('student_name', ['student_a', 'student_b'])
def test_student_loss_gradients(nets, scheme, student_name):
    teacher, students = nets
    student = students[student_name]
    student.zero_grad()
    batch = _batch(seed=1)
    t_out, maps = teacher_forward(teacher, batch['image'], batch['radar'],
                                  saliency=scheme == 'xdrcdepth')
    s_out = student(batch['image'], batch['radar'])
    total, terms = student_loss(s_out, batch, t_out if scheme != 'none' else None, scheme,
                                LossWeights(), teacher_maps=maps)
    assert torch.isfinite(total)
    expected_keys = {'depth', 'smoothness', 'nll'} | {
        'none': set(), 'lircdepth': {'kd_image', 'kd_radar', 'kd_similarity', 'kd_inter_depth'},
        'xdrcdepth': {'xkd', 'd2kd'}}[scheme]
    assert set(terms) == expected_keys
    total.backward()
    for name, p in student.named_parameters():
        if name.startswith('side_heads') and scheme != 'lircdepth':
            assert p.grad is None, name  # inter-depths are used by LiRCDepth KD only
            continue
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name
    assert student.extra_head.weight.grad.abs().sum() > 0  # the uncertainty head trains
    assert all(p.grad is None for p in teacher.parameters())
    if scheme != 'none':
        assert all(not t.requires_grad for t in t_out.image_features + (t_out.depth,))


def test_weights_combine_terms(nets):
    teacher, students = nets
    batch = _batch(seed=2)
    t_out, maps = teacher_forward(teacher, batch['image'], batch['radar'], saliency=True)
    s_out = students['student_b'](batch['image'], batch['radar'])
    w = LossWeights(xkd=0.25, d2kd=2.0, smoothness=0.01, uncertainty_nll=0.5)
    total, t = student_loss(s_out, batch, t_out, 'xdrcdepth', w, teacher_maps=maps)
    expected = t['depth'] + 0.01 * t['smoothness'] + 0.5 * t['nll'] + 0.25 * t['xkd'] \
        + 2.0 * t['d2kd']
    torch.testing.assert_close(total.detach(), expected)


def test_xkd_gradient_flows_through_saliency():
    # The map depends on the head weight only through alpha = dphi/dF, so a non-zero gradient
    # on that weight proves the saliency itself is differentiable (create_graph=True).
    torch.manual_seed(3)
    feats = torch.randn(2, 6, 4, 8, requires_grad=True)
    head = torch.randn(1, 6, 1, 1, requires_grad=True)
    depth = 100.0 * torch.sigmoid(F.conv2d(torch.tanh(feats), head))  # (2, 1, 4, 8)
    out = StudentOutput(depth=depth, log_scale=depth, inter_depths=(), decoder_features=(),
                        image_features=(), radar_features=(), xkd_features=(feats,) * 3)
    teacher_maps = [torch.rand(2, 1, 8, 16)] * 3  # larger than the student's: resized
    loss = xkd_term(out, teacher_maps)
    (g_head,) = torch.autograd.grad(loss, head)
    assert g_head.abs().sum() > 0


def test_teacher_forward_keeps_teacher_frozen(nets):
    teacher, _ = nets
    batch = _batch(b=1)
    out, maps = teacher_forward(teacher, batch['image'], batch['radar'], saliency=True)
    assert len(maps) == 3 and maps[0].shape == (1, 1, H // 16, W // 16)
    assert not any(m.requires_grad for m in maps)
    assert not out.depth.requires_grad
    assert all(p.grad is None for p in teacher.parameters())
    plain, none_maps = teacher_forward(teacher, batch['image'], batch['radar'])
    assert none_maps is None
    torch.testing.assert_close(plain.depth, out.depth)
    with pytest.raises(ValueError, match='graph'):
        teacher_saliency(plain)


def test_d2kd_and_similarity_properties():
    torch.manual_seed(4)
    t = 100 * torch.rand(1, 1, 4, 6)
    near, far = t + 0.5, (t + 30).clamp(max=100)
    assert d2kd_loss(near, t) < d2kd_loss(far, t)
    feats = torch.randn(1, 8, 10, 20)
    # Similarity is invariant to per-cell positive scaling (cosine), not to shuffling.
    torch.testing.assert_close(pairwise_similarity_kd_single(feats * 3.0, feats),
                               torch.tensor(0.0), atol=1e-6, rtol=0)
    shuffled = feats[:, torch.randperm(8)]
    assert pairwise_similarity_kd_single(shuffled, feats) > 0


def test_bad_configuration_raises(nets):
    teacher, students = nets
    batch = _batch(b=1)
    s_out = students['student_a'](batch['image'], batch['radar'])
    with pytest.raises(ValueError, match='scheme'):
        student_loss(s_out, batch, None, 'fitnet')
    with pytest.raises(ValueError, match='teacher'):
        student_loss(s_out, batch, None, 'lircdepth')
    with pytest.raises(ValueError, match='d2kd_bins'):
        LossWeights(d2kd_bins=1)
    with pytest.raises(ValueError, match='xkd'):
        LossWeights(xkd=-1.0)
    with pytest.raises(ValueError, match='student'):
        image_feature_kd(s_out.image_features[:4], s_out.image_features)


# ----------------------------------------------------------------- X-KD on the real students

def _channel_weights(model, image, radar, layer: int, held: bool) -> torch.Tensor:
    """Grad-CAM channel weights alpha (B, C) of one X-KD layer of a real student."""
    from rcdepth_ros.training.distill import batch_statistics_held, image_mean_depth

    if held:
        with batch_statistics_held(model):
            out = model(image, radar)
    else:
        out = model(image, radar)
    feature = out.xkd_features[layer]
    (grad,) = torch.autograd.grad(image_mean_depth(out.depth).sum(), feature)
    return grad.mean(dim=(2, 3))  # (B, C)


def _real_student(variant: str):
    from rcdepth_ros.models import build_model, get_variant

    torch.manual_seed(0)
    return build_model(get_variant(variant)).train()


def _inputs(batch: int):
    gen = torch.Generator().manual_seed(1)
    image = torch.randn(batch, 3, 64, 128, generator=gen)
    radar = torch.zeros(batch, 4, 64, 128)
    radar[:, 0, 40:60:3, 10:120:7] = 10 + 30 * torch.rand(batch, 7, 16, generator=gen)
    return image, radar


@pytest.mark.parametrize('variant', ['xdrcdepth', 'lircdepth'])
def test_student_saliency_is_per_sample_in_train_mode(variant):
    """Train-mode batch norm forces sum_b alpha_b = 0; held statistics must not."""
    model = _real_student(variant)
    image, radar = _inputs(2)
    decoder = 2  # the decoder 1/16 layer
    coupled = _channel_weights(model, image, radar, decoder, held=False)
    # The defect being fixed: in plain train mode the two samples' weights are opposite.
    assert F.cosine_similarity(coupled[0], coupled[1], dim=0) < -0.99
    held = _channel_weights(model, image, radar, decoder, held=True)
    assert F.cosine_similarity(held[0], held[1], dim=0) > -0.5
    assert held.sum(0).norm() > 0.1 * held.norm()


def test_held_statistics_equal_eval_mode_with_the_batch_statistics():
    """Oracle: torch's own eval-mode batch norm, its running statistics set to the batch's."""
    model = _real_student('xdrcdepth')
    image, radar = _inputs(2)
    held = _channel_weights(model, image, radar, 2, held=True)
    oracle = copy.deepcopy(model)
    norms = [m for m in oracle.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    sizes = {}

    def record(module, args, _out):  # elements per channel, to undo torch's Bessel factor
        sizes[module] = args[0].numel() // args[0].shape[1]

    hooks = [m.register_forward_hook(record) for m in norms]
    for m in norms:
        m.momentum = 1.0  # the running statistics become this batch's
    with torch.no_grad():
        oracle(image, radar)
    for h in hooks:
        h.remove()
    for m in norms:
        n = sizes[m]
        m.running_var.mul_((n - 1) / n)  # torch keeps the unbiased variance
    oracle.eval()
    expected = _channel_weights(oracle, image, radar, 2, held=False)
    # Float32 reductions differ in order between the two batch-norm paths, and 149 layers of a
    # random-init network amplify that; the weights must still point the same way per sample.
    assert F.cosine_similarity(held, expected, dim=1).min() > 0.99
    torch.testing.assert_close(held.norm(dim=1), expected.norm(dim=1), rtol=0.05, atol=0)


def test_student_saliency_at_batch_one_is_not_noise():
    model = _real_student('xdrcdepth')
    image, radar = _inputs(1)
    coupled = _channel_weights(model, image, radar, 2, held=False)
    held = _channel_weights(model, image, radar, 2, held=True)
    # Plain train mode: the weights are floating-point noise, orders below the held ones.
    assert held.abs().max() > 1e3 * coupled.abs().max()


def test_trainer_xkd_uses_per_sample_student_saliency(monkeypatch):
    """The trainer's X-KD term is built from a forward with batch statistics held."""
    from rcdepth_ros.training import distill

    calls = []
    original = distill.batch_statistics_held

    def spy(model):
        calls.append(model)
        return original(model)

    monkeypatch.setattr(distill, 'batch_statistics_held', spy)
    model = _real_student('xdrcdepth')
    image, radar = _inputs(2)
    out = distill.student_saliency_forward(model, image, radar)
    assert calls == [model]
    # Running statistics were not updated by the saliency forward.
    norm = next(m for m in model.modules() if isinstance(m, nn.BatchNorm2d))
    assert int(norm.num_batches_tracked) == 0
    assert out.depth.shape == (2, 1, 64, 128)


def test_d2kd_on_ground_truth_pixels_is_the_masked_mean_of_the_per_pixel_kl():
    from rcdepth_ros.training.distill import d2kd_loss

    gen = torch.Generator().manual_seed(3)
    student = 100 * torch.rand(2, 1, 6, 8, generator=gen)
    teacher = 100 * torch.rand(2, 1, 6, 8, generator=gen)
    mask = (torch.rand(2, 1, 6, 8, generator=gen) > 0.6).float()
    # Oracle: the KL written out per pixel from the definition, averaged over masked pixels.
    centres = (torch.arange(80) + 0.5) * 100 / 80
    p = torch.softmax(-(student[:, 0, ..., None] - centres).abs(), -1)
    q = torch.softmax(-(teacher[:, 0, ..., None] - centres).abs(), -1)
    kl = (q * (q.log() - p.log())).sum(-1)  # (B, H, W)
    expected = torch.stack([kl[b][mask[b, 0] > 0].mean() for b in range(2)]).mean()
    torch.testing.assert_close(d2kd_loss(student, teacher, mask=mask), expected)
    torch.testing.assert_close(d2kd_loss(student, teacher), kl.mean())


def test_kd_warm_up_ramps_every_distillation_weight():
    from rcdepth_ros.training.distill import KD_WEIGHTS, kd_ramp

    w = LossWeights(kd_warmup_steps=10)
    early = kd_ramp(w, 0)
    for name in KD_WEIGHTS:
        assert getattr(early, name) == pytest.approx(getattr(w, name) / 10)
    assert early.depth == w.depth and early.smoothness == w.smoothness
    assert kd_ramp(w, 4).xkd == pytest.approx(w.xkd / 2)
    assert kd_ramp(w, 10) is w and kd_ramp(LossWeights(), 0) == LossWeights()
    with pytest.raises(ValueError):
        LossWeights(d2kd_pixels='some')
