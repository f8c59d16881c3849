"""Search throughput with 1 and 2 local workers, and what the latency lock costs.

Run by hand (not in CI); prints figures. Each configuration runs the default
study spec (teacher all-MiniLM-L6-v2, built-in corpus) with --no-final in a
fresh output folder, side by side in one invocation so the ratios compare
like with like on a shared machine:

    .venv/bin/python bench/throughput.py --trials 10 --workers 1,2
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna
from optuna.trial import TrialState

from paretokd.records import TrialRecord
from paretokd.search.storage import default_storage


def run(trials: int, workers: int, out: Path) -> dict[str, float]:
    """One search; returns wall time, trials/hour and the time trials waited for the lock."""
    cmd = [sys.executable, "-m", "paretokd.cli", "run", "--budgets", "10ms,20ms"]
    cmd += ["--trials", str(trials), "--workers", str(workers), "--no-final", "--quiet"]
    cmd += ["--out", str(out), "--study-name", f"throughput-w{workers}"]
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    study = optuna.load_study(study_name=f"throughput-w{workers}", storage=default_storage(out))
    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    search_s = sum(t.duration.total_seconds() for t in done if t.duration)
    waited = sum(TrialRecord.read(t).latency.lock_wait_s or 0.0 for t in done)
    return {
        "trials": len(done),
        "wall_s": wall,
        "trials_per_hour": 3600 * len(done) / wall,
        "trial_s_total": search_s,
        "lock_wait_s": waited,
        "lock_share": waited / search_s if search_s else 0.0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--workers", default="1,2")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        results = {}
        for w in (int(x) for x in args.workers.split(",")):
            results[w] = run(args.trials, w, Path(tmp) / f"w{w}")
            r = results[w]
            print(
                f"workers={w}: {r['trials']:.0f} trials in {r['wall_s']:.0f} s "
                f"= {r['trials_per_hour']:.0f} trials/h; lock waits {r['lock_wait_s']:.1f} s "
                f"({100 * r['lock_share']:.1f}% of trial time)",
                flush=True,
            )
        if 1 in results:
            for w, r in results.items():
                if w != 1:
                    ratio = r["trials_per_hour"] / results[1]["trials_per_hour"]
                    print(f"throughput ratio {w} workers / 1 worker: {ratio:.2f}")


if __name__ == "__main__":
    main()
