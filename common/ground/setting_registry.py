"""Every setting, declared once: its name, kind, default, bounds, choices and meaning.

A setting's one name is its environment variable (``CUSTOM_VISION_KEY``); in the INI file it
is the rest of that name under the section its prefix names (``[custom_vision] key``). Code
reads a setting through its declaration (``settings.get(FILE_TIMEOUT)``), so the default and
bounds written here are the only ones; ``tests/test_example_ini.py`` holds the example INI file
and the README's tables to this list, and ``settings`` warns about names that are not in it.

The Custom Vision plugins each have their own ``CUSTOM_VISION_CLASSIFY_...`` and
``CUSTOM_VISION_DETECT_...``: ``for_task`` finds a task's.
"""

import types
from typing import Any, List, Mapping, NamedTuple, Optional, Tuple

# The INI file's sections; a setting belongs to the one its name starts with (in capitals).
SECTIONS = ("custom_vision", "azure_vision", "azure_openai", "pixstor_azure")
PREFIXES = tuple(section.upper() + "_" for section in SECTIONS)

# Kinds: how a value is read (``Settings.get``).
TEXT = "text"
SECRET = "secret"  # a key: never shown (``Secret``)
NUMBER = "number"
INTEGER = "integer"
FLAG = "flag"  # true/false, yes/no, on/off, 1/0
CHOICE = "choice"  # one of ``choices``
WORDS = "words"  # a comma-separated list drawn from ``choices``
ENDPOINT = "endpoint"  # a service's base URL: https, plain http only to hosts allowed
PATH = "path"  # a file or folder, read as text
HOSTS = "hosts"  # host or host:port, comma-separated
KINDS = (TEXT, SECRET, NUMBER, INTEGER, FLAG, CHOICE, WORDS, ENDPOINT, PATH, HOSTS)

TASKS = ("classify", "detect")


class Setting(NamedTuple):
    """One setting. ``default`` None: none (required where read, unless ``unset`` says what
    holds); ``unset``: in words, what holds when it is not set, where that is more than the
    plain ``default`` (the README's default column); ``in_ini``: False for the one setting
    only the environment can give (the INI file's own name)."""

    name: str
    kind: str
    description: str
    default: Any = None
    minimum: Optional[float] = None
    maximum: Optional[float] = None
    choices: Tuple[str, ...] = ()
    unset: str = ""
    in_ini: bool = True

    @property
    def section(self) -> str:
        """The INI section: the one whose name, in capitals, starts the setting's."""
        return section_of(self.name)

    @property
    def key(self) -> str:
        """The setting's name in its INI section: the rest of its name, in small letters."""
        return self.name[len(self.section) + 1 :].lower()

    @property
    def secret(self) -> bool:
        return self.kind == SECRET


def section_of(name: str) -> str:
    """The INI section of the setting ``name`` ("" when no section's prefix starts it)."""
    for section, prefix in zip(SECTIONS, PREFIXES):
        if name.startswith(prefix):
            return section
    return ""


# Filled while this module is read, in the order declared; ``ALL`` is what is used.
_declared: List[Setting] = []


def _declare(name: str, kind: str, description: str, **rest: Any) -> Setting:
    setting = Setting(name, kind, description, **rest)
    _declared.append(setting)
    return setting


def _per_task(what: str, kind: str, description: str, **rest: Any) -> Tuple[Setting, Setting]:
    """The setting ``CUSTOM_VISION_<TASK>_<what>`` of each task, classify first; ``{model}``
    in ``description`` is the task's model (classifier, detector)."""
    classify, detect = (
        _declare(
            f"CUSTOM_VISION_{task.upper()}_{what}",
            kind,
            description.format(model=model),
            **rest,
        )
        for task, model in zip(TASKS, ("classifier", "detector"))
    )
    return classify, detect


# ------------------------------------------------------------------ [custom_vision]

