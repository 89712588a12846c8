"""Blend finished runs: a linear blend fitted on their validation predictions, scored on the test ratings.

    python3 blend.py RUN_DIR [RUN_DIR ...] [--output results/blend] [--refit] [--data-dir PATH]

Each RUN_DIR is a finished run of main.py or a baseline's folder (python3 baselines.py --results-dir DIR, or the
baselines of main.py --compare). Folders of --repeats (run-1, run-2, ...) blend split by split, run-1 with run-1
and so on, and the report adds mean ± std over the splits. Writes blend.json to --output (blending.py says how).
With --refit, the weights fitted on the members' validation predictions score their refits' test predictions
(each RUN_DIR/refit, from main.py --refit or baselines.py --refit): the refit protocol's blend.
--data-dir (--ratings-file for your own file) says where the data is, if it moved since the members were
trained: any copy of the same ratings, in any line order or layout; other ratings are refused.
"""

import argparse
import sys
from pathlib import Path

import numpy as np

import utils  # noqa: F401  first of the project's modules: it refuses a Python older than 3.11, clearly
import blending
import data_processor
import reporting
from config import ConfigError


def splits_of(folders):
    """[[member folders of split 1], ...]: run-<i> of every folder when all hold runs of --repeats, else one."""
    runs = [sorted(Path(folder).glob("run-*"), key=lambda path: int(path.name[4:])) for folder in folders]
    if all(runs) and len({len(found) for found in runs}) == 1:
        return [list(group) for group in zip(*runs)]
    return [list(folders)]


def print_report(report):
    print(f"\n| member | weight | val RMSE (global) | test RMSE (global) | test masked RMSE (per-user) |\n"
          f"|---|---|---|---|---|")
    for row in report["members"]:
        print(f"| {row['member']} | {row['weight']:.3f} | {row['val_rmse']:.4f} | {row['test_rmse']:.4f} | "
              f"{row['test_masked_rmse']:.4f} |")
    result = report["blend"]
    print(f"| **blend** (intercept {report['intercept']:.3f}, ridge {report['ridge_alpha']:g}) | | "
          f"{result['val_rmse']:.4f} (fitted) | **{result['test_rmse']:.4f}** | {result['test_masked_rmse']:.4f} |")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dirs", nargs="+", type=Path, help="results folders of finished runs or baselines")
    parser.add_argument("--output", type=Path, default=reporting.PROJECT_DIR / "results" / "blend")
    parser.add_argument("--refit", action="store_true",
                        help="apply the weights to the members' refits (RUN_DIR/refit) on the test ratings")
    reporting.add_moved_data_flags(parser)
    args = parser.parse_args(argv)
    folders = [folder.resolve() for folder in args.run_dirs]
    repeated = next((folder for index, folder in enumerate(folders) if folder in folders[:index]), None)
    if repeated:
        parser.error(f"{repeated} is given twice: a blend takes each run once")
    try:
        reports, data = [], {}
        for index, folders in enumerate(splits_of(args.run_dirs)):
            members = [blending.load_member(folder, args.refit) for folder in folders]
            source = (members[0].config["dataset"], members[0].config["data_dir"])
            data[source] = data.get(source) or blending.load_data(members[0], reporting.moved_data(args))
            reports.append(blending.blend(members, data[source])[0])
            print(f"\nSplit {index + 1}: blend of {len(members)} members on {reports[-1]['n_val']:,} validation "
                  f"ratings, scored on {reports[-1]['n_test']:,} test ratings"
                  + (" by the members' refits on train + validation" if args.refit else ""))
            print_report(reports[-1])
        output = reporting.prepare_results_dir(args.output)
    except (ConfigError, data_processor.DataError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    tests = [report["blend"]["test_rmse"] for report in reports]
    summary = {"refit": args.refit, "test_rmse_mean": float(np.mean(tests)),
               "test_rmse_std": float(np.std(tests, ddof=1)) if len(tests) > 1 else 0.0, "splits": reports}
    utils.save_json(output / "blend.json", summary)
    print(f"\nBlend test RMSE (global) over {len(tests)} split(s): {summary['test_rmse_mean']:.4f} ± "
          f"{summary['test_rmse_std']:.4f} (blend.json in {output})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
