"""The image-preparation benchmark: every figure of issue 10 beside its baseline and target.

Usage (any Python with Pillow and requests; nothing needs installing)::

    python bench/run.py                  # N=5 runs of each measure, about a minute
    python bench/run.py --runs 3
    python bench/run.py --markdown FILE  # also write the table as Markdown (for the README)
    python bench/run.py --root DIR       # measure the plugins of another checkout, e.g. the
                                         # code before a change, with the same inputs
    python bench/run.py --all            # then the other benchmarks of bench/ (the answer
                                         # cache's), each in a process of its own

The plugins are loaded from their files as PixStor loads them (each one loads ``common/`` as
``pixstor_azure``); nothing is put on ``sys.path``. The inputs are built from the photographs
in images/ by tests/imagefactory.py, in a temporary folder, each in a process of its own:

- a 24 MP camera JPEG, 6000x4000, quality 95 with 4:2:2 chroma, sensor-like grain and an EXIF
  block (about 6.5 MB; a 2048 px quality-90 re-encoding is about 7 % of it, as in the issue);
- the same file with EXIF orientation 6;
- a 100 MP camera JPEG, 12240x8160;
- a 24 MP uncompressed 16-bit-per-channel RGB TIFF (144 MB);
- images/coffee.jpg (600x400) as the small JPEG.

Each figure is the median of N runs; its baseline is timed in the same runs, alternately, so
only ratios are compared (these machines are shared and noisy). "Vision" is Image Analysis
4.0 at ``PIXSTOR_AZURE_MAX_LONG_EDGE`` (2048 px), "Custom Vision" at its own default edge. The
floor is Pillow's draft decode alone at the scale used: open, ``draft``, ``load``. The naive
way is a full decode, ``ImageOps.exif_transpose``, RGB, Lanczos to the edge, JPEG quality 90.
Memory is the peak resident set of a process of its own, less what it held before preparing
(``/proc/self/clear_refs`` resets the peak), against one full RGB frame (width x height x 3).
The extract() row calls the classification plugin's ``extract`` and a bare
``requests.Session().post`` of the same bytes against the same local server
(bench/localazure.py, a process of its own), with the rate limit and the answer cache off;
the server's count proves every call reached it. The three-plugin row runs the three
plugins' ``extract`` on a file new to the decode cache each run (its time stamp changes),
after one warm-up file, as a PixStor worker does from its second file on.

bench/prepare.py's measurements are here: its (a) is the 24 MP rows (prepare against naive,
and peak memory on the 100 MP file), its (b) the three-plugin row, its (c) the last row.

The exit status is 1 when a target is missed.
"""

import argparse
import contextlib
import importlib
import importlib.util
import io
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any, Callable, List, NamedTuple, Optional, Tuple

from PIL import Image, ImageOps

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PLUGINS = ("azureclassification", "azureobjectdetection", "azurevision")
EDGE = 2048  # PIXSTOR_AZURE_MAX_LONG_EDGE's default: what Vision is sent
EXTRACT_CALLS = 300
SMALL_CALLS = 20
OTHERS = ("cache.py",)  # bench/'s other benchmarks, run by --all
PROJECT = "3c9a1f0e-5b7d-4e2a-9f1c-8d6b4a2e0c17"
ITERATION = "bench"
KEY = "bench-key-not-a-secret"
_LANCZOS = getattr(Image, "Resampling", Image).LANCZOS


class Row(NamedTuple):
    case: str
    value: float  # ours: a ratio, or a share
    shown: str  # how the value reads
    baseline: str  # what it is against, with the measured times or sizes
    target: Optional[float]  # at most; None for figures shown without a target
    target_shown: str = ""
    today: str = ""  # the figure before this work

    @property
    def ok(self) -> bool:
        return self.target is None or self.value <= self.target


# --------------------------------------------------------------------------- loading


def load_file(name: str, path: Path) -> Any:
    """A module from its file, as PixStor loads a plugin: without touching sys.path."""
    spec = importlib.util.spec_from_file_location(name, str(path))
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def load_plugins(root: Path) -> dict:
    """The three plugins of ``root``; the first one loads ``common/`` as ``pixstor_azure``."""
    return {name: load_file(name, root / f"{name}.py") for name in PLUGINS}


