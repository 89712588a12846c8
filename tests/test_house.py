"""The shape of the code: no import circle, no script importing another, main.py short, modules and functions
short, the data layer's door, toolkit and generic splits naming no format, --help cheap by the import graph,
exactly one flag for every constant of main.py, and the docs' figures and commands those of the reference tables."""

import argparse
import ast
import csv
import re

import config
import main
from conftest import PROJECT_DIR

SCRIPTS = {"main", "evaluate", "recommend", "baselines", "benchmark", "blend"}
MODULES = {**{path.stem: path for path in PROJECT_DIR.glob("*.py")},
           **{f"datasets.{path.stem}": path for path in (PROJECT_DIR / "datasets").glob("*.py")}}
MODULES["datasets"] = MODULES.pop("datasets.__init__")
HEAVY = {"tensorflow", "keras", "sklearn", "pandas", "scipy", "comet_ml", "matplotlib", "myfm"}


def imported_names(path, module_level_only=False):
    """The modules a file imports (dotted names), anywhere in it or only at module level."""
    tree = ast.parse(path.read_text())
    nodes = tree.body if module_level_only else list(ast.walk(tree))
    names = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            submodules = {f"{node.module}.{alias.name}" for alias in node.names} & set(MODULES)
            names |= submodules or {node.module}  # from datasets import splits: the module datasets.splits
    return names


def project_imports(path, module_level_only=False):
    own = "datasets" if path.name == "__init__.py" else None  # the package's own modules, not itself
    return {name for name in imported_names(path, module_level_only) if name in MODULES and name != own}


def test_no_import_cycle_and_no_script_imports_another():
    graph = {name: project_imports(path) for name, path in MODULES.items()}
    for script in SCRIPTS:
        assert not graph[script] & SCRIPTS, f"{script}.py imports the script(s) {graph[script] & SCRIPTS}"

    def visit(name, trail):
        assert name not in trail, "import cycle: " + " -> ".join([*trail, name])
        for imported in graph[name]:
            visit(imported, [*trail, name])

    for name in graph:
        visit(name, [])
    below_scripts = set(MODULES) - SCRIPTS - {"config"}
    assert not {name for name in below_scripts if "config" in graph[name]}, "a library module imports config"


def test_main_is_short_and_every_module_and_function_reads_on_a_screen():
    assert len((PROJECT_DIR / "main.py").read_text().splitlines()) <= 300
    assert len((PROJECT_DIR / "data_processor.py").read_text().splitlines()) < 300
    for name, path in MODULES.items():
        assert len(path.read_text().splitlines()) <= 450, f"{name} is over 450 lines"
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef):
                length = node.end_lineno - node.lineno + 1
                assert length <= 45, f"{name}.{node.name} is {length} lines long"


def test_the_door_the_toolkit_and_the_generic_splits_name_no_format():
    formats = re.compile(r"ml-\d|movielens|grouplens|netflix|own_csv|[\"']csv[\"']|--dataset csv|u\.data|ratings\.dat"
                         r"|\bu[1-5]\b|\bua\b|ml100k", re.IGNORECASE)
    for name in ["data_processor", "datasets.lines", "datasets.splits", "datasets.source", "datasets.download"]:
        code = "\n".join(line for line in MODULES[name].read_text().splitlines())
        assert not formats.search(code), f"{name} names a format: {formats.search(code).group(0)!r}"


def test_scripts_import_no_heavy_library_before_their_work_starts():
    """--help and a bad flag answer at once: what the scripts import at module level, followed through the
    project's modules, reaches none of TensorFlow, scikit-learn, pandas, SciPy, comet_ml, matplotlib, myfm."""
    def reached(name, seen):
        if name in seen:
            return set()
        seen.add(name)
        imports = imported_names(MODULES[name], module_level_only=True)
        heavy = {module.split(".")[0] for module in imports} & HEAVY
        for module in imports & set(MODULES):
            heavy |= {f"{module} -> {found}" for found in reached(module, seen)}
        return heavy

    for script in SCRIPTS - {"benchmark"}:
        assert not reached(script, set()), f"{script}.py imports at module level: {reached(script, set())}"


def test_every_constant_of_main_has_exactly_one_flag_derived_from_it():
    constants = {name for name in vars(main) if name.isupper()} - config.NOT_FLAGS
    parser = config.build_parser("", {name: getattr(main, name) for name in vars(main) if name.isupper()},
                                 main.__file__)
    by_key = {}
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        by_key.setdefault(action.dest, []).append(action)
    for constant in constants:
        actions = by_key.get(constant.lower(), [])
        assert len(actions) == 1, f"{constant} has {len(actions)} flags"
        assert config.flag_of(constant) in actions[0].option_strings
        assert actions[0].default == getattr(main, constant) and actions[0].help, constant
    # Written by hand only what cannot be derived: readers of lists and paths, choices, earlier spellings.
    for constant in config.READERS:
        assert isinstance(getattr(main, constant), (list, type(main.RESULTS_DIR))) or getattr(main, constant) is None
    assert set(config.CHOICES) <= {name.lower() for name in constants}
    parsed = main.parse_config(["--lr-step-epochs", "5,9", "--comet-project", "mine", "--patience", "7",
                                "--min-delta", "0.01"])
    assert parsed["lr_step_epochs"] == [5, 9] and parsed["comet_project"] == "mine"
    assert (parsed["early_stopping_patience"], parsed["early_stopping_min_delta"]) == (7, 0.01)


