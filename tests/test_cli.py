"""The command line as a user runs it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import orjson
import sqlalchemy as sa
from alembic.script import ScriptDirectory

from mps_callback.store.migrate import alembic_config, upgrade
from tests.conftest import FIXTURES, query, start_service
from tests.project.helpers import run_ingest
from tests.conftest import load_fixture


def cli(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("MPS_")} | (env or {})
    return subprocess.run([sys.executable, "-m", "mps_callback", *args], capture_output=True, text=True, env=full_env,
                          cwd=cwd, timeout=120)


def test_parse_prints_the_projection_without_a_database(tmp_path: Path):
    result = cli("parse", str(FIXTURES / "vod/WorkflowTask-AiAnalysis-DeLogoTask.json"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    projection = orjson.loads(result.stdout)
    assert projection["task_id"] == "2400002-WorkflowTask-aianalysisresultset-delogotask"
    assert projection["subtasks"][0]["family"] == "DeLogoTask"
    assert "fixture-s3-secret-key-value-0001" not in result.stdout
    assert not list(tmp_path.iterdir())  # no database file was created


def test_parse_refuses_a_file_that_is_not_a_notification(tmp_path: Path):
    other = tmp_path / "other.json"
    other.write_text('{"hello": "world"}')
    result = cli("parse", str(other))
    assert result.returncode == 2 and "not an MPS notification" in result.stderr


def test_send_signs_and_posts(tmp_path: Path):
    service = start_service(f"sqlite:///{tmp_path / 'j.db'}", tmp_path, notify_keys="send-key")
    try:
        url = service.base_url + "/v1/mps/callback"
        ok = cli("send", str(FIXTURES / "examples/doc-live-ProcessEof.json"), "--url", url, "--key", "send-key")
        assert ok.returncode == 0 and ok.stdout.startswith("200 ") and '"duplicate":false' in ok.stdout
        forged = cli("send", str(FIXTURES / "examples/doc-live-ProcessEof.json"), "--url", url, "--key", "wrong")
        assert forged.returncode == 1 and forged.stdout.startswith("401 ")
        from_env = cli("send", str(FIXTURES / "examples/doc-live-ProcessEof.json"), "--url", url,
                       env={"MPS_NOTIFY_KEYS": "send-key"})
        assert from_env.stdout.startswith("200 ") and '"duplicate":true' in from_env.stdout
    finally:
        service.stop()


def test_reproject_and_worker(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'j.db'}"
    upgrade(url)
    bodies = [load_fixture("vod/WorkflowTask-SmartSubtitles-TransTextTask.json"), load_fixture("examples/doc-live-ProcessEof.json")]
    run_ingest(url, bodies, project=False)
    worker = subprocess.Popen([sys.executable, "-m", "mps_callback", "worker"], env={**os.environ, "MPS_DATABASE_URL": url},
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while query(url, "SELECT COUNT(*) FROM notifications WHERE projected_at IS NULL")[0][0] and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        worker.terminate()
        worker.wait(timeout=10)
    assert query(url, "SELECT COUNT(*) FROM tasks")[0][0] == 2
    before = query(url, sa.text("SELECT task_id, status, failed FROM tasks ORDER BY task_id"))
    result = cli("reproject", env={"MPS_DATABASE_URL": url})
    assert result.returncode == 0 and "reprojected 2 notifications" in result.stdout
    assert query(url, sa.text("SELECT task_id, status, failed FROM tasks ORDER BY task_id")) == before


def test_db_upgrade(tmp_path: Path):
    result = cli("db", "upgrade", env={"MPS_DATABASE_URL": f"sqlite:///{tmp_path / 'new.db'}"})
    assert result.returncode == 0 and "latest revision" in result.stdout
    url = f"sqlite:///{tmp_path / 'new.db'}"
    head = ScriptDirectory.from_config(alembic_config(url)).get_current_head()
    assert query(url, "SELECT version_num FROM alembic_version")[0][0] == head
