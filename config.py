"""The command line of main.py: a flag for every constant at its top, presets, and the checks that every
configuration passes before any data is read or model built.

A configuration is a plain dict of the constants' lower-case names; it is what config.json records. Only the
scripts import this module.
"""

import argparse
import json
import math
import os
import re
import sys
from pathlib import Path

import data_processor
from utils import ConfigError  # noqa: F401  (the scripts take it from here)




ACTIVATIONS = ["selu", "relu", "elu", "sigmoid", "tanh", "swish", "linear"]
# The accepted values of each flag with a fixed set of them: argparse checks flags, validate_config edited constants.
CHOICES = {
    "activation": ACTIVATIONS,
    "last_activation": ACTIVATIONS,
    "loss": ["masked_rmse", "masked_mse"],
    "optimizer": ["sgd", "adam"],
    "orientation": ["user", "item"],
    "lr_schedule": ["none", "step", "plateau"],
    "training_path": ["auto", "sparse", "dense"],
    "precision": ["auto", "float32", "bfloat16"],
    "dataset": list(data_processor.DATASETS),
    "header": ["auto", "yes", "no"],
    "split": data_processor.SPLITS,
    "time_window": data_processor.TIME_WINDOWS,
    "distribute": ["none", "mirrored", "multi-worker"],
    "model": ["deep", "kernel"],
    "lbfgs_solver": ["tensorflow", "scipy"],
}
PRESET_ALIASES = {"seed": "reference"}  # earlier names, still accepted
def parse_layers(text):
    try:
        return [int(size) for size in str(text).split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of integers, e.g. 512,256,512")


def parse_scale(text):
    try:
        values = [float(value) for value in str(text).split(",")]
    except ValueError:
        values = []
    if len(values) not in (2, 3) or not values[0] < values[1] or (len(values) == 3 and not values[2] >= 0):
        raise argparse.ArgumentTypeError(f"{text!r} is not a rating scale: low,high or low,high,step, e.g. 1,5 or "
                                         f"0.5,5,0.5 (step 0: any value)")
    return values


def parse_epochs(text):
    try:
        return [int(epoch) for epoch in str(text).split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of epochs, e.g. 24,36,48")


# A constant's flag is the --kebab-case of its name, its default the constant, its type the constant's, its help
# the comment on its line in main.py. Only what cannot be derived is written here: how a list or a path is read
# (READERS), the accepted values (CHOICES, above), earlier spellings (ALIASES) and the number checks (below).
READERS = {"LAYERS": parse_layers, "LR_STEP_EPOCHS": parse_epochs, "RATING_SCALE": parse_scale, "RESULTS_DIR": Path}
ALIASES = {"EARLY_STOPPING_PATIENCE": ["--patience"], "EARLY_STOPPING_MIN_DELTA": ["--min-delta"]}
NOT_FLAGS = {"PRESETS", "PRESET_DATASET_VALUES"}  # upper-case names of main.py that are tables, not values


def flag_of(constant):
    return "--" + constant.lower().replace("_", "-")


def key_of(flag):
    return flag[2:].replace("-", "_")


def constant_comments(source):
    """{constant: the comment on its line} in a Python file of `NAME = value  # comment` lines."""
    lines = Path(source).read_text().splitlines()
    return {match.group(1): match.group(2) for match in
            (re.match(r"([A-Z][A-Z0-9_]*) = .*?  # (.*)$", line) for line in lines) if match}


def add_constant_flag(parser, constant, default, help_text):
    """A constant's flag: bools with their --no- form, CHOICES as choices, READERS or the default's type."""
    key = constant.lower()
    names = [flag_of(constant), *ALIASES.get(constant, [])]
    if isinstance(default, bool):
        parser.add_argument(*names, dest=key, action=argparse.BooleanOptionalAction, default=default, help=help_text)
        return
    help_text = f"{help_text} (default {default})"
    if key in CHOICES:
        choices = CHOICES[key] + (list(data_processor.SPLIT_ALIASES) if key == "split" else [])
        parser.add_argument(*names, dest=key, choices=choices, default=default, help=help_text)
    else:
        reads = READERS.get(constant) or (type(default) if default is not None else str)
        parser.add_argument(*names, dest=key, type=reads, default=default, help=help_text)


def build_parser(description, constants, source):
    """The parser of main.py: a flag for each constant (defaults: the constants; help: their comments in
    `source`, main.py), and the flags that are not hyperparameters."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", choices=[*constants["PRESETS"], *PRESET_ALIASES], default="reference",
                        help="a named set of hyperparameters (PRESETS in main.py)")
    parser.add_argument("--compare", nargs="?", const="all", default=None, metavar="ROWS",
                        help="train every preset and the baselines on the same split(s), or just the comma-separated "
                             "ROWS (presets and baselines by name, e.g. deeprec,glocalk,bfm); write "
                             "comparison.csv/.md/.png")
    parser.add_argument("--resume", action="store_true",
                        help="continue the interrupted run whose checkpoint is in --results-dir")
    parser.add_argument("--show-config", action="store_true",
                        help="print the configuration (constants, preset, flags) as JSON and exit")
    comments = constant_comments(source)
    for constant, default in constants.items():
        if constant not in NOT_FLAGS:
            add_constant_flag(parser, constant, default, comments.get(constant, ""))
    return parser


def parse_flags(argv, constants, description, source, preset=None):
    """The constants (main.py's upper-case globals, PRESETS and PRESET_DATASET_VALUES among them; `source` is
    main.py, whose comments are the flags' help), then the preset (`preset` wins over --preset) and its values
    for the data set, then the flags. Returns the validated configuration."""
    parser = build_parser(description, constants, source)
    known = parser.parse_known_args(argv)[0]
    preset = PRESET_ALIASES.get(preset or known.preset, preset or known.preset)
    parser.set_defaults(**{**constants["PRESETS"][preset],
                           **constants["PRESET_DATASET_VALUES"].get((preset, known.dataset), {})})
    config = {**vars(parser.parse_args(argv)), "preset": preset}
    config["argv"] = list(sys.argv[1:] if argv is None else argv)  # --compare passes the flags on to each preset
    config["split"] = data_processor.SPLIT_ALIASES.get(config["split"], config["split"])
    config["separator"] = {"\\t": "\t", "tab": "\t"}.get(config["separator"], config["separator"])
    for key in ("ratings_file", "titles_file"):  # recorded in full, so evaluate.py and recommend.py find them
        config[key] = config[key] and str(Path(config[key]).expanduser().resolve())
    validate_config(config)
    fill = str(config["input_fill"])
    config["input_fill"] = fill if fill in ("zero", "mean") else float(fill)
    if config["training_path"] == "auto":
        config["training_path"] = "sparse" if config["input_fill"] == "zero" else "dense"
    return config


# The numeric flags and what they accept (comparisons with NaN are false, so NaN fails every check).
NUMBER_CHECKS = [
    (["--dropout", "--input-dropout"], "a fraction in [0, 1)", lambda value: 0 <= value < 1),
    (["--momentum"], "a number in [0, 1)", lambda value: 0 <= value < 1),
    (["--learning-rate"], "a positive number, e.g. 0.001", lambda value: 0 < value < math.inf),
    (["--early-stopping-min-delta", "--l2-encode", "--l2-decode", "--lambda-2", "--lambda-s", "--dot-scale"],
     "a number >= 0",
     lambda value: 0 <= value < math.inf),
    (["--refeed-steps", "--global-kernel-size", "--devices", "--checkpoint-seconds"], "an integer >= 0",
     lambda value: value >= 0),
    (["--seed", "--split-seed"], "an integer in [0, 2^32)", lambda value: 0 <= value < 2 ** 32),
    (["--batch-size", "--validation-batch-size", "--epochs", "--early-stopping-patience", "--repeats", "--kernel-dim",
      "--lbfgs-iterations", "--finetune-epochs", "--finetune-iterations"], "a positive integer",
     lambda value: value > 0),
]


def require(config, condition, flag, accepted):
    if not condition:
        raise ConfigError(f"{flag} {config[key_of(flag)]!r} is invalid: {accepted}.")


def validate_config(config):
    """Check every hyperparameter before any data is loaded or model built (edited constants included)."""
    layers = config["layers"]
    require(config, isinstance(layers, list) and len(layers) > 0 and all(
        isinstance(n, int) and n > 0 for n in layers), "--layers",
        "give one or more positive integers, e.g. --layers 512,512,1024,512,512")
    for key, accepted in CHOICES.items():
        require(config, config[key] in accepted, f"--{key.replace('_', '-')}", "one of " + ", ".join(accepted))
    for flags, accepted, check in NUMBER_CHECKS:
        for flag in flags:
            require(config, check(config[key_of(flag)]), flag, accepted)
    require(config, all(isinstance(epoch, int) and epoch > 0 for epoch in config["lr_step_epochs"]),
            "--lr-step-epochs", "positive epochs, comma-separated, e.g. 24,36,48")
    validate_combinations(config)


def validate_combinations(config):
    """Settings that are valid alone but not together."""
    require(config, not config["constrained"] or config["layers"] == config["layers"][::-1], "--constrained",
            "tied weights need symmetric --layers, e.g. 512,128,512")
    require(config, config["model"] == "deep" or config["distribute"] == "none", "--distribute",
            "'none' with --model kernel (full-batch L-BFGS runs on one device)")
    require(config, config["devices"] == 0 or config["distribute"] == "mirrored", "--devices",
            "a number of logical CPU devices, with --distribute mirrored")
    fill = str(config["input_fill"])
    require(config, fill in ("zero", "mean") or fill.replace(".", "", 1).isdigit(), "--input-fill",
            "'zero', 'mean' or a number such as 3")
    require(config, config["training_path"] != "sparse" or fill == "zero", "--training-path",
            "'dense' or 'auto' when --input-fill is not 'zero' (a filled input matrix is dense)")
    source = data_processor.DATASETS[config["dataset"]]
    require(config, config["time_window"] == "full" or config["split"] == "time"
            and config["time_window"] in source.time_windows, "--time-window",
            f"a window of {config['dataset']}'s time split ({', '.join(source.time_windows) or 'it has none'}) with "
            f"--split time, or 'full' (the generic time split tests on the last 10% of the time range)")
    owners = [name for name, other in data_processor.DATASETS.items() if config["split"] in other.splits]
    splits = ", ".join(["stratified", "random", "time", *source.splits])
    require(config, config["split"] in ("stratified", "random", "time") or config["split"] in source.splits,
            "--split", f"a split of {config['dataset']} ({splits})" + (
                f"; {config['split']} is a split of {', '.join(owners)}: add --dataset {owners[0]}" if owners else ""))
    official = config["split"] in source.splits
    require(config, not official or config["split"] in ("ua", "ub") and config["repeats"] == 1
            or config["split"][1:].isdigit() and int(config["split"][1:]) + config["repeats"] - 1 <= 5,
            "--split", "with --repeats N, u<k> runs u<k> ... u<k+N-1>, which must stay within u1-u5 "
                       "(ua and ub take --repeats 1)")
    validate_cluster(config)
    validate_csv(config)


# The flags of --dataset csv and their values when unused.
CSV_FLAGS = {"--ratings-file": None, "--columns": "", "--separator": "auto", "--header": "auto",
             "--rating-scale": None, "--titles-file": None}


def validate_csv(config):
    """--dataset csv needs its ratings file; its other flags mean nothing (and are refused) with the built-in data
    sets, as --data-dir means nothing with csv."""
    if config["dataset"] != "csv":
        for flag, unused in CSV_FLAGS.items():
            require(config, config[key_of(flag)] == unused, flag, "a setting of --dataset csv: add --dataset csv, "
                                                                 "or leave it out")
        return
    require(config, config["ratings_file"], "--ratings-file", "--dataset csv reads your ratings file: give its path")
    require(config, config["data_dir"] is None, "--data-dir", "a folder of the built-in data sets; --dataset csv "
                                                              "reads --ratings-file")
    require(config, config["separator"] in ("auto", "::") or len(config["separator"]) == 1, "--separator",
            "one character (',', ';', '|', a tab as '\\t') or '::'")
    scale = config["rating_scale"]
    require(config, scale is None or (isinstance(scale, list) and len(scale) in (2, 3) and scale[0] < scale[1]),
            "--rating-scale", "low,high or low,high,step, e.g. 1,5 or 0.5,5,0.5")


def validate_cluster(config):
    """--distribute multi-worker needs TF_CONFIG, and TF_CONFIG must be JSON whatever --distribute says."""
    try:
        json.loads(os.environ.get("TF_CONFIG", "{}"))
    except json.JSONDecodeError as error:
        raise ConfigError(f"the environment variable TF_CONFIG is not valid JSON ({error}). Fix: set it to the "
                          f"cluster description (see docs/scaling-out.md) or unset it.") from None
    require(config, config["distribute"] != "multi-worker" or os.environ.get("TF_CONFIG"), "--distribute",
            "'multi-worker' needs the TF_CONFIG environment variable naming the cluster and this worker's task "
            "(docs/scaling-out.md); for one machine use 'none' or 'mirrored'")
