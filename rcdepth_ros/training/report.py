"""Markdown results tables from the ``test_metrics.json`` files of several runs.

    python -m rcdepth_ros.training.report RUNS_DIR [--runs teacher xdrcdepth_kd ...]

Reads ``RUNS_DIR/<run>/test_metrics.json`` (written by ``rcdepth eval --json``) and prints one
depth table (MAE, RMSE, AbsRel, delta1 at every range) and one uncertainty table (AUSE and
calibration at the longest range), plus the relative MAE change that distillation brings to
each student that has a ``*_nokd`` twin.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
import re
import sys
from typing import Any, Sequence

DEFAULT_RUNS = ('teacher', 'lircdepth_nokd', 'lircdepth_kd', 'xdrcdepth_nokd', 'xdrcdepth_nokd_s0',
                'xdrcdepth_nokd_s1', 'xdrcdepth_kd', 'xdrcdepth_kd_s0', 'xdrcdepth_kd_s1',
                'xdrcdepth_kd_only_xkd', 'xdrcdepth_kd_only_d2kd', 'xdrcdepth_wide_nokd',
                'camera_only', 'lircdepth_xdkd', 'xdrcdepth_lirkd')
DEPTH_COLUMNS = (('mae', 'MAE', 3), ('rmse', 'RMSE', 3), ('abs_rel', 'AbsRel', 3),
                 ('d1', 'δ1', 3))
UNCERTAINTY_COLUMNS = (('ause_rmse', 'AUSE-RMSE', 3), ('ause_abs_rel', 'AUSE-AbsRel', 4),
                       ('calib_1sigma', '≤1σ', 3), ('calib_2sigma', '≤2σ', 3))


def load_reports(runs_dir: str | Path, runs: Sequence[str] = DEFAULT_RUNS
                 ) -> dict[str, dict[str, Any]]:
    """Return ``{run: report}`` for every run in ``runs`` that has a test_metrics.json."""
    found = {}
    for run in runs:
        path = Path(runs_dir) / run / 'test_metrics.json'
        if path.is_file():
            found[run] = json.loads(path.read_text())
    if not found:
        raise FileNotFoundError(f'no <run>/test_metrics.json under {runs_dir}')
    return found


def _cell(value: float | None, digits: int) -> str:
    return '–' if value is None else f'{value:.{digits}f}'


def depth_table(reports: dict[str, dict[str, Any]]) -> str:
    """One row per run: parameters and the depth metrics of every evaluated range."""
    ranges = list(next(iter(reports.values()))['ranges'])
    header = ['run', 'params (M)', 'step'] + [f'{label} {name}' for name in ranges
                                             for _, label, _ in DEPTH_COLUMNS]
    lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
    for run, report in reports.items():
        cells = [run, f'{report["model"]["parameters"] / 1e6:.2f}', str(report.get('step'))]
        for name in ranges:
            row = report['ranges'][name]
            cells += [_cell(row.get(key), digits) for key, _, digits in DEPTH_COLUMNS]
        lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def uncertainty_table(reports: dict[str, dict[str, Any]]) -> str:
    """One row per run with a sigma output: AUSE and calibration at the longest range."""
    longest = list(next(iter(reports.values()))['ranges'])[-1]
    header = ['run'] + [f'{label} {longest}' for _, label, _ in UNCERTAINTY_COLUMNS]
    lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
    for run, report in reports.items():
        if not report.get('has_uncertainty'):
            continue
        row = report['ranges'][longest]
        lines.append('| ' + ' | '.join(
            [run] + [_cell(row.get(key), digits) for key, _, digits in UNCERTAINTY_COLUMNS])
            + ' |')
    return '\n'.join(lines)


def run_group(run: str) -> str:
    """Name of a run without its seed suffix: ``xdrcdepth_kd_s1`` -> ``xdrcdepth_kd``."""
    return re.sub(r'_s\d+$', '', run)


def kd_gains(reports: dict[str, dict[str, Any]]) -> list[str]:
    """Relative MAE change of each distilled student against its ``*_nokd`` twin.

    Runs that differ only by a ``_s<seed>`` suffix are averaged first (mean MAE over seeds),
    so ``xdrcdepth_kd_s0/_s1`` compare with the mean of ``xdrcdepth_nokd_s0/_s1``.
    """
    groups: dict[str, list[dict[str, Any]]] = {}
    for run, report in reports.items():
        groups.setdefault(run_group(run), []).append(report)

    def mean_mae(group: str, name: str) -> float | None:
        values = [r['ranges'][name].get('mae') for r in groups[group]]
        return None if any(v is None for v in values) else sum(values) / len(values)

    lines = []
    for group, members in groups.items():
        base = group.split('_')[0] + '_nokd'
        if group == base or base not in groups:
            continue
        for name in members[0]['ranges']:
            mae, ref = mean_mae(group, name), mean_mae(base, name)
            if mae is not None and ref:
                lines.append(f'- {group} ({len(members)} run(s)) vs {base} '
                             f'({len(groups[base])} run(s)), mean MAE {name} m: '
                             f'{mae:.3f} vs {ref:.3f}, {100 * (mae - ref) / ref:+.1f} %')
    return lines


def learning_curves(runs_dir: str | Path, runs: Sequence[str], out: str | Path,
                    metric: str = 'mae', depth_range: str = '0-80') -> Path:
    """Plot val ``metric`` against step for every run with a ``history.jsonl``; write a PNG.

    Each line of ``<run>/history.jsonl`` is one validation (``{"step", "val": {range:
    {metric: value}}}``). Returns the PNG path.
    """
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5), dpi=110)
    plotted = 0
    for run in runs:
        path = Path(runs_dir) / run / 'history.jsonl'
        if not path.is_file():
            continue
        points = []
        for line in path.read_text().splitlines():
            entry = json.loads(line)
            value = entry.get('val', {}).get(depth_range, {}).get(metric)
            if value is not None:
                points.append((entry['step'], value))
        if points:
            points.sort()
            steps, values = zip(*points)
            ax.plot(steps, values, marker='.', label=run)
            plotted += 1
    if not plotted:
        plt.close(fig)
        raise FileNotFoundError(f'no <run>/history.jsonl with val {metric} under {runs_dir}')
    ax.set_xlabel('training step')
    ax.set_ylabel(f'val {metric} {depth_range} m')
    ax.set_yscale('log')
    ax.grid(True, which='both', alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title('Validation during training (checkpoints are chosen on val)')
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Print the tables for a runs folder."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('runs_dir')
    parser.add_argument('--runs', nargs='+', default=list(DEFAULT_RUNS))
    parser.add_argument('--curves', default=None,
                        help='also plot val MAE 0-80 m against step of every run to this PNG')
    args = parser.parse_args(argv)
    if args.curves:
        learning_curves(args.runs_dir, args.runs, args.curves)
    try:
        reports = load_reports(args.runs_dir, args.runs)
    except (FileNotFoundError, ValueError, KeyError) as exc:
        print(f'report: {exc}', file=sys.stderr)
        return 1
    print(depth_table(reports))
    print()
    print(uncertainty_table(reports))
    gains = kd_gains(reports)
    if gains:
        print()
        print('\n'.join(gains))
    return 0


if __name__ == '__main__':
    sys.exit(main())
