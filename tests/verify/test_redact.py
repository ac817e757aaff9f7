import orjson
import pytest

from mps_callback.verify.redact import MARKER, is_secret_name, redact, scrub_url_params


@pytest.mark.parametrize(
    "name",
    [
        "S3SecretId",
        "S3SecretKey",
        "NotifyKey",
        "Key",
        "password",
        "db_password",
        "access_token",
        "X-Api-Key",
        "ClientSecret",
        "Sign",
        "Credentials",
        "apiKey",
        "Signature2",
        # plurals and run-together names
        "Secrets",
        "Passwords",
        "Tokens",
        "DrmKeys",
        "secretkey",
        "clientsecret",
        "accesstoken",
        "drmkeys",
        "apikey",
        # AWS-style short words, signatures, credentials in other clothes
        "AK",
        "SK",
        "ak",
        "S3SK",
        "Signature",
        "Authorization",
        "Cookie",
        "Passphrase",
        "SignedUrl",
        "presignedUrl",
        "txSecret",
        "AccessKeyId",
        "auth_key",
        "x-cos-security-token",
        "KeyWordSecret",
        "ObjectKeyKey",
    ],
)
def test_secret_names(name: str):
    assert is_secret_name(name)


@pytest.mark.parametrize(
    "name",
    [
        "Keywords",
        "KeywordSet",
        "KeyWord",
        "KEYWORDS",
        "KeyPTSList",
        "KeyServerUrl",
        "TaskId",
        "Task",
        "TASK",
        "Design",
        "Signal",
        "Author",
        "monkey",
        "Timestamp",
        # harmless compounds of a secret stem
        "KeyFrameInterval",
        "keyframe_interval",
        "TokenCount",
        "PbKeyLen",
        "ObjectKey",
        "TagKey",
        "SignLanguage",
        "q-sign-algorithm",
        "q-sign-time",
        "q-key-time",
        "X-Amz-SignedHeaders",
        "X-Amz-Date",
    ],
)
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
        "Extra": {"token": {"nested": "object secret", "ttl": 60}},
    }
    assert redact(body) == 4
    s3 = body["WorkflowTaskEvent"]["InputInfo"]["S3InputInfo"]
    assert s3 == {"S3Bucket": "b", "S3SecretId": MARKER, "S3SecretKey": MARKER}
    storage = body["WorkflowTaskEvent"]["MediaProcessResultSet"][0]["TranscodeTask"]["Output"]["OutputStorage"]
    assert storage["S3OutputStorage"]["S3SecretKey"] == MARKER
    assert body["Extra"]["token"] == {"nested": MARKER, "ttl": 60}


def test_plural_and_run_together_names_lose_their_strings_even_in_lists():
    body = {
        "Secrets": ["a", "b"],
        "DrmKeys": [{"KeyId": "k1", "Value": "v1"}],
        "clientsecret": "c",
        "accesstoken": "t",
        "AK": "AKID",
        "SK": "sk",
        "Passphrase": "srt-pass",
        "Cookie": "s=1",
        "Authorization": "Bearer x",
        "SignedUrl": "https://x/y",
    }
    assert redact(body) == 12
    assert body == {
        "Secrets": [MARKER, MARKER],
        "DrmKeys": [{"KeyId": MARKER, "Value": MARKER}],
        "clientsecret": MARKER,
        "accesstoken": MARKER,
        "AK": MARKER,
        "SK": MARKER,
        "Passphrase": MARKER,
        "Cookie": MARKER,
        "Authorization": MARKER,
        "SignedUrl": MARKER,
    }


def test_harmless_values_numbers_and_booleans_are_kept():
    body = {
        "KeyFrameInterval": "2s",
        "TokenCount": "120",
        "PbKeyLen": 16,
        "ObjectKey": "in/a.mp4",
        "TagKey": "team",
        "SignLanguage": "ase",
        "Timestamp": 1700000000,
        "Key": 7,
        "Token": True,
        "Secret": None,
        "KeyWord": "cat",
        "Keywords": ["cat"],
    }
    kept = orjson.loads(orjson.dumps(body))
    assert redact(body) == 0 and body == kept


def test_sign_is_redacted_and_timestamp_kept():
    body = {"EventType": "WorkflowTask", "Timestamp": 1700000600, "Sign": "a" * 32}
    assert redact(body) == 1
    assert body == {"EventType": "WorkflowTask", "Timestamp": 1700000600, "Sign": MARKER}


def test_empty_secret_fields_are_left_as_they_are():
    body = {"S3SecretId": None, "S3SecretKey": "", "Keywords": ["a"]}
    assert redact(body) == 0
    assert body == {"S3SecretId": None, "S3SecretKey": "", "Keywords": ["a"]}


def test_redacting_twice_changes_nothing_more():
    body = {"Sign": "s", "Url": "https://b.cos.ap-guangzhou.myqcloud.com/a.mp4?sign=abc&t=1", "Key": "k"}
    assert redact(body) == 3
    once = dict(body)
    assert redact(body) == 0 and body == once


def test_any_nesting_is_walked_without_recursion():
    body: dict = {"EventType": "WorkflowTask"}
    node = body
    for _ in range(5000):
        node["x"] = {}
        node = node["x"]
    node["password"] = "hidden"
    assert redact(body) == 1 and node["password"] == MARKER


