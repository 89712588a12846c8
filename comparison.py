"""Several splits: --repeats N of one configuration, and --compare of presets and baselines on the same splits,
with the blend of each split's members and the comparison table (mean ± std, paired tests). Each member trains in
a folder of its own; with --resume, finished members are read back and an interrupted one continues.

The one-run function and the presets come from main.py, which calls run_splits.
"""

import contextlib
import multiprocessing
import sys

import baseline_models
import blending
import data_processor
import reporting
import utils
from utils import ConfigError


def run_splits(config, run, parse_config, presets):
    """Each split in turn (split seeds SPLIT_SEED, SPLIT_SEED + 1, ...; or u1, u2, ...): the configuration, or with
    --compare the chosen presets and baselines, each run in its own folder. `run(config, data, tags, first_stage)`
    trains one (main.run), `parse_config(argv, preset)` makes a preset's configuration, `presets` is main.PRESETS.
    Writes summary.json (one configuration) or comparison.csv/.md/.png (mean ± std over the splits). With
    --resume, finished members are read back, an interrupted one continues from its checkpoint, the rest run.
    With --refit, each row's refit (main.run) is a row of its own, and so is the blend of the refits."""
    presets, baseline_names = compare_rows(config, presets) if config["compare"] else ([config["preset"]], [])
    data = data_processor.load_run_data(config)
    results_dir = reporting.prepare_results_dir(config["results_dir"])
    models = models_to_run(config, results_dir, presets, parse_config)
    group = f"group-{reporting.group_name(config)}"  # one CometML tag shared by the runs of this command
    member_folders = {**{name: results_dir / baseline_models.baseline_folder(name) for name in baseline_names},
                      **{f"{name} preset": folder for name, (_, folder) in models.items()}}  # by row name
    beside = baseline_names and config["baselines_beside"]
    if beside and hasattr(sys.stdout, "reconfigure"):  # whole lines, so that the two processes' lines never mix
        sys.stdout.reconfigure(line_buffering=True)
    with multiprocessing.get_context("spawn").Pool(1) if beside else contextlib.nullcontext() as pool:
        baselines = pool.apply_async(every_split_baselines, (config, data, results_dir, baseline_names)) if beside \
            else None  # a process of its own, while this one trains the networks
        rows = {}  # {row name: its result on each split}
        for index in range(config["repeats"]):
            print(f"\n=== run {index + 1}/{config['repeats']}: split {split_of_repeat(config, index)['split']}, "
                  f"split seed {split_of_repeat(config, index)['split_seed']} ===")
            if not beside:
                add_baseline_rows(rows, [split_baselines(config, data, index, results_dir, baseline_names)])
            status = run_models(config, run, models, data, split_of_repeat(config, index), f"run-{index + 1}",
                                group, rows)
            if status is not None:  # the pool, leaving the block, stops the baselines' process
                return stopped(config, status)
        if beside:
            wait_for_baselines(pool, baselines, rows)
    names = [*baseline_names, *(f"{name} preset" if config["compare"] else name for name in models)]
    order = [*names, *map(reporting.refit_row, names)]  # the table's order
    rows = {name: rows[name] for name in order if name in rows}
    if not config["compare"]:
        return reporting.save_summaries(results_dir, config, rows)
    blends = {"splits": [], "refit_splits": []}
    for index in range(config["repeats"]):  # every finished member of each split, blended on its validation ratings
        split_flags, run_name = split_of_repeat(config, index), f"run-{index + 1}"
        members = [folder / run_name for folder in member_folders.values()]
        for refit, kind in ((False, "splits"), (True, "refit_splits"))[:1 + config["refit"]]:
            blends[kind].append({**split_flags, **blending.blend_folders(  # refit: the same fit, the refits' test
                members, data, results_dir / "blend" / run_name / ("refit" if refit else ""), refit=refit)})
    return save_comparison(config, data, results_dir, rows, blends, member_folders)


