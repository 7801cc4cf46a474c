"""Measure parse and serialize throughput of the IRIS models against the json module.

Run from the repository root:

    .venv/bin/python benchmarks/models.py [--seconds 2.0]

Two messages are measured: IRIS's published OrderRequest (the corrected copy
in tests/data) and an OrderResult carrying a 200 KB base64 report. For each,
the script times ``json.loads``/``json.dumps`` of the same bytes and the
models' parse (``parse_order_request`` / ``parse_order_result``) and write
(``to_json_bytes``) in the same run, and prints messages/s, MB/s and the
ratio of the model's time to the json module's. The target is that parsing an
OrderResult costs at most 2x ``json.loads``.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import platform
import random
import sys
import time
import warnings
from pathlib import Path
from typing import Callable

from iris_transport import models

DATA = Path(__file__).resolve().parent.parent / "tests" / "data" / "iris-examples"
REPORT_SIZE = 200 * 1024
PARSE_TARGET = 2.0


def order_result_with_report() -> bytes:
    """Return the published OrderResult with a 200 KB base64 report as its Content."""
    document = json.loads((DATA / "order-result.json").read_bytes())
    report = random.Random(0).randbytes(REPORT_SIZE * 3 // 4)
    document["ResultsDocument"]["Content"] = base64.b64encode(report).decode("ascii")
    return json.dumps(document).encode()


def time_per_call(function: Callable[[], object], seconds: float) -> float:
    """Return the best mean seconds per call over five rounds of about ``seconds`` / 5 each."""
    calls = 1
    while True:
        start = time.perf_counter()
        for _ in range(calls):
            function()
        elapsed = time.perf_counter() - start
        if elapsed > 0.05:
            break
        calls *= 2
    per_round = max(1, int(calls * (seconds / 5) / elapsed))

    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(per_round):
            function()
        best = min(best, (time.perf_counter() - start) / per_round)
    return best


def report(label: str, size: int, seconds_per_call: float, baseline: float | None) -> None:
    rate = 1 / seconds_per_call
    megabytes = rate * size / 1e6
    ratio = f"{seconds_per_call / baseline:6.2f}x" if baseline else "  1.00x"
    print(f"  {label:<28} {rate:>10,.0f} msg/s {megabytes:>9.1f} MB/s {ratio}")


def measure(name: str, body: bytes, parse: Callable[[bytes], object], seconds: float) -> float:
    model = parse(body)
    document = json.loads(body)
    canonical = models.to_json_bytes(model)

    loads = time_per_call(lambda: json.loads(body), seconds)
    model_parse = time_per_call(lambda: parse(body), seconds)
    dumps = time_per_call(lambda: json.dumps(document).encode(), seconds)
    model_write = time_per_call(lambda: models.to_json_bytes(model), seconds)

    print(f"{name}: {len(body):,} bytes in, {len(canonical):,} bytes canonical")
    report("json.loads", len(body), loads, None)
    report("parse (model)", len(body), model_parse, loads)
    report("json.dumps", len(canonical), dumps, None)
    report("to_json_bytes (model)", len(canonical), model_write, dumps)
    return model_parse / loads


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="time spent on each measurement, in seconds")
    arguments = parser.parse_args()

    print(f"Python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}")
    print("ratio: the model's time per message divided by the json module's\n")

    warnings.simplefilter("error", models.UnknownCodeWarning)
    order_request = (DATA / "order-request.corrected.json").read_bytes()
    measure("OrderRequest (published NW example)", order_request, models.parse_order_request, arguments.seconds)
    print()
    ratio = measure("OrderResult with a 200 KB base64 report", order_result_with_report(), models.parse_order_result, arguments.seconds)

    verdict = "met" if ratio <= PARSE_TARGET else "NOT met"
    print(f"\nTarget (OrderResult parse <= {PARSE_TARGET}x json.loads): {verdict} ({ratio:.2f}x)")
    return 0 if ratio <= PARSE_TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
