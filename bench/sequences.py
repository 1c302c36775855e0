"""Benchmark of frame sequences (a script, not a test; Python 3.8 and later).

Usage, from the repository root::

    python bench/sequences.py            # about five minutes
    python bench/sequences.py PIXSTOR_AZURE_SEQUENCE_MAX_GAP=48 ...   # other settings

On the 1,020 frames of tests/sequencefactory.py (11 shots: things moving, coming in and going
out, two pans, a fade in and a fade out, hard cuts, one to the same set seen from the other
side), through each plugin's process() and the fake Azure of the tests (it answers from the
colours it is sent: a colour covering 1 % of a picture is a class, a tag, a box), with the
answer cache, at the default settings:

  every frame   ``PIXSTOR_AZURE_SEQUENCES=off``: one call a frame with new content (today);
  in order      sequences on, the frames in order;
  shuffled      sequences on, the frames in a random order (seed 20).

For each: calls per 1,000 frames; agreement, the share of frames whose fields (the source
fields and the boxes aside) are those of asking every frame; for boxes, the mean IoU of the
inherited boxes with those asked for, and the share of inherited frames whose boxes all have
IoU >= 0.9; cuts, the first frames of shots that reused an answer of an earlier shot (0).

Then the signature's cost: ``signature.of`` on the decoded picture against preparing it
(``prepare.prepare`` for Azure AI Vision at 2048 px, decode cache cleared), on 2048x1152 PNG
frames and their JPEG proxies, medians of 5. Target: at most 10 %.
"""

import random
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import os  # noqa: E402

from PIL import Image  # noqa: E402

import azureclassification  # noqa: E402
import azureobjectdetection  # noqa: E402
import azurevision  # noqa: E402
from pixstor_azure.ground import boxes, runtime  # noqa: E402
from pixstor_azure.ground.store import MetadataStore  # noqa: E402
from pixstor_azure.images import prepare, signature  # noqa: E402
from tests import sequencefactory  # noqa: E402
from tests.fakeazure import FakeAzure  # noqa: E402

CLASSIFY = "3c9a1f0e-5b7d-4e2a-9f1c-8d6b4a2e0c17"
DETECT = "5b0c4e2a-0d1f-4a3e-9c2b-7e6f5d4c3b2a"
SOURCES = ("azure_vision_source", "azure_classification_source", "azure_detection_source")
BOX_FIELDS = ("azure_detected_boxes", "azure_object_boxes")


def settings(fake: FakeAzure, folder: Path) -> Dict[str, str]:
    return {
        "PIXSTOR_AZURE_CONFIG": str(folder / "empty.ini"),
        "PIXSTOR_AZURE_STORE": str(folder / "store.sqlite3"),
        "CUSTOM_VISION_ENDPOINT": fake.url,
        "CUSTOM_VISION_KEY": fake.key,
        "CUSTOM_VISION_CLASSIFY_PROJECT": CLASSIFY,
        "CUSTOM_VISION_CLASSIFY_ITERATION": "production",
        "CUSTOM_VISION_DETECT_PROJECT": DETECT,
        "CUSTOM_VISION_DETECT_ITERATION": "production",
        "CUSTOM_VISION_CLASSIFY_THRESHOLD": "0.01",
        "CUSTOM_VISION_DETECT_THRESHOLD": "0.5",
        "AZURE_VISION_ENDPOINT": fake.url,
        "AZURE_VISION_KEY": fake.key,
        "AZURE_VISION_TAG_THRESHOLD": "0.01",
        "CUSTOM_VISION_REQUESTS_PER_SECOND": "0",
        "AZURE_VISION_REQUESTS_PER_SECOND": "0",
    }


PLUGINS = (
    ("classification", azureclassification.AzureClassificationPlugin, {}),
    ("detection", azureobjectdetection.AzureObjectDetectionPlugin, {}),
    (
        "Vision tags, caption",
        azurevision.AzureVisionPlugin,
        {"AZURE_VISION_FEATURES": "tags,caption"},
    ),
    (
        "Vision tags, caption, objects",
        azurevision.AzureVisionPlugin,
        {"AZURE_VISION_FEATURES": "tags,caption,objects"},
    ),
)


def run(plugin, truths, order, fake: FakeAzure, folder: Path, env: Dict[str, str], tag: str):
    """Each frame through the plugin in ``order``; (calls, {frame: fields})."""
    os.environ.pop("PIXSTOR_AZURE_SEQUENCES", None)
    os.environ.update(env)
    os.environ["PIXSTOR_AZURE_CACHE"] = str(folder / f"cache-{tag}" / "answers.sqlite3")
    runtime.reset()
    fake.reset()
    for truth in order:
        plugin.process(f"{tag}-{truth.number}", str(truth.path))
    store = MetadataStore.default()
    return len(fake.requests), {
        t.number: store.read(f"{tag}-{t.number}", "image") or {} for t in truths
    }


def answered(fields: dict) -> dict:
    """The fields compared: not the sources, and not the boxes (compared by IoU)."""
    return {k: v for k, v in fields.items() if k not in SOURCES and k not in BOX_FIELDS}


def inherited(fields: dict) -> str:
    for name in SOURCES:
        found = re.search(r"inherited from (\S+)$", fields.get(name, ""))
        if found:
            return found.group(1)
    return ""


def iou(a, b) -> float:
    left, top = max(a.left, b.left), max(a.top, b.top)
    right, bottom = min(a.left + a.width, b.left + b.width), min(a.top + a.height, b.top + b.height)
    inter = max(0.0, right - left) * max(0.0, bottom - top)
    union = a.width * a.height + b.width * b.height - inter
    return inter / union if union else 1.0


