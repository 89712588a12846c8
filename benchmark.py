"""Speed, measured in one run and printed as one JSON line (each path trains --rounds times, the paths taking turns,
so that a slow spell of a shared machine falls on all alike; medians; each in a process of its own):

    python3 benchmark.py [--epochs 5] [--rounds 3] [--data-dir PATH] [--kernels] [--full]
    python3 benchmark.py --lbfgs [--rounds 3] [--lbfgs-iterations N] [--data-dir PATH]
    python3 benchmark.py --synthetic ml-20m|netflix --data-dir DIR [--epoch-fraction 0.02]
    python3 benchmark.py --compare ROWS

The fast (sparse) path against the plain dense Keras path: data preparation, seconds per epoch after the first,
peak memory, test metrics from the same seed; --full adds a complete default run. --lbfgs: one evaluation of the
sparsefc network's full-batch objective and gradient with products over the known ratings and dense, then epochs
of glocalk's pre-training with scipy's L-BFGS-B and the TensorFlow L-BFGS from the same weights, on ML-1M (and
ML-100K's u1 where ML100K_DIR or data/ml-100k holds it). --synthetic: the program at full scale on synthetic data
of the real size. --compare: one ML-100K u1 split of --compare ROWS, its baselines beside the networks and in turn.
"""

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

import utils  # first of the project's modules: it refuses a Python older than 3.11, clearly
import data_processor

MAIN = str(Path(__file__).with_name("main.py"))


def machine_description():
    import tensorflow as tf

    return f"{utils.machine_description()}, TensorFlow {tf.__version__}"


def prepare(data_dir):
    """Parse + validate + split + the two matrices training uses (the default run's data chain)."""
    with contextlib.redirect_stdout(sys.stderr):  # stdout carries the JSON line only
        return data_processor.prepare_data("ml-1m", data_dir, "stratified", data_processor.SPLIT_SEED, "user")


def main_config(flags):
    """The configuration main.py runs with these flags (its constants, preset and flags)."""
    shown = subprocess.run([sys.executable, MAIN, *flags, "--show-config"], capture_output=True, text=True, check=True)
    return json.loads(shown.stdout)


