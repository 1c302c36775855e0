"""An administrator who has only the README (issue 18): the install steps as written work on
the Python 3.6 PixStor nodes run, the tool's section makes what it uses before using it, the
samples are what the tool prints, and the tool's counts and quiet mode say what they mean.
The tool runs as a real command in a subprocess, against the local fake service."""

import logging
import os
import re
import shutil
import subprocess
import sys

import pytest

import azureclassification
from pixstor_azure.ground.pixstor import PluginStatus
from tests.conftest import ROOT
from tests.fakeazure import FakeAzure
from tests.toolrun import Tool, frames, serve

README = (ROOT / "README.md").read_text(encoding="utf-8")
PIXSTOR_PYTHON = "/usr/share/arcapix/apsearch/bin/python"


def section(heading: str) -> str:
    """The README's section under ``heading`` (to the next heading of any level)."""
    start = README.index(heading + "\n")
    following = re.search(r"^#{1,6} ", README[start + len(heading) :], re.M)
    end = start + len(heading) + following.start() if following else len(README)
    return README[start:end]


def code_blocks(text: str):
    return re.findall(r"```(?:sh)?\n(.*?)```", text, re.S)


def pins(path) -> dict:
    found = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        name, _, version = line.partition("==")
        if version:
            found[name.strip().lower()] = tuple(int(p) for p in version.split("."))
    return found


def as_version(text: str):
    return tuple(int(p) for p in text.split("."))


# ------------------------------------------------------------------ install, on Python 3.6


def test_install_step_2_upgrades_pip_and_pins_what_python_3_6_needs():
    """The pip of a fresh 3.6 environment (18.1) picks a requests that needs 3.10 and finds no
    Pillow wheel: the step brings pip to the version CI uses on 3.6 first, and bounds requests
    and Pillow to releases for 3.6 that hold the versions CI tests there."""
    install = section("## Install into PixStor Search")
    step = install[install.index("2. **") : install.index("3. **")]
    ci_pip = re.search(r'pip install --quiet "pip==([\d.]+)"', (ROOT / ".ci/run").read_text())
    assert ci_pip, "CI no longer pins 3.6's pip"
    assert f"python -m pip install 'pip=={ci_pip.group(1)}'" in step
    tested = pins(ROOT / ".ci" / "py36.txt")
    for package in ("requests", "Pillow"):
        found = re.search(rf"'{package}>=([\d.]+),<([\d.]+)'", step)
        assert found, f"{package} is not bounded for 3.6 in step 2"
        low, high = as_version(found.group(1)), as_version(found.group(2))
        assert low <= tested[package.lower()] < high


def test_the_tool_on_python_3_6_runs_with_pixstors_python():
    tool = section("## Outside PixStor: the command-line tool `pixstor-azure`")
    recipe = tool[tool.index("On a node whose Python is 3.6") :]
    (command,) = code_blocks(recipe)[:1]
    assert f"{PIXSTOR_PYTHON} -c" in command
    assert "python3 -c" not in command


def test_the_tool_section_makes_what_it_uses_before_using_it():
    tool = section("## Outside PixStor: the command-line tool `pixstor-azure`")
    blocks = "\n".join(code_blocks(tool))
    if ".venv/" in blocks:
        assert "-m venv .venv" in blocks
        assert blocks.index("-m venv .venv") < blocks.index(".venv/")
    exported = re.search(r"export PIXSTOR_AZURE_CONFIG=(\S+)", blocks)
    assert exported, "the tool's section names no INI file"
    install = section("## Install into PixStor Search")
    written = re.search(r"cp pixstor-azure\.example\.ini (\S+)", install)
    assert written and exported.group(1) == written.group(1)  # the file step 3 wrote


# ------------------------------------------------------------------ samples and counts


@pytest.fixture
def server():
    with FakeAzure() as fake:
        serve(fake)
        yield fake


def test_the_doctor_sample_is_what_doctor_prints(tmp_path, server):
    printed = Tool(tmp_path, server).run("doctor").stdout
    sample = code_blocks(section("### `doctor`: check the set-up"))[0]
    for plugin in ("azureclassification", "azurevision"):
        (said,) = re.findall(rf"^{plugin}: uses (.*)$", sample, re.M)
        (got,) = re.findall(rf"^{plugin}: uses (.*)$", printed, re.M)
        said_pairs = dict(p.split("=", 1) for p in re.findall(r"[\w-]+=[^,\s]+", said))
        got_pairs = dict(p.split("=", 1) for p in re.findall(r"[\w-]+=[^,\s]+", got))
        assert list(said_pairs) == list(got_pairs)
        for key in ("api", "task", "edge", "api-version", "features", "language"):
            assert said_pairs.get(key) == got_pairs.get(key), (plugin, key)


