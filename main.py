"""Train the deep autoencoder of Kuchaiev & Ginsburg (2017) on a rating data set and report its test RMSE.

    python3 main.py                      # the seed's reference run on MovieLens-1M
    python3 main.py --epochs 3 --layers 512,256,512
    python3 main.py --preset deeprec --dataset ml-100k --split u1 --repeats 5
    python3 main.py --help               # every constant below has a flag

Hyperparameters are the constants right below; edit them here or override them with flags.
"""

import contextlib
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's start-up chatter out of the output

import utils  # noqa: F401  first of the project's modules: it refuses a Python older than 3.11, clearly
import comet_logger  # noqa: F401  imports comet_ml (when logging is on) before TensorFlow, as comet_ml asks
import comparison
import data_processor
import distribute
import reporting
from config import ConfigError, parse_flags

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
LEARNING_RATE = 0.001  # the optimizer's step size
MOMENTUM = 0.9  # SGD's momentum
BATCH_SIZE = 512  # rows per training batch
EPOCHS = 500  # at most: early stopping on the validation loss usually ends the run sooner
EARLY_STOPPING_PATIENCE = 3  # epochs without improvement of the validation loss before the run stops
EARLY_STOPPING_MIN_DELTA = 1e-4  # the least decrease of the validation loss that counts as an improvement
INPUT_FILL = "zero"  # unknown input ratings: 'zero', 'mean' (the row's mean rating) or a number; targets stay masked
# The paper's techniques beyond the seed (all off in the seed's run).
ORIENTATION = "user"  # 'user': a row is a user's ratings (the seed, the paper); 'item': a row is an item's (I-AutoRec)
CONSTRAINED = False  # tie the decoder's kernels to the transposed encoder kernels
INPUT_DROPOUT = 0.0  # dropout on the input ratings (input noise)
REFEED_STEPS = 0  # dense re-feeding: extra steps per batch on the network's own dense output
LR_SCHEDULE = "none"  # 'none', 'step' (halve at LR_STEP_EPOCHS, as NVIDIA's reference) or 'plateau' (halve on a stall)
LR_STEP_EPOCHS = [24, 36, 48, 66, 72]  # 'step': the epochs at which the rate halves
SEED = 42  # weights, dropout and batch order
# Kernelised sparse layers (Sparse FC, Muller et al. 2018) and GLocal-K's global kernel (Han et al. 2021), presets
# sparsefc and glocalk: full-batch L-BFGS (lbfgs.py); LAYERS and ACTIVATION give the hidden layers, EPOCHS and
# EARLY_STOPPING_* the first stage, whose epochs are LBFGS_ITERATIONS iterations each.
MODEL = "deep"  # 'deep' (model.py, trained by Keras' fit) or 'kernel' (kernel_model.py, trained by lbfgs.py)
KERNEL_DIM = 5  # size of each unit's embedding; units farther apart than 1 are not connected
LAMBDA_2 = 70.0  # L2 on the weights W (the objective is 1/2 * the summed squared errors plus the penalties)
LAMBDA_S = 0.018  # L2 on the kernel values, which drives them to zero (sparsity)
LBFGS_ITERATIONS = 50  # L-BFGS iterations per epoch; every epoch ends with validation
LBFGS_SOLVER = "tensorflow"  # 'tensorflow' (its state and loop in the graph) or 'scipy' (L-BFGS-B, as the papers)
GLOBAL_KERNEL_SIZE = 0  # side of GLocal-K's global convolution kernel (3); 0: none (Sparse FC)
DOT_SCALE = 0.5  # GLocal-K's scale of the global kernel
FINETUNE_EPOCHS = 30  # GLocal-K's second stage, with the global kernel, from the first stage's best weights
FINETUNE_ITERATIONS = 10  # L-BFGS iterations per fine-tuning epoch
# Data and protocol.
DATASET = "ml-1m"  # 'ml-100k', 'ml-1m', 'ml-10m', 'ml-20m', 'netflix' or 'csv' (your own ratings file, below)
DATA_DIR = None  # the data set's folder; None: $MOVIELENS_DIR for ml-1m, else data/<data set>, downloaded there
RATINGS_FILE = None  # 'csv': the file, one rating per line: user and item ids (any text), rating, optional time
COLUMNS = ""  # 'csv': user,item,rating[,timestamp] by header name or position from 1; '': the first fields in order
SEPARATOR = "auto"  # 'csv': ',', ';', '|', '\t', ' ' or '::'; 'auto': the first of these on line 1
HEADER = "auto"  # 'csv': 'yes', 'no' or 'auto' (line 1 is a header if its rating is not a number)
RATING_SCALE = None  # 'csv': [low, high] (whole steps) or [low, high, step] (0: any value); None: inferred, printed
TITLES_FILE = None  # 'csv', optional: item id and title per line, for recommendations
# Splits: 'stratified' (the seed's 81/9/10 stratified by user), 'random' (90/10, 5% of the 90 validates), 'u1'-'u5',
# 'ua', 'ub' (ML-100K's official files) or 'time' (train on a time window, test on the next: the paper's protocol).
SPLIT = "stratified"  # the evaluation protocol ('seed' is the earlier name of 'stratified')
TIME_WINDOW = "full"  # Netflix time split: 'full', '3m', '6m' or '1y' (the paper's windows)
SPLIT_SEED = data_processor.SPLIT_SEED  # random draws of the split
REPEATS = 1  # runs on successive splits (split seeds SPLIT_SEED, SPLIT_SEED + 1, ...; u1, u2, ...): mean and std
REFIT = False  # then train again on train + validation for the epochs validation chose; test metrics in refit/
BASELINES_BESIDE = True  # --compare: fit the baselines (one core) in a second process while the networks train
# Speed: 'sparse' keeps the rating matrices sparse and densifies one batch at a time inside the compiled step;
# 'dense' is the plain Keras path (dense NumPy matrices fed to fit).
TRAINING_PATH = "auto"  # 'auto' (sparse unless INPUT_FILL needs dense inputs), 'sparse' or 'dense'
VALIDATION_BATCH_SIZE = 4096  # rows per validation batch; validation only reads, so larger batches only add speed
# Scaling out: 'none', 'mirrored' (the local GPUs, or DEVICES logical CPU devices) or 'multi-worker' (machines named
# in the TF_CONFIG environment variable). BATCH_SIZE stays the global batch: the same steps as on one device.
DISTRIBUTE = "none"  # train on several devices or machines: 'none', 'mirrored' or 'multi-worker'
DEVICES = 0  # with 'mirrored': split the CPU into this many logical devices (testing without GPUs); 0: the GPUs
# Precision of the deep network: 'bfloat16' computes in bfloat16 with float32 weights; 'auto' takes it where the
# hardware multiplies it natively (CPUs with AMX or AVX-512 BF16, GPUs from Ampere on), float32 elsewhere.
PRECISION = "auto"  # compute precision of the deep network: 'auto', 'float32' or 'bfloat16'
# Files and logging.
RESULTS_DIR = Path(__file__).resolve().parent / "results" / "latest"  # results/reference holds the README's runs
CHECKPOINT_SECONDS = 30  # the deep network's checkpoint at most this often (an interrupt loses less); 0: every epoch
COMET_PROJECT = "deep-autoencoders-cf"  # CometML project (logging is on with COMET_API_KEY or COMET_MODE=offline)

