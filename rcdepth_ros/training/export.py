"""Export a training checkpoint to deployable weights (``models/io.py`` format) and a model card.

The export is ``OUT.safetensors`` + ``OUT.json`` written by
:func:`rcdepth_ros.models.save_weights` (so :func:`rcdepth_ros.models.load_model`, the
``DepthEstimator`` and the node's ``load_estimator`` read it), each file written under a
temporary name and renamed into place. The JSON metadata records how the model was trained
(run name, KD scheme, step, best val metric, camera-only flag) without machine paths.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import BadInputFile, MissingData
from ..models.io import save_weights, write_text_atomic
from ..models.variants import config_to_dict
from .checkpoint import checkpoint_json_path, load_any_model


def describe_training_data(run: dict[str, Any]) -> str:
    """One line about the training data of a run, from its prepared folder (no full paths)."""
    data = run.get('data', {})
    root = Path(str(data.get('root', '')))
    split = data.get('train_split', 'train')
    text = f'prepared split {split!r} of {root.name or "?"}'
    manifest = root / split / 'manifest.json'
    try:
        info = json.loads(manifest.read_text(encoding='utf-8'))
    except (OSError, ValueError):
        return text
    samples = info.get('counts', {}).get('complete')
    version = info.get('version', '?')
    dataroot = Path(str(info.get('dataroot', '')))
    text = (f'{version} {split} split, {len(info.get("scenes", []))} scenes'
            + (f', {samples} samples' if samples is not None else ''))
    try:
        sim = json.loads((dataroot / 'sim.json').read_text(encoding='utf-8'))
        text += (f'; synthetic world (rcdepth sim --scenes {sim["scenes"]} --seed {sim["seed"]}'
                 f' --image-scale {sim["image_scale"]} --duration {sim["duration"]})')
    except (OSError, ValueError, KeyError):
        pass
    return text


def run_name(checkpoint: str) -> str | None:
    """Return the run folder name of a checkpoint path (``runs/teacher/best`` -> ``teacher``)."""
    if not checkpoint:
        return None
    path = Path(str(checkpoint))
    if path.stem in ('best', 'last') or path.name.startswith(('best-', 'last-')):
        path = path.parent
    return path.name or None


def export_checkpoint(checkpoint: str | Path, out: str | Path, half: bool = False,
                      card: bool = False, metrics_path: str | Path | None = None,
                      training_data: str | None = None) -> list[Path]:
    """Write ``out.safetensors`` + ``out.json`` (+ ``out.md`` with ``card``); return the paths.

    ``checkpoint`` must be a training checkpoint (a run folder, ``OUT/best``, ``OUT/last``).
    ``metrics_path`` is an ``rcdepth eval`` JSON quoted in the card and stored in metadata.
    """
    if checkpoint_json_path(checkpoint) is None:
        raise FileNotFoundError(f'no training checkpoint at {checkpoint} (expected a run folder '
                                'with best.json / last.json, or OUT/best)')
    model, config, info = load_any_model(checkpoint, device='cpu')
    run = info.get('config', {})
    metrics = None
    if metrics_path is not None:
        try:
            metrics = json.loads(Path(metrics_path).read_text(encoding='utf-8'))
        except FileNotFoundError:
            raise MissingData(f'metrics file not found: {metrics_path}') from None
        except ValueError as exc:
            raise BadInputFile(f'{metrics_path} is not JSON: {exc}') from None
    best = info.get('best')
    metadata = {
        'training_resolution': list(run.get('data', {}).get('crop', (352, 704))),
        'training_data': training_data or describe_training_data(run),
        'run': run.get('name'),
        'scheme': run.get('scheme'),
        'step': info.get('step'),
        'profile': run.get('profile'),
        'camera_only': bool(info.get('camera_only', False)),
        'focal_length_px': info.get('focal_length_px'),
        'best_val': best,
        'teacher': run_name(run.get('teacher', {}).get('checkpoint', '')),
    }
    if metrics is not None:
        metadata['eval'] = {'split': metrics.get('data', {}).get('split'),
                            'ranges': metrics.get('ranges')}
    weights, description = save_weights(model, config, out, metadata=metadata, half=half)
    paths = [weights, description]
    if card:
        card_path = weights.with_name(weights.stem + '.md')
        text = model_card(weights.stem, config_to_dict(config), metadata, metrics, half,
                          sum(p.numel() for p in model.parameters()))
        write_text_atomic(card_path, text)
        paths.append(card_path)
    return paths


def model_card(name: str, config: dict[str, Any], metadata: dict[str, Any],
               metrics: dict[str, Any] | None, half: bool, parameters: int) -> str:
    """Markdown model card: what the model is, its data, how it was trained, its metrics."""
    scheme = {'none': 'no distillation', 'lircdepth': 'LiRCDepth distillation',
              'xdrcdepth': 'XD-RCDepth X-KD + D2-KD distillation'}.get(
                  metadata.get('scheme') or 'none', str(metadata.get('scheme')))
    lines = [
        f'# {name}', '',
        f'- Architecture: `{config["variant"]}` ({config["arch"]}), {parameters / 1e6:.2f} M '
        f'parameters, depth = {config.get("max_depth", 100.0):g} * sigmoid(x) metres'
        + (', per-pixel sigma from a Laplace scale head' if config['arch'] != 'cafnet' else ''),
        f'- Weights: `{name}.safetensors` ({"float16" if half else "float32"}) + '
        f'`{name}.json` (config and input description)',
        f'- Training data: {metadata.get("training_data")}',
        f'- Training: run `{metadata.get("run")}`, {scheme}'
        + (f' from teacher run `{metadata["teacher"]}`' if metadata.get('teacher') else '')
        + f', {metadata.get("step")} steps at {metadata["training_resolution"][0]}x'
        f'{metadata["training_resolution"][1]} crops'
        + (f', profile `{metadata["profile"]}`' if metadata.get('profile') else ''),
    ]
    if metadata.get('camera_only'):
        lines.append('- Camera only: trained (and to be run) with an all-zero radar image')
    best = metadata.get('best_val')
    if best:
        lines.append(f'- Checkpoint selected on val: {best["metric"]} = {best["value"]:.4f} m '
                     f'at step {best["step"]}')
    if metrics is not None:
        from .evaluate import format_table

        split = metrics.get('data', {}).get('split', '?')
        lines += ['', f'## Metrics ({split} split, SPEC 5)', '', '```',
                  format_table(metrics['ranges']), '```']
    lines += ['', 'Load with `rcdepth_ros.models.load_model` or '
              '`rcdepth_ros.inference.DepthEstimator`.', '']
    if _synthetic(metadata.get('training_data')):
        lines += ['## What this model is, and is not', '',
                  'Trained from random initialisation (no ImageNet weights) on a synthetic '
                  'radar-camera world only. It has never seen a real camera image or a real '
                  'radar return: it is **not for real cameras, nuScenes or a vehicle**, and its '
                  'metrics above say nothing about real data. For those, train on real data '
                  'with `--profile paper` (docs/TRAINING.md).', '',
                  'Where LiDAR never returns (the sky) there was no ground truth to learn '
                  'from: depth there is arbitrary, whatever sigma says.', '']
    return '\n'.join(lines)


def _synthetic(training_data: Any) -> bool:
    """Whether a training-data line (:func:`describe_training_data`) names a synthetic world."""
    text = str(training_data or '')
    return 'synthetic' in text or 'v1.0-sim' in text
