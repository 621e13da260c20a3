"""bench/run's statistics (bench/benchstats.py): median ratio of the rounds, min–max spread, the
`noisy` flag, `bench/run --compare` on synthetic result files (new and old layout, rows missing on
one side), and one real short row run end to end (`--only python --quick`)."""
import json
import os
import pathlib
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]

sys.path.insert(0, str(REPO / "bench"))
import benchstats  # noqa: E402

RUN = REPO / "bench" / "run"


def test_the_row_ratio_is_the_median_of_the_round_ratios_not_the_ratio_of_medians():
    # Round ratios 2.0, 0.5, 1.0: median 1.0, while the ratio of the medians is 9 / 8.
    summary = benchstats.summarize([{"asya": 10, "baseline": 5, "load": 1.0},
                                    {"asya": 4, "baseline": 8, "load": 3.0},
                                    {"asya": 9, "baseline": 9, "load": 2.0}])
    assert [r["ratio"] for r in summary["rounds"]] == [2.0, 0.5, 1.0]
    assert summary["ratio"] == 1.0
    assert summary["asya"] == 9 and summary["baseline"] == 8  # medians of each side
    assert (summary["ratio_min"], summary["ratio_max"]) == (0.5, 2.0)
    assert summary["spread_percent"] == [50.0, 100.0]
    assert summary["noisy"] is True
    assert summary["load_average"] == [1.0, 3.0]


@pytest.mark.parametrize("ratios,noisy", [
    ([1.0, 1.0, 1.0], False),
    ([0.80, 1.0, 1.2], False),   # −20 % / +20 %
    ([0.76, 1.0, 1.25], False),  # at the edge: −24 % / +25 %
    ([0.74, 1.0, 1.0], True),    # −26 %
    ([1.0, 1.0, 1.26], True),    # +26 %
])
def test_noisy_when_either_side_of_the_spread_is_wider_than_25_percent(ratios, noisy):
    summary = benchstats.summarize([{"asya": r, "baseline": 1.0} for r in ratios])
    assert summary["ratio"] == 1.0
    assert summary["noisy"] is noisy, summary["spread_percent"]


def test_rounds_without_a_figure_are_left_out_and_an_empty_row_has_no_ratio():
    summary = benchstats.summarize([{"asya": 2.0, "baseline": 1.0}, {"asya": None, "baseline": 1.0},
                                    {"asya": 4.0, "baseline": 1.0}])
    assert summary["ratio"] == 3.0
    empty = benchstats.summarize([])
    assert empty["ratio"] is None and empty["noisy"] is False and empty["spread_percent"] is None


def new_row(row_id, ratios, higher=True):
    rounds = [{"asya": r * 100.0, "baseline": 100.0, "ratio": r, "load": 1.5} for r in ratios]
    summary = benchstats.summarize(rounds)
    return {"id": row_id, "higher_is_better": higher, "asya": summary["asya"],
            "baseline": summary["baseline"], "ratio": summary["ratio"],
            "ratio_min": summary["ratio_min"], "ratio_max": summary["ratio_max"],
            "spread_percent": summary["spread_percent"], "noisy": summary["noisy"],
            "rounds": rounds}


def write(path, rows, run=None):
    path.write_text(json.dumps({"machine": {"cpu": "x", "cores": 2},
                                "run": run or {"date": "2026-12-06T10:00:00Z", "rounds": 3},
                                "rows": rows}))
    return str(path)


def compare(*files):
    done = subprocess.run([sys.executable, str(RUN), "--compare", *files], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]]
            for line in done.stdout.splitlines() if line.startswith("| ") and "---" not in line}


