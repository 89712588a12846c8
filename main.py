"""Train the deep autoencoder of Kuchaiev & Ginsburg (2017) on a rating data set and report its test RMSE.

    python3 main.py                      # the seed's reference run on MovieLens-1M
    python3 main.py --epochs 3 --layers 512,256,512
    python3 main.py --preset deeprec --dataset ml-100k --split u1 --repeats 5
    python3 main.py --help               # every hyperparameter below has a flag

Hyperparameters are the constants right below; edit them here or override them with flags.
"""

import argparse
import contextlib
import os
import shutil
import signal
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's start-up chatter out of the output

import numpy as np
import scipy.sparse

import data_processor
import distribute
import metrics
import utils

# ----------------------------------------------------------------------------------------------------------------
# Hyperparameters: the seed's reference run.
LAYERS = [512, 512, 1024, 512, 512]  # hidden sizes: encoder, latent (the middle one), decoder
ACTIVATION = "selu"  # hidden layers
LAST_ACTIVATION = "selu"  # output layer ('linear' for none)
DROPOUT = 0.8  # Keras Dropout rate (fraction dropped) after the latent layer
L2_ENCODE = 0.001  # L2 on encoder and latent kernels
L2_DECODE = 0.001  # L2 on decoder and output kernels
LOSS = "masked_rmse"  # the seed's per-row masked RMSE, or 'masked_mse' (the paper's MMSE over all known ratings)
OPTIMIZER = "sgd"  # 'sgd' (with MOMENTUM) or 'adam'
LEARNING_RATE = 0.001
MOMENTUM = 0.9
BATCH_SIZE = 512
EPOCHS = 500  # at most: early stopping on the validation loss usually ends the run sooner
EARLY_STOPPING_PATIENCE = 3  # epochs without improvement of val_loss by at least EARLY_STOPPING_MIN_DELTA
EARLY_STOPPING_MIN_DELTA = 1e-4
INPUT_FILL = "zero"  # unknown input ratings: 'zero', 'mean' (the row's mean rating) or a number; targets stay masked
# The paper's techniques beyond the seed (all off in the seed's run).
ORIENTATION = "user"  # 'user': a row is a user's ratings (the seed, the paper); 'item': a row is an item's (I-AutoRec)
CONSTRAINED = False  # tie the decoder's kernels to the transposed encoder kernels
INPUT_DROPOUT = 0.0  # dropout on the input ratings (input noise)
REFEED_STEPS = 0  # dense re-feeding: extra steps per batch on the network's own dense output
LR_SCHEDULE = "none"  # 'none', 'step' (halve at LR_STEP_EPOCHS, as NVIDIA's reference) or 'plateau' (halve on a stall)
LR_STEP_EPOCHS = [24, 36, 48, 66, 72]
SEED = 42  # weights, dropout and batch order
# Kernelised sparse layers (Sparse FC, Muller et al. 2018) and GLocal-K's global kernel (Han et al. 2021), presets
# sparsefc and glocalk: full-batch L-BFGS (lbfgs.py); LAYERS and ACTIVATION give the hidden layers, EPOCHS and
# EARLY_STOPPING_* the first stage, whose epochs are LBFGS_ITERATIONS iterations each.
MODEL = "deep"  # 'deep' (model.py, trained by Keras' fit) or 'kernel' (kernel_model.py, trained by lbfgs.py)
KERNEL_DIM = 5  # size of each unit's embedding; units farther apart than 1 are not connected
LAMBDA_2 = 70.0  # L2 on the weights W (the objective is 1/2 * the summed squared errors plus the penalties)
LAMBDA_S = 0.018  # L2 on the kernel values, which drives them to zero (sparsity)
LBFGS_ITERATIONS = 50  # L-BFGS iterations per epoch; every epoch ends with validation
GLOBAL_KERNEL_SIZE = 0  # side of GLocal-K's global convolution kernel (3); 0: none (Sparse FC)
DOT_SCALE = 0.5  # GLocal-K's scale of the global kernel
FINETUNE_EPOCHS = 30  # GLocal-K's second stage, with the global kernel, from the first stage's best weights
FINETUNE_ITERATIONS = 10  # L-BFGS iterations per fine-tuning epoch
# Data and protocol.
DATASET = "ml-1m"  # 'ml-100k', 'ml-1m', 'ml-10m', 'ml-20m' or 'netflix'
DATA_DIR = None  # the data set's folder; None: $MOVIELENS_DIR for ml-1m, else data/<data set>, downloaded there
SPLIT = "seed"  # 'seed' (the seed's stratified 81/9/10), 'random' (90/10, 5% of the 90 validates), 'u1'-'u5', 'ua',
# 'ub' (ML-100K's official files) or 'time' (train on a time window, test on the next: the paper's protocol)
TIME_WINDOW = "full"  # Netflix time split: 'full', '3m', '6m' or '1y' (the paper's windows)
SPLIT_SEED = data_processor.SPLIT_SEED  # random draws of the split
REPEATS = 1  # runs on successive splits (split seeds SPLIT_SEED, SPLIT_SEED + 1, ...; u1, u2, ...): mean and std
# Speed: 'sparse' keeps the rating matrices sparse and densifies one batch at a time inside the compiled step;
# 'dense' is the plain Keras path (dense NumPy matrices fed to fit).
TRAINING_PATH = "auto"  # 'auto' (sparse unless INPUT_FILL needs dense inputs), 'sparse' or 'dense'
VALIDATION_BATCH_SIZE = 4096  # rows per validation batch; validation only reads, so larger batches only add speed
# Scaling out: 'none', 'mirrored' (the local GPUs, or DEVICES logical CPU devices) or 'multi-worker' (machines named
# in the TF_CONFIG environment variable). BATCH_SIZE stays the global batch: the same steps as on one device.
DISTRIBUTE = "none"
DEVICES = 0  # with 'mirrored': split the CPU into this many logical devices (testing without GPUs); 0: the GPUs
PRECISION = "auto"  # 'float32', 'bfloat16' (bfloat16 compute, float32 weights) or 'auto': bfloat16 where the hardware
# multiplies it natively (CPUs with AMX or AVX-512 BF16, GPUs from Ampere on), float32 elsewhere
# Files and logging.
RESULTS_DIR = Path(__file__).resolve().parent / "results" / "latest"  # results/reference holds the README's runs
COMET_PROJECT = "deep-autoencoders-cf"

