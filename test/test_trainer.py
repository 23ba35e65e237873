"""Trainer, checkpoints, ``rcdepth train / eval / export`` on a tiny world (tiny profile)."""

from __future__ import annotations

import contextlib
import io
import json
import os
from pathlib import Path
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from rcdepth_ros.cli import main
from rcdepth_ros.training.checkpoint import (
    load_any_model,
    read_checkpoint,
    save_checkpoint,
)
from rcdepth_ros.training.config import (
    PROFILES,
    config_from_dict,
    config_to_json,
    load_train_config,
    resolve_config,
)
from rcdepth_ros.training.evaluate import evaluate_checkpoint
from rcdepth_ros.training.trainer import (
    Trainer,
    TrainingDiverged,
    build_train_model,
    parameter_groups,
    poly_lr,
)

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / 'config' / 'train'
# A smaller CaFNet for CI (ResNet-18 image encoder, BTS size 128): X-KD and D2-KD compare
# saliency maps and depths, which do not depend on the teacher's widths.
SMALL_TEACHER = ['model.options.image_encoder_depth=18', 'model.options.bts_size=128']


def _cli(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def one_thread():
    """Run torch single-threaded: robust on a shared 2-core machine, and bit-for-bit equal to
    the single-threaded subprocess of the resume test."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _tiny(name: str, data: dict, out: Path, *overrides: str):
    return load_train_config(CONFIGS / f'{name}.yaml', 'tiny',
                             [f'data.root={data["root"]}', f'output_dir={out}', *overrides])


# ----------------------------------------------------------------------------- config

def test_every_shipped_config_resolves_under_every_profile():
    names = sorted(p.stem for p in CONFIGS.glob('*.yaml'))
    assert {'teacher', 'lircdepth_nokd', 'lircdepth_kd', 'xdrcdepth_nokd', 'xdrcdepth_kd',
            'lircdepth_xdkd', 'xdrcdepth_lirkd', 'camera_only'} <= set(names)
    for name in names:
        for profile in PROFILES:
            config = load_train_config(CONFIGS / f'{name}.yaml', profile)
            assert config.profile == profile and config.output_dir
    teacher = load_train_config(CONFIGS / 'teacher.yaml', 'paper')
    student = load_train_config(CONFIGS / 'xdrcdepth_kd.yaml', 'paper')
    assert (teacher.optim.lr, teacher.optim.batch_size) == (1e-4, 8)
    assert (student.optim.lr, student.optim.batch_size, student.optim.eps) == (5e-5, 6, 1e-2)
    assert student.data.crop == (352, 704) and student.schedule.epochs == 200
    assert student.loss.d2kd_bins == 80 and student.scheme == 'xdrcdepth'
    camera = load_train_config(CONFIGS / 'camera_only.yaml', 'cpu')
    assert camera.data.camera_only and camera.data.crop == (128, 256)
    assert camera.optim.batch_size == 4


def test_overrides_profile_order_and_types(tmp_path):
    config = load_train_config(CONFIGS / 'xdrcdepth_nokd.yaml', 'tiny',
                               ['optim.lr=1e-3', 'data.crop=96x160', 'loss.d2kd_bins=40',
                                'model.options.fusion=add', 'schedule.max_steps=7',
                                'data.camera_only=true'])
    assert config.optim.lr == 1e-3 and isinstance(config.optim.lr, float)
    assert config.data.crop == (96, 160) and config.loss.d2kd_bins == 40
    assert config.model.options == {'fusion': 'add'} and config.schedule.max_steps == 7
    assert config.data.camera_only is True
    assert config.optim.batch_size == PROFILES['tiny']['all']['optim.batch_size']
    # A resolved config round-trips through JSON (as stored in checkpoints) unchanged.
    assert config_from_dict(config_to_json(config)) == config
    # The profile may also come from the file (here: the values), applied before overrides.
    values = {'model': {'variant': 'xdrcdepth'}, 'profile': 'cpu', 'output_dir': 'x'}
    from_file = resolve_config(values, None, ['optim.batch_size=3'])
    assert from_file.data.crop == PROFILES['cpu']['all']['data.crop']
    assert from_file.optim.batch_size == 3 and from_file.profile == 'cpu'
    assert resolve_config(values, 'tiny').data.crop == (64, 128)


@pytest.mark.parametrize('override, message', [
    ('optim.lrr=1', 'unknown config key optim.lrr'),
    ('bogus=1', 'unknown config key bogus'),
    ('optim.lr=fast', 'optim.lr: expected float'),
    ('optim.batch_size=0', 'optim.batch_size must be >= 1'),
    ('optim.batch_size=2.5', 'optim.batch_size: expected int'),
    ('data.crop=100,200', 'data.crop must be two positive multiples of 32'),
    ('scheme=magic', 'scheme must be one of'),
    ('model.variant=resnet', 'unknown variant'),
    ('model.options.widths=3', 'unknown model.options for xdrcdepth: widths'),
    ('loss.xkd=-1', 'loss.xkd must be finite and >= 0'),
    ('data.camera_only=maybe', 'data.camera_only: expected bool'),
    ('optim', 'not of the form key.sub=value'),
])
def test_bad_keys_and_values_give_one_clear_error(override, message):
    with pytest.raises(ValueError, match=message.replace('.', r'\.').replace('(', r'\(')):
        load_train_config(CONFIGS / 'xdrcdepth_nokd.yaml', None, [override])


def test_config_cross_checks_and_cli_errors(tmp_path):
    with pytest.raises(ValueError, match='needs teacher.checkpoint'):
        load_train_config(CONFIGS / 'xdrcdepth_kd.yaml', None, ['teacher.checkpoint='])
    with pytest.raises(ValueError, match='trains without distillation'):
        load_train_config(CONFIGS / 'teacher.yaml', None, ['scheme=lircdepth'])
    code, _, err = _cli(['train', '--config', str(tmp_path / 'missing.yaml')])
    assert code == 1 and 'config file not found' in err
    bad = tmp_path / 'bad.yaml'
    bad.write_text('name: x\noptimizer:\n  lr: 1\n')
    code, _, err = _cli(['train', '--config', str(bad)])
    assert code == 1 and 'unknown config key optimizer' in err and len(err.splitlines()) == 1
    code, out, _ = _cli(['train', '--config', str(CONFIGS / 'teacher.yaml'), '--profile', 'cpu',
                         '--print-config', 'optim.lr=3e-4'])
    assert code == 0 and 'lr: 0.0003' in out and 'profile: cpu' in out


# ----------------------------------------------------------------------------- pieces

def test_poly_lr_decays_to_a_tenth():
    assert poly_lr(0, 100, 1e-4) == pytest.approx(1e-4)
    assert poly_lr(100, 100, 1e-4) == pytest.approx(1e-5)
    assert poly_lr(50, 100, 1e-4) == pytest.approx(0.9e-4 * 0.5 ** 0.9 + 1e-5)
    values = [poly_lr(s, 40, 2e-4) for s in range(41)]
    assert all(a > b for a, b in zip(values, values[1:]))


def test_teacher_freezing_and_weight_decay_groups():
    config = load_train_config(CONFIGS / 'teacher.yaml', 'tiny', ['output_dir=x'])
    model, _ = build_train_model(config.model)
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    assert {'image_encoder.conv1.weight', 'image_encoder.bn1.weight',
            'radar_encoder.layer1.0.bn1.bias', 'refine_encoder.bn1.weight'} <= frozen
    assert all('bn' in n or 'downsample.1' in n or n == 'image_encoder.conv1.weight'
               for n in frozen)
    assert not any(n.startswith('decoder') or n.startswith('confidence_decoder') for n in frozen)
    groups = {g['name']: g for g in parameter_groups(model, config.optim)}
    assert groups['encoder']['weight_decay'] == 1e-4 and groups['decoder']['weight_decay'] == 0
    decoder_ids = {id(p) for p in groups['decoder']['params']}
    assert id(model.decoder.parameters().__next__()) in decoder_ids
    assert sum(len(g['params']) for g in groups.values()) == sum(
        p.requires_grad for p in model.parameters())
    unfrozen = load_train_config(CONFIGS / 'teacher.yaml', 'tiny',
                                 ['output_dir=x', 'model.freeze_stem=false',
                                  'model.freeze_encoder_bn=false'])
    model, _ = build_train_model(unfrozen.model)
    assert all(p.requires_grad for p in model.parameters())


def test_checkpoint_commit_is_atomic(tmp_path, monkeypatch):
    from rcdepth_ros.models import build_model, get_variant
    from rcdepth_ros.training import checkpoint as ckpt

    config = get_variant('xdrcdepth')
    model = build_model(config)
    state = {'config': {'name': 'x'}, 'step': 1}
    save_checkpoint(tmp_path, 'last', model, config, state)
    with torch.no_grad():
        next(model.parameters()).add_(1.0)

    def crash(path, text):
        raise OSError('disk full')

    monkeypatch.setattr(ckpt, 'write_text_atomic', crash)
    with pytest.raises(OSError):
        save_checkpoint(tmp_path, 'last', model, config, {**state, 'step': 2})
    monkeypatch.undo()
    description, _ = read_checkpoint(tmp_path / 'last.json')
    assert description['step'] == 1
    loaded, _, info = load_any_model(tmp_path)
    assert info['source'] == 'checkpoint' and info['step'] == 1
    first = next(loaded.parameters())
    torch.testing.assert_close(first + 1.0, next(model.parameters()))
    # The next successful save removes the orphaned tensor file.
    save_checkpoint(tmp_path, 'last', model, config, {**state, 'step': 3})
    assert len(list(tmp_path.glob('last-*.safetensors'))) == 1
    (tmp_path / 'x.json').write_text('{}')
    with pytest.raises(ValueError, match='not an rcdepth_ros training checkpoint'):
        read_checkpoint(tmp_path / 'x.json')
    with pytest.raises(FileNotFoundError, match='no checkpoint or exported model'):
        load_any_model(tmp_path / 'nothing')


def test_camera_only_flag_travels_from_checkpoint_to_export(tmp_path):
    from rcdepth_ros.models import build_model, get_variant
    from rcdepth_ros.training.export import export_checkpoint

    config = get_variant('xdrcdepth')
    run = {'name': 'cam', 'scheme': 'none', 'data': {'camera_only': True, 'crop': [96, 160]},
           'teacher': {'checkpoint': ''}}
    save_checkpoint(tmp_path / 'run', 'best', build_model(config), config,
                    {'config': run, 'step': 5, 'best': {'metric': 'mae/0-80', 'value': 3.0,
                                                        'step': 5}})
    _, _, info = load_any_model(tmp_path / 'run')
    assert info['camera_only'] and info['step'] == 5
    paths = export_checkpoint(tmp_path / 'run' / 'best', tmp_path / 'models' / 'cam', card=True,
                              training_data='unit test')
    assert [p.suffix for p in paths] == ['.safetensors', '.json', '.md']
    _, loaded_config, info = load_any_model(tmp_path / 'models' / 'cam')
    assert loaded_config == config and info['source'] == 'export' and info['camera_only']
    assert info['training_resolution'] == [96, 160] and info['training_data'] == 'unit test'
    card = paths[2].read_text()
    assert 'all-zero radar' in card and 'mae/0-80 = 3.0000 m at step 5' in card
    assert 'not for real cameras' not in card  # its data is not named synthetic
    # The exported folder alone is accepted too (one model in it).
    assert load_any_model(tmp_path / 'models')[2]['path'].endswith('cam')


# ----------------------------------------------------------------------------- training

def test_tiny_protocol_teacher_student_kd_eval_export(tiny_prepared, tmp_path, one_thread):
    """Teacher, then an XD-RCDepth student distilled from it, eval, export, load the export."""
    root = str(tiny_prepared['root'])
    runs = tmp_path / 'runs'
    code, out, err = _cli(['train', '--config', str(CONFIGS / 'teacher.yaml'), '--profile',
                           'tiny', '--no-progress', f'data.root={root}',
                           f'output_dir={runs / "teacher"}', *SMALL_TEACHER])
    assert code == 0, err
    assert 'best val mae/0-80' in out
    teacher_ckpt, _ = read_checkpoint(runs / 'teacher' / 'best.json')
    assert teacher_ckpt['step'] == 3 and 'optimizer' not in teacher_ckpt
    code, out, err = _cli(['train', '--config', str(CONFIGS / 'xdrcdepth_kd.yaml'), '--profile',
                           'tiny', '--no-progress', f'data.root={root}',
                           f'output_dir={runs / "student"}',
                           f'teacher.checkpoint={runs / "teacher"}'])
    assert code == 0, err
    last, tensors = read_checkpoint(runs / 'student' / 'last.json')
    assert last['step'] == last['total_steps'] == 3 and last['config']['scheme'] == 'xdrcdepth'
    assert any(k.startswith('optim.') for k in tensors) and last['best']['step'] <= 3
    assert list((runs / 'student' / 'tensorboard').iterdir())
    history = [json.loads(line) for line in
               (runs / 'student' / 'history.jsonl').read_text().splitlines()]
    assert history[-1]['step'] == 3 and history[-1]['val']['0-80']['images'] == 2

    report_path = tmp_path / 'eval' / 'student.json'
    code, out, err = _cli(['eval', '--checkpoint', str(runs / 'student'), '--data', root,
                           '--split', 'val', '--json', str(report_path), '--max-samples', '2',
                           '--reference', str(runs / 'teacher'), '--no-progress'])
    assert code == 0, err
    report = json.loads(report_path.read_text())
    assert set(report['ranges']) == {'0-50', '0-70', '0-80'} and report['images'] == 2
    assert report['data']['samples'] == 4 and report['data']['eval_size'] == [128, 224]
    row = report['ranges']['0-80']
    for key in ('mae', 'rmse', 'mae_mm', 'abs_rel', 'sq_rel', 'rmse_log', 'log10', 'silog',
                'd1', 'd2', 'd3', 'ause_rmse', 'ause_abs_rel', 'calib_1sigma', 'calib_2sigma'):
        assert isinstance(row[key], float) and np.isfinite(row[key]), key
    assert report['model']['variant'] == 'xdrcdepth' and report['model']['macs']['352x704'] > 0
    assert 'mae' in out and 'ause_rmse' in out and 'mean |depth - reference depth|' in out
    code, out, err = _cli(['eval', '--checkpoint', str(runs / 'teacher' / 'best'), '--data', root,
                           '--split', 'val', '--json', str(tmp_path / 'teacher.json'),
                           '--max-samples', '2', '--max-depths', '80', '--no-progress'])
    assert code == 0, err
    teacher_report = json.loads((tmp_path / 'teacher.json').read_text())
    assert list(teacher_report['ranges']) == ['0-80'] and teacher_report['images'] == 2
    assert teacher_report['ranges']['0-80']['ause_rmse'] is None
    teacher_mae = teacher_report['ranges']['0-80']['mae']
    assert teacher_mae > 0
    # The student's gap to the teacher on the same GT pixels obeys the triangle inequality
    # with the two MAEs against the GT (per pixel, so also per image and over images).
    gap = report['reference']['0-80']['mae']
    assert abs(row['mae'] - teacher_mae) - 1e-6 <= gap <= row['mae'] + teacher_mae + 1e-6
    assert report['reference']['every_pixel']['mae'] > 0
    itself = evaluate_checkpoint(runs / 'student', root, 'val', max_samples=1,
                                 reference=runs / 'student')
    assert itself['reference']['0-80']['mae'] == itself['reference']['every_pixel']['mae'] == 0

    export = tmp_path / 'models' / 'xd_tiny'
    code, out, err = _cli(['export', '--checkpoint', str(runs / 'student'), '--out', str(export),
                           '--fp16', '--card', '--metrics', str(report_path)])
    assert code == 0, err
    files = sorted(p.name for p in export.parent.iterdir())
    assert files == ['xd_tiny.json', 'xd_tiny.md', 'xd_tiny.safetensors']
    description = json.loads(export.with_suffix('.json').read_text())
    assert description['dtype'] == 'float16' and description['training_resolution'] == [64, 128]
    assert description['metadata']['scheme'] == 'xdrcdepth'
    assert description['metadata']['teacher'] == 'teacher'
    assert 'v1.0-sim train split' in description['training_data']
    assert str(tmp_path) not in export.with_suffix('.json').read_text()  # no machine paths
    card = export.with_suffix('.md').read_text()
    assert 'mae' in card and 'not for real cameras' in card  # trained on the sim world

    from rcdepth_ros.inference import DepthEstimator, load_estimator

    estimator = load_estimator(str(export), device='cpu')
    assert isinstance(estimator, DepthEstimator)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (1, 70, 110, 3), dtype=np.uint8)
    radar = np.zeros((1, 4, 70, 110), np.float32)
    prediction = estimator.predict(images, radar)
    assert prediction.depth.shape == (1, 70, 110) and np.isfinite(prediction.sigma).all()
    # The export evaluates like the checkpoint it came from (fp16 rounding aside).
    code, _, err = _cli(['eval', '--checkpoint', str(export), '--data', root, '--split', 'val',
                         '--json', str(tmp_path / 'export.json'), '--max-samples', '2',
                         '--no-progress'])
    assert code == 0, err
    exported = json.loads((tmp_path / 'export.json').read_text())
    assert exported['source'] == 'export'
    assert exported['ranges']['0-80']['mae'] == pytest.approx(row['mae'], rel=1e-2, abs=0.05)
    # Exports are not training checkpoints.
    code, _, err = _cli(['export', '--checkpoint', str(export), '--out', str(tmp_path / 'y')])
    assert code == 1 and 'no training checkpoint' in err


def test_loss_decreases_when_overfitting_a_fixed_batch(tiny_prepared, tmp_path, one_thread):
    torch.manual_seed(0)
    config = _tiny('xdrcdepth_nokd', tiny_prepared, tmp_path / 'fit', 'optim.lr=1e-3',
                   'schedule.max_steps=100', 'data.augment=false', 'optim.grad_clip=1000')
    trainer = Trainer(config, progress=False)
    trainer.setup()
    batch = next(trainer._batches(0, 0))
    logs = [trainer.train_step(batch) for _ in range(15)]
    losses = [log['loss'] for log in logs]
    assert losses[-1] < 0.7 * losses[0], losses
    assert all(np.isfinite(log['grad_norm']) and log['grad_norm'] > 0 for log in logs)
    assert logs[0]['lr'] == pytest.approx(1e-3) and logs[-1]['lr'] < logs[0]['lr']
    assert trainer.step == 15


def test_nan_guard_names_step_and_term(tiny_prepared, tmp_path, one_thread):
    # lr = 1e30: the first update blows the weights up, the next forward is not finite.
    code, _, err = _cli(['train', '--config', str(CONFIGS / 'xdrcdepth_nokd.yaml'), '--profile',
                         'tiny', '--no-progress', f'data.root={tiny_prepared["root"]}',
                         f'output_dir={tmp_path / "nan"}', 'optim.lr=1e30',
                         'schedule.max_steps=4', 'schedule.val_every=100'])
    assert code == 1 and len(err.splitlines()) == 1, err
    assert re.search(r"non-finite loss at step [234]: term '\w+' = (nan|inf|-inf)", err), err
    assert issubclass(TrainingDiverged, ValueError)


def test_model_init_fine_tunes_from_a_checkpoint(tiny_prepared, tmp_path, one_thread):
    """``model.init``: the run starts from another run's weights (batch-norm statistics
    included) with a fresh schedule; a resumed run keeps its own; another network is refused."""
    from safetensors.torch import load_file

    first = Trainer(_tiny('xdrcdepth_nokd', tiny_prepared, tmp_path / 'first'), progress=False)
    first.run()
    best = json.loads((tmp_path / 'first' / 'best.json').read_text())
    # The oracle: the tensors of the file, read with safetensors alone.
    saved = {k[len('model.'):]: v for k, v in
             load_file(str(tmp_path / 'first' / best['weights'])).items()
             if k.startswith('model.')}
    assert any('running_mean' in k for k in saved)
    tuned = Trainer(_tiny('xdrcdepth_nokd', tiny_prepared, tmp_path / 'tuned',
                          f'model.init={tmp_path / "first" / "best"}', 'seed=7'), progress=False)
    tuned.setup()
    state = tuned.model.state_dict()
    assert tuned.step == 0 and set(state) == set(saved)
    for key, value in saved.items():
        torch.testing.assert_close(state[key], value, rtol=0, atol=0, msg=key)
    assert not tuned.optimizer.state  # a fresh optimiser: no moments from the first run
    tuned.run()
    # Resuming the fine-tuned run loads its own last checkpoint, not model.init again.
    resumed = Trainer(_tiny('xdrcdepth_nokd', tiny_prepared, tmp_path / 'tuned',
                            f'model.init={tmp_path / "first" / "best"}', 'seed=7'),
                      progress=False)
    resumed.setup()
    own, _ = read_checkpoint(tmp_path / 'tuned' / 'last.json')
    assert resumed.step == own['step'] == 3
    mine, _, _ = load_any_model(tmp_path / 'tuned' / 'last.json')
    torch.testing.assert_close(_state_vector(resumed.model), _state_vector(mine))
    other = Trainer(_tiny('lircdepth_nokd', tiny_prepared, tmp_path / 'other',
                          f'model.init={tmp_path / "first" / "best"}'), progress=False)
    with pytest.raises(ValueError, match='holds another network than this run builds'):
        other.setup()


def _state_vector(model: torch.nn.Module) -> torch.Tensor:
    return torch.cat([v.detach().float().flatten() for v in model.state_dict().values()])


def test_sigkill_then_resume_continues_the_same_run(tiny_prepared, tmp_path, one_thread):
    steps = 6
    overrides = [f'data.root={tiny_prepared["root"]}', f'schedule.max_steps={steps}',
                 'schedule.checkpoint_every=1', 'schedule.val_every=3', 'data.val_max_samples=1',
                 'optim.lr=5e-4']
    out = tmp_path / 'killed'
    argv = [sys.executable, '-m', 'rcdepth_ros.cli', 'train', '--config',
            str(CONFIGS / 'xdrcdepth_nokd.yaml'), '--profile', 'tiny', '--no-progress',
            f'output_dir={out}', *overrides]
    env = {**os.environ, 'OMP_NUM_THREADS': '1'}
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    killed_at = None
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and proc.poll() is None:
            if (out / 'last.json').is_file():
                step = json.loads((out / 'last.json').read_text())['step']
                if step >= 2:
                    proc.send_signal(signal.SIGKILL)
                    killed_at = step
                    break
            time.sleep(0.02)
    finally:
        if proc.poll() is None:
            proc.kill()
        stderr = proc.communicate(timeout=60)[1].decode()
    assert killed_at is not None and killed_at < steps, stderr[-2000:]
    # Whatever the kill interrupted, the committed checkpoint is complete and loadable.
    description, _ = read_checkpoint(out / 'last.json')
    assert 2 <= description['step'] < steps
    context = f'killed at step {killed_at}, resumed from {description["step"]}'

    code, _, err = _cli(['train', '--config', str(CONFIGS / 'xdrcdepth_nokd.yaml'), '--profile',
                         'tiny', '--no-progress', '--resume', f'output_dir={out}', *overrides])
    assert code == 0, f'{context}: {err}'
    final, _ = read_checkpoint(out / 'last.json')
    assert final['step'] == final['total_steps'] == steps
    assert final['epoch'] == steps // final['steps_per_epoch']
    assert final['lr'] == pytest.approx(poly_lr(steps, steps, 5e-4))
    assert not list(out.glob('.*.tmp')), list(out.iterdir())
    assert len(list(out.glob('last-*.safetensors'))) == 1, list(out.iterdir())
    history = [json.loads(line) for line in (out / 'history.jsonl').read_text().splitlines()]
    assert [h['step'] for h in history] == [3, 6], context
    # The same run: identical to training without interruption.
    reference = Trainer(load_train_config(CONFIGS / 'xdrcdepth_nokd.yaml', 'tiny',
                                          [f'output_dir={tmp_path / "straight"}', *overrides]),
                        progress=False).run()
    assert reference.step == steps and reference.resumed_from == 0
    resumed, _, _ = load_any_model(out / 'last.json')
    # Bit-identical in practice; the tolerance only allows for alignment-dependent rounding
    # (one different step moves weights by ~lr = 5e-4).
    torch.testing.assert_close(_state_vector(resumed), _state_vector(reference.model),
                               rtol=1e-5, atol=1e-6, msg=lambda m: f'{context}: {m}')
    # A different config on the same output folder is refused; a finished run stays finished.
    code, _, err = _cli(['train', '--config', str(CONFIGS / 'xdrcdepth_nokd.yaml'), '--profile',
                         'tiny', f'output_dir={out}', *overrides, 'optim.lr=1e-4'])
    assert code == 1 and 'different config (optim.lr)' in err
    code, out_text, _ = _cli(['train', '--config', str(CONFIGS / 'xdrcdepth_nokd.yaml'),
                              '--profile', 'tiny', '--no-progress', f'output_dir={out}',
                              *overrides])
    assert code == 0 and 'already complete' in out_text
