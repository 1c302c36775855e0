"""Settings: environment over INI file, typed values, errors that name the setting only."""

import os
import pickle
from pathlib import Path

import pytest

from pixstor_azure.ground import setting_registry as registry
from pixstor_azure.ground import settings as settings_module
from pixstor_azure.ground.errors import SettingsError
from pixstor_azure.ground.settings import Secret, Settings, is_loopback
from pixstor_azure.services import customvision
from pixstor_azure.services import registry as backends
from tests.wording import assert_problem, assert_says, row, says


def error_line(key, setting, **values):
    """The line of the ``SettingsError`` of ``setting`` whose problem is ``key``'s."""
    return str(row(key).error(setting, **values))


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
    with pytest.raises(SettingsError) as caught:
        Settings.load()
    assert_problem(
        caught.value,
        "PIXSTOR_AZURE_CONFIG",
        "settings.CONFIG_NOT_A_FILE",
        path=str(tmp_path / "absent.ini"),
    )


def test_broken_ini_names_the_file_but_not_its_lines(tmp_path, monkeypatch):
    write_ini(tmp_path, "[custom_vision]\nkey = very-secret-value\nkey = twice\n", monkeypatch)
    with pytest.raises(SettingsError) as caught:
        Settings.load()
    assert "PIXSTOR_AZURE_CONFIG" in str(caught.value)
    assert "very-secret-value" not in str(caught.value)
    assert "twice" not in str(caught.value)


def test_unknown_section_is_refused(tmp_path, monkeypatch):
    path = write_ini(tmp_path, "[customvision]\nkey = x\n", monkeypatch)
    with pytest.raises(SettingsError) as caught:
        Settings.load()
    assert_problem(
        caught.value,
        "PIXSTOR_AZURE_CONFIG",
        "settings.CONFIG_UNKNOWN_SECTION",
        path=str(path),
        section="customvision",
    )


def test_ini_is_read_again_when_it_changes(tmp_path, monkeypatch, clock):
    path = write_ini(tmp_path, "[azure_vision]\nlanguage = es\n", monkeypatch)
    assert Settings.load().text("AZURE_VISION_LANGUAGE") == "es"
    path.write_text("[azure_vision]\nlanguage = pt-BR\n")
    os.utime(path, ns=(1, 2_000_000_000_000_000_000))
    # The file's status is looked at once a second at most, not on every call.
    assert Settings.load().text("AZURE_VISION_LANGUAGE") == "es"
    clock.advance(settings_module.RECHECK_SECONDS)
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
    ("method", "args", "value", "problem", "known"),
    [
        ("number", (0.5, 0.0, 1.0), "nan", "settings.OUT_OF_RANGE", {"minimum": 0, "maximum": 1}),
        ("number", (0.5, 0.0, 1.0), "-0.1", "settings.OUT_OF_RANGE", {"minimum": 0, "maximum": 1}),
        ("number", (0.5, 0.0, None), "x", "settings.NOT_A_NUMBER", {}),
        ("integer", (5, 1, 10), "2.5", "settings.NOT_A_WHOLE_NUMBER", {}),
        ("integer", (5, 1, None), "0", "settings.BELOW_MINIMUM", {"minimum": 1}),
        ("flag", (False,), "maybe", "settings.NOT_A_FLAG", {}),
        (
            "choice",
            ("4.0", ("4.0", "3.2")),
            "2.0",
            "settings.NOT_A_CHOICE",
            {"choices": "4.0, 3.2"},
        ),
        (
            "words",
            (["tags"], ["tags", "caption"]),
            "tags,faces",
            "settings.ENTRIES_UNKNOWN",
            {"allowed": "tags, caption"},
        ),
        ("text", (), None, "settings.NOT_SET", {}),
        ("secret", (), None, "settings.NOT_SET", {}),
    ],
)
def test_bad_values_name_the_setting(method, args, value, problem, known):
    environ = {} if value is None else {"X_SETTING": value}
    with pytest.raises(SettingsError) as caught:
        getattr(Settings(environ), method)("X_SETTING", *args)
    assert str(caught.value).startswith("setting X_SETTING ")
    assert_problem(caught.value, "X_SETTING", problem, **known)


# ------------------------------------------------------------------ values are never shown

# What a key looks like: 32 hexadecimal digits (Azure's), one of letters and digits only, and
# one of digits only (which parses as a number).
KEY_LIKE = ("3f9c0b7e1a2d4c6b8e0f1a3c5d7e9b2f", "7Kq2Xb9Rt4Lm8Np3Vw6Yz1Hc5Jd0Fg2S", "9" * 32)


