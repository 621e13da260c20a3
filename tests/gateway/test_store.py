"""The job store suite (src/gateway/store/job_store_test.cpp) against a real PostgreSQL 15."""
import os
import subprocess


def test_store_suite_against_postgres(build_path, postgres_url):
    binary = build_path / "src" / "gateway" / "gateway_store_test"
    env = dict(os.environ, ASYA_TEST_DATABASE_URL=postgres_url)
    result = subprocess.run([str(binary), "--gtest_filter=*postgres*"], env=env, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "[  PASSED  ] 15 tests." in result.stdout, result.stdout[-3000:]
    assert "SKIPPED" not in result.stdout
