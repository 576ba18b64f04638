"""The package's import graph runs one way: a new import that breaks a rule fails here.

schema (record and model contracts) <- components <- pipeline; serving <- schema only;
trainer and evaluator share what they share through schema and components.trust;
bench and tests are used by nobody else. The installed package is ``svhn_tfx`` (setup.py maps
the top-level folders under it), so the project's own modules are imported through that name.
"""
import ast
import os

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = "svhn_tfx"
INSTALLED = ("schema", "components", "pipeline", "serving")   # svhn_tfx.<room>
ROOMS = INSTALLED + ("bench", "tests")


def _imports():
    """{module path: {imported project module (dotted, without svhn_tfx.)}}, function-level
    imports included; a bare ``schema``/``components``/... import is kept as ``bare:<name>``."""
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
                graph[module] = {_room_name(m) for m in found if _room_name(m)}
    return graph


def _room_name(imported: str):
    if imported.startswith(PACKAGE + "."):
        return imported[len(PACKAGE) + 1:]
    top = imported.split(".")[0]
    if top in INSTALLED:
        return f"bare:{imported}"
    return imported if top in ROOMS else None


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


def test_the_project_is_imported_through_its_installed_name():
    """``import schema`` would find PyPI's schema library, or nothing, once installed."""
    bare = sorted(f"{module} imports {target[5:]}" for module, targets in GRAPH.items()
                  for target in targets if target.startswith("bare:"))
    assert bare == []


def test_the_rules_see_imports_inside_functions():
    """The graph is only as good as its parser: a function-level import counts too."""
    assert "serving.process.ServerProcess" in GRAPH["bench.abuse"]