def measure(truths, each: dict, reused: dict) -> Dict[str, float]:
    shots = {t.path.name: t.shot for t in truths}
    agree = sum(answered(reused[t.number]) == answered(each[t.number]) for t in truths)
    ious: List[float] = []
    framewise: List[bool] = []
    cuts = 0
    for truth in truths:
        name = inherited(reused[truth.number])
        if not name:
            continue
        if truth.first and shots[name] < truth.shot:
            cuts += 1
        for field in BOX_FIELDS:
            if field in each[truth.number] or field in reused[truth.number]:
                ours = boxes.from_json(reused[truth.number].get(field, "[]"))
                theirs = boxes.from_json(each[truth.number].get(field, "[]"))
                pairs = [iou(a, b) for a, b in zip(ours, theirs)] or [1.0]
                if len(ours) != len(theirs):
                    pairs.append(0.0)
                ious.extend(pairs)
                framewise.append(min(pairs) >= 0.9)
    return {
        "agree": agree / len(truths),
        "iou": statistics.mean(ious) if ious else float("nan"),
        "iou_ok": sum(framewise) / len(framewise) if framewise else float("nan"),
        "cuts": cuts,
    }


def cost(folder: Path) -> List[str]:
    """The signature against preparing, on 2K frames and their JPEG proxies."""
    shots = sequencefactory.short(3, sequencefactory.SHOTS[:3])
    truths = sequencefactory.write(folder / "2k", shots, size=(2048, 1152))
    paths = [str(t.path) for t in truths]
    for path in list(paths):
        jpeg = path[:-4] + ".jpg"
        Image.open(path).save(jpeg, quality=92)
        paths.append(jpeg)
    rows = []
    for kind in (".png", ".jpg"):
        ratios, sig_ms, prep_ms = [], [], []
        for path in (p for p in paths if p.endswith(kind)):
            prep, sig = [], []
            for _ in range(5):
                prepare.clear_cache()
                start = time.perf_counter()
                prepare.prepare(path, prepare.VISION_40, 2048)
                prep.append(time.perf_counter() - start)
                image = prepare.load(path, 2048).image
                start = time.perf_counter()
                signature.of(image)
                sig.append(time.perf_counter() - start)
            prep_ms.append(statistics.median(prep) * 1000)
            sig_ms.append(statistics.median(sig) * 1000)
            ratios.append(statistics.median(sig) / statistics.median(prep))
        rows.append(
            f"| 2048x1152 {kind[1:].upper()} | {statistics.median(prep_ms):.1f} ms | "
            f"{statistics.median(sig_ms):.2f} ms | {100 * statistics.median(ratios):.1f} % |"
        )
    return rows


def main() -> int:
    folder = Path(tempfile.mkdtemp(prefix="pixstor-azure-sequences-"))
    (folder / "empty.ini").write_text("")
    for name in list(os.environ):
        if name.startswith(("CUSTOM_VISION_", "AZURE_VISION_", "AZURE_OPENAI_", "PIXSTOR_AZURE_")):
            del os.environ[name]
    chosen = dict(arg.split("=", 1) for arg in sys.argv[1:])  # settings to measure at
    only = chosen.pop("plugins", "")  # plugins=classification,detection: those rows alone
    truths = sequencefactory.write(folder / "plates")
    shuffled = list(truths)
    random.Random(20).shuffle(shuffled)
    print(f"{len(truths)} frames in {len(sequencefactory.SHOTS)} shots, {folder}")
    lines = [
        "| plugin | every frame: calls / 1,000 | in order: calls / 1,000 | agreement | "
        "boxes IoU (mean; frames >= 0.9) | shuffled: calls / 1,000 | agreement | "
        "cuts crossed |",
        "|---|---|---|---|---|---|---|---|",
    ]
    ok = True
    with FakeAzure() as fake:
        fake.add_project(CLASSIFY, "classify", published=["production"])
        fake.add_project(DETECT, "detect", published=["production"])
        base = settings(fake, folder)
        for label, make, extra in PLUGINS:
            if only and label.split()[0] not in only.split(","):
                continue
            plugin = make()
            env = dict(base, **extra, **chosen)
            calls_each, each = run(
                plugin,
                truths,
                truths,
                fake,
                folder,
                dict(env, PIXSTOR_AZURE_SEQUENCES="off"),
                f"{label}-each",
            )
            calls_seq, seq = run(plugin, truths, truths, fake, folder, env, f"{label}-seq")
            calls_mix, mix = run(plugin, truths, shuffled, fake, folder, env, f"{label}-mix")
            in_order, random_order = measure(truths, each, seq), measure(truths, each, mix)
            per = 1000 / len(truths)
            boxes_cell = (
                "n/a"
                if in_order["iou"] != in_order["iou"]
                else f"{in_order['iou']:.3f}; {100 * in_order['iou_ok']:.1f} %"
            )
            lines.append(
                f"| {label} | {calls_each * per:.0f} | {calls_seq * per:.1f} | "
                f"{in_order['agree']:.3f} | {boxes_cell} | {calls_mix * per:.1f} | "
                f"{random_order['agree']:.3f} | {in_order['cuts'] + random_order['cuts']} |"
            )
            print(lines[-1], flush=True)
            ok = ok and in_order["cuts"] == random_order["cuts"] == 0
    print()
    print("\n".join(lines))
    print()
    print("| frames | preparing | signature | signature / preparing |")
    print("|---|---|---|---|")
    for row in cost(folder):
        print(row)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
