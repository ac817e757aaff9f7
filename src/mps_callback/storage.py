"""Where a produced file lives and the URL to fetch it.

MPS reports outputs as a path plus an ``OutputStorage`` (COS bucket and region, S3, or
VOD); when a result omits its storage, MPS's documented default is the input's storage.
Live results carry no storage at all: ``MPS_LIVE_OUTPUT_STORAGE`` names one for them.

Buckets and regions come from the notification body, so they are checked against the
naming rules of their service before they become part of a host name: a bucket such as
``evil.com/x?`` or ``a@b`` yields no URL rather than a URL pointing somewhere else. Object
keys are percent-encoded (RFC 3986), so ``ep#1 v2?.mp4`` fetches that object and not ``ep``.

It sits at the bottom of the package, beside ``config``, not in ``project/``: the settings
(``MPS_CDN_DOMAINS``, ``MPS_LIVE_OUTPUT_STORAGE``) are checked with these rules at start,
and the projector applies them, so both import it downward.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any
from urllib.parse import quote, urlsplit

#: COS: ``BucketName-APPID``, lowercase letters, digits and hyphens, one DNS label.
COS_BUCKET = re.compile(r"(?=.{1,63}\Z)[a-z0-9](?:[a-z0-9-]*[a-z0-9])?-[0-9]+")
#: COS regions: ``ap-guangzhou``, ``na-siliconvalley``, ``ap-shanghai-fsi``.
COS_REGION = re.compile(r"[a-z]+(?:-[a-z0-9]+){1,3}")
#: S3 (general purpose buckets): 3-63 lowercase letters, digits, dots and hyphens, letter or digit at both ends.
S3_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
#: S3 regions: ``us-east-1``, ``ap-southeast-2``, ``us-gov-west-1``, ``cn-north-1``.
S3_REGION = re.compile(r"[a-z]{2}(?:-[a-z]+){1,2}-[0-9]{1,2}")
#: What else AWS forbids in a bucket name (https://docs.aws.amazon.com/AmazonS3/latest/userguide/bucketnamingrules.html).
S3_FORBIDDEN = re.compile(r"\.\.|\.-|-\.|^xn--|^sthree-|^amzn-s3-demo-|-s3alias$|--ol-s3$|--x-s3$|^\d+\.\d+\.\d+\.\d+$")
#: A host name label (RFC 1123).
HOST_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")


def cos_bucket_ok(bucket: str) -> bool:
    return COS_BUCKET.fullmatch(bucket) is not None


def s3_bucket_ok(bucket: str) -> bool:
    return S3_BUCKET.fullmatch(bucket) is not None and S3_FORBIDDEN.search(bucket) is None


def any_bucket_ok(bucket: str) -> bool:
    """VOD buckets and CDN keys: a bucket of either service."""
    return cos_bucket_ok(bucket) or s3_bucket_ok(bucket)


def cos_origin(bucket: str, region: str) -> str | None:
    """``https://{bucket}.cos.{region}.myqcloud.com`` when both are COS names."""
    if not (cos_bucket_ok(bucket) and COS_REGION.fullmatch(region)):
        return None
    return f"https://{bucket}.cos.{region}.myqcloud.com"


def s3_origin(bucket: str, region: str) -> str | None:
    """Virtual-hosted style; path style for buckets with dots, which would not match AWS's TLS certificate."""
    if not (s3_bucket_ok(bucket) and S3_REGION.fullmatch(region)):
        return None
    domain = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
    if "." in bucket:
        return f"https://s3.{region}.{domain}/{bucket}"
    return f"https://{bucket}.s3.{region}.{domain}"


#: Storage type -> the rule its bucket must pass before any URL (CDN or not) is built for it.
BUCKET_RULES: dict[str, Callable[[str], bool]] = {"cos": cos_bucket_ok, "s3": s3_bucket_ok, "vod": any_bucket_ok}
#: Storage type -> the origin its bucket and region are served from (VOD has none: its files are FileIds).
ORIGINS: dict[str, Callable[[str, str], str | None]] = {"cos": cos_origin, "s3": s3_origin}


def object_path(path: str) -> str | None:
    """``path`` as a URL path: every byte but unreserved characters and ``/`` percent-encoded (UTF-8).

    None when no URL can name the object: a ``.`` or ``..`` segment is removed by every URL parser
    (encoded or not), so the URL would fetch another object.
    """
    key = path if path.startswith("/") else "/" + path
    if any(segment in (".", "..") for segment in key.split("/")):
        return None
    try:
        return quote(key, safe="/", encoding="utf-8", errors="strict")
    except UnicodeEncodeError:  # a lone surrogate: not a key COS or S3 could hold
        return None


