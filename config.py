"""The command line of main.py: a flag for every constant at its top, presets, and the checks that every
configuration passes before any data is read or model built.

A configuration is a plain dict of the constants' lower-case names (with the flag's name where the two differ:
EARLY_STOPPING_PATIENCE is `patience`); it is what config.json records.
"""

import argparse
import json
import math
import os
import sys
from pathlib import Path

import data_processor


class ConfigError(Exception):
    """A hyperparameter or setting the program cannot run with; the message names the flag and the accepted
    values."""


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
    "dataset": [*data_processor.DATASETS, "csv"],
    "header": ["auto", "yes", "no"],
    "split": data_processor.SPLITS,
    "time_window": list(data_processor.TIME_WINDOWS),
    "distribute": ["none", "mirrored", "multi-worker"],
    "model": ["deep", "kernel"],
    "lbfgs_solver": ["tensorflow", "scipy"],
}
PRESET_ALIASES = {"seed": "reference"}  # earlier names, still accepted
# The model's hyperparameters: the keys of the configuration passed to DeepAutoEncoder (and saved by its get_config).
MODEL_KEYS = ["layers", "activation", "last_activation", "dropout", "l2_encode", "l2_decode", "constrained",
              "input_dropout", "refeed_steps", "loss"]
# The same for KernelAutoEncoder (--model kernel).
KERNEL_MODEL_KEYS = ["layers", "activation", "kernel_dim", "lambda_2", "lambda_s", "global_kernel_size", "dot_scale"]
# What a --resume must share with the interrupted run: the model, its optimizer and the data it trains on.
RESUME_KEYS = ["dataset", "split", "split_seed", "time_window", "orientation", "model", "optimizer", *MODEL_KEYS,
               *[key for key in KERNEL_MODEL_KEYS if key not in MODEL_KEYS], "lbfgs_iterations",
               "finetune_iterations", "ratings_fingerprint"]


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


# Every constant of main.py and its flag: (constant, flag, what the flag reads, help). A flag with CHOICES reads one
# of them; `bool` flags come with their --no- form.
FLAGS = [
    ("LAYERS", "--layers", parse_layers, "hidden sizes, comma-separated"),
    ("ACTIVATION", "--activation", str, "hidden layers' activation"),
    ("LAST_ACTIVATION", "--last-activation", str, "output layer's activation"),
    ("DROPOUT", "--dropout", float, "dropout rate after the latent layer, in [0, 1)"),
    ("L2_ENCODE", "--l2-encode", float, "L2 on the encoder and latent kernels"),
    ("L2_DECODE", "--l2-decode", float, "L2 on the decoder and output kernels"),
    ("LOSS", "--loss", str, "training loss"),
    ("OPTIMIZER", "--optimizer", str, "optimizer"),
    ("LEARNING_RATE", "--learning-rate", float, "learning rate"),
    ("MOMENTUM", "--momentum", float, "SGD momentum"),
    ("BATCH_SIZE", "--batch-size", int, "rows per training batch"),
    ("EPOCHS", "--epochs", int, "maximum number of epochs"),
    ("EARLY_STOPPING_PATIENCE", "--patience", int, "early-stopping patience in epochs"),
    ("EARLY_STOPPING_MIN_DELTA", "--min-delta", float, "early-stopping minimum improvement"),
    ("INPUT_FILL", "--input-fill", str, "'zero', 'mean' or a number: what unknown input ratings become"),
    ("ORIENTATION", "--orientation", str, "rows are users or items"),
    ("CONSTRAINED", "--constrained", bool, "tied decoder weights"),
    ("INPUT_DROPOUT", "--input-dropout", float, "dropout on the input ratings, in [0, 1)"),
    ("REFEED_STEPS", "--refeed-steps", int, "dense re-feeding steps per batch (0 = off)"),
    ("LR_SCHEDULE", "--lr-schedule", str, "learning-rate schedule"),
    ("LR_STEP_EPOCHS", "--lr-step-epochs", parse_epochs, "--lr-schedule step: epochs that halve the rate"),
    ("SEED", "--seed", int, "random seed of the weights, dropout and batch order"),
    ("MODEL", "--model", str, "'kernel': kernelised layers trained by L-BFGS"),
    ("KERNEL_DIM", "--kernel-dim", int, "--model kernel: size of each unit's embedding"),
    ("LAMBDA_2", "--lambda-2", float, "--model kernel: L2 on the weights"),
    ("LAMBDA_S", "--lambda-s", float, "--model kernel: L2 on the kernel values (sparsity)"),
    ("LBFGS_ITERATIONS", "--lbfgs-iterations", int, "--model kernel: L-BFGS iterations per epoch"),
    ("LBFGS_SOLVER", "--lbfgs-solver", str, "--model kernel: L-BFGS in TensorFlow, or scipy's L-BFGS-B"),
    ("GLOBAL_KERNEL_SIZE", "--global-kernel-size", int, "--model kernel: side of GLocal-K's global kernel (0: none)"),
    ("DOT_SCALE", "--dot-scale", float, "--model kernel: scale of the global kernel"),
    ("FINETUNE_EPOCHS", "--finetune-epochs", int, "--global-kernel-size: fine-tuning epochs"),
    ("FINETUNE_ITERATIONS", "--finetune-iterations", int, "--global-kernel-size: L-BFGS iterations per epoch"),
    ("DATASET", "--dataset", str, "the data set ('csv': your own ratings file, --ratings-file)"),
    ("RATINGS_FILE", "--ratings-file", str, "--dataset csv: your ratings file, one rating per line"),
    ("COLUMNS", "--columns", str, "--dataset csv: user,item,rating[,timestamp] columns by header name or position "
                                  "from 1 (default: the first fields)"),
    ("SEPARATOR", "--separator", str, "--dataset csv: field separator, e.g. ',' or '\\t' ('auto': detected)"),
    ("HEADER", "--header", str, "--dataset csv: whether line 1 names the columns"),
    ("RATING_SCALE", "--rating-scale", parse_scale, "--dataset csv: low,high[,step], e.g. 1,5 (whole steps) or "
                                                    "0.5,5,0.5 or 0,1,0 (any value) (default: inferred)"),
    ("TITLES_FILE", "--titles-file", str, "--dataset csv: optional file of item id and title per line"),
    ("DATA_DIR", "--data-dir", str, "the data set's folder (default: $MOVIELENS_DIR for ml-1m, else data/<data set>)"),
    ("SPLIT", "--split", str, "the evaluation protocol ('seed' is the earlier name of 'stratified')"),
    ("TIME_WINDOW", "--time-window", str, "Netflix --split time: the training window"),
    ("SPLIT_SEED", "--split-seed", int, "random seed of the split"),
    ("REPEATS", "--repeats", int, "runs on successive splits; summary.json has mean and std"),
    ("TRAINING_PATH", "--training-path", str, "sparse batches (fast) or dense arrays (plain Keras)"),
    ("VALIDATION_BATCH_SIZE", "--validation-batch-size", int, "rows per validation batch"),
    ("DISTRIBUTE", "--distribute", str, "train on several devices or machines"),
    ("DEVICES", "--devices", int, "--distribute mirrored: logical CPU devices (0: the GPUs)"),
    ("PRECISION", "--precision", str, "compute precision of the deep network"),
    ("RESULTS_DIR", "--results-dir", Path, "where the run's files go"),
    ("COMET_PROJECT", "--comet-project", str, "CometML project name"),
]


