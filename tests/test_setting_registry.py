"""The declared settings (setting_registry) and ``Settings.get``, which reads one as declared."""

import pytest

from pixstor_azure.ground import setting_registry as registry
from pixstor_azure.ground.errors import SettingsError
from pixstor_azure.ground.settings import Secret, Settings
from pixstor_azure.services import registry as services_registry
from pixstor_azure.services.base import CLASSIFY, DETECT
from pixstor_azure.tool import catalog
from tests.wording import assert_problem, says

WHATS = ("PROJECT", "ITERATION", "BACKEND", "URL", "MODEL", "THRESHOLD")


def test_each_setting_is_declared_once_under_its_section():
    names = [s.name for s in registry.ALL]
    assert len(names) == len(set(names)) == len(registry.BY_NAME)
    for setting in registry.ALL:
        assert setting.section in registry.SECTIONS, setting.name
        assert f"{setting.section}_{setting.key}".upper() == setting.name
        assert setting.key == setting.key.lower() and setting.key
        assert setting.kind in registry.KINDS, setting.name
        assert setting.description and "\n" not in setting.description, setting.name


def test_section_and_key_follow_the_prefix_rule():
    assert (registry.CV_KEY.section, registry.CV_KEY.key) == ("custom_vision", "key")
    assert (registry.FILE_TIMEOUT.section, registry.FILE_TIMEOUT.key) == (
        "pixstor_azure",
        "file_timeout",
    )
    assert registry.VISION_READ_KEY.key == "read_key"
    assert registry.section_of("AZURE_OPENAI_DETAIL") == "azure_openai"
    assert registry.section_of("AZURE_STORAGE_KEY") == ""


def test_defaults_are_of_their_kind_and_within_their_bounds():
    for s in registry.ALL:
        if s.kind in (registry.CHOICE, registry.WORDS):
            assert s.choices, s.name
        if s.kind == registry.CHOICE:
            assert s.default in s.choices, s.name
        if s.kind == registry.WORDS:
            assert set(s.default) <= set(s.choices), s.name
        if s.kind in (registry.NUMBER, registry.INTEGER):
            number_type = int if s.kind == registry.INTEGER else (int, float)
            assert isinstance(s.default, number_type) and not isinstance(s.default, bool)
            assert s.minimum is not None and s.minimum <= s.default, s.name
            assert s.maximum is None or s.default <= s.maximum, s.name
        if s.kind == registry.FLAG:
            assert isinstance(s.default, bool), s.name


def test_only_keys_are_secret_and_only_the_config_is_the_environments_alone():
    secret = {s.name for s in registry.ALL if s.secret}
    assert secret == {s.name for s in registry.ALL if s.name.endswith("_KEY")}
    assert {"CUSTOM_VISION_KEY", "AZURE_VISION_KEY", "AZURE_VISION_READ_KEY"} <= secret
    assert [s.name for s in registry.ALL if not s.in_ini] == ["PIXSTOR_AZURE_CONFIG"]


@pytest.mark.parametrize("what", WHATS)
def test_the_per_task_settings_exist_for_both_tasks(what):
    classify = registry.for_task("classify", what)
    detect = registry.for_task("detect", what)
    assert classify.name == f"CUSTOM_VISION_CLASSIFY_{what}"
    assert detect.name == f"CUSTOM_VISION_DETECT_{what}"
    assert classify.kind == detect.kind
    assert CLASSIFY.setting(what) == classify.name
    assert DETECT.setting(what) == detect.name


def test_look_ups_by_name():
    assert registry.find("PIXSTOR_AZURE_FILE_TIMEOUT") is registry.FILE_TIMEOUT
    assert registry.find("PIXSTOR_AZURE_FILE_TIMEOT") is None
    assert registry.BY_NAME["AZURE_VISION_API"] is registry.VISION_API
    with pytest.raises(KeyError):
        registry.BY_NAME["AZURE_VISION_APIS"]
    with pytest.raises(KeyError):
        registry.for_task("detect", "CLASSES")  # only classification lists classes
    in_ini = [s.key for s in registry.ALL if s.section == "pixstor_azure" and s.in_ini]
    assert "file_timeout" in in_ini
    assert "config" not in in_ini


def test_the_declarations_cannot_be_changed():
    with pytest.raises(AttributeError):
        registry.FILE_TIMEOUT.default = 5.0
    with pytest.raises(TypeError):
        registry.BY_NAME["X"] = registry.FILE_TIMEOUT
    assert isinstance(registry.ALL, tuple)


