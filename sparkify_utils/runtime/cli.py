"""The ``sparkify`` command: run the notebooks, generate data, check calibration, serve the dashboard."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from sparkify_utils import artifacts, paths


def _run(args: argparse.Namespace) -> int:
    from sparkify_utils.runtime.runner import run

    run_dir = run(
        args.params,
        args.param,
        args.only,
        cell_timeout=args.cell_timeout,
        force=args.force,
        shared_spark=args.shared_spark,
    )
    print(f"\nDone. Results: {run_dir}")
    print(f"  executed notebooks: {run_dir / artifacts.EXECUTED.name}")
    print(f"  latest run link:    {paths.latest_link()}")
    print("  dashboard:          make dashboard   (or: sparkify dashboard)")
    return 0


def _generate(args: argparse.Namespace) -> int:
    from sparkify_utils.synth.generate import generate_log

    summary = generate_log(
        args.out,
        users=args.users,
        start=args.start,
        end=args.end,
        seed=args.seed,
        workers=args.workers,
        force=args.force,
    )
    rate = summary.rows / summary.seconds if summary.seconds else float("nan")
    print(
        f"Wrote {summary.rows:,} events of {summary.users:,} users to {summary.path} "
        f"({summary.bytes / 1e6:,.1f} MB) in {summary.seconds:.1f} s ({rate:,.0f} events/s)"
    )
    return 0


def _calibrate(args: argparse.Namespace) -> int:
    from sparkify_utils.synth.calibration import calibration_report, format_report

    rows = calibration_report(args.input or None, users=args.users, seed=args.seed)
    print(format_report(rows))
    return 0 if all(row.passed for row in rows) else 1


def _dashboard(args: argparse.Namespace) -> int:
    from sparkify_utils.report.server import serve

    return serve(run_dir=args.run_dir, port=args.port)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``sparkify`` command."""
    parser = argparse.ArgumentParser(prog="sparkify", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="execute the notebook sequence into outputs/runs/<run-id>/")
    run.add_argument("--params", help="YAML parameter file (default: params/default.yaml)")
    run.add_argument(
        "-p", "--param", action="append", default=[], metavar="KEY=VALUE", help="override one parameter (repeatable)"
    )
    run.add_argument("--only", nargs="+", metavar="NOTEBOOK", help=f"run only these of {artifacts.STEPS}")
    run.add_argument("--cell-timeout", type=int, default=3600, help="seconds per cell before failing")
    run.add_argument(
        "--force",
        action="store_true",
        help="run every step, even those an earlier run computed from the same input, parameters and code",
    )
    run.add_argument(
        "--shared-spark",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="with a local spark_master, one Spark Connect server for the whole run instead of a "
        "Spark driver per notebook (default: %(default)s)",
    )
    run.set_defaults(func=_run)

    gen = sub.add_parser("generate", help="write a synthetic Sparkify-format event log")
    gen.add_argument("--users", type=int, default=225, help="users with a userId (22278 = full size)")
    gen.add_argument("--start", default="2018-10-01", help="first day (UTC), YYYY-MM-DD")
    gen.add_argument("--end", default="2018-12-03", help="last day (UTC), YYYY-MM-DD")
    gen.add_argument("--seed", type=int, default=42)
    gen.add_argument(
        "--out",
        default=str(paths.default_input_path()),
        help="a .json file, a .json.gz file, or a directory for part files",
    )
    gen.add_argument("--workers", type=int, default=0, help="processes (0 = all cores)")
    gen.add_argument("--force", action="store_true", help="overwrite an existing output")
    gen.set_defaults(func=_generate)

    cal = sub.add_parser("calibrate", help="compare a log's statistics with the real mini dataset")
    cal.add_argument("--input", default="", help="log to check (default: generate one with --users/--seed)")
    cal.add_argument("--users", type=int, default=225, help="users of the generated log")
    cal.add_argument("--seed", type=int, default=42, help="seed of the generated log")
    cal.set_defaults(func=_calibrate)

    dash = sub.add_parser("dashboard", help="serve the churn dashboard with Voila on 127.0.0.1")
    dash.add_argument("--run-dir", default="", help="run to show (default: outputs/latest)")
    dash.add_argument("--port", type=int, default=8866)
    dash.set_defaults(func=_dashboard)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``sparkify`` console script."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, RuntimeError, FileNotFoundError) as exc:
        # Known, user-fixable problems get one clear line, not a traceback.
        print(f"sparkify {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        # One line instead of a traceback; the runner's message says what became of the run.
        print(f"sparkify {args.command}: {exc or 'interrupted'}", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
