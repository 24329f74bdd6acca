"""sigv4_headers on the AWS Signature Version 4 test suite (copied in tests/sigv4/, see its
README): every case botocore runs, and the ones it skips that a mapping can express."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from gocomm_ses.signing import sigv4_headers

SUITE = Path(__file__).parent / "sigv4"
ACCESS_KEY_ID = "AKIDEXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
TIMESTAMP = datetime(2015, 8, 30, 12, 36, tzinfo=UTC)
#: "Bad request-line syntax": the request line holds a bare space, no HTTP client sends it.
UNSENDABLE = {"get-space"}


def _cases() -> list[Path]:
    return sorted(p.parent for p in SUITE.rglob("*.req") if p.parent.name not in UNSENDABLE)


def _parse(raw: str) -> tuple[str, str, list[tuple[str, str]], str]:
    head, _, body = raw.partition("\n\n")
    request_line, *lines = head.split("\n")
    method, rest = request_line.split(" ", 1)
    target = rest.rsplit(" ", 1)[0]
    headers: list[tuple[str, str]] = []
    for line in lines:
        if not line:
            continue
        if line[:1] in (" ", "\t") and headers:  # a folded continuation of the last header
            name, value = headers[-1]
            headers[-1] = (name, f"{value}\n{line}")
        else:
            name, _, value = line.partition(":")
            headers.append((name, value))
    return method, target, headers, body


@pytest.mark.parametrize("case", _cases(), ids=lambda p: p.name)
def test_the_aws_test_suite(case: Path) -> None:
    method, target, headers, body = _parse((case / f"{case.name}.req").read_text())
    host = next(v for n, v in headers if n.lower() == "host")
    creq = (case / f"{case.name}.creq").read_text()
    # As botocore: a token the canonical request holds is the credentials' session token.
    token_lines = [line for line in creq.split("\n") if line.startswith("x-amz-security-token:")]
    signs_token = bool(token_lines)
    token = token_lines[0].partition(":")[2] if signs_token else None
    given = [
        (n, v)
        for n, v in headers
        if n.lower() not in ("host", "x-amz-date")
        and (n.lower() != "x-amz-security-token" or not signs_token)
    ]
    # post-sts-header-after: the token header is added after signing, so it is not signed.
    given = [(n, v) for n, v in given if n.lower() != "x-amz-security-token"]
    added = sigv4_headers(
        method,
        f"https://{host}{target}",
        given,
        body,
        access_key_id=ACCESS_KEY_ID,
        secret_access_key=SECRET,
        region="us-east-1",
        service="service",
        timestamp=TIMESTAMP,
        session_token=token if signs_token else None,
    )
    assert added["Authorization"] == (case / f"{case.name}.authz").read_text().strip()
    assert added["X-Amz-Date"] == "20150830T123600Z"
    assert ("X-Amz-Security-Token" in added) is signs_token


def test_a_mapping_of_headers_and_bytes_body_sign_as_pairs_and_str() -> None:
    common = dict(
        access_key_id=ACCESS_KEY_ID,
        secret_access_key=SECRET,
        region="us-east-1",
        service="service",
        timestamp=TIMESTAMP,
    )
    url = "https://example.amazonaws.com/"
    as_mapping = sigv4_headers(
        "POST",
        url,
        {"Content-Type": "application/x-www-form-urlencoded"},
        b"Param1=value1",
        **common,
    )
    as_pairs = sigv4_headers(
        "POST",
        url,
        [("Content-Type", "application/x-www-form-urlencoded")],
        "Param1=value1",
        **common,
    )
    assert as_mapping == as_pairs
    expected = SUITE / "post-x-www-form-urlencoded" / "post-x-www-form-urlencoded.authz"
    assert as_mapping["Authorization"] == expected.read_text().strip()


def test_a_naive_timestamp_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        sigv4_headers(
            "GET",
            "https://example.amazonaws.com/",
            {},
            b"",
            access_key_id=ACCESS_KEY_ID,
            secret_access_key=SECRET,
            region="us-east-1",
            service="service",
            timestamp=datetime(2015, 8, 30, 12, 36),
        )
