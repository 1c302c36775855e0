"""Files that change, block or run on while the answer path reads them (issue 18).

A picture replaced or rewritten while it is processed must never have its answer filed under
the other picture's content digest; a FIFO, a device or a huge sparse file must be refused
before its content is hashed. Each test works on real files (real FIFOs, real links, real
sparse files) through ``fetch``, with the answer cache on, in a file's scope as the runner
opens one.
"""

import io
import os
import shutil
import subprocess
import sys
import textwrap

import pytest
from PIL import Image, ImageStat

from pixstor_azure.answers import fetch
from pixstor_azure.answers.answer import fresh
from pixstor_azure.ground import budget
from pixstor_azure.ground.errors import ImageError
from pixstor_azure.ground.setting_registry import MAX_FILE_MB
from pixstor_azure.images import prepare
from tests import imagefactory
from tests.conftest import ROOT
from tests.test_images import within, writer_of
from tests.wording import assert_is, says

RED = (200, 30, 30)
BLUE = (30, 30, 200)


@pytest.fixture(autouse=True)
def cache_on(cache_file):
    """Every test here with the answer cache on (conftest's ``cache_file``)."""


class Colours:
    """A backend that answers with the colour of the picture it prepares (as a service sees
    it, from the bytes prepared). ``before`` runs after ``fetch`` has hashed the file and
    before the backend prepares it; ``after`` once it is prepared, before it answers."""

    name = service = "Colours"  # the contract's name (services/base.py), and its older one
    endpoint_setting = None

    def __init__(self, before=None, after=None):
        self.before, self.after = before, after
        self.asked = 0

    def identity(self):
        return {"service": "colours-test"}

    def ask(self, path):
        self.asked += 1
        if self.before is not None:
            self.before()
        image = prepare.prepare(path, prepare.VISION_40, 256)
        if self.after is not None:
            self.after()
        sent = Image.open(io.BytesIO(image.data)).convert("RGB")
        red, _, blue = ImageStat.Stat(sent).mean
        colour = "red" if red > blue else "blue"
        return fresh({"colour": colour}, (image.width, image.height), (image.width, image.height))

    def check(self, answer):
        """Every answer it gives is of its shape (``Service.check``)."""


def picture(folder, colour, name):
    """A flat picture of ``colour``: the backend's answer names it."""
    path = folder / name
    Image.new("RGB", (320, 240), colour).save(path, "JPEG", quality=90)
    return path


def in_a_file(backend, path):
    """``fetch`` as the runner calls it: in a file's scope."""
    with budget.limit(90):
        return fetch.fetch(backend, str(path))


@pytest.fixture
def pictures(tmp_path):
    """(the file processed, a red picture, a blue picture): the file starts red."""
    red = picture(tmp_path, RED, "red.jpg")
    blue = picture(tmp_path, BLUE, "blue.jpg")
    path = tmp_path / "photo.jpg"
    shutil.copyfile(str(red), str(path))
    return path, red, blue


def test_a_picture_replaced_after_its_hash_is_answered_for_nothing_kept(pictures, tmp_path):
    path, red, blue = pictures
    replaced = Colours(before=lambda: os.replace(str(blue), str(path)))

    with pytest.raises(ImageError) as caught:
        in_a_file(replaced, path)

    assert_is(caught.value, "source.REPLACED")
    # A copy of the first picture is asked for itself: nothing was filed under its digest.
    copy = tmp_path / "copy.jpg"
    shutil.copyfile(str(red), str(copy))
    honest = Colours()
    answer = in_a_file(honest, copy)
    assert honest.asked == 1 and not answer.cached and answer.body == {"colour": "red"}


def test_a_picture_rewritten_in_place_after_its_hash_is_answered_for_nothing_kept(pictures):
    path, red, blue = pictures

    def rewrite():
        with open(str(path), "r+b") as f:  # the same inode, other bytes
            f.write(blue.read_bytes())
            f.truncate()

    with pytest.raises(ImageError) as caught:
        in_a_file(Colours(before=rewrite), path)
    assert_is(caught.value, "source.REPLACED")

    honest = Colours()
    assert in_a_file(honest, red).body == {"colour": "red"} and honest.asked == 1


def test_a_picture_replaced_after_it_was_prepared_is_answered_for_what_was_hashed(pictures):
    path, red, blue = pictures
    late = Colours(after=lambda: os.replace(str(blue), str(path)))

    answer = in_a_file(late, path)

    assert answer.body == {"colour": "red"}  # the bytes hashed are the bytes sent
    again = Colours()
    assert in_a_file(again, red).cached and again.asked == 0


def test_without_a_change_the_answer_is_kept_and_reused(pictures, tmp_path):
    path, red, _ = pictures
    first = Colours()
    assert in_a_file(first, path).body == {"colour": "red"}
    copy = tmp_path / "copy.jpg"
    shutil.copyfile(str(red), str(copy))

    second = Colours()
    assert in_a_file(second, copy).cached and second.asked == 0


# --------------------------------------------------------------------------- what is hashed


def test_a_fifo_is_not_hashed_and_nothing_blocks(tmp_path):
    fifo = tmp_path / "x.jpg"
    os.mkfifo(str(fifo))

    with pytest.raises(OSError) as caught:
        within(5, lambda: fetch.digest(str(fifo)), writer_of(fifo))

    assert_is(caught.value, "source.NOT_REGULAR", what=" (a FIFO)")


def test_fetch_refuses_a_fifo_without_blocking(tmp_path):
    fifo = tmp_path / "x.jpg"
    os.mkfifo(str(fifo))
    backend = Colours()

    with pytest.raises(ImageError) as caught:
        within(5, lambda: in_a_file(backend, fifo), writer_of(fifo))
    assert_is(caught.value, "source.NOT_REGULAR", what=" (a FIFO)")

    assert backend.asked == 1  # fetch hashes nothing; prepare refused it before any bytes


DIGEST = textwrap.dedent(
    """
    import sys
    import azurevision  # loads common/ as pixstor_azure, as the plugins do
    from pixstor_azure.answers import fetch
    for path in sys.argv[1:]:
        try:
            print(fetch.digest(path))
        except OSError as exc:
            print(exc)
    """
)


def digests_in_a_process(tmp_path, *paths, timeout=20):
    """What ``fetch.digest`` says of each file, in a process of its own: one that runs on
    (hashing /dev/zero) is killed, and the test fails, at ``timeout``."""
    (tmp_path / "none.ini").write_text("")
    try:
        done = subprocess.run(
            [sys.executable, "-c", DIGEST, *map(str, paths)],
            cwd=str(tmp_path),
            env={
                "PATH": os.environ.get("PATH", ""),
                "PYTHONPATH": str(ROOT),
                "PIXSTOR_AZURE_CONFIG": str(tmp_path / "none.ini"),
            },
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            universal_newlines=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"still hashing after {timeout} s")
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def test_devices_and_huge_files_are_refused_before_a_byte_is_hashed(tmp_path):
    zero = tmp_path / "zero.jpg"
    zero.symlink_to("/dev/zero")
    zeros = imagefactory.sparse_file(tmp_path, "zeros.jpg")
    head = imagefactory.jpeg(tmp_path / "src", size=(320, 240)).read_bytes()
    huge = imagefactory.sparse_file(tmp_path, "huge.jpg", head=head)

    said = digests_in_a_process(tmp_path, zero, zeros, huge)

    assert said == [
        says("source.NOT_REGULAR", what=" (a character device)"),
        says("source.NO_FORMAT"),
        says("source.TOO_LARGE", size="20480 MB", setting=MAX_FILE_MB.name, largest=2048),
    ]
