"""What is kept of how a notification arrived (headers, CMQ envelope) holds no credential,
and signed input URLs reach ``tasks.input_location`` scrubbed."""

from __future__ import annotations

from mps_callback.intake.accept import Delivery, _delivery_record, safe_headers
from mps_callback.project.parse import parse
from mps_callback.verify.redact import MARKER, redact
from tests.support.bodies import load_fixture

TOKEN = "url-token-5d2e8b"


def test_headers_repeating_the_callback_url_lose_its_token():
    headers = {
        "x-original-uri": f"/v1/mps/callback?token={TOKEN}",
        "x-forwarded-uri": f"/pyapi/mps/callback?a=1&token={TOKEN}",
        "referer": f"https://callbacks.example.com/v1/mps/callback?token={TOKEN}",
        "user-agent": "Go-http-client/1.1",
        "authorization": "Bearer b",
        "cookie": "s=c",
        "x-api-key": "k",
        "x-cos-security-token": "t",
    }
    kept = safe_headers(headers)
    assert kept == {
        "x-original-uri": f"/v1/mps/callback?token={MARKER}",
        "x-forwarded-uri": f"/pyapi/mps/callback?a=1&token={MARKER}",
        "referer": f"https://callbacks.example.com/v1/mps/callback?token={MARKER}",
        "user-agent": "Go-http-client/1.1",
    }


def test_envelope_attributes_are_redacted_by_name_and_in_urls():
    attributes = {
        "msgId": "m1",
        "topicName": "mps",
        "token": "cmq-token",
        "callbackUrl": "https://x/cb?sign=abc&v=2",
        "retries": 3,
    }
    record = _delivery_record(Delivery("http", "127.0.0.1", {}), attributes)
    assert record["envelope"] == {
        "msgId": "m1",
        "topicName": "mps",
        "token": MARKER,
        "callbackUrl": f"https://x/cb?sign={MARKER}&v=2",
        "retries": 3,
    }


def test_a_signed_input_url_reaches_input_location_scrubbed():
    body = load_fixture("vod/WorkflowTask-AiAnalysis-FrameTagTask.json")
    url_info = body["WorkflowTaskEvent"]["InputInfo"]
    signed = "https://in-1250000000.cos.ap-guangzhou.myqcloud.com/a%20b.mp4?q-sign-algorithm=sha1&q-ak=AKIDx&q-signature=feed"
    body["WorkflowTaskEvent"]["InputInfo"] = {"Type": "URL", "UrlInputInfo": {"Url": signed}}
    assert url_info  # the fixture had an input
    redact(body)
    projection = parse(body)
    assert projection.input_location == (
        f"https://in-1250000000.cos.ap-guangzhou.myqcloud.com/a%20b.mp4?q-sign-algorithm=sha1&q-ak={MARKER}"
        f"&q-signature={MARKER}"
    )
    assert projection.video_name == "a%20b.mp4"
