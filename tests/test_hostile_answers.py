"""Answers that would exhaust or hang the process, from real sockets, in whole processes as
PixStor runs the plugins: a body announced as 2 GB, a chunked body that never ends, and a server
that sends one byte every two seconds. Each file ends FATAL with one line, within its budget,
and the process's memory stays small."""

import socket
import threading
import time

import pytest

from tests import imagefactory
from tests.test_wholeprocess import run_plugin
from tests.wording import assert_mentions

# What the process may grow to while the answer is refused (the plugin and its libraries take
# about 60 MB; today's code reached 5.9 GB on these answers).
MEMORY_MB = 250


class Hostile:
    """A server that answers every request with ``answer(conn)``, on a thread per connection."""

    def __init__(self, answer) -> None:
        self.answer = answer
        self.socket = socket.socket()
        self.socket.bind(("127.0.0.1", 0))
        self.socket.listen(16)
        self.url = f"http://127.0.0.1:{self.socket.getsockname()[1]}"
        self.connections = []
        self.stop = threading.Event()
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self) -> None:
        while True:
            try:
                conn, _ = self.socket.accept()
            except OSError:
                return
            self.connections.append(conn)
            threading.Thread(target=self.handle, args=(conn,), daemon=True).start()

    def handle(self, conn) -> None:
        conn.settimeout(30)
        try:
            data = b""
            while b"\r\n\r\n" not in data:  # the headers; the picture after them is not read
                data += conn.recv(65536)
            self.answer(conn, self.stop)
        except OSError:  # the client hung up: what it should do
            pass

    def close(self) -> None:
        self.stop.set()
        self.socket.close()
        for conn in self.connections:
            conn.close()


def huge_length(conn, stop) -> None:
    conn.sendall(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2000000000\r\n\r\n"
    )
    block = b" " * 65536
    while not stop.is_set():
        conn.sendall(block)


def endless_chunks(conn, stop) -> None:
    conn.sendall(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    chunk = b"10000\r\n" + b" " * 65536 + b"\r\n"
    while not stop.is_set():
        conn.sendall(chunk)


def trickle(conn, stop) -> None:
    answer = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 900\r\n\r\n"
    for byte in answer + b" " * 900:
        if stop.wait(2.0):
            return
        conn.sendall(bytes([byte]))


def run(tmp_path, server, budget="15"):
    photo = imagefactory.jpeg(tmp_path / "a", size=(320, 240))
    started = time.monotonic()
    statuses, log, peak_mb = run_plugin(
        tmp_path,
        {"CUSTOM_VISION_ENDPOINT": server.url, "PIXSTOR_AZURE_FILE_TIMEOUT": budget},
        photo,
        peak=True,
    )
    return (
        statuses,
        [line for line in log.splitlines() if "FATAL" in line],
        peak_mb,
        (time.monotonic() - started),
    )


@pytest.mark.parametrize("answer", [huge_length, endless_chunks], ids=["2GB", "endless"])
def test_an_answer_larger_than_the_cap_is_one_fatal_line_and_no_memory(tmp_path, answer):
    server = Hostile(answer)
    try:
        statuses, lines, peak_mb, _ = run(tmp_path, server)
    finally:
        server.close()
    assert statuses == ["FATAL"]
    assert len(lines) == 1
    assert_mentions(lines[0], "client.OVERSIZED", name="Custom Vision", megabytes=8)
    assert peak_mb < MEMORY_MB


def test_a_server_sending_a_byte_every_two_seconds_is_cut_off_at_the_budget(tmp_path):
    server = Hostile(trickle)
    try:
        statuses, lines, _, seconds = run(tmp_path, server, budget="5")
    finally:
        server.close()
    assert statuses == ["FATAL"]
    assert len(lines) == 1
    assert_mentions(lines[0], "client.NO_ANSWER_IN_TIME", name="Custom Vision")
    assert_mentions(lines[0], "client.OUT_OF_TIME_PART", seconds=5)
    # Today's code was still reading at 200 s; the budget is 5 s (start-up takes about 1 s).
    assert seconds < 20
