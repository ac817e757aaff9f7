"""Schemathesis against the service's own OpenAPI: generated requests to every route, no server error.

A real ``serve``: schemathesis runs as its own process and needs a port to reach."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from mps_callback.send import stamp
from tests.support.bodies import load_fixture
from tests.support.service import start_service


@pytest.mark.process
def test_no_generated_request_gets_a_server_error(tmp_path: Path):
    service = start_service(f"sqlite:///{tmp_path / 'j.db'}", tmp_path, api_token="schema-token", notify_keys="k")
    try:
        service.post(stamp(load_fixture("vod/WorkflowTask-SmartSubtitles-TransTextTask.json"), "k"))
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "schemathesis.cli",
                "run",
                service.base_url + "/openapi.json",
                "--checks",
                "not_a_server_error",
                "--max-examples",
                "25",
                "--seed",
                "1",
                "--header",
                "Authorization: Bearer schema-token",
            ],
            check=False,  # the exit status is asserted below, with the output
            capture_output=True,
            text=True,
            timeout=300,
            cwd=tmp_path,
        )
    finally:
        service.stop()
    summary = result.stdout[-3000:]
    assert result.returncode == 0, summary
    assert " passed" in summary and "failed" not in summary.split("Test cases:")[-1]
    assert '"status":5' not in service.logs()
