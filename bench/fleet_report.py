"""What the fleet benchmark (``bench/fleet.py``) reports of its measures: the issue's
figures per model, the table with the goals, and the JSON document. The script imports it
by name: bench/ is the script's directory, so first on ``sys.path``."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def figures(result: dict[str, Any], idle: dict[str, Any]) -> dict[str, Any]:
    """The issue's figures of one model's measures."""
    conversion = result["one_conversion_s"]
    serving = result["serving"]
    steady = serving["builder_p50_ms"]
    lease = result["recovery"]["lease_s"]
    raw = {f: sum(result[f]["cpu_s"]) for f in ("alone", "fleet")}
    net = {f: raw[f] - 3 * idle["cpu_s"][f][result[f]["wall_s"]] for f in ("alone", "fleet")}
    return {
        "1_conversions_per_version": result["conversions"],
        "2_cpu_ratio_raw": raw["fleet"] / raw["alone"],
        "2_cpu_ratio_net_of_startup_and_idle": net["fleet"] / net["alone"],
        "2_cpu_s": {"raw": raw, "net": net, "idle_per_process": {
            f: idle["cpu_s"][f][result[f]["wall_s"]] for f in ("alone", "fleet")}},
        "3_late_ready_ratio": (result["late_ready_s"] - idle["startup_s"]) / conversion,
        "3_late_ready_raw_ratio": result["late_ready_s"] / conversion,
        "4_recovery_s": result["recovery"]["seconds"],
        "4_recovery_goal_s": lease + conversion,
        "4_takeover_s": result["recovery"]["takeover_s"],
        # What recovery took beyond the lease and the taker's own conversion (conversion
        # times vary by a second or two between runs on a shared machine).
        "4_beyond_lease_and_own_conversion_s": result["recovery"]["seconds"] - lease
        - result["recovery"]["taker_conversion_s"],
        # A first call also opens Envoy's connections to TF Serving and the recorder: the
        # builder's first call is its baseline.
        "5_late_first_call_vs_steady": serving["late_first_ms"][0] / steady,
        "5_late_first_call_vs_builders_first": serving["late_first_ms"][0]
        / serving["builder_first_ms"],
        "5_late_next_calls_vs_steady": max(serving["late_first_ms"][1:]) / steady,
        "5_late_median_vs_steady": serving["late_p50_ms"] / steady,
    }


def print_table(results: list[dict[str, Any]], lease_seconds: float) -> None:
    """One row of figures per model (each result's ``figures``), then the goals."""
    print(f"{'model':10} {'convs':>5} {'CPU raw':>8} {'CPU net':>8} {'late':>6} "
          f"{'late raw':>8} {'recover s':>10} {'goal s':>7} {'takeover s':>10} {'beyond s':>8} "
          f"{'1 conv s':>9} {'first':>6} {'vs b1':>6} {'next':>6} {'median':>6} {'ms':>6}")
    for r in results:
        f = r["figures"]
        print(f"{r['model']:10} {f['1_conversions_per_version']:>5} "
              f"{f['2_cpu_ratio_raw']:>7.2f}x {f['2_cpu_ratio_net_of_startup_and_idle']:>7.2f}x "
              f"{f['3_late_ready_ratio']:>5.2f}x {f['3_late_ready_raw_ratio']:>7.2f}x "
              f"{f['4_recovery_s']:>10.1f} {f['4_recovery_goal_s']:>7.1f} "
              f"{f['4_takeover_s']:>10.1f} {f['4_beyond_lease_and_own_conversion_s']:>8.2f} "
              f"{r['one_conversion_s']:>9.1f} {f['5_late_first_call_vs_steady']:>5.2f}x "
              f"{f['5_late_first_call_vs_builders_first']:>5.2f}x "
              f"{f['5_late_next_calls_vs_steady']:>5.2f}x "
              f"{f['5_late_median_vs_steady']:>5.2f}x {r['serving']['builder_p50_ms']:>6.2f}")
    print("goals: convs 1; CPU (fleet / three alone; net: less each process's idle CPU over "
          "its wall time) <= 0.4x; late (ready - idle start-up) / one conversion <= 0.2x "
          "(raw: ready / one conversion); recover (SIGKILL to published) <= lease "
          f"{lease_seconds:g} s + one conversion; takeover: SIGKILL to the taker converting; "
          "beyond: recover - lease - the taker's own conversion; the late joiner's first call "
          "(it opens Envoy's upstream connections), the slowest of its next ones, and its "
          "median, each against the builder's steady-state median (ms), and vs b1: its "
          "first call against the builder's first: the steady state (1x) from the first "
          "call")


def report(results: list[dict[str, Any]], idle: dict[str, Any], workdir: Path
           ) -> dict[str, Any]:
    """The JSON document: the idle baselines (wall-time keys as strings), every model's
    measures and figures, and where the run's files are."""
    return {"idle": {**idle, "cpu_s": {
        f: {str(w): c for w, c in v.items()} for f, v in idle["cpu_s"].items()}},
        "models": results, "workdir": str(workdir)}
