"""The join input streamed to the runtime (PROTOCOL §4a): what the runtime gets and what an abort
sends on, on every transport of the `cluster` fixture."""
from test_join import join_env
from test_sidecar import envelope, only, HAPPY


def test_a_join_that_aborts_sends_its_whole_input_to_happy_end(cluster):
    # Section 4: `[]` ends the pipeline with the input itself; for a join that input is the
    # streamed one, so the sidecar builds it whole for this case only.
    cluster.actor("split", "split")
    cluster.actor("score", "score")
    cluster.actor("combine", "abort", env=join_env(cluster))
    cluster.queues.send("asya-split", envelope("A", ["split", "score", "combine"], payload={"n": 5}))
    out = only(cluster.queues.collect(HAPPY, 1, timeout=60))
    assert out["id"] == "A"
    assert out["payload"] == [{"i": i, "score": i * i} for i in range(5)]
    assert out["join"] == {"group": "A@0", "count": 5, "reason": "complete", "failed": [],
                           "missing": []}
    assert out["route"] == {"actors": ["split", "score", "combine"], "current": 2}
