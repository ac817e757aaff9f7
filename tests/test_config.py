"""Settings that build URLs are checked at start: a bad one stops ``serve`` with one line naming it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from mps_callback.config import Settings, renamed_settings_in_use
from mps_callback.storage import OutputUrls, Storage

#: MPS_CDN_DOMAINS -> what the one-line reason must say.
BAD_CDN_DOMAINS = [
    ("b-1250000000=cdn.example.com", "has no scheme"),
    ("b-1250000000=ftp://cdn.example.com", "scheme 'ftp' is not http or https"),
    ("b-1250000000=javascript://cdn.example.com", "is not http or https"),
    ("b-1250000000=https://cdn.example.com/media", "has a path"),
    ("b-1250000000=https://cdn.example.com?x=1", "has a query"),
    ("b-1250000000=https://cdn.example.com/?", "has a query"),
    ("b-1250000000=https://cdn.example.com#top", "has a fragment"),
    ("b-1250000000=https://user@cdn.example.com", "has user info"),
    ("b-1250000000=https://", "is not a domain name"),
    ("b-1250000000=https://cdn_example.com", "is not a domain name"),
    ("b-1250000000=https://cdn.example.com:99999", "is not a URL"),
    ("garbage", "entry 'garbage' is not bucket=https://cdn-domain"),
    ("b-1250000000=https://a.example.com,garbage", "entry 'garbage'"),
    ("evil.com/x?=https://cdn.example.com", "is not a COS or S3 bucket name"),
    ("b-1250000000=https://a.example.com,b-1250000000=https://b.example.com", "listed twice"),
]

BAD_LIVE_STORAGE = [
    ("bucket-1250000000.ap-guangzhou", "is not cos://bucket-appid.region"),
    ("cos://Bucket-1250000000.ap-guangzhou", "is not a valid COS bucket name"),
    ("cos://bucket-1250000000.ap-guangzhou/prefix", "is not a valid COS region"),
    ("cos://evil.com/x?.ap-guangzhou", "is not a valid COS bucket name"),
    ("s3://media.us-east-1.evil.com", "is not a valid S3 region"),
    ("https://live.example.com/path", "has a path"),
    ("ftp://live.example.com", "is not cos://"),
]


@pytest.mark.parametrize(("value", "reason"), BAD_CDN_DOMAINS)
def test_bad_cdn_domains_are_refused_with_the_entry_named(value: str, reason: str) -> None:
    with pytest.raises(ValidationError) as refused:
        Settings(cdn_domains=value)
    assert reason in str(refused.value)


@pytest.mark.parametrize(("value", "reason"), BAD_LIVE_STORAGE)
def test_bad_live_output_storage_is_refused(value: str, reason: str) -> None:
    with pytest.raises(ValidationError) as refused:
        Settings(live_output_storage=value)
    assert reason in str(refused.value)


def test_good_cdn_domains_are_normalised() -> None:
    settings = Settings(cdn_domains=" a-1250000000 = HTTPS://CDN.Example.com/ , my.s3.bucket=http://10.0.0.1:8080,, ")
    assert settings.cdn_domains == {"a-1250000000": "https://cdn.example.com", "my.s3.bucket": "http://10.0.0.1:8080"}
    assert Settings(cdn_domains={"b-1250000000": "https://[::1]:8443"}).cdn_domains == {
        "b-1250000000": "https://[::1]:8443"
    }
    assert Settings(cdn_domains="").cdn_domains == {}


def test_a_dict_given_in_code_is_checked_too() -> None:
    with pytest.raises(ValidationError, match="has no scheme"):
        Settings(cdn_domains={"b-1250000000": "cdn.example.com"})


def test_the_output_urls_carry_the_cdn_domains_and_the_live_output_storage() -> None:
    settings = Settings(
        cdn_domains="a-1250000000=https://cdn.example.com", live_output_storage=" cos://l-125.ap-guangzhou "
    )
    assert settings.output_urls == OutputUrls(
        {"a-1250000000": "https://cdn.example.com"}, Storage("cos", "l-125", "ap-guangzhou")
    )


def _serve(tmp_path: Path, **settings: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MPS_")}
    env |= {
        "MPS_DATABASE_URL": f"sqlite:///{tmp_path / 'j.db'}",
        "MPS_PORT": "1",
        "MPS_SPOOL_DIR": str(tmp_path / "spool"),
    }
    env |= {f"MPS_{name.upper()}": value for name, value in settings.items()}
    return subprocess.run(
        [sys.executable, "-m", "mps_callback", "serve"],
        check=False,  # the callers assert the exit status: a refused setting must exit non-zero
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
    )


@pytest.mark.process
@pytest.mark.parametrize(
    ("setting", "value", "named"),
    [
        ("cdn_domains", "b-1250000000=cdn.example.com", "MPS_CDN_DOMAINS: entry b-1250000000=cdn.example.com"),
        ("cdn_domains", "b-1250000000=https://cdn.example.com,garbage", "MPS_CDN_DOMAINS: entry 'garbage'"),
        ("live_output_storage", "cos://evil.com/x?.ap-guangzhou", "MPS_LIVE_OUTPUT_STORAGE: "),
    ],
)
def test_serve_refuses_to_start_with_one_line(tmp_path: Path, setting: str, value: str, named: str) -> None:
    result = _serve(tmp_path, **{setting: value})
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("bad configuration: " + named), result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "j.db").exists()


# ---------------------------------------------------------------- renamed settings: the old names, for one release


@pytest.mark.parametrize(
    ("environment", "web_workers", "serve_background", "old_names"),
    [
        ({}, 1, True, []),
        ({"MPS_WEB_WORKERS": "3", "MPS_SERVE_BACKGROUND": "false"}, 3, False, []),
        ({"MPS_WORKERS": "4", "MPS_SERVE_PROJECTOR": "false"}, 4, False, ["MPS_WORKERS", "MPS_SERVE_PROJECTOR"]),
        ({"MPS_WORKERS": "4", "MPS_WEB_WORKERS": "2"}, 2, True, ["MPS_WORKERS"]),  # the new name wins
        ({"mps_workers": "5"}, 5, True, ["MPS_WORKERS"]),  # environment names are case-insensitive
    ],
)
def test_renamed_settings_are_read_under_both_names(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    environment: dict[str, str],
    web_workers: int,
    serve_background: bool,
    old_names: list[str],
) -> None:
    monkeypatch.chdir(tmp_path)  # no .env but the test's
    for name in [name for name in os.environ if name.upper().startswith("MPS_")]:
        monkeypatch.delenv(name)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    settings = Settings()
    assert (settings.web_workers, settings.serve_background) == (web_workers, serve_background)
    assert renamed_settings_in_use() == old_names


def test_an_old_name_in_the_env_file_is_read_and_warned_about(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    for name in [name for name in os.environ if name.upper().startswith("MPS_")]:
        monkeypatch.delenv(name)
    (tmp_path / ".env").write_text("MPS_WORKERS=6\n")
    assert Settings().web_workers == 6
    assert renamed_settings_in_use() == ["MPS_WORKERS"]


def test_a_bad_web_worker_count_is_named_once(tmp_path: Path) -> None:
    result = _serve(tmp_path, web_workers="many")
    assert result.returncode == 2
    assert result.stderr.startswith("bad configuration: MPS_WEB_WORKERS: Input should be a valid integer"), (
        result.stderr
    )
