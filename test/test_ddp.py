"""DistributedDataParallel: two CPU processes with gloo train the tiny profile in step."""

from __future__ import annotations

import json
import os
from pathlib import Path
import socket

import torch
import torch.multiprocessing as mp

from rcdepth_ros.training.config import config_from_dict, config_to_json, load_train_config

CONFIGS = Path(__file__).resolve().parents[1] / 'config' / 'train'
WORLD = 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _parameters(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in model.named_parameters()}


def _worker(rank: int, port: int, values: dict, results: str) -> None:
    """One torchrun-like process: environment as torchrun sets it, then the normal trainer."""
    from safetensors.torch import save_file

    from rcdepth_ros.training.trainer import train

    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port), WORLD_SIZE=str(WORLD),
                      RANK=str(rank), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    # Each rank is given its own output folder so the test can see who wrote what; a real
    # run shares one folder and only rank 0 writes into it.
    values = dict(values, output_dir=f'{values["output_dir"]}_rank{rank}')
    result = train(config_from_dict(values), progress=False)
    save_file(_parameters(result.model), f'{results}/rank{rank}.safetensors')


def test_two_gloo_processes_hold_identical_weights_and_only_rank0_writes(tiny_prepared,
                                                                         tmp_path):
    from safetensors.torch import load_file

    from rcdepth_ros.training.trainer import build_train_model

    config = load_train_config(CONFIGS / 'xdrcdepth_nokd.yaml', 'tiny',
                               [f'data.root={tiny_prepared["root"]}',
                                f'output_dir={tmp_path / "run"}', 'schedule.max_steps=2',
                                'schedule.val_every=2', 'optim.lr=1e-3'])
    results = tmp_path / 'results'
    results.mkdir()
    mp.spawn(_worker, args=(_free_port(), config_to_json(config), str(results)), nprocs=WORLD,
             join=True)
    states = [load_file(str(results / f'rank{r}.safetensors')) for r in range(WORLD)]
    # Gradients are all-reduced, so every parameter is the same on both ranks. (BN running
    # statistics are not: DDP broadcasts rank 0's before each forward; rank 0's are saved.)
    assert states[0].keys() == states[1].keys()
    for name in states[0]:
        torch.testing.assert_close(states[0][name], states[1][name], rtol=0, atol=0, msg=name)
    torch.manual_seed(config.seed)
    initial, _ = build_train_model(config.model)
    changed = [n for n, p in _parameters(initial).items() if not torch.equal(p, states[0][n])]
    assert len(changed) > 0.9 * len(states[0])  # it did train
    # Only rank 0 wrote: checkpoints, history, config and one TensorBoard log.
    assert not (tmp_path / 'run_rank1').exists()
    out = tmp_path / 'run_rank0'
    last = json.loads((out / 'last.json').read_text())
    assert last['step'] == 2 and last['world_size'] == WORLD
    # 4 train samples over 2 ranks of batch 2: one step an epoch.
    assert last['steps_per_epoch'] == 1 and last['epoch'] == 2
    assert len(list((out / 'tensorboard').iterdir())) == 1
    assert (out / 'best.json').is_file() and (out / 'history.jsonl').is_file()
