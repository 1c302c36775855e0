"""Settings: environment over INI file, typed values, errors that name the setting only."""

import os
import pickle
from pathlib import Path

import pytest

from pixstor_azure import settings as settings_module
from pixstor_azure.errors import SettingsError
from pixstor_azure.settings import Secret, Settings, is_loopback


def write_ini(tmp_path, text, monkeypatch):
    path = tmp_path / "settings.ini"
    path.write_text(text)
    monkeypatch.setenv("PIXSTOR_AZURE_CONFIG", str(path))
    return path


def test_ini_sections_map_onto_environment_names(tmp_path, monkeypatch):
    write_ini(
        tmp_path,
        "[custom_vision]\nclassify_project = abc\n[pixstor_azure]\nmax_long_edge = 1024\n",
        monkeypatch,
    )
    s = Settings.load()
    assert s.text("CUSTOM_VISION_CLASSIFY_PROJECT") == "abc"
    assert s.integer("PIXSTOR_AZURE_MAX_LONG_EDGE", 2048) == 1024


def test_environment_wins_and_blank_environment_falls_back(tmp_path, monkeypatch):
    write_ini(tmp_path, "[azure_vision]\nlanguage = es\napi = 3.2\n", monkeypatch)
    monkeypatch.setenv("AZURE_VISION_LANGUAGE", "ja")
    monkeypatch.setenv("AZURE_VISION_API", "  ")
    s = Settings.load()
    assert s.text("AZURE_VISION_LANGUAGE") == "ja"
    assert s.text("AZURE_VISION_API") == "3.2"


def test_default_location_is_next_to_the_plugins(tmp_path, monkeypatch):
    root = Path(__file__).resolve().parent.parent
    assert root / "pixstor-azure.ini" == settings_module.DEFAULT_CONFIG  # beside common/
    default = tmp_path / "pixstor-azure.ini"
    default.write_text("[custom_vision]\nendpoint = https://example.cognitiveservices.azure.com\n")
    monkeypatch.delenv("PIXSTOR_AZURE_CONFIG")
    monkeypatch.setattr(settings_module, "DEFAULT_CONFIG", default)
    assert Settings.load().endpoint("CUSTOM_VISION_ENDPOINT").startswith("https://example.")


def test_missing_default_file_is_fine_but_a_named_missing_file_is_not(tmp_path, monkeypatch):
    monkeypatch.delenv("PIXSTOR_AZURE_CONFIG")
    monkeypatch.setattr(settings_module, "DEFAULT_CONFIG", tmp_path / "absent.ini")
    assert Settings.load().raw("CUSTOM_VISION_KEY") is None
    monkeypatch.setenv("PIXSTOR_AZURE_CONFIG", str(tmp_path / "absent.ini"))
    with pytest.raises(SettingsError, match=r"PIXSTOR_AZURE_CONFIG names .* not a readable file"):
        Settings.load()


def test_broken_ini_names_the_file_but_not_its_lines(tmp_path, monkeypatch):
    write_ini(tmp_path, "[custom_vision]\nkey = very-secret-value\nkey = twice\n", monkeypatch)
    with pytest.raises(SettingsError) as caught:
        Settings.load()
    assert "PIXSTOR_AZURE_CONFIG" in str(caught.value)
    assert "very-secret-value" not in str(caught.value)
    assert "twice" not in str(caught.value)


def test_unknown_section_is_refused(tmp_path, monkeypatch):
    write_ini(tmp_path, "[customvision]\nkey = x\n", monkeypatch)
    with pytest.raises(SettingsError, match=r"\[customvision\] is not one of"):
        Settings.load()


def test_ini_is_read_again_when_it_changes(tmp_path, monkeypatch):
    path = write_ini(tmp_path, "[azure_vision]\nlanguage = es\n", monkeypatch)
    assert Settings.load().text("AZURE_VISION_LANGUAGE") == "es"
    path.write_text("[azure_vision]\nlanguage = pt-BR\n")
    os.utime(path, ns=(1, 2_000_000_000_000_000_000))
    assert Settings.load().text("AZURE_VISION_LANGUAGE") == "pt-BR"