def test_the_choosing_settings_offer_exactly_the_backends_registered():
    for task, setting in services_registry.CHOSEN_BY.items():
        assert setting.choices == services_registry.names(task), setting.name
        assert setting.default in services_registry.names(task), setting.name


# ------------------------------------------------------------------ Settings.get


def test_get_gives_each_declared_default_when_unset():
    settings = Settings({})
    for s in registry.ALL:
        if s.default is None or s.kind in (registry.SECRET, registry.ENDPOINT):
            continue
        expected = list(s.default) if s.kind == registry.WORDS else s.default
        assert settings.get(s) == expected, s.name


@pytest.mark.parametrize(
    ("setting", "value", "expected"),
    [
        (registry.FILE_TIMEOUT, "30", 30.0),
        (registry.ATTEMPTS, "3", 3),
        (registry.CV_STORE_IMAGES, "yes", True),
        (registry.VISION_API, "OpenAI", "openai"),
        (registry.VISION_FEATURES, "Read, tags", ["read", "tags"]),
        (registry.STORE, "/srv/store.sqlite3", "/srv/store.sqlite3"),
        (registry.CLASSIFY_ITERATION, "Production 3", "Production 3"),
        (
            registry.OPENAI_ENDPOINT,
            "https://name.openai.azure.com/",
            "https://name.openai.azure.com",
        ),
        (registry.HTTP_HOSTS, "10.0.0.5:5000, Ocr.lan", {("10.0.0.5", 5000), ("ocr.lan", None)}),
    ],
)
def test_get_reads_each_kind(setting, value, expected):
    assert Settings({setting.name: value}).get(setting) == expected


def test_get_gives_a_key_as_a_secret():
    got = Settings({"AZURE_VISION_READ_KEY": "abc123"}).get(registry.VISION_READ_KEY)
    assert isinstance(got, Secret) and got.reveal() == "abc123"


@pytest.mark.parametrize(
    ("setting", "value", "problem", "known"),
    [
        (
            registry.FILE_TIMEOUT,
            "0.5",
            "settings.OUT_OF_RANGE",
            {"minimum": 1, "maximum": 3600, "where": says("settings.SMALLER")},
        ),
        (
            registry.CONNECT_TIMEOUT,
            "301",
            "settings.OUT_OF_RANGE",
            {"minimum": 0.1, "maximum": 300, "where": says("settings.LARGER")},
        ),
        (
            registry.CACHE_MAX_MB,
            "-1",
            "settings.BELOW_MINIMUM",
            {"minimum": 0, "where": says("settings.SMALLER")},
        ),
        (registry.MIN_SIDE, "2.5", "settings.NOT_A_WHOLE_NUMBER", {}),
        (registry.OPENAI_DETAIL, "medium", "settings.NOT_A_CHOICE", {"choices": "low, high"}),
        (
            registry.DETECT_BACKEND,
            "openai",
            "settings.NOT_A_CHOICE",
            {"choices": "cloud, container, onnx"},
        ),
        (registry.CV_ENDPOINT, "ftp://x.example", "settings.NOT_A_URL", {}),
        (registry.CLASSIFY_PROJECT, None, "settings.NOT_SET", {}),
    ],
)
def test_get_holds_a_value_to_its_declared_bounds_and_choices(setting, value, problem, known):
    environ = {} if value is None else {setting.name: value}
    with pytest.raises(SettingsError) as caught:
        Settings(environ).get(setting)
    assert_problem(caught.value, setting.name, problem, **known)


def test_get_takes_a_default_worked_out_from_other_settings():
    assert Settings({}).get(registry.CV_MAX_LONG_EDGE, 700) == 700
    assert (
        Settings({"CUSTOM_VISION_MAX_LONG_EDGE": "900"}).get(registry.CV_MAX_LONG_EDGE, 700) == 900
    )


def test_every_kind_is_read():
    """Each kind a setting may be declared with is one ``get`` reads."""
    seen = {s.kind for s in registry.ALL}
    assert seen == set(registry.KINDS)


def test_the_tool_reads_the_backend_with_its_declared_choices():
    settings = Settings({"CUSTOM_VISION_CLASSIFY_BACKEND": "OpenAI"})
    assert catalog.backend_name("classification", settings) == "openai"
    with pytest.raises(SettingsError) as caught:
        catalog.backend_name("detection", Settings({"CUSTOM_VISION_DETECT_BACKEND": "openai"}))
    assert_problem(caught.value, "CUSTOM_VISION_DETECT_BACKEND", "settings.NOT_A_CHOICE")