def factory() -> Any:
    return load_file("imagefactory", ROOT / "tests" / "imagefactory.py")


# --------------------------------------------------------------------------- inputs

INPUTS = {
    "camera_24mp.jpg": lambda f, out: f.camera_jpeg(out.parent, name=out.name),
    "camera_100mp.jpg": lambda f, out: f.camera_jpeg(out.parent, (12240, 8160), name=out.name),
    "scan_24mp_48bit.tif": lambda f, out: shutil.move(str(f.tiff_48bit(out.parent)), str(out)),
}


def make_inputs(folder: Path) -> dict:
    """Each big input written by a process of its own, so this one never holds its frame."""
    paths = {}
    for name in INPUTS:
        paths[name] = folder / name
        child("make", name, str(paths[name]))
    paths["camera_24mp_o6.jpg"] = factory().with_orientation(
        paths["camera_24mp.jpg"], 6, folder / "camera_24mp_o6.jpg"
    )
    paths["small.jpg"] = folder / "small.jpg"
    shutil.copyfile(str(ROOT / "images" / "coffee.jpg"), str(paths["small.jpg"]))
    return paths


def child(*args: str, root: Optional[Path] = None) -> str:
    command = [sys.executable, __file__, "--child", *args]
    if root is not None:
        command += ["--root", str(root)]
    done = subprocess.run(
        command, stdout=subprocess.PIPE, universal_newlines=True, check=True, cwd=str(HERE)
    )
    return done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""


def run_child(args: List[str], root: Path) -> None:
    role = args[0]
    if role == "make":
        name, out = args[1], Path(args[2])
        INPUTS[name](factory(), out)
    elif role == "memory":
        print(json.dumps(peak_memory(Path(args[1]), root)))


# --------------------------------------------------------------------------- measuring


def timed(work: Callable[[], Any]) -> float:
    start = time.perf_counter()
    work()
    return time.perf_counter() - start


def medians(runs: int, *works: Callable[[], Any]) -> List[float]:
    """The median time of each of ``works``, run alternately ``runs`` times after a warm-up."""
    for work in works:
        work()
    times = [[] for _ in works]  # type: List[List[float]]
    for _ in range(runs):
        for spent, work in zip(times, works):
            spent.append(timed(work))
    return [statistics.median(spent) for spent in times]


def scaled(size: Tuple[int, int], edge: int) -> Tuple[int, int]:
    scale = min(1.0, edge / max(size))
    return (math.ceil(size[0] * scale), math.ceil(size[1] * scale))


def floor(path: Path, edge: int) -> Callable[[], Any]:
    """Pillow's draft decode alone, at the scale ``edge`` needs."""

    def work() -> None:
        with Image.open(str(path)) as im:
            if edge:
                im.draft("RGB", scaled(im.size, edge))
            im.load()

    return work


def naive(path: Path, edge: int) -> Callable[[], Any]:
    """What a plugin would do without common/images: decode everything, then shrink."""

    def work() -> bytes:
        with Image.open(str(path)) as im:
            im.load()
            upright = ImageOps.exif_transpose(im).convert("RGB")
        scale = edge / max(upright.size)
        if scale < 1:
            size = (round(upright.width * scale), round(upright.height * scale))
            upright = upright.resize(size, _LANCZOS)
        buffer = io.BytesIO()
        upright.save(buffer, "JPEG", quality=90)
        return buffer.getvalue()

    return work


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def us(seconds: float) -> str:
    return f"{seconds * 1e6:.0f} us"