@pytest.mark.parametrize(
    ("method", "args", "value", "expected"),
    [
        ("number", (0.5, 0.0, 1.0), "0.25", 0.25),
        ("number", (0.5, 0.0, 1.0), None, 0.5),
        ("integer", (5, 1, 10), "7", 7),
        ("flag", (False,), "Yes", True),
        ("flag", (True,), "off", False),
        ("choice", ("4.0", ("4.0", "3.2")), "3.2", "3.2"),
        (
            "words",
            (["tags"], ["tags", "caption", "read"]),
            "Caption, READ,caption",
            ["caption", "read"],
        ),
    ],
)
def test_typed_values(method, args, value, expected):
    environ = {} if value is None else {"X_SETTING": value}
    assert getattr(Settings(environ), method)("X_SETTING", *args) == expected


@pytest.mark.parametrize(
    ("method", "args", "value", "words"),
    [
        ("number", (0.5, 0.0, 1.0), "nan", "must be 0 to 1"),
        ("number", (0.5, 0.0, 1.0), "-0.1", "must be 0 to 1"),
        ("number", (0.5, 0.0, None), "x", "must be a number"),
        ("integer", (5, 1, 10), "2.5", "must be a whole number"),
        ("integer", (5, 1, None), "0", "must be at least 1"),
        ("flag", (False,), "maybe", "must be true or false"),
        ("choice", ("4.0", ("4.0", "3.2")), "2.0", "must be one of 4.0, 3.2"),
        ("words", (["tags"], ["tags", "caption"]), "tags,faces", "comma-separated list"),
        ("text", (), None, "is not set"),
        ("secret", (), None, "is not set"),
    ],
)
def test_bad_values_name_the_setting(method, args, value, words):
    environ = {} if value is None else {"X_SETTING": value}
    with pytest.raises(SettingsError) as caught:
        getattr(Settings(environ), method)("X_SETTING", *args)
    assert str(caught.value).startswith("setting X_SETTING ")
    assert words in str(caught.value)


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("https://westus.api.cognitive.microsoft.com/", True),
        ("http://127.0.0.1:8080", True),
        ("http://localhost:5000", True),
        ("http://[::1]:5000", True),
        ("http://westus.api.cognitive.microsoft.com", False),
        ("http://10.0.0.5", False),
        ("ftp://example.com", False),
        ("https://example.com/?key=abc", False),
        ("https://user:pw@example.com", False),
    ],
)
def test_endpoint_is_https_or_loopback(url, ok):
    s = Settings({"X_ENDPOINT": url})
    if ok:
        assert s.endpoint("X_ENDPOINT") == url.rstrip("/")
    else:
        with pytest.raises(SettingsError, match="X_ENDPOINT"):
            s.endpoint("X_ENDPOINT")


def test_loopback_detection():
    assert is_loopback("127.5.6.7") and is_loopback("::1") and is_loopback("LOCALHOST")
    assert not is_loopback("192.168.1.1") and not is_loopback("example.com")


def test_secret_never_shows_itself():
    secret = Settings({"K": "abc123-secret"}).secret("K")
    assert secret.reveal() == "abc123-secret"
    for shown in (repr(secret), str(secret), f"{secret}", repr([secret]), repr({"k": secret})):
        assert "abc123" not in shown
    with pytest.raises(TypeError):
        pickle.dumps(secret)
    assert not Secret("")


def test_an_ini_with_keys_readable_by_everyone_is_warned_about_once(tmp_path, monkeypatch, logs):
    path = write_ini(tmp_path, "[custom_vision]\nkey = abc-secret-123\n", monkeypatch)
    path.chmod(0o644)

    Settings.load()
    Settings.load()
    os.utime(path, ns=(1, 2_000_000_000_000_000_000))  # read again: still one warning
    Settings.load()

    warnings = [r.getMessage() for r in logs.records if r.levelname == "WARNING"]
    assert warnings == [
        f"{path} holds keys and any user of this machine can read it (mode 644): chmod 600 {path}"
    ]
    assert "abc-secret-123" not in logs.text


def test_a_private_ini_or_one_without_keys_is_not_warned_about(tmp_path, monkeypatch, logs):
    path = write_ini(tmp_path, "[custom_vision]\nkey = abc-secret-123\n", monkeypatch)
    path.chmod(0o600)
    Settings.load()
    other = tmp_path / "public.ini"
    other.write_text("[azure_vision]\nlanguage = es\n")
    other.chmod(0o644)
    monkeypatch.setenv("PIXSTOR_AZURE_CONFIG", str(other))
    Settings.load()

    assert not [r for r in logs.records if r.levelname == "WARNING"]
