"""The shape of the code: no import circle, no script importing another, main.py short, functions short, and a flag
for every constant of main.py."""

import ast

import config
import main
from conftest import PROJECT_DIR

SCRIPTS = {"main", "evaluate", "recommend", "baselines", "benchmark", "blend"}
MODULES = {path.stem: path for path in PROJECT_DIR.glob("*.py")}


def imports_of(path):
    """The project modules a file imports, anywhere in it (imports inside functions included)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module.split(".")[0])
    return names & set(MODULES)


def test_no_import_cycle_and_no_script_imports_another():
    graph = {name: imports_of(path) for name, path in MODULES.items()}
    for script in SCRIPTS:
        assert not graph[script] & SCRIPTS, f"{script}.py imports the script(s) {graph[script] & SCRIPTS}"

    def visit(name, trail):
        assert name not in trail, "import cycle: " + " -> ".join([*trail, name])
        for imported in graph[name]:
            visit(imported, [*trail, name])

    for name in graph:
        visit(name, [])


def test_main_is_short_and_every_function_reads_on_a_screen():
    assert len((PROJECT_DIR / "main.py").read_text().splitlines()) <= 300
    for name, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef):
                length = node.end_lineno - node.lineno + 1
                assert length <= 45, f"{name}.{node.name} is {length} lines long"


def test_every_constant_of_main_has_a_flag_and_is_recorded():
    constants = {name for name in vars(main) if name.isupper()} - {"PRESETS", "PRESET_DATASET_VALUES"}
    flagged = {constant for constant, *_ in config.FLAGS}
    assert constants == flagged
    parsed = main.parse_config(["--lr-step-epochs", "5,9", "--comet-project", "mine"])
    assert parsed["lr_step_epochs"] == [5, 9] and parsed["comet_project"] == "mine"
    for constant, flag, *_ in config.FLAGS:
        assert config.key_of(flag) in parsed, constant