def train_path(name, flags, epochs, data_dir, scratch):
    """One short training run of a path (python3 main.py); returns its metrics and the seconds of each epoch."""
    results_dir = Path(scratch) / name
    run = subprocess.run([sys.executable, MAIN, "--epochs", str(epochs), "--patience", str(epochs + 1),
                          "--data-dir", str(data_dir), "--results-dir", str(results_dir), *flags],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    sys.stderr.write(run.stdout)  # stdout carries the JSON line only
    if run.returncode != 0:
        raise SystemExit(f"benchmark: the {name} run failed (exit status {run.returncode})")
    metrics = json.loads((results_dir / "metrics.json").read_text())
    with open(results_dir / "history.csv") as handle:
        seconds = [float(line.split(",")[-1]) for line in handle.readlines()[1:]]
    return metrics, seconds


def time_layer_kernels(data_dir, batch_size=512, hidden=512, repeats=20):
    """Forward + backward milliseconds of the seed network's first and last layers, dense and sparse, on a batch."""
    import numpy as np
    import tensorflow as tf

    matrix = prepare(data_dir).train[:batch_size].tocoo()
    indices = np.stack([matrix.row, matrix.col], axis=1).astype(np.int64)
    sparse = tf.SparseTensor(indices, matrix.data, matrix.shape)
    dense = tf.sparse.to_dense(sparse)
    rng = np.random.default_rng(0)
    first_kernel = tf.Variable(rng.normal(0, 0.02, (matrix.shape[1], hidden)).astype(np.float32))
    last_kernel = tf.Variable(rng.normal(0, 0.02, (hidden, matrix.shape[1])).astype(np.float32))
    hidden_batch = tf.constant(rng.normal(0, 1, (matrix.shape[0], hidden)).astype(np.float32))

    def first_dense():
        return tf.nn.selu(dense @ first_kernel)

    def first_sparse():  # the first layer consuming sparse rows
        return tf.nn.selu(tf.sparse.sparse_dense_matmul(sparse, first_kernel))

    def last_dense():  # the whole output, then the known positions
        return tf.gather_nd(tf.nn.selu(hidden_batch @ last_kernel), indices)

    def last_at_known():  # the output computed only at the known positions
        rows, cols = tf.gather(hidden_batch, indices[:, 0]), tf.gather(tf.transpose(last_kernel), indices[:, 1])
        return tf.nn.selu(tf.reduce_sum(rows * cols, axis=1))

    timings = {}
    for name, layer, kernel in [("first_layer_dense", first_dense, first_kernel),
                                ("first_layer_sparse", first_sparse, first_kernel),
                                ("last_layer_dense", last_dense, last_kernel),
                                ("last_layer_known_positions_only", last_at_known, last_kernel)]:
        @tf.function
        def step():
            with tf.GradientTape() as tape:
                loss = tf.reduce_sum(tf.square(layer()))
            return tape.gradient(loss, kernel)
        step()
        started = time.perf_counter()
        for _ in range(repeats):
            step()
        timings[name] = round((time.perf_counter() - started) / repeats * 1000, 2)
    return {"layer_kernels_ms_forward_backward": timings}


def sparsefc_network(dataset, data_dir):
    """--lbfgs: the sparsefc network with its data set's values, its data (ML-1M random, ML-100K u1), full batch."""
    import lbfgs
    import training

    split = "u1" if dataset == "ml-100k" else "random"
    config = main_config(["--preset", "sparsefc", "--dataset", dataset, "--split", split, "--data-dir", str(data_dir)])
    with contextlib.redirect_stdout(sys.stderr):
        prepared = data_processor.prepare_run_data(config)
    model = training.build_kernel_model(config, prepared)
    return model, prepared, lbfgs.FullBatch(model, prepared.train, prepared.val), config


def time_lbfgs_objective(model, prepared, batch, rounds, repeats=3):
    """Seconds per objective-and-gradient evaluation: lbfgs.py's (products over the known ratings) against dense
    products, taking turns; the medians over the rounds, and their ratio."""
    import tensorflow as tf

    dense_inputs = tf.constant(prepared.train.toarray(), tf.float32)

    def dense_objective():
        predicted = tf.gather_nd(model(dense_inputs), batch.train_positions)
        return 0.5 * tf.reduce_sum(tf.square(batch.train_ratings - predicted)) + model.penalty()

    def with_gradient(objective):
        @tf.function
        def evaluate():
            with tf.GradientTape() as tape:
                loss = objective()
            return loss, tape.gradient(loss, model.trainable_variables)
        return evaluate

    evaluations = {"known_ratings": with_gradient(lambda: batch.objective(global_stage=False)),
                   "dense": with_gradient(dense_objective)}
    values = {name: float(evaluate()[0]) for name, evaluate in evaluations.items()}  # the first call traces
    seconds = {name: [] for name in evaluations}
    for _ in range(rounds):
        for name, evaluate in evaluations.items():
            started = time.perf_counter()
            for _ in range(repeats):
                evaluate()
            seconds[name].append((time.perf_counter() - started) / repeats)
    result = {f"{name}_seconds_per_evaluation": round(statistics.median(times), 3) for name, times in seconds.items()}
    result["speedup_known_ratings_vs_dense"] = round(
        result["dense_seconds_per_evaluation"] / result["known_ratings_seconds_per_evaluation"], 2)
    result["objective_relative_difference"] = float(np.abs(values["dense"] - values["known_ratings"])
                                                    / values["dense"])
    return result


def time_lbfgs_epochs(model, batch, rounds, iterations, solvers=("scipy", "tensorflow")):
    """An L-BFGS epoch of glocalk's pre-training with each solver (scipy's L-BFGS-B, float64 on the host; lbfgs.py's
    in TensorFlow) from the same weights, taking turns: medians of the seconds per epoch and iteration, evaluations
    per iteration, the objective's share of the epoch, the objective and validation RMSE reached; the ratio."""
    import lbfgs
    import tensorflow as tf

    start = model.get_weights()
    variables = lbfgs.stage_variables(model, global_stage=False)
    compute = lbfgs.flat_objective_and_gradient(batch, variables, global_stage=False)
    evaluations = tf.Variable(0)

    def counted(flat):
        evaluations.assign_add(1)
        return compute(flat)

    flat = lbfgs.flat_tensor(variables)
    compute(flat)  # traces
    started = time.perf_counter()
    compute(flat)
    seconds_per_evaluation = time.perf_counter() - started
    epochs = {solver: lbfgs.epoch_solver(solver, counted, variables) for solver in solvers}
    runs = {solver: [] for solver in solvers}
    for round_index in range(rounds + 1):  # round 0 traces the TensorFlow solver's step: not counted
        for solver, solve in epochs.items():
            model.set_weights(start)
            evaluations.assign(0)
            epoch = time_epoch(solve, variables, iterations, evaluations, seconds_per_evaluation)
            if round_index:
                runs[solver].append({**epoch, "val_rmse": float(batch.scores(False)["val_rmse_clip"])})
    model.set_weights(start)
    result = {solver: {key: round(statistics.median(run[key] for run in solver_runs), 4) for key in solver_runs[0]}
              for solver, solver_runs in runs.items()}
    result["speedup_tensorflow_vs_scipy"] = round(
        result["scipy"]["seconds_per_epoch"] / result["tensorflow"]["seconds_per_epoch"], 2)
    return {"lbfgs_epoch_iterations": iterations, "seconds_per_evaluation": round(seconds_per_evaluation, 4),
            **result}


def time_epoch(solve, variables, iterations, evaluations, seconds_per_evaluation):
    """One epoch of a solver from the variables' values: its seconds, evaluations and the objective reached."""
    objectives = []
    started = time.perf_counter()
    iterations_run = solve(variables, iterations, objectives.append)
    seconds = time.perf_counter() - started
    return {"seconds_per_epoch": seconds, "seconds_per_iteration": seconds / iterations_run,
            "evaluations_per_iteration": int(evaluations.numpy()) / iterations_run,
            "objective_share": int(evaluations.numpy()) * seconds_per_evaluation / seconds,
            "objective": objectives[-1]}


def lbfgs_report(dataset, data_dir, rounds, iterations):
    """--lbfgs on one data set: the objective's evaluation both ways and an epoch with each solver."""
    model, prepared, batch, config = sparsefc_network(dataset, data_dir)
    iterations = iterations or config["lbfgs_iterations"]
    return {**time_lbfgs_objective(model, prepared, batch, rounds),
            **time_lbfgs_epochs(model, batch, rounds, iterations)}


def benchmark_scale(name, data_dir, scale, epoch_fraction):
    """--synthetic: write the data set (unless DIR holds it), prepare it in a child process (its peak memory its
    own), then time a fraction of an epoch of the seed network on it, scaled up to a whole epoch."""
    import math

    import training

    data_dir = Path(data_dir)
    if not (data_dir / "SYNTHETIC.txt").is_file():  # in a child, so that drawing the data weighs on no peak below
        in_child(write_in_child, name, data_dir, scale)
    prep = in_child(prepare_in_child, name, data_dir)

    import tensorflow as tf

    utils.reset_peak_memory()
    started = time.perf_counter()
    prepared = data_processor.prepare_data(name, data_dir, "random", data_processor.SPLIT_SEED, "user")
    load_seconds = time.perf_counter() - started
    config = main_config(["--epochs", "1", "--precision", "float32"])
    network = training.build_model(config, prepared, "float32")
    train_data, _, _ = training.training_batches(config, prepared)
    batches = math.ceil(prepared.shape[0] / config["batch_size"])
    timed = max(2, math.ceil(batches * epoch_fraction))
    network.fit(train_data.take(1), epochs=1, verbose=0, shuffle=False)  # tracing, not timed
    started = time.perf_counter()
    network.fit(train_data.skip(1).take(timed), epochs=1, verbose=0, shuffle=False)
    seconds = time.perf_counter() - started
    return {"machine": machine_description(), "synthetic": name, "scale": scale, **prep,
            "epoch_seconds": round(seconds * batches / timed, 1),
            "epoch_timed_batches": timed, "epoch_batches": batches,
            "epoch_note": f"{timed} of {batches} batches of {config['batch_size']} user rows timed (after one "
                          f"untimed batch for tracing), scaled to the whole epoch; seed network, float32, no "
                          f"validation",
            "epoch_peak_memory_mb": round(process_peak_memory_mb(), 1),
            "epoch_peak_memory_note": "process peak while loading the data again and training",
            "load_seconds_in_epoch_process": round(load_seconds, 1), "tensorflow": tf.__version__,
            **time_recommendations(network, prepared)}


def process_peak_memory_mb():
    """The peak resident memory of this process's own memory: Linux' VmHWM, which a new program starts afresh
    (getrusage's ru_maxrss survives exec, so a spawned child would report its parent's size at the fork)."""
    return utils.resident_memory_mb("VmHWM") or utils.peak_memory_mb()


def time_recommendations(network, prepared, users=20000, count=10):
    """What recommend.py --all-users costs on this model shape: users per second over the first `users` users, and
    its extra memory (peak over resident memory before; Linux' peak counter is reset first)."""
    import recommendations

    users = np.arange(min(users, prepared.data.n_users))
    resident = utils.resident_memory_mb()
    reset = utils.reset_peak_memory()
    with tempfile.TemporaryDirectory() as scratch:
        written, seconds = recommendations.write_all_users(Path(scratch) / "recommendations.csv", network, prepared,
                                                           users, count)
    extra = utils.resident_memory_mb("VmHWM") - resident if reset and resident else None
    return {"recommend_users_per_second": round(written / seconds, 1),
            "recommend_seconds_per_10000_users": round(seconds / written * 10000, 1),
            "recommend_extra_peak_memory_mb": None if extra is None else round(extra, 1),
            "recommend_note": f"recommend.py --all-users --top {count} for the first {written:,} users, written to a "
                              f"CSV file; extra memory: peak resident memory over resident memory before"}


def in_child(target, *args):
    """target(*args, queue) in a fresh interpreter (its memory its own): what it puts on the queue."""
    import multiprocessing
    from queue import Empty

    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    child = context.Process(target=target, args=(*args, queue))
    child.start()
    while True:
        try:
            result = queue.get(timeout=5)
            break
        except Empty:
            if not child.is_alive():  # it failed: its traceback is above
                raise SystemExit(f"{target.__name__} failed (exit code {child.exitcode})") from None
    child.join()
    return result


def write_in_child(name, data_dir, scale, queue):
    import synthetic_data

    synthetic_data.write_synthetic(name, data_dir, scale)
    queue.put(True)


def prepare_in_child(name, data_dir, queue):
    """The data chain as a run uses it (--split random): seconds, peak memory and sizes, put on `queue`."""
    started = time.perf_counter()
    prepared = data_processor.prepare_data(name, data_dir, "random", data_processor.SPLIT_SEED, "user")
    queue.put({"prep_seconds": round(time.perf_counter() - started, 3),
               "peak_memory_mb": round(process_peak_memory_mb(), 1), "n_ratings": len(prepared.data.ratings),
               "n_users": prepared.data.n_users, "n_items": prepared.data.n_items})


def time_paths(data_dir, args):
    """Each training path --rounds times, the paths taking turns: seconds per epoch (median after the first),
    each run's peak memory and test metrics, and the ratios dense/fast."""
    result = {}
    with tempfile.TemporaryDirectory() as scratch:
        paths = {"fast": ["--training-path", "sparse", "--precision", "float32"],
                 "fast_bfloat16": ["--training-path", "sparse", "--precision", "bfloat16"],
                 "dense": ["--training-path", "dense", "--precision", "float32"]}
        seconds = {name: [] for name in paths}
        for _ in range(args.rounds):
            for name, flags in paths.items():
                metrics, epoch_seconds = train_path(name, flags, args.epochs, data_dir, scratch)
                seconds[name] += epoch_seconds[1:]
                result.setdefault(name, {"first_epoch_seconds": round(epoch_seconds[0], 3),
                                         "peak_memory_mb": metrics["peak_memory_mb"],  # the first round's
                                         "test_masked_rmse": round(metrics["test_masked_rmse"], 4),
                                         "test_rmse": round(metrics["test_rmse"], 4)})
    for name in paths:
        result[name]["seconds_per_epoch"] = round(statistics.median(seconds[name]), 3)
    for name in ("fast", "fast_bfloat16"):
        result[f"speedup_{name}_vs_dense"] = round(
            result["dense"]["seconds_per_epoch"] / result[name]["seconds_per_epoch"], 2)
        result[f"test_rmse_difference_{name}_vs_dense"] = round(
            abs(result[name]["test_rmse"] - result["dense"]["test_rmse"]), 4)
    return result


def seconds_of(function, *args):
    started = time.perf_counter()
    function(*args)
    return time.perf_counter() - started


def time_main(flags):
    """main.py with these flags, writing into a scratch folder: (its wall seconds, its metrics.json or None)."""
    with tempfile.TemporaryDirectory() as scratch:
        started = time.perf_counter()
        subprocess.run([sys.executable, MAIN, *flags, "--results-dir", scratch], check=True, stdout=subprocess.DEVNULL)
        metrics = Path(scratch) / "metrics.json"
        return round(time.perf_counter() - started, 1), json.loads(metrics.read_text()) if metrics.is_file() else None


def time_compare(rows):
    """main.py --compare ROWS on ML-100K u1, its baselines beside the networks then in turn: seconds, ratio."""
    data_dir = data_processor.resolve_data_dir("ml-100k", os.environ.get("ML100K_DIR"))
    flags = ["--compare", rows, "--dataset", "ml-100k", "--data-dir", str(data_dir), "--split", "u1"]
    seconds = {way: time_main([*flags, f"--{way}"])[0] for way in ("baselines-beside", "no-baselines-beside")}
    return {"machine": machine_description(), "compare": rows, "seconds": seconds,
            "in_turn_over_beside": round(seconds["no-baselines-beside"] / seconds["baselines-beside"], 2)}


def command_line():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=5, help="epochs per path and round (at least 2)")
    parser.add_argument("--rounds", type=int, default=3, help="times each path trains, the paths taking turns")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--full", action="store_true", help="also time a complete default run of main.py")
    parser.add_argument("--kernels", action="store_true",
                        help="also time the first and last layers with dense and with sparse kernels")
    parser.add_argument("--lbfgs", action="store_true",
                        help="time the kernel network's full-batch objective (known-rating vs dense products) and "
                             "profile an L-BFGS epoch")
    parser.add_argument("--lbfgs-iterations", type=int, default=0,
                        help="--lbfgs: L-BFGS iterations of the timed epochs (default: the preset's, 50 on ML-1M "
                             "and 5 on ML-100K)")
    parser.add_argument("--compare", metavar="ROWS", help="time main.py --compare ROWS on ML-100K u1 with the "
                        "baselines beside the networks and in turn")
    parser.add_argument("--synthetic", choices=["ml-20m", "netflix"],
                        help="write (unless --data-dir holds it) and time a synthetic data set of the real size")
    parser.add_argument("--scale", type=float, default=1.0, help="--synthetic: fraction of the real size")
    parser.add_argument("--epoch-fraction", type=float, default=0.02,
                        help="--synthetic: fraction of an epoch to time (scaled up to a whole epoch)")
    return parser