@pytest.mark.parametrize("key", KEY_LIKE)
@pytest.mark.parametrize(
    ("method", "args", "problem", "known"),
    [
        # A key of digits only parses as a number, out of bounds (the second problem).
        ("number", (0.5, 0.0, 1.0), ("settings.NOT_A_NUMBER", "settings.OUT_OF_RANGE"), {}),
        ("integer", (5, 1, 10), ("settings.NOT_A_WHOLE_NUMBER", "settings.OUT_OF_RANGE"), {}),
        ("flag", (False,), ("settings.NOT_A_FLAG",) * 2, {}),
        (
            "choice",
            ("4.0", ("4.0", "3.2")),
            ("settings.NOT_A_CHOICE",) * 2,
            {"choices": "4.0, 3.2"},
        ),
        (
            "words",
            (["tags"], ["tags", "caption"]),
            ("settings.ONLY_ENTRY_UNKNOWN",) * 2,
            {"allowed": "tags, caption"},
        ),
        ("endpoint", (), ("settings.NOT_A_URL",) * 2, {}),
    ],
)
def test_a_key_set_in_the_wrong_setting_is_not_shown_in_the_error(
    method, args, problem, known, key
):
    for value in (key, f"  {key} ", f"tags,{key}", f"<{key}>", f"https://{key}"):
        try:
            getattr(Settings({"X_SETTING": value}), method)("X_SETTING", *args)
        except SettingsError as exc:
            said = str(exc)
            assert said.startswith("setting X_SETTING "), said
            assert key not in said and key[:16] not in said and key[-16:] not in said, said
            assert key not in repr(exc) and all(key not in str(a) for a in exc.args)
    with pytest.raises(SettingsError) as caught:
        getattr(Settings({"X_SETTING": key}), method)("X_SETTING", *args)
    assert_problem(caught.value, "X_SETTING", problem[key.isdigit()], **known)
    if not key.isdigit():  # a number of 32 digits is said to be out of bounds
        assert says("settings.HIDDEN_VALUE", length=32) in str(caught.value)


def test_an_endpoint_set_to_a_key_says_so_without_showing_it():
    key = KEY_LIKE[0]
    with pytest.raises(SettingsError) as caught:
        Settings({"AZURE_VISION_ENDPOINT": key}).endpoint("AZURE_VISION_ENDPOINT")
    assert_problem(
        caught.value,
        "AZURE_VISION_ENDPOINT",
        "settings.NOT_A_URL",
        why=says("settings.NO_SCHEME"),
        about=says("settings.KEY_LIKE_VALUE", hidden=says("settings.HIDDEN_VALUE", length=32)),
    )


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("westus.api.cognitive.microsoft.com", "settings.NO_SCHEME"),
        ("ftp://example.com", "settings.OTHER_SCHEME"),
        ("https://:443", "settings.NO_HOST"),
        ("https://example.com:port", "settings.URL_PORT"),
    ],
)
def test_a_malformed_endpoint_is_described(url, why):
    with pytest.raises(SettingsError) as caught:
        Settings({"X_ENDPOINT": url}).endpoint("X_ENDPOINT")
    assert_problem(
        caught.value,
        "X_ENDPOINT",
        "settings.NOT_A_URL",
        why=says(why),
        about=says("settings.HIDDEN_VALUE", length=len(url)),
    )
    assert url not in str(caught.value)


@pytest.mark.parametrize(
    ("value", "args", "problem", "where"),
    [
        ("1.5", (0.0, 1.0), "settings.OUT_OF_RANGE", "settings.LARGER"),
        ("-0.5", (0.0, 1.0), "settings.OUT_OF_RANGE", "settings.SMALLER"),
        ("nan", (0.0, 1.0), "settings.OUT_OF_RANGE", "settings.NAN"),
        ("0", (1.0, None), "settings.BELOW_MINIMUM", "settings.SMALLER"),
    ],
)
def test_a_number_out_of_bounds_is_described_not_shown(value, args, problem, where):
    with pytest.raises(SettingsError) as caught:
        Settings({"X_SETTING": value}).number("X_SETTING", 0.5, *args)
    bounds = {"minimum": args[0]} if args[1] is None else {"minimum": args[0], "maximum": args[1]}
    assert_problem(caught.value, "X_SETTING", problem, where=says(where), **bounds)
    assert value not in str(caught.value)


def test_words_name_the_entries_that_are_wrong_and_only_those():
    with pytest.raises(SettingsError) as caught:
        Settings({"X_SETTING": "tags,faces,brands"}).words("X_SETTING", ["tags"], ["tags", "read"])
    entries = [
        says("settings.ENTRY_SHOWN", entry=e, number=n) for n, e in ((2, "faces"), (3, "brands"))
    ]
    assert_problem(
        caught.value,
        "X_SETTING",
        "settings.ENTRIES_UNKNOWN",
        allowed="tags, read",
        unknown=2,
        count=3,
        verb="are",
        entries=", ".join(entries),
    )
    with pytest.raises(SettingsError) as caught:
        Settings({"X_SETTING": " , "}).words("X_SETTING", ["tags"], ["tags", "read"])
    assert_problem(caught.value, "X_SETTING", "settings.LISTS_NONE", allowed="tags, read")