# Presets: named sets of the values above, chosen with --preset NAME; flags after it still override single values.
PRESETS = {
    "seed": {},  # the constants above: the seed's reference run
    "autorec": dict(  # I-AutoRec (Sedhain et al. 2015): item rows, one sigmoid layer of 500 units, linear output,
        # squared error on known ratings, L2 (strength picked on the validation ratings)
        orientation="item", layers=[500], activation="sigmoid", last_activation="linear", dropout=0.0,
        loss="masked_mse", optimizer="adam", learning_rate=0.001, batch_size=256, l2_encode=1e-4, l2_decode=1e-4,
        epochs=200, patience=5),
    "deeprec": dict(  # the best of the paper's techniques on MovieLens-1M, searched on the validation ratings
        # (docs/preset-search.md): item rows, the paper's masked MSE, a learning rate halved on plateaus; depth,
        # SELU, dropout, re-feeding and tied weights did not help here
        orientation="item", layers=[1000], activation="sigmoid", last_activation="linear", dropout=0.0,
        loss="masked_mse", optimizer="adam", learning_rate=0.001, batch_size=256, l2_encode=1e-4, l2_decode=1e-4,
        lr_schedule="plateau", epochs=200, patience=8),
    "sparsefc": dict(  # Sparse FC (Muller et al. 2018): item rows, two kernelised sigmoid layers of 500 units, unit
        # embeddings of size 5, full-batch L-BFGS; GLocal-K's values of lambda (its pre-training is this network)
        model="kernel", orientation="item", layers=[500, 500], activation="sigmoid", kernel_dim=5, lambda_2=70.0,
        lambda_s=0.018, global_kernel_size=0, epochs=20, lbfgs_iterations=50, patience=5),
    "glocalk": dict(  # GLocal-K (Han et al. 2021): sparsefc pre-trained, then fine-tuned with a 3x3 global kernel
        model="kernel", orientation="item", layers=[500, 500], activation="sigmoid", kernel_dim=5, lambda_2=70.0,
        lambda_s=0.018, global_kernel_size=3, dot_scale=0.5, epochs=20, lbfgs_iterations=50, finetune_epochs=30,
        finetune_iterations=10, patience=5),
}
# The papers tune the kernel networks per data set: these values replace a preset's on that data set (GLocal-K's
# published settings for ML-100K; the presets above hold its ML-1M ones).
PRESET_DATASET_VALUES = {
    ("sparsefc", "ml-100k"): dict(lambda_2=20.0, lambda_s=0.006, epochs=30, lbfgs_iterations=5),
    ("glocalk", "ml-100k"): dict(lambda_2=20.0, lambda_s=0.006, dot_scale=1.0, epochs=30, lbfgs_iterations=5,
                                 finetune_epochs=60, finetune_iterations=5),
}
# ----------------------------------------------------------------------------------------------------------------

# The accepted values of each flag with a fixed set of them: argparse checks flags, validate_config edited constants.
CHOICES = {
    "activation": ["selu", "relu", "elu", "sigmoid", "tanh", "swish", "linear"],
    "last_activation": ["selu", "relu", "elu", "sigmoid", "tanh", "swish", "linear"],
    "loss": ["masked_rmse", "masked_mse"],
    "optimizer": ["sgd", "adam"],
    "orientation": ["user", "item"],
    "lr_schedule": ["none", "step", "plateau"],
    "training_path": ["auto", "sparse", "dense"],
    "precision": ["auto", "float32", "bfloat16"],
    "dataset": list(data_processor.DATASETS),
    "split": data_processor.SPLITS,
    "time_window": list(data_processor.TIME_WINDOWS),
    "distribute": ["none", "mirrored", "multi-worker"],
    "model": ["deep", "kernel"],
}
# The model's hyperparameters: the keys of the configuration passed to DeepAutoEncoder (and saved by its get_config).
MODEL_KEYS = ["layers", "activation", "last_activation", "dropout", "l2_encode", "l2_decode", "constrained",
              "input_dropout", "refeed_steps", "loss"]
# The same for KernelAutoEncoder (--model kernel).
KERNEL_MODEL_KEYS = ["layers", "activation", "kernel_dim", "lambda_2", "lambda_s", "global_kernel_size", "dot_scale"]
# What a --resume must share with the interrupted run: the model, its optimizer and the data it trains on.
RESUME_KEYS = ["dataset", "split", "split_seed", "time_window", "orientation", "model", "optimizer", *MODEL_KEYS,
               *[key for key in KERNEL_MODEL_KEYS if key not in MODEL_KEYS], "lbfgs_iterations",
               "finetune_iterations", "data_files"]
# The files of one run in its results folder: a new run clears them first, so a folder never mixes two runs.
RUN_FILES = ["metrics.json", "config.json", "history.csv", "loss.png", "rmse.png", "model.keras", "ids.json",
             "predictions.tsv", "summary.json", "checkpoint.json", "checkpoint.weights.h5",
             "checkpoint-best.weights.h5"]


class ConfigError(Exception):
    """A hyperparameter the program cannot run with; the message names the flag and the accepted values."""