# --- signature parameters inside URLs ---------------------------------------------------------

COS = (
    "https://in-1250000000.cos.ap-guangzhou.myqcloud.com/video/a.mp4?q-sign-algorithm=sha1&q-ak=AKIDabc"
    "&q-sign-time=1700000000%3B1700003600&q-key-time=1700000000%3B1700003600&q-header-list=host"
    "&q-url-param-list=&q-signature=0123456789abcdef#t=5"
)
AWS = (
    "https://b.s3.amazonaws.com/a.mp4?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIA%2F20240101"
    "&X-Amz-Date=20240101T000000Z&X-Amz-Expires=3600&X-Amz-SignedHeaders=host"
    "&X-Amz-Security-Token=FwoGZX&X-Amz-Signature=deadbeef"
)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            COS,
            COS.replace("q-ak=AKIDabc", f"q-ak={MARKER}").replace(
                "q-signature=0123456789abcdef", f"q-signature={MARKER}"
            ),
        ),
        (AWS, AWS.replace("AKIA%2F20240101", MARKER).replace("FwoGZX", MARKER).replace("=deadbeef", f"={MARKER}")),
        (
            "https://vod.example.com/a.m3u8?t=65a1&us=72&sign=f00d",
            f"https://vod.example.com/a.m3u8?t=65a1&us=72&sign={MARKER}",
        ),
        ("/v1/mps/callback?token=url-token-1", f"/v1/mps/callback?token={MARKER}"),
        ("see https://x/y?a=1&Signature=zz for details", f"see https://x/y?a=1&Signature={MARKER} for details"),
        ("https://x/y?Expires=1&KeyFrameInterval=2&design=3", "https://x/y?Expires=1&KeyFrameInterval=2&design=3"),
    ],
    ids=["cos", "aws", "vod-key-hotlink", "url-token", "in-text", "harmless"],
)
def test_signature_parameters_are_scrubbed_from_urls(url: str, expected: str):
    assert scrub_url_params(url)[0] == expected


def test_urls_in_body_strings_and_lists_are_scrubbed():
    body = {
        "WorkflowTaskEvent": {
            "InputInfo": {"Type": "URL", "UrlInputInfo": {"Url": COS}},
            "Urls": [AWS, "https://plain/x.mp4"],
        }
    }
    assert redact(body) == 5
    dumped = orjson.dumps(body).decode()
    for secret in ("AKIDabc", "0123456789abcdef", "FwoGZX", "deadbeef", "AKIA"):
        assert secret not in dumped
    assert body["WorkflowTaskEvent"]["Urls"][1] == "https://plain/x.mp4"
    assert "q-sign-time=1700000000%3B1700003600" in body["WorkflowTaskEvent"]["InputInfo"]["UrlInputInfo"]["Url"]


# --- whatever else a body holds ------------------------------------------------------------------------


def test_a_body_without_secret_names_loses_only_its_sign():
    raw = orjson.dumps({"EventType": "WorkflowTask", "Keywords": ["a"], "Sign": "a" * 32, "X": {"Word": "y"}})
    body = orjson.loads(raw)
    assert redact(body) == 1
    assert body == {"EventType": "WorkflowTask", "Keywords": ["a"], "Sign": MARKER, "X": {"Word": "y"}}


@pytest.mark.parametrize(
    "raw",
    [
        b'{"EventType": "WorkflowTask", "Out": {"S3SecretKey": "sk"}}',
        b'{"EventType": "WorkflowTask", "Out": {"\\u0053ecretKey": "sk"}}',  # an escaped name is still found
        b'{"EventType": "WorkflowTask", "Sign": "' + b"a" * 32 + b'", "Out": {"Sign": "sk"}}',
        b'{"EventType": "WorkflowTask", "Out": {"NotifyKey": "sk"}}',
        b'{"EventType": "WorkflowTask", "Out": [{"access_token": "sk"}]}',
        b'{"EventType": "WorkflowTask", "Out": {"KeyWord": "x", "AK": "sk"}}',
        b'{"EventType": "WorkflowTask", "Out": {"KeyWords": "x", "ApikeyWord": "y", "DrmKeys": ["sk"]}}',
        b'{"EventType": "WorkflowTask", "Out": {"Url": "https://x/a.mp4?sign=sk"}}',
        b'{"msgId": "1", "msgBody": "{\\"EventType\\": \\"WorkflowTask\\", \\"X\\": {\\"Key\\": \\"sk\\"}}"}',
    ],
    ids=["s3", "escaped", "nested-sign", "key", "token", "ak", "key-outside-keyword", "url", "cmq-string"],
)
def test_a_secret_is_found_whatever_the_raw_bytes_look_like(raw: bytes):
    body = orjson.loads(raw)
    if "msgBody" in body:
        body = orjson.loads(body["msgBody"])
    assert redact(body) >= 1
    assert b'"sk"' not in orjson.dumps(body) and b"=sk" not in orjson.dumps(body)


def test_a_verdict_does_not_depend_on_another_field():
    """``KeyWord`` is kept whether or not a secret elsewhere makes the walk run."""
    alone = {"KeyWord": "cat", "Sign": "a" * 32}
    beside_a_secret = {"KeyWord": "cat", "Sign": "a" * 32, "S3SecretKey": "sk"}
    for body in (alone, beside_a_secret):
        redact(body)
        assert body["KeyWord"] == "cat"
