import struct

from PIL import Image

# A DPX file's magic number first (the plugins read only files whose first bytes name a
# format they or PixStor's loader read), then the fake's own.
MAGIC = b"SDPXRAWRGB"


class _Loaded:
    def __init__(self, image):
        self.image = image


def load_image(path):
    # The real one goes through ImageMagick for DPX, EXR...; the fake reads a format Pillow
    # cannot: MAGIC, width and height as two big-endian shorts, then the RGB pixels.
    with open(path, "rb") as f:
        if f.read(len(MAGIC)) != MAGIC:
            raise ValueError("not a raw RGB file")
        width, height = struct.unpack(">HH", f.read(4))
        return _Loaded(Image.frombytes("RGB", (width, height), f.read(width * height * 3)))