CV_ENDPOINT = _declare(
    "CUSTOM_VISION_ENDPOINT", ENDPOINT, "the Custom Vision prediction resource's endpoint (cloud)"
)
CV_KEY = _declare("CUSTOM_VISION_KEY", SECRET, "the prediction resource's key (cloud)")
CLASSIFY_BACKEND = _declare(
    "CUSTOM_VISION_CLASSIFY_BACKEND",
    CHOICE,
    "what answers for azureclassification.py",
    default="cloud",
    choices=("cloud", "container", "onnx", "openai"),
)
DETECT_BACKEND = _declare(
    "CUSTOM_VISION_DETECT_BACKEND",
    CHOICE,
    "what answers for azureobjectdetection.py",
    default="cloud",
    choices=("cloud", "container", "onnx"),
)
CLASSIFY_PROJECT, DETECT_PROJECT = _per_task(
    "PROJECT", TEXT, "the {model}'s project id, a GUID (cloud)"
)
CLASSIFY_ITERATION, DETECT_ITERATION = _per_task(
    "ITERATION", TEXT, "the name the {model}'s iteration was published under (cloud)"
)
CLASSIFY_URL, DETECT_URL = _per_task(
    "URL", ENDPOINT, "the base URL of the {model}'s exported model's container (container)"
)
CLASSIFY_MODEL, DETECT_MODEL = _per_task(
    "MODEL", PATH, "the {model}'s exported ONNX zip, or the folder it was unpacked into (onnx)"
)
CLASSIFY_THRESHOLD, DETECT_THRESHOLD = _per_task(
    "THRESHOLD",
    NUMBER,
    "the lowest probability the {model}'s answers are kept at",
    default=0.5,
    minimum=0.0,
    maximum=1.0,
)
CLASSIFY_MAX_TAGS = _declare(
    "CUSTOM_VISION_CLASSIFY_MAX_TAGS",
    INTEGER,
    "the most classes written to azure_classes",
    default=5,
    minimum=1,
    maximum=1000,
)
DETECT_MAX_BOXES = _declare(
    "CUSTOM_VISION_DETECT_MAX_BOXES",
    INTEGER,
    "the most boxes written to azure_detected_boxes",
    default=50,
    minimum=1,
    maximum=1000,
)
CLASSIFY_CLASSES = _declare(
    "CUSTOM_VISION_CLASSIFY_CLASSES",
    TEXT,
    "the classes an Azure OpenAI deployment chooses among, comma-separated or one a line (openai)",
)
CV_STORE_IMAGES = _declare(
    "CUSTOM_VISION_STORE_IMAGES",
    FLAG,
    "whether Custom Vision keeps the pictures in the project, to tag and retrain from (cloud)",
    default=False,
)
# Every exported Custom Vision pipeline scales a picture to a few hundred pixels (512x512 at
# most, the largest documented input); 1024 keeps that for aspect ratios up to 4:1. See README
# "Why Custom Vision gets 1024 px and Vision 2048 px".
CV_MAX_LONG_EDGE = _declare(
    "CUSTOM_VISION_MAX_LONG_EDGE",
    INTEGER,
    "the long side of the pictures sent to Custom Vision, in pixels",
    default=1024,
    minimum=64,
    maximum=16000,
    unset="the smaller of 1024 and PIXSTOR_AZURE_MAX_LONG_EDGE",
)
CV_REQUESTS_PER_SECOND = _declare(
    "CUSTOM_VISION_REQUESTS_PER_SECOND",
    NUMBER,
    "the node's rate limit for Custom Vision and its containers (0: none)",
    default=10.0,
    minimum=0.0,
    maximum=1000,
)
# Only `pixstor-azure train` uses these: a Custom Vision resource has a training and a
# prediction side, each with its own endpoint and key.
CV_TRAINING_ENDPOINT = _declare(
    "CUSTOM_VISION_TRAINING_ENDPOINT",
    ENDPOINT,
    "the Custom Vision training resource's endpoint, where `pixstor-azure train` uploads",
)
CV_TRAINING_KEY = _declare(
    "CUSTOM_VISION_TRAINING_KEY", SECRET, "the training resource's key (`pixstor-azure train`)"
)

# ------------------------------------------------------------------ [azure_vision]

