"""Where a produced file lives and the URL to fetch it.

MPS reports outputs as a path plus an ``OutputStorage`` (COS bucket and region, S3, or
VOD); when a result omits its storage, MPS's documented default is the input's storage.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping


@dataclass(frozen=True, slots=True)
class Storage:
    type: str  # cos, s3, vod, unknown
    bucket: str | None = None
    region: str | None = None

    def url(self, path: str, cdn_domains: Mapping[str, str]) -> str | None:
        """The URL of ``path`` here: a CDN domain configured for the bucket wins."""
        if not path.startswith("/"):
            path = "/" + path
        if self.bucket and self.bucket in cdn_domains:
            return cdn_domains[self.bucket].rstrip("/") + path
        if self.type == "cos" and self.bucket and self.region:
            return f"https://{self.bucket}.cos.{self.region}.myqcloud.com{path}"
        if self.type == "s3" and self.bucket and self.region:
            return f"https://{self.bucket}.s3.{self.region}.amazonaws.com{path}"
        return None


UNKNOWN = Storage("unknown")


def output_storage(value: Any) -> Storage | None:
    """A ``TaskOutputStorage`` (``Type`` + ``CosOutputStorage``/``S3OutputStorage``/``VODOutputStorage``)."""
    if not isinstance(value, dict):
        return None
    kind = str(value.get("Type") or "").upper()
    cos, s3, vod = (value.get(key) if isinstance(value.get(key), dict) else {} for key in
                    ("CosOutputStorage", "S3OutputStorage", "VODOutputStorage"))
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
