"""The training loop: teacher (CaFNet) or student (LiRCDepth / XD-RCDepth, optionally distilled).

One :class:`Trainer` per run. It seeds everything, builds the network (CaFNet with its
reference freezing), AdamW with encoder/decoder weight-decay groups and a polynomial LR,
runs autocast on CUDA, clips gradients, logs to TensorBoard and a tqdm bar, validates on the
val split (MAE 0-80 m, SPEC 5) to keep the ``best`` checkpoint, and writes resumable ``last``
checkpoints (:mod:`.checkpoint`). A run resumes from ``OUT/last.json`` at the same step, with
the same data order and LR schedule. A non-finite loss or gradient stops the run with
:class:`TrainingDiverged` naming the step and the term.

Distributed: started by ``torchrun`` (``WORLD_SIZE`` > 1 in the environment) the trainer
joins the process group (NCCL on CUDA, else gloo), wraps the network in
DistributedDataParallel and shards batches with a DistributedSampler; only rank 0 validates,
logs and writes files, between barriers. ``optim.batch_size`` is per process.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import timedelta
import json
import math
import os
from pathlib import Path
import random
import time
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
import torch.distributed as dist

from ..errors import UserError
from ..models.variants import ModelConfig, build_model, config_arch
from .checkpoint import (
    bare_model,
    load_any_model,
    load_state_strict,
    model_state,
    optimizer_state,
    read_checkpoint,
    read_checkpoint_description,
    rng_state,
    save_checkpoint,
    set_rng_state,
    write_text_atomic,
)
from .config import (
    ModelSection,
    OptimSection,
    TrainConfig,
    build_model_config,
    config_diff,
    config_from_dict,
    config_to_json,
)
from .distill import (
    kd_ramp,
    student_loss,
    student_saliency_forward,
    teacher_forward,
    teacher_loss,
)
from .evaluate import evaluate_model, spaced_indices
from .metrics import range_name

BATCH_TENSORS = ('image', 'radar', 'depth_single', 'depth_dense', 'confidence_gt')
VAL_METRIC = ('mae', range_name(80.0))
"""Checkpoint selection: mean per-image MAE over 0-80 m on the val split (lower is better)."""
DIST_TIMEOUT_S = 3 * 3600
# Keys that may change when a run is resumed (they do not change what is computed).
RESUMABLE_CHANGES = ('data.root', 'data.dataroot', 'data.workers', 'output_dir', 'device',
                     'schedule.log_every', 'teacher.checkpoint')


class TrainingDiverged(UserError, ValueError):
    """A loss term or the gradient became NaN or infinite (the user lowers the LR or clips)."""


# ----------------------------------------------------------------------------- pieces

def poly_lr(step: int, total_steps: int, base_lr: float, power: float = 0.9,
            end_factor: float = 0.1, warmup_steps: int = 0) -> float:
    """``(lr - end) (1 - step / total)^power + end`` with ``end = end_factor lr`` (BTS/CaFNet).

    With ``warmup_steps`` > 0 the rate is multiplied by ``(step + 1) / warmup_steps`` until
    then (a linear warm-up; the references use none).
    """
    end = base_lr * end_factor
    progress = min(max(step, 0), total_steps) / max(total_steps, 1)
    lr = (base_lr - end) * (1.0 - progress) ** power + end
    if warmup_steps > 0 and step < warmup_steps:
        lr *= (max(step, 0) + 1) / warmup_steps
    return lr


def is_encoder_parameter(name: str) -> bool:
    """Tell encoder parameters (weight-decayed): image / radar encoders, radar stems."""
    top = name.split('.', 1)[0]
    return top.endswith('encoder') or top.endswith('stem')


def build_train_model(section: ModelSection) -> tuple[nn.Module, ModelConfig]:
    """Build the network of a run (random init) and apply the teacher's reference freezing."""
    model_config = build_model_config(section)
    model = build_model(model_config)
    if config_arch(model_config) == 'cafnet':
        if section.freeze_stem:
            model.image_encoder.conv1.requires_grad_(False)
        if section.freeze_encoder_bn:
            for name, module in model.named_modules():
                if is_encoder_parameter(name) and isinstance(module, nn.BatchNorm2d):
                    module.weight.requires_grad_(False)
                    module.bias.requires_grad_(False)
    return model, model_config