def test_compare_prints_each_row_before_and_after_with_spreads(tmp_path):
    before = write(tmp_path / "a.json", [new_row("sqlite_hop_c1", [0.20, 0.25, 0.22]),
                                         new_row("gateway_p99", [5.0, 6.0, 5.5], higher=False),
                                         new_row("only_before", [1.0, 1.0, 1.0])])
    after = write(tmp_path / "b.json", [new_row("sqlite_hop_c1", [0.50, 0.55, 0.40]),
                                        new_row("gateway_p99", [5.8, 6.6, 6.0], higher=False),
                                        new_row("only_after", [2.0, 1.0, 3.0])])
    rows = compare(before, after)
    assert rows["sqlite_hop_c1"][:4] == ["0.22×", "0.20–0.25× (−9/+14 %)", "0.50×",
                                         "0.40–0.55× (−20/+10 %)"]
    assert rows["sqlite_hop_c1"][4].startswith("+127 % (better")
    assert "within the spreads" not in rows["sqlite_hop_c1"][4]
    # Lower is better: a rise is worse; the spreads (5.0–6.0 and 5.8–6.6) overlap.
    assert rows["gateway_p99"][4] == "+9 % (worse, within the spreads)"
    assert rows["only_before"][2:4] == ["—", "not in this file"]
    assert rows["only_after"][:2] == ["—", "not in this file"]
    assert rows["only_after"][3].endswith("noisy")  # 1.0–3.0 around 2.0: −50/+50 %


def test_compare_prints_the_seconds_of_each_section_before_and_after(tmp_path):
    before = write(tmp_path / "a.json", [], run={"rounds": 3, "seconds": 210.0, "section_seconds": {
        "socket": 27.0, "join": 161.0, "idle": 22.0}})
    after = write(tmp_path / "b.json", [], run={"rounds": 3, "seconds": 110.0, "section_seconds": {
        "socket": 24.0, "join": 80.5, "batch": 5.5}})
    rows = compare(before, after)
    assert rows["section"] == ["before s", "after s", "change"]
    assert rows["socket"] == ["27", "24", "-11 %"]
    assert rows["join"] == ["161", "80", "-50 %"]
    assert rows["batch"] == ["—", "6", "—"]  # in one file only
    assert rows["idle"] == ["22", "—", "—"]
    # Files without the field (written before it existed) print no section table.
    old = write(tmp_path / "old.json", [], run={"rounds": 3})
    assert "section" not in compare(old, old)


def test_compare_reads_an_older_result_file_without_rounds_as_one_round(tmp_path):
    old = write(tmp_path / "old.json", [
        {"id": "sqlite_hop_c1", "asya": 2873.0, "baseline": 11836.0, "ratio": 0.243,
         "higher_is_better": True, "note": "..."},
        {"id": "payload_10mb", "asya": None, "baseline": 3.9, "ratio": None,
         "higher_is_better": False, "note": "measurement failed"},
        # The older rabbitmq_hop layout: rounds with raw_loop instead of baseline.
        {"id": "rabbitmq_hop", "asya": 1431.0, "baseline": 1916.0, "ratio": 0.747,
         "higher_is_better": True, "rounds": [
             {"asya": 1400.0, "raw_loop": 2000.0, "raw_forward": 1.0, "load": 1.0},
             {"asya": 1500.0, "raw_loop": 1900.0, "raw_forward": 1.0, "load": 1.0},
             {"asya": 1450.0, "raw_loop": 1800.0, "raw_forward": 1.0, "load": 1.0}]}],
        run={"date": "2026-11-29T11:20:44Z", "seconds": 137.0})
    new = write(tmp_path / "new.json", [new_row("sqlite_hop_c1", [0.30, 0.32, 0.31]),
                                        new_row("payload_10mb", [10.0, 11.0, 12.0], higher=False)])
    rows = compare(old, new)
    assert rows["sqlite_hop_c1"][:2] == ["0.24×", "1 round"]
    assert rows["sqlite_hop_c1"][4].startswith("+28 % (better")
    assert rows["payload_10mb"][:2] == ["—", "not measured"]
    assert rows["payload_10mb"][4] == "—"
    assert rows["rabbitmq_hop"][0] == "0.79×"  # median of 0.70, 0.79, 0.81
    assert rows["rabbitmq_hop"][2:4] == ["—", "not in this file"]


