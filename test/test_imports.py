"""The package's import graph: no module imports itself back, through any chain."""

import ast
from pathlib import Path
import subprocess
import sys

ROOT = Path(__file__).resolve().parents[1] / 'rcdepth_ros'


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix('').parts
    return '.'.join(parts[:-1] if parts[-1] == '__init__' else parts)


def import_graph(top_level_only: bool) -> dict[str, set[str]]:
    """Edges module -> rcdepth_ros modules it imports (read from the source, not run).

    ``top_level_only`` keeps the imports executed at import time (not those inside
    functions). The implicit import of a parent package is not an edge.
    """
    files = {_module_name(p): p for p in ROOT.rglob('*.py')}
    graph: dict[str, set[str]] = {name: set() for name in files}
    for name, path in files.items():
        package = name if path.name == '__init__.py' else name.rpartition('.')[0]
        tree = ast.parse(path.read_text(encoding='utf-8'))
        nodes = tree.body if top_level_only else ast.walk(tree)
        for node in nodes:
            if isinstance(node, ast.If):  # `if TYPE_CHECKING:` blocks do not run
                continue
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ''
                if node.level:
                    anchor = package.split('.')
                    anchor = anchor[:len(anchor) - (node.level - 1)]
                    base = '.'.join(anchor + ([base] if base else []))
                targets = [f'{base}.{a.name}' if f'{base}.{a.name}' in files else base
                           for a in node.names]
            graph[name].update(t for t in targets if t in files and t != name)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """Return one cycle as a list of modules, or None (iterative three-colour DFS)."""
    colour = dict.fromkeys(graph, 0)  # 0 new, 1 on the stack, 2 done
    for start in sorted(graph):
        if colour[start]:
            continue
        stack = [(start, iter(sorted(graph[start])))]
        path = [start]
        colour[start] = 1
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                colour[node] = 2
                stack.pop()
                path.pop()
            elif colour[child] == 1:
                return path[path.index(child):] + [child]
            elif colour[child] == 0:
                colour[child] = 1
                path.append(child)
                stack.append((child, iter(sorted(graph[child]))))
    return None


def test_cycle_finder_finds_a_known_cycle():
    assert find_cycle({'a': {'b'}, 'b': {'c'}, 'c': {'a'}, 'd': set()}) == ['a', 'b', 'c', 'a']
    assert find_cycle({'a': {'b'}, 'b': set()}) is None


def test_package_has_no_import_cycle():
    assert find_cycle(import_graph(top_level_only=True)) is None


def test_models_have_no_cycle_even_through_deferred_imports():
    graph = import_graph(top_level_only=False)
    models = {k: {v for v in vs if v.startswith('rcdepth_ros.models')}
              for k, vs in graph.items() if k.startswith('rcdepth_ros.models')}
    assert find_cycle(models) is None
    # The student config sits with its model: the student imports no registry.
    assert 'rcdepth_ros.models.variants' not in graph['rcdepth_ros.models.student']


def test_importing_models_runs_cleanly():
    code = 'import rcdepth_ros.models as m; assert "xdrcdepth" in m.VARIANTS'
    subprocess.run([sys.executable, '-W', 'error::ImportWarning', '-c', code], check=True)
