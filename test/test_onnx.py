"""ONNX export and the onnxruntime backend: parity with PyTorch, dynamic axes, metadata, CLI."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from rcdepth_ros import cli
from rcdepth_ros.inference import DepthEstimator
from rcdepth_ros.models.onnx_export import export_onnx, read_onnx_config
from rcdepth_ros.models.outputs import StudentOutput, TeacherOutput


class ConvStudent(nn.Module):
    """Small strided conv net with an upsampled output, like the real decoders."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Sequential(nn.Conv2d(7, 8, 3, stride=2, padding=1), nn.ReLU(),
                                     nn.Conv2d(8, 8, 3, stride=16, padding=1), nn.ReLU())
        self.head = nn.Conv2d(8, 2, 1)

    def forward(self, image, radar):
        x = self.head(self.encoder(torch.cat([image, radar], 1)))
        x = nn.functional.interpolate(x, size=image.shape[-2:], mode='bilinear',
                                      align_corners=False)
        return StudentOutput(100 * torch.sigmoid(x[:, :1]), x[:, 1:], (), (), (), (), ())


class ConvTeacher(ConvStudent):
    def forward(self, image, radar):
        out = super().forward(image, radar)
        return TeacherOutput(out.depth, out.depth, out.depth, (), (), (), (), ())


def make_inputs(batch, height, width, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (batch, height, width, 3), dtype=np.uint8)
    radar = np.zeros((batch, 4, height, width), np.float32)
    radar[:, :, ::9, ::4] = rng.uniform(1, 60, radar[:, :, ::9, ::4].shape)
    return images, radar


def test_tiny_export_parity_dynamic_and_teacher_nan(tmp_path):
    torch.manual_seed(0)
    model = ConvStudent().eval()
    path = export_onnx(model, tmp_path / 'tiny.onnx', 64, 96)
    torch_est = DepthEstimator(model, device='cpu')
    ort_est = DepthEstimator(None, device='cpu', backend='onnxruntime', onnx_path=path)
    assert ort_est.describe()['providers'] == ['CPUExecutionProvider']
    for batch, height, width in [(1, 64, 96), (3, 100, 70)]:  # dynamic batch and H/W
        images, radar = make_inputs(batch, height, width)
        ref, got = torch_est.predict(images, radar), ort_est.predict(images, radar)
        assert got.depth.shape == (batch, height, width)
        np.testing.assert_allclose(got.depth, ref.depth, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(got.sigma, ref.sigma, rtol=1e-4, atol=1e-4)
    teacher = DepthEstimator(ConvTeacher(), device='cpu', backend='onnxruntime')
    pred = teacher.predict(*make_inputs(1, 40, 40))
    assert np.isnan(pred.sigma).all() and np.isfinite(pred.depth).all()


def test_static_export_rejects_other_sizes(tmp_path):
    path = export_onnx(ConvStudent(), tmp_path / 'static.onnx', 64, 64, dynamic=False)
    est = DepthEstimator(path, device='cpu', backend='onnxruntime')
    assert est.predict(*make_inputs(2, 64, 64)).depth.shape == (2, 64, 64)  # batch stays free
    with pytest.raises(ValueError, match='fixed height'):
        est.predict(*make_inputs(1, 96, 64))


def test_bad_export_arguments(tmp_path):
    with pytest.raises(ValueError, match='multiples of 32'):
        export_onnx(ConvStudent(), tmp_path / 'x.onnx', 50, 64)
    with pytest.raises(ValueError, match='.onnx'):
        export_onnx(ConvStudent(), tmp_path / 'x.bin', 64, 64)
    with pytest.raises(ValueError, match='fp32'):
        DepthEstimator(ConvStudent(), device='cpu', backend='onnxruntime', precision='fp16')
    with pytest.raises(ValueError, match='torch backend'):
        DepthEstimator(tmp_path / 'x.onnx', device='cpu')
    with pytest.raises(FileNotFoundError):
        DepthEstimator(None, device='cpu', backend='onnxruntime', onnx_path=tmp_path / 'no.onnx')
    (tmp_path / 'corrupt.onnx').write_bytes(b'not a model')
    with pytest.raises(ValueError, match='cannot load'):
        DepthEstimator(tmp_path / 'corrupt.onnx', device='cpu', backend='onnxruntime')


@pytest.fixture(scope='module')
def exported_student(tmp_path_factory):
    """Random-init xdrcdepth saved as weights and exported once with ``rcdepth export-onnx``."""
    from rcdepth_ros.models import VARIANTS, build_model, save_weights

    torch.manual_seed(0)
    config = VARIANTS['xdrcdepth']
    model = build_model(config).eval()
    folder = tmp_path_factory.mktemp('onnx')
    save_weights(model, config, folder / 'xdrcdepth')
    out = folder / 'out' / 'xdrcdepth.onnx'
    code = cli.main(['export-onnx', '--weights', str(folder / 'xdrcdepth'), '--out', str(out),
                     '--size', '64x96'])
    return model, out, code


def test_export_onnx_command(exported_student, tmp_path, capsys):
    _, out, code = exported_student
    assert code == 0 and out.is_file()
    assert read_onnx_config(out)['variant'] == 'xdrcdepth'
    assert cli.main(['export-onnx', '--weights', str(tmp_path / 'missing'), '--out',
                     str(tmp_path / 'x.onnx'), '--size', '64x64']) == 1
    assert 'error' in capsys.readouterr().err


def test_real_student_parity_with_pytorch(exported_student):
    model, path, _ = exported_student
    ort_est = DepthEstimator(path, device='cpu', backend='onnxruntime')
    assert ort_est.describe()['variant'] == 'xdrcdepth'
    torch_est = DepthEstimator(model, device='cpu')
    for batch, height, width in [(1, 64, 96), (2, 90, 120)]:  # dynamic batch and H/W
        images, radar = make_inputs(batch, height, width, seed=batch)
        ref, got = torch_est.predict(images, radar), ort_est.predict(images, radar)
        # 1e-3 relative on metres, plus a floor for the near-zero sigma values.
        np.testing.assert_allclose(got.depth, ref.depth, rtol=1e-3, atol=1e-3)
        np.testing.assert_allclose(got.sigma, ref.sigma, rtol=1e-3, atol=1e-4)
        assert math.isfinite(ort_est.model_time_ms)


def test_fused_and_unfused_exports_agree(tmp_path):
    """The default export is the inference rewrite; it computes what the trained graph does."""
    import onnx

    from rcdepth_ros.models import VARIANTS, build_model

    torch.manual_seed(0)
    model = build_model(VARIANTS['xdrcdepth']).eval()
    fused = export_onnx(model, tmp_path / 'fused.onnx', 64, 96)
    plain = export_onnx(model, tmp_path / 'plain.onnx', 64, 96, fuse=False)
    ops = {name: {n.op_type for n in onnx.load(str(path)).graph.node}
           for name, path in (('fused', fused), ('plain', plain))}
    assert 'BatchNormalization' in ops['plain'] and 'BatchNormalization' not in ops['fused']
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.modules())  # model untouched
    images, radar = make_inputs(1, 64, 96)
    a = DepthEstimator(fused, device='cpu', backend='onnxruntime').predict(images, radar)
    b = DepthEstimator(plain, device='cpu', backend='onnxruntime').predict(images, radar)
    np.testing.assert_allclose(a.depth, b.depth, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(a.sigma, b.sigma, rtol=1e-4, atol=1e-5)
    assert not list(tmp_path.glob('*.partial'))