def test_a_placeholder_holding_what_looks_like_a_key_is_not_shown():
    key = KEY_LIKE[0]
    with pytest.raises(SettingsError) as caught:
        Settings({"X_ENDPOINT": f"https://{{{key}}}"}).endpoint("X_ENDPOINT")
    assert_problem(caught.value, "X_ENDPOINT", "settings.PLACEHOLDER_HIDDEN")


def test_a_plain_http_endpoint_shows_its_host_only():
    # The host of an http:// URL is a machine's name (what goes into PIXSTOR_AZURE_HTTP_HOSTS).
    with pytest.raises(SettingsError) as caught:
        Settings({"X_ENDPOINT": "http://ocr.studio.lan:5000/"}).endpoint("X_ENDPOINT")
    assert_problem(
        caught.value,
        "X_ENDPOINT",
        "settings.PLAIN_HTTP",
        host="ocr.studio.lan",
        hosts="PIXSTOR_AZURE_HTTP_HOSTS",
    )


# ------------------------------------------------------------------ keys


@pytest.mark.parametrize(
    "pasted",
    [
        "3f9c0b7e1a2d4c6b8e0f1a3c5d7e9b2\u2019",  # a smart quote pasted along
        "3f9c0b7e1a2d4c6b8e0f1a3c5d7e9b2\u0441",  # a Cyrillic letter that looks like c
        "\u201c3f9c0b7e1a2d4c6b8e0f1a3c5d7e9b2f\u201d",
        "3f9c0b7e1a2d4c6b8e0f1a3c5d7e9b2\u00e9",  # Latin-1, still never in a key
    ],
)
def test_a_key_with_characters_no_key_has_is_a_settings_error(pasted):
    with pytest.raises(SettingsError) as caught:
        Settings({"AZURE_VISION_KEY": pasted}).secret("AZURE_VISION_KEY")
    assert_problem(caught.value, "AZURE_VISION_KEY", "settings.KEY_NOT_ASCII")
    assert "3f9c0b7e" not in repr(caught.value)


def test_a_key_with_characters_no_key_has_is_named_with_the_others_of_its_backend():
    settings = Settings(
        {
            "AZURE_VISION_ENDPOINT": "https://westus.api.cognitive.microsoft.com",
            "AZURE_VISION_KEY": "ab\u2019",
        }
    )
    with pytest.raises(SettingsError) as caught:
        backends.backend("vision", settings)
    assert_problem(caught.value, "AZURE_VISION_KEY", "settings.KEY_NOT_ASCII")


def test_a_key_is_stripped_and_one_with_spaces_inside_refused():
    assert Settings({"K_KEY": " \tabc123\n"}).secret("K_KEY").reveal() == "abc123"
    with pytest.raises(SettingsError) as caught:
        Settings({"K_KEY": "abc 123"}).secret("K_KEY")
    assert_problem(caught.value, "K_KEY", "settings.KEY_SPACES")
    assert Settings({"K_KEY": "A-z_0.9~!"}).secret("K_KEY").reveal() == "A-z_0.9~!"


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


def test_an_ini_with_keys_readable_by_everyone_is_warned_about_once(
    tmp_path, monkeypatch, logs, clock
):
    path = write_ini(tmp_path, "[custom_vision]\nkey = abc-secret-123\n", monkeypatch)
    path.chmod(0o644)

    Settings.load()
    Settings.load()
    os.utime(path, ns=(1, 2_000_000_000_000_000_000))  # read again: still one warning
    clock.advance(settings_module.RECHECK_SECONDS)
    assert Settings.load().config_status[2] == 2_000_000_000_000_000_000

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


# ------------------------------------------------------------------ placeholders

EXAMPLE = Path(__file__).resolve().parent.parent / "pixstor-azure.example.ini"


def test_the_example_files_placeholder_endpoint_is_a_settings_error_naming_it(
    tmp_path, monkeypatch
):
    # What an administrator gets by copying the example and filling in only the keys.
    text = EXAMPLE.read_text(encoding="utf-8").replace("key =", "key = abc123")
    write_ini(tmp_path, text, monkeypatch)
    settings = Settings.load()

    for name in ("CUSTOM_VISION_ENDPOINT", "AZURE_VISION_ENDPOINT"):
        with pytest.raises(SettingsError) as caught:
            settings.endpoint(name)
        assert_problem(
            caught.value,
            name,
            "settings.PLACEHOLDER",
            placeholder="YOUR-RESOURCE.cognitiveservices.azure.com",
        )


@pytest.mark.parametrize(
    "value",
    [
        "https://YOUR-RESOURCE.cognitiveservices.azure.com",
        "https://YOUR_RESOURCE.cognitiveservices.azure.com/",
        "https://<resource-name>.cognitiveservices.azure.com",
        "https://{endpoint}",
        "https://NAME.cognitiveservices.azure.com",
        "CHANGE-ME",
        "<your project id>",
    ],
)
def test_placeholders_are_refused_wherever_they_are(value):
    with pytest.raises(SettingsError) as caught:
        Settings({"X_SETTING": value}).text("X_SETTING")
    assert_problem(caught.value, "X_SETTING", "settings.PLACEHOLDER")


