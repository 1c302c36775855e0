"""Benchmark of common.images.prepare against naive baselines (a script, not a test).

Usage, from the repository root::

    python bench/prepare.py            # N=5 runs a variant, about 20 s
    python bench/prepare.py --runs 3

Every figure is the median of N runs in this one process, and its ratio to the section's
baseline (below 1.00 is faster or smaller than the baseline):

(a) the 40 MP JPEG of tests/imagefactory.py prepared for Custom Vision (max edge 2048), cold
    (``clear_cache`` first), against Image.open + full load + exif_transpose + convert RGB +
    LANCZOS resize to 2048 + JPEG q90. Peak memory is ``resource.getrusage`` max RSS of a
    fresh subprocess per variant doing one run (tracemalloc does not see Pillow's C
    allocations); "+RSS" is that peak less the child's RSS once Python and Pillow are loaded.
(b) three plugins' preparations of that file (Custom Vision twice, then Vision 4.0) with the
    decode cache, against the same three with ``clear_cache`` between them.
(c) a small photograph within limits (images/coffee.jpg, 600x400) sent as it is for Custom
    Vision, against the same call re-encoding it (limits that do not accept JPEG). Cold cache
    each time, so both read and decode the file; a run is 20 calls, shown per call.

Images are written to a temporary folder, removed at the end. Needs Pillow only.
"""

import argparse
import io
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Optional

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from PIL import Image, ImageOps  # noqa: E402

from pixstor_azure import images  # noqa: E402
from tests import imagefactory  # noqa: E402

MAX_EDGE = 2048
SMALL_CALLS = 20
ROW = "{:<14} {:<31} {:>9} {:>5}  {:>8} {:>7} {:>5}"
_LANCZOS = getattr(Image, "Resampling", Image).LANCZOS


def naive(path: Path) -> bytes:
    """What a plugin would do without common.images: decode everything, then shrink."""
    with Image.open(path) as im:
        im.load()
        upright = ImageOps.exif_transpose(im).convert("RGB")
    scale = MAX_EDGE / max(upright.size)
    if scale < 1:
        size = (round(upright.width * scale), round(upright.height * scale))
        upright = upright.resize(size, _LANCZOS)
    buffer = io.BytesIO()
    upright.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def ours(path: Path) -> bytes:
    images.clear_cache()
    return images.prepare(path, images.CUSTOM_VISION, MAX_EDGE).data


def three_plugins(path: Path, cached: bool) -> None:
    images.clear_cache()
    for limits in (images.CUSTOM_VISION, images.CUSTOM_VISION, images.VISION_40):
        if not cached:
            images.clear_cache()
        images.prepare(path, limits, MAX_EDGE)


RE_ENCODE = replace(
    images.CUSTOM_VISION, service="Custom Vision, JPEG refused", formats=frozenset({"PNG"})
)


def small(path: Path, limits: images.Limits, as_is: bool) -> None:
    for _ in range(SMALL_CALLS):
        images.clear_cache()
        if images.prepare(path, limits, MAX_EDGE).as_is is not as_is:
            raise SystemExit(f"{limits.service}: expected as_is={as_is}")


def median_seconds(runs: int, work) -> float:
    work()  # warm up: imports, plugin registration, file cache
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _max_rss_mb() -> float:
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1 << 20) if sys.platform == "darwin" else peak / 1024  # bytes vs KiB


def child(variant: str, path: str) -> None:
    """One run in a fresh process; prints its RSS before and after as JSON."""
    if variant == "make":  # the 40 MP file, written here so the parent stays small
        print(imagefactory.jpeg_40mp(path))
        return
    Image.init()
    before = _max_rss_mb()
    (naive if variant == "naive" else ours)(Path(path))
    print(json.dumps({"before": before, "peak": _max_rss_mb()}))


def run_child(variant: str, path: Path) -> str:
    # Linux keeps a process's max RSS across exec, so children are started while this
    # process is still small: before it has decoded anything.
    out = subprocess.run(
        [sys.executable, __file__, "--child", variant, str(path)],
        check=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        universal_newlines=True,
        cwd=ROOT,
    ).stdout
    return out.strip().splitlines()[-1]


def peak_rss(variant: str, path: Path) -> Optional[dict]:
    try:
        import resource  # noqa: F401  (POSIX only)
    except ImportError:
        return None
    return json.loads(run_child(variant, path))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="runs a variant (default 5)")
    parser.add_argument("--child", nargs=2, metavar=("VARIANT", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return

    started = time.perf_counter()
    rows = []  # (section, variant, seconds, baseline seconds, peak MB, extra MB)
    with tempfile.TemporaryDirectory(prefix="pixstor-azure-bench-") as tmp:
        folder = Path(tmp)
        big = Path(run_child("make", folder))
        rss_base, rss_mine = peak_rss("naive", big), peak_rss("prepare", big)
        photo = folder / "coffee.jpg"
        shutil.copyfile(ROOT / "images" / "coffee.jpg", photo)
        print(
            f"40 MP JPEG: 7728x5152, {big.stat().st_size:,} bytes; "
            f"small: {photo.name}, {photo.stat().st_size:,} bytes; N={args.runs}",
            flush=True,
        )

        base = median_seconds(args.runs, lambda: naive(big))
        mine = median_seconds(args.runs, lambda: ours(big))
        for name, seconds, rss in (
            ("naive full decode (baseline)", base, rss_base),
            ("prepare (draft mode)", mine, rss_mine),
        ):
            rows.append(("a 40 MP -> CV", name, seconds, base, rss))

        base = median_seconds(args.runs, lambda: three_plugins(big, cached=False))
        mine = median_seconds(args.runs, lambda: three_plugins(big, cached=True))
        rows.append(("b CV+CV+V4.0", "clear_cache between (baseline)", base, base, None))
        rows.append(("b CV+CV+V4.0", "decode cache", mine, base, None))

        base = median_seconds(args.runs, lambda: small(photo, RE_ENCODE, as_is=False)) / SMALL_CALLS
        mine = median_seconds(args.runs, lambda: small(photo, images.CUSTOM_VISION, as_is=True))
        mine /= SMALL_CALLS
        rows.append(("c small JPEG", "re-encoded (baseline)", base, base, None))
        rows.append(("c small JPEG", "sent as it is", mine, base, None))

    print()
    print(ROW.format("section", "variant", "median ms", "ratio", "peak RSS", "+RSS", "ratio"))
    extra_base = None
    for section, variant, seconds, baseline, rss in rows:
        memory = ("", "", "")
        if rss is not None:
            extra = rss["peak"] - rss["before"]
            extra_base = extra_base or extra
            memory = (f"{rss['peak']:.0f} MB", f"{extra:.0f} MB", f"{extra / extra_base:.2f}")
        millis = f"{seconds * 1000:.1f}"
        print(ROW.format(section, variant, millis, f"{seconds / baseline:.2f}", *memory))
    print(f"\ntotal {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