class Bench:
    def __init__(self, root: Path, runs: int, paths: dict, server_url: str) -> None:
        self.root, self.runs, self.paths, self.url = root, runs, paths, server_url
        self.plugins = load_plugins(root)
        self.images = importlib.import_module("pixstor_azure.images.prepare")
        self.runtime = importlib.import_module("pixstor_azure.ground.runtime")
        settings = importlib.import_module("pixstor_azure.ground.settings").Settings
        try:
            self.cv_edge = self.images.edge_settings(settings.load(), custom_vision=True)[0]
        except TypeError:  # code from before Custom Vision had an edge of its own
            self.cv_edge = self.images.edge_settings(settings.load())[0]

    def prepared(self, path: Path, limits: Any, edge: int) -> Callable[[], Any]:
        def work() -> Any:
            self.images.clear_cache()
            return self.images.prepare(path, limits, edge)

        return work

    # ------------------------------------------------------------------ the rows

    def camera(self, name: str, label: str, today: Tuple[str, str]) -> List[Row]:
        path = self.paths[name]
        vision, cv = self.images.VISION_40, self.images.CUSTOM_VISION
        bottom, whole, ours, cv_bottom, cv_ours = medians(
            self.runs,
            floor(path, EDGE),
            naive(path, EDGE),
            self.prepared(path, vision, EDGE),
            floor(path, self.cv_edge),
            self.prepared(path, cv, self.cv_edge),
        )
        return [
            Row(
                f"{label} -> Vision ({EDGE} px), against the draft decode (floor)",
                ours / bottom,
                f"{ours / bottom:.2f}x",
                f"floor {ms(bottom)}, prepared {ms(ours)}",
                1.6,
                "<= 1.60x",
                today[0],
            ),
            Row(
                f"{label} -> Vision ({EDGE} px), against the naive way",
                ours / whole,
                f"{ours / whole:.2f}x",
                f"naive {ms(whole)}, prepared {ms(ours)}",
                0.30,
                "<= 0.30x",
                today[1],
            ),
            Row(
                f"{label} -> Custom Vision ({self.cv_edge} px), against its floor",
                cv_ours / cv_bottom,
                f"{cv_ours / cv_bottom:.2f}x",
                f"floor {ms(cv_bottom)}, prepared {ms(cv_ours)}",
                1.6,
                "<= 1.60x",
            ),
            Row(
                f"{label} -> Custom Vision ({self.cv_edge} px), against the naive way",
                cv_ours / whole,
                f"{cv_ours / whole:.2f}x",
                f"naive {ms(whole)}, prepared {ms(cv_ours)}",
                0.30,
                "<= 0.30x",
            ),
        ]

    def huge(self) -> List[Row]:
        path = self.paths["camera_100mp.jpg"]
        bottom, ours = medians(
            self.runs, floor(path, EDGE), self.prepared(path, self.images.VISION_40, EDGE)
        )
        return [
            Row(
                f"100 MP JPEG -> Vision ({EDGE} px), against the draft decode (floor)",
                ours / bottom,
                f"{ours / bottom:.2f}x",
                f"floor {ms(bottom)}, prepared {ms(ours)}",
                1.3,
                "<= 1.30x",
                "1.3-1.6x",
            )
        ]

    def tiff(self) -> List[Row]:
        path = self.paths["scan_24mp_48bit.tif"]
        whole, bottom, ours = medians(
            self.runs,
            naive(path, EDGE),
            floor(path, 0),  # no draft for a TIFF: the whole decode is its floor
            self.prepared(path, self.images.VISION_40, EDGE),
        )
        return [
            Row(
                f"24 MP 16-bit RGB TIFF -> Vision ({EDGE} px), against the naive way",
                ours / whole,
                f"{ours / whole:.2f}x",
                f"naive {ms(whole)}, prepared {ms(ours)}; the decode alone {ms(bottom)}, "
                f"{bottom / whole:.2f}x",
                0.40,
                "<= 0.40x",
                "0.94x",
            )
        ]

    def sent_bytes(self) -> List[Row]:
        path = self.paths["camera_24mp.jpg"]
        size = path.stat().st_size
        rows = []
        for label, limits, edge, target, today in (
            ("Vision", self.images.VISION_40, EDGE, 0.05, "7 %"),
            ("Custom Vision", self.images.CUSTOM_VISION, self.cv_edge, 0.05, ""),
        ):
            sent = len(self.prepared(path, limits, edge)().data)
            rows.append(
                Row(
                    f"bytes sent for the 24 MP JPEG to {label} ({edge} px), against the file",
                    sent / size,
                    f"{sent / size * 100:.1f} %",
                    f"file {size:,} B, sent {sent:,} B",
                    target,
                    f"<= {target * 100:g} %",
                    today,
                )
            )
        return rows

    def extract(self) -> List[Row]:
        import requests

        path = self.paths["small.jpg"]
        data = path.read_bytes()
        plugin = self.plugins["azureclassification"]
        url = (
            f"{self.url}/customvision/v3.0/Prediction/{PROJECT}/classify/iterations/"
            f"{ITERATION}/image/nostore"
        )
        headers = {"Prediction-Key": KEY, "Content-Type": "application/octet-stream"}
        session = requests.Session()
        if not plugin.extract(str(path)):
            raise SystemExit("the classification plugin found nothing: the bench is broken")

        def ours() -> None:
            for _ in range(EXTRACT_CALLS):
                plugin.extract(str(path))

        def bare() -> None:
            for _ in range(EXTRACT_CALLS):
                session.post(url, data=data, headers=headers, timeout=(5, 60))

        before = self.posts()
        base, mine = medians(self.runs, bare, ours)
        reached = self.posts() - before
        expected = 2 * EXTRACT_CALLS * (self.runs + 1)
        if reached != expected:
            raise SystemExit(f"the server saw {reached} posts, not {expected}: a cache answered")
        return [
            Row(
                f"{EXTRACT_CALLS} extract() calls on a small JPEG, against bare Session.post()",
                mine / base,
                f"{mine / base:.2f}x",
                f"post {us(base / EXTRACT_CALLS)}, extract {us(mine / EXTRACT_CALLS)} a call",
                1.05,
                "<= 1.05x",
                "1.15x",
            )
        ]

    def three_plugins(self) -> List[Row]:
        path = self.paths["camera_24mp.jpg"]
        plugins = [self.plugins[name] for name in PLUGINS]
        stamp = [path.stat().st_mtime_ns]

        def fresh() -> str:
            # A new file as far as the decode cache knows: the same bytes, a new time stamp.
            stamp[0] += 1_000_000_000
            os.utime(str(path), ns=(stamp[0], stamp[0]))
            return str(path)

        def one() -> None:
            self.plugins["azurevision"].extract(fresh())

        def three() -> None:
            name = fresh()
            for plugin in plugins:
                plugin.extract(name)

        self.runtime.reset()
        three()  # the first file teaches the process the largest edge its plugins send
        base, mine = medians(self.runs, one, three)
        decodes, encodes = self.count_work(three)
        return [
            Row(
                "three plugins on one 24 MP file, against Vision alone",
                mine / base,
                f"{mine / base:.2f}x",
                f"one {ms(base)}, three {ms(mine)}; {decodes} decode, {encodes} JPEG encodes",
                1.10,
                "<= 1.10x",
                "1.10x",
            )
        ]

    def count_work(self, work: Callable[[], Any]) -> Tuple[int, int]:
        """How many files ``work`` opened with Pillow, and how many JPEGs it encoded."""
        opened, encoded = [], []
        real_open, real_save = Image.open, Image.Image.save

        def counting_open(fp: Any, *args: Any, **kwargs: Any) -> Any:
            opened.append(fp)
            return real_open(fp, *args, **kwargs)

        def counting_save(im: Any, fp: Any, format: Any = None, **kwargs: Any) -> Any:
            encoded.append(format)
            return real_save(im, fp, format, **kwargs)

        Image.open, Image.Image.save = counting_open, counting_save
        try:
            work()
        finally:
            Image.open, Image.Image.save = real_open, real_save
        return len(opened), sum(1 for f in encoded if f == "JPEG")

    def memory(self) -> List[Row]:
        path = self.paths["camera_100mp.jpg"]
        found = json.loads(child("memory", str(path), root=self.root))
        if not found:
            return []
        share = found["extra"] / found["frame"]
        return [
            Row(
                "peak memory preparing the 100 MP JPEG, against one full RGB frame",
                share,
                f"{share:.2f}x",
                f"frame {found['frame'] / 1e6:.0f} MB, peak {found['extra'] / 1e6:.0f} MB",
                0.25,
                "<= 0.25x",
                "0.18x",
            )
        ]

    def small(self) -> List[Row]:
        path = self.paths["small.jpg"]
        images = self.images
        refusing = images.CUSTOM_VISION._replace(
            service="Custom Vision, JPEG refused", formats=frozenset({"PNG"})
        )

        def calls(limits: Any) -> Callable[[], None]:
            def work() -> None:
                for _ in range(SMALL_CALLS):
                    images.clear_cache()
                    images.prepare(path, limits, EDGE)

            return work

        base, mine = medians(self.runs, calls(refusing), calls(images.CUSTOM_VISION))
        return [
            Row(
                "small JPEG sent as it is (metadata taken out), against re-encoded",
                mine / base,
                f"{mine / base:.2f}x",
                f"re-encoded {us(base / SMALL_CALLS)}, as it is {us(mine / SMALL_CALLS)} a call",
                None,
            )
        ]

    def posts(self) -> int:
        import requests

        return requests.get(f"{self.url}/count", timeout=5).json()["posts"]