@pytest.mark.parametrize(
    "value",
    [
        "https://yourco-vision.cognitiveservices.azure.com",
        "https://names.cognitiveservices.azure.com",
        "/srv/models/your_model.zip",
        "Production 3",
    ],
)
def test_real_values_that_look_a_little_like_placeholders_pass(value):
    assert Settings({"X_SETTING": value}).text("X_SETTING") == value.strip()


def test_a_placeholder_key_is_refused_without_being_shown():
    with pytest.raises(SettingsError) as caught:
        Settings({"X_KEY": "<paste-the-key-here>"}).secret("X_KEY")
    assert_problem(caught.value, "X_KEY", "settings.PLACEHOLDER_HIDDEN")
    assert "paste-the-key-here" not in str(caught.value)


# ------------------------------------------------------------------ every problem at once


def test_every_missing_setting_of_a_backend_is_named_at_once():
    settings = Settings({})

    with pytest.raises(SettingsError) as caught:
        backends.backend(customvision.CLASSIFY.name, settings)

    assert_says(
        caught.value,
        "settings.SEVERAL_NOT_SET",
        names="CUSTOM_VISION_CLASSIFY_PROJECT, CUSTOM_VISION_ENDPOINT, CUSTOM_VISION_KEY and "
        "CUSTOM_VISION_CLASSIFY_ITERATION",
    )
    assert caught.value.settings == [
        "CUSTOM_VISION_CLASSIFY_PROJECT",
        "CUSTOM_VISION_ENDPOINT",
        "CUSTOM_VISION_KEY",
        "CUSTOM_VISION_CLASSIFY_ITERATION",
    ]
    with pytest.raises(SettingsError) as caught:
        backends.backend("vision", settings)
    assert_says(
        caught.value, "settings.SEVERAL_NOT_SET", names="AZURE_VISION_ENDPOINT and AZURE_VISION_KEY"
    )


def test_one_missing_setting_is_the_plain_error():
    settings = Settings(
        {
            "CUSTOM_VISION_ENDPOINT": "https://westus.api.cognitive.microsoft.com",
            "CUSTOM_VISION_KEY": "abc",
            "CUSTOM_VISION_CLASSIFY_PROJECT": "64b822c5-8082-4b36-a426-27225f4aa18c",
        }
    )
    with pytest.raises(SettingsError) as caught:
        backends.backend(customvision.CLASSIFY.name, settings)
    assert_problem(caught.value, "CUSTOM_VISION_CLASSIFY_ITERATION", "settings.NOT_SET")
    assert str(caught.value) == error_line("settings.NOT_SET", "CUSTOM_VISION_CLASSIFY_ITERATION")


def test_missing_settings_placeholders_and_a_malformed_value_in_one_line():
    settings = Settings(
        {
            "CUSTOM_VISION_ENDPOINT": "https://YOUR-RESOURCE.cognitiveservices.azure.com",
            "CUSTOM_VISION_CLASSIFY_PROJECT": "64b822c5-8082-4b36-a426-27225f4aa18c",
            "CUSTOM_VISION_STORE_IMAGES": "maybe",
        }
    )
    with pytest.raises(SettingsError) as caught:
        backends.backend(customvision.CLASSIFY.name, settings)
    assert str(caught.value) == "; ".join(
        [
            says(
                "settings.SEVERAL_NOT_SET",
                names="CUSTOM_VISION_KEY and CUSTOM_VISION_CLASSIFY_ITERATION",
            ),
            error_line(
                "settings.PLACEHOLDER",
                "CUSTOM_VISION_ENDPOINT",
                placeholder="YOUR-RESOURCE.cognitiveservices.azure.com",
            ),
            error_line(
                "settings.NOT_A_FLAG",
                "CUSTOM_VISION_STORE_IMAGES",
                about=says("settings.HIDDEN_VALUE", length=5),
            ),
        ]
    )


def test_an_error_caused_by_a_stand_in_is_not_reported():
    # The project is missing: the stand-in passes the GUID check, so nothing but the missing
    # settings is said, and what follows the project is still checked.
    with pytest.raises(SettingsError) as caught:
        backends.backend(customvision.DETECT.name, Settings({"CUSTOM_VISION_KEY": "abc"}))
    assert_says(
        caught.value,
        "settings.SEVERAL_NOT_SET",
        names="CUSTOM_VISION_DETECT_PROJECT, CUSTOM_VISION_ENDPOINT and "
        "CUSTOM_VISION_DETECT_ITERATION",
    )


