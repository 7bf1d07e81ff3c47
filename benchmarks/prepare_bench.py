"""Time and peak memory of preparing one epoch of character windows: the course's way and rnnlab's.

    python benchmarks/prepare_bench.py [--text PATH] [--chars 1000000] [--window 40] [--step 1] [--batch-size 128]

Both approaches start from the same string (Alice in Wonderland repeated to --chars
characters) and run one after the other, each in a fresh subprocess of this script:

  course   the seed notebook's code: a Python loop collecting the window strings, then
           a Python loop filling dense boolean arrays X (windows, window, vocab) and y
           (windows, vocab).
  library  rnnlab.data.prepare: CharVocabulary, encode, then every batch of
           OneHotWindows built once (x float32 one-hot, y int32 ids), i.e. the work
           that feeds one epoch of training.

Memory is the peak resident set size (getrusage ru_maxrss, the kernel's high-water
mark) minus the resident size just before the work, after the imports and the text
are in place. RSS counts everything the work allocates: numpy buffers, the course's
million Python strings, the allocator's overhead. It costs nothing while the work
runs, so the times come from the same runs; tracemalloc would slow the course's
Python loops by several times and miss memory allocated outside Python's hooks.
Times are wall clock and CPU time (user + system) of the work: on a shared machine
the CPU time is the steadier figure, as other processes stretch the wall clock.
Linux only (the baseline is read from /proc/self/statm).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_TEXT = ROOT.parent / "shared" / "data" / "alice_in_wonderland.txt"
MB = 1 << 20


def course(text: str, window: int, step: int, batch_size: int) -> dict:
    """The seed notebook's preparation, as written there (SEQLEN = window, STEP = step)."""
    chars = set([c for c in text])
    nb_chars = len(chars)
    char2index = {c: i for i, c in enumerate(chars)}
    input_chars, label_chars = [], []
    for i in range(0, len(text) - window, step):
        input_chars.append(text[i: i + window])
        label_chars.append(text[i + window])
    X = np.zeros((len(input_chars), window, nb_chars), dtype=bool)
    y = np.zeros((len(input_chars), nb_chars), dtype=bool)
    for i, input_char in enumerate(input_chars):
        for j, ch in enumerate(input_char):
            X[i, j, char2index[ch]] = 1
        y[i, char2index[label_chars[i]]] = 1
    return {"windows": len(X), "vocab": nb_chars, "array_mb": (X.nbytes + y.nbytes) / MB}


def library(text: str, window: int, step: int, batch_size: int) -> dict:
    """Vocabulary, ids, and every batch of one shuffled epoch, each dropped after use as fit would."""
    from rnnlab.data.prepare import CharVocabulary, OneHotWindows

    vocab = CharVocabulary.from_text(text)
    ids = vocab.encode(text)
    batches = OneHotWindows(ids, window, vocab.size, batch_size=batch_size, step=step, shuffle=True, seed=0)
    windows = 0
    for index in range(len(batches)):
        x, y = batches[index]
        windows += len(y)
    return {"windows": windows, "vocab": vocab.size, "array_mb": (ids.nbytes + batches.order.nbytes) / MB}


APPROACHES = {"course": course, "library": library}
LABELS = {"course": "course: Python loops into dense bool X, y",
          "library": "rnnlab: CharVocabulary + OneHotWindows, every batch once"}


def resident_bytes() -> int:
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def measure(approach: str, args: argparse.Namespace) -> dict:
    """Run one approach in this process; the caller makes it a fresh one."""
    import keras  # noqa: F401  both rows pay for the same imports before the baseline
    import rnnlab.data.prepare  # noqa: F401

    text = args.text.read_text(encoding="utf-8")
    text = (text * (args.chars // len(text) + 1))[:args.chars]
    baseline = resident_bytes()
    before = resource.getrusage(resource.RUSAGE_SELF)
    start = time.perf_counter()
    result = APPROACHES[approach](text, args.window, args.step, args.batch_size)
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return {**result, "seconds": seconds, "cpu_seconds": cpu, "peak_mb": (after.ru_maxrss * 1024 - baseline) / MB}


def run_fresh(approach: str, args: argparse.Namespace) -> dict:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")])),
           "TF_CPP_MIN_LOG_LEVEL": "3"}
    cmd = [sys.executable, __file__, "--approach", approach, "--text", str(args.text), "--chars", str(args.chars),
           "--window", str(args.window), "--step", str(args.step), "--batch-size", str(args.batch_size)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"{approach} failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def table(results: dict[str, dict], args: argparse.Namespace) -> str:
    course, library = results["course"], results["library"]
    rows = ["| approach | windows | vocab | wall time (s) | CPU time (s) | peak memory (MB) |",
            "| --- | ---: | ---: | ---: | ---: | ---: |"]
    rows += [f"| {LABELS[name]} | {r['windows']:,} | {r['vocab']} | {r['seconds']:.2f} | {r['cpu_seconds']:.2f} "
             f"| {r['peak_mb']:,.1f} |" for name, r in results.items()]
    rows.append(f"| ratio | | | course/library: **{course['seconds'] / library['seconds']:.1f}x** "
                f"| course/library: **{course['cpu_seconds'] / library['cpu_seconds']:.1f}x** "
                f"| library/course: **{library['peak_mb'] / course['peak_mb']:.4f}** |")
    head = (f"{args.chars:,} characters of {args.text.name}, window {args.window}, step {args.step}, "
            f"batch size {args.batch_size}; peak memory = peak RSS minus RSS before the work")
    return head + "\n\n" + "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--text", type=Path, default=DEFAULT_TEXT)
    parser.add_argument("--chars", type=int, default=1_000_000, help="repeat the text to this many characters")
    parser.add_argument("--window", type=int, default=40)
    parser.add_argument("--step", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--approach", choices=APPROACHES, help=argparse.SUPPRESS)  # the child's side
    args = parser.parse_args()
    if args.approach:
        print(json.dumps(measure(args.approach, args)))
        return
    if not args.text.is_file():
        sys.exit(f"{args.text} is not here; pass --text PATH")
    results = {name: run_fresh(name, args) for name in APPROACHES}
    if results["course"]["windows"] != results["library"]["windows"]:
        sys.exit(f"the approaches made different numbers of windows: {results}")
    print(table(results, args))


if __name__ == "__main__":
    main()
