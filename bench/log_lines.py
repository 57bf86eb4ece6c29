"""What a log line costs the daemon and the reader of its stderr: a write a line against a few lines a write.

    python -m bench.log_lines [--lines 100000] [--rounds 3]

The daemon writes two JSON lines an email (`queued`, `sent`) to stderr, which in production
is a pipe read by another process (journald, docker, a supervisor). This logs N lines of
that shape through `engine.logs` into such a pipe, read line by line by a child process,
the two ways `LineHandler` can write: `wait=0` (a write and a flush a line, how the engine
logged before 2026-12-06) and the default wait (lines gathered, written at most 4,096 bytes
at a time), alternating, each in a new process. It prints the best of the rounds: the
writer's CPU a line (`time.process_time`: formatting and the writes) and the reader's (the
same clock around its reading loop). The last line is JSON with the ratio of the batched
writer's CPU to the baseline's.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

from engine.logs import LINE_WAIT, LOGGER, log, setup_logging

# The reader: a process that reads the pipe line by line, as a log collector does, and prints
# the CPU its reading took (its start-up left out).
READER = ("import sys, time\nstarted = time.process_time()\nfor line in sys.stdin.buffer:\n    pass\n"
          "print(time.process_time() - started)\n")


def one_run(lines: int, wait: float) -> tuple[float, float]:
    """(writer, reader) CPU seconds a line, logging `lines` lines with `wait` into a read pipe."""
    reader = subprocess.Popen([sys.executable, "-c", READER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True)
    assert reader.stdin is not None
    # Line-buffered text over the pipe, as the interpreter opens stderr.
    stream = open(reader.stdin.fileno(), "w", buffering=1, closefd=False)  # noqa: SIM115 (closed below)
    setup_logging("info", stream, wait)
    started = time.process_time()
    for number in range(lines):
        log("sent", funnel="first-marathon", enrollment=number, subscriber=number,
            delivery=number * 3, step="nurture-1", attempts=1)
    LOGGER.handlers[0].flush()
    writer = time.process_time() - started
    LOGGER.handlers[0].close()
    stream.close()
    reader.stdin.close()
    assert reader.stdout is not None
    reading = float(reader.stdout.read())
    reader.wait()
    return writer / lines, reading / lines


def main() -> None:
    """Alternate the two ways in new processes; print the best of each."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--lines", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--one", type=float, help=argparse.SUPPRESS)  # a child: one run with this wait
    args = parser.parse_args()
    if args.one is not None:
        print(json.dumps(one_run(args.lines, args.one)))
        return
    best: dict[str, tuple[float, float]] = {}
    for _ in range(args.rounds):
        for name, wait in (("each", 0.0), ("batched", LINE_WAIT)):
            # A new process each run: neither way inherits the other's heap or handler.
            done = subprocess.run([sys.executable, "-m", "bench.log_lines", "--lines", str(args.lines),
                                   "--one", str(wait)], capture_output=True, text=True, check=True)
            writer, reader = json.loads(done.stdout.splitlines()[-1])
            old = best.get(name, (writer, reader))
            best[name] = (min(old[0], writer), min(old[1], reader))
    print(f"{args.lines:,} lines into a pipe read line by line, best of {args.rounds} rounds, "
          "microseconds of CPU a line")
    for name, label in (("each", "a write a line (wait=0)"), ("batched", f"gathered (wait={LINE_WAIT})")):
        writer, reader = best[name]
        print(f"  {label:26} writer {writer * 1e6:6.2f}   reader {reader * 1e6:6.2f}")
    print(json.dumps({"lines": args.lines, "rounds": args.rounds,
                      "each_writer_us": round(best["each"][0] * 1e6, 2),
                      "each_reader_us": round(best["each"][1] * 1e6, 2),
                      "batched_writer_us": round(best["batched"][0] * 1e6, 2),
                      "batched_reader_us": round(best["batched"][1] * 1e6, 2),
                      "ratio": round(best["batched"][0] / best["each"][0], 3)}))


if __name__ == "__main__":
    main()
