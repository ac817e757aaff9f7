import pytest

from mps_callback.errors import Refused
from mps_callback.verify.signature import check_signature, sign

NOW = 1_800_000_000
KEYS = ("old-key", "new-key")


def signed(timestamp: int, key: str, **extra: object) -> dict:
    return {"NotificationType": "ProcessEof", "Timestamp": timestamp, "Sign": sign(timestamp, key), **extra}


def refusal(body: dict, keys: tuple[str, ...] = KEYS, now: float = NOW) -> Refused:
    with pytest.raises(Refused) as caught:
        check_signature(body, keys, 60, now)
    return caught.value


def test_sign_is_md5_of_timestamp_then_key():
    # printf '1800000600secret' | md5sum
    assert sign(1800000600, "secret") == "adfdc195e25829d84ae13d79c6890d15"


def test_every_configured_key_is_tried():
    assert check_signature(signed(NOW + 600, "old-key"), KEYS, 60, NOW) == "verified"
    assert check_signature(signed(NOW + 600, "new-key"), KEYS, 60, NOW) == "verified"


def test_key_first_order_and_uppercase_hex_are_accepted():
    import hashlib

    # MPS defines Sign as MD5; sign() cannot build this key-first order, so it is spelled out here
    key_first = hashlib.md5(f"new-key{NOW + 600}".encode()).hexdigest()  # noqa: S324 -- MPS Sign is MD5, see above
    body = {"Timestamp": NOW + 600, "Sign": key_first.upper()}
    assert check_signature(body, KEYS, 60, NOW) == "verified"


def test_wrong_key_is_refused():
    refused = refusal(signed(NOW + 600, "guessed"))
    assert (refused.status, refused.reason) == (401, "Sign does not match any configured NotifyKey")


def test_sign_reused_with_another_timestamp_is_refused():
    body = signed(NOW + 600, "new-key")
    body["Timestamp"] = NOW + 601
    assert refusal(body).status == 401


@pytest.mark.parametrize("missing", ["Timestamp", "Sign"])
def test_unsigned_is_refused_when_keys_are_configured(missing: str):
    body = signed(NOW + 600, "new-key")
    del body[missing]
    refused = refusal(body)
    assert refused.status == 401 and "unsigned" in refused.reason


def test_expiry_allows_the_skew_and_no_more():
    assert check_signature(signed(NOW - 60, "new-key"), KEYS, 60, NOW) == "verified"
    refused = refusal(signed(NOW - 61, "new-key"))
    assert refused.status == 401 and refused.reason.startswith("expired")


def test_absurdly_far_future_is_refused():
    assert check_signature(signed(NOW + 86400, "new-key"), KEYS, 60, NOW) == "verified"
    millis = NOW * 1000  # a Timestamp in milliseconds
    refused = refusal(signed(millis, "new-key"))
    assert refused.status == 401 and "future" in refused.reason


@pytest.mark.parametrize("timestamp", [1.5, "soon", True, [1], {"a": 1}, "-1", "1e9"])
def test_timestamp_must_be_an_integer(timestamp: object):
    refused = refusal({"Timestamp": timestamp, "Sign": "0" * 32})
    assert refused.status == 400 and "Timestamp" in refused.reason


def test_decimal_string_timestamp_is_tolerated():
    body = signed(NOW + 600, "new-key")
    body["Timestamp"] = str(NOW + 600)
    assert check_signature(body, KEYS, 60, NOW) == "verified"


@pytest.mark.parametrize("value", ["xyz", "0" * 31, "g" * 32, 12345, ["a"]])
def test_sign_must_be_hex_md5(value: object):
    refused = refusal({"Timestamp": NOW, "Sign": value})
    assert refused.status == 400 and "Sign" in refused.reason


def test_without_keys_nothing_is_enforced_but_the_outcome_is_recorded():
    assert check_signature({"NotificationType": "ProcessEof"}, (), 60, NOW) == "unsigned"
    assert check_signature(signed(NOW - 10_000, "any"), (), 60, NOW) == "unverified"