def parse_config(argv=None, preset=None):
    """Constants above, then the preset (`preset` wins over --preset), then flags. Returns a dict of every
    hyperparameter, validated."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add = parser.add_argument
    add("--preset", choices=list(PRESETS), default="seed", help="a named set of hyperparameters (PRESETS)")
    add("--compare", action="store_true",
        help="train every preset and the baselines on the same split(s); write comparison.csv/.png/.md")
    add("--layers", type=parse_layers, default=LAYERS, help=f"hidden sizes, comma-separated (default {LAYERS})")
    add("--activation", choices=CHOICES["activation"], default=ACTIVATION)
    add("--last-activation", choices=CHOICES["last_activation"], default=LAST_ACTIVATION)
    add("--dropout", type=float, default=DROPOUT, help="dropout rate after the latent layer, in [0, 1)")
    add("--l2-encode", type=float, default=L2_ENCODE)
    add("--l2-decode", type=float, default=L2_DECODE)
    add("--loss", choices=CHOICES["loss"], default=LOSS)
    add("--optimizer", choices=CHOICES["optimizer"], default=OPTIMIZER)
    add("--learning-rate", type=float, default=LEARNING_RATE)
    add("--momentum", type=float, default=MOMENTUM, help="SGD momentum")
    add("--batch-size", type=int, default=BATCH_SIZE)
    add("--epochs", type=int, default=EPOCHS, help="maximum number of epochs")
    add("--patience", type=int, default=EARLY_STOPPING_PATIENCE, help="early-stopping patience in epochs")
    add("--min-delta", type=float, default=EARLY_STOPPING_MIN_DELTA, help="early-stopping minimum improvement")
    add("--input-fill", default=INPUT_FILL, help="'zero', 'mean' or a number: what unknown input ratings become")
    add("--orientation", choices=CHOICES["orientation"], default=ORIENTATION, help="rows are users or items")
    add("--constrained", action=argparse.BooleanOptionalAction, default=CONSTRAINED, help="tied decoder weights")
    add("--input-dropout", type=float, default=INPUT_DROPOUT, help="dropout on the input ratings, in [0, 1)")
    add("--refeed-steps", type=int, default=REFEED_STEPS, help="dense re-feeding steps per batch (0 = off)")
    add("--lr-schedule", choices=CHOICES["lr_schedule"], default=LR_SCHEDULE)
    add("--seed", type=int, default=SEED, help="weights, dropout and batch order")
    add("--model", choices=CHOICES["model"], default=MODEL, help="'kernel': kernelised layers trained by L-BFGS")
    add("--kernel-dim", type=int, default=KERNEL_DIM, help="--model kernel: size of each unit's embedding")
    add("--lambda-2", type=float, default=LAMBDA_2, help="--model kernel: L2 on the weights")
    add("--lambda-s", type=float, default=LAMBDA_S, help="--model kernel: L2 on the kernel values (sparsity)")
    add("--lbfgs-iterations", type=int, default=LBFGS_ITERATIONS, help="--model kernel: L-BFGS iterations per epoch")
    add("--global-kernel-size", type=int, default=GLOBAL_KERNEL_SIZE,
        help="--model kernel: side of GLocal-K's global kernel (0: none)")
    add("--dot-scale", type=float, default=DOT_SCALE, help="--model kernel: scale of the global kernel")
    add("--finetune-epochs", type=int, default=FINETUNE_EPOCHS, help="--global-kernel-size: fine-tuning epochs")
    add("--finetune-iterations", type=int, default=FINETUNE_ITERATIONS,
        help="--global-kernel-size: L-BFGS iterations per fine-tuning epoch")
    add("--dataset", choices=CHOICES["dataset"], default=DATASET)
    add("--data-dir", default=DATA_DIR,
        help="the data set's folder (default: $MOVIELENS_DIR for ml-1m, else data/<data set>)")
    add("--split", choices=CHOICES["split"], default=SPLIT, help="the evaluation protocol")
    add("--time-window", choices=CHOICES["time_window"], default=TIME_WINDOW, help="Netflix --split time window")
    add("--split-seed", type=int, default=SPLIT_SEED)
    add("--repeats", type=int, default=REPEATS, help="runs on successive splits; summary.json has mean and std")
    add("--training-path", choices=CHOICES["training_path"], default=TRAINING_PATH)
    add("--validation-batch-size", type=int, default=VALIDATION_BATCH_SIZE)
    add("--precision", choices=CHOICES["precision"], default=PRECISION)
    add("--distribute", choices=CHOICES["distribute"], default=DISTRIBUTE, help="train on several devices/machines")
    add("--devices", type=int, default=DEVICES, help="--distribute mirrored: logical CPU devices (0: the GPUs)")
    add("--results-dir", type=Path, default=RESULTS_DIR)
    add("--resume", action="store_true", help="continue the interrupted run whose checkpoint is in --results-dir")
    known = parser.parse_known_args(argv)[0]
    preset = preset or known.preset
    parser.set_defaults(**{**PRESETS[preset], **PRESET_DATASET_VALUES.get((preset, known.dataset), {})})
    config = {**vars(parser.parse_args(argv)), "preset": preset}
    config["argv"] = list(sys.argv[1:] if argv is None else argv)  # --compare passes the flags on to each preset
    validate_config(config)
    fill = str(config["input_fill"])
    config["input_fill"] = fill if fill in ("zero", "mean") else float(fill)
    if config["training_path"] == "auto":
        config["training_path"] = "sparse" if config["input_fill"] == "zero" else "dense"
    return config


def parse_layers(text):
    try:
        sizes = [int(size) for size in str(text).split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of integers, e.g. 512,256,512")
    return sizes


def validate_config(config):
    """Check every hyperparameter before any data is loaded or model built (edited constants included)."""
    def require(condition, flag, accepted):
        if not condition:
            raise ConfigError(f"{flag} {config[flag[2:].replace('-', '_')]!r} is invalid: {accepted}.")

    layers = config["layers"]
    require(isinstance(layers, list) and len(layers) > 0 and all(isinstance(n, int) and n > 0 for n in layers),
            "--layers", "give one or more positive integers, e.g. --layers 512,512,1024,512,512")
    require(0 <= config["dropout"] < 1, "--dropout", "a fraction in [0, 1)")
    for key, accepted in CHOICES.items():
        require(config[key] in accepted, f"--{key.replace('_', '-')}", "one of " + ", ".join(accepted))
    require(0 < config["learning_rate"] < float("inf"), "--learning-rate", "a positive number, e.g. 0.001")
    require(0 <= config["momentum"] < 1, "--momentum", "a number in [0, 1)")
    require(0 <= config["input_dropout"] < 1, "--input-dropout", "a fraction in [0, 1)")
    require(config["refeed_steps"] >= 0, "--refeed-steps", "an integer >= 0")
    require(not config["constrained"] or config["layers"] == config["layers"][::-1], "--constrained",
            "tied weights need symmetric --layers, e.g. 512,128,512")
    require(config["batch_size"] > 0, "--batch-size", "a positive integer, e.g. 512")
    require(config["validation_batch_size"] > 0, "--validation-batch-size", "a positive integer, e.g. 4096")
    require(config["epochs"] > 0, "--epochs", "a positive integer, e.g. 500")
    require(config["patience"] > 0, "--patience", "a positive integer, e.g. 3")
    require(config["min_delta"] >= 0, "--min-delta", "a number >= 0, e.g. 0.0001")
    require(config["l2_encode"] >= 0, "--l2-encode", "a number >= 0, e.g. 0.001")
    require(config["l2_decode"] >= 0, "--l2-decode", "a number >= 0, e.g. 0.001")
    require(config["repeats"] >= 1, "--repeats", "a positive integer, e.g. 5")
    require(config["kernel_dim"] > 0, "--kernel-dim", "a positive integer, e.g. 5")
    require(config["lambda_2"] >= 0, "--lambda-2", "a number >= 0, e.g. 70")
    require(config["lambda_s"] >= 0, "--lambda-s", "a number >= 0, e.g. 0.018")
    require(config["lbfgs_iterations"] > 0, "--lbfgs-iterations", "a positive integer, e.g. 50")
    require(config["global_kernel_size"] >= 0, "--global-kernel-size", "0 (none) or a kernel side such as 3")
    require(config["finetune_epochs"] > 0, "--finetune-epochs", "a positive integer, e.g. 30")
    require(config["finetune_iterations"] > 0, "--finetune-iterations", "a positive integer, e.g. 10")
    require(config["model"] == "deep" or config["distribute"] == "none", "--distribute",
            "'none' with --model kernel (full-batch L-BFGS runs on one device)")
    require(config["devices"] >= 0 and (config["devices"] == 0 or config["distribute"] == "mirrored"), "--devices",
            "a number of logical CPU devices >= 0, with --distribute mirrored")
    fill = str(config["input_fill"])
    require(fill in ("zero", "mean") or fill.replace(".", "", 1).isdigit(), "--input-fill",
            "'zero', 'mean' or a number such as 3")
    require(config["training_path"] != "sparse" or fill == "zero", "--training-path",
            "'dense' or 'auto' when --input-fill is not 'zero' (a filled input matrix is dense)")
    official = config["split"][0] == "u"
    require(not official or config["dataset"] == "ml-100k", "--split",
            "u1-u5, ua and ub are ML-100K's official splits: add --dataset ml-100k, or use seed, random or time")
    require(not official or config["split"] in ("ua", "ub") and config["repeats"] == 1
            or config["split"][1:].isdigit() and int(config["split"][1:]) + config["repeats"] - 1 <= 5,
            "--split", "with --repeats N, u<k> runs u<k> ... u<k+N-1>, which must stay within u1-u5 "
                       "(ua and ub take --repeats 1)")


def split_of_repeat(config, index):
    """The split of the index-th repeat: split seed SPLIT_SEED + index, or ML-100K's u<k + index>."""
    if config["split"][0] == "u" and config["split"][1:].isdigit():
        return {"split": f"u{int(config['split'][1:]) + index}", "split_seed": config["split_seed"]}
    return {"split": config["split"], "split_seed": config["split_seed"] + index}


