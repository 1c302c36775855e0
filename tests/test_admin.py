"""An administrator's first mistakes, through the plugins as PixStor loads and calls them.

Each mistake must end every file FATAL with one log line, once, that names the setting and
how to fix it, and nothing may be sent: the settings file copied from the example with its
placeholders left in place, required settings left out, an INI file the PixStor user may not
read, plain http to a container nobody allowed. And a long-running plugin must see a changed
setting at the next file, although it no longer re-reads everything for every file.
"""

import json
import os
import pwd
import shutil
import socket
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import List, Optional

import pytest
import responses

import azureclassification
import azurevision
from pixstor_azure.ground import settings as settings_module
from pixstor_azure.ground.pixstor import PluginStatus
from tests import imagefactory
from tests.conftest import ROOT
from tests.fakeazure import FakeAzure
from tests.fakecontainer import FakeContainer
from tests.test_dropin import FAKE_ARCAPIX, _with_site_packages, install
from tests.wording import row, says


def held(error):
    """A settings problem's line: every file fails until it is fixed."""
    return says("runner.SETTINGS_HOLD", error=error)


EXAMPLE = ROOT / "pixstor-azure.example.ini"

LOADER = textwrap.dedent(
    """
    import importlib.util, inspect, json, logging, sys
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(message)s")
    link, images = sys.argv[1], sys.argv[2:]
    spec = importlib.util.spec_from_file_location("pixstor_plugin", link)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    from arcapix.search.metadata.plugins.base import Plugin
    [plugin_class] = [c for _, c in inspect.getmembers(module, inspect.isclass)
                      if issubclass(c, Plugin) and c is not Plugin]
    plugin = plugin_class()
    print(json.dumps([plugin.process("item-%d" % i, p).name for i, p in enumerate(images)]))
    """
)


def pictures(folder: Path, count: int = 3) -> List[Path]:
    return [imagefactory.jpeg(folder, size=(320, 240), name=f"f{i}.jpg") for i in range(count)]


def errors(logs) -> List[str]:
    return [r.getMessage() for r in logs.records if r.levelname == "ERROR"]


def error_line(key: str, setting: str, **values) -> str:
    """The line of the ``SettingsError`` of ``setting`` whose problem is ``key``'s."""
    return str(row(key).error(setting, **values))


# ------------------------------------------------------------------ placeholders and gaps


def test_the_example_file_copied_as_is_is_one_line_and_sends_nothing(tmp_path, monkeypatch, logs):
    # The administrator copied the example and filled in the key only.
    ini = tmp_path / "pixstor-azure.ini"
    ini.write_text(EXAMPLE.read_text(encoding="utf-8").replace("key =", "key = 5f2b9c1e7a3d"))
    ini.chmod(0o600)
    monkeypatch.setenv("PIXSTOR_AZURE_CONFIG", str(ini))
    plugin = azureclassification.AzureClassificationPlugin()

    with responses.RequestsMock(assert_all_requests_are_fired=False) as calls:
        statuses = [plugin.process(f"id-{p.name}", str(p)) for p in pictures(tmp_path)]

    assert statuses == [PluginStatus.FATAL] * 3
    assert not calls.calls  # no DNS look-up of YOUR-RESOURCE, no retries
    missing = says(
        "settings.SEVERAL_NOT_SET",
        names="CUSTOM_VISION_CLASSIFY_PROJECT and CUSTOM_VISION_CLASSIFY_ITERATION",
    )
    placeholder = error_line(
        "settings.PLACEHOLDER",
        "CUSTOM_VISION_ENDPOINT",
        placeholder="YOUR-RESOURCE.cognitiveservices.azure.com",
    )
    assert errors(logs) == [f"azureclassification: FATAL: {missing}; {held(placeholder)}"]
    assert "5f2b9c1e7a3d" not in logs.text


def test_every_missing_setting_is_named_in_one_line_as_pixstor_loads_the_plugin(tmp_path):
    result = run_as_pixstor(tmp_path, "azurevision.py", pictures(tmp_path))

    assert json.loads(result.stdout) == ["FATAL"] * 3, result.stderr
    missing = says("settings.SEVERAL_NOT_SET", names="AZURE_VISION_ENDPOINT and AZURE_VISION_KEY")
    assert result.stderr.splitlines() == [f"ERROR azurevision: FATAL: {held(missing)}"]


def test_each_plugin_names_its_own_missing_settings_at_once(tmp_path, logs):
    plugin = azurevision.AzureVisionPlugin()
    image = str(pictures(tmp_path, 1)[0])
    assert plugin.process("id", image) == PluginStatus.FATAL
    classifier = azureclassification.AzureClassificationPlugin()
    assert classifier.process("id", image) == PluginStatus.FATAL

    vision = says("settings.SEVERAL_NOT_SET", names="AZURE_VISION_ENDPOINT and AZURE_VISION_KEY")
    classification = says(
        "settings.SEVERAL_NOT_SET",
        names="CUSTOM_VISION_CLASSIFY_PROJECT, CUSTOM_VISION_ENDPOINT, CUSTOM_VISION_KEY and "
        "CUSTOM_VISION_CLASSIFY_ITERATION",
    )
    assert errors(logs) == [
        f"azurevision: FATAL: {held(vision)}",
        f"azureclassification: FATAL: {held(classification)}",
    ]


