"""The package's import graph runs one way: a new import that breaks a rule fails here.

schema (record and model contracts) <- components <- pipeline; serving <- schema only;
trainer and evaluator share what they share through schema and components.trust;
bench and tests are used by nobody else.
"""
import ast
import os

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROOMS = ("schema", "components", "pipeline", "serving", "bench", "tests")


def _imports():
    """{module path: {imported project module (dotted)}}, function-level imports included."""
    graph = {}
    for room in ROOMS:
        for parent, _, files in os.walk(os.path.join(REPO, room)):
            for name in files:
                if not name.endswith(".py"):
                    continue
                path = os.path.join(parent, name)
                module = os.path.relpath(path, REPO)[:-3].replace(os.sep, ".")
                with open(path) as f:
                    tree = ast.parse(f.read(), path)
                found = set()
                for node in ast.walk(tree):
                    if isinstance(node, ast.Import):
                        found.update(alias.name for alias in node.names)
                    elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                        found.update(f"{node.module}.{alias.name}" for alias in node.names)
                graph[module] = {m for m in found if m.split(".")[0] in ROOMS}
    return graph


GRAPH = _imports()


def _violations(importer_prefix: str, allowed) -> list:
    return sorted(f"{module} imports {target}" for module, targets in GRAPH.items()
                  if module.startswith(importer_prefix) for target in targets
                  if not any(target == a or target.startswith(a + ".") for a in allowed))


@pytest.mark.parametrize("room, allowed", [
    ("schema", ["schema"]),
    ("serving", ["schema", "serving"]),
    ("components", ["schema", "components"]),
    ("pipeline", ["schema", "components", "pipeline", "serving"]),
])
def test_each_room_imports_only_what_it_may(room, allowed):
    assert _violations(room, allowed) == []


def test_trainer_and_evaluator_do_not_import_each_other():
    for importer, other in (("components.trainer", "components.evaluator"),
                            ("components.evaluator", "components.trainer")):
        crossing = [v for v in _violations(importer, [importer]) if
                    v.split(" imports ")[1].startswith(other)]
        assert crossing == []


def test_nothing_imports_tests_or_bench_but_themselves():
    for room in ("tests", "bench"):
        users = sorted(f"{module} imports {target}" for module, targets in GRAPH.items()
                       if not module.startswith(room) for target in targets
                       if target.split(".")[0] == room)
        assert users == [], room


def test_the_rules_see_imports_inside_functions():
    """The graph is only as good as its parser: a function-level import counts too."""
    assert "serving.process.ServerProcess" in GRAPH["bench.abuse"]