def main(argv=None):
    try:
        config = parse_config(argv)
        if config["compare"]:
            return compare(config)
        if config["repeats"] > 1:
            return run_repeats(config)
        return run(config)[0]
    except (ConfigError, data_processor.DataError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except distribute.WorkerFailure as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


# ----------------------------------------------------------------------------------------------------------------
# One run: data -> model -> training -> evaluation -> results.

def run(config, data=None):
    """Train and evaluate one configuration (on `data` when it is already loaded). Returns (exit status,
    metrics); metrics is None when nothing was evaluated."""
    strategy = distribute.make_strategy(config["distribute"], config["devices"])  # before any TensorFlow work
    chief = distribute.is_chief()
    # Only the chief writes results; other workers write into a temporary folder that nobody reads.
    results_dir = prepare_results_dir(config["results_dir"] if chief else tempfile.mkdtemp(prefix="worker-"))
    prepared = data_processor.prepare_data(config["dataset"], config["data_dir"], config["split"],
                                           config["split_seed"], config["orientation"], config["time_window"], data)
    split = prepared["split"]
    print(f"Split {config['split']} (seed {config['split_seed']}): train/val/test {len(split['train']):,}/"
          f"{len(split['val']):,}/{len(split['test']):,} ratings")
    record = run_record(config, prepared["data"], results_dir)
    if config["model"] == "kernel":  # kernelised layers, full-batch L-BFGS, float32
        precision = "float32"
        model = build_kernel_model(config, prepared)
        outcome = train_full_batch(config, model, prepared, results_dir, record)
    else:
        precision = resolve_precision(config["precision"])
        with strategy.scope() if strategy else contextlib.nullcontext():
            model = build_model(config, prepared, precision)
        train_data, val_data, steps = training_batches(config, prepared, strategy)
        outcome = train(config, model, train_data, val_data, steps, results_dir, record, chief)
    if outcome is None:
        return 130, None
    history, train_seconds, diverged, initial_epoch = outcome
    if diverged and not history:
        return 1, None

    result = {"diverged": diverged, **evaluate(model, prepared, config["orientation"])}
    if config["model"] == "kernel":
        result["pre_training"] = evaluate_pre_training(config, model, prepared)
    result.update({
        "epochs": len(history), "train_seconds": round(train_seconds, 2),
        "seconds_per_epoch": round(train_seconds / max(len(history) - initial_epoch, 1), 4),
        "peak_memory_mb": round(utils.peak_memory_mb(), 1),
        "n_train": len(split["train"]), "n_val": len(split["val"]), "n_test": len(split["test"]),
        "precision": precision, "config": record,
    })
    save_results(results_dir, model, result, history, prepared["data"], config)
    print(f"\nTest masked RMSE (seed metric, per-user): {result['test_masked_rmse']:.4f}")
    print(f"Test RMSE (global, literature metric):     {result['test_rmse']:.4f}")
    if result["test_ndcg_at_10"] is not None:
        print(f"Test NDCG@10 / Recall@10:                  {result['test_ndcg_at_10']:.4f} / "
              f"{result['test_recall_at_10']:.4f}")
    print(f"Epochs: {len(history)}, training time: {train_seconds:.1f} s ({result['seconds_per_epoch']:.3f} s/epoch)")
    print(f"Results in {results_dir}: metrics.json, history.csv, loss.png, rmse.png, model.keras, config.json")
    import recommend

    user_id = prepared["data"]["user_ids"][0]
    recommend.print_top_n(recommend.top_n(model, prepared, config["orientation"], user_index=0), user_id)
    return (1 if diverged else 0), result


def prepare_results_dir(results_dir):
    """Fail now, not after hours of training, if results cannot be written."""
    results_dir = Path(results_dir)
    if results_dir.exists() and not results_dir.is_dir():
        raise ConfigError(f"--results-dir {results_dir} is a file, not a folder. Fix: remove it or choose another "
                          f"folder with --results-dir PATH.")
    try:
        results_dir.mkdir(parents=True, exist_ok=True)
        probe = utils.atomic_path(results_dir / "write-test")
        probe.unlink()
    except OSError as error:
        raise ConfigError(f"--results-dir {results_dir} is not writable ({error.strerror}). Fix: make it writable "
                          f"or choose another folder with --results-dir PATH.") from None
    return results_dir


def run_record(config, data, results_dir):
    """The configuration saved with the results (config.json, metrics.json, the checkpoint): every flag, and
    where the data came from (folder and file checksums), the program's version and the date."""
    record = {key: value for key, value in config.items() if key not in ("argv", "compare", "resume")}
    record.update(results_dir=display_path(results_dir), data_dir=data["data_dir"], data_files=data["files"],
                  program_version=utils.program_version(),
                  date=datetime.now(timezone.utc).isoformat(timespec="seconds"))
    return record


def resolve_precision(precision):
    """'auto' becomes bfloat16 where the hardware multiplies it natively, float32 elsewhere."""
    if precision != "auto":
        return precision
    return "bfloat16" if native_bfloat16() else "float32"


def native_bfloat16():
    """Whether this machine multiplies bfloat16 natively, so that mixed precision is faster, not slower."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        return tf.config.experimental.get_device_details(gpus[0]).get("compute_capability", (0, 0)) >= (8, 0)
    try:
        cpu_flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "amx_bf16" in cpu_flags or "avx512_bf16" in cpu_flags


def build_model(config, prepared, precision):
    """The autoencoder for this data (row length, rating scale) and its optimizer, compiled and built."""
    import keras

    import model as model_module

    keras.utils.set_random_seed(config["seed"])
    keras.mixed_precision.set_dtype_policy("mixed_bfloat16" if precision == "bfloat16" else "float32")
    low, high, _ = prepared["data"]["scale"]
    network = model_module.DeepAutoEncoder(prepared["shape"][1], (low, high),
                                           **{key: config[key] for key in MODEL_KEYS})
    if config["optimizer"] == "sgd":
        optimizer = keras.optimizers.SGD(config["learning_rate"], momentum=config["momentum"])
    else:
        optimizer = keras.optimizers.Adam(config["learning_rate"])
    network.compile(optimizer=optimizer, jit_compile=False)  # XLA measured slower than oneDNN's kernels on CPU
    network.build()
    optimizer.build(network.trainable_variables)  # its state too, inside a tf.distribute scope where there is one
    return network


def training_batches(config, prepared, strategy=None):
    """The protocol of the seed: the input is always the train matrix; the targets are the train ratings when
    training, the validation ratings when validating (and the test ratings when testing). The fast path keeps all
    of them sparse; the dense path (the plain reference) feeds dense arrays. Returns (the training batches, the
    validation batches, the steps of an epoch or None for all batches). Under tf.distribute
    each global batch is cut into per-replica slices, and the training batches come from one endless iterator that
    sees the shuffles one device sees: Keras' fit starts a fresh pass over a finite dataset twice per epoch (the
    second at the end of the epoch, unused), so one device trains on every other shuffle, and so does this."""
    train_inputs, train_targets, val_targets = prepared["train"], prepared["train"], prepared["val"]
    if config["training_path"] == "dense":
        train_inputs = data_processor.fill_unknown(train_inputs.toarray(), config["input_fill"])
        train_targets, val_targets = train_targets.toarray(), val_targets.toarray()
    train_data = row_batches(train_inputs, train_targets, config["batch_size"], shuffle_seed=config["seed"])
    val_data = row_batches(train_inputs, val_targets, config["validation_batch_size"])
    if not strategy:
        return train_data, val_data, None
    steps = -(-train_inputs.shape[0] // config["batch_size"])
    every_other_shuffle = train_data.repeat().enumerate().filter(lambda index, batch: index // steps % 2 == 0)
    train_data = every_other_shuffle.map(lambda index, batch: batch)
    return (distribute.distribute_batches(strategy, train_data), distribute.distribute_batches(strategy, val_data),
            steps)


def row_batches(inputs, targets, batch_size, shuffle_seed=None):
    """Batches of (input rows, target rows), in the same order on both paths: scipy sparse matrices become
    tf.SparseTensor batches (the fast path), NumPy arrays dense ones (the dense path)."""
    import tensorflow as tf

    def to_tf(matrix):
        if not scipy.sparse.issparse(matrix):
            return matrix
        coo = matrix.tocoo()
        indices = np.stack([coo.row, coo.col], axis=1).astype(np.int64)
        return tf.sparse.reorder(tf.SparseTensor(indices, coo.data.astype(np.float32), coo.shape))

    dataset = tf.data.Dataset.from_tensor_slices((to_tf(inputs), to_tf(targets)))
    if shuffle_seed is not None:
        dataset = dataset.shuffle(inputs.shape[0], seed=shuffle_seed, reshuffle_each_iteration=True)
    return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def build_kernel_model(config, prepared):
    """The kernelised autoencoder (Sparse FC; GLocal-K with --global-kernel-size) for this data, built."""
    import keras

    import kernel_model

    keras.utils.set_random_seed(config["seed"])
    keras.mixed_precision.set_dtype_policy("float32")
    low, high, _ = prepared["data"]["scale"]
    n_rows, n_inputs = prepared["shape"]
    network = kernel_model.KernelAutoEncoder(n_inputs, n_rows, (low, high),
                                             **{key: config[key] for key in KERNEL_MODEL_KEYS})
    network.build()
    return network


def train_full_batch(config, model, prepared, results_dir, record):
    """Full-batch L-BFGS (lbfgs.py) with validation after every epoch, checkpoints and CometML; resume if asked.
    Returns what train returns: (history, seconds, diverged, first epoch of this session), or None when
    interrupted (the checkpoint stays)."""
    import lbfgs
    import training

    checkpoint = lbfgs.LbfgsCheckpoint(results_dir, {key: record[key] for key in RESUME_KEYS})
    initial_epoch = 0
    if config["resume"]:
        check_resumable(checkpoint, results_dir)
        initial_epoch = checkpoint.finished_epochs()
        print(f"Resuming from the checkpoint of epoch {initial_epoch} in {results_dir}")
    else:
        clear_previous_run(results_dir)
    stages = [("pre-training" if config["global_kernel_size"] else "training", config["epochs"],
               config["lbfgs_iterations"], False)]
    if config["global_kernel_size"]:
        stages.append(("fine-tuning", config["finetune_epochs"], config["finetune_iterations"], True))
    comet = training.CometLogger(COMET_PROJECT, results_dir)
    comet.log_parameters({key: str(value) for key, value in record.items()})
    handle_stop_signals()
    started = time.perf_counter()
    try:
        history, first_stage_weights = lbfgs.train(
            model, prepared["train"], prepared["val"], stages, config["patience"], config["min_delta"], checkpoint,
            resume=config["resume"],
            on_epoch=lambda row: comet.log_metrics({key: value for key, value in row.items() if key != "stage"},
                                                   epoch=row["epoch"]))
    except KeyboardInterrupt:
        finished = checkpoint.finished_epochs()
        print(f"\nInterrupted after {finished} finished epochs. The checkpoint of epoch {finished} is in "
              f"{results_dir}; continue with: python3 main.py --resume --results-dir {results_dir} (and the same "
              f"other flags).", file=sys.stderr)
        comet.end()
        return None
    except FloatingPointError as error:
        print(f"error: {error}: training diverged. The checkpoint of the last finished epoch is kept in "
              f"{results_dir}. Fix: try a larger --lambda-2.", file=sys.stderr)
        comet.end()
        return [], time.perf_counter() - started, True, initial_epoch
    train_seconds = time.perf_counter() - started
    checkpoint.remove()
    comet.end()
    model.first_stage_weights = first_stage_weights  # GLocal-K's pre-trained network, evaluated on its own in run
    return history, train_seconds, False, initial_epoch


def evaluate_pre_training(config, model, prepared):
    """GLocal-K's pre-trained local autoencoder on its own (the network of --global-kernel-size 0 with the same
    values), as the GLocal-K paper's ablation: its test metrics, or None when the pre-training's weights are not
    at hand (a run resumed after it)."""
    if not config["global_kernel_size"] or model.first_stage_weights is None:
        return None
    final_weights = model.get_weights()
    model.set_weights(model.first_stage_weights)
    local = build_kernel_model({**config, "global_kernel_size": 0}, prepared)
    for source, target in zip(model.hidden + [model.output_layer], local.hidden + [local.output_layer]):
        target.set_weights(source.get_weights())
    model.set_weights(final_weights)
    return {key: value for key, value in evaluate(local, prepared, config["orientation"]).items()
            if key in SUMMARY_KEYS}


def train(config, model, train_data, val_data, steps, results_dir, record, chief=True):
    """Fit with checkpoints, early stopping, the learning-rate schedule and CometML; resume if asked. Returns
    (history, seconds, diverged, first epoch of this session), or None when interrupted (the checkpoint stays)."""
    import keras
    import tensorflow as tf

    import training

    checkpoint = training.Checkpoint(results_dir, {key: record[key] for key in RESUME_KEYS})
    initial_epoch = 0
    if config["resume"]:
        resume_from(checkpoint, model, results_dir)
        initial_epoch = len(checkpoint.history)
        print(f"Resuming from the checkpoint of epoch {initial_epoch} in {results_dir}")
    else:
        clear_previous_run(results_dir)
    history = checkpoint.history

    comet = training.CometLogger(COMET_PROJECT if chief else None, results_dir)
    comet.log_parameters({key: str(value) for key, value in record.items()})
    summary_lines = []
    model.summary(print_fn=lambda line, **kwargs: summary_lines.append(line))
    comet.log_model_summary("\n".join(summary_lines))
    early_stopping = training.ResumableEarlyStopping(history, monitor="val_loss", min_delta=config["min_delta"],
                                                     patience=config["patience"])
    epoch_logger = keras.callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: comet.log_metrics(logs, epoch=epoch + 1))
    callbacks = [keras.callbacks.TerminateOnNaN(), early_stopping, checkpoint, epoch_logger]
    if config["lr_schedule"] == "step":
        callbacks.append(keras.callbacks.LearningRateScheduler(
            lambda epoch: config["learning_rate"] * 0.5 ** sum(epoch >= step for step in LR_STEP_EPOCHS)))
    elif config["lr_schedule"] == "plateau":
        callbacks.append(keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=2))

    handle_stop_signals()
    print(f"Training on the {config['training_path']} path ({model.compute_dtype}), up to {config['epochs']} "
          f"epochs from epoch {initial_epoch + 1}")
    started = time.perf_counter()
    try:
        model.fit(train_data, epochs=config["epochs"], initial_epoch=initial_epoch, validation_data=val_data,
                  steps_per_epoch=steps, callbacks=callbacks, verbose=2, shuffle=False)  # row_batches shuffles
    except KeyboardInterrupt:
        print(f"\nInterrupted after {len(history)} finished epochs. The checkpoint of epoch {len(history)} is in "
              f"{results_dir}; continue with: python3 main.py --resume --results-dir {results_dir} "
              f"(and the same other flags).", file=sys.stderr)
        comet.end()
        return None
    except tf.errors.OpError as error:
        if config["distribute"] == "none":
            raise
        comet.end()
        raise distribute.WorkerFailure(
            f"training stopped: a collective operation failed ({type(error).__name__}: {error.message[:300]}); "
            f"another worker most likely died or cannot be reached (collectives wait at most "
            f"{distribute.COLLECTIVE_TIMEOUT_SECONDS} s). The checkpoint of epoch {len(history)} in {results_dir} "
            f"is intact: restart every worker with --resume and the same flags.") from None
    train_seconds = time.perf_counter() - started
    if checkpoint.diverged:
        report_divergence(config, checkpoint, model, results_dir, record)
    else:
        checkpoint.remove()
    comet.end()
    return history, train_seconds, checkpoint.diverged, initial_epoch


def resume_from(checkpoint, model, results_dir):
    """Load the checkpoint, refusing one written by a run of another model or data configuration."""
    check_resumable(checkpoint, results_dir)
    model.optimizer.build(model.trainable_variables)
    checkpoint.load(model)


def check_resumable(checkpoint, results_dir):
    """Refuse to resume without a checkpoint, or from one of another model or data configuration."""
    if not checkpoint.exists():
        raise ConfigError(f"--resume: no checkpoint in {results_dir}. Fix: run without --resume, or point "
                          f"--results-dir at the folder of the interrupted run.")
    saved = checkpoint.saved_config()
    differing = [key for key in RESUME_KEYS if saved.get(key) != checkpoint.run_config[key]]
    if differing:
        details = "; ".join(f"{'the data files' if key == 'data_files' else '--' + key.replace('_', '-')} was "
                            f"{saved.get(key)!r}, now {checkpoint.run_config[key]!r}" for key in differing)
        raise ConfigError(f"--resume: the checkpoint in {results_dir} belongs to a run with other settings "
                          f"({details}). Fix: resume with the interrupted run's flags, or run without --resume "
                          f"(which starts afresh in that folder) or with another --results-dir.")


def clear_previous_run(results_dir):
    """A fresh run removes the files an earlier run left in its folder, so that the folder never mixes two runs
    (a run that fails or diverges leaves only its own files)."""
    old = [name for name in RUN_FILES if (results_dir / name).exists()] + [
        path.name for path in results_dir.glob("run-*") if path.is_dir()]
    if old:
        print(f"Clearing the previous run's files in {results_dir}: {', '.join(old)}")
    for name in old:
        path = results_dir / name
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()


def report_divergence(config, checkpoint, model, results_dir, record):
    """A NaN or infinite loss: say so truthfully, and evaluate the last good checkpoint if there is one."""
    epoch = len(checkpoint.history) + 1
    cause = (f"training diverged, most likely because the learning rate is too high (--learning-rate "
             f"{config['learning_rate']}); try a smaller one")
    if not checkpoint.exists():
        print(f"error: the loss became NaN or infinite in epoch {epoch}: {cause}. No epoch finished, so no "
              f"checkpoint exists and nothing was evaluated.", file=sys.stderr)
        utils.save_json(results_dir / "metrics.json", {"diverged": True, "epochs": 0, "config": record})
        return
    print(f"error: the loss became NaN or infinite in epoch {epoch}: {cause}. The last good checkpoint (epoch "
          f"{epoch - 1}) is kept in {results_dir} and evaluated.", file=sys.stderr)
    checkpoint.load(model)


def evaluate(model, prepared, orientation):
    """Both RMSEs on validation and test, NDCG@10 and Recall@10 on test, each prediction made from the train
    matrix (GLocal-K: from the train matrix convolved with its global kernel)."""
    data = prepared["data"]
    train_inputs = model.input_matrix(prepared["train"])

    def predict(users, items):
        rows, cols = (users, items) if orientation == "user" else (items, users)
        return metrics.predict_at(model, train_inputs, rows, cols)

    scorer = metrics.user_scorer(model, train_inputs, orientation, data["n_users"], data["n_items"])
    return metrics.evaluate_predictor(data, prepared["split"], predict, scorer)


def save_results(results_dir, model, result, history, data, config):
    """Model, configuration, ids, history and figures, then metrics.json last: its presence marks a finished run."""
    utils.write_atomic(results_dir / "model.keras", lambda path: model.save(path))
    utils.save_json(results_dir / "config.json", result["config"])
    utils.save_json(results_dir / "ids.json", {"user_ids": data["user_ids"].tolist(),
                                               "item_ids": data["item_ids"].tolist()})
    if history:
        low, high, _ = data["scale"]
        utils.save_history_csv(results_dir / "history.csv", history)
        if config["model"] == "kernel":
            utils.plot_curves(results_dir / "loss.png", history, "loss",
                              "Loss per rating (squared error / 2 + penalties / train ratings)", "loss")
            utils.plot_curves(results_dir / "rmse.png", history, "rmse_clip",
                              f"RMSE (global, predictions clipped to [{low:g}, {high:g}])", "RMSE")
        else:
            utils.plot_curves(results_dir / "loss.png", history, "loss", f"Loss ({config['loss']} + L2 penalty)",
                              "loss")
            utils.plot_curves(results_dir / "rmse.png", history, "masked_rmse_clip",
                              f"Masked RMSE (predictions clipped to [{low:g}, {high:g}])", "masked RMSE")
    utils.save_json(results_dir / "metrics.json", result)


def display_path(path):
    """The path relative to the project folder when it lies inside it, so that saved results name no machine."""
    path = Path(path).resolve()
    project = Path(__file__).resolve().parent
    return str(path.relative_to(project)) if path.is_relative_to(project) else str(path)


def handle_stop_signals():
    """Ctrl-C (SIGINT) and SIGTERM stop a run and keep its last checkpoint, also in a process started in the
    background, for which the shell ignores SIGINT."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, raise_keyboard_interrupt)