def test_max_calls_0_counts_only_files_that_need_a_call_as_left(tmp_path, server):
    folder = tmp_path / "archive"
    tool = Tool(tmp_path, server)
    frames(folder, 3, first=5)  # frame0005..7: done first
    assert tool.run("tag", "-p", "classification", str(folder)).returncode == 0
    frames(folder, 2)  # frame0000, frame0001: new, and before the others in name order

    run = tool.run("tag", "-p", "classification", "-j", "1", "--max-calls", "0", str(folder))

    assert run.returncode == 3, run
    assert run.count("azureclassification", "unchanged") == 3, run
    assert run.count("azureclassification", "left") == 2, run
    assert "0 billed calls made or allowed; 2 file(s) left" in run.stderr


def test_quiet_prints_no_notes(tmp_path, server):
    folder = tmp_path / "archive"
    frames(folder, 1)
    tool = Tool(tmp_path, server)
    for name in ("AZURE_VISION_ENDPOINT", "AZURE_VISION_KEY"):
        del tool.env[name]  # the Vision plugin is not set up: a note says it is left out

    loud = tool.run("tag", str(folder))
    quiet = tool.run("tag", "-q", str(folder))

    assert "azurevision: left out, not set up" in loud.stderr
    assert quiet.returncode == 0, quiet
    assert "left out" not in quiet.stderr
    assert quiet.count("azureclassification", "unchanged") == 1  # the summary is still there


def test_show_of_a_file_with_nothing_stored_prints_only_the_message(tmp_path, server):
    folder = tmp_path / "archive"
    frames(folder, 1)
    tool = Tool(tmp_path, server)
    tool.run("tag", "-p", "classification", str(folder))
    (other,) = frames(tmp_path / "other", 1, first=9)

    shown = tool.run("show", str(other))

    assert shown.returncode == 1, shown
    assert shown.stdout == ""
    assert "nothing stored (never tagged" in shown.stderr


@pytest.mark.parametrize(
    "heading",
    ["## Install into PixStor Search", "## Outside PixStor: the command-line tool `pixstor-azure`"],
)
def test_the_readmes_commands_with_pixstors_python_run(tmp_path, heading):
    """The ``-c`` program the README gives to PixStor's Python (install step 4, the tool on
    3.6), run as written from a folder holding the plugins as install step 3 copies them."""
    commands = re.findall(rf"{re.escape(PIXSTOR_PYTHON)} -c \\?\s*'([^']*)'", section(heading))
    assert commands, f"no command for PixStor's Python under {heading}"
    plugins = tmp_path / "available" / "azure"
    plugins.mkdir(parents=True)
    for name in ("azurevision.py", "azureclassification.py", "azureobjectdetection.py"):
        shutil.copy(str(ROOT / name), str(plugins / name))
    shutil.copytree(str(ROOT / "common"), str(plugins / "common"))
    (plugins / "pixstor-azure.ini").write_text("")
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path)}
    for program in commands:
        done = subprocess.run(
            [sys.executable, "-c", program, "--version"],
            cwd=str(plugins),
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            universal_newlines=True,
            timeout=60,
        )
        assert "Traceback" not in done.stderr, done.stderr
        # The tool's own answer: its version, or doctor's (install step 4 asks for it by name:
        # nothing is set up in the empty INI file).
        said = done.stdout.startswith("pixstor-azure ") or "no plugin is set up" in done.stdout
        assert said, done.stdout


def test_the_onnx_hint_names_what_installs_on_this_python(tmp_path, monkeypatch, logs):
    """On 3.6 the package itself does not install with pip: the hint names the extra's
    packages there (CI runs this on 3.6), the extra on newer Pythons."""
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as where it is not installed
    monkeypatch.setenv("CUSTOM_VISION_CLASSIFY_BACKEND", "onnx")
    monkeypatch.setenv("CUSTOM_VISION_CLASSIFY_MODEL", str(tmp_path / "export.zip"))
    picture = frames(tmp_path, 1)[0]

    status = azureclassification.AzureClassificationPlugin().process("x", str(picture))

    assert status == PluginStatus.FATAL
    (line,) = [r.getMessage() for r in logs.records if r.levelno >= logging.ERROR]
    assert "pip install onnxruntime numpy" in line
    if sys.version_info < (3, 7):  # noqa: UP036 (CI runs this on 3.6; ruff's oldest is 3.7)
        assert "pixstor-azure[onnx]" not in line
    else:
        assert "pip install 'pixstor-azure[onnx]'" in line
