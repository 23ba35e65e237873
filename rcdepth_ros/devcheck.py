"""Training parts of the GPU check (``scripts/device_check.sh``): AMP steps and a DDP smoke run.

``python -m rcdepth_ros.devcheck train ...`` runs N optimiser steps of a training config
through the project's own :class:`~rcdepth_ros.training.trainer.Trainer` (its ``train_step``,
GradScaler and autocast included) and prints one JSON line: median step time, peak CUDA
memory, the first and last losses, whether every loss was finite and whether the loss fell
(mean of the last fifth below the mean of the first fifth). ``--teacher-out`` saves the
trained network as a checkpoint a KD run can name as its teacher.

``python -m rcdepth_ros.devcheck ddp ...`` runs a few steps in two processes
(``torch.multiprocessing``, the environment torchrun would set: NCCL on CUDA, gloo on CPU)
and checks that both ranks end with identical parameters.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
import json
import socket
import statistics
import sys
import time
from typing import Any

import torch

CONFIGS = {name: f'config/train/{name}.yaml'
           for name in ('teacher', 'xdrcdepth_kd', 'xdrcdepth_nokd')}


def _config(name: str, data: str, out: str, steps: int, device: str, crop: Sequence[int],
            batch: int, amp_dtype: str, teacher: str | None) -> Any:
    from pathlib import Path

    from .training.config import load_train_config

    path = Path(__file__).resolve().parents[1] / CONFIGS[name]
    overrides = [f'data.root={data}', f'output_dir={out}', f'schedule.max_steps={steps}',
                 f'schedule.val_every={steps}', f'device={device}', 'amp=true',
                 f'amp_dtype={amp_dtype}', f'data.crop={crop[0]},{crop[1]}',
                 f'optim.batch_size={batch}', 'data.workers=2', 'optim.eps=1e-8',
                 'optim.lr=3e-4', "data.val_split=''"]
    if teacher:
        overrides.append(f'teacher.checkpoint={teacher}')
    return load_train_config(path, 'tiny', overrides)


def train_steps(name: str, data: str, out: str, steps: int = 100, device: str = 'cuda',
                crop: Sequence[int] = (352, 704), batch: int = 4, amp_dtype: str = 'float16',
                teacher: str | None = None, save: bool = False) -> dict[str, Any]:
    """Run ``steps`` optimiser steps of config ``name``; returns the figures (module doc)."""
    from .training.trainer import Trainer

    config = _config(name, data, out, steps, device, crop, batch, amp_dtype, teacher)
    trainer = Trainer(config, resume=False, progress=False)
    trainer.setup()
    cuda = trainer.device.type == 'cuda'
    if cuda:
        torch.cuda.reset_peak_memory_stats(trainer.device)
    losses: list[float] = []
    times: list[float] = []
    epoch = 0
    while len(losses) < steps:
        for batch_ in trainer._batches(epoch, 0):
            if cuda:
                torch.cuda.synchronize(trainer.device)
            start = time.perf_counter()
            logged = trainer.train_step(batch_)
            if cuda:
                torch.cuda.synchronize(trainer.device)
            times.append((time.perf_counter() - start) * 1e3)
            losses.append(logged['loss'])
            if len(losses) == steps:
                break
        epoch += 1
    if save:
        trainer.save('last')
    trainer.close()
    fifth = max(1, steps // 5)
    first, last = statistics.mean(losses[:fifth]), statistics.mean(losses[-fifth:])
    finite = all(v == v and abs(v) != float('inf') for v in losses)
    return {
        'config': name, 'steps': steps, 'device': str(trainer.device),
        'device_name': torch.cuda.get_device_name(trainer.device) if cuda else 'cpu',
        'amp': trainer.amp_enabled, 'amp_dtype': amp_dtype,
        'grad_scaler': bool(trainer.scaler.is_enabled()), 'crop': list(crop), 'batch': batch,
        # The first steps include cuDNN autotuning and allocator growth: median of the rest.
        'median_step_ms': statistics.median(times[min(5, steps - 1):]),
        'first_step_ms': times[0],
        'peak_mem_mb': torch.cuda.max_memory_allocated(trainer.device) / 2**20 if cuda else None,
        'loss_first': first, 'loss_last': last, 'finite': finite,
        'falling': finite and last < first,
    }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _ddp_worker(rank: int, world: int, port: int, values: dict, results: str) -> None:
    import os

    from safetensors.torch import save_file

    from .training.config import config_from_dict
    from .training.trainer import train

    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port), WORLD_SIZE=str(world),
                      RANK=str(rank), LOCAL_RANK=str(rank))
    config = config_from_dict(values)
    result = train(config, progress=False)
    state = {k: v.detach().float().cpu().contiguous() for k, v in
             result.model.named_parameters()}
    save_file(state, f'{results}/rank{rank}.safetensors')


def ddp_smoke(data: str, out: str, steps: int = 4, device: str = 'cuda',
              crop: Sequence[int] = (128, 256), batch: int = 2) -> dict[str, Any]:
    """Two processes train ``steps`` steps with DDP; True if both hold the same weights."""
    from pathlib import Path

    from safetensors.torch import load_file
    import torch.multiprocessing as mp

    from .training.config import config_to_json

    world = 2
    if device == 'cuda' and torch.cuda.device_count() < world:
        return {'ran': False, 'note': f'{torch.cuda.device_count()} GPU(s): DDP needs 2'}
    config = _config('xdrcdepth_nokd', data, out, steps, device, crop, batch, 'bfloat16', None)
    results = Path(out) / 'ranks'
    results.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    mp.spawn(_ddp_worker, args=(world, _free_port(), config_to_json(config), str(results)),
             nprocs=world, join=True)
    states = [load_file(str(results / f'rank{r}.safetensors')) for r in range(world)]
    same = all(torch.equal(states[0][k], states[1][k]) for k in states[0])
    return {'ran': True, 'world': world, 'device': device, 'steps': steps,
            'backend': 'nccl' if device == 'cuda' else 'gloo', 'identical_weights': same,
            'seconds': time.perf_counter() - start}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog='python -m rcdepth_ros.devcheck',
                                     description=__doc__.split('\n')[0])
    sub = parser.add_subparsers(dest='what', required=True)
    for what in ('train', 'ddp'):
        p = sub.add_parser(what)
        p.add_argument('--data', required=True, help='prepared folder (train and val splits)')
        p.add_argument('--out', required=True, help='run folder')
        p.add_argument('--steps', type=int, default=100 if what == 'train' else 4)
        p.add_argument('--device', default='cuda')
        p.add_argument('--crop', type=int, nargs=2, default=[352, 704])
        p.add_argument('--batch', type=int, default=4)
        if what == 'train':
            p.add_argument('--config', choices=sorted(CONFIGS), required=True)
            p.add_argument('--amp-dtype', choices=('float16', 'bfloat16'), default='float16')
            p.add_argument('--teacher', default=None, help='teacher checkpoint (KD configs)')
            p.add_argument('--save', action='store_true', help='write OUT/last (a teacher)')
    args = parser.parse_args(argv)
    if args.what == 'train':
        result = train_steps(args.config, args.data, args.out, args.steps, args.device,
                             args.crop, args.batch, args.amp_dtype, args.teacher, args.save)
        ok = result['finite'] and result['falling']
    else:
        result = ddp_smoke(args.data, args.out, args.steps, args.device, args.crop, args.batch)
        ok = not result['ran'] or result['identical_weights']
    print(json.dumps(result))
    return 0 if ok else 1


if __name__ == '__main__':
    sys.exit(main())
