"""The dashboard's door: a login when MPS_API_TOKEN is set, a CSRF token on every action, the callback open."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

import pytest

from mps_callback.send import stamp
from tests.support.bodies import load_fixture
from tests.support.pages import FORM, TOKEN, log_in
from tests.support.service import InProcessService

PAGES = ["/ui/", "/ui/health", "/ui/tasks/anything"]


def sqlite(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path}/ui.db"


@pytest.fixture
def guarded(tmp_path: Path) -> Iterator[InProcessService]:
    with InProcessService(sqlite(tmp_path), tmp_path, api_token=TOKEN, notify_keys="k") as running:
        yield running


@pytest.mark.parametrize("path", PAGES)
def test_every_page_sends_a_stranger_to_the_login_and_back(guarded: InProcessService, path: str):
    answer = guarded.get(path)
    assert answer.status_code == 303
    assert answer.headers["location"].startswith("/ui/login?next=")


def test_htmx_is_told_to_go_to_the_login(guarded: InProcessService):
    answer = guarded.get("/ui/", headers={"HX-Request": "true"})
    assert answer.status_code == 401 and answer.headers["hx-redirect"].startswith("/ui/login")


def test_the_token_logs_in_with_a_strict_httponly_cookie_and_logout_ends_it(guarded: InProcessService):
    answer = log_in(guarded)
    assert answer.status_code == 303 and answer.headers["location"] == "/ui/health"
    cookie = next(value for name, value in answer.headers.multi_items() if name == "set-cookie")
    assert "mps_session=" in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert TOKEN not in cookie
    assert guarded.get("/ui/").status_code == 200

    csrf = guarded._client.cookies.get("mps_csrf")
    out = guarded.post(urlencode({"csrf": csrf}).encode(), "/ui/logout", headers=FORM)
    assert out.status_code == 303
    assert guarded.get("/ui/").status_code == 303


def test_a_wrong_token_is_401_with_the_form_again(guarded: InProcessService):
    answer = log_in(guarded, token="nope")
    assert answer.status_code == 401
    assert "not the API token" in answer.text
    assert guarded.get("/ui/").status_code == 303


def test_login_and_logout_without_the_csrf_token_are_refused(guarded: InProcessService):
    guarded.get("/ui/login")
    answer = guarded.post(urlencode({"token": TOKEN}).encode(), "/ui/login", headers=FORM)
    assert answer.status_code == 403 and "CSRF" in answer.text
    answer = guarded.post(urlencode({"token": TOKEN, "csrf": "0" * 32}).encode(), "/ui/login", headers=FORM)
    assert answer.status_code == 403


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/ui/", "/\\evil.example", "javascript:x"])
def test_login_never_sends_the_browser_to_another_site(guarded: InProcessService, target: str):
    answer = log_in(guarded, next_path=target)
    assert answer.headers["location"] == "/ui/"


def test_a_cookie_signed_with_another_token_is_no_login(tmp_path: Path):
    url = sqlite(tmp_path)
    with InProcessService(url, tmp_path / "a", api_token="first-token") as first:
        log_in(first, token="first-token")
        session = first._client.cookies.get("mps_session")
        assert first.get("/ui/").status_code == 200
    with InProcessService(url, tmp_path / "b", api_token="second-token") as second:
        second._client.cookies.set("mps_session", str(session), path="/ui")
        assert second.get("/ui/").status_code == 303


def test_the_callback_stays_open_to_mps_and_the_api_keeps_its_bearer(guarded: InProcessService):
    body = load_fixture("examples/doc-vod-WorkflowTask-transcode.json")
    assert guarded.post(stamp(body, "k")).status_code == 200
    log_in(guarded)
    assert guarded.get("/v1/tasks").status_code == 401  # a dashboard session is not an API token


def test_without_a_token_the_pages_are_open_and_the_start_warns(tmp_path: Path):
    with InProcessService(sqlite(tmp_path), tmp_path, host="0.0.0.0") as open_service:  # noqa: S104
        assert open_service.get("/ui/").status_code == 200
        assert open_service.get("/ui/login").status_code == 303
        assert "dashboard (/ui/" in open_service.logs()


def test_pages_carry_a_strict_content_security_policy(guarded: InProcessService):
    log_in(guarded)
    answer = guarded.get("/ui/")
    policy = answer.headers["content-security-policy"]
    assert "script-src 'self';" in policy and "frame-ancestors 'none'" in policy and "unsafe" not in policy
    assert answer.headers["cache-control"] == "no-store"


def test_root_goes_to_the_dashboard(guarded: InProcessService):
    answer = guarded.get("/")
    assert answer.status_code == 307 and answer.headers["location"] == "/ui/"
