"""Train the deep autoencoder of Kuchaiev & Ginsburg (2017) on MovieLens-1M and report its test RMSE.

    python3 main.py                      # the seed's reference run
    python3 main.py --epochs 3 --layers 512,256,512
    python3 main.py --help               # every hyperparameter below has a flag

Hyperparameters are the constants right below; edit them here or override them with flags.
"""

import argparse
import os
import signal
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's start-up chatter out of the output

import numpy as np
import scipy.sparse

import data_processor
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
SPLIT_SEED = data_processor.SPLIT_SEED  # the 81/9/10 split
SEED = 42  # weights, dropout and batch order
# Speed: 'sparse' keeps the rating matrices sparse and densifies one batch at a time inside the compiled step;
# 'dense' is the plain Keras path (dense NumPy matrices fed to fit).
TRAINING_PATH = "auto"  # 'auto' (sparse unless INPUT_FILL needs dense inputs), 'sparse' or 'dense'
VALIDATION_BATCH_SIZE = 4096  # rows per validation batch; validation only reads, so larger batches only add speed
# (and make the epoch's validation loss the exact mean over rows: one batch in item orientation)
PRECISION = "auto"  # 'float32', 'bfloat16' (bfloat16 compute, float32 weights) or 'auto': bfloat16 where the hardware
# multiplies it natively (CPUs with AMX or AVX-512 BF16, GPUs from Ampere on), float32 elsewhere
# Files and logging.
MOVIELENS_DIR = data_processor.MOVIELENS_DIR  # overridden by $MOVIELENS_DIR, then by --data-dir
RESULTS_DIR = Path(__file__).resolve().parent / "results"
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
        # (README, "How the deeprec preset was chosen"): item rows, the paper's masked MSE, a learning rate halved
        # on plateaus; depth, SELU, dropout, re-feeding and tied weights did not help here
        orientation="item", layers=[1000], activation="sigmoid", last_activation="linear", dropout=0.0,
        loss="masked_mse", optimizer="adam", learning_rate=0.001, batch_size=256, l2_encode=1e-4, l2_decode=1e-4,
        lr_schedule="plateau", epochs=200, patience=8),
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
}


class ConfigError(Exception):
    """A hyperparameter the program cannot run with; the message names the flag and the accepted values."""


