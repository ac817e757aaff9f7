import pytest

from mps_callback.errors import Refused
from mps_callback.verify.redact import MARKER, MAX_NESTING, is_secret_name, redact


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


def test_nesting_beyond_the_limit_is_refused_without_recursion():
    deep: dict = {"EventType": "WorkflowTask"}
    node = deep
    for _ in range(MAX_NESTING + 5):
        node["x"] = {}
        node = node["x"]
    with pytest.raises(Refused) as caught:
        redact(deep)
    assert caught.value.status == 400 and "nested" in caught.value.reason


def test_nesting_at_the_limit_is_kept():
    body: dict = {}
    node = body
    for _ in range(MAX_NESTING - 1):
        node["x"] = {}
        node = node["x"]
    assert redact(body) == 0
