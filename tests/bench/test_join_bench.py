"""bench/run's section `join` (bench/join/join_bench.py) end to end on the real build: every round
measures both sides of its three rows, each row gets its rounds, median and ratio. The wide group
is 300 instead of 10,000 here (ASYA_BENCH_JOIN_WIDE), and the memory row's group 2,000 instead of
100,000 (ASYA_BENCH_JOIN_RSS_WIDE), so the test stays short."""
import json
import os
import pathlib
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parents[2]
RUN = REPO / "bench" / "run"
ROW_IDS = ("join_groups_per_s", "join_10k_s", "join_rss_10k", "join_rss_100k")


def test_the_join_section_produces_its_rows(tmp_path, build_path):
    out = tmp_path / "join.json"
    done = subprocess.run([sys.executable, str(RUN), "--only", "join", "--quick", "--out", str(out)],
                          capture_output=True, text=True, timeout=900,
                          env=dict(os.environ, ASYA_BENCH_ROUNDS="3", ASYA_BENCH_JOIN_WIDE="300",
                                   ASYA_BENCH_JOIN_RSS_WIDE="2000",
                                   ASYA_BUILD_DIR=str(build_path)))
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(out.read_text())
    rows = {r["id"]: r for r in report["rows"]}
    for row_id in ROW_IDS:
        row = rows[row_id]
        assert row["asya"] is not None and row["baseline"] is not None, (row_id, row["note"])
        assert len(row["rounds"]) == 3, (row_id, row)
        assert row["ratio"] is not None and row["ratio"] > 0, (row_id, row)
        assert "a round failed" not in row["note"], row["note"]
        assert "| %s |" % row_id in done.stdout
    assert rows["join_groups_per_s"]["higher_is_better"] is True
    assert "300 branches" in rows["join_10k_s"]["note"]
    assert "group of 2000 branches" in rows["join_rss_100k"]["note"]
    # The other sections did not run.
    assert rows["sqlite_hop_c1"]["asya"] is None