def peak_memory(path: Path, root: Path) -> Optional[dict]:
    """In a process of its own: what preparing ``path`` for Vision adds to the peak RSS."""
    status = Path("/proc/self/status")
    if not status.exists():
        return None
    load_plugins(root)
    images = importlib.import_module("pixstor_azure.images.prepare")
    warm = Path(tempfile.mkdtemp(prefix="pixstor-azure-bench-warm-")) / "warm.jpg"
    shutil.copyfile(str(ROOT / "images" / "coffee.jpg"), str(warm))
    images.prepare(warm, images.VISION_40, EDGE)  # every lazy import and plugin, done
    images.clear_cache()
    shutil.rmtree(str(warm.parent))
    with Image.open(str(path)) as im:
        frame = im.width * im.height * 3

    def kib(field: str) -> int:
        for line in status.read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
        raise SystemExit(f"no {field} in {status}")

    with contextlib.suppress(OSError):  # without it the peak is this process's whole life:
        Path("/proc/self/clear_refs").write_text("5")  # started small, it still tells
    before = kib("VmRSS")
    images.prepare(path, images.VISION_40, EDGE)
    return {"extra": kib("VmHWM") - before, "frame": frame}


# --------------------------------------------------------------------------- reporting


def machine() -> str:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import PIL
    import requests

    return (
        f"{os.cpu_count()} CPUs ({model or platform.processor() or 'unknown model'}), "
        f"Python {platform.python_version()}, Pillow {PIL.__version__}, "
        f"requests {requests.__version__}, {platform.system()} {platform.release()}"
    )


