"""DepthEstimator: padding/cropping, batching, sigma, options and the real student variants."""

import copy
import math

import numpy as np
import pytest
import torch
from torch import nn

from rcdepth_ros.inference import DepthEstimator, Prediction, pad_to_multiple
from rcdepth_ros.models.outputs import StudentOutput, TeacherOutput
from rcdepth_ros.preprocess import image_to_tensor


class PixelStudent(nn.Module):
    """Per-pixel network (1x1 convs) that, like the real ones, needs sizes divisible by 32."""

    def __init__(self, log_scale: float | None = None) -> None:
        super().__init__()
        self.depth_head = nn.Conv2d(7, 1, 1)
        self.scale_head = nn.Conv2d(7, 1, 1)
        self.fixed_log_scale = log_scale

    def forward(self, image, radar):
        if image.shape[-1] % 32 or image.shape[-2] % 32:
            raise ValueError('size not divisible by 32')
        x = torch.cat([image, radar * 0.1], dim=1)
        depth = 100.0 * torch.sigmoid(self.depth_head(x))
        log_scale = self.scale_head(x)
        if self.fixed_log_scale is not None:
            log_scale = torch.full_like(depth, self.fixed_log_scale)
        return StudentOutput(depth, log_scale, (), (), (), (), ())


class PixelTeacher(PixelStudent):
    def forward(self, image, radar):
        out = super().forward(image, radar)
        return TeacherOutput(out.depth, out.depth, out.depth, (), (), (), (), ())


def make_inputs(batch, height, width, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (batch, height, width, 3), dtype=np.uint8)
    radar = np.zeros((batch, 4, height, width), np.float32)
    radar[:, :, ::7, ::5] = rng.uniform(1, 60, radar[:, :, ::7, ::5].shape)
    return images, radar


def test_pad_replicates_image_and_zero_pads_radar():
    image = torch.arange(2 * 3 * 5 * 7, dtype=torch.float32).reshape(2, 3, 5, 7)
    radar = torch.ones(2, 4, 5, 7)
    image_p, radar_p = pad_to_multiple(image, radar, 4)
    assert image_p.shape == (2, 3, 8, 8) and radar_p.shape == (2, 4, 8, 8)
    torch.testing.assert_close(image_p[..., :5, :7], image)
    torch.testing.assert_close(image_p[..., 7, :7], image[..., 4, :])  # bottom row repeated
    torch.testing.assert_close(image_p[..., :5, 7], image[..., :, 6])  # right column repeated
    assert radar_p[..., 5:, :].abs().sum() == 0 and radar_p[..., :, 7:].abs().sum() == 0


