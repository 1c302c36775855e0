"""pixstor-azure.example.ini and README.md against the settings declared in setting_registry.

The example names every declared setting (those only the environment gives excepted), names no
other, shows each plain default as it is, and holds no key; the README's settings tables name
every declared setting with its default. The example's names are those the settings module
itself gives its keys, its commented-out lines (``;key = value``) included.
"""

import re
from pathlib import Path

import pytest

from pixstor_azure.ground import setting_registry as registry
from pixstor_azure.ground import settings as settings_module
from pixstor_azure.ground.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "pixstor-azure.example.ini"
README = ROOT / "README.md"
# A commented-out setting: ";name = value", no space after the ";" (prose has one).
_COMMENTED = re.compile(r"^;([a-z][a-z0-9_]*\s*=.*)$", re.MULTILINE)
IN_THE_FILE = {s.name for s in registry.ALL if s.in_ini}


def settings_in(text, tmp_path):
    """``{ENV_NAME: value}`` of an INI text with its commented-out settings put back, as the
    settings module reads it."""
    path = tmp_path / "uncommented.ini"
    path.write_text(_COMMENTED.sub(r"\1", text), encoding="utf-8")
    return settings_module._parse(path, True, 0o600)


def unknown_in(text, tmp_path):
    return sorted(set(settings_in(text, tmp_path)) - IN_THE_FILE)


def test_every_setting_in_the_example_is_declared(tmp_path):
    assert unknown_in(EXAMPLE.read_text(encoding="utf-8"), tmp_path) == []


@pytest.mark.parametrize(
    ("section", "line"),
    [
        ("custom_vision", ";clasify_threshold = 0.5"),
        ("custom_vision", "detect_treshold = 0.5"),
        ("azure_vision", ";read_endpont ="),
        ("azure_openai", ";max_token = 1000"),
        ("pixstor_azure", "cache_max = 10"),
        ("pixstor_azure", ";config = /etc/pixstor-azure.ini"),  # the environment's only
    ],
)
def test_a_misspelled_setting_in_the_example_would_be_found(tmp_path, section, line):
    text = EXAMPLE.read_text(encoding="utf-8").replace(f"[{section}]\n", f"[{section}]\n{line}\n")
    assert len(unknown_in(text, tmp_path)) == 1


def test_every_declared_setting_is_in_the_example(tmp_path):
    written = set(settings_in(EXAMPLE.read_text(encoding="utf-8"), tmp_path))
    assert sorted(IN_THE_FILE - written) == []
    assert registry.CONFIG.name not in written


def test_a_setting_left_out_of_the_example_would_be_found(tmp_path):
    text = EXAMPLE.read_text(encoding="utf-8").replace(";detect_max_boxes = 50\n", "")
    written = set(settings_in(text, tmp_path))
    assert sorted(IN_THE_FILE - written) == [registry.DETECT_MAX_BOXES.name]


def test_the_example_shows_each_plain_default_as_it_is(tmp_path):
    """A commented-out value of a setting with a plain default is that default, read back."""
    values = settings_in(EXAMPLE.read_text(encoding="utf-8"), tmp_path)
    plain = [s for s in registry.ALL if s.in_ini and s.default not in (None, "") and not s.unset]
    assert len(plain) > 30
    for setting in plain:
        written = Settings({setting.name: values[setting.name]}).get(setting)
        default = list(setting.default) if setting.kind == registry.WORDS else setting.default
        assert written == default, setting.name


def test_the_example_loads_as_it_is(tmp_path, monkeypatch):
    monkeypatch.setenv("PIXSTOR_AZURE_CONFIG", str(EXAMPLE))
    settings = Settings.load()
    assert settings.raw("CUSTOM_VISION_CLASSIFY_PROJECT") is None  # empty: to fill in
    assert settings.get(registry.VISION_TAG_THRESHOLD) == 0.6  # commented: the default


def test_the_example_holds_no_key(tmp_path):
    text = EXAMPLE.read_text(encoding="utf-8")
    values = settings_in(text, tmp_path)
    keys = {name: value for name, value in values.items() if name.endswith("_KEY")}
    assert set(keys) == {s.name for s in registry.ALL if s.secret}
    assert all(value == "" for value in keys.values()), keys
    # Nothing anywhere in the file looks like a key or token: 32 hexadecimal digits, or a long
    # run of letters and digits with a digit in it (Azure's newer keys are 84 characters).
    runs = [r for r in re.findall(r"[0-9A-Za-z]{20,}", text) if re.search(r"\d", r)]
    assert runs == []
    assert re.findall(r"(?<![0-9A-Fa-f])[0-9A-Fa-f]{32}(?![0-9A-Fa-f])", text) == []


# ------------------------------------------------------------------ README.md


def readme_rows(text):
    """``(names, default)`` of each row of the README's settings tables (those whose header is
    ``| setting | default | meaning |``): the settings its first cell names, and its second
    cell with the backticks taken out."""
    rows = []
    in_table = False
    for line in text.splitlines():
        if line.startswith("| setting | default |"):
            in_table = True
            continue
        if not line.startswith("|"):
            in_table = False
            continue
        cells = [c.strip() for c in line.strip("|").split("|")]
        if in_table and not set(cells[0]) <= set("-: "):
            names = re.findall(r"`([A-Z][A-Z0-9_]+)`", cells[0])
            rows.append((names, cells[1].replace("`", "")))
    return rows


def shown_default(setting):
    """The setting's default as the README's default column says it: the words of ``unset``,
    else the default value as it is written in a setting; None for no default (the column
    says "(required…)", "(not set)", "(none)")."""
    if setting.unset:
        return setting.unset
    value = setting.default
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, tuple):
        return ",".join(value)
    return str(value)


def says_default(setting, cell):
    shown = shown_default(setting)
    if shown is None:
        return cell.startswith("(")
    return cell == shown


def undocumented(text):
    """The declared settings no README settings table names with their default."""
    rows = readme_rows(text)
    return [
        setting.name
        for setting in registry.ALL
        if not any(setting.name in names and says_default(setting, cell) for names, cell in rows)
    ]


def test_the_readme_tables_name_every_setting_with_its_default():
    assert undocumented(README.read_text(encoding="utf-8")) == []


@pytest.mark.parametrize(
    ("row", "wrong"),
    [
        ("| `AZURE_VISION_TAG_THRESHOLD` | `0.6` |", "| `AZURE_VISION_TAG_THRESHOLD` | `0.5` |"),
        ("| `PIXSTOR_AZURE_FILE_TIMEOUT` | `90` |", "| `PIXSTOR_AZURE_FILE_TIME` | `90` |"),
        ("| `AZURE_OPENAI_DETAIL` | `high` |", "| `AZURE_OPENAI_DETAIL` | (not set) |"),
        ("| `CUSTOM_VISION_KEY` | (required) |", "| `CUSTOM_VISION_KEY` | `abc` |"),
    ],
)
def test_a_wrong_or_missing_row_in_the_readme_would_be_found(row, wrong):
    text = README.read_text(encoding="utf-8")
    assert text.count(row) == 1
    name = re.search(r"`([A-Z_]+)`", row).group(1)
    assert name not in undocumented(text)
    assert name in undocumented(text.replace(row, wrong))