def stopped(config, status):
    """The exit status of a stopped comparison; after an interrupt, the command that continues it."""
    if status == 130:
        print(f"The whole command continues, keeping every finished member, with: python3 main.py "
              f"{' '.join(flag for flag in config['argv'] if flag != '--resume')} --resume", file=sys.stderr)
    return status


def wait_for_baselines(pool, baselines, rows):
    """The baselines' process's results, added to `rows` once it has finished; the pool closed."""
    print("\n=== the baselines' process: waiting for it to finish ===")
    add_baseline_rows(rows, baselines.get())
    pool.close()  # and joined: a pool only terminated leaves a semaphore that Python warns about at exit
    pool.join()


def every_split_baselines(config, data, results_dir, names):
    """The baselines of every split, in turn: what the baselines' process runs beside the networks."""
    return [split_baselines(config, data, index, results_dir, names) for index in range(config["repeats"])]


def add_baseline_rows(rows, split_results):
    """The baselines' results of each split (split_baselines) added to `rows`, a refit's as its row's twin."""
    for results in split_results:
        for result in results:
            name = reporting.refit_row(result["name"]) if result.get("refit") else result["name"]
            rows.setdefault(name, []).append(result)


def split_baselines(config, data, index, results_dir, names):
    """The baselines of the index-th split, each in its folder (read back when finished, with --resume), then their
    refits: their results, with the split."""
    if not names:
        return []
    split_flags, run_name = split_of_repeat(config, index), f"run-{index + 1}"
    parts = data_processor.split_ratings(data, split_flags["split"], split_flags["split_seed"], config["time_window"])
    results = baseline_models.evaluate_baselines(data, parts, results_dir, run_name, names,
                                                 keep_finished=config["resume"])
    if config["refit"]:
        results += baseline_models.evaluate_baselines(data, parts, results_dir, f"{run_name}/refit", names,
                                                      keep_finished=config["resume"],
                                                      refit_of={result["name"]: result for result in results})
    return [{**split_flags, **result} for result in results]


def run_models(config, run, models, data, split_flags, run_name, group, rows):
    """The presets of one split, each added to `rows` with its refit; sparsefc's run is glocalk's first stage when
    both are chosen (trained once). Returns the exit status that stops the command, or None."""
    first_stage_shared = shares_first_stage(models)
    for name, (model_config, folder) in models.items():
        if name == "sparsefc" and first_stage_shared:
            continue  # written by glocalk's run, below
        first_stage = (models["sparsefc"][0], models["sparsefc"][1] / run_name) if (
            name == "glocalk" and first_stage_shared) else None
        status, result = run_member(run, name, {**model_config, **split_flags}, folder / run_name, data, group,
                                    config["resume"], first_stage)
        if result is None or (status != 0 and not config["compare"]):
            return status
        for row, member in [(name, folder / run_name)] + ([("sparsefc", first_stage[1])] if first_stage else []):
            row = f"{row} preset" if config["compare"] else row
            rows.setdefault(row, []).append(reporting.run_summary(reporting.finished_result(member), split_flags))
            refitted = config["refit"] and reporting.finished_result(member / "refit")
            if refitted:
                rows.setdefault(reporting.refit_row(row), []).append(reporting.run_summary(refitted, split_flags))
    return None


def save_comparison(config, data, results_dir, rows, blends, member_folders):
    """blend.json, and the table of every row and the blend, then with --refit the same rows refitted, each with
    its paired tests against the strongest Bayesian row of its kind (reporting.save_summaries)."""
    utils.save_json(results_dir / "blend.json", blends)
    runs = {**{name: runs for name, runs in rows.items() if not name.endswith(reporting.REFIT)},
            BLEND_ROW: blend_rows(blends["splits"])}
    rows = {**rows, reporting.refit_row(BLEND_ROW): blend_rows(blends["refit_splits"])}
    refit_runs = {reporting.refit_row(name): rows[reporting.refit_row(name)] for name in runs
                  if rows.get(reporting.refit_row(name))}
    member_folders = {**member_folders, BLEND_ROW: results_dir / "blend"}
    tests, references = {}, []
    for kind_rows, subfolder in ((runs, ""), (refit_runs, "refit")):
        rename = reporting.refit_row if subfolder else (lambda name: name)
        names = {rename(name): name for name in member_folders}
        row_folders = {name: [member_folders[names[name]] / f"run-{index + 1}" / subfolder
                              for index in range(config["repeats"])] for name in kind_rows if name in names}
        row_tests, reference = blending.paired_tests(data, row_folders, {
            name: reporting.summarise(split_rows) for name, split_rows in kind_rows.items()},
            bayesian=[rename(name) for name in blending.BAYESIAN_ROWS])
        tests.update(row_tests)
        references += [reference] if reference else []
    reference = references and (references[0] + (f"; {references[1]} for the refit rows" if references[1:] else ""))
    return reporting.save_summaries(results_dir, config, {**runs, **refit_runs}, (tests, reference or None))