# ------------------------------------------------------------------ an INI PixStor cannot read


def pixstor_user_prefix() -> Optional[List[str]]:
    """How to run a command as a user the file modes apply to, or None when there is none.

    Tests run as root in CI, and root reads a file whatever its mode; without its two
    capabilities that override file modes (setpriv drops them), root is held to them like
    PixStor's own user would be.
    """
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        return None
    prefix = [setpriv, "--bounding-set=-dac_override,-dac_read_search", "--"]
    probe = subprocess.run(
        [*prefix, sys.executable, "-S", "-c", "import os; os.listdir('/proc/self')"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        timeout=60,
    )
    return prefix if probe.returncode == 0 else None


def run_plugin(
    tmp_path: Path,
    link: Path,
    images: List[Path],
    as_user: Optional[List[str]] = None,
    **env: str,
) -> subprocess.CompletedProcess:
    """Run the plugin ``link`` points to as PixStor does, on ``images``, in a fresh interpreter
    that has neither our code nor any setting of ours but what ``env`` gives it."""
    environment = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": str(FAKE_ARCAPIX),
        "PYTHONNOUSERSITE": "1",
        "FAKE_ARCAPIX_OUT": str(tmp_path / "metadata.jsonl"),
        **env,
    }
    return subprocess.run(
        [
            *(as_user or []),
            sys.executable,
            "-S",
            "-c",
            _with_site_packages(LOADER),
            str(link),
            *map(str, images),
        ],
        cwd=str(tmp_path),
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        universal_newlines=True,
        timeout=120,
    )


def run_as_pixstor(tmp_path: Path, plugin: str, images: List[Path]) -> subprocess.CompletedProcess:
    """Install ``plugin`` as the README says, with no settings at all, and run it."""
    return run_plugin(tmp_path, install(tmp_path, plugin), images)


def user_name() -> str:
    return pwd.getpwuid(os.geteuid()).pw_name


def test_an_unreadable_ini_beside_the_plugins_is_one_line_with_the_fix(tmp_path):
    as_user = pixstor_user_prefix()
    if as_user is None:
        pytest.skip("root here, and no setpriv to hold it to file modes (see the next tests)")
    link = install(tmp_path, "azurevision.py")
    # What copying the example as root leaves for PixStor's user when it is not root: a file
    # it may not read. Here the file is made unreadable to the user the test runs as.
    ini = (link.resolve().parent / "pixstor-azure.ini").resolve()
    ini.write_text("[azure_vision]\nendpoint = https://x.cognitiveservices.azure.com\nkey = k\n")
    ini.chmod(0o000)

    result = run_plugin(tmp_path, link, pictures(tmp_path), as_user)

    user = user_name()
    assert json.loads(result.stdout) == ["FATAL"] * 3, result.stderr
    said = error_line(
        "settings.CONFIG_UNREADABLE",
        "PIXSTOR_AZURE_CONFIG",
        which=says("settings.CONFIG_DEFAULT", path=ini),
        user=user,
        path=ini,
    )
    assert result.stderr.splitlines() == [f"ERROR azurevision: FATAL: {held(said)}"]


def test_an_ini_in_a_folder_pixstor_may_not_enter_is_one_line_with_the_fix(tmp_path):
    as_user = pixstor_user_prefix()
    if as_user is None:
        pytest.skip("root here, and no setpriv to hold it to file modes (see the next test)")
    link = install(tmp_path, "azurevision.py")
    folder = tmp_path / "settings"
    folder.mkdir()
    ini = folder / "pixstor-azure.ini"
    ini.write_text("[azure_vision]\nkey = k\n")
    ini.chmod(0o600)
    folder.chmod(0o000)
    try:
        result = run_plugin(
            tmp_path, link, pictures(tmp_path, 2), as_user, PIXSTOR_AZURE_CONFIG=str(ini)
        )
    finally:
        folder.chmod(0o700)  # so that pytest can remove it

    user = user_name()
    assert json.loads(result.stdout) == ["FATAL"] * 2, result.stderr
    said = error_line(
        "settings.CONFIG_FOLDER_CLOSED",
        "PIXSTOR_AZURE_CONFIG",
        which=says("settings.CONFIG_NAMED", path=ini),
        user=user,
        folder=folder,
    )
    assert result.stderr.splitlines() == [f"ERROR azurevision: FATAL: {held(said)}"]