def test_odd_size_is_cropped_back_pixel_aligned():
    torch.manual_seed(0)
    model = PixelStudent().eval()
    est = DepthEstimator(model, device='cpu')
    images, radar = make_inputs(2, 45, 70)  # H != W, neither a multiple of 32
    pred = est.predict(images, radar)
    assert isinstance(pred, Prediction)
    assert pred.depth.shape == (2, 45, 70) and pred.sigma.shape == (2, 45, 70)
    assert pred.depth.dtype == np.float32 and pred.sigma.dtype == np.float32
    # A per-pixel model gives the same value at (v, u) whatever the padding.
    with torch.no_grad():
        x = torch.cat([image_to_tensor(images), torch.from_numpy(radar) * 0.1], 1)
        expected_depth = 100 * torch.sigmoid(model.depth_head(x))[:, 0].numpy()
        expected_sigma = math.sqrt(2) * torch.exp(model.scale_head(x))[:, 0].numpy()
    np.testing.assert_allclose(pred.depth, expected_depth, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(pred.sigma, expected_sigma, rtol=1e-5)
    assert est.model_time_ms > 0


def test_single_image_and_batch_agree():
    torch.manual_seed(0)
    est = DepthEstimator(PixelStudent(), device='cpu')
    images, radar = make_inputs(3, 32, 40)
    batched = est.predict(images, radar)
    single = est.predict(images[1], radar[1])
    assert single.depth.shape == (1, 32, 40)
    np.testing.assert_allclose(single.depth[0], batched.depth[1], rtol=1e-6)
    np.testing.assert_allclose(single.sigma[0], batched.sigma[1], rtol=1e-6)


def test_sigma_is_sqrt2_exp_log_scale_and_teacher_sigma_nan():
    images, radar = make_inputs(1, 20, 30)
    student = DepthEstimator(PixelStudent(log_scale=0.5), device='cpu')
    np.testing.assert_allclose(student.predict(images, radar).sigma,
                               np.full((1, 20, 30), math.sqrt(2) * math.exp(0.5), np.float32),
                               rtol=1e-6)
    from rcdepth_ros.models import VARIANTS

    model = PixelTeacher()
    model.config = VARIANTS['cafnet']  # as the real teacher carries its config
    teacher = DepthEstimator(model, device='cpu')
    pred = teacher.predict(images, radar)
    assert np.isnan(pred.sigma).all() and np.isfinite(pred.depth).all()
    assert teacher.describe()['variant'] == 'cafnet'
    assert teacher.describe()['has_uncertainty'] is False


def test_no_state_left_on_model_and_describe():
    model = PixelStudent()
    before = set(vars(model))
    est = DepthEstimator(model, device='auto')
    est.predict(*make_inputs(1, 32, 32))
    assert set(vars(model)) == before
    info = est.describe()
    assert info['variant'] == 'PixelStudent'
    assert info['backend'] == 'torch' and info['precision'] == 'fp32'
    assert info['device'] == ('cuda' if torch.cuda.is_available() else 'cpu')
    assert info['has_uncertainty'] is True


@pytest.mark.parametrize('kwargs, message', [
    (dict(device='cpu', precision='fp16'), 'fp16'),
    (dict(device='cpu', backend='onnxruntime', channels_last=True), 'channels_last'),
    (dict(device='cpu', precision='bf16'), 'precision'),
    (dict(device='cpu', backend='tensorrt'), 'backend'),
    (dict(device='tpu'), 'device'),
])
def test_bad_options_raise_value_error(kwargs, message):
    with pytest.raises(ValueError, match=message):
        DepthEstimator(PixelStudent(), **kwargs)


def test_bad_inputs_raise_value_error():
    est = DepthEstimator(PixelStudent(), device='cpu')
    images, radar = make_inputs(2, 32, 48)
    with pytest.raises(ValueError):
        est.predict(images, radar[:, :, :16])  # size mismatch
    with pytest.raises(ValueError):
        est.predict(images, radar[:1])  # batch mismatch
    with pytest.raises(ValueError, match='K'):
        est.predict(images, radar, K=np.eye(4))
    est.predict(images, radar, K=np.eye(3))  # accepted, unused


def test_compile_matches_eager():
    torch.manual_seed(0)
    model = PixelStudent()
    images, radar = make_inputs(1, 40, 50)
    eager = DepthEstimator(model, device='cpu').predict(images, radar)
    compiled = DepthEstimator(model, device='cpu', compile='eager').predict(images, radar)
    assert DepthEstimator(model, device='cpu', compile='eager').describe()['compile'] is True
    np.testing.assert_allclose(compiled.depth, eager.depth, rtol=1e-6)


@pytest.fixture(scope='module')
def xdrcdepth():
    from rcdepth_ros.models import VARIANTS, build_model

    torch.manual_seed(0)
    return build_model(VARIANTS['xdrcdepth']).eval(), VARIANTS['xdrcdepth']


def test_real_student_any_size(xdrcdepth):
    model, config = xdrcdepth
    est = DepthEstimator(model, device='cpu')
    images, radar = make_inputs(2, 50, 75)
    pred = est.predict(images, radar)
    assert pred.depth.shape == (2, 50, 75)
    assert np.all((pred.depth > 0) & (pred.depth < config.max_depth))
    assert np.all(np.isfinite(pred.sigma) & (pred.sigma > 0))
    assert est.describe()['variant'] == 'xdrcdepth'


def test_real_student_from_weights_path(xdrcdepth, tmp_path):
    from rcdepth_ros.models import save_weights

    model, config = xdrcdepth
    save_weights(model, config, tmp_path / 'xd')
    images, radar = make_inputs(1, 64, 96)
    expected = DepthEstimator(model, device='cpu').predict(images, radar)
    loaded = DepthEstimator(tmp_path / 'xd', device='cpu')
    assert loaded.describe()['variant'] == 'xdrcdepth'
    got = loaded.predict(images, radar)
    np.testing.assert_allclose(got.depth, expected.depth, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got.sigma, expected.sigma, rtol=1e-5, atol=1e-5)


def test_default_runs_fused_channels_last_copy_and_matches_eager(xdrcdepth):
    model, _ = xdrcdepth
    state = {k: v.clone() for k, v in model.state_dict().items()}
    images, radar = make_inputs(1, 64, 96)
    fast = DepthEstimator(model, device='cpu')
    assert fast.describe()['fuse'] is True and fast.channels_last is True  # CPU defaults
    eager = DepthEstimator(copy.deepcopy(model), device='cpu', fuse=False, channels_last=False)
    assert eager.describe()['fuse'] is False and eager.channels_last is False
    got, ref = fast.predict(images, radar), eager.predict(images, radar)
    np.testing.assert_allclose(got.depth, ref.depth, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(got.sigma, ref.sigma, rtol=1e-4, atol=1e-5)
    # The caller's module is not rewritten: same tensors, batch norms still there.
    assert fast.model is not model
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert not any(isinstance(m, nn.BatchNorm2d) for m in fast.model.modules())
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, state[key], rtol=0, atol=0)


def test_camera_only_model_is_served_zero_radar_whatever_is_published(tmp_path):
    from rcdepth_ros.models import VARIANTS, build_model, save_weights

    torch.manual_seed(0)
    config = VARIANTS['xdrcdepth']
    model = build_model(config).eval()
    for name, camera_only in (('fused.v2', False), ('camera.v2', True)):
        save_weights(model, config, tmp_path / name, metadata={'camera_only': camera_only})
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (1, 64, 96, 3), dtype=np.uint8)
    radar = np.zeros((1, 4, 64, 96), np.float32)
    radar[0, :, 10:40:3, 20:80:5] = [[[8.0]], [[5.0]], [[1.0]], [[-1.0]]]  # depth, rcs, vx, vy
    silent = np.zeros_like(radar)
    fused = DepthEstimator(tmp_path / 'fused.v2', device='cpu')
    camera = DepthEstimator(tmp_path / 'camera.v2', device='cpu')
    assert not fused.input.camera_only and camera.input.camera_only
    assert camera.describe()['camera_only'] is True
    # The fused model reads the radar; the camera-only one answers as if none was published.
    assert not np.allclose(fused.predict(images, radar).depth, fused.predict(images, silent).depth)
    np.testing.assert_array_equal(camera.predict(images, radar).depth,
                                  fused.predict(images, silent).depth)
