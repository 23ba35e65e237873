"""Weights I/O: safetensors + JSON round trips, fp16 files, strict loading failures."""

import json
from pathlib import Path

import pytest
from safetensors import safe_open
from safetensors.torch import load_file, save_file
import torch

from rcdepth_ros.errors import BadArgument, MissingData
from rcdepth_ros.models import VARIANTS, build_model, load_model, read_description, save_weights
from rcdepth_ros.models.io import input_spec, resolve_model, resolve_weights, weight_paths
from rcdepth_ros.models.student import StudentConfig
from rcdepth_ros.preprocess import IMAGENET_MEAN, IMAGENET_STD, RADAR_CHANNELS

# A narrow student keeps files small and the tests quick; the code path is the real one.
TINY = StudentConfig(variant='tiny_test', arch='xdrcdepth', fusion='film',
                     image_widths=(8, 8, 16, 16, 32), radar_widths=(8, 16, 16, 32, 32),
                     decoder_widths=(32, 16, 16, 8, 8), decoder_bottlenecks=(8, 8, 8, 8),
                     decoder_blocks=(2, 2, 2, 2), decoder_expansion=2, daspp_rates=(3, 6),
                     daspp_width=8, uncertainty_width=4)


def _inputs() -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(3)
    radar = torch.zeros(1, 4, 64, 96)
    radar[:, 0, 20:24, 30:34] = 12.0
    return torch.randn(1, 3, 64, 96, generator=gen), radar


@pytest.fixture
def saved(tmp_path):
    torch.manual_seed(0)
    model = build_model(TINY)
    # Give BN statistics non-default values so buffers are really round-tripped.
    model(*_inputs())
    model.eval()
    base = tmp_path / 'tiny'
    save_weights(model, TINY, base, metadata={'training_resolution': [352, 704],
                                              'training_data': 'synthetic world seed 0',
                                              'epoch': 3})
    return model, base


def test_round_trip_is_exact(saved):
    model, base = saved
    loaded, config, description = load_model(base)
    assert config == TINY
    assert not loaded.training
    expected = model.state_dict()
    for key, value in loaded.state_dict().items():
        torch.testing.assert_close(value, expected[key], rtol=0, atol=0)
    with torch.no_grad():
        torch.testing.assert_close(loaded(*_inputs()).depth, model(*_inputs()).depth)
    # Suffixed paths name the same pair of files.
    assert load_model(str(base) + '.safetensors')[1] == TINY


def test_description_contents(saved):
    _, base = saved
    description = read_description(base)
    assert description['variant'] == 'tiny_test'
    assert description['arch'] == 'xdrcdepth'
    assert description['config']['image_widths'] == [8, 8, 16, 16, 32]
    assert description['max_depth'] == 100.0
    assert description['input']['image']['mean'] == list(IMAGENET_MEAN)
    assert description['input']['image']['std'] == list(IMAGENET_STD)
    assert description['input']['image']['color_order'] == 'RGB'
    assert description['input']['radar']['channels'] == list(RADAR_CHANNELS)
    assert description['training_resolution'] == [352, 704]
    assert description['training_data'] == 'synthetic world seed 0'
    assert description['metadata'] == {'epoch': 3}
    assert description['dtype'] == 'float32'


def test_fp16_file_loads_into_fp32_model(tmp_path, saved):
    model, _ = saved
    weights, _ = save_weights(model, TINY, tmp_path / 'half', half=True)
    full = tmp_path / 'full'
    save_weights(model, TINY, full)
    assert weights.stat().st_size < 0.6 * weight_paths(full)[0].stat().st_size
    with safe_open(str(weights), framework='pt') as f:
        dtypes = {f.get_tensor(k).dtype for k in f.keys()}
    assert torch.float16 in dtypes and torch.float32 not in dtypes
    assert torch.int64 in dtypes  # BN num_batches_tracked keeps its integer type
    loaded, _, description = load_model(tmp_path / 'half')
    assert description['dtype'] == 'float16'
    assert all(p.dtype == torch.float32 for p in loaded.parameters())
    with torch.no_grad():
        torch.testing.assert_close(loaded(*_inputs()).depth, model(*_inputs()).depth,
                                   rtol=0.02, atol=0.05)


def _rewrite(base: Path, edit) -> None:
    weights, _ = weight_paths(base)
    tensors = load_file(str(weights))
    edit(tensors)
    save_file(tensors, str(weights))


def test_missing_tensor_is_named(saved):
    _, base = saved
    _rewrite(base, lambda t: t.pop('decoder.depth_head.weight'))
    with pytest.raises(ValueError, match=r'1 missing: decoder\.depth_head\.weight'):
        load_model(base)