# Presets: named sets of the values above, chosen with --preset NAME; flags after it still override single values.
PRESETS = {
    "reference": {},  # the constants above: the seed's reference run
    "autorec": dict(  # I-AutoRec (Sedhain et al. 2015): item rows, one sigmoid layer of 500 units, linear output,
        # squared error on known ratings, L2 (strength picked on the validation ratings)
        orientation="item", layers=[500], activation="sigmoid", last_activation="linear", dropout=0.0,
        loss="masked_mse", optimizer="adam", learning_rate=0.001, batch_size=256, l2_encode=1e-4, l2_decode=1e-4,
        epochs=200, early_stopping_patience=5),
    "deeprec": dict(  # the best of the paper's techniques on MovieLens-1M, searched on the validation ratings
        # (docs/preset-search.md): item rows, the paper's masked MSE, a learning rate halved on plateaus; depth,
        # SELU, dropout, re-feeding and tied weights did not help here
        orientation="item", layers=[1000], activation="sigmoid", last_activation="linear", dropout=0.0,
        loss="masked_mse", optimizer="adam", learning_rate=0.001, batch_size=256, l2_encode=1e-4, l2_decode=1e-4,
        lr_schedule="plateau", epochs=200, early_stopping_patience=8),
    "deeprec-user": dict(  # deeprec on user rows, the paper's orientation: weaker alone on MovieLens, but another
        # view of the ratings that the blend weighs in (chosen on the validation ratings: docs/results.md)
        orientation="user", layers=[1000], activation="sigmoid", last_activation="linear", dropout=0.0,
        loss="masked_mse", optimizer="adam", learning_rate=0.001, batch_size=256, l2_encode=1e-4, l2_decode=1e-4,
        lr_schedule="plateau", epochs=200, early_stopping_patience=8),
    "sparsefc": dict(  # Sparse FC (Muller et al. 2018): item rows, two kernelised sigmoid layers of 500 units, unit
        # embeddings of size 5, full-batch L-BFGS; GLocal-K's values of lambda (its pre-training is this network)
        model="kernel", orientation="item", layers=[500, 500], activation="sigmoid", kernel_dim=5, lambda_2=70.0,
        lambda_s=0.018, global_kernel_size=0, epochs=20, lbfgs_iterations=50, early_stopping_patience=5),
    "glocalk": dict(  # GLocal-K (Han et al. 2021): sparsefc pre-trained, then fine-tuned with a 3x3 global kernel
        model="kernel", orientation="item", layers=[500, 500], activation="sigmoid", kernel_dim=5, lambda_2=70.0,
        lambda_s=0.018, global_kernel_size=3, dot_scale=0.5, epochs=20, lbfgs_iterations=50, finetune_epochs=30,
        finetune_iterations=10, early_stopping_patience=5),
}
# The papers tune the kernel networks per data set: these values replace a preset's on that data set (GLocal-K's
# published settings for ML-100K; the presets above hold its ML-1M ones).
PRESET_DATASET_VALUES = {
    ("sparsefc", "ml-100k"): dict(lambda_2=20.0, lambda_s=0.006, epochs=30, lbfgs_iterations=5),
    ("glocalk", "ml-100k"): dict(lambda_2=20.0, lambda_s=0.006, dot_scale=1.0, epochs=30, lbfgs_iterations=5,
                                 finetune_epochs=60, finetune_iterations=5),
}
# ----------------------------------------------------------------------------------------------------------------