def test_the_tool_tells_a_missing_setting_from_other_problems():
    # What doctor and tag take for a plugin not set up (left out unless named).
    nothing = Settings({})
    with pytest.raises(SettingsError) as caught:
        backends.backend(customvision.CLASSIFY.name, nothing)
    assert settings_module.unset(caught.value)
    with pytest.raises(SettingsError) as caught:
        nothing.secret("A_KEY")
    assert settings_module.unset(caught.value)
    placeholder = Settings(
        {
            "CUSTOM_VISION_ENDPOINT": "https://YOUR-RESOURCE.cognitiveservices.azure.com",
            "CUSTOM_VISION_KEY": "abc",
            "CUSTOM_VISION_CLASSIFY_PROJECT": "64b822c5-8082-4b36-a426-27225f4aa18c",
            "CUSTOM_VISION_CLASSIFY_ITERATION": "Production",
        }
    )
    with pytest.raises(SettingsError) as caught:
        backends.backend(customvision.CLASSIFY.name, placeholder)
    assert_problem(caught.value, "CUSTOM_VISION_ENDPOINT", "settings.PLACEHOLDER")
    assert not settings_module.unset(caught.value)
    with pytest.raises(SettingsError) as caught:
        Settings({"X_SETTING": "maybe"}).flag("X_SETTING", False)
    assert not settings_module.unset(caught.value)


def test_outside_a_build_a_missing_setting_raises_at_once():
    settings = Settings({})
    with pytest.raises(SettingsError) as caught:
        settings.secret("A_KEY")
    assert_problem(caught.value, "A_KEY", "settings.NOT_SET")
    with pytest.raises(SettingsError) as caught:
        settings.endpoint("AN_ENDPOINT")
    assert_problem(caught.value, "AN_ENDPOINT", "settings.NOT_SET")


# ------------------------------------------------------------------ plain http allow-list


@pytest.mark.parametrize(
    ("hosts", "url", "ok"),
    [
        ("", "http://10.0.0.5:5000", False),
        ("10.0.0.5:5000", "http://10.0.0.5:5000", True),
        ("10.0.0.5:5000", "http://10.0.0.5:5001", False),
        ("10.0.0.5:5000", "http://10.0.0.6:5000", False),
        ("10.0.0.5", "http://10.0.0.5:8080", True),
        ("10.0.0.5:80", "http://10.0.0.5", True),
        ("read-ocr.studio.lan, 10.0.0.5:5000", "http://READ-OCR.studio.lan:5000/", True),
        ("read-ocr.studio.lan", "http://read-ocr.studio.lan.evil.example", False),
        ("read-ocr.studio.lan", "http://ocr.studio.lan", False),
        ("[fd00::5]:5000", "http://[fd00::5]:5000", True),
        ("[fd00::5]:5000", "http://[fd00::6]:5000", False),
        ("", "http://127.0.0.1:8080", True),  # this machine: test servers
        ("", "https://10.0.0.5:5000", True),  # https goes anywhere
    ],
)
def test_plain_http_goes_only_to_the_hosts_named(hosts, url, ok):
    s = Settings({"X_ENDPOINT": url, "PIXSTOR_AZURE_HTTP_HOSTS": hosts})
    if ok:
        assert s.endpoint("X_ENDPOINT") == url.rstrip("/")
    else:
        with pytest.raises(SettingsError) as caught:
            s.endpoint("X_ENDPOINT")
        assert caught.value.setting == "X_ENDPOINT"
        assert "PIXSTOR_AZURE_HTTP_HOSTS" in str(caught.value)


@pytest.mark.parametrize(
    ("entry", "why"),
    [
        ("*.studio.lan", "settings.HOST_WILDCARD"),
        ("http://10.0.0.5", "settings.HOST_SCHEME"),
        ("10.0.0.5:http", "settings.HOST_PORT"),
        ("10.0.0.5/read", "settings.HOST_PATH"),
        ("a@b", "settings.HOST_USER"),
        (":80", "settings.NO_HOST"),
    ],
)
def test_a_malformed_http_hosts_entry_names_the_setting_and_the_entry_not_its_value(entry, why):
    s = Settings({"X_ENDPOINT": "http://10.0.0.5", "PIXSTOR_AZURE_HTTP_HOSTS": f"ok.lan,{entry}"})
    with pytest.raises(SettingsError) as caught:
        s.endpoint("X_ENDPOINT")
    assert_problem(
        caught.value,
        "PIXSTOR_AZURE_HTTP_HOSTS",
        "settings.NOT_HOSTS",
        number=2,
        count=2,
        why=says(why),
    )
    assert entry not in str(caught.value)


# ------------------------------------------------------------------ reuse between calls