@dataclass(frozen=True, slots=True)
class Storage:
    type: str  # cos, s3, vod, url (a base URL), unknown
    bucket: str | None = None
    region: str | None = None
    base: str | None = None  # type url: the origin paths are served from

    def url(self, path: str, cdn_domains: Mapping[str, str]) -> str | None:
        """The URL of ``path`` here: a CDN domain configured for the bucket wins; None when none is safe."""
        origin = self.origin(cdn_domains)
        key = object_path(path) if origin else None
        return origin + key if origin and key else None

    def origin(self, cdn_domains: Mapping[str, str]) -> str | None:
        """Scheme and host (S3 path style: and bucket) that paths of this storage are appended to."""
        if self.type == "url":
            return self.base
        rule = BUCKET_RULES.get(self.type)
        if not self.bucket or rule is None or not rule(self.bucket):
            return None
        if self.bucket in cdn_domains:
            return cdn_domains[self.bucket]
        build = ORIGINS.get(self.type)
        return build(self.bucket, self.region) if build and self.region else None


UNKNOWN = Storage("unknown")


# ------------------------------------------------------------------ settings: CDN domains and live storage


def http_origin(value: str) -> str:
    """``https://host[:port]`` normalised (lowercase scheme and host, no trailing ``/``); ValueError saying why not."""
    if "://" not in value:
        raise ValueError(f"{value!r} has no scheme (write https://{value.lstrip('/')})")
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError as error:
        raise ValueError(f"{value!r} is not a URL ({error})") from None
    problems = (
        (parts.scheme.lower() not in ("http", "https"), f"scheme {parts.scheme!r} is not http or https"),
        (parts.username is not None or parts.password is not None, "it has user info (@)"),
        (parts.path not in ("", "/"), f"it has a path ({parts.path!r}): give the domain only"),
        (bool(parts.query) or value.rstrip("/").endswith("?"), "it has a query (?)"),
        (bool(parts.fragment) or "#" in value, "it has a fragment (#)"),
        (
            not _host_ok(parts.hostname or "", parts.netloc),
            f"host {parts.hostname or ''!r} is not a domain name or IP address",
        ),
    )
    reason = next((why for bad, why in problems if bad), None)
    if reason:
        raise ValueError(f"{value!r}: {reason}")
    host = parts.hostname or ""
    shown = f"[{host}]" if ":" in host else host  # IPv6 keeps its brackets
    return f"{parts.scheme.lower()}://{shown}" + (f":{port}" if port is not None else "")


def _host_ok(host: str, netloc: str) -> bool:
    if not host:
        return False
    if netloc.startswith("["):
        return _is_ip(host, 6)
    if _is_ip(host, 4):
        return True
    labels = host.rstrip(".").split(".")
    return all(HOST_LABEL.fullmatch(label) for label in labels) and not labels[-1].isdigit()


def _is_ip(host: str, version: int) -> bool:
    try:
        return ipaddress.ip_address(host).version == version
    except ValueError:
        return False


def cdn_domains_setting(text: str) -> dict[str, str]:
    """``MPS_CDN_DOMAINS``: ``bucket=https://cdn.example.com,...`` -> bucket -> origin.

    A ValueError names the bad entry."""
    pairs: dict[str, str] = {}
    for entry in (part.strip() for part in text.split(",")):
        if not entry:
            continue
        if "=" not in entry:
            raise ValueError(f"entry {entry!r} is not bucket=https://cdn-domain")
        bucket, _, domain = (piece.strip() for piece in entry.partition("="))
        if bucket in pairs:
            raise ValueError(f"entry {entry!r}: bucket {bucket!r} is listed twice")
        pairs[bucket] = domain
    return pairs


def cdn_entry(bucket: str, domain: str) -> str:
    """One CDN pair checked: the bucket a bucket name, the domain an http(s) origin; the origin normalised."""
    if not any_bucket_ok(bucket):
        raise ValueError(f"entry {bucket}={domain}: {bucket!r} is not a COS or S3 bucket name")
    try:
        return http_origin(domain)
    except ValueError as error:
        raise ValueError(f"entry {bucket}={domain}: {error}") from None


#: MPS_LIVE_OUTPUT_STORAGE scheme -> (bucket rule, region pattern).
STORAGE_SCHEMES: dict[str, tuple[Callable[[str], bool], re.Pattern[str]]] = {
    "cos": (cos_bucket_ok, COS_REGION),
    "s3": (s3_bucket_ok, S3_REGION),
}


