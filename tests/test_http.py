"""The shared HTTP client: error bodies, retries and their waits in every form Azure writes
them, the file's time budget, the rate limit, faults that no retry cures, the session and its
connection pool."""

import email.utils
import logging
import socket
import threading
import time

import pytest
import requests
import responses

from pixstor_azure.answers import pacing, ratelimit
from pixstor_azure.ground import budget, runtime
from pixstor_azure.ground.errors import Refused, ServiceError, Unavailable, Unresolved
from pixstor_azure.http import client
from tests.fakeazure import FakeAzure
from tests.wording import assert_is, assert_mentions, says

URL = "https://example.cognitiveservices.azure.com/some/operation"
CONFIG = client.HttpConfig()
# Custom Vision's 429 (the wait in words of its own) and the API gateway's.
CUSTOM_VISION_429 = {"code": "429", "message": "Rate limit is exceeded. Try again in 4 seconds."}
GATEWAY_429 = {
    "error": {
        "code": "429",
        "message": "Requests to the Predict Operation under Custom Vision Prediction API have "
        "exceeded rate limit of your current F0 pricing tier. Please retry after 3 seconds. "
        "Please contact Azure support service if you would like to further increase the "
        "default rate limit.",
    }
}


@pytest.fixture
def served():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


def post(config=CONFIG):
    return client.post("Test Service", URL, config, headers={"X-Key": "k"}, data=b"image")


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
    codes = f" {code}/{inner}" if inner else f" {code}"
    said = says("client.ANSWERED", name="Test Service", status=400, codes=codes, text=message)
    assert str(error) == said
    assert error.said == message
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


def test_429_line_names_one_code_in_one_sentence(served):
    served.add(responses.POST, URL, json=GATEWAY_429, status=429)

    with pytest.raises(ServiceError) as caught:
        post(client.HttpConfig(attempts=2))

    # The service's sentence, its advice to retry taken out, and how many attempts were made.
    text = (
        "Requests to the Predict Operation under Custom Vision Prediction API have exceeded "
        "rate limit of your current F0 pricing tier"
    )
    answered = says("client.ANSWERED", name="Test Service", status=429, codes="", text=text)
    attempts = says("client.ATTEMPTS_PART", name="", count=2)
    assert str(caught.value) == says("client.GIVEN_UP", name="", message=answered, why=attempts)
    assert "Please retry after 3 seconds" in caught.value.detail  # kept for the debug line


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


@pytest.mark.parametrize(
    ("headers", "text", "seconds"),
    [
        ({"Retry-After": "7"}, "", 7.0),
        ({"Retry-After": "2.5"}, "", 2.5),
        ({"retry-after-ms": "1500"}, "", 1.5),
        ({"x-ms-retry-after-ms": "250"}, "", 0.25),
        ({"x-ms-retry-after-ms": "250", "Retry-After": "1"}, "", 0.25),  # the finer one
        ({}, "Please retry after 55 seconds.", 55.0),
        ({}, "Rate limit is exceeded. Try again in 1 seconds.", 1.0),
        ({}, "please RETRY AFTER 1 second", 1.0),
        ({}, "Try again in 500 milliseconds.", 0.5),
        ({}, "Try again in 2 minutes.", 120.0),
        ({"Retry-After": "soon"}, "Try again in 3 seconds.", 3.0),
        ({"Retry-After": "-4"}, "", 0.0),
        ({}, "Too many requests.", None),
    ],
)
def test_every_form_of_the_wait_azure_writes(headers, text, seconds):
    assert client.retry_after(requests.structures.CaseInsensitiveDict(headers), text) == seconds


def test_custom_vision_wait_in_its_own_words_is_honoured(served, waits):
    served.add(responses.POST, URL, json=CUSTOM_VISION_429, status=429)
    served.add(responses.POST, URL, json={"ok": True})

    assert post() == {"ok": True}
    assert len(waits) == 1 and 4.0 <= waits[0] <= 4.4  # not the first backoff (0.5 to 1 s)


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


@pytest.mark.parametrize(
    "failure",
    [
        {"json": {"code": "Busy", "message": "later"}, "status": 503},
        {"body": requests.exceptions.ReadTimeout("timed out")},
        {"body": requests.exceptions.ConnectionError("Connection refused")},
    ],
    ids=["503", "timeout", "refused"],
)
def test_an_outage_is_told_apart_from_other_failures(served, failure):
    served.add(responses.POST, URL, **failure)
    with pytest.raises(Unavailable):  # what faults counts towards a pause
        post(client.HttpConfig(attempts=2))
    assert len(served.calls) == 2


def test_tls_failure_is_refused_without_retry(served):
    served.add(responses.POST, URL, body=requests.exceptions.SSLError("certificate verify failed"))
    with pytest.raises(Refused) as caught:
        post()
    assert_is(caught.value, "client.TLS_FAILED", name="Test Service")
    assert len(served.calls) == 1


def test_host_name_that_does_not_resolve_is_refused_at_once(monkeypatch, waits):
    asked = []

    def unknown(host, *args, **kwargs):
        asked.append(host)
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", unknown)

    with pytest.raises(Unresolved) as caught:
        post()

    assert caught.value.host == "example.cognitiveservices.azure.com"
    assert "Name or service not known" in str(caught.value)
    assert asked == ["example.cognitiveservices.azure.com"]  # no retry
    assert waits == []


