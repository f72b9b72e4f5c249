"""wrk on loopback: run it (optionally paced by a delay() script) and read its --latency report."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile


def _ms(text: str, pct: str) -> float:
    match = re.search(rf"^\s*{pct}%\s+([\d.]+)(us|ms|s)\s*$", text, re.MULTILINE)
    assert match, text
    value, unit = float(match.group(1)), match.group(2)
    return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value


def run(
    url: str,
    *,
    threads: int = 1,
    connections: int = 5,
    seconds: int = 20,
    pause_ms: float | None = None,
) -> dict[str, float]:
    """Latency percentiles (ms), requests/s and non-2xx answers; pause_ms paces each connection
    (wrk's delay() hook) for a steady rate instead of as fast as possible."""
    wrk = shutil.which("wrk")
    if wrk is None:
        raise SystemExit("wrk is missing: apt-get install wrk (make bench installs it)")
    command = [wrk, f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency"]
    script = None
    if pause_ms is not None:
        with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as handle:
            handle.write(f"function delay()\n  return {pause_ms:.3f}\nend\n")
        script = handle.name
        command += ["-s", script]
    try:
        text = subprocess.run([*command, url], capture_output=True, text=True, check=True).stdout
    finally:
        if script:
            os.unlink(script)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    return {
        "requests_per_s": rps,
        "p50_ms": _ms(text, "50"),
        "p90_ms": _ms(text, "90"),
        "p99_ms": _ms(text, "99"),
        "non_2xx": int(errors.group(1)) if errors else 0,
    }
