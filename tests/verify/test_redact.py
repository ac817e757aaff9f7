import pytest

import orjson

from mps_callback.verify.redact import MARKER, is_secret_name, redact


@pytest.mark.parametrize(
    "name",
    ["S3SecretId", "S3SecretKey", "NotifyKey", "Key", "password", "db_password", "access_token", "X-Api-Key",
     "ClientSecret", "Sign", "Credentials", "apiKey"],
)
def test_secret_names(name: str):
    assert is_secret_name(name)


@pytest.mark.parametrize("name", ["Keywords", "KeywordSet", "KeyPTSList", "KeyServerUrl", "TaskId", "Signature2", "Design"])
def test_ordinary_names(name: str):
    assert not is_secret_name(name)


def test_secrets_at_any_depth_are_replaced_and_counted():
    body = {
        "WorkflowTaskEvent": {
            "InputInfo": {"S3InputInfo": {"S3Bucket": "b", "S3SecretId": "AKID1", "S3SecretKey": "sk1"}},
            "MediaProcessResultSet": [
                {"TranscodeTask": {"Output": {"OutputStorage": {"S3OutputStorage": {"S3SecretKey": "sk2"}}}}}
            ],
        },
        "Extra": {"token": {"nested": "object secret"}},
    }
    assert redact(body) == 4
    s3 = body["WorkflowTaskEvent"]["InputInfo"]["S3InputInfo"]
    assert s3 == {"S3Bucket": "b", "S3SecretId": MARKER, "S3SecretKey": MARKER}
    storage = body["WorkflowTaskEvent"]["MediaProcessResultSet"][0]["TranscodeTask"]["Output"]["OutputStorage"]
    assert storage["S3OutputStorage"]["S3SecretKey"] == MARKER
    assert body["Extra"]["token"] == MARKER


def test_empty_secret_fields_are_left_as_they_are():
    body = {"S3SecretId": None, "S3SecretKey": "", "Keywords": ["a"]}
    assert redact(body) == 0
    assert body == {"S3SecretId": None, "S3SecretKey": "", "Keywords": ["a"]}


def test_any_nesting_is_walked_without_recursion():
    body: dict = {"EventType": "WorkflowTask"}
    node = body
    for _ in range(5000):
        node["x"] = {}
        node = node["x"]
    node["password"] = "hidden"
    assert redact(body) == 1 and node["password"] == MARKER


def test_a_body_without_secret_names_skips_the_walk_but_loses_its_sign():
    raw = orjson.dumps({"EventType": "WorkflowTask", "Keywords": ["a"], "Sign": "a" * 32, "X": {"Word": "y"}})
    body = orjson.loads(raw)
    assert redact(body, raw) == 1
    assert body == {"EventType": "WorkflowTask", "Keywords": ["a"], "Sign": MARKER, "X": {"Word": "y"}}


@pytest.mark.parametrize("raw", [
    b'{"EventType": "WorkflowTask", "Out": {"S3SecretKey": "sk"}}',
    b'{"EventType": "WorkflowTask", "Out": {"\\u0053ecretKey": "sk"}}',  # an escaped name is still found
    b'{"EventType": "WorkflowTask", "Sign": "' + b"a" * 32 + b'", "Out": {"Sign": "sk"}}',
    b'{"EventType": "WorkflowTask", "Out": {"NotifyKey": "sk"}}',
    b'{"EventType": "WorkflowTask", "Out": [{"access_token": "sk"}]}',
], ids=["s3", "escaped", "nested-sign", "key", "token"])
def test_the_byte_scan_never_misses_a_secret(raw: bytes):
    body = orjson.loads(raw)
    assert redact(body, raw) >= 1
    assert b'"sk"' not in orjson.dumps(body)