def test_request_carries_timeouts_and_headers(served):
    served.add(responses.POST, URL, json={})
    post(client.HttpConfig(connect_timeout=3, read_timeout=44))
    request = served.calls[0].request
    assert request.headers["Accept"] == "application/json"
    assert request.headers["User-Agent"].startswith("pixstor-azure/")
    assert request.req_kwargs["timeout"] == (3, 44)
    assert request.req_kwargs["verify"] not in (False, None, "")  # True or a CA bundle


# ------------------------------------------------------------------ the file's time budget


def test_timeouts_are_capped_by_what_is_left_of_the_file_budget(served, clock):
    served.add(responses.POST, URL, json={})
    with budget.limit(20):
        clock.advance(18)
        post(client.HttpConfig(connect_timeout=5, read_timeout=60))
    assert served.calls[0].request.req_kwargs["timeout"] == pytest.approx((2, 2))


def test_no_wait_beyond_the_file_budget(served, waits):
    served.add(responses.POST, URL, status=503, headers={"Retry-After": "4"})

    with budget.limit(10), pytest.raises(Unavailable) as caught:
        post()

    assert len(served.calls) == 3  # at 0 s, 4-4.4 s, 8-8.8 s: the next would be past 10 s
    assert len(waits) == 2
    attempts = says("client.ATTEMPTS_PART", name="", count=3)
    spent = says("client.NO_TIME_FOR_ANOTHER_PART", name="", attempts=attempts)
    why = says(
        "client.OUT_OF_TIME_PART",
        name="",
        spent=spent,
        setting="PIXSTOR_AZURE_FILE_TIMEOUT",
        seconds=10,
    )
    assert_is(caught.value, "client.GIVEN_UP", why=why)


def test_no_rate_limit_slot_within_the_file_budget_is_not_waited_for(served, waits, tmp_path):
    served.add(responses.POST, URL, json={})
    config = client.HttpConfig(
        pacer=pacing.RatePacer(pacing.RateLimit(0.05, str(tmp_path / "rate")))
    )
    post(config)  # the next slot is 20.8 s away

    with budget.limit(10), pytest.raises(ServiceError) as caught:
        post(config)
    assert_mentions(caught.value, "client.NO_SLOT_PART")

    assert len(served.calls) == 1 and waits == []


# ------------------------------------------------------------------ the rate limit


def test_rate_limit_spaces_requests_with_a_margin(served, waits, tmp_path):
    served.add(responses.POST, URL, json={})
    config = client.HttpConfig(pacer=pacing.RatePacer(pacing.RateLimit(4, str(tmp_path / "rate"))))
    for _ in range(3):
        post(config)
    gap = 1 / (4 * (1 - ratelimit.MARGIN))
    assert waits == [pytest.approx(gap), pytest.approx(gap)]


def test_rate_limits_are_per_service_and_host(served, waits, tmp_path):
    other = "https://other.cognitiveservices.azure.com/some/operation"
    served.add(responses.POST, URL, json={})
    served.add(responses.POST, other, json={})
    config = client.HttpConfig(pacer=pacing.RatePacer(pacing.RateLimit(1, str(tmp_path / "rate"))))
    client.post("A", URL, config, headers={}, data=b"")
    client.post("B", URL, config, headers={}, data=b"")
    client.post("A", other, config, headers={}, data=b"")
    assert waits == []


# ------------------------------------------------------------------ the session


def test_one_session_per_process_made_anew_after_fork(monkeypatch):
    first = client.connections().session
    assert client.connections().session is first
    monkeypatch.setattr(runtime.os, "getpid", lambda: -1)
    assert client.connections().session is not first


def test_pool_is_sized_to_the_jobs():
    pool = client.connections()
    assert pool.fit(4) == client.POOL  # never fewer than requests' own default
    assert pool.fit(32) == 32
    assert pool.fit(8) == 32  # never shrinks under threads already at work
    adapter = pool.session.get_adapter("https://example.cognitiveservices.azure.com/")
    assert adapter._pool_maxsize == 32


def test_every_thread_keeps_its_connection(caplog):
    """More threads at once than requests' default pool of 10: with the pool fitted to them,
    no connection is opened, used once and thrown away."""
    jobs = 12
    client.connections().fit(jobs)
    caplog.set_level(logging.WARNING, logger="urllib3.connectionpool")
    with FakeAzure() as fake:
        start = threading.Barrier(jobs)
        statuses = []

        def work():
            start.wait()
            for _ in range(2):
                try:
                    client.post("Fake", fake.url + "/nothing", CONFIG, headers={}, data=b"")
                except ServiceError as exc:  # the fake answers 404: a full round trip
                    statuses.append(exc.http_status)

        threads = [threading.Thread(target=work) for _ in range(jobs)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert statuses == [404] * 2 * jobs
        assert fake.connections <= jobs
    assert "discarding connection" not in caplog.text  # urllib3's word when the pool is full


@pytest.mark.parametrize(
    ("first", "resent"),
    [
        (requests.exceptions.ReadTimeout("timed out"), {"Test Service": 1}),  # sent, unanswered
        (requests.exceptions.ConnectTimeout("timed out"), {}),  # never reached the service
        (requests.exceptions.ConnectionError("Connection refused"), {}),
    ],
    ids=["read-timeout", "connect-timeout", "refused"],
)
def test_a_post_sent_again_after_no_answer_is_counted_as_maybe_billed_twice(
    served, waits, first, resent
):
    served.add(responses.POST, URL, body=first)
    served.add(responses.POST, URL, json={"ok": True})
    assert post(client.HttpConfig(attempts=2)) == {"ok": True}
    assert client.resends().snapshot() == resent