def test_compare_names_a_file_that_is_not_a_result(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2]")
    good = write(tmp_path / "good.json", [])
    done = subprocess.run([sys.executable, str(RUN), "--compare", str(bad), good],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "bad.json" in done.stderr and "rows" in done.stderr


def test_fewer_than_three_rounds_is_refused():
    done = subprocess.run([sys.executable, str(RUN), "--rounds", "2"], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 2
    assert "at least 3 rounds" in done.stderr


def test_one_real_row_end_to_end_has_rounds_median_and_spread(tmp_path):
    """The python row needs no build: bench/run starts the Python runtimes itself."""
    out = tmp_path / "python.json"
    done = subprocess.run([sys.executable, str(RUN), "--only", "python", "--quick", "--out",
                           str(out)], capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, ASYA_BENCH_ROUNDS="3"))
    assert done.returncode == 0, done.stderr
    report = json.loads(out.read_text())
    assert report["run"]["rounds"] == 3 and report["run"]["only"] == ["python"]
    row = next(r for r in report["rows"] if r["id"] == "python_runtime_rps")
    assert row["asya"] is not None, row["note"]
    assert len(row["rounds"]) == 3
    ratios = sorted(r["ratio"] for r in row["rounds"])
    assert row["ratio"] == pytest.approx(ratios[1], abs=0.001)
    assert (row["ratio_min"], row["ratio_max"]) == (pytest.approx(ratios[0], abs=0.001),
                                                    pytest.approx(ratios[2], abs=0.001))
    below, above = row["spread_percent"]
    assert below >= 0 and above >= 0
    assert row["noisy"] == (below > 25 or above > 25)
    assert all(r["load"] is not None for r in row["rounds"])
    assert row["load_average"][0] <= row["load_average"][1]
    # The seconds of each section that ran, in the JSON and on the summary line.
    seconds = report["run"]["section_seconds"]
    assert list(seconds) == ["python"] and 0 < seconds["python"] <= report["run"]["seconds"]
    assert "(python %.0f s)" % seconds["python"] in done.stdout.splitlines()[-1]
    # The table shows the same row with its spread; rows not measured say so.
    line = next(l for l in done.stdout.splitlines() if l.startswith("| python_runtime_rps "))
    assert "%.2f×" % row["ratio"] in line and "load" in line
    assert "not measured in this run (--only)" in done.stdout


BUILD = pathlib.Path(os.environ.get("ASYA_BUILD_DIR", REPO / "build"))


@pytest.mark.skipif(not (BUILD / "src/sidecar/asya-sidecar").exists(),
                    reason="needs a build (ASYA_BUILD_DIR)")
def test_the_cpu_rows_measure_sidecar_end_actor_and_gateway_and_the_goals_table_judges_them(
        tmp_path):
    """sidecar_idle_cpu and sidecar_cpu_per_msg (SQLite) from /proc, with the end actor's and the
    gateway's CPU per message in the row; the Goals table lists every row with a goal."""
    out = tmp_path / "cpu.json"
    done = subprocess.run([sys.executable, str(RUN), "--only", "cpu", "--quick", "--out",
                           str(out)], capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, ASYA_BUILD_DIR=str(BUILD)))
    assert done.returncode == 0, done.stderr
    rows = {r["id"]: r for r in json.loads(out.read_text())["rows"]}
    idle, per_msg = rows["sidecar_idle_cpu"], rows["sidecar_cpu_per_msg"]
    for row in (idle, per_msg):
        assert row["asya"] is not None, row["note"]
        assert len(row["rounds"]) == 3 and isinstance(row["target_met"], bool)
    assert per_msg["asya"] > 0 and per_msg["end_actor_us"] > 0 and per_msg["gateway_us"] > 0
    assert "happy-end sidecar" in per_msg["note"] and "gateway" in per_msg["note"]
    assert idle["target_met"] == (idle["asya"] < 0.5)
    assert per_msg["target_met"] == (per_msg["asya"] <= 150)
    goals = done.stdout.split("Goals")[1]
    expected = "| sidecar_cpu_per_msg | ≤ 150 µs | "
    verdict = goals.split(expected)[1].splitlines()[0].rsplit("|", 2)[1].strip()
    assert verdict == ("met" if per_msg["target_met"] else "**missed**")
    # Rows with a goal that this run did not measure say so (n/a), e.g. the RabbitMQ one.
    assert "| sidecar_cpu_per_msg_rabbitmq | ≤ 120 µs | not measured | n/a |" in goals
    assert "| gateway_calls | ≥ 0.5× /healthz | not measured | n/a |" in goals


