"""Settings: environment variables first, then an INI file.

Every setting has one name, its environment variable (``CUSTOM_VISION_KEY``). In the INI file
the same setting is the rest of that name under the section named by its prefix::

    [custom_vision]          ; CUSTOM_VISION_...
    key = ...                ; CUSTOM_VISION_KEY

The INI file is ``$PIXSTOR_AZURE_CONFIG`` when set, else ``pixstor-azure.ini`` next to the
plugins (the folder holding ``common/``).
"""

import configparser
import ipaddress
import logging
import os
import threading
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple
from urllib.parse import urlsplit

from .errors import SettingsError
from .logonce import log_once

log = logging.getLogger(__name__)

CONFIG_VARIABLE = "PIXSTOR_AZURE_CONFIG"
DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "pixstor-azure.ini"
SECTIONS = ("custom_vision", "azure_vision", "pixstor_azure")

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


class Secret:
    """A key that shows itself only when asked by name: never in ``repr``, ``str`` or logs."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('****')"

    __str__ = __repr__

    def __bool__(self) -> bool:
        return bool(self._value)

    def __reduce__(self):  # pickling would carry the key out of the process in clear
        raise TypeError("a Secret cannot be pickled")


_ini_cache: Dict[Tuple[str, int, int], Dict[str, str]] = {}
_ini_lock = threading.Lock()


def _read_ini(path: Path) -> Dict[str, str]:
    """Parse the INI file into {ENV_NAME: value}; cached while the file is unchanged."""
    stat = path.stat()
    key = (str(path), stat.st_mtime_ns, stat.st_size)
    with _ini_lock:
        if key in _ini_cache:
            return _ini_cache[key]
    parser = configparser.ConfigParser(interpolation=None)
    try:
        with open(path, encoding="utf-8") as f:
            parser.read_file(f)
    except (configparser.Error, UnicodeDecodeError) as exc:
        # configparser messages quote lines of the file, which may hold a key: keep only the kind.
        raise SettingsError(
            CONFIG_VARIABLE, f"names {path}, which is not a valid INI file ({type(exc).__name__})"
        ) from None
    values: Dict[str, str] = {}
    for section in parser.sections():
        if section.lower() not in SECTIONS:
            raise SettingsError(
                CONFIG_VARIABLE,
                f"names {path}, whose section [{section}] is not one of "
                + ", ".join(f"[{s}]" for s in SECTIONS),
            )
        for option, value in parser.items(section):
            values[f"{section}_{option}".upper()] = value
    if stat.st_mode & 0o004 and any(name.endswith("_KEY") and v for name, v in values.items()):
        log_once(
            log,
            logging.WARNING,
            f"{path} holds keys and any user of this machine can read it "
            f"(mode {stat.st_mode & 0o777:o}): chmod 600 {path}",
        )
    with _ini_lock:
        _ini_cache.clear()
        _ini_cache[key] = values
    return values


class Settings:
    """Typed access to settings. Each accessor names the setting in any error it raises."""

    def __init__(self, environ: Mapping[str, str], ini: Optional[Mapping[str, str]] = None) -> None:
        self._environ = environ
        self._ini = ini or {}

    @classmethod
    def load(cls, environ: Optional[Mapping[str, str]] = None) -> "Settings":
        environ = os.environ if environ is None else environ
        explicit = environ.get(CONFIG_VARIABLE, "").strip()
        path = Path(explicit).expanduser() if explicit else DEFAULT_CONFIG
        if not path.is_file():
            if explicit:
                raise SettingsError(CONFIG_VARIABLE, f"names {path}, which is not a readable file")
            return cls(environ)
        return cls(environ, _read_ini(path))

    def raw(self, name: str) -> Optional[str]:
        value = self._environ.get(name)
        if value is None or not value.strip():
            value = self._ini.get(name)
        if value is None or not value.strip():
            return None
        return value.strip()

    def text(self, name: str, default: Optional[str] = None) -> str:
        value = self.raw(name)
        if value is None:
            if default is None:
                raise SettingsError(name, "is not set")
            return default
        return value

    def secret(self, name: str) -> Secret:
        value = self.raw(name)
        if value is None:
            raise SettingsError(name, "is not set")
        if any(c.isspace() for c in value) or not value.isprintable():
            raise SettingsError(name, "holds spaces or control characters")
        return Secret(value)

    def number(
        self, name: str, default: float, minimum: float = 0.0, maximum: Optional[float] = None
    ) -> float:
        value = self.raw(name)
        if value is None:
            return default
        try:
            number = float(value)
        except ValueError:
            raise SettingsError(name, f"must be a number, not {value!r}") from None
        return _within(name, value, number, minimum, maximum)

    def integer(
        self, name: str, default: int, minimum: int = 0, maximum: Optional[int] = None
    ) -> int:
        value = self.raw(name)
        if value is None:
            return default
        try:
            number = int(value)
        except ValueError:
            raise SettingsError(name, f"must be a whole number, not {value!r}") from None
        return _within(name, value, number, minimum, maximum)

    def flag(self, name: str, default: bool) -> bool:
        value = self.raw(name)
        if value is None:
            return default
        if value.lower() in _TRUE:
            return True
        if value.lower() in _FALSE:
            return False
        raise SettingsError(name, f"must be true or false, not {value!r}")

    def choice(self, name: str, default: str, choices: Sequence[str]) -> str:
        value = self.raw(name)
        if value is None:
            return default
        for choice in choices:
            if value.lower() == choice.lower():
                return choice
        raise SettingsError(name, f"must be one of {', '.join(choices)}, not {value!r}")

    def words(self, name: str, default: Sequence[str], allowed: Sequence[str]) -> List[str]:
        """A comma-separated list drawn from ``allowed`` (matched case-insensitively)."""
        value = self.raw(name)
        if value is None:
            return list(default)
        lookup = {a.lower(): a for a in allowed}
        words = [w.strip() for w in value.split(",") if w.strip()]
        unknown = [w for w in words if w.lower() not in lookup]
        if unknown or not words:
            raise SettingsError(
                name, f"must be a comma-separated list of {', '.join(allowed)}, not {value!r}"
            )
        return list(dict.fromkeys(lookup[w.lower()] for w in words))

    def endpoint(self, name: str) -> str:
        """A service's base URL: https, or plain http to this machine only (test servers)."""
        value = self.text(name).rstrip("/")
        parts = urlsplit(value)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise SettingsError(
                name,
                f"must be a URL such as https://NAME.cognitiveservices.azure.com, not {value!r}",
            )
        if parts.query or parts.fragment or parts.username or parts.password:
            raise SettingsError(name, "must be a plain base URL, without query, fragment or user")
        if parts.scheme == "http" and not is_loopback(parts.hostname):
            raise SettingsError(
                name, "uses plain http to another machine: keys and images must go over https"
            )
        return value


def _within(name: str, text: str, number, minimum, maximum):
    if not (number >= minimum) or (maximum is not None and number > maximum):  # NaN fails too
        bounds = f"at least {minimum:g}" if maximum is None else f"{minimum:g} to {maximum:g}"
        raise SettingsError(name, f"must be {bounds}, not {text!r}")
    return number


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