def main_benchmark(argv=None):
    parser = command_line()
    args = parser.parse_args(argv)
    if args.synthetic:
        if not args.data_dir:
            parser.error("--synthetic needs --data-dir DIR (where the synthetic files are written)")
        if not (0 < args.scale <= 1 and 0 < args.epoch_fraction <= 1):
            parser.error("--scale and --epoch-fraction must be in (0, 1]")
        print(json.dumps(benchmark_scale(args.synthetic, args.data_dir, args.scale, args.epoch_fraction)))
        return 0
    if args.compare:
        print(json.dumps(time_compare(args.compare)))
        return 0
    if args.epochs < 2 or args.rounds < 1 or args.lbfgs_iterations < 0:
        parser.error("--epochs must be at least 2, --rounds at least 1, --lbfgs-iterations at least 0")
    try:
        data_dir = data_processor.ensure_dataset("ml-1m", data_processor.resolve_data_dir("ml-1m", args.data_dir))
    except data_processor.DataError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2

    if args.lbfgs:
        result = {"machine": machine_description(), "rounds": args.rounds,
                  "ml-1m": lbfgs_report("ml-1m", data_dir, args.rounds, args.lbfgs_iterations)}
        ml100k_dir = data_processor.resolve_data_dir("ml-100k", os.environ.get("ML100K_DIR"))
        if (ml100k_dir / "u1.base").is_file():
            result["ml-100k"] = lbfgs_report("ml-100k", ml100k_dir, args.rounds, args.lbfgs_iterations)
        print(json.dumps(result))
        return 0
    result = {"machine": machine_description(), "epochs": args.epochs, "rounds": args.rounds,
              **{f"data_prep_seconds_{kind}": round(seconds_of(prepare, data_dir), 3) for kind in ("cold", "warm")},
              **time_paths(data_dir, args)}
    if args.kernels:
        result.update(time_layer_kernels(data_dir))
    if args.full:  # a complete default run
        seconds, metrics = time_main(["--data-dir", str(data_dir)])
        result.update(full_default_run_seconds=seconds,
                      full_default_run_metrics={key: value for key, value in metrics.items() if key != "config"})
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main_benchmark())
