"""Output URLs fetch the object MPS named, on the host its storage names, or there is no URL.

Object keys are percent-encoded (RFC 3986), buckets and regions from the body are checked
against COS and S3 naming rules before they become a host, and live results (which carry
no storage) get the one named by ``MPS_LIVE_OUTPUT_STORAGE``.
"""

from __future__ import annotations

import asyncio
import copy
from urllib.parse import unquote, urlsplit

import pytest
import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st

from mps_callback.config import Settings
from mps_callback.project.parse import parse
from mps_callback.project.projector import Projector
from mps_callback.storage import OutputUrls, Storage, storage_setting
from mps_callback.store.engine import create_engine
from mps_callback.store.tables import outputs
from tests.support.bodies import fixture_files, load_fixture
from tests.support.db import query
from tests.support.projection import ingest_and_project

COS = Storage("cos", "mps-out-1250000000", "ap-guangzhou")
S3 = Storage("s3", "mps-out", "us-east-1")
CDN_BUCKET = Storage("cos", "cdn-1250000000", "ap-guangzhou")
CDN = {"cdn-1250000000": "https://cdn.example.com"}

#: storage -> the host its URLs must name, whatever the key.
HOSTS = [
    (COS, {}, "mps-out-1250000000.cos.ap-guangzhou.myqcloud.com"),
    (S3, {}, "mps-out.s3.us-east-1.amazonaws.com"),
    (CDN_BUCKET, CDN, "cdn.example.com"),
]

#: object key -> its URL path (the issue's example, reserved characters, non-ASCII, a literal %, separators).
KEYS = [
    ("/out/ep#1 v2?.mp4", "/out/ep%231%20v2%3F.mp4"),
    ("out/ep#1 v2?.mp4", "/out/ep%231%20v2%3F.mp4"),
    ("/字幕/épisode 1.vtt", "/%E5%AD%97%E5%B9%95/%C3%A9pisode%201.vtt"),
    ("/a%2Fb.mp4", "/a%252Fb.mp4"),
    ("/a\\b@c:d;e=f&g+h.mp4", "/a%5Cb%40c%3Ad%3Be%3Df%26g%2Bh.mp4"),
    ("/line\nbreak\t.mp4", "/line%0Abreak%09.mp4"),
    ("/keep-_.~/x//y.mp4", "/keep-_.~/x//y.mp4"),
    ("/a/.../b.mp4", "/a/.../b.mp4"),
]


@pytest.mark.parametrize(("storage", "cdn", "host"), HOSTS, ids=["cos", "s3", "cdn"])
@pytest.mark.parametrize(("key", "path"), KEYS)
def test_keys_are_percent_encoded(storage: Storage, cdn: dict[str, str], host: str, key: str, path: str):
    url = storage.url(key, cdn)
    assert url == f"https://{host}{path}"
    parts = urlsplit(url)
    assert (parts.hostname, parts.query, parts.fragment) == (host, "", "")
    assert unquote(parts.path) == (key if key.startswith("/") else "/" + key)


@pytest.mark.parametrize("key", ["/a/../b.mp4", "/a/./b.mp4", "..", "/out/..", "\ud800.mp4"])
def test_a_key_no_url_can_name_gets_no_url(key: str):
    """Dot segments are removed by URL parsers (encoded or not): the URL would fetch another object."""
    assert [storage.url(key, cdn) for storage, cdn, _ in HOSTS] == [None, None, None]


@given(st.text(min_size=1, max_size=40))
def test_any_key_keeps_its_host_and_comes_back_whole(key: str):
    for storage, cdn, host in HOSTS:
        url = storage.url(key, cdn)
        if url is None:
            continue
        parts = urlsplit(url)
        assert (parts.hostname, parts.query, parts.fragment) == (host, "", "")
        assert unquote(parts.path) == (key if key.startswith("/") else "/" + key)


HOSTILE_BUCKETS = [
    Storage("cos", "evil.com/x?", "ap-guangzhou"),
    Storage("cos", "a@b", "ap-guangzhou"),
    Storage("cos", "evil.com#-1250000000", "ap-guangzhou"),
    Storage("cos", "bucket-1250000000.evil.com", "ap-guangzhou"),
    Storage("cos", "Upper-1250000000", "ap-guangzhou"),
    Storage("cos", "no-appid", "ap-guangzhou"),
    Storage("cos", "-dash-1250000000", "ap-guangzhou"),
    Storage("cos", "gztest-125****654", "ap-guangzhou"),
    Storage("cos", "mps-out-1250000000", "ap-guangzhou.evil.com/"),
    Storage("cos", "mps-out-1250000000", "evil.com?"),
    Storage("cos", "mps-out-1250000000", None),
    Storage("s3", "evil.com/x?", "us-east-1"),
    Storage("s3", "a@b", "us-east-1"),
    Storage("s3", "192.168.1.1", "us-east-1"),
    Storage("s3", "xn--bucket", "us-east-1"),
    Storage("s3", "a..b", "us-east-1"),
    Storage("s3", "ab", "us-east-1"),
    Storage("s3", "mps-out", "us-east-1.evil.com"),
    Storage("s3", "mps-out", "evil.com/x?"),
    Storage("vod", "*live", "ap-guangzhou"),
]


