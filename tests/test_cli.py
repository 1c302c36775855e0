"""The command-line tool: the plugins over a folder, outside PixStor, into the SQLite store.

The first tests call ``cli.main`` in this process; the rest run the real command in a
subprocess (``tests/toolrun.py``) for what only a process shows: exit statuses, options in any
place, signals, an ``arcapix`` that imports.
"""

import json
import re
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from PIL import Image

from pixstor_azure.ground.store import MetadataStore
from pixstor_azure.tool import cli
from tests import imagefactory
from tests.conftest import ROOT
from tests.fakeazure import FakeAzure
from tests.sources import answered
from tests.toolrun import FAKE_ARCAPIX, Tool, frames, serve
from tests.wording import pattern, row

BOXES = '[{"tag":"cup","probability":0.9,"left":0.25,"top":0.25,"width":0.5,"height":0.5}]'


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "stills"
    (root / "day1").mkdir(parents=True)
    imagefactory.png(root / "day1", size=(400, 300), color=(0, 0, 255))
    shutil.copy(str(ROOT / "images" / "coffee.jpg"), str(root / "day1" / "coffee.jpg"))
    imagefactory.truncated_jpeg(root)
    (root / "notes.txt").write_text("not for us")
    return root


@pytest.fixture
def server():
    with FakeAzure() as fake:
        serve(fake)
        yield fake


def no_traceback(result) -> None:
    assert "Traceback" not in result.stderr + result.stdout, result


# ---------------------------------------------------------------------------- in this process