def raise_keyboard_interrupt(signum, frame):
    """SIGTERM is handled like Ctrl-C: the run stops and keeps its last checkpoint."""
    raise KeyboardInterrupt


# ----------------------------------------------------------------------------------------------------------------
# Repeated runs and the comparison of presets and baselines.

SUMMARY_KEYS = ["test_rmse", "test_masked_rmse", "val_rmse", "test_ndcg_at_10", "test_recall_at_10"]


def run_repeats(config):
    """--repeats N: the same configuration on N splits, each in results-dir/run-<i>; summary.json holds the mean
    and standard deviation of the test metrics and every run's figures."""
    results_dir = prepare_results_dir(config["results_dir"])
    data = data_processor.load_data(config["dataset"], config["data_dir"])
    runs = []
    for index in range(config["repeats"]):
        run_config = {**config, **split_of_repeat(config, index), "repeats": 1,
                      "results_dir": results_dir / f"run-{index + 1}"}
        print(f"\n=== run {index + 1}/{config['repeats']}: split {run_config['split']}, split seed "
              f"{run_config['split_seed']} ===")
        status, result = run(run_config, data)
        if result is None or status != 0:
            return status
        runs.append({"split": run_config["split"], "split_seed": run_config["split_seed"],
                     **{key: result[key] for key in SUMMARY_KEYS + ["epochs", "train_seconds"]}})
        if result.get("pre_training"):  # GLocal-K: its pre-trained network alone, i.e. the sparsefc preset's run
            runs[-1]["pre_training_test_rmse"] = result["pre_training"]["test_rmse"]
    summary = summarise(runs)
    utils.save_json(results_dir / "summary.json", summary)
    print(f"\n{config['preset']} preset on {config['dataset']}, split {config['split']}, {len(runs)} runs: "
          f"test RMSE (global) {summary['test_rmse_mean']:.4f} ± {summary['test_rmse_std']:.4f}, test masked RMSE "
          f"(seed metric) {summary['test_masked_rmse_mean']:.4f} ± {summary['test_masked_rmse_std']:.4f} "
          f"(summary.json in {results_dir})")
    return 0



