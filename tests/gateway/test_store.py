"""The job store suite (src/gateway/store/job_store_test.cpp) against a real PostgreSQL 15."""
import os
import subprocess


def test_store_suite_against_postgres(build_path, postgres_url):
    binary = build_path / "src" / "gateway" / "gateway_store_test"
    env = dict(os.environ, ASYA_TEST_DATABASE_URL=postgres_url)
    result = subprocess.run([str(binary), "--gtest_filter=*postgres*"], env=env, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    # Every postgres case the binary has ran and passed (counted from the binary, so a case added
    # to job_store_test.cpp needs no edit here).
    listed = subprocess.run([str(binary), "--gtest_list_tests", "--gtest_filter=*postgres*"],
                            capture_output=True, text=True, timeout=60).stdout
    count = sum(1 for line in listed.splitlines() if line.startswith("  "))
    assert count >= 15, listed
    assert f"[  PASSED  ] {count} tests." in result.stdout, result.stdout[-3000:]
    assert "SKIPPED" not in result.stdout