VISION_ENDPOINT = _declare(
    "AZURE_VISION_ENDPOINT", ENDPOINT, "the Azure AI Vision resource's endpoint"
)
VISION_KEY = _declare("AZURE_VISION_KEY", SECRET, "the Azure AI Vision resource's key")
VISION_API = _declare(
    "AZURE_VISION_API",
    CHOICE,
    "what answers for azurevision.py: Image Analysis 4.0, Computer Vision 3.2, Azure OpenAI, or "
    "the local OCR engine (text only)",
    default="4.0",
    choices=("4.0", "3.2", "openai", "local"),
)
VISION_API_VERSION = _declare(
    "AZURE_VISION_API_VERSION", TEXT, "the Image Analysis 4.0 api-version", default="2024-02-01"
)
VISION_FEATURES = _declare(
    "AZURE_VISION_FEATURES",
    WORDS,
    "what azurevision.py asks for; each feature is billed",
    default=("tags", "caption", "objects", "read"),
    choices=("tags", "caption", "objects", "read"),
)
VISION_LANGUAGE = _declare(
    "AZURE_VISION_LANGUAGE", TEXT, "the language of tags, captions and names", default="en"
)
VISION_GENDER_NEUTRAL_CAPTION = _declare(
    "AZURE_VISION_GENDER_NEUTRAL_CAPTION",
    FLAG,
    'whether 4.0 captions say "person" rather than "man" or "woman"',
    default=False,
)
VISION_TAG_THRESHOLD = _declare(
    "AZURE_VISION_TAG_THRESHOLD",
    NUMBER,
    "the lowest tag confidence written",
    default=0.6,
    minimum=0.0,
    maximum=1.0,
)
VISION_MAX_TAGS = _declare(
    "AZURE_VISION_MAX_TAGS",
    INTEGER,
    "the most tags written to azure_tags",
    default=20,
    minimum=1,
    maximum=1000,
)
VISION_OBJECT_THRESHOLD = _declare(
    "AZURE_VISION_OBJECT_THRESHOLD",
    NUMBER,
    "the lowest object confidence kept",
    default=0.5,
    minimum=0.0,
    maximum=1.0,
)
VISION_MAX_OBJECTS = _declare(
    "AZURE_VISION_MAX_OBJECTS",
    INTEGER,
    "the most boxes written to azure_object_boxes",
    default=50,
    minimum=1,
    maximum=1000,
)
VISION_REQUESTS_PER_SECOND = _declare(
    "AZURE_VISION_REQUESTS_PER_SECOND",
    NUMBER,
    "the node's rate limit for Azure AI Vision and its Read API (0: none)",
    default=10.0,
    minimum=0.0,
    maximum=1000,
)
VISION_READ_ENDPOINT = _declare(
    "AZURE_VISION_READ_ENDPOINT",
    ENDPOINT,
    "another Read service for the text: an Azure resource or a Read container",
)
VISION_READ_KEY = _declare(
    "AZURE_VISION_READ_KEY", SECRET, "the key of the resource at AZURE_VISION_READ_ENDPOINT"
)
VISION_READ_API = _declare(
    "AZURE_VISION_READ_API",
    CHOICE,
    "what AZURE_VISION_READ_ENDPOINT speaks: Read 3.2 or Document Intelligence prebuilt-read; "
    "or local: the OCR engine on the node",
    default="vision-3.2",
    choices=("vision-3.2", "document-intelligence", "local"),
)
VISION_READ_THRESHOLD = _declare(
    "AZURE_VISION_READ_THRESHOLD",
    NUMBER,
    "the lowest confidence of a piece of text the local OCR engine read that is written",
    default=0.6,
    minimum=0.0,
    maximum=1.0,
)

# ------------------------------------------------------------------ [azure_openai]

OPENAI_ENDPOINT = _declare(
    "AZURE_OPENAI_ENDPOINT", ENDPOINT, "the Azure OpenAI resource's endpoint (openai)"
)
OPENAI_KEY = _declare("AZURE_OPENAI_KEY", SECRET, "the Azure OpenAI resource's key (openai)")
OPENAI_DEPLOYMENT = _declare(
    "AZURE_OPENAI_DEPLOYMENT", TEXT, "the name of the deployment that answers (openai)"
)
OPENAI_API_VERSION = _declare(
    "AZURE_OPENAI_API_VERSION",
    TEXT,
    "the Azure OpenAI api-version, 2024-08-01-preview or later",
    default="2024-10-21",
)
OPENAI_DETAIL = _declare(
    "AZURE_OPENAI_DETAIL",
    CHOICE,
    "how closely the model looks: high (up to 2048 px) or low (a 512 px copy)",
    default="high",
    choices=("low", "high"),
)
OPENAI_MAX_TOKENS = _declare(
    "AZURE_OPENAI_MAX_TOKENS",
    INTEGER,
    "the longest answer paid for per picture",
    default=1000,
    minimum=16,
    maximum=16384,
)
OPENAI_REQUESTS_PER_SECOND = _declare(
    "AZURE_OPENAI_REQUESTS_PER_SECOND",
    NUMBER,
    "the node's rate limit for the Azure OpenAI deployment (0: none)",
    default=10.0,
    minimum=0.0,
    maximum=1000,
)

# ------------------------------------------------------------------ [pixstor_azure]