def key_of(flag):
    return flag[2:].replace("-", "_")


def build_parser(description, constants):
    """The parser of main.py: a flag for each constant (default: the constant), and the flags that are not
    hyperparameters."""
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
    for constant, flag, reads, help_text in FLAGS:
        default = constants[constant]
        if reads is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=default, help=help_text)
        elif key_of(flag) in CHOICES:
            choices = CHOICES[key_of(flag)] + (list(data_processor.SPLIT_ALIASES) if flag == "--split" else [])
            parser.add_argument(flag, choices=choices, default=default, help=f"{help_text} (default {default})")
        else:
            parser.add_argument(flag, type=reads, default=default, help=f"{help_text} (default {default})")
    return parser


def parse_flags(argv, constants, description, preset=None):
    """The constants (main.py's upper-case globals, PRESETS and PRESET_DATASET_VALUES among them), then the preset
    (`preset` wins over --preset) and its values for the data set, then the flags. Returns the validated
    configuration."""
    parser = build_parser(description, constants)
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
    (["--min-delta", "--l2-encode", "--l2-decode", "--lambda-2", "--lambda-s", "--dot-scale"], "a number >= 0",
     lambda value: 0 <= value < math.inf),
    (["--refeed-steps", "--global-kernel-size", "--devices"], "an integer >= 0", lambda value: value >= 0),
    (["--seed", "--split-seed"], "an integer in [0, 2^32)", lambda value: 0 <= value < 2 ** 32),
    (["--batch-size", "--validation-batch-size", "--epochs", "--patience", "--repeats", "--kernel-dim",
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
    require(config, config["time_window"] == "full" or (config["dataset"], config["split"]) == ("netflix", "time"),
            "--time-window", "a window of the Netflix time split: add --dataset netflix --split time, or leave it "
                             "at 'full' (MovieLens' time split tests on the last 10% of its time range)")
    official = config["split"][0] == "u"
    require(config, not official or config["dataset"] == "ml-100k", "--split",
            "u1-u5, ua and ub are ML-100K's official splits: add --dataset ml-100k, or use stratified, random or time")
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


def split_of_repeat(config, index):
    """The split of the index-th repeat: split seed SPLIT_SEED + index, or ML-100K's u<k + index>."""
    if config["split"][0] == "u" and config["split"][1:].isdigit():
        return {"split": f"u{int(config['split'][1:]) + index}", "split_seed": config["split_seed"]}
    return {"split": config["split"], "split_seed": config["split_seed"] + index}