def test_an_unreadable_ini_in_a_long_running_plugin_is_one_line(tmp_path, monkeypatch, logs):
    """In process, through the plugin, with the error where it happens: the file's open.

    Run as root (CI), a file's mode does not stop the read: the PermissionError a PixStor
    user meets is then raised at that same open, for that file only. Run as any other user,
    the file's mode does it for real."""
    ini = tmp_path / "pixstor-azure.ini"
    ini.write_text("[custom_vision]\nkey = abc-secret-123\n")
    ini.chmod(0o000)
    monkeypatch.setenv("PIXSTOR_AZURE_CONFIG", str(ini))
    if os.geteuid() == 0:
        real_open = open

        def open_as_pixstor(file, *args, **kwargs):
            if Path(file) == ini:
                raise PermissionError(13, "Permission denied", str(file))
            return real_open(file, *args, **kwargs)

        monkeypatch.setattr(settings_module, "open", open_as_pixstor, raising=False)
    plugin = azureclassification.AzureClassificationPlugin()

    statuses = [plugin.process(f"id-{p.name}", str(p)) for p in pictures(tmp_path)]

    assert statuses == [PluginStatus.FATAL] * 3
    user = user_name()
    said = error_line(
        "settings.CONFIG_UNREADABLE",
        "PIXSTOR_AZURE_CONFIG",
        which=says("settings.CONFIG_NAMED", path=ini),
        user=user,
        path=ini,
    )
    assert errors(logs) == [f"azureclassification: FATAL: {held(said)}"]
    assert "PermissionError" not in logs.text


# ------------------------------------------------------------------ plain http on the network


def loopback_alias() -> Optional[str]:
    """A name of this machine, other than localhost, that resolves to loopback only: it stands
    for a container's host name on the local network, while traffic stays on this machine."""
    for name in (socket.gethostname(), "localhost.localdomain"):
        try:
            found = {a[4][0] for a in socket.getaddrinfo(name, 80, socket.AF_INET)}
        except OSError:
            continue
        loopback = found and all(address.startswith("127.") for address in found)
        if loopback and not settings_module.is_loopback(name):
            return name
    return None


def test_plain_http_reaches_a_container_only_when_its_host_is_named(tmp_path, monkeypatch, logs):
    alias = loopback_alias()
    if alias is None:
        pytest.skip("no name of this machine but localhost resolves to loopback")
    with FakeAzure() as server:
        server.mount("/", FakeContainer("classify", ["red", "green", "blue"]))
        port = int(server.url.rsplit(":", 1)[1])
        url = f"http://{alias}:{port}"
        monkeypatch.setenv("CUSTOM_VISION_CLASSIFY_BACKEND", "container")
        monkeypatch.setenv("CUSTOM_VISION_CLASSIFY_URL", url)
        plugin = azureclassification.AzureClassificationPlugin()
        first, second, third = (
            imagefactory.jpeg(tmp_path, size=(64, 64), color=(255, 0, 0), name=f"{n}.jpg")
            for n in ("first", "second", "third")
        )

        refused = plugin.process("1", str(first))
        monkeypatch.setenv("PIXSTOR_AZURE_HTTP_HOSTS", f"nas.studio.lan, {alias}:{port}")
        allowed = plugin.process("2", str(second))
        monkeypatch.setenv("PIXSTOR_AZURE_HTTP_HOSTS", f"{alias}:{port + 1}")
        other_port = plugin.process("3", str(third))

    assert (refused, allowed, other_port) == (
        PluginStatus.FATAL,
        PluginStatus.SUCCESS,
        PluginStatus.FATAL,
    )
    assert [r.method for r in server.requests] == ["POST"]  # the allowed one only
    said = error_line(
        "settings.PLAIN_HTTP",
        "CUSTOM_VISION_CLASSIFY_URL",
        host=alias,
        hosts="PIXSTOR_AZURE_HTTP_HOSTS",
    )
    assert errors(logs)[0] == (f"azureclassification: FATAL: {held(said)}")


# ------------------------------------------------------------------ settings seen at once


def test_a_long_running_plugin_sees_a_changed_setting_at_the_next_file(
    tmp_path, monkeypatch, fake_classifier
):
    plugin = azureclassification.AzureClassificationPlugin()
    # Three different pictures: the answer cache would answer for a picture seen before.
    first, second, third = (
        imagefactory.jpeg(tmp_path, size=(640, 480), color=(0, green, 0), name=f"{green}.jpg")
        for green in (160, 180, 200)
    )

    assert plugin.process("1", str(first)) == PluginStatus.SUCCESS
    monkeypatch.setenv("PIXSTOR_AZURE_MAX_LONG_EDGE", "320")
    assert plugin.process("2", str(second)) == PluginStatus.SUCCESS
    monkeypatch.delenv("PIXSTOR_AZURE_MAX_LONG_EDGE")
    assert plugin.process("3", str(third)) == PluginStatus.SUCCESS

    sent = [r.image_size for r in fake_classifier.requests if r.image_size]
    assert sent == [(640, 480), (320, 240), (640, 480)]