CONFIG = _declare(
    "PIXSTOR_AZURE_CONFIG",
    PATH,
    "the INI file (environment only)",
    unset="pixstor-azure.ini next to the plugins",
    in_ini=False,
)
HTTP_HOSTS = _declare(
    "PIXSTOR_AZURE_HTTP_HOSTS",
    HOSTS,
    "hosts (host or host:port, comma-separated) that may be called over plain http",
)
MAX_LONG_EDGE = _declare(
    "PIXSTOR_AZURE_MAX_LONG_EDGE",
    INTEGER,
    "the long side of the pictures sent, in pixels",
    default=2048,
    minimum=64,
    maximum=16000,
)
MIN_SIDE = _declare(
    "PIXSTOR_AZURE_MIN_SIDE",
    INTEGER,
    "pictures with a side shorter than this, in pixels, are skipped",
    default=16,
    minimum=1,
    maximum=1000,
)
CONNECT_TIMEOUT = _declare(
    "PIXSTOR_AZURE_CONNECT_TIMEOUT",
    NUMBER,
    "seconds to wait for a connection",
    default=5.0,
    minimum=0.1,
    maximum=300,
)
READ_TIMEOUT = _declare(
    "PIXSTOR_AZURE_READ_TIMEOUT",
    NUMBER,
    "seconds to wait for an answer",
    default=60.0,
    minimum=0.1,
    maximum=3600,
)
ATTEMPTS = _declare(
    "PIXSTOR_AZURE_ATTEMPTS",
    INTEGER,
    "tries per picture on 429, 5xx and network errors",
    default=5,
    minimum=1,
    maximum=20,
)
BACKOFF = _declare(
    "PIXSTOR_AZURE_BACKOFF",
    NUMBER,
    "the first wait between tries, in seconds; it doubles, with jitter",
    default=1.0,
    minimum=0.0,
    maximum=60,
)
MAX_WAIT = _declare(
    "PIXSTOR_AZURE_MAX_WAIT",
    NUMBER,
    "the longest single wait a service may ask for, in seconds",
    default=120.0,
    minimum=0.0,
    maximum=3600,
)
FILE_TIMEOUT = _declare(
    "PIXSTOR_AZURE_FILE_TIMEOUT",
    NUMBER,
    "seconds one file may take in all, every attempt and wait included",
    default=90.0,
    minimum=1.0,
    maximum=3600.0,
)
RATE_FILE = _declare(
    "PIXSTOR_AZURE_RATE_FILE",
    PATH,
    "the file the node's worker processes share the rate limits through",
    default="",
    unset="pixstor-azure-<uid>/rate.sqlite3 in the temporary folder ($TMPDIR, else /tmp)",
)
CACHE = _declare(
    "PIXSTOR_AZURE_CACHE",
    PATH,
    "the answer cache file; off keeps no answers",
    default="",
    unset=(
        "inside PixStor: cache/answers.sqlite3 next to the plugins; outside: answers.sqlite3 "
        "beside PIXSTOR_AZURE_STORE"
    ),
)
CACHE_MAX_MB = _declare(
    "PIXSTOR_AZURE_CACHE_MAX_MB",
    NUMBER,
    "the largest size of the answer cache, in MB (0: no bound)",
    default=1024.0,
    minimum=0.0,
)
# The cluster's shared state (answers/postgres.py): a URL, the password in it or in a pgpass file.
DATABASE = _declare(
    "PIXSTOR_AZURE_DATABASE",
    TEXT,
    "the PostgreSQL database every node shares answers, claims, rates and holds through, "
    "as postgresql://USER@HOST:PORT/DATABASE?sslmode=verify-full",
    default="",
)
DATABASE_NODES = _declare(
    "PIXSTOR_AZURE_DATABASE_NODES",
    INTEGER,
    "the nodes sharing the database: while it cannot be used, each node keeps to each rate "
    "divided by this (or by the nodes seen using it in the last hour, when more)",
    default=1,
    minimum=1,
    maximum=10000,
)
DATABASE_TIMEOUT = _declare(
    "PIXSTOR_AZURE_DATABASE_TIMEOUT",
    NUMBER,
    "seconds one database request may take (within the file's budget); longer, and the node "
    "goes on without the database for a minute",
    default=2.0,
    minimum=0.1,
    maximum=60.0,
)
IMAGE_MEMORY_MB = _declare(
    "PIXSTOR_AZURE_IMAGE_MEMORY_MB",
    INTEGER,
    "memory Pillow may keep from one picture for the next, in MB (0: Pillow's own)",
    default=128,
    minimum=0,
    maximum=65536,
)
DECODE_MEMORY_MB = _declare(
    "PIXSTOR_AZURE_DECODE_MEMORY_MB",
    INTEGER,
    "the memory decoded pixels may take at once in one process, in MB; pictures wait for room",
    default=1024,
    minimum=16,
    maximum=1048576,
)
MAX_FILE_MB = _declare(
    "PIXSTOR_AZURE_MAX_FILE_MB",
    INTEGER,
    "files larger than this, in MB, are skipped unread",
    default=2048,
    minimum=1,
    maximum=1048576,
)
# Frame sequences (README "Frame sequences"): the defaults are bench/sequences.py's measure.
SEQUENCES = _declare(
    "PIXSTOR_AZURE_SEQUENCES",
    FLAG,
    "whether a frame of a sequence reuses the answer of a frame of it that looks alike",
    default=True,
)
SEQUENCE_THRESHOLD = _declare(
    "PIXSTOR_AZURE_SEQUENCE_THRESHOLD",
    NUMBER,
    "the largest share of a frame that may be new against the answered frame it reuses",
    default=0.003,
    minimum=0.0,
    maximum=1.0,
)
SEQUENCE_BOX_THRESHOLD = _declare(
    "PIXSTOR_AZURE_SEQUENCE_BOX_THRESHOLD",
    NUMBER,
    "boxes are reused only from a frame of which at most this share has changed in place",
    default=0.005,
    minimum=0.0,
    maximum=1.0,
)
SEQUENCE_MAX_GAP = _declare(
    "PIXSTOR_AZURE_SEQUENCE_MAX_GAP",
    INTEGER,
    "the farthest, in frames, an answered frame may be from a frame that reuses its answer",
    default=120,
    minimum=1,
    maximum=100000,
)
# EXR and DPX (README "EXR and DPX"): PixStor's own loader, or OpenImageIO (pixstor-azure[vfx]).
VFX_DECODER = _declare(
    "PIXSTOR_AZURE_VFX_DECODER",
    CHOICE,
    "what decodes EXR and DPX: auto (PixStor's loader where it is, else OpenImageIO), "
    "pixstor or openimageio",
    default="auto",
    choices=("auto", "pixstor", "openimageio"),
)
OCIO_CONFIG = _declare(
    "PIXSTOR_AZURE_OCIO_CONFIG",
    PATH,
    "an OpenColorIO config whose view EXR and DPX are shown through (else: the sRGB transfer)",
)
OCIO_DISPLAY = _declare(
    "PIXSTOR_AZURE_OCIO_DISPLAY",
    TEXT,
    "the display of PIXSTOR_AZURE_OCIO_CONFIG (else: its default display)",
)
OCIO_VIEW = _declare(
    "PIXSTOR_AZURE_OCIO_VIEW",
    TEXT,
    "the view of that display (else: its default view)",
)
STORE = _declare(
    "PIXSTOR_AZURE_STORE",
    PATH,
    "the SQLite file the command-line tool writes fields to",
    default="~/.local/share/pixstor-azure/metadata.sqlite3",
)
PRICE_CUSTOM_VISION = _declare(
    "PIXSTOR_AZURE_PRICE_CUSTOM_VISION",
    NUMBER,
    "the price of 1,000 Custom Vision predictions, for tag --dry-run",
    default=2.0,
    minimum=0.0,
    maximum=1000000.0,
)
PRICE_VISION = _declare(
    "PIXSTOR_AZURE_PRICE_VISION",
    NUMBER,
    "the price of 1,000 Azure AI Vision analyze calls, for tag --dry-run",
    default=1.0,  # for each feature asked
    minimum=0.0,
    maximum=1000000.0,
    unset="1 per feature asked (4 with the default AZURE_VISION_FEATURES)",
)
PRICE_READ = _declare(
    "PIXSTOR_AZURE_PRICE_READ",
    NUMBER,
    "the price of 1,000 Read calls, for tag --dry-run",
    default=1.5,
    minimum=0.0,
    maximum=1000000.0,
)
PRICE_CURRENCY = _declare(
    "PIXSTOR_AZURE_PRICE_CURRENCY", TEXT, "the currency the prices are in (a label)", default="USD"
)

# ------------------------------------------------------------------ look-ups

ALL: Tuple[Setting, ...] = tuple(_declared)
BY_NAME: Mapping[str, Setting] = types.MappingProxyType({s.name: s for s in ALL})


def find(name: str) -> Optional[Setting]:
    """The setting named ``name`` (its environment variable), or None."""
    return BY_NAME.get(name)


def for_task(task: str, what: str) -> Setting:
    """A Custom Vision task's own setting: ``for_task("detect", "BACKEND")``."""
    return BY_NAME[f"CUSTOM_VISION_{task.upper()}_{what}"]
