"""pixstor-azure.example.ini: every setting in it is one the code reads, every setting the code
reads is in it, and it holds no key.

The settings the code reads are found in its source: every string literal that is a whole
setting name (``"AZURE_VISION_KEY"``, ``SETTING = "PIXSTOR_AZURE_RATE_FILE"``), and every
``task.setting("WHAT")`` made for each Custom Vision task. The example's names are those the
settings module itself gives its keys, its commented-out lines (``;key = value``) included.
"""

import re
from pathlib import Path

import pytest

from pixstor_azure.ground import settings as settings_module
from pixstor_azure.services import customvision

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "pixstor-azure.example.ini"
SOURCES = sorted((ROOT / "common").rglob("*.py")) + [
    ROOT / name for name in ("azurevision.py", "azureclassification.py", "azureobjectdetection.py")
]
PREFIXES = tuple(section.upper() + "_" for section in settings_module.SECTIONS)
_NAME = re.compile("[\"']((?:" + "|".join(PREFIXES) + ")[A-Z0-9_]+)[\"']")
_TASK_SETTING = re.compile(r"""\.setting\(\s*["']([A-Z0-9_]+)["']\s*\)""")
# A commented-out setting: ";name = value", no space after the ";" (prose has one).
_COMMENTED = re.compile(r"^;([a-z][a-z0-9_]*\s*=.*)$", re.MULTILINE)

# Read by the code, but not written in the INI file: the variable that names the file, and the
# classes of the openai backend, which only classification has.
NOT_IN_THE_FILE = {"PIXSTOR_AZURE_CONFIG", "CUSTOM_VISION_DETECT_CLASSES"}


def known_settings():
    names = set()
    for path in SOURCES:
        text = path.read_text(encoding="utf-8")
        names.update(_NAME.findall(text))
        for what in _TASK_SETTING.findall(text):
            names.update(
                task.setting(what) for task in (customvision.CLASSIFY, customvision.DETECT)
            )
    return names


def settings_in(text, tmp_path):
    """``{ENV_NAME: value}`` of an INI text with its commented-out settings put back, as the
    settings module reads it."""
    path = tmp_path / "uncommented.ini"
    path.write_text(_COMMENTED.sub(r"\1", text), encoding="utf-8")
    return settings_module._parse(path, True, 0o600)


def unknown_in(text, tmp_path):
    return sorted(set(settings_in(text, tmp_path)) - known_settings())


def test_the_source_scan_finds_the_settings_made_in_every_way():
    known = known_settings()
    assert {
        "CUSTOM_VISION_KEY",  # a literal at its use
        "PIXSTOR_AZURE_RATE_FILE",  # a module's constant
        "PIXSTOR_AZURE_HTTP_HOSTS",  # the settings module's own
        "CUSTOM_VISION_DETECT_URL",  # task.setting("URL")
        "CUSTOM_VISION_CLASSIFY_MODEL",
    } <= known
    assert not any(name.endswith("_") for name in known)


def test_every_setting_in_the_example_is_one_the_code_reads(tmp_path):
    assert unknown_in(EXAMPLE.read_text(encoding="utf-8"), tmp_path) == []


@pytest.mark.parametrize(
    ("section", "line"),
    [
        ("custom_vision", ";clasify_threshold = 0.5"),
        ("custom_vision", "detect_treshold = 0.5"),
        ("azure_vision", ";read_endpont ="),
        ("azure_openai", ";max_token = 1000"),
        ("pixstor_azure", "cache_max = 10"),
    ],
)
def test_a_misspelled_setting_in_the_example_would_be_found(tmp_path, section, line):
    text = EXAMPLE.read_text(encoding="utf-8").replace(f"[{section}]\n", f"[{section}]\n{line}\n")
    assert len(unknown_in(text, tmp_path)) == 1


def test_every_setting_the_code_reads_is_in_the_example(tmp_path):
    written = set(settings_in(EXAMPLE.read_text(encoding="utf-8"), tmp_path))
    assert sorted(known_settings() - NOT_IN_THE_FILE - written) == []
    assert not NOT_IN_THE_FILE & written


def test_the_example_loads_as_it_is(tmp_path, monkeypatch):
    monkeypatch.setenv("PIXSTOR_AZURE_CONFIG", str(EXAMPLE))
    settings = settings_module.Settings.load()
    assert settings.raw("CUSTOM_VISION_CLASSIFY_PROJECT") is None  # empty: to fill in
    assert settings.number("AZURE_VISION_TAG_THRESHOLD", 0.6) == 0.6  # commented: the default


def test_the_example_holds_no_key(tmp_path):
    text = EXAMPLE.read_text(encoding="utf-8")
    values = settings_in(text, tmp_path)
    keys = {name: value for name, value in values.items() if name.endswith("_KEY")}
    assert set(keys) == {
        "CUSTOM_VISION_KEY",
        "AZURE_VISION_KEY",
        "AZURE_VISION_READ_KEY",
        "AZURE_OPENAI_KEY",
    }
    assert all(value == "" for value in keys.values()), keys
    # Nothing anywhere in the file looks like a key or token: 32 hexadecimal digits, or a long
    # run of letters and digits with a digit in it (Azure's newer keys are 84 characters).
    runs = [r for r in re.findall(r"[0-9A-Za-z]{20,}", text) if re.search(r"\d", r)]
    assert runs == []
    assert re.findall(r"(?<![0-9A-Fa-f])[0-9A-Fa-f]{32}(?![0-9A-Fa-f])", text) == []
