"""Queues and failures (issue 19): `asya queues purge` on every transport, `asya results --failed
[--since]`, `asya replay ID [--from ACTOR]` and `asya replay --all-failed --actor X`, against a
real `asya up` (sidecars, runtimes, end actors)."""
import json
import time

from local_harness import manifest, wait_for


def waiting(asya, queue, count):
    """Whether `asya queues` shows `count` messages waiting in `queue`. RabbitMQ cannot list
    queues (`asya queues` shows only the supervised actors' there), but a confirmed send is in the
    queue when `asya send` returns: nothing to wait for."""
    if asya.transport == "rabbitmq":
        return True
    for q in json.loads(asya.run("queues", "--json", check=0).stdout):
        if q["queue"] == queue:
            return q["ready"] + q["delayed"] == count
    return False


def test_purge_empties_a_queue_on_every_transport(asya_on, tmp_path):
    asya = asya_on
    (tmp_path / "busy.yaml").write_text(
        manifest("busy", "testing.slow_echo", scaling={"enabled": False}))
    asya.up_detached(tmp_path / "busy.yaml")
    # Nobody consumes asya-parked: its messages wait there.
    for n in range(3):
        asya.send("parked", "--payload", json.dumps({"n": n}), "--force", check=0)
    wait_for(lambda: waiting(asya, "asya-parked", 3), 60, "3 messages waiting in asya-parked")

    out = asya.run("queues", "purge", "asya-parked", check=0)
    if asya.transport == "sqs":
        assert out.stdout == ("asya-parked: purge requested (sqs removes the messages within 60 s "
                              "and does not say how many)\n"), out.stdout
    else:
        assert out.stdout == "asya-parked: removed 3 messages\n", out.stdout
    wait_for(lambda: waiting(asya, "asya-parked", 0), 90, "asya-parked to be empty")

    # An actor name stands for its queue; --json says what was removed.
    asya.send("parked", "--payload", "1", "--force", check=0)
    wait_for(lambda: waiting(asya, "asya-parked", 1), 60, "1 message in asya-parked")
    if asya.transport != "sqs":  # SQS allows one PurgeQueue per queue every 60 s
        answer = json.loads(asya.run("queues", "purge", "parked", "--json", check=0).stdout)
        assert answer == {"queue": "asya-parked", "transport": asya.transport, "removed": 1}

    # An unknown queue is refused, nothing is purged, and the known queues are listed.
    out = asya.run("queues", "purge", "asya-nobody", check=3)
    assert 'unknown queue "asya-nobody"' in out.stderr and "asya-busy" in out.stderr, out.stderr
    assert out.stdout == ""

    # The running actor is unaffected.
    result = asya.send("busy", "--payload", '{"still": "working"}', "--wait", check=0)
    assert json.loads(result.stdout.splitlines()[0])["payload"] == {"still": "working"}


def flaky_pipeline(asya, tmp_path):
    """prep -> flaky, where flaky fails until tmp_path/flag exists; returns (flag, processed)."""
    flag = tmp_path / "flag"
    processed = tmp_path / "processed.jsonl"
    env = {"FLAG_FILE": str(flag), "PROCESSED_FILE": str(processed)}
    (tmp_path / "prep.yaml").write_text(
        manifest("prep", "redrive.prepare", scaling={"enabled": False}))
    (tmp_path / "flaky.yaml").write_text(
        manifest("flaky", "redrive.fail_until_flag", scaling={"enabled": False}, env=env))
    asya.up_detached(tmp_path / "prep.yaml", tmp_path / "flaky.yaml")
    return flag, processed


def failed_list(asya, *args):
    return json.loads(asya.run("results", "--failed", "--json", *args, check=0).stdout)