def parse_config(argv=None, preset=None):
    """The constants above (every upper-case name of this file), then the preset, then the flags."""
    constants = {name: value for name, value in globals().items() if name.isupper()}
    return parse_flags(argv, constants, __doc__, __file__, preset)


def main(argv=None):
    try:
        config = parse_config(argv)
        if config["show_config"]:
            print(reporting.config_json(config))
            return 0
        if config["compare"] or config["repeats"] > 1:
            return comparison.run_splits(config, run, parse_config, PRESETS)
        return run(config)[0]
    except (ConfigError, data_processor.DataError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except distribute.WorkerFailure as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # between members of --repeats or --compare (a run itself keeps its checkpoint)
        print("\nInterrupted. Every finished member is kept: continue with --resume and the same flags.",
              file=sys.stderr)
        return 130


def run(config, data=None, tags=(), first_stage=None):
    """Train and evaluate one configuration (on `data` when it is already loaded); GLocal-K also saves its first
    stage as a sparsefc run with `first_stage` (that configuration, a folder). With --refit, then the refit
    protocol in the results folder's refit/: the same network trained again on the training and validation ratings
    together, for exactly the epochs (each L-BFGS stage's, the deep network's with their learning rates) that
    validation chose, and scored on the test ratings. Returns (exit status, the train-only run's metrics); metrics
    is None when nothing was evaluated or the refit was interrupted."""
    results_dir = Path(config["results_dir"])
    trained = config["refit"] and config["resume"] and (results_dir / "metrics.json").is_file() and not (
        results_dir / "checkpoint.json").is_file()  # --resume of a run interrupted in its refit
    status, result = (0, reporting.finished_result(results_dir)) if trained else train_and_evaluate(
        config, data, tags, first_stage)
    if not config["refit"] or status != 0:
        return status, result
    refit_dir = results_dir / "refit"
    if trained and (refit_dir / "metrics.json").is_file():
        print(f"Finished, with its refit, in {results_dir}")
        return 0, result
    schedule = result.get("refit_schedule") or refit_schedule_of(config, results_dir, result)
    print(f"\n=== refit on train + validation: {reporting.schedule_text(schedule)} ===")
    refit_config = {**config, "refit": False, "refit_schedule": schedule, "results_dir": refit_dir,
                    "resume": (refit_dir / "checkpoint.json").is_file()}
    if first_stage:  # the first stage of glocalk's refit is sparsefc's refit
        first_stage = ({**first_stage[0], "refit_schedule": {"stage_epochs": schedule["stage_epochs"][:1]}},
                       first_stage[1] / "refit")
    refit_status, refit_result = train_and_evaluate(refit_config, data, tags, first_stage)
    return refit_status, (None if refit_result is None else result)


def refit_schedule_of(config, results_dir, result):
    """The refit schedule of a run finished before runs recorded it, from its history.csv."""
    import training

    return training.refit_schedule(config, utils.read_history_csv(results_dir / "history.csv"), result["kept_epoch"])


def train_and_evaluate(config, data=None, tags=(), first_stage=None):
    """One training run (a refit where config holds a refit_schedule), evaluated and saved: (exit status, metrics)."""
    import inference  # TensorFlow is imported once a run starts: --help and bad flags answer at once
    import recommendations
    import training

    strategy = distribute.make_strategy(config["distribute"], config["devices"])  # before any TensorFlow work
    chief = distribute.is_chief()  # only the chief writes results; the other workers, where nobody reads
    prepared = data_processor.prepare_run_data(config, data)  # first: bad data leaves no empty results folder
    results_dir = reporting.prepare_results_dir(config["results_dir"] if chief else tempfile.mkdtemp(prefix="worker-"))
    record = reporting.run_record(config, prepared.data, results_dir)
    with training.Session(config, record, results_dir, chief, tags) as session:
        # ---- model and training ----------------------------------------------------------------------------------
        if config["model"] == "kernel":  # kernelised layers, full-batch L-BFGS, float32
            precision = "float32"
            network = training.build_kernel_model(config, prepared)
            history, first_stage_weights, kept_epoch = training.fit_lbfgs(config, network, prepared, session)
        else:
            precision = training.resolve_precision(config["precision"])
            with strategy.scope() if strategy else contextlib.nullcontext():
                network = training.build_model(config, prepared, precision)
            history, kept_epoch = training.fit_keras(config, network, prepared, session, strategy)
        train_seconds = session.train_seconds()
        if not history:
            return 1, None
        # ---- evaluation ------------------------------------------------------------------------------------------
        result, predictions = inference.evaluate(network, prepared)
        if config["model"] == "kernel":
            result["pre_training"] = training.evaluate_pre_training(config, network, first_stage_weights, prepared)
        result.update(diverged=session.diverged, machines=session.machines(), **reporting.run_facts(
            history, kept_epoch, train_seconds, session.initial_epoch, prepared.split, precision, record))
        result = reporting.without_validation(result) if config.get("refit_schedule") else {  # trained on them
            **result, "refit_schedule": training.refit_schedule(config, history, kept_epoch)}  # what a refit replays
        # ---- results ---------------------------------------------------------------------------------------------
        reporting.save_predictions(results_dir / "predictions.npz", prepared.split, predictions)
        figures = reporting.save_results(results_dir, network, result, history, prepared.data, config)
        session.comet.log_result(result, figures)
        if first_stage:
            training.save_first_stage_run(*first_stage, network, first_stage_weights, history, prepared, session)
    if session.interrupted:
        return 130, None
    reporting.print_result(result, results_dir)
    if not config.get("refit_schedule"):
        recommendations.print_top_n(recommendations.top_n(network, prepared, user_index=0), prepared.data.user_ids[0])
    return (1 if session.diverged else 0), result


if __name__ == "__main__":
    sys.exit(main())