def summarise(runs):
    """Mean and standard deviation (sample, ddof=1; 0 for one run) of each metric over the runs."""
    summary = {}
    optional = [key for key in ["pre_training_test_rmse"] if any(key in run for run in runs)]
    for key in SUMMARY_KEYS + ["train_seconds"] + optional:
        values = [run[key] for run in runs if run.get(key) is not None]
        summary[f"{key}_mean"] = float(np.mean(values)) if values else None
        summary[f"{key}_std"] = float(np.std(values, ddof=1)) if len(values) > 1 else (0.0 if values else None)
    return {**summary, "n_runs": len(runs), "runs": runs}


def compare(config):
    """Every preset and both baselines on the same split(s) (the flags' --dataset, --split, --split-seed,
    --repeats); flags other than --preset override single values in every preset. Writes comparison.csv, .md and
    .png to --results-dir."""
    import baselines

    results_dir = prepare_results_dir(config["results_dir"])
    data = data_processor.load_data(config["dataset"], config["data_dir"])
    runs = {}
    for index in range(config["repeats"]):
        split_flags = split_of_repeat(config, index)
        print(f"\n=== split {index + 1}/{config['repeats']}: {split_flags['split']}, split seed "
              f"{split_flags['split_seed']} ===")
        parts = data_processor.split_ratings(data, split_flags["split"], split_flags["split_seed"],
                                             config["time_window"])
        for result in baselines.evaluate_baselines(data, parts):
            runs.setdefault(result["name"], []).append(result)
        for name in PRESETS:
            preset_config = {**parse_config(config["argv"], preset=name), **split_flags, "compare": False,
                             "repeats": 1, "results_dir": results_dir / name / f"run-{index + 1}"}
            print(f"\n=== preset {name} ===")
            status, result = run(preset_config, data)
            if result is None:
                return status
            runs.setdefault(f"{name} preset", []).append(result)
    rows = [{"name": name, **summarise(model_runs)} for name, model_runs in runs.items()]
    utils.save_comparison(results_dir, rows)
    print(f"\nComparison ({config['dataset']}, split {config['split']}, {config['repeats']} split(s)) written to "
          f"{results_dir}/comparison.md:\n")
    print((results_dir / "comparison.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
