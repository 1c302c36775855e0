"""The shared HTTP client: error bodies, retries and their waits, the rate limit, the session."""

import email.utils
import time

import pytest
import requests
import responses

from pixstor_azure import http, runtime
from pixstor_azure.errors import ServiceError

URL = "https://example.cognitiveservices.azure.com/some/operation"
CONFIG = http.HttpConfig(requests_per_second=0)


@pytest.fixture
def served():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


def post(config=CONFIG):
    return http.post("Test Service", URL, config, headers={"X-Key": "k"}, data=b"image")


@pytest.mark.parametrize(
    ("body", "code", "inner", "message"),
    [
        (
            {
                "error": {
                    "code": "InvalidRequest",
                    "message": "Bad image.",
                    "innererror": {"code": "InvalidImageFormat", "message": "x"},
                }
            },
            "InvalidRequest",
            "InvalidImageFormat",
            "Bad image.",
        ),
        (
            {"code": "NotFoundIteration", "message": "Invalid iteration"},
            "NotFoundIteration",
            None,
            "Invalid iteration",
        ),
        (
            {"Code": "BadRequestImageFormat", "Message": "Capitalised keys"},
            "BadRequestImageFormat",
            None,
            "Capitalised keys",
        ),
        ({"error": {"code": "401", "message": "Access denied"}}, "401", None, "Access denied"),
    ],
)
def test_both_error_body_shapes_become_one_exception(served, body, code, inner, message):
    served.add(responses.POST, URL, json=body, status=400)
    with pytest.raises(ServiceError) as caught:
        post()
    error = caught.value
    assert (error.http_status, error.code, error.inner_code) == (400, code, inner)
    assert message in str(error) and str(error).startswith("Test Service answered 400 ")
    assert len(served.calls) == 1


def test_error_without_json_body_uses_text_and_header(served):
    served.add(
        responses.POST,
        URL,
        body="Bad gateway page",
        status=404,
        headers={"x-ms-error-code": "NotFound"},
    )
    with pytest.raises(ServiceError) as caught:
        post()
    assert caught.value.code == "NotFound"
    assert "Bad gateway page" in str(caught.value)


def test_retry_after_as_http_date(served, waits):
    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    served.add(responses.POST, URL, status=503, headers={"Retry-After": when})
    served.add(responses.POST, URL, json={"ok": True})
    assert post() == {"ok": True}
    assert len(waits) == 1 and 27 <= waits[0] <= 33.1


def test_retry_after_header_zero_is_honoured(served, waits):
    served.add(responses.POST, URL, status=429, headers={"Retry-After": "0"})
    served.add(responses.POST, URL, json={"ok": True})
    assert post() == {"ok": True}
    assert waits == [0.0]


@pytest.mark.parametrize("status", [400, 401, 403, 404, 415])
def test_client_errors_are_not_retried(served, status):
    served.add(responses.POST, URL, json={"code": "X", "message": "no"}, status=status)
    with pytest.raises(ServiceError):
        post()
    assert len(served.calls) == 1


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
def test_transient_statuses_are_retried(served, status, waits):
    served.add(responses.POST, URL, json={"code": "Busy", "message": "later"}, status=status)
    served.add(responses.POST, URL, json={"ok": 1})
    assert post() == {"ok": 1}
    assert len(served.calls) == 2 and len(waits) == 1


def test_tls_failure_is_not_retried(served):
    served.add(responses.POST, URL, body=requests.exceptions.SSLError("certificate verify failed"))
    with pytest.raises(ServiceError, match="TLS verification failed"):
        post()
    assert len(served.calls) == 1


def test_request_carries_timeouts_and_headers(served):
    served.add(responses.POST, URL, json={})
    post(http.HttpConfig(connect_timeout=3, read_timeout=44, requests_per_second=0))
    request = served.calls[0].request
    assert request.headers["Accept"] == "application/json"
    assert request.headers["User-Agent"].startswith("pixstor-azure/")
    assert request.req_kwargs["timeout"] == (3, 44)
    assert request.req_kwargs["verify"] not in (False, None, "")  # True or a CA bundle


def test_rate_limit_spaces_requests(served, waits, monkeypatch):
    monkeypatch.setattr(http.time, "monotonic", lambda: 1000.0)  # time stands still
    served.add(responses.POST, URL, json={})
    config = http.HttpConfig(requests_per_second=4)
    for _ in range(3):
        post(config)
    assert waits == [0.25, 0.5]


def test_rate_limits_are_per_service(served, waits, monkeypatch):
    monkeypatch.setattr(http.time, "monotonic", lambda: 1000.0)
    served.add(responses.POST, URL, json={})
    config = http.HttpConfig(requests_per_second=1)
    http.post("A", URL, config, headers={}, data=b"")
    http.post("B", URL, config, headers={}, data=b"")
    assert waits == []


def test_one_session_per_process_made_anew_after_fork(monkeypatch):
    first = http.connections().session
    assert http.connections().session is first
    monkeypatch.setattr(runtime.os, "getpid", lambda: -1)
    assert http.connections().session is not first