def parameter_groups(model: nn.Module, optim: OptimSection) -> list[dict[str, Any]]:
    """AdamW groups: encoder parameters with ``weight_decay_encoder``, the rest with the other.

    Frozen parameters are left out.
    """
    encoder, decoder = [], []
    for name, param in bare_model(model).named_parameters():
        if param.requires_grad:
            (encoder if is_encoder_parameter(name) else decoder).append(param)
    groups = [{'params': encoder, 'weight_decay': optim.weight_decay_encoder, 'name': 'encoder'},
              {'params': decoder, 'weight_decay': optim.weight_decay_decoder, 'name': 'decoder'}]
    return [g for g in groups if g['params']]


def make_optimizer(model: nn.Module, optim: OptimSection) -> torch.optim.AdamW:
    """AdamW over :func:`parameter_groups` (eps 1e-2 by default, as the references)."""
    return torch.optim.AdamW(parameter_groups(model, optim), lr=optim.lr, eps=optim.eps,
                             betas=tuple(optim.betas))


def _float_output(out: Any) -> Any:
    """Cast an output's depth-like fields to float32 (losses in full precision under AMP).

    Features stay as they are: X-KD differentiates the depth with respect to the very
    ``xkd_features`` tensors of the graph.
    """
    updates = {}
    for name in ('depth', 'confidence', 'coarse_depth', 'log_scale'):
        value = getattr(out, name, None)
        if isinstance(value, Tensor):
            updates[name] = value.float()
    if hasattr(out, 'inter_depths'):
        updates['inter_depths'] = tuple(v.float() for v in out.inter_depths)
    return out._replace(**updates)


def _first_bad_term(terms: Mapping[str, Tensor]) -> tuple[str, float] | None:
    for name, value in terms.items():
        v = float(value)
        if not math.isfinite(v):
            return name, v
    return None


# ----------------------------------------------------------------------------- distributed

@dataclass
class DistContext:
    """Where this process runs: rank, world size, device."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device('cpu'))
    owns_group: bool = False

    @property
    def distributed(self) -> bool:
        """True under torchrun with more than one process."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the only process that validates, logs and writes files."""
        return self.rank == 0

    def barrier(self) -> None:
        """Wait for every rank (no-op in a single process)."""
        if self.distributed:
            dist.barrier()


def setup_distributed(device: str = 'auto') -> DistContext:
    """Join the torchrun process group from the environment (if any) and pick the device."""
    world_size = int(os.environ.get('WORLD_SIZE', '1'))
    rank = int(os.environ.get('RANK', '0'))
    local_rank = int(os.environ.get('LOCAL_RANK', '0'))
    use_cuda = device == 'cuda' or (device == 'auto' and torch.cuda.is_available())
    if device == 'cuda' and not torch.cuda.is_available():
        raise ValueError('device cuda requested but CUDA is not available')
    if use_cuda:
        torch.cuda.set_device(local_rank)
        dev = torch.device('cuda', local_rank)
    else:
        dev = torch.device('cpu')
    owns = False
    if world_size > 1 and not dist.is_initialized():
        # Other ranks wait at a barrier while rank 0 validates: allow a long validation.
        dist.init_process_group(backend='nccl' if use_cuda else 'gloo',
                                timeout=timedelta(seconds=DIST_TIMEOUT_S))
        owns = True
    if dist.is_initialized():
        world_size, rank = dist.get_world_size(), dist.get_rank()
    return DistContext(rank, world_size, local_rank, dev, owns)


# ----------------------------------------------------------------------------- trainer

@dataclass
class TrainResult:
    """What a finished run returns (rank 0 holds the metrics)."""

    output_dir: Path
    step: int
    total_steps: int
    best: dict[str, Any] | None
    model: nn.Module
    resumed_from: int = 0
    last_val: dict[str, Any] | None = None
    is_main: bool = True