def test_tag_then_show(fake_classifier, folder, store, capsys):
    assert cli.main(["tag", "-p", "classification", "--no-progress", str(folder)]) == 0

    summary = capsys.readouterr().err
    assert "azureclassification: SUCCESS 1" in summary  # the blue PNG
    assert "azureclassification: SKIPPED 2" in summary  # coffee under 0.5, the truncated JPEG
    assert "files: 4 found, 3 handled, 1 not handled" in summary  # notes.txt, counted
    # notes.txt was not handled, the truncated file not sent
    assert len(fake_classifier.requests) == 2
    blue = folder / "day1" / "plain.png"
    assert store.read(str(blue.resolve()), "image")["azure_class"] == "blue"

    assert cli.main(["show", str(folder)]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert list(shown) == [str(blue)]
    assert shown[str(blue)]["image.azure_classes"] == ["blue"]


def test_fatal_files_make_a_failing_exit_status(fake_classifier, folder, monkeypatch, capsys):
    monkeypatch.setenv("CUSTOM_VISION_CLASSIFY_ITERATION", "unpublished")

    assert cli.main(["tag", "-p", "classification", "--no-progress", "-j", "2", str(folder)]) == 1
    assert "azureclassification: FATAL 2" in capsys.readouterr().err


def test_bad_arguments_exit_2(capsys):
    with pytest.raises(SystemExit) as caught:
        cli.main(["tag", "-p", "nonsense", "x"])
    assert caught.value.code == 2


def test_draw_writes_copies_with_the_stored_boxes(folder, store, tmp_path, capsys):
    photo = folder / "day1" / "coffee.jpg"
    store.write(
        str(photo.resolve()), "image", "AzureObjectDetectionPlugin", {"azure_detected_boxes": BOXES}
    )
    out = tmp_path / "checked"

    assert cli.main(["draw", "--out", str(out), str(folder)]) == 0

    written = out / "day1" / "coffee.boxes.jpg"
    assert [p for p in out.rglob("*") if p.is_file()] == [written]
    assert capsys.readouterr().out.strip() == str(written)
    with Image.open(written) as drawn, Image.open(photo) as original:
        assert drawn.size == original.size
        # The box edge at a quarter of the width is drawn over; the centre is not.
        edge = (original.width // 4, original.height // 2)
        centre = (original.width // 2, original.height // 2)
        assert drawn.getpixel(edge) != original.convert("RGB").getpixel(edge)
        assert (
            max(
                abs(a - b)
                for a, b in zip(drawn.getpixel(centre), original.convert("RGB").getpixel(centre))
            )
            < 30
        )


# ---------------------------------------------------------------------------- the real command


@pytest.mark.parametrize("command", [["tag"], ["show"], ["draw", "--out", "out"], ["retag"]])
def test_a_path_that_does_not_exist_is_an_error(tmp_path, command):
    real = frames(tmp_path / "stills", 1)[0]

    result = Tool(tmp_path).run(*command, str(real), str(tmp_path / "stils"))

    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"pixstor-azure: error: no such file or folder: {tmp_path / 'stils'}"
    ]


def test_a_missing_file_is_not_skipped_with_exit_0(tmp_path, server):
    result = Tool(tmp_path, server).run("tag", str(tmp_path / "frame0001.jpg"))

    assert result.returncode == 2
    assert len(server.requests) == 0


def test_options_after_the_command_and_version(tmp_path, server):
    tool = Tool(tmp_path, server)
    stills = tmp_path / "stills"
    frames(stills, 2)

    tagged = tool.run("tag", str(stills), "-p", "classification", "-v", "--no-progress")
    quiet = tool.run("show", "-q", str(stills))
    before = tool.run("--version")
    after = tool.run("doctor", "--version")

    assert tagged.returncode == 0, tagged
    assert "INFO store: " in tagged.stderr
    assert quiet.returncode == 0 and json.loads(quiet.stdout)
    from pixstor_azure import __version__

    assert before.stdout.strip() == after.stdout.strip() == f"pixstor-azure {__version__}"


def test_verbose_names_the_ini_the_store_and_the_cache_never_a_key(tmp_path, server):
    ini = tmp_path / "conf" / "pixstor-azure.ini"
    ini.parent.mkdir()
    ini.write_text(f"[custom_vision]\nkey = {server.key}\n")
    ini.chmod(0o600)
    tool = Tool(tmp_path, server, PIXSTOR_AZURE_CONFIG=str(ini))
    del tool.env["CUSTOM_VISION_KEY"]  # from the INI file only
    (tmp_path / "pixstor-azure.ini").write_text("[pixstor_azure]\n")  # in the current folder
    frames(tmp_path / "stills", 1)

    result = tool.run("-v", "tag", "-p", "classification", str(tmp_path / "stills"))

    assert result.returncode == 0, result
    assert f"settings: environment, then the INI file {ini}" in result.stderr
    assert f"store: {tool.store} (the tool's own SQLite store)" in result.stderr
    assert f"answer cache: {tool.cache}" in result.stderr
    assert "azureclassification: uses cloud backend, Custom Vision: host=127.0.0.1" in (
        result.stderr
    )
    assert f"{tmp_path / 'pixstor-azure.ini'} is not read" in result.stderr
    assert server.key not in result.stdout + result.stderr


def test_a_missing_setting_is_one_line_and_exit_1(tmp_path):
    stills = tmp_path / "stills"
    frames(stills, 3)

    result = Tool(tmp_path).run("tag", "-p", "classification", str(stills))

    assert result.returncode == 1
    no_traceback(result)
    not_set = pattern("settings.SEVERAL_NOT_SET")
    problems = [line for line in result.stderr.splitlines() if re.search(not_set, line)]
    assert len(problems) == 1, result
    assert "CUSTOM_VISION_" in problems[0]
    assert "azureclassification: FATAL 3" in result.stderr


def test_nothing_set_up_is_not_exit_0(tmp_path):
    frames(tmp_path / "stills", 1)

    result = Tool(tmp_path).run("tag", str(tmp_path / "stills"))

    assert result.returncode == 1
    assert "no plugin is set up" in result.stderr


def test_an_ini_file_that_is_not_there_is_one_line_and_exit_1(tmp_path):
    tool = Tool(tmp_path, PIXSTOR_AZURE_CONFIG=str(tmp_path / "nowhere.ini"))

    result = tool.run("show", str(tmp_path))

    assert result.returncode == 1
    no_traceback(result)
    said = row("settings.CONFIG_NOT_A_FILE").error(
        "PIXSTOR_AZURE_CONFIG", path=tmp_path / "nowhere.ini"
    )
    assert result.stderr.strip().splitlines() == [f"pixstor-azure: {said}"]


def _interrupt(tmp_path, server, signum):
    tool = Tool(tmp_path, server)
    stills = tmp_path / "stills"
    pictures = frames(stills, 2)
    server.fail_next(200)
    server.fail_next(200, delay=600)  # the second picture: a service that never answers
    process = tool.start("tag", "-p", "classification", "-j", "1", str(stills))
    arrived = threading.Event()
    for _ in range(3000):
        if len(server.requests) == 2:
            break
        arrived.wait(0.02)
    assert len(server.requests) == 2

    process.send_signal(signum)
    _, err = process.communicate(timeout=30)  # a bound on a hang, not a timing assertion

    store = MetadataStore(tool.store)
    return process.returncode, err, [store.read(str(p.resolve())) for p in pictures]


def test_ctrl_c_against_a_service_that_never_answers(tmp_path, server):
    status, err, stored = _interrupt(tmp_path, server, signal.SIGINT)

    assert status == 130
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    assert "azureclassification: SUCCESS 1" in err  # the summary so far
    assert "azureclassification: left 1" in err
    assert "interrupted: every file done is saved" in err
    assert stored[0] and not stored[1]  # the first file's work was kept


def test_kill_against_a_service_that_never_answers(tmp_path, server):
    status, err, stored = _interrupt(tmp_path, server, signal.SIGTERM)

    assert status == 128 + signal.SIGTERM
    assert "Traceback" not in err
    assert stored[0] and not stored[1]


def test_draw_keeps_the_folder_structure(tmp_path):
    tool = Tool(tmp_path)
    stills = tmp_path / "stills"
    same_name = [frames(stills / day, 1)[0] for day in ("day1", "day2")]
    store = MetadataStore(tool.store)
    for path in same_name:
        store.write(
            str(path.resolve()),
            "image",
            "AzureObjectDetectionPlugin",
            {"azure_detected_boxes": BOXES},
        )
    out = tmp_path / "checked"

    result = tool.run("draw", "--out", str(out), str(stills))

    assert result.returncode == 0, result
    expected = [out / "day1" / "frame0000.boxes.jpg", out / "day2" / "frame0000.boxes.jpg"]
    assert sorted(p for p in out.rglob("*.jpg")) == expected
    assert result.stdout.split() == [str(p) for p in expected]


def test_draw_of_two_files_named_in_different_folders(tmp_path):
    tool = Tool(tmp_path)
    stills = tmp_path / "stills"
    same_name = [frames(stills / day, 1)[0] for day in ("day1", "day2")]
    store = MetadataStore(tool.store)
    for path in same_name:
        store.write(str(path.resolve()), "image", "P", {"azure_object_boxes": BOXES})
    out = tmp_path / "checked"

    result = tool.run("draw", "-o", str(out), *map(str, same_name))

    assert result.returncode == 0, result
    assert len(list(out.rglob("*.jpg"))) == 2


def test_show_and_draw_say_when_nothing_is_stored(tmp_path):
    tool = Tool(tmp_path)
    picture = frames(tmp_path / "stills", 1)[0]

    shown = tool.run("show", str(picture))
    drawn = tool.run("draw", "--out", str(tmp_path / "out"), str(picture))

    for result in (shown, drawn):
        assert result.returncode == 1
        no_traceback(result)
        assert f"{picture}: nothing stored (never tagged: run pixstor-azure tag on it)" in (
            result.stderr
        )
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").rglob("*.jpg"))
    assert not Path(tool.store).exists()  # reading never makes a store
    assert f"no store at {tool.store} yet" in shown.stderr


def test_show_of_a_file_that_is_not_a_picture_says_so(tmp_path):
    tool = Tool(tmp_path)
    notes = tmp_path / "notes.txt"
    notes.write_text("call sheet")

    shown = tool.run("show", str(notes))

    assert shown.returncode == 1
    assert f"{notes}: not a picture format these plugins take" in shown.stderr


def test_show_says_how_the_last_run_ended(tmp_path, server):
    tool = Tool(tmp_path, server, CUSTOM_VISION_CLASSIFY_THRESHOLD="0.99")
    picture = frames(tmp_path / "stills", 1)[0]
    tool.run("tag", "-p", "classification", str(picture))

    shown = tool.run("show", str(picture))

    assert shown.returncode == 1
    assert "nothing stored (last tag: azureclassification ended SKIPPED)" in shown.stderr


def test_draw_of_a_bad_image_is_one_line_and_exit_1(tmp_path):
    tool = Tool(tmp_path)
    broken = imagefactory.truncated_jpeg(tmp_path / "stills")
    MetadataStore(tool.store).write(
        str(broken.resolve()), "image", "P", {"azure_detected_boxes": BOXES}
    )

    result = tool.run("draw", "--out", str(tmp_path / "out"), str(broken))

    assert result.returncode == 1
    no_traceback(result)
    assert [line for line in result.stderr.splitlines() if line] == [
        f"{broken}: cannot draw: " + result.stderr.split(": cannot draw: ", 1)[1].strip()
    ]


def test_with_arcapix_importable_the_tool_writes_to_its_own_store(tmp_path, server):
    tool = Tool(tmp_path, server)
    index = tmp_path / "pixstor-index.jsonl"
    tool.env["PYTHONPATH"] = str(FAKE_ARCAPIX)
    tool.env["FAKE_ARCAPIX_OUT"] = str(index)
    picture = frames(tmp_path / "stills", 1)[0]

    result = tool.run("-v", "tag", "-p", "classification", str(picture))

    assert result.returncode == 0, result
    assert "arcapix imports here" in result.stderr
    assert "never to PixStor's index" in result.stderr
    assert not index.exists()  # nothing went through PixStor's Metadata
    assert answered(MetadataStore(tool.store).read(str(picture.resolve()), "image")) == {
        "azure_class": "red",
        "azure_classes": ["red"],
    }
    shown = tool.run("show", str(picture))
    assert json.loads(shown.stdout)[str(picture)]["image.azure_class"] == "red"


def test_search_whole_values_and_parts_of_text(tmp_path, server):
    tool = Tool(tmp_path, server)
    stills = tmp_path / "stills"
    red, blue = frames(stills, 2)
    assert tool.run("tag", "-p", "vision", "-p", "classification", str(stills)).returncode == 0

    by_class = tool.run("search", "azure_classes", "RED")
    by_tag = tool.run("search", "image.azure_tags", "blue")
    by_caption = tool.run("search", "azure_caption", "blue bo")
    by_part_of_a_class = tool.run("search", "azure_class", "re")
    unknown = tool.run("search", "azure_colour", "red")

    assert by_class.stdout.split() == [str(red.resolve())]
    assert by_tag.stdout.split() == [str(blue.resolve())]
    assert by_caption.stdout.split() == [str(blue.resolve())]
    assert by_part_of_a_class.returncode == 1 and not by_part_of_a_class.stdout
    assert "no stored file has 're' in image.azure_class" in by_part_of_a_class.stderr
    assert unknown.returncode == 2 and "unknown field 'azure_colour'" in unknown.stderr


def test_the_installed_command(tmp_path):
    command = Path(sys.executable).parent / "pixstor-azure"
    if not command.exists():
        pytest.skip("the package is not installed in this environment (the 3.6 run)")
    from pixstor_azure import __version__

    result = subprocess.run(
        [str(command), "tag", "--version"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        universal_newlines=True,
        env=Tool(tmp_path).env,
        timeout=60,
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"pixstor-azure {__version__}"
