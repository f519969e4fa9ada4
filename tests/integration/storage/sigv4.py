"""An independent AWS Signature V4 check of presigned URLs, written from the AWS spec (not from minio).

moto_server accepts any signature and never expires presigned URLs, so the S3 tests check the
URLs' signature and expiry window here, offline, the way MinIO/S3 would.
"""
from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime, timedelta
from urllib.parse import quote, unquote, urlsplit


class PresignedUrlRejected(AssertionError):
    """The URL would be refused by an S3 server that checks signatures and expiry."""


def _q(value: str) -> str:
    return quote(value, safe="-_.~")


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode(), hashlib.sha256).digest()


def signed_at(url: str) -> datetime:
    """The signing time (``X-Amz-Date``) of a presigned URL."""
    params = dict(_query_pairs(url))
    return datetime.strptime(params["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)


def verify_presigned_url(
    url: str, *, method: str, access_key: str, secret_key: str, region: str, now: datetime
) -> None:
    """Raise ``PresignedUrlRejected`` unless ``url`` is a valid SigV4 presigned ``method`` URL at time ``now``."""
    parts = urlsplit(url)
    pairs = _query_pairs(url)
    params = dict(pairs)
    if params.get("X-Amz-Algorithm") != "AWS4-HMAC-SHA256":
        raise PresignedUrlRejected("not a SigV4 presigned URL")
    if params.get("X-Amz-SignedHeaders") != "host":
        raise PresignedUrlRejected("unexpected signed headers")
    cred_access, day, cred_region, service, terminator = params["X-Amz-Credential"].split("/")
    if (cred_access, cred_region, service, terminator) != (access_key, region, "s3", "aws4_request"):
        raise PresignedUrlRejected("credential scope mismatch")
    amz_date = params["X-Amz-Date"]
    if not amz_date.startswith(day):
        raise PresignedUrlRejected("credential date differs from X-Amz-Date")

    canonical_query = "&".join(f"{_q(k)}={_q(v)}" for k, v in sorted(pairs) if k != "X-Amz-Signature")
    canonical_request = "\n".join(
        [method, parts.path or "/", canonical_query, f"host:{parts.netloc}", "", "host", "UNSIGNED-PAYLOAD"]
    )
    scope = f"{day}/{region}/s3/aws4_request"
    string_to_sign = "\n".join(
        ["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical_request.encode()).hexdigest()]
    )
    key = _hmac(f"AWS4{secret_key}".encode(), day)
    for part in (region, "s3", "aws4_request"):
        key = _hmac(key, part)
    expected = hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, params.get("X-Amz-Signature", "")):
        raise PresignedUrlRejected("signature does not match")
    if now >= signed_at(url) + timedelta(seconds=int(params["X-Amz-Expires"])):
        raise PresignedUrlRejected("request has expired")


def _query_pairs(url: str) -> list[tuple[str, str]]:
    query = urlsplit(url).query
    return [(unquote(k), unquote(v)) for k, _, v in (item.partition("=") for item in query.split("&") if item)]