def test_replay_of_a_failed_message_succeeds_once_the_cause_is_fixed(asya, tmp_path):
    flag, processed = flaky_pipeline(asya, tmp_path)
    out = asya.send("--route", "prep,flaky", "--payload", '{"n": 1}', "--id", "job-1", "--wait",
                    check=1)
    failed = json.loads(out.stdout.splitlines()[0])
    assert failed["payload"]["error"] == "processing_error"

    # results --failed names the id, the actor that failed, the error type and message.
    [entry] = failed_list(asya)
    assert entry["id"] == "job-1" and entry["actor"] == "flaky"
    assert entry["error"] == "processing_error" and entry["type"] == "KeyError"
    assert "is missing" in entry["message"]
    table = asya.run("results", "--failed", check=0).stdout.splitlines()
    assert table[0].split() == ["AT", "ID", "ACTOR", "ERROR"]
    assert table[1].split()[1:4] == ["job-1", "flaky", "processing_error"], table
    assert "KeyError:" in table[1]

    # Replaying an id that did not fail is refused.
    assert "no failed envelope nope" in asya.run("replay", "nope", check=3).stderr
    # --from an actor outside the route is refused, and the failure stays listed.
    out = asya.run("replay", "job-1", "--from", "nobody", check=2)
    assert '"nobody" is not in the route of envelope job-1 (prep -> flaky)' in out.stderr
    assert [e["id"] for e in failed_list(asya)] == ["job-1"]

    flag.write_text("fixed")
    out = asya.run("replay", "job-1", check=0)
    assert out.stdout == "job-1\n"
    assert "replayed job-1 from flaky" in out.stderr
    assert failed_list(asya) == [], "a replayed failure is no longer listed as failed"

    def succeeded():
        r = asya.run("results", "job-1")
        return r.returncode == 0 and json.loads(r.stdout)
    result = wait_for(succeeded, 60, "the replayed job-1 to end in happy-end")
    # Started at the failed actor with the original payload: prep did not run again.
    assert result["payload"] == {"n": 1, "prepared": 1, "ok": True}
    assert result["headers"]["asya-replays"] == 1
    assert "asya-attempt" not in result["headers"]
    assert [c["actor"] for c in result["headers"]["asya-error-chain"]] == ["flaky"]
    # Processed exactly once (the failed attempt never got to record).
    time.sleep(0.5)  # a duplicate would have been recorded by now
    assert [json.loads(line) for line in processed.read_text().splitlines()] == \
        [{"n": 1, "prepared": 1}]
    assert (asya.state / "results" / "replayed" / "job-1.json").exists()

    # --from another actor of the route starts there: prep runs again.
    flag.unlink()
    asya.send("--route", "prep,flaky", "--payload", '{"n": 2}', "--id", "job-2", "--wait",
              check=1)
    flag.write_text("fixed")
    assert asya.run("replay", "job-2", "--from", "prep", check=0).stdout == "job-2\n"
    result = wait_for(lambda: asya.run("results", "job-2").returncode == 0
                      and json.loads(asya.run("results", "job-2").stdout), 60,
                      "job-2 to succeed")
    assert result["payload"] == {"n": 2, "prepared": 2, "ok": True}


def test_replay_all_failed_of_one_actor_and_results_since(asya, tmp_path):
    flag, processed = flaky_pipeline(asya, tmp_path)
    for n in range(3):
        asya.send("--route", "prep,flaky", "--payload", json.dumps({"n": n}), "--id", f"many-{n}",
                  "--wait", check=1)
    # A failure at another actor: prep cannot prepare a payload that is not an object.
    asya.send("--route", "prep,flaky", "--payload", "5", "--id", "other", "--wait", check=1)
    assert sorted(e["id"] for e in failed_list(asya)) == ["many-0", "many-1", "many-2", "other"]
    # --since: a moment in the future lists nothing, an hour back lists all; --actor filters.
    future = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))
    assert failed_list(asya, "--since", future) == []
    assert len(failed_list(asya, "--since", "1h")) == 4
    assert asya.run("results", "--since", future, "--json", check=0).stdout == "[]\n"
    assert len(json.loads(asya.run("results", "--since", "1h", "--json", check=0).stdout)) == 4
    assert "--since" in asya.run("results", "--since", "yesterday", check=2).stderr

    flag.write_text("fixed")
    assert [e["actor"] for e in failed_list(asya) if e["id"] == "other"] == ["prep"]

    flag.write_text("fixed")
    out = asya.run("replay", "--all-failed", "--actor", "flaky", "--since", "1h", check=0)
    assert sorted(out.stdout.split()) == ["many-0", "many-1", "many-2"]
    wait_for(lambda: all(asya.run("results", f"many-{n}").returncode == 0 for n in range(3)), 90,
             "every replayed envelope to succeed")
    ns = sorted(json.loads(line)["n"] for line in processed.read_text().splitlines())
    assert ns == [0, 1, 2]
    # The failure at prep was not replayed and is still listed.
    assert [e["id"] for e in failed_list(asya)] == ["other"]
    out = asya.run("replay", "--all-failed", "--actor", "flaky", check=0)
    assert out.stdout == "" and "no failed envelopes to replay" in out.stderr