def test_loaded_settings_are_reused_until_a_setting_read_changes(monkeypatch):
    first = Settings.load()
    assert first.text("AZURE_VISION_LANGUAGE", "en") == "en"
    assert Settings.load() is first

    monkeypatch.setenv("SOMETHING_NEVER_READ", "x")  # not read by anything: no reason to reload
    assert Settings.load() is first

    monkeypatch.setenv("AZURE_VISION_LANGUAGE", "ja")  # was read (unset): now set
    second = Settings.load()
    assert second is not first and second.text("AZURE_VISION_LANGUAGE", "en") == "ja"
    assert first.text("AZURE_VISION_LANGUAGE", "en") == "en"  # a snapshot: read once

    monkeypatch.setenv("AZURE_VISION_LANGUAGE", "es")  # a changed value
    assert Settings.load().text("AZURE_VISION_LANGUAGE", "en") == "es"
    monkeypatch.delenv("AZURE_VISION_LANGUAGE")  # and a removed one
    assert Settings.load().text("AZURE_VISION_LANGUAGE", "en") == "en"


def test_another_config_file_named_is_read_at_once(tmp_path, monkeypatch):
    write_ini(tmp_path, "[azure_vision]\nlanguage = es\n", monkeypatch)
    assert Settings.load().text("AZURE_VISION_LANGUAGE") == "es"
    other = tmp_path / "other.ini"
    other.write_text("[azure_vision]\nlanguage = ja\n")
    monkeypatch.setenv("PIXSTOR_AZURE_CONFIG", str(other))
    assert Settings.load().text("AZURE_VISION_LANGUAGE") == "ja"


def test_backends_are_reused_until_a_setting_they_read_changes(monkeypatch, classify_env):
    first = backends.backend(customvision.CLASSIFY.name, Settings.load())
    assert backends.backend(customvision.CLASSIFY.name, Settings.load()) is first
    with pytest.raises(SettingsError):  # another plugin's backend is kept apart
        backends.backend(customvision.DETECT.name, Settings.load())

    monkeypatch.setenv("CUSTOM_VISION_CLASSIFY_ITERATION", "Production2")
    second = backends.backend(customvision.CLASSIFY.name, Settings.load())
    assert second is not first and second.iteration == "Production2"

    monkeypatch.setenv("PIXSTOR_AZURE_READ_TIMEOUT", "7")  # read by the backend's HTTP settings
    third = backends.backend(customvision.CLASSIFY.name, Settings.load())
    assert third is not second and third.http.read_timeout == 7.0


def test_a_backend_that_failed_to_build_is_built_again_once_fixed(monkeypatch, classify_env):
    monkeypatch.delenv("CUSTOM_VISION_KEY")
    with pytest.raises(SettingsError) as caught:
        backends.backend(customvision.CLASSIFY.name, Settings.load())
    assert_problem(caught.value, "CUSTOM_VISION_KEY", "settings.NOT_SET")
    monkeypatch.setenv("CUSTOM_VISION_KEY", "abc")
    assert backends.backend(customvision.CLASSIFY.name, Settings.load()).key.reveal() == "abc"


def test_a_built_object_that_says_it_is_stale_is_built_again():
    class Model:
        def __init__(self, number):
            self.number = number
            self.replaced = False

        def stale(self):
            return self.replaced

    settings = Settings({})
    made = []

    def build():
        made.append(Model(len(made)))
        return made[-1]

    first = settings.built("model", build)
    assert settings.built("model", build) is first
    first.replaced = True
    assert settings.built("model", build).number == 1


@pytest.mark.parametrize(
    ("plugin", "setting"),
    [
        ("vision", "AZURE_VISION_API_VERSION"),
        ("vision", "AZURE_VISION_LANGUAGE"),
        ("vision", "AZURE_OPENAI_API_VERSION"),
        ("classification", "AZURE_OPENAI_API_VERSION"),
    ],
)
def test_the_backends_own_checks_never_show_the_value(plugin, setting):
    from pixstor_azure.tool import catalog

    settings = Settings(
        {
            "AZURE_VISION_ENDPOINT": "https://westus.api.cognitive.microsoft.com",
            "AZURE_VISION_KEY": "abc123",
            "AZURE_OPENAI_ENDPOINT": "https://name.openai.azure.com",
            "AZURE_OPENAI_KEY": "abc123",
            "AZURE_OPENAI_DEPLOYMENT": "gpt-4o",
            "AZURE_VISION_API": "openai" if "OPENAI" in setting else "4.0",
            "CUSTOM_VISION_CLASSIFY_BACKEND": "openai",
            "CUSTOM_VISION_CLASSIFY_CLASSES": "red, blue",
            setting: KEY_LIKE[0],
        }
    )
    with pytest.raises(SettingsError) as caught:
        catalog.backend(plugin, settings)
    assert caught.value.setting == setting
    assert KEY_LIKE[0][:16] not in str(caught.value) + repr(caught.value)


# ------------------------------------------------------------------ names and files warned about


def warnings_in(logs):
    return [r.getMessage() for r in logs.records if r.levelname == "WARNING"]


def reread(path, clock):
    """Make the next ``Settings.load()`` parse the file again."""
    os.utime(path, ns=(1, path.stat().st_mtime_ns + 1_000_000_000))
    clock.advance(settings_module.RECHECK_SECONDS)


