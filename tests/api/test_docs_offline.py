"""``/docs`` works with no Internet access: every asset comes from the package, none from a CDN."""

from __future__ import annotations

import re
from pathlib import Path

from mps_callback.app import SWAGGER_UI_DIR
from tests.support.service import InProcessService

EXPECTED_TYPES = {".js": "text/javascript", ".css": "text/css", ".png": "image/png"}


def test_docs_loads_only_local_assets(tmp_path: Path):
    with InProcessService(f"sqlite:///{tmp_path / 'j.db'}", tmp_path) as service:
        page = service.get("/docs")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert not re.search(r"(?:src|href)=['\"](?:https?:)?//", page.text), page.text  # nothing off this host
        assets = re.findall(r"(?:src|href)=['\"]([^'\"]+)['\"]", page.text)
        assert len(assets) == 3, assets  # the script, the stylesheet, the icon
        for asset in assets:
            answer = service.get(asset)
            assert answer.status_code == 200, asset
            expected = EXPECTED_TYPES[Path(asset).suffix]
            assert answer.headers["content-type"].startswith(expected), (asset, answer.headers["content-type"])
            assert answer.content == (SWAGGER_UI_DIR / Path(asset).name).read_bytes()
        assert "url: '/openapi.json'" in page.text and service.get("/openapi.json").status_code == 200
        assert service.get("/redoc").status_code == 404  # it would load from a CDN: not offered
