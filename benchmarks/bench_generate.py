"""Throughput and peak memory of the synthetic log generator.

    python benchmarks/bench_generate.py            # mini size (225 users, ~286k events)
    python benchmarks/bench_generate.py --full     # full size (22,278 users, ~26M events, ~12 GB)

Prints events/s (wall clock and per CPU-second), seconds, bytes and peak RSS of the parent and of
the largest worker process. The output goes to a temporary directory, deleted afterwards unless --keep.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import tempfile
from pathlib import Path

from sparkify_utils.synth.generate import generate_log

FULL_USERS = 22_278


def main() -> None:
    """Generate one log and print its benchmark figures."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=225)
    parser.add_argument("--full", action="store_true", help=f"full size: --users {FULL_USERS}")
    parser.add_argument("--workers", type=int, default=0, help="0 = all cores")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--out", default="", help="output path (.json, .json.gz or directory); default: temp")
    parser.add_argument("--keep", action="store_true", help="keep the generated log")
    args = parser.parse_args()
    users = FULL_USERS if args.full else args.users

    tmp = Path(tempfile.mkdtemp(prefix="bench-generate-"))
    out = Path(args.out) if args.out else tmp / "events.json"
    try:
        summary = generate_log(out, users=users, seed=args.seed, workers=args.workers, force=True)
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
            if args.out:
                shutil.rmtree(out, ignore_errors=True) if out.is_dir() else out.unlink(missing_ok=True)
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime
    print(f"users            {summary.users:,}")
    print(f"events           {summary.rows:,}")
    print(f"bytes            {summary.bytes:,} ({summary.bytes / 2**30:.2f} GiB)")
    print(f"seconds          {summary.seconds:.2f}")
    print(f"events/s (wall)  {summary.rows / summary.seconds:,.0f}")
    print(f"events/CPU-s     {summary.rows / cpu:,.0f} (CPU {cpu:.1f} s, parent + workers, incl. start-up)")
    # ru_maxrss is in KiB on Linux; for RUSAGE_CHILDREN it is the largest single child.
    print(f"peak RSS parent  {me.ru_maxrss / 1024:,.0f} MiB")
    print(f"peak RSS worker  {kids.ru_maxrss / 1024:,.0f} MiB (largest worker)")


if __name__ == "__main__":
    main()