@pytest.mark.parametrize(
    ("section", "written", "meant"),
    [
        ("custom_vision", "classify_threshhold", "classify_threshold"),
        ("pixstor_azure", "file_timeot", "file_timeout"),
        ("azure_vision", "feature", "features"),
    ],
)
def test_a_misspelt_ini_key_is_warned_about_once_naming_the_nearest(
    tmp_path, monkeypatch, logs, clock, section, written, meant
):
    path = write_ini(tmp_path, f"[{section}]\n{written} = 0.4-never-shown\n", monkeypatch)
    path.chmod(0o600)
    Settings.load()
    reread(path, clock)
    Settings.load()
    assert warnings_in(logs) == [
        f"{path}: [{section}] {written} is no setting and is ignored (did you mean {meant}?)"
    ]
    assert "never-shown" not in logs.text


def test_an_ini_key_of_another_section_is_named_with_its_section(tmp_path, monkeypatch, logs):
    path = write_ini(tmp_path, "[pixstor_azure]\nclassify_backend = onnx\n", monkeypatch)
    path.chmod(0o600)
    Settings.load()
    assert warnings_in(logs) == [
        f"{path}: [pixstor_azure] classify_backend is no setting and is ignored "
        "(did you mean classify_backend in [custom_vision]?)"
    ]


def test_the_config_setting_in_the_ini_is_said_to_be_the_environments_only(
    tmp_path, monkeypatch, logs
):
    path = write_ini(tmp_path, "[pixstor_azure]\nconfig = /etc/other.ini\n", monkeypatch)
    path.chmod(0o600)
    Settings.load()
    assert warnings_in(logs) == [
        f"{path}: [pixstor_azure] config is ignored: PIXSTOR_AZURE_CONFIG is read from the "
        "environment only"
    ]


def test_known_ini_keys_are_not_warned_about(tmp_path, monkeypatch, logs):
    path = write_ini(
        tmp_path,
        "[custom_vision]\nclassify_threshold = 0.4\n[pixstor_azure]\nmin_side = 8\n",
        monkeypatch,
    )
    path.chmod(0o600)
    assert Settings.load().get(registry.CLASSIFY_THRESHOLD) == 0.4
    assert warnings_in(logs) == []


@pytest.mark.parametrize(
    ("name", "meant"),
    [
        ("AZURE_VISION_FEATURE", "AZURE_VISION_FEATURES"),
        ("PIXSTOR_AZURE_FILE_TIMEOT", "PIXSTOR_AZURE_FILE_TIMEOUT"),
        ("AZURE_OPENAI_API_KEY", "AZURE_OPENAI_KEY"),
        ("CUSTOM_VISION_CLASIFY_PROJECT", "CUSTOM_VISION_CLASSIFY_PROJECT"),
    ],
)
def test_an_unknown_environment_variable_of_ours_is_warned_about_once(
    monkeypatch, logs, name, meant
):
    monkeypatch.setenv(name, "value-never-shown")
    Settings.load()
    monkeypatch.setenv("AZURE_VISION_LANGUAGE", "es")  # a setting read: loaded anew
    Settings.load().get(registry.VISION_LANGUAGE)
    monkeypatch.setenv("AZURE_VISION_LANGUAGE", "ja")
    assert Settings.load().get(registry.VISION_LANGUAGE) == "ja"
    assert warnings_in(logs) == [
        f"environment variable {name} is no setting and is ignored (did you mean {meant}?)"
    ]
    assert "never-shown" not in logs.text


def test_environment_variables_of_others_and_known_settings_are_not_warned_about(monkeypatch, logs):
    monkeypatch.setenv("AZURE_STORAGE_KEY", "x")  # not one of our prefixes
    monkeypatch.setenv("AZURE_VISION_FEATURES", "tags")
    monkeypatch.setenv("PIXSTOR_AZURE_CONFIG", os.environ["PIXSTOR_AZURE_CONFIG"])
    Settings.load()
    assert warnings_in(logs) == []


def test_a_misspelt_feature_is_named_with_the_nearest_but_nothing_else_of_the_value():
    with pytest.raises(SettingsError) as caught:
        Settings({"AZURE_VISION_FEATURES": "tags, colour,capton"}).get(registry.VISION_FEATURES)
    entries = [
        says("settings.ENTRY_SHOWN", entry="colour", number=2),
        says("settings.ENTRY_NEAREST", entry="capton", number=3, nearest="caption"),
    ]
    assert_problem(
        caught.value,
        "AZURE_VISION_FEATURES",
        "settings.ENTRIES_UNKNOWN",
        allowed="tags, caption, objects, read",
        unknown=2,
        count=3,
        verb="are",
        entries=", ".join(entries),
    )
    assert "tags, colour" not in str(caught.value)