class Trainer:
    """Run one training config: ``Trainer(config).run()``.

    ``resume``: None = resume when ``OUT/last.json`` exists; True = it must exist; False =
    it must not. ``dist_context`` defaults to :func:`setup_distributed`.
    """

    def __init__(self, config: TrainConfig, resume: bool | None = None, progress: bool = True,
                 dist_context: DistContext | None = None) -> None:
        if not config.output_dir:
            raise ValueError('output_dir is not set (config key output_dir)')
        if not config.data.root:
            raise ValueError('data.root is not set: the folder written by rcdepth prepare')
        self.out = Path(config.output_dir)
        self.progress = progress
        last = self.out / 'last.json'
        if resume is True and not last.is_file():
            raise FileNotFoundError(f'--resume: no checkpoint to resume at {last}')
        if resume is False and last.is_file():
            raise FileExistsError(f'{self.out} already holds a run (last.json); choose another '
                                  'output_dir or resume it')
        self.resume_path = last if last.is_file() else None
        if self.resume_path is not None:
            config = self._resumed_config(config)
        self.config = config
        self.ctx = dist_context or setup_distributed(config.device)
        self.device = self.ctx.device
        self.amp_enabled = bool(config.amp and self.device.type == 'cuda')
        self.amp_dtype = getattr(torch, config.amp_dtype)

    # -- setup ---------------------------------------------------------------

    def _resumed_config(self, config: TrainConfig) -> TrainConfig:
        saved = config_from_dict(read_checkpoint_description(self.resume_path)['config'])
        changed = [k for k in config_diff(saved, config) if k not in RESUMABLE_CHANGES]
        if changed:
            raise ValueError(f'{self.out} holds a run with a different config '
                             f'({", ".join(changed)}); use another output_dir or the same '
                             'settings to resume it')
        values = config_to_json(saved)
        for key in RESUMABLE_CHANGES:  # take these from the new request
            section, _, name = key.rpartition('.')
            src = config_to_json(config)
            dst = values
            if section:
                src, dst = src[section], dst[section]
            dst[name] = src[name]
        return config_from_dict(values)

    def _seed(self) -> None:
        seed = self.config.seed
        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)  # same init on every rank; DDP also broadcasts rank 0's

    def _datasets(self) -> None:
        from ..data.dataset import PreparedDataset

        data = self.config.data
        dataroot = data.dataroot or None
        self.train_set = PreparedDataset(data.root, data.train_split, 'train', tuple(data.crop),
                                         self.config.seed, data.augment, dataroot, data.scale)
        self.focal_length_px = self.train_set.focal_length_px  # what the network learns at
        self.val_set = None
        self.val_indices: list[int] = []
        if data.val_split:
            self.val_set = PreparedDataset(data.root, data.val_split, 'eval', tuple(data.crop),
                                           self.config.seed, False, dataroot, data.scale)
            self.val_indices = spaced_indices(len(self.val_set), data.val_max_samples)
        from torch.utils.data.distributed import DistributedSampler

        self.sampler = DistributedSampler(self.train_set, num_replicas=self.ctx.world_size,
                                          rank=self.ctx.rank, shuffle=True,
                                          seed=self.config.seed, drop_last=True)
        batch = self.config.optim.batch_size
        self.steps_per_epoch = len(self.sampler) // batch
        if self.steps_per_epoch == 0:
            raise ValueError(f'split {data.train_split!r} has {len(self.train_set)} samples: '
                             f'fewer than batch {batch} x {self.ctx.world_size} process(es)')
        schedule = self.config.schedule
        self.total_steps = schedule.max_steps or schedule.epochs * self.steps_per_epoch
        self.val_every = schedule.val_every or self.steps_per_epoch
        self.checkpoint_every = schedule.checkpoint_every or self.val_every

    def _teacher(self) -> nn.Module | None:
        if self.config.scheme == 'none':
            return None
        teacher, config, _ = load_any_model(self.config.teacher.checkpoint, device=self.device)
        if config_arch(config) != 'cafnet':
            raise ValueError(f'teacher.checkpoint {self.config.teacher.checkpoint} holds a '
                             f'{config_arch(config)} model; distillation needs the CaFNet teacher')
        teacher.requires_grad_(False)
        return teacher.eval()

    def _init_weights(self, path: str) -> None:
        """Fine-tuning: copy the weights of ``model.init`` (same architecture) into the model."""
        source, config, _ = load_any_model(path)
        if config != self.model_config:
            raise ValueError(f'model.init {path} holds another network than this run builds '
                             f'({", ".join(config_diff(config, self.model_config))} differ)')
        load_state_strict(self.model, source.state_dict(), path)

    def setup(self) -> None:
        """Build data, network, optimiser and teacher; load the checkpoint when resuming."""
        self._seed()
        self._datasets()
        self.model, self.model_config = build_train_model(self.config.model)
        if self.config.loss.max_depth != self.model_config.max_depth:
            raise ValueError(f'loss.max_depth {self.config.loss.max_depth} differs from the '
                             f'model max_depth {self.model_config.max_depth}')
        if self.config.model.init and self.resume_path is None:
            self._init_weights(self.config.model.init)
        self.model.to(self.device)
        self.optimizer = make_optimizer(self.model, self.config.optim)
        self.scaler = torch.amp.GradScaler('cuda', enabled=self.amp_enabled
                                           and self.amp_dtype == torch.float16)
        self.teacher = self._teacher()
        self.step = 0
        self.best: dict[str, Any] | None = None
        if self.resume_path is not None:
            description, tensors = read_checkpoint(self.resume_path)
            load_state_strict(self.model, model_state(tensors), str(self.resume_path))
            optim = optimizer_state(description, tensors)
            if optim is None:
                raise ValueError(f'{self.resume_path} holds no optimiser state')
            self.optimizer.load_state_dict(optim)
            if description.get('scaler'):
                self.scaler.load_state_dict(description['scaler'])
            self.step = int(description['step'])
            self.best = description.get('best')
            set_rng_state(description['rng'])
        self.start_step = self.step
        self.net: nn.Module = self.model
        if self.ctx.distributed:
            self.net = nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == 'cuda'
                else None)

    # -- one step ------------------------------------------------------------

    def _autocast(self):
        if not self.amp_enabled:
            return nullcontext()
        return torch.autocast(device_type='cuda', dtype=self.amp_dtype)

    def compute_loss(self, batch: Mapping[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        """Forward the network (and the teacher) on a device batch; ``(total, terms)``."""
        image, radar = batch['image'], batch['radar']
        student_radar = torch.zeros_like(radar) if self.config.data.camera_only else radar
        with self._autocast():
            out = self.net(image, student_radar)
            teacher_out, maps = None, None
            if self.teacher is not None:
                teacher_out, maps = teacher_forward(self.teacher, image, radar,
                                                    saliency=self.config.scheme == 'xdrcdepth')
        out = _float_output(out)
        if self.model_config is not None and config_arch(self.model_config) == 'cafnet':
            return teacher_loss(out, batch, self.config.loss)
        if teacher_out is not None:
            teacher_out = _float_output(teacher_out)
        saliency_out = None
        if self.config.scheme == 'xdrcdepth' and self.config.loss.xkd > 0:
            # X-KD needs per-sample saliency: a second forward with batch statistics held.
            with self._autocast():
                saliency_out = student_saliency_forward(self.model, image, student_radar)
            saliency_out = _float_output(saliency_out)
        return student_loss(out, batch, teacher_out, self.config.scheme,
                            kd_ramp(self.config.loss, self.step), teacher_maps=maps,
                            saliency_out=saliency_out)

    def _check_finite(self, total: Tensor, terms: Mapping[str, Tensor]) -> None:
        bad = _first_bad_term({'total': total.detach(), **terms})
        flag = torch.tensor([1.0 if bad else 0.0], device=self.device)
        if self.ctx.distributed:
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        if flag.item() > 0:
            step = self.step + 1
            if bad is None:
                raise TrainingDiverged(f'non-finite loss on another rank at step {step}')
            name, value = bad
            if name == 'total':
                name = next((k for k, v in terms.items() if not math.isfinite(float(v))),
                            'total')
            raise TrainingDiverged(f'non-finite loss at step {step}: term {name!r} = {value} '
                                   f'(lr {self._lr():.3g}); lower optim.lr or set '
                                   'optim.grad_clip')

    def _lr(self) -> float:
        o = self.config.optim
        return poly_lr(self.step, self.total_steps, o.lr, o.lr_power, o.end_lr_factor,
                       o.warmup_steps)

    def train_step(self, batch: Mapping[str, Tensor]) -> dict[str, float]:
        """One optimiser step; returns the logged scalars."""
        lr = self._lr()
        for group in self.optimizer.param_groups:
            group['lr'] = lr
        self.net.train()
        total, terms = self.compute_loss(batch)
        self._check_finite(total, terms)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(total).backward()
        grad_norm = None
        if self.config.optim.grad_clip > 0:
            self.scaler.unscale_(self.optimizer)
            grad_norm = float(torch.nn.utils.clip_grad_norm_(
                [p for g in self.optimizer.param_groups for p in g['params']],
                self.config.optim.grad_clip))
            if not math.isfinite(grad_norm) and not self.scaler.is_enabled():
                raise TrainingDiverged(f'non-finite gradient norm at step {self.step + 1} '
                                       f'(lr {lr:.3g}); lower optim.lr')
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.step += 1
        logged = {'loss': float(total.detach()), 'lr': lr,
                  **{k: float(v) for k, v in terms.items()}}
        if grad_norm is not None:
            logged['grad_norm'] = grad_norm
        return logged

    # -- validation and checkpoints -----------------------------------------

    def validate(self) -> dict[str, Any] | None:
        """Rank 0: evaluate on the val split (SPEC 5); None without a val split."""
        if self.val_set is None:
            return None
        return evaluate_model(self.model, self.val_set, self.device,
                              camera_only=self.config.data.camera_only,
                              indices=self.val_indices, progress=False)

    def _state(self) -> dict[str, Any]:
        return {'config': config_to_json(self.config), 'step': self.step,
                'epoch': self.step // self.steps_per_epoch, 'total_steps': self.total_steps,
                'steps_per_epoch': self.steps_per_epoch, 'rng': rng_state(), 'best': self.best,
                'world_size': self.ctx.world_size, 'lr': self._lr(),
                'scaler': self.scaler.state_dict() if self.scaler.is_enabled() else None,
                'training_resolution': list(self.config.data.crop),
                'focal_length_px': self.focal_length_px}

    def save(self, tag: str) -> None:
        """Write checkpoint ``tag`` (rank 0); ``last`` carries the optimiser state."""
        save_checkpoint(self.out, tag, self.model, self.model_config, self._state(),
                        self.optimizer if tag == 'last' else None)

    # -- loop ----------------------------------------------------------------

    def _batches(self, epoch: int, skip: int):
        from torch.utils.data import DataLoader

        self.sampler.set_epoch(epoch)
        self.train_set.set_epoch(epoch)
        batch = self.config.optim.batch_size
        indices = list(self.sampler)[skip * batch:self.steps_per_epoch * batch]
        workers = self.config.data.workers
        loader = DataLoader(self.train_set, batch_size=batch, sampler=indices, drop_last=True,
                            num_workers=workers, pin_memory=self.device.type == 'cuda',
                            persistent_workers=False)
        for item in loader:
            yield {k: item[k].to(self.device, non_blocking=True) for k in BATCH_TENSORS}

    def _log(self, writer: Any, scalars: Mapping[str, float], prefix: str) -> None:
        if writer is not None:
            for key, value in scalars.items():
                if value is not None:
                    writer.add_scalar(f'{prefix}/{key}', value, self.step)

    def _after_validation(self, result: dict[str, Any], writer: Any) -> None:
        key, name = VAL_METRIC
        value = result['ranges'][name][key]
        flat = {f'{k}/{r}': v for r, row in result['ranges'].items() for k, v in row.items()
                if isinstance(v, float)}
        self._log(writer, flat, 'val')
        improved = value is not None and (self.best is None or value < self.best['value'])
        if improved:
            self.best = {'metric': f'{key}/{name}', 'value': value, 'step': self.step}
        self._append_history({'step': self.step, 'val': result['ranges'], 'best': self.best})
        if improved:
            self.save('best')

    def _append_history(self, entry: dict[str, Any]) -> None:
        """Add a line to ``OUT/history.jsonl``, rewriting it atomically (kill-safe)."""
        path = self.out / 'history.jsonl'
        lines = path.read_text(encoding='utf-8').splitlines() if path.is_file() else []
        # A resumed run repeats the validations after its checkpoint: keep the newest.
        kept = [line for line in lines if json.loads(line).get('step', -1) < entry['step']]
        kept.append(json.dumps(entry))
        write_text_atomic(path, '\n'.join(kept) + '\n')

    def run(self) -> TrainResult:
        """Train to ``total_steps`` (from the resumed step); returns a :class:`TrainResult`."""
        from tqdm import tqdm

        self.setup()
        ctx = self.ctx
        writer = None
        if ctx.is_main:
            from torch.utils.tensorboard import SummaryWriter
            import yaml

            self.out.mkdir(parents=True, exist_ok=True)
            write_text_atomic(self.out / 'config.yaml',
                              yaml.safe_dump(config_to_json(self.config), sort_keys=False))
            writer = SummaryWriter(str(self.out / 'tensorboard'))
        bar = tqdm(total=self.total_steps, initial=self.step, disable=not (self.progress
                   and ctx.is_main), desc=self.config.name, unit='step', dynamic_ncols=True)
        last_val = None
        started = time.monotonic()
        logged_at, logged_step = started, self.step
        try:
            while self.step < self.total_steps:
                epoch, skip = divmod(self.step, self.steps_per_epoch)
                for batch in self._batches(epoch, skip):
                    scalars = self.train_step(batch)
                    bar.update(1)
                    if self.step % self.config.schedule.log_every == 0 or \
                            self.step == self.total_steps:
                        bar.set_postfix(loss=f'{scalars["loss"]:.4f}', lr=f'{scalars["lr"]:.2e}')
                        self._log(writer, scalars, 'train')
                        if ctx.is_main:
                            # Plain-text progress for runs in the background (wall seconds
                            # since this process started training, per-step seconds).
                            now = time.monotonic()
                            steps = self.step - logged_step
                            line = {'step': self.step, 'seconds': round(now - started, 1),
                                    'seconds_per_step': round((now - logged_at) / steps, 3),
                                    **{k: round(v, 6) for k, v in scalars.items()}}
                            with open(self.out / 'train_log.jsonl', 'a') as log:
                                log.write(json.dumps(line) + '\n')
                            logged_at, logged_step = now, self.step
                    final = self.step == self.total_steps
                    if self.step % self.val_every == 0 or final:
                        if ctx.is_main:
                            last_val = self.validate()
                            if last_val is not None:
                                self._after_validation(last_val, writer)
                        ctx.barrier()
                    if self.step % self.checkpoint_every == 0 or final:
                        if ctx.is_main:
                            self.save('last')
                        ctx.barrier()
                    if final:
                        break
        finally:
            bar.close()
            if writer is not None:
                writer.add_scalar('train/seconds', time.monotonic() - started, self.step)
                writer.close()
        return TrainResult(self.out, self.step, self.total_steps, self.best, self.model,
                           self.start_step, last_val, ctx.is_main)

    def close(self) -> None:
        """Leave the process group if this trainer created it."""
        if self.ctx.owns_group and dist.is_initialized():
            dist.destroy_process_group()


def train(config: TrainConfig, resume: bool | None = None, progress: bool = True
          ) -> TrainResult:
    """Run a training config to its end (see :class:`Trainer`)."""
    trainer = Trainer(config, resume=resume, progress=progress)
    try:
        return trainer.run()
    finally:
        trainer.close()