BLEND_ROW = "blend of the above (fitted on validation)"


def blend_rows(blends):
    return [{"split": split["split"], "split_seed": split["split_seed"], **split["blend"]} for split in blends]


def compare_rows(config, presets):
    """--compare's rows: (the presets, the baselines by name) to run; 'all' is every preset and the default
    baselines. ROWS names presets and baselines by their folder names."""
    if config["compare"] == "all":
        return list(presets), list(baseline_models.DEFAULT_BASELINES)
    names = [*presets, *map(baseline_models.baseline_folder, baseline_models.BASELINES)]
    rows = [row.strip() for row in config["compare"].split(",") if row.strip()]
    unknown = [row for row in rows if row not in names]
    if unknown or not rows:
        raise ConfigError(f"--compare {config['compare']!r}: {', '.join(unknown) or 'no rows'} is not a row. Fix: "
                          f"name rows among {', '.join(names)}, comma-separated, or give --compare alone for every "
                          f"preset and the default baselines.")
    baselines = [name for name in baseline_models.BASELINES if baseline_models.baseline_folder(name) in rows]
    return [name for name in presets if name in rows], baselines


def models_to_run(config, results_dir, presets, parse_config):
    """{preset: (its configuration, its folder)}: the chosen presets with --compare, else the configuration."""
    if config["compare"]:
        return {name: (parse_config(config["argv"], preset=name), results_dir / name) for name in presets}
    return {config["preset"]: (config, results_dir)}


def shares_first_stage(models):
    """Whether the sparsefc row can be glocalk's first stage: both chosen, with the same values but for glocalk's
    own (the global kernel and the fine-tuning)."""
    if "sparsefc" not in models or "glocalk" not in models:
        return False
    sparsefc, glocalk = models["sparsefc"][0], models["glocalk"][0]
    own = ["global_kernel_size", "dot_scale", "finetune_epochs", "finetune_iterations", "preset"]
    return {**glocalk, **{key: sparsefc[key] for key in own}} == sparsefc


def run_member(run, name, member_config, folder, data, group, resume, first_stage):
    """One member of a split: read back when finished (with --resume), continued from its checkpoint when
    interrupted, else trained. Returns (status, metrics)."""
    def finished(member):
        result = reporting.finished_result(member)
        return result if result and (not member_config["refit"] or reporting.finished_result(member / "refit")) \
            else None

    result = finished(folder) if resume else None
    if result and (first_stage is None or finished(first_stage[1])):
        print(f"\n=== {name}, split {member_config['split']}: finished in {folder} ===")
        return 0, result
    print(f"\n=== {name}, split {member_config['split']} ===")
    continues = resume and ((folder / "checkpoint.json").is_file() or (folder / "metrics.json").is_file())
    return run({**member_config, "compare": None, "repeats": 1, "results_dir": folder, "resume": continues}, data,
               tags=[group], first_stage=first_stage)


def split_of_repeat(config, index):
    """The split of the index-th repeat: split seed SPLIT_SEED + index, or ML-100K's u<k + index>."""
    if config["split"][0] == "u" and config["split"][1:].isdigit():
        return {"split": f"u{int(config['split'][1:]) + index}", "split_seed": config["split_seed"]}
    return {"split": config["split"], "split_seed": config["split_seed"] + index}
