"""The command line as a user runs it: ``python -m mps_callback ...`` in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def cli(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run the CLI with ``args``; the environment's ``MPS_*`` variables are replaced by ``env``."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("MPS_")} | (env or {})
    return subprocess.run(
        [sys.executable, "-m", "mps_callback", *args],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=cwd,
        timeout=120,
        check=False,  # the tests read the exit status
    )


def one_line_error(result: subprocess.CompletedProcess[str], code: int) -> str:
    """Assert ``result`` failed with ``code`` and said why in exactly one stderr line; return that line."""
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]
