"""Benchmark of the local OCR engine (``AZURE_VISION_READ_API=local``): a script, not a test.

Usage, from the repository root (needs the ocr extra, Python 3.8 to 3.12)::

    python bench/ocr.py                # every figure, about 5 minutes on 2 cores
    python bench/ocr.py --runs 3       # runs of the timing (default 5)
    python bench/ocr.py --markdown out.md

Figures:

- character error rate (the edit distance between the text read and the text written, over
  the length of the text written; lines joined by a space) on pictures rendered by
  ``tests/textpictures.py``: every TrueType font found and the 5x7 dot-matrix font, text 12 to
  120 px high, turned by up to 10 degrees, on plain and photographic backgrounds, as JPEGs of
  quality 60 to 90, 1024x768; by text height, by background, and over 20 px and more (target:
  at most 5 %). The same rate with spaces left out says how much of it is spaces;
- the same pictures through Azure's Read, where a recorded answer of the picture exists (a
  recording in ``tests/recordings`` whose ``picture`` is the picture's SHA-256): how many;
- seconds to read a 2048x1365 photograph with text in it, as the plugin does it (decode,
  upright, engine), the engine loaded: the median of N runs of 5 pictures (target: at most
  1.5 s), and the engine's loading;
- the process's peak memory (resident) once it has loaded the engine and read every picture,
  and before loading it.

Exits 1 when a target is missed.
"""

import argparse
import collections
import hashlib
import json
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import azurevision  # noqa: E402, F401  (loads common/ as pixstor_azure)
from pixstor_azure.ground import runtime  # noqa: E402
from pixstor_azure.ground.settings import Settings  # noqa: E402
from pixstor_azure.images import prepare  # noqa: E402
from pixstor_azure.services import localread  # noqa: E402
from tests import textpictures  # noqa: E402

HEIGHTS = (12, 16, 20, 24, 32, 48, 64, 90, 120)
CER_TARGET = 0.05
SECONDS_TARGET = 1.5
SEED = 2026
RECORDINGS = ROOT / "tests" / "recordings"


def peak_mb() -> float:
    """The process's peak resident memory so far, in MB (Linux reports kB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def recorded_read(pictures: Sequence[textpictures.Picture]) -> Dict[str, dict]:
    """Recorded Azure Read answers of these pictures, by path: recordings naming the picture's
    SHA-256 in ``picture``."""
    digests = {hashlib.sha256(p.path.read_bytes()).hexdigest(): str(p.path) for p in pictures}
    found = {}
    for recording in sorted(RECORDINGS.glob("*.json")):
        body = json.loads(recording.read_text(encoding="utf-8"))
        if isinstance(body, dict) and body.get("picture") in digests:
            found[digests[body["picture"]]] = body
    return found


def character_error_rates(folder: Path) -> Tuple[List[Tuple[str, str, str]], int, int]:
    """Rows (group, rate with spaces, rate without), the pictures read and those Azure read."""
    pictures = textpictures.corpus(folder, HEIGHTS, seed=SEED)
    reader = localread.LocalRead(Settings({}))
    groups = collections.defaultdict(list)  # type: Dict[str, List[Tuple[List[str], Sequence[str]]]]
    for picture in pictures:
        read = reader.parse(reader.ask(str(picture.path))).text
        pair = (read, picture.lines)
        groups[f"{picture.height} px"].append(pair)
        groups[f"{picture.background} background"].append(pair)
        groups["dot matrix" if picture.font == textpictures.DOT_MATRIX else "TrueType"].append(pair)
        if picture.height >= 20:
            groups["20 px and more"].append(pair)
    rows = []
    for name in [f"{h} px" for h in HEIGHTS] + [
        "plain background",
        "photo background",
        "TrueType",
        "dot matrix",
        "20 px and more",
    ]:
        pairs = groups[name]
        spaced = textpictures.pooled_cer(pairs)
        unspaced = textpictures.pooled_cer(
            [
                ([r.replace(" ", "") for r in read], [w.replace(" ", "") for w in written])
                for read, written in pairs
            ]
        )
        rows.append((f"{name} ({len(pairs)} pictures)", f"{spaced:.1%}", f"{unspaced:.1%}"))
    overall = textpictures.pooled_cer(groups["20 px and more"])
    return [*rows, ("__overall__", str(overall), "")], len(pictures), len(recorded_read(pictures))


def photographs(folder: Path) -> List[Path]:
    """Five 2048x1365 photographs (the sample photographs tiled) with four lines of text."""
    fonts = textpictures.fonts() or [textpictures.DOT_MATRIX]
    return [
        textpictures.picture(
            folder, SEED + n, 36, fonts[n % len(fonts)], 3.0 * n - 6, "photo", 85, (2048, 1365), 4
        ).path
        for n in range(5)
    ]


def timings(folder: Path, runs: int) -> Tuple[float, List[float], List[float]]:
    """(seconds to load the engine, seconds a picture in each run, processor seconds a picture
    in each run: on a machine shared with other work, the wall clock says more of the others)."""
    runtime.reset()
    started = time.perf_counter()
    reader = localread.LocalRead(Settings({}))
    loaded = time.perf_counter() - started
    paths = photographs(folder)
    reader.ask(str(paths[0]))  # onnxruntime's first run sets itself up
    per_run, processor = [], []
    for _ in range(runs):
        prepare.clear_cache()
        started, used = time.perf_counter(), time.process_time()
        for path in paths:
            reader.ask(str(path))
        per_run.append((time.perf_counter() - started) / len(paths))
        processor.append((time.process_time() - used) / len(paths))
    return loaded, per_run, processor


def main(argv: Sequence[str] = ()) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--markdown", type=Path)
    options = parser.parse_args(list(argv))
    before = peak_mb()
    lines = [f"Python {sys.version.split()[0]}, {len(textpictures.fonts())} TrueType fonts"]
    with tempfile.TemporaryDirectory() as folder:
        rows, count, azure = character_error_rates(Path(folder))
        loaded, per_run, processor = timings(Path(folder), options.runs)
    overall = float(rows.pop()[1])
    seconds = statistics.median(per_run)
    cer_ok, time_ok = overall <= CER_TARGET, seconds <= SECONDS_TARGET
    lines += [
        "",
        "| pictures | characters wrong | without spaces |",
        "|---|---|---|",
        *(f"| {a} | {b} | {c} |" for a, b, c in rows),
        "",
        f"character error rate, 20 px and more: {overall:.1%} (target <= {CER_TARGET:.0%}: "
        f"{'met' if cer_ok else 'NOT MET'})",
        f"Azure Read: recorded answers of {azure} of these {count} pictures",
        f"seconds a 2048x1365 picture: median {seconds:.2f} of {len(per_run)} runs "
        f"({min(per_run):.2f}-{max(per_run):.2f}) (target <= {SECONDS_TARGET}: "
        f"{'met' if time_ok else 'NOT MET'})",
        f"processor seconds a picture (every core): median {statistics.median(processor):.2f}",
        f"load average when done: {', '.join(f'{n:.1f}' for n in os.getloadavg())}",
        f"engine loading: {loaded:.2f} s",
        f"peak memory: {peak_mb():.0f} MB (before loading the engine: {before:.0f} MB)",
    ]
    text = "\n".join(lines)
    print(text)
    if options.markdown:
        options.markdown.write_text(text + "\n", encoding="utf-8")
    return 0 if cer_ok and time_ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