def text_table(rows: List[Row]) -> str:
    width = max(len(r.case) for r in rows)
    lines = [f"{'case':<{width}}  {'ours':>7}  {'target':>9}  {'verdict':<7}  baseline"]
    for r in rows:
        verdict = "" if r.target is None else ("met" if r.ok else "MISSED")
        lines.append(
            f"{r.case:<{width}}  {r.shown:>7}  {r.target_shown:>9}  {verdict:<7}  {r.baseline}"
        )
    return "\n".join(lines)


def markdown_table(rows: List[Row]) -> str:
    lines = [
        '| case | issue\'s "today" | now | target | verdict | measured |',
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        verdict = "" if r.target is None else ("met" if r.ok else "**missed**")
        lines.append(
            f"| {r.case} | {r.today} | {r.shown} | {r.target_shown} | {verdict} | {r.baseline} |"
        )
    return "\n".join(lines)


def start_server() -> Tuple[subprocess.Popen, str]:
    server = subprocess.Popen(
        [sys.executable, str(HERE / "localazure.py")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        universal_newlines=True,
    )
    line = server.stdout.readline().split()
    if len(line) != 2 or line[0] != "port":
        server.kill()
        raise SystemExit("bench/localazure.py did not start")
    return server, f"http://127.0.0.1:{line[1]}"


def settings_for(url: str, folder: Path) -> None:
    """The plugins' settings, as environment variables: the local server, no INI file of the
    machine, no client-side rate limit and no answer cache (each would hide or add work the
    figures are not about)."""
    empty = folder / "empty.ini"
    empty.write_text("")
    for name in list(os.environ):
        if name.startswith(("CUSTOM_VISION_", "AZURE_VISION_", "PIXSTOR_AZURE_")):
            del os.environ[name]
    os.environ.update(
        {
            "PIXSTOR_AZURE_CONFIG": str(empty),
            "PIXSTOR_AZURE_CACHE": "off",
            "PIXSTOR_AZURE_STORE": str(folder / "store.sqlite3"),
            "CUSTOM_VISION_ENDPOINT": url,
            "CUSTOM_VISION_KEY": KEY,
            "CUSTOM_VISION_CLASSIFY_PROJECT": PROJECT,
            "CUSTOM_VISION_CLASSIFY_ITERATION": ITERATION,
            "CUSTOM_VISION_DETECT_PROJECT": PROJECT,
            "CUSTOM_VISION_DETECT_ITERATION": ITERATION,
            "CUSTOM_VISION_REQUESTS_PER_SECOND": "0",
            "AZURE_VISION_ENDPOINT": url,
            "AZURE_VISION_KEY": KEY,
            "AZURE_VISION_REQUESTS_PER_SECOND": "0",
        }
    )


def main() -> int:
    # The 100 MP file is over Pillow's warning line; the baselines would warn on every run.
    warnings.simplefilter("ignore", Image.DecompressionBombWarning)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="runs of each measure (default 5)")
    parser.add_argument("--root", type=Path, default=ROOT, help="the checkout to measure")
    parser.add_argument("--markdown", type=Path, help="also write the table here, as Markdown")
    parser.add_argument("--all", action="store_true", help="then run bench/'s other scripts")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    root = args.root.resolve()
    if args.child:
        run_child(args.child, root)
        return 0

    started = time.perf_counter()
    print(machine(), flush=True)
    with tempfile.TemporaryDirectory(prefix="pixstor-azure-bench-") as tmp:
        folder = Path(tmp)
        paths = make_inputs(folder)
        print(
            "inputs: "
            + ", ".join(f"{name} {p.stat().st_size / 1e6:.1f} MB" for name, p in paths.items())
            + f" ({time.perf_counter() - started:.0f} s); measuring {root}, N={args.runs}",
            flush=True,
        )
        server, url = start_server()
        try:
            settings_for(url, folder)
            bench = Bench(root, args.runs, paths, url)
            rows = bench.memory()  # first: its process is started while this one is small
            rows += bench.camera("camera_24mp.jpg", "24 MP JPEG", ("2.4x", "0.38x"))
            rows += bench.camera(
                "camera_24mp_o6.jpg", "24 MP JPEG, orientation 6", ("2.9x", "0.47x")
            )
            rows += bench.huge()
            rows += bench.tiff()
            rows += bench.sent_bytes()
            rows += bench.extract()
            rows += bench.three_plugins()
            rows += bench.small()
        finally:
            server.stdin.close()
            server.wait(10)
    print()
    print(text_table(rows))
    missed = [r for r in rows if not r.ok]
    print(
        f"\n{len(rows) - len(missed)} of {len(rows)} figures within target; "
        f"total {time.perf_counter() - started:.0f} s"
    )
    if args.markdown:
        args.markdown.write_text(
            f"Measured on {machine()}, N={args.runs}.\n\n{markdown_table(rows)}\n"
        )
    failed = bool(missed)
    if args.all:
        for script in OTHERS:
            if (HERE / script).exists():
                print(f"\n$ python bench/{script} --runs {args.runs}", flush=True)
                done = subprocess.run(
                    [sys.executable, str(HERE / script), "--runs", str(args.runs)]
                )
                failed = failed or done.returncode != 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