def test_unexpected_tensor_is_named(saved):
    _, base = saved
    _rewrite(base, lambda t: t.__setitem__('decoder.extra.weight', torch.zeros(2)))
    with pytest.raises(ValueError, match=r'1 unexpected: decoder\.extra\.weight'):
        load_model(base)


def test_misshaped_tensor_is_named(saved):
    _, base = saved
    _rewrite(base, lambda t: t.__setitem__('uncertainty.log_scale.bias', torch.zeros(2)))
    with pytest.raises(ValueError, match=r'mis-shaped: uncertainty\.log_scale\.bias \(2,\)'):
        load_model(base)


def test_config_that_does_not_match_weights(saved):
    _, base = saved
    _, json_path = weight_paths(base)
    description = json.loads(json_path.read_text())
    description['config']['fusion'] = 'add'  # FiLM tensors become unexpected
    json_path.write_text(json.dumps(description))
    with pytest.raises(ValueError, match='missing.*unexpected'):
        load_model(base)


def test_corrupt_weights_file(saved):
    _, base = saved
    weights, _ = weight_paths(base)
    data = weights.read_bytes()
    weights.write_bytes(data[:len(data) // 2])
    with pytest.raises(ValueError, match='corrupt weights file'):
        load_model(base)
    weights.write_bytes(b'not a safetensors file at all')
    with pytest.raises(ValueError, match='corrupt weights file'):
        load_model(base)


@pytest.mark.parametrize('text, message', [
    ('{"format": "rcdepth_ros.weights", ', 'corrupt model description'),
    ('[1, 2, 3]', 'not an rcdepth_ros model description'),
    ('{"format": "other"}', 'not an rcdepth_ros model description'),
    ('{"format": "rcdepth_ros.weights", "format_version": 99, "config": {}}',
     'format_version'),
    ('{"format": "rcdepth_ros.weights", "format_version": 1, "config": {"arch": "vit"}}',
     'bad model config'),
    ('{"format": "rcdepth_ros.weights", "format_version": 1, '
     '"config": {"arch": "lircdepth", "dropout": 0.5}}', 'unknown StudentConfig keys'),
])
def test_bad_description(saved, text, message):
    _, base = saved
    weight_paths(base)[1].write_text(text)
    with pytest.raises(ValueError, match=message):
        load_model(base)


def test_missing_files(tmp_path, saved):
    with pytest.raises(MissingData, match='not found'):
        load_model(tmp_path / 'nothing_here')
    _, base = saved
    weight_paths(base)[0].unlink()
    with pytest.raises(MissingData, match='weights file not found'):
        load_model(base)


def test_registered_student_round_trip(tmp_path):
    torch.manual_seed(0)
    config = VARIANTS['xdrcdepth']
    model = build_model(config).eval()
    save_weights(model, config, tmp_path / 'xd', half=True)
    loaded, loaded_config, _ = load_model(tmp_path / 'xd')
    assert loaded_config == config
    assert sum(p.numel() for p in loaded.parameters()) == sum(
        p.numel() for p in model.parameters())


def test_files_are_safetensors_not_pickle(saved):
    _, base = saved
    data = weight_paths(base)[0].read_bytes()
    header_len = int.from_bytes(data[:8], 'little')
    header = json.loads(data[8:8 + header_len])
    assert header['__metadata__']['format'] == 'rcdepth_ros.weights'
    assert not data.startswith(b'PK') and not data.startswith(b'\x80')  # zip / pickle


def test_no_pickle_in_package():
    root = Path(__file__).resolve().parents[1] / 'rcdepth_ros'
    offenders = []
    for path in root.rglob('*.py'):
        text = path.read_text(encoding='utf-8')
        if 'torch.load(' in text or 'import pickle' in text or 'pickle.load' in text:
            offenders.append(str(path.relative_to(root)))
    assert offenders == []


def test_wrapped_model_saves_bare_names(tmp_path, saved):
    model, _ = saved
    save_weights(torch.nn.DataParallel(model), TINY, tmp_path / 'wrapped')
    with safe_open(str(tmp_path / 'wrapped.safetensors'), framework='pt') as f:
        assert not any(k.startswith('module.') for k in f.keys())
    load_model(tmp_path / 'wrapped')
    with pytest.raises(ValueError, match='training_resolution'):
        save_weights(model, TINY, tmp_path / 'bad', metadata={'training_resolution': [352]})


# ----------------------------------------------------------------------------- resolver

def test_names_with_dots_resolve_and_load(tmp_path, saved):
    model, base = saved
    dotted = tmp_path / 'runs' / 'xd.v2'
    dotted.parent.mkdir()
    for src, dst in zip(weight_paths(base), ('xd.v2.safetensors', 'xd.v2.json')):
        (dotted.parent / dst).write_bytes(src.read_bytes())
    # The base path, either file and the folder (one model in it) all name the same weights.
    for given in (dotted, tmp_path / 'runs' / 'xd.v2.safetensors',
                  tmp_path / 'runs' / 'xd.v2.json', tmp_path / 'runs'):
        assert resolve_weights(given) == dotted, given
    loaded, config, _ = load_model(resolve_weights(str(dotted)))
    assert config == TINY
    for name, tensor in model.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[name], tensor)
    # 'xd' alone is another model, not a truncation of 'xd.v2'.
    with pytest.raises(MissingData, match=r'model weights not found: .*xd\.safetensors'):
        resolve_weights(tmp_path / 'runs' / 'xd')


def test_resolver_errors_name_the_problem(tmp_path, saved):
    _, base = saved
    with pytest.raises(MissingData, match=r'model weights not found: .*gone\.safetensors'):
        resolve_weights(tmp_path / 'gone')
    weight_paths(base)[1].unlink()
    with pytest.raises(MissingData, match=r'tiny\.json'):
        resolve_weights(base)
    empty = tmp_path / 'empty'
    empty.mkdir()
    with pytest.raises(MissingData, match='0 exported models'):
        resolve_weights(empty)
    with pytest.raises(MissingData, match='no checkpoint or exported model'):
        resolve_model(tmp_path / 'gone', checkpoints=True)


def test_training_checkpoints_only_where_allowed(tmp_path):
    run = tmp_path / 'run'
    run.mkdir()
    (run / 'best.json').write_text(json.dumps({'format': 'rcdepth_ros.checkpoint'}))
    source = resolve_model(run, checkpoints=True)
    assert (source.kind, source.path) == ('checkpoint', run / 'best.json')
    assert resolve_model(run / 'best', checkpoints=True).path == run / 'best.json'
    assert resolve_model(run / 'best-00000005-abc.safetensors',
                         checkpoints=True).path == run / 'best.json'
    with pytest.raises(BadArgument, match='rcdepth export'):
        resolve_weights(run)


def test_input_spec_reads_new_and_old_descriptions(tmp_path):
    torch.manual_seed(0)
    model = build_model(TINY).eval()
    base = tmp_path / 'cam'
    save_weights(model, TINY, base, metadata={'camera_only': True,
                                              'training_resolution': [96, 160]})
    description = read_description(base)
    assert description['input']['radar']['camera_only'] is True
    assert 'camera_only' not in description['metadata']
    spec = input_spec(description)
    assert spec.camera_only and spec.training_resolution == (96, 160)
    assert spec.radar_channels == tuple(RADAR_CHANNELS) and spec.size_multiple == 32
    # Files written before the flag moved kept it in the free metadata.
    old = {k: v for k, v in description.items() if k != 'input'}
    old['metadata'] = {'camera_only': True}
    assert input_spec(old).camera_only
    assert not input_spec({'metadata': {}}).camera_only


@pytest.mark.parametrize('umask', [0o022, 0o077])
def test_written_files_get_the_mode_of_the_umask(tmp_path, umask):
    """safetensors itself writes 0600; exports and checkpoints are readable as any file the
    user writes (a node running as another user loads them)."""
    import os
    import stat

    from rcdepth_ros.training.checkpoint import save_checkpoint

    model = build_model(TINY)
    old = os.umask(umask)
    try:
        weights, description = save_weights(model, TINY, tmp_path / 'export' / 'tiny')
        json_path = save_checkpoint(tmp_path / 'run', 'last', model, TINY, {'step': 1})
    finally:
        os.umask(old)
    written = [weights, description, json_path, *(tmp_path / 'run').glob('last-*.safetensors')]
    assert len(written) == 4
    for path in written:
        assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask, path.name
    assert not list(tmp_path.rglob('*.tmp'))


def test_a_failed_export_leaves_the_previous_one_whole(tmp_path, saved, monkeypatch):
    import safetensors.torch

    model, base = saved
    before = {p.name: p.read_bytes() for p in base.parent.glob('tiny.*')}

    def disk_full(tensors, filename, metadata=None):
        Path(filename).write_bytes(b'half a file')  # what a full disk leaves
        raise OSError('disk full')

    monkeypatch.setattr(safetensors.torch, 'save_file', disk_full)
    with pytest.raises(OSError, match='disk full'):
        save_weights(build_model(TINY), TINY, base)
    monkeypatch.undo()
    assert {p.name: p.read_bytes() for p in base.parent.glob('tiny.*')} == before
    assert not list(base.parent.glob('.*.tmp'))  # the half-written temporary is removed
    load_model(base)