@pytest.mark.parametrize("storage", HOSTILE_BUCKETS, ids=lambda s: f"{s.type}:{s.bucket}@{s.region}")
def test_a_bucket_or_region_that_is_not_a_name_yields_no_url(storage: Storage):
    assert storage.url("/out/a.mp4", {}) is None
    assert storage.url("/out/a.mp4", {"*live": "https://evil.example.com"}) is None


def test_a_hostile_bucket_in_a_notification_keeps_bucket_and_path_but_no_url():
    body = load_fixture("vod/WorkflowTask-AiAnalysis-DeLogoTask.json")
    task = body["WorkflowTaskEvent"]["AiAnalysisResultSet"][0]["DeLogoTask"]
    task["Output"]["OutputStorage"] = {
        "Type": "COS",
        "CosOutputStorage": {"Bucket": "evil.com/x?", "Region": "ap-guangzhou"},
    }
    [subtask] = [s for s in parse(body).subtasks if s.family == "DeLogoTask"]
    stored = [o for o in subtask.outputs if o.storage == "cos"]
    assert stored and all(o.url is None and o.bucket == "evil.com/x?" and o.path for o in stored)


def test_s3_buckets_with_dots_use_path_style_and_china_regions_their_domain():
    assert (
        Storage("s3", "my.media", "us-east-1").url("/a b.mp4", {})
        == "https://s3.us-east-1.amazonaws.com/my.media/a%20b.mp4"
    )
    assert (
        Storage("s3", "media", "cn-north-1").url("/a.mp4", {}) == "https://media.s3.cn-north-1.amazonaws.com.cn/a.mp4"
    )


# ------------------------------------------------------------------ live outputs and MPS_LIVE_OUTPUT_STORAGE

LIVE_PATHS = ("HighlightPath", "CovImgPath")
LIVE_SETTINGS = [
    ("cos://live-1250000000.ap-guangzhou", "https://live-1250000000.cos.ap-guangzhou.myqcloud.com", "cos"),
    ("s3://live.media.eu-west-1", "https://s3.eu-west-1.amazonaws.com/live.media", "s3"),
    ("https://live.example.com/", "https://live.example.com", "url"),
]


@pytest.mark.parametrize(("setting", "origin", "storage"), LIVE_SETTINGS)
def test_live_paths_get_urls_from_the_live_output_storage(setting: str, origin: str, storage: str):
    body = load_fixture("live/AiAnalysisResult-HighlightResultSet.json")
    before = _live_outputs(body, OutputUrls())
    after = _live_outputs(body, Settings(live_output_storage=setting).output_urls)
    for name in LIVE_PATHS:
        assert before[name].url is None
        assert (after[name].storage, after[name].url) == (storage, origin + after[name].path)


def _live_outputs(body: dict, cdn: OutputUrls) -> dict:
    """The outputs of a live fixture by field name (HighlightPath, CovImgPath, HighlightUrl...)."""
    return {o.field.rsplit(".", 1)[-1]: o for s in parse(copy.deepcopy(body), cdn).subtasks for o in s.outputs}


def test_live_output_storage_leaves_vod_outputs_alone():
    body = load_fixture("vod/WorkflowTask-AiAnalysis-DeLogoTask.json")
    cdn = Settings(live_output_storage="cos://live-1250000000.ap-guangzhou").output_urls
    assert all("live-1250000000" not in (o.url or "") for s in parse(body, cdn).subtasks for o in s.outputs)


@pytest.mark.parametrize("path", fixture_files("live"), ids=lambda p: p.name)
def test_every_live_path_output_gets_a_url(path):
    cdn = Settings(live_output_storage="cos://live-1250000000.ap-guangzhou").output_urls
    for subtask in parse(load_fixture(path), cdn).subtasks:
        assert all(o.url for o in subtask.outputs if o.storage != "vod"), subtask.outputs


def test_live_fixture_projected_with_the_live_output_storage_stores_urls(database_url: str):
    """Through the journal and the projector, on every backend: the outputs table holds the URLs."""
    settings = Settings(live_output_storage="cos://live-1250000000.ap-guangzhou")
    asyncio.run(
        ingest_and_project(database_url, [load_fixture("live/AiAnalysisResult-HighlightResultSet.json")], project=False)
    )

    async def project() -> None:
        engine = create_engine(database_url)
        try:
            await Projector(engine, settings.output_urls).drain()
        finally:
            await engine.dispose()

    asyncio.run(project())
    rows = query(
        database_url,
        sa.select(outputs.c.storage, outputs.c.bucket, outputs.c.region, outputs.c.path, outputs.c.url).where(
            outputs.c.path.is_not(None)
        ),
    )
    base = "https://live-1250000000.cos.ap-guangzhou.myqcloud.com"
    assert sorted(tuple(row) for row in rows) == sorted(
        ("cos", "live-1250000000", "ap-guangzhou", path, base + path)
        for path in (
            "/mps/live/aianalysisresult/highlightresultset/highlightpath-0.mp4",
            "/mps/live/aianalysisresult/highlightresultset/covimgpath-0.jpg",
        )
    )


@pytest.mark.parametrize(
    "setting", ["cos://live-1250000000.ap-guangzhou", "s3://live.media.eu-west-1", "https://live.example.com:8443"]
)
def test_storage_setting_round_trips(setting: str):
    storage = storage_setting(setting)
    assert storage.url("/x.mp4", {}) is not None