@lru_cache(maxsize=16)
def storage_setting(text: str) -> Storage:
    """``cos://bucket-appid.region``, ``s3://bucket.region`` or ``https://host``; ValueError saying why not."""
    scheme, separator, rest = text.partition("://")
    if separator and scheme.lower() in ("http", "https"):
        return Storage("url", base=http_origin(text))
    rules = STORAGE_SCHEMES.get(scheme.lower()) if separator else None
    if rules is None:
        raise ValueError(f"{text!r} is not cos://bucket-appid.region, s3://bucket.region or https://host")
    bucket, _, region = rest.rstrip("/").rpartition(".")
    bucket_ok, region_pattern = rules
    if not bucket_ok(bucket):
        raise ValueError(f"{text!r}: {bucket!r} is not a valid {scheme.upper()} bucket name")
    if not region_pattern.fullmatch(region):
        raise ValueError(f"{text!r}: {region!r} is not a valid {scheme.upper()} region")
    return Storage(scheme.lower(), bucket, region)


@dataclass(frozen=True, slots=True)
class OutputUrls:
    """How output paths become URLs: a CDN domain per bucket (``MPS_CDN_DOMAINS``), and the storage
    of live results' paths (``MPS_LIVE_OUTPUT_STORAGE``), which MPS sends without one."""

    cdn_domains: Mapping[str, str] = field(default_factory=dict)
    live_storage: Storage | None = None


def _object(value: dict[str, Any], key: str) -> dict[str, Any]:
    """``value[key]`` when it is an object, else empty: MPS leaves unused storage kinds out or null."""
    found = value.get(key)
    return found if isinstance(found, dict) else {}


def output_storage(value: Any) -> Storage | None:
    """A ``TaskOutputStorage`` (``Type`` + ``CosOutputStorage``/``S3OutputStorage``/``VODOutputStorage``)."""
    if not isinstance(value, dict):
        return None
    kind = str(value.get("Type") or "").upper()
    cos, s3, vod = (_object(value, key) for key in ("CosOutputStorage", "S3OutputStorage", "VODOutputStorage"))
    s3_storage = Storage("s3", _str(s3.get("S3Bucket")), _str(s3.get("S3Region"))) if _str(s3.get("S3Bucket")) else None
    vod_storage = Storage("vod", _str(vod.get("Bucket")), _str(vod.get("Region"))) if vod else None
    cos_storage = Storage("cos", _str(cos.get("Bucket")), _str(cos.get("Region"))) if _str(cos.get("Bucket")) else None
    if kind == "AWS-S3" and s3_storage:
        return s3_storage
    if kind == "VOD" and vod_storage:
        return vod_storage
    return cos_storage or s3_storage or vod_storage  # Type missing or unclear: COS is MPS's default


def input_storage(info: Any) -> Storage | None:
    """The storage of a ``MediaInputInfo``: where outputs go when a task names no OutputStorage."""
    if not isinstance(info, dict):
        return None
    cos, s3 = info.get("CosInputInfo"), info.get("S3InputInfo")
    if isinstance(cos, dict) and _str(cos.get("Bucket")):
        return Storage("cos", _str(cos.get("Bucket")), _str(cos.get("Region")))
    if isinstance(s3, dict) and _str(s3.get("S3Bucket")):
        return Storage("s3", _str(s3.get("S3Bucket")), _str(s3.get("S3Region")))
    return None


def input_location(info: Any) -> str | None:
    """The input as one searchable string: its URL, ``cos://bucket/object``, ``s3://...`` or ``vod://FileId``."""
    if not isinstance(info, dict):
        return None
    for key, scheme, bucket_key, object_key in (
        ("CosInputInfo", "cos", "Bucket", "Object"),
        ("S3InputInfo", "s3", "S3Bucket", "S3Object"),
    ):
        part = info.get(key)
        if isinstance(part, dict) and part.get(object_key):
            return f"{scheme}://{part.get(bucket_key) or ''}{_slash(part[object_key])}"
    url = info.get("UrlInputInfo")
    if isinstance(url, dict) and url.get("Url"):
        return str(url["Url"])
    vod = info.get("VODInputInfo")
    if isinstance(vod, dict) and (vod.get("FileId") or vod.get("Object")):
        return f"vod://{vod.get('FileId') or vod.get('Object')}"
    return None


def _str(value: Any) -> str | None:
    """A storage field as MPS sends it (a non-empty string), or nothing."""
    return value if isinstance(value, str) and value else None


def _slash(path: Any) -> str:
    text = str(path)
    return text if text.startswith("/") else "/" + text