def test_the_worked_example_of_adding_a_format_runs(tmp_path, monkeypatch):
    """docs/data.md's FilmTrust module, registered as its one line in the table does, reads, splits and
    fingerprints a small file; a bad line is named."""
    import importlib.util

    import numpy as np
    import pytest

    import data_processor

    text = (PROJECT_DIR / "docs" / "data.md").read_text()
    code = text.split("## The data layer, and adding a format")[1].split("```python\n")[1].split("```")[0]
    (tmp_path / "filmtrust.py").write_text(code)
    spec = importlib.util.spec_from_file_location("filmtrust", tmp_path / "filmtrust.py")
    filmtrust = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(filmtrust)
    monkeypatch.setitem(data_processor.DATASETS, "filmtrust", filmtrust.DATASETS["filmtrust"])  # the table's line
    folder = tmp_path / "filmtrust"
    folder.mkdir()
    rng = np.random.default_rng(0)
    lines = [f"{user} {item} {rng.integers(1, 9) / 2:g}" for user in range(1, 41) for item in range(1, 31)
             if rng.random() < 0.5]
    (folder / "ratings.txt").write_text("\n".join(lines) + "\n")
    data = data_processor.load_data("filmtrust", str(folder))
    assert len(data.ratings) == len(lines) and data.scale == (0.5, 4.0, 0.5)
    split = data_processor.split_ratings(data, "random", 1)
    assert len(split.train) + len(split.val) + len(split.test) == len(lines)
    assert data_processor.ratings_fingerprint(data)["ratings"] == len(lines)
    (folder / "ratings.txt").write_text("\n".join(lines[:5] + ["7 3 4.5"] + lines[5:]) + "\n")
    with pytest.raises(data_processor.DataError, match=r"ratings.txt, line 6: Rating 4.5 is not 0.5-4"):
        data_processor.load_data("filmtrust", str(folder))
    with pytest.raises(data_processor.DataError, match="guoguibing"):
        data_processor.load_data("filmtrust", str(tmp_path / "elsewhere"))


def test_the_readme_results_table_agrees_with_the_reference_tables_it_cites():
    """The README's results are copied from two reference tables (each made by the command in its comparison.md):
    ML-100K u1-u5 and ML-1M random 1994-1998, train-only and refitted; every figure must be the file's, and a row
    that a table lacks reads "—"."""
    readme = {line.split("|")[1].strip(): [cell.strip(" *") for cell in line.split("|")[2:6]]
              for line in (PROJECT_DIR / "README.md").read_text().splitlines() if line.startswith("| ")}
    rows = {"user+item bias": "user+item bias", "item-knn": "`item-knn`", "bmf": "`bmf`", "bfm": "`bfm`:",
            "bfm-probit": "`bfm-probit`", "autorec preset": "`autorec`", "deeprec preset": "`deeprec`",
            "deeprec-user preset": "`deeprec-user`", "sparsefc preset": "`sparsefc`", "glocalk preset": "`glocalk`",
            "blend of the above (fitted on validation)": "blend of the presets"}
    for columns, name_of_table in ((slice(0, 2), "ml-100k-u1-compare"), (slice(2, 4), "ml-1m-random-compare")):
        with open(PROJECT_DIR / "results" / "reference" / name_of_table / "comparison.csv") as handle:
            table = {row["name"]: row for row in csv.DictReader(handle)}
        for name, label in rows.items():
            cells = next(cells for row, cells in readme.items() if row.startswith(label))[columns]
            expected = [f"{float(row['test_rmse_mean']):.4f} ± {float(row['test_rmse_std']):.4f}"
                        for row in (table[name], table[f"{name} (refit)"])] if name in table else ["—", "—"]
            assert cells == expected, (name_of_table, name)


def test_every_comparison_the_docs_cite_is_there_and_made_by_the_command_they_quote():
    """A reference table cited in README.md or docs/results.md exists, and the `--compare` command quoted right
    after the citation is the one in the table's first line (its flags, in any order; the results folder aside)."""
    cited = 0
    for document in ("README.md", "docs/results.md"):
        text = " ".join((PROJECT_DIR / document).read_text().split())
        for match in re.finditer(r"\]\(((?:\.\./)?results/reference/([\w-]+)/comparison\.md)\)", text):
            table = PROJECT_DIR / "results" / "reference" / match.group(2) / "comparison.md"
            assert table.is_file(), (document, match.group(1))
            cited += 1
            quoted = re.match(r"[^`]{0,3}`(python3 main\.py --compare [^`]+)`", text[match.end():])
            if quoted:
                made_by = re.search(r"`(python3 main\.py [^`]+)`", table.read_text().splitlines()[0]).group(1)
                flags = [set(command.split(" --")) for command in (quoted.group(1), made_by)]  # "repeats 5", ...
                assert flags[0] <= flags[1], (document, match.group(2), flags[0] - flags[1])
    assert cited >= 4
