"""The command-line tool in a subprocess, as an administrator runs it, against FakeAzure.

``Tool(tmp_path, server)`` holds the environment of one installation: its own INI file (empty),
store, answer cache and settings pointing at the fake service; ``run(...)`` runs the real
command (through ``tests/clirun.py``) and returns its exit status and output, ``start(...)``
leaves it running for tests that signal it.
"""

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Optional

from tests import imagefactory

LAUNCHER = Path(__file__).resolve().parent / "clirun.py"
FAKE_ARCAPIX = Path(__file__).resolve().parent / "fake_arcapix"
CLASSIFY_PROJECT = "3c9a1f0e-5b7d-4e2a-9f1c-8d6b4a2e0c17"
DETECT_PROJECT = "9a7e2c41-0b6d-4f3e-8c5a-2d1f0e9b8a76"


class Result:
    def __init__(self, completed: "subprocess.CompletedProcess") -> None:
        self.returncode = completed.returncode
        self.stdout = completed.stdout
        self.stderr = completed.stderr

    def count(self, label: str, status: str) -> int:
        """The ``label: status n`` count of the summary (0 when the line is absent)."""
        found = re.search(rf"^{re.escape(label)}: {re.escape(status)} (\d+)", self.stderr, re.M)
        return int(found.group(1)) if found else 0

    def number(self, what: str) -> int:
        """The number after ``what:`` in the summary, e.g. ``calls made``."""
        found = re.search(rf"^{re.escape(what)}: (\d+)", self.stderr, re.M)
        assert found, f"no {what!r} line in:\n{self.stderr}"
        return int(found.group(1))

    def __repr__(self) -> str:
        return f"exit {self.returncode}\n--- stdout\n{self.stdout}\n--- stderr\n{self.stderr}"


class Tool:
    def __init__(self, tmp_path: Path, server=None, **settings: str) -> None:
        self.tmp = tmp_path
        tmp_path.mkdir(parents=True, exist_ok=True)
        ini = tmp_path / "empty.ini"
        ini.write_text("")
        self.store = tmp_path / "store.sqlite3"
        self.cache = tmp_path / "answers.sqlite3"
        self.env = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": str(tmp_path),
            "PYTHONNOUSERSITE": "1",
            "PIXSTOR_AZURE_CONFIG": str(ini),
            "PIXSTOR_AZURE_STORE": str(self.store),
            "PIXSTOR_AZURE_CACHE": str(self.cache),
            # Rate slots and the holds of faults (a refused key) live there: one installation's
            # must not reach another test's.
            "PIXSTOR_AZURE_RATE_FILE": str(tmp_path / "rate.sqlite3"),
            "PIXSTOR_AZURE_BACKOFF": "0",
            "CUSTOM_VISION_REQUESTS_PER_SECOND": "0",
            "AZURE_VISION_REQUESTS_PER_SECOND": "0",
        }  # type: Dict[str, str]
        for name in ("LANG", "LC_ALL", "SYSTEMROOT"):
            if name in os.environ:
                self.env[name] = os.environ[name]
        if server is not None:
            self.env.update(custom_vision(server))
            self.env.update({"AZURE_VISION_ENDPOINT": server.url, "AZURE_VISION_KEY": server.key})
        self.env.update(settings)

    def command(self, *args: str) -> List[str]:
        return [sys.executable, str(LAUNCHER), *args]

    def run(self, *args: str, timeout: float = 120, cwd: Optional[Path] = None) -> Result:
        completed = subprocess.run(
            self.command(*args),
            env=self.env,
            cwd=str(cwd or self.tmp),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            universal_newlines=True,
            timeout=timeout,
        )
        return Result(completed)

    def start(self, *args: str) -> "subprocess.Popen":
        return subprocess.Popen(
            self.command(*args),
            env=self.env,
            cwd=str(self.tmp),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            universal_newlines=True,
        )


def serve(server) -> None:
    """Set FakeAzure up with the projects ``Tool`` points at."""
    server.add_project(CLASSIFY_PROJECT, "classify", published=["production"])
    server.add_project(DETECT_PROJECT, "detect", published=["production"])


def custom_vision(server) -> Dict[str, str]:
    """The settings that point both Custom Vision plugins at the projects ``serve`` publishes."""
    return {
        "CUSTOM_VISION_ENDPOINT": server.url,
        "CUSTOM_VISION_KEY": server.key,
        "CUSTOM_VISION_CLASSIFY_PROJECT": CLASSIFY_PROJECT,
        "CUSTOM_VISION_CLASSIFY_ITERATION": "production",
        "CUSTOM_VISION_DETECT_PROJECT": DETECT_PROJECT,
        "CUSTOM_VISION_DETECT_ITERATION": "production",
    }


def frames(folder: Path, count: int, first: int = 0) -> List[Path]:
    """``count`` distinct JPEGs, each of its own width (300 + 10 px per frame number), so a
    request to the fake says which frame it was for."""
    return [
        imagefactory.jpeg(
            folder,
            size=(300 + 10 * i, 200),
            color=(0, 0, 200) if i % 2 else (200, 0, 0),
            name=f"frame{i:04d}.jpg",
        )
        for i in range(first, first + count)
    ]


def width(path: Path) -> int:
    """The frame's width, as ``frames`` made it (what the fake sees of it)."""
    return 300 + 10 * int(path.stem[len("frame") :])


def sent_widths(server) -> List[int]:
    """The widths of the images the fake received, in order."""
    return [r.image_size[0] for r in list(server.requests) if r.image_size]