@pytest.mark.parametrize(
    "entry",
    [KEY_LIKE[0], KEY_LIKE[1], "abc123def456ghi789", "https://x.example", "a" * 30],
)
def test_an_entry_that_may_be_a_key_is_named_by_its_place_only(entry):
    with pytest.raises(SettingsError) as caught:
        Settings({"AZURE_VISION_FEATURES": f"tags,{entry}"}).get(registry.VISION_FEATURES)
    assert_problem(
        caught.value,
        "AZURE_VISION_FEATURES",
        "settings.ENTRIES_UNKNOWN",
        unknown=1,
        count=2,
        verb="is",
        entries=says("settings.ENTRY_HIDDEN", number=2, about=settings_module._about(entry)),
    )
    assert entry not in str(caught.value)


@pytest.mark.parametrize(
    ("text", "said"),
    [
        (
            "[custom_vision]\nendpoint = https://x.example\nkey =\n"
            "3f9c0b7e1a2d4c6b8e0f1a3c5d7e9b2f\n",
            (
                "settings.INI_NOT_LINES",
                {
                    "lines": says(
                        "settings.INI_LINE_AFTER", line=4, option="key", section="custom_vision"
                    ),
                    "verb": "is",
                },
            ),
        ),
        (
            "[custom_vision]\n3f9c0b7e1a2d4c6b8e0f1a3c5d7e9b2f\n",
            (
                "settings.INI_NOT_LINES",
                {
                    "lines": says("settings.INI_LINE_AT_START", line=2, section="custom_vision"),
                    "verb": "is",
                },
            ),
        ),
        (
            "[custom_vision]\nkey = 3f9c0b7e1a2d4c6b8e0f1a3c5d7e9b2f\n"
            "key = 3f9c0b7e1a2d4c6b8e0f1a\n",
            (
                "settings.INI_OPTION_TWICE",
                {"line": 3, "option": "key", "section": "custom_vision"},
            ),
        ),
        (
            "[custom_vision]\nkey = 3f9c0b7e1a2d4c6b8e0f1a3c5d7e9b2f\n[custom_vision]\n",
            ("settings.INI_SECTION_TWICE", {"line": 3, "section": "custom_vision"}),
        ),
        (
            "; settings\nkey = 3f9c0b7e1a2d4c6b8e0f1a3c5d7e9b2f\n",
            ("settings.INI_BEFORE_SECTIONS", {"line": 2}),
        ),
    ],
)
def test_an_ini_syntax_error_names_the_line_and_option_never_the_text(
    tmp_path, monkeypatch, text, said
):
    path = write_ini(tmp_path, text, monkeypatch)
    with pytest.raises(SettingsError) as caught:
        Settings.load()
    part, values = said
    assert_problem(
        caught.value,
        "PIXSTOR_AZURE_CONFIG",
        "settings.CONFIG_NOT_INI",
        path=str(path),
        why=says(part, **values),
    )
    message = str(caught.value)
    assert "3f9c0b7e" not in message and "3f9c0b7e" not in repr(caught.value)


def test_an_ini_that_is_not_utf8_names_the_line(tmp_path, monkeypatch):
    path = write_ini(tmp_path, "", monkeypatch)
    path.write_bytes(b"[custom_vision]\nendpoint = https://x.example\nkey = 3f9c\xff0b7e\n")
    with pytest.raises(SettingsError) as caught:
        Settings.load()
    assert_problem(
        caught.value,
        "PIXSTOR_AZURE_CONFIG",
        "settings.CONFIG_NOT_INI",
        path=str(path),
        why=says("settings.INI_NOT_UTF8", line=3),
    )
    assert "3f9c" not in str(caught.value)


def test_an_ini_with_keys_readable_by_its_group_is_warned_about_once(
    tmp_path, monkeypatch, logs, clock
):
    path = write_ini(tmp_path, "[custom_vision]\nkey = abc-secret-123\n", monkeypatch)
    path.chmod(0o640)
    Settings.load()
    reread(path, clock)
    Settings.load()
    assert warnings_in(logs) == [
        f"{path} holds keys and the users of its group can read it (mode 640): chmod 600 {path}"
    ]
    assert "abc-secret-123" not in logs.text


@pytest.mark.skipif(os.geteuid() != 0, reason="only root gives a file away")
def test_a_group_readable_ini_of_another_owner_is_warned_about_with_the_chown(
    tmp_path, monkeypatch, logs
):
    path = write_ini(tmp_path, "[azure_vision]\nkey = abc-secret-123\n", monkeypatch)
    path.chmod(0o640)
    os.chown(str(path), 4242, -1)
    Settings.load()
    user = settings_module._user()
    assert warnings_in(logs) == [
        f"{path} holds keys and the users of its group can read it (mode 640): chown {user} "
        f"{path} and chmod 600 {path}"
    ]


def test_a_group_readable_ini_without_keys_is_not_warned_about(tmp_path, monkeypatch, logs):
    path = write_ini(tmp_path, "[azure_vision]\nlanguage = es\nkey =\n", monkeypatch)
    path.chmod(0o640)
    Settings.load()
    assert warnings_in(logs) == []