BATCH_ROWS = ("batch_model_b1", "batch_model_b8", "batch_model_b32", "batch_model_light_p95",
              "batch_sidecar_overhead")


def test_the_batch_section_writes_its_rows_with_rounds_and_fields(tmp_path):
    """`--only batch --quick`: every batch row is in the JSON with the common fields; with the
    batching feature built, each has 3 rounds, the b32 row its speedup_vs_b1 and the light-load
    row its rate; without it, each says why it was not measured. Needs torch (the model)."""
    pytest.importorskip("torch", reason="python3-torch is not installed for %s (scripts/setup "
                        "--bench installs it)" % sys.executable)
    build = pathlib.Path(os.environ.get("ASYA_BUILD_DIR", REPO / "build"))
    for binary in ("src/sidecar/asya-sidecar", "bench/queue/bench_queue"):
        assert (build / binary).exists(), "build it first: ninja -C %s" % build
    out = tmp_path / "batch.json"
    done = subprocess.run([sys.executable, str(RUN), "--only", "batch", "--quick", "--out",
                           str(out)], capture_output=True, text=True, timeout=900,
                          env=dict(os.environ, ASYA_BENCH_ROUNDS="3", ASYA_BENCH_PYTHON=sys.executable))
    assert done.returncode == 0, done.stderr
    report = json.loads(out.read_text())
    assert report["run"]["only"] == ["batch"]
    rows = {r["id"]: r for r in report["rows"] if r["id"].startswith("batch_")}
    assert sorted(rows) == sorted(BATCH_ROWS)
    units = {"batch_model_b1": "items/s", "batch_model_b8": "items/s", "batch_model_b32": "items/s",
             "batch_model_light_p95": "ms", "batch_sidecar_overhead": "ms/batch"}
    for row_id, row in rows.items():
        assert row["unit"] == units[row_id]
        for field in ("asya", "baseline", "ratio", "ratio_min", "ratio_max", "spread_percent",
                      "noisy", "load_average", "rounds", "higher_is_better", "target", "note"):
            assert field in row, (row_id, field)
        assert row["higher_is_better"] is row_id.startswith("batch_model_b")
        line = next(l for l in done.stdout.splitlines() if l.startswith("| %s " % row_id))
        assert row_id in line
    runtime = (REPO / "runtimes/python/asya_runtime.py").read_text()
    if "ASYA_HANDLER_BATCH" not in runtime:
        for row in rows.values():
            assert row["asya"] is None and "not measured" in row["note"], row
        # The in-process figures (the physical limit) are still there.
        assert len(rows["batch_model_b32"]["in_process_items_per_s"]) == 3
        return
    for row_id, row in rows.items():
        assert row["asya"] is not None and row["baseline"] is not None, (row_id, row["note"])
        assert len(row["rounds"]) == 3, row_id
        ratios = sorted(r["ratio"] for r in row["rounds"])
        assert row["ratio"] == pytest.approx(ratios[1], abs=0.001)
        assert row["asya"] > 0 and row["baseline"] > 0
    b32 = rows["batch_model_b32"]
    assert b32["speedup_vs_b1"] > 0 and len(b32["speedup_rounds"]) == 3
    assert b32["target"] and b32["target_met"] in (True, False)
    # maxSize 32 under saturation really batches (a batch of one per call would show 1.0).
    assert max(b32["mean_batch_size"]) > 1
    assert rows["batch_model_light_p95"]["rate_per_s"] > 0
    assert rows["batch_sidecar_overhead"]["target"] == "< 1 ms"
    assert len(rows["batch_sidecar_overhead"]["sidecar_cpu_ms_per_batch"]) == 3
