"""Markdown results tables from the ``test_metrics.json`` files of several runs.

    python -m rcdepth_ros.training.report RUNS_DIR [--runs teacher xdrcdepth_kd ...]

Reads ``RUNS_DIR/<run>/test_metrics.json`` (written by ``rcdepth eval --json``) and prints one
depth table (MAE, RMSE, AbsRel, delta1 at every range) and one uncertainty table (AUSE and
calibration at the longest range), the relative MAE change that distillation brings to
each student that has a ``*_nokd`` twin, and the benchmark's targets, each met or missed
(:func:`targets`). ``--readme PATH`` also writes the same text into ``PATH`` between the
lines ``<!-- synthetic-benchmark:begin -->`` and ``<!-- synthetic-benchmark:end -->``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
import re
import sys
from typing import Any, Sequence

from ..models.io import write_text_atomic

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

    lines = []
    for group, members in groups.items():
        base = group.split('_')[0] + '_nokd'
        if group == base or base not in groups:
            continue
        for name in members[0]['ranges']:
            mae = _group_mean(reports, group, 'mae', name)
            ref = _group_mean(reports, base, 'mae', name)
            if mae is not None and ref:
                lines.append(f'- {group} ({len(members)} run(s)) vs {base} '
                             f'({len(groups[base])} run(s)), mean MAE {name} m: '
                             f'{mae:.3f} vs {ref:.3f}, {100 * (mae - ref) / ref:+.1f} %')
    return lines


# The benchmark's targets (issue "Networks that have learnt", item 4), on MAE 0-80 m.
TARGET_RANGE = '0-80'
KD_GAIN = 0.05  # a distilled student's mean MAE at least 5 % below its no-KD twin's
DISTILLED_XD = {'d1': 0.85, 'mae': 3.0}  # the distilled XD-RCDepth, mean over seeds
AUSE_FRACTION = 0.3  # AUSE-RMSE at most 0.3 x the run's RMSE
WITHIN_1SIGMA = (0.65, 0.85)  # fraction of pixels with |error| <= sigma


def _group_mean(reports: dict[str, dict[str, Any]], group: str, key: str,
                depth_range: str = TARGET_RANGE) -> float | None:
    """Mean of ``key`` at ``depth_range`` over the seeds of ``group`` (None if absent)."""
    values = [r['ranges'][depth_range].get(key) for run, r in reports.items()
              if run_group(run) == group]
    if not values or any(v is None for v in values):
        return None
    return sum(values) / len(values)


def targets(reports: dict[str, dict[str, Any]]) -> list[str]:
    """Return the benchmark's targets as ``- **met**: ...`` / ``- **missed**: ...`` lines.

    Checked: the teacher has the lowest MAE of all runs; each distilled student's mean MAE is
    at least 5 % below its no-KD twin's (seeds averaged); the distilled XD-RCDepth reaches
    delta1 >= 0.85 and MAE <= 3.0 m (seeds averaged); camera-only has the highest MAE; every
    run with sigma has AUSE-RMSE <= 0.3 x RMSE and 65-85 % of pixels within 1 sigma. A target
    whose runs are missing is named as not measured.
    """
    def line(met: bool | None, text: str) -> str:
        verdict = 'not measured' if met is None else ('met' if met else 'missed')
        return f'- **{verdict}**: {text}'

    mae = {run: r['ranges'][TARGET_RANGE]['mae'] for run, r in reports.items()}
    lines = []
    if 'teacher' in mae and len(mae) > 1:
        best_other = min((m, run) for run, m in mae.items() if run != 'teacher')
        lines.append(line(mae['teacher'] < best_other[0],
                          f'the teacher has the lowest MAE: {mae["teacher"]:.3f} m '
                          f'(best other: {best_other[1]} {best_other[0]:.3f} m)'))
    else:
        lines.append(line(None, 'the teacher has the lowest MAE'))
    for student in ('xdrcdepth', 'lircdepth'):
        kd = _group_mean(reports, f'{student}_kd', 'mae')
        nokd = _group_mean(reports, f'{student}_nokd', 'mae')
        text = f'{student} with its KD at least {100 * KD_GAIN:.0f} % below without'
        if kd is None or nokd is None:
            lines.append(line(None, text))
        else:
            gain = (nokd - kd) / nokd
            change = f'{100 * abs(gain):.1f} % {"lower" if gain >= 0 else "higher"}'
            lines.append(line(gain >= KD_GAIN, f'{text}: {kd:.3f} vs {nokd:.3f} m, {change}'))
    d1 = _group_mean(reports, 'xdrcdepth_kd', 'd1')
    xd_mae = _group_mean(reports, 'xdrcdepth_kd', 'mae')
    text = (f'distilled XD-RCDepth delta1 >= {DISTILLED_XD["d1"]} and MAE <= '
            f'{DISTILLED_XD["mae"]} m')
    lines.append(line(None, text) if d1 is None or xd_mae is None else line(
        d1 >= DISTILLED_XD['d1'] and xd_mae <= DISTILLED_XD['mae'],
        f'{text}: delta1 {d1:.3f}, MAE {xd_mae:.3f} m'))
    if 'camera_only' in mae and len(mae) > 1:
        worst_other = max((m, run) for run, m in mae.items() if run != 'camera_only')
        lines.append(line(mae['camera_only'] > worst_other[0],
                          f'camera-only is the worst: {mae["camera_only"]:.3f} m (worst other: '
                          f'{worst_other[1]} {worst_other[0]:.3f} m)'))
    else:
        lines.append(line(None, 'camera-only is the worst'))
    for run, r in reports.items():
        row = r['ranges'][TARGET_RANGE]
        if not r.get('has_uncertainty') or row.get('ause_rmse') is None:
            continue
        ratio, within = row['ause_rmse'] / row['rmse'], row['calib_1sigma']
        calibrated = WITHIN_1SIGMA[0] <= within <= WITHIN_1SIGMA[1]
        lines.append(line(ratio <= AUSE_FRACTION and calibrated,
                          f'{run} uncertainty: AUSE-RMSE {ratio:.2f} x RMSE (<= {AUSE_FRACTION}), '
                          f'{100 * within:.1f} % within 1 sigma ({100 * WITHIN_1SIGMA[0]:.0f}-'
                          f'{100 * WITHIN_1SIGMA[1]:.0f} %)'))
    return lines


README_BEGIN = '<!-- synthetic-benchmark:begin -->'
README_END = '<!-- synthetic-benchmark:end -->'


def embed(path: str | Path, text: str) -> None:
    """Replace what stands between :data:`README_BEGIN` and :data:`README_END` in ``path``.

    Written atomically; a file without exactly one pair of markers raises ValueError and is
    left as it was.
    """
    path = Path(path)
    old = path.read_text(encoding='utf-8')
    if old.count(README_BEGIN) != 1 or old.count(README_END) != 1 or (
            old.index(README_BEGIN) > old.index(README_END)):
        raise ValueError(f'{path} needs one {README_BEGIN} line followed by one {README_END}')
    head, rest = old.split(README_BEGIN)
    _, tail = rest.split(README_END)
    write_text_atomic(path, f'{head}{README_BEGIN}\n{text.strip()}\n{README_END}{tail}')


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
    parser.add_argument('--note', default=None, help='a paragraph printed before the tables')
    parser.add_argument('--readme', default=None,
                        help=f'also write the text into this file between {README_BEGIN} and '
                             f'{README_END}')
    args = parser.parse_args(argv)
    if args.curves:
        learning_curves(args.runs_dir, args.runs, args.curves)
    try:
        reports = load_reports(args.runs_dir, args.runs)
    except (FileNotFoundError, ValueError, KeyError) as exc:
        print(f'report: {exc}', file=sys.stderr)
        return 1
    parts = [args.note] if args.note else []
    parts += [depth_table(reports), uncertainty_table(reports)]
    gains = kd_gains(reports)
    if gains:
        parts.append('\n'.join(gains))
    parts.append('Targets (test split, MAE 0-80 m):\n\n' + '\n'.join(targets(reports)))
    text = '\n\n'.join(parts)
    print(text)
    if args.readme:
        try:
            embed(args.readme, text)
        except (OSError, ValueError) as exc:
            print(f'report: {exc}', file=sys.stderr)
            return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
