"""images/signature.py: what two frames' signatures say of them, at the default thresholds.

The frames are drawn by tests/sequencefactory.py: the same shots bench/sequences.py measures
the reuse of answers on, here a few frames of each.
"""

import pytest
from PIL import Image

from pixstor_azure.ground import setting_registry as registry
from pixstor_azure.images import signature
from pixstor_azure.images.signature import Signature, change, moved
from tests import sequencefactory
from tests.sequencefactory import SHOTS

THRESHOLD = registry.SEQUENCE_THRESHOLD.default
BOX_THRESHOLD = registry.SEQUENCE_BOX_THRESHOLD.default


def shot(name):
    return next(s for s in SHOTS if s.name == name)


def of(name, frame, size=sequencefactory.SIZE):
    return signature.of(sequencefactory.frame_image(shot(name), frame, size))


def test_a_signature_is_small_and_reads_back_as_it_was():
    sig = of("two things", 10)
    data = sig.to_bytes()
    assert len(data) < 2048
    again = Signature.from_bytes(data)
    assert again.to_bytes() == data
    assert (again.grid_size, again.counted, again.colours) == (
        sig.grid_size,
        sig.counted,
        sig.colours,
    )
    assert change(sig, again) == 0.0 and moved(sig, again) == 0.0


@pytest.mark.parametrize(
    "data",
    [b"", b"\x01\x20", b"\x02" + bytes(200), None],
    ids=["empty", "short", "other version", "cut"],
)
def test_what_is_no_signature_is_refused(data):
    if data is None:
        data = of("street", 0).to_bytes()[:-3]  # a colour count cut in the middle
    with pytest.raises(ValueError):
        Signature.from_bytes(data)


def test_grain_alone_changes_nothing(tmp_path):
    """Frames of a locked-off shot differ only by their grain: alike, boxes included."""
    truths = sequencefactory.write(tmp_path, sequencefactory.short(4, [shot("lock-off")]))
    sigs = [signature.of(Image.open(t.path).convert("RGB")) for t in truths]
    assert len({s.to_bytes() for s in sigs}) == 4  # the grain does differ
    for other in sigs[1:]:
        assert change(sigs[0], other) <= THRESHOLD
        assert moved(sigs[0], other) <= BOX_THRESHOLD


def test_a_thing_moving_is_no_change_but_its_boxes_moved():
    first, later = of("street", 0), of("street", 25)  # the car 15 px further
    assert change(first, later) <= THRESHOLD
    assert moved(first, later) > BOX_THRESHOLD


def test_a_camera_pan_over_the_same_scene_is_no_change():
    assert change(of("field pan", 0), of("field pan", 12)) <= THRESHOLD


@pytest.mark.parametrize(
    ("name", "before", "after"),
    [
        ("enters", 39, 75),  # a car drives in
        ("fast", 30, 85),  # a ball leaves
        ("two things", 40, 95),  # one of two things leaves
        ("fade out", 55, 75),  # half way to black
        ("fade in", 8, 30),  # from dark to full light
    ],
)
def test_something_new_in_the_picture_is_a_change(name, before, after):
    assert change(of(name, before), of(name, after)) > THRESHOLD


def test_every_cut_is_a_change():
    for first, second in zip(SHOTS, SHOTS[1:]):
        end = signature.of(sequencefactory.frame_image(first, first.length - 1))
        start = signature.of(sequencefactory.frame_image(second, 0))
        assert change(end, start) > THRESHOLD, (first.name, second.name)


def test_a_new_view_in_the_same_colours_is_all_new():
    """The reverse angle has the colours of the still life in the same amounts, elsewhere."""
    still, reverse = of("still life", 89), of("reverse angle", 0)
    assert max(signature._lacking(still, reverse), signature._lacking(reverse, still)) < 0.05
    assert change(still, reverse) == 1.0


def test_pictures_of_other_shapes_are_not_compared():
    assert change(of("street", 0), of("street", 0, size=(108, 192))) == 1.0
    assert moved(of("street", 0), of("street", 0, size=(108, 192))) == 1.0


def test_a_large_picture_and_its_small_copy_look_alike():
    """A 2K plate and its 192 px proxy: the signature averages a sample of the large one."""
    large = sequencefactory.frame_image(shot("two things"), 20, (2048, 1152))
    small = large.resize(sequencefactory.SIZE, Image.BOX)
    assert change(signature.of(large), signature.of(small)) <= THRESHOLD
    assert moved(signature.of(large), signature.of(small)) <= BOX_THRESHOLD


def test_a_grey_picture_is_signed_as_rgb():
    grey = sequencefactory.frame_image(shot("street"), 0).convert("L")
    sig = signature.of(grey)
    assert change(sig, signature.of(grey.convert("RGB"))) == 0.0