def parse_config(argv=None, preset=None):
    """Constants above, then the preset (`preset` wins over --preset), then flags. Returns a dict of every
    hyperparameter, validated."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add = parser.add_argument
    add("--preset", choices=list(PRESETS), default="seed", help="a named set of hyperparameters (PRESETS)")
    add("--compare", action="store_true",
        help="train every preset and the baselines on the same split; write comparison.csv/.png/.md")
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
    add("--orientation", choices=CHOICES["orientation"], default=ORIENTATION, help="rows are users or items")
    add("--constrained", action=argparse.BooleanOptionalAction, default=CONSTRAINED, help="tied decoder weights")
    add("--input-dropout", type=float, default=INPUT_DROPOUT, help="dropout on the input ratings, in [0, 1)")
    add("--refeed-steps", type=int, default=REFEED_STEPS, help="dense re-feeding steps per batch (0 = off)")
    add("--lr-schedule", choices=CHOICES["lr_schedule"], default=LR_SCHEDULE)
    add("--input-fill", default=INPUT_FILL, help="'zero', 'mean' or a number: what unknown input ratings become")
    add("--split-seed", type=int, default=SPLIT_SEED)
    add("--seed", type=int, default=SEED)
    add("--training-path", choices=CHOICES["training_path"], default=TRAINING_PATH)
    add("--validation-batch-size", type=int, default=VALIDATION_BATCH_SIZE)
    add("--precision", choices=CHOICES["precision"], default=PRECISION)
    add("--data-dir", default=None, help="folder with ratings.dat (default: $MOVIELENS_DIR, else MOVIELENS_DIR)")
    add("--results-dir", type=Path, default=RESULTS_DIR)
    add("--resume", action="store_true", help="continue the interrupted run whose checkpoint is in --results-dir")
    preset = preset or parser.parse_known_args(argv)[0].preset
    parser.set_defaults(**PRESETS[preset])
    config = {**vars(parser.parse_args(argv)), "preset": preset}
    config["argv"] = list(sys.argv[1:] if argv is None else argv)  # --compare passes the flags on to each preset
    validate_config(config)
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
    require(config["learning_rate"] > 0, "--learning-rate", "a positive number, e.g. 0.001")
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
    fill = str(config["input_fill"])
    require(fill in ("zero", "mean") or fill.replace(".", "", 1).isdigit(), "--input-fill",
            "'zero', 'mean' or a number such as 3")
    config["input_fill"] = fill if fill in ("zero", "mean") else float(fill)
    if config["training_path"] == "auto":
        config["training_path"] = "sparse" if config["input_fill"] == "zero" else "dense"
    require(config["training_path"] == "dense" or config["input_fill"] == "zero", "--training-path",
            "'dense' when --input-fill is not 'zero' (a filled input matrix is dense)")


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


def main(argv=None):
    try:
        config = parse_config(argv)
        return compare(config) if config["compare"] else run(config)[0]
    except (ConfigError, data_processor.DataError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


def run(config):
    """Train and evaluate one configuration. Returns (exit status, metrics)."""
    results_dir = prepare_results_dir(config["results_dir"])

    # -------- data: file -> validated ratings -> 81/9/10 split -> sparse user x item (or item x user) matrices
    started = time.perf_counter()
    data_dir = data_processor.ensure_movielens(data_processor.resolve_data_dir(config["data_dir"]))
    data = data_processor.load_movielens(data_dir)
    split = data_processor.split_ratings(data, seed=config["split_seed"])
    orientation = config["orientation"]
    shape = data_processor.matrix_shape(data, orientation)
    matrices = {part: data_processor.sparse_rating_matrix(*data_processor.triples(data, split[part], orientation),
                                                          shape)
                for part in ("train", "val")}
    print(f"Data: {len(data['ratings']):,} ratings from {data_dir}; train/val/test "
          f"{len(split['train']):,}/{len(split['val']):,}/{len(split['test']):,} "
          f"({time.perf_counter() - started:.2f} s)")

    # -------- model
    import keras
    from model import DeepAutoEncoder

    if config["precision"] == "auto":
        config["precision"] = "bfloat16" if native_bfloat16() else "float32"
    keras.utils.set_random_seed(config["seed"])
    keras.mixed_precision.set_dtype_policy("mixed_bfloat16" if config["precision"] == "bfloat16" else "float32")
    model = DeepAutoEncoder(
        shape[1], layers=config["layers"], dropout=config["dropout"], activation=config["activation"],
        last_activation=config["last_activation"], l2_encode=config["l2_encode"], l2_decode=config["l2_decode"],
        constrained=config["constrained"], input_dropout=config["input_dropout"],
        refeed_steps=config["refeed_steps"], loss_name=config["loss"])
    if config["optimizer"] == "sgd":
        optimizer = keras.optimizers.SGD(config["learning_rate"], momentum=config["momentum"])
    else:
        optimizer = keras.optimizers.Adam(config["learning_rate"])
    model.compile(optimizer=optimizer, jit_compile=False)  # XLA measured slower than oneDNN's kernels on CPU
    model.build()

    # The protocol of the seed: the input is always the train matrix; the targets are the train ratings when
    # training, the validation ratings when validating and the test ratings when testing.
    # The fast path keeps all three sparse; the dense path (the plain reference) feeds dense arrays.
    train_inputs, train_targets, val_targets = matrices["train"], matrices["train"], matrices["val"]
    if config["training_path"] == "dense":
        train_inputs = data_processor.fill_unknown(train_inputs.toarray(), config["input_fill"])
        train_targets, val_targets = train_targets.toarray(), val_targets.toarray()
    train_data = row_batches(train_inputs, train_targets, config["batch_size"], shuffle_seed=config["seed"])
    val_data = row_batches(train_inputs, val_targets, config["validation_batch_size"])

    # -------- training
    checkpoint = utils.Checkpoint(results_dir)
    history, initial_epoch = checkpoint.history, 0
    if config["resume"]:
        if not checkpoint.exists():
            raise ConfigError(f"--resume: no checkpoint in {results_dir}. Fix: run without --resume, or point "
                              f"--results-dir at the folder of the interrupted run.")
        optimizer.build(model.trainable_variables)
        checkpoint.load(model)
        initial_epoch = len(history)
        print(f"Resuming from the checkpoint of epoch {initial_epoch} in {results_dir}")

    comet = utils.CometLogger(COMET_PROJECT, results_dir)
    comet.log_parameters({key: str(value) for key, value in config.items()})
    summary_lines = []
    model.summary(print_fn=lambda line, **kwargs: summary_lines.append(line))
    comet.log_model_summary("\n".join(summary_lines))

    early_stopping = utils.ResumableEarlyStopping(history, monitor="val_loss", min_delta=config["min_delta"],
                                                  patience=config["patience"])
    epoch_logger = keras.callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: comet.log_metrics(logs, epoch=epoch + 1))
    callbacks = [keras.callbacks.TerminateOnNaN(), early_stopping, checkpoint, epoch_logger]
    if config["lr_schedule"] == "step":
        callbacks.append(keras.callbacks.LearningRateScheduler(
            lambda epoch: config["learning_rate"] * 0.5 ** sum(epoch >= step for step in LR_STEP_EPOCHS)))
    elif config["lr_schedule"] == "plateau":
        callbacks.append(keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=2))

    signal.signal(signal.SIGTERM, raise_keyboard_interrupt)
    print(f"Training on the {config['training_path']} path ({config['precision']}), "
          f"up to {config['epochs']} epochs from epoch {initial_epoch + 1}")
    started = time.perf_counter()
    try:
        model.fit(train_data, epochs=config["epochs"], initial_epoch=initial_epoch, validation_data=val_data,
                  callbacks=callbacks, verbose=2, shuffle=False)  # row_batches shuffles
    except KeyboardInterrupt:
        print(f"\nInterrupted after {len(history)} finished epochs. The checkpoint of epoch {len(history)} is in "
              f"{results_dir}; continue with: python3 main.py --resume --results-dir {results_dir} "
              f"(and the same other flags).", file=sys.stderr)
        comet.end()
        return 130, None
    train_seconds = time.perf_counter() - started
    config_record = {key: value for key, value in config.items() if key != "argv"}
    config_record["results_dir"] = display_path(results_dir)
    diverged = checkpoint.diverged
    if diverged:
        print(f"error: the loss became NaN or infinite at epoch {len(history) + 1}: training diverged, most likely "
              f"because the learning rate is too high (--learning-rate {config['learning_rate']}); try a smaller "
              f"one. The last good checkpoint (epoch {len(history)}) is kept in {results_dir} and evaluated.",
              file=sys.stderr)
        if not checkpoint.exists():  # diverged in the first epoch: nothing to evaluate
            utils.save_json(results_dir / "metrics.json", {"diverged": True, "epochs": 0, "config": config_record})
            comet.end()
            return 1, None
        checkpoint.load(model)

    # -------- evaluation on (user, item, rating) triples, the same whichever way the rows go
    metrics = {"diverged": diverged}
    for part in ("val", "test"):
        rows, cols, ratings = data_processor.triples(data, split[part], orientation)
        predictions = utils.predict_at(model, train_inputs, rows, cols)
        users = data["users"][split[part]]
        metrics[f"{part}_masked_rmse"] = utils.per_user_masked_rmse(users, ratings, predictions)
        metrics[f"{part}_rmse"] = utils.global_rmse(ratings, predictions)
    epochs_run = len(history)
    metrics.update({
        "epochs": epochs_run, "train_seconds": round(train_seconds, 2),
        "seconds_per_epoch": round(train_seconds / max(epochs_run - initial_epoch, 1), 4),
        "peak_memory_mb": round(utils.peak_memory_mb(), 1),
        "n_train": len(split["train"]), "n_val": len(split["val"]), "n_test": len(split["test"]),
        "precision": config["precision"], "config": config_record,
    })

    # -------- results
    model_path = results_dir / "model.keras"
    utils.write_atomic(model_path, lambda path: model.save(path))
    utils.save_json(results_dir / "config.json", metrics["config"])
    if history:
        utils.save_history_csv(results_dir / "history.csv", history)
        utils.plot_curves(results_dir / "loss.png", history, "loss", f"Loss ({config['loss']} + L2 penalty)", "loss")
        utils.plot_curves(results_dir / "rmse.png", history, "masked_rmse_clip",
                          "Masked RMSE (predictions clipped to [1, 5])", "masked RMSE")
        for figure in ("loss.png", "rmse.png"):
            comet.log_figure(results_dir / figure)
    utils.save_json(results_dir / "metrics.json", metrics)
    comet.log_metrics({key: value for key, value in metrics.items() if isinstance(value, (int, float))})
    comet.end()
    if not diverged:
        checkpoint.remove()

    print(f"\nTest masked RMSE (seed metric, per-user): {metrics['test_masked_rmse']:.4f}")
    print(f"Test RMSE (global, literature metric):     {metrics['test_rmse']:.4f}")
    print(f"Epochs: {epochs_run}, training time: {train_seconds:.1f} s ({metrics['seconds_per_epoch']:.3f} s/epoch)")
    print(f"Results in {results_dir}: metrics.json, history.csv, loss.png, rmse.png, model.keras, config.json")
    print_recommendations(model, train_inputs, data, orientation, user=0)
    return (1 if diverged else 0), metrics


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


def display_path(path):
    """The path relative to the project folder when it lies inside it, so that saved results name no machine."""
    path = Path(path).resolve()
    project = Path(__file__).resolve().parent
    return str(path.relative_to(project)) if path.is_relative_to(project) else str(path)


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


def print_recommendations(model, inputs, data, orientation, user, count=10):
    """Top-`count` movies the user has not rated, by predicted rating, among movies someone rated."""
    if orientation == "user":
        predicted = utils.predict_rows(model, inputs, np.array([user]))[0]
    else:  # the user's column: one prediction from each item's row
        items = np.arange(data["n_items"])
        predicted = utils.predict_at(model, inputs, items, np.full_like(items, user))
    candidates = np.zeros(len(predicted), dtype=bool)
    candidates[np.unique(data["items"])] = True
    candidates[data["items"][data["users"] == user]] = False
    best = np.flatnonzero(candidates)[np.argsort(-predicted[candidates], kind="stable")[:count]]
    print(f"\nTop {count} recommendations for UserID {user + 1} (movies they have not rated):")
    for rank, item in enumerate(best, start=1):
        title = data["titles"].get(int(item), f"MovieID {item + 1}")
        print(f"{rank:2d}. {title}  (predicted {predicted[item]:.2f})")


def compare(config):
    """Every preset and both baselines on one split (the flags' --split-seed and --data-dir); flags other than
    --preset override single values in every preset. Writes comparison.csv, .md and .png to --results-dir."""
    import baselines

    results_dir = prepare_results_dir(config["results_dir"])
    data = data_processor.load_movielens(data_processor.ensure_movielens(
        data_processor.resolve_data_dir(config["data_dir"])))
    split = data_processor.split_ratings(data, seed=config["split_seed"])
    rows = []
    for result in baselines.evaluate_baselines(data, split):
        rows.append({"name": result["name"], "test_masked_rmse": result["test_masked_rmse"],
                     "test_rmse": result["test_rmse"], "val_rmse": result["val_rmse"], "epochs": "",
                     "train_seconds": ""})
    for name in PRESETS:
        preset_config = {**parse_config(config["argv"], preset=name), "compare": False,
                         "results_dir": results_dir / name}
        print(f"\n=== preset {name} ===")
        status, metrics = run(preset_config)
        if metrics is None:
            return status
        rows.append({"name": f"{name} preset", "test_masked_rmse": metrics["test_masked_rmse"],
                     "test_rmse": metrics["test_rmse"], "val_rmse": metrics["val_rmse"],
                     "epochs": metrics["epochs"], "train_seconds": metrics["train_seconds"]})
    utils.save_comparison(results_dir, rows)
    print(f"\nComparison (split seed {config['split_seed']}) written to {results_dir}/comparison.md:\n")
    print((results_dir / "comparison.md").read_text())
    return 0


def raise_keyboard_interrupt(signum, frame):
    """SIGTERM is handled like Ctrl-C: the run stops and keeps its last checkpoint."""
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
