"""Settings: environment variables first, then an INI file.

Every setting has one name, its environment variable (``CUSTOM_VISION_KEY``). In the INI file
the same setting is the rest of that name under the section named by its prefix::

    [custom_vision]          ; CUSTOM_VISION_...
    key = ...                ; CUSTOM_VISION_KEY

The INI file is ``$PIXSTOR_AZURE_CONFIG`` when set, else ``pixstor-azure.ini`` next to the
plugins (the folder holding ``common/``).

PixStor calls a plugin for every new file, so ``Settings.load()`` hands back the same
``Settings`` while nothing it read has changed: each call compares the environment variables
that were read (a dictionary look-up each) and looks at the INI file's status at most once a
second. Objects built from a ``Settings`` (backends) are kept with it by ``built``, so they are
built again exactly when a setting they read changes.
"""

import configparser
import ipaddress
import logging
import os
import re
import stat
import threading
from pathlib import Path
from typing import Any, Callable, Dict, FrozenSet, List, Mapping, Optional, Sequence, Tuple
from urllib.parse import urlsplit

from . import clock, runtime
from .errors import SettingsError
from .logonce import log_once

log = logging.getLogger(__name__)

CONFIG_VARIABLE = "PIXSTOR_AZURE_CONFIG"
# The folder that holds common/ and the plugin files (PixStor's plugins/available/azure).
PLUGINS_FOLDER = Path(__file__).resolve().parents[2]
DEFAULT_CONFIG = PLUGINS_FOLDER / "pixstor-azure.ini"
SECTIONS = ("custom_vision", "azure_vision", "azure_openai", "pixstor_azure")
# Hosts (host or host:port, comma-separated) that may be reached over plain http: containers
# on the local network (an exported Custom Vision model, Read). Everywhere else: https only.
HTTP_HOSTS = "PIXSTOR_AZURE_HTTP_HOSTS"
# How often a loaded INI file's status is looked at again: an edit is seen within this time.
RECHECK_SECONDS = 1.0

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
# What the example file, the README and Azure's documentation put where a value of yours goes:
# YOUR-RESOURCE, <resource-name>, {endpoint}. No real endpoint, key, GUID or name looks so.
# Capitals only for YOUR-: a path such as /srv/models/your_model.zip may be real.
_PLACEHOLDER = re.compile(r"\bYOUR[-_][\w.-]*|//NAME\.|<[^<>]*>|\{[^{}]*\}|\b(?i:change-?me)\b")
# Handed out for a missing setting while every problem of a plugin is collected (``built``):
# a value that passes the format checks backends make (a GUID is valid text too), so that
# building goes on to the settings after it. Never used to call anything.
_STAND_IN_TEXT = "00000000-0000-0000-0000-000000000000"
_STAND_IN_ENDPOINT = "https://missing.invalid"
_UNREAD = object()
# What a key looks like: Azure's are 32 hexadecimal digits, or 84 letters and digits. A value
# so shaped, set where a key does not go, is said to look like one (never shown).
_KEY_LIKE = re.compile(r"[0-9A-Fa-f]{32}|[0-9A-Za-z]{80,90}")
# A run of letters and digits long enough, with a digit in it, to be (part of) a key or token.
_SECRET_LIKE = re.compile(r"[0-9A-Za-z]{16,}")


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


class SettingsProblems(SettingsError):
    """Every missing setting of a plugin (and placeholders left in place) in one line.

    ``setting`` is the first setting named, ``settings`` all of them in order; with a single
    problem, ``setting`` and ``problem`` are those of the plain ``SettingsError`` it stands for.
    """

    def __init__(
        self,
        missing: Sequence[str],
        placeholders: Sequence[SettingsError],
        other: Optional[SettingsError] = None,
    ) -> None:
        found = [SettingsError(name, "is not set") for name in missing]
        found.extend(placeholders)
        if other is not None:
            found.append(other)
        self.settings = [error.setting for error in found]
        if len(found) == 1:
            super().__init__(found[0].setting, found[0].problem)
            return
        parts = [str(error) for error in found[len(missing) :]]
        if len(missing) > 1:
            parts.insert(0, f"settings {_joined(missing)} are not set")
        elif missing:
            parts.insert(0, str(found[0]))
        super().__init__(self.settings[0], "")
        self.problem = "; ".join(parts)
        self.args = (self.problem,)


def _joined(names: Sequence[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


class _Collector:
    """The problems found while building one object in collecting mode (see ``built``)."""

    def __init__(self) -> None:
        self.missing = []  # type: List[str]
        self.placeholders = []  # type: List[SettingsError]
        self.stand_ins = 0
        self.malformed = None  # type: Optional[SettingsError]

    def seen(self, name: str) -> bool:
        return name in self.missing or any(p.setting == name for p in self.placeholders)


class _Placeholder:
    """What ``raw`` keeps for a value that is a placeholder: the error to raise or collect."""

    __slots__ = ("error",)

    def __init__(self, error: SettingsError) -> None:
        self.error = error


class Settings:
    """Typed access to settings. Each accessor names the setting in any error it raises.

    A ``Settings`` answers from the values it first read: each setting is read once, so what
    was built from it stays true to it, and ``unchanged()`` tells whether the environment still
    holds those values.
    """

    def __init__(self, environ: Mapping[str, str], ini: Optional[Mapping[str, str]] = None) -> None:
        self._environ = environ
        self._ini = ini or {}
        self._values = {}  # type: Dict[str, Any]
        self._built = {}  # type: Dict[Any, Any]
        self._lock = threading.RLock()  # _memo builds while holding it, and building reads settings
        self._local = threading.local()
        # os.environ keeps its values encoded in a plain dict: probing that dict is what makes
        # ``unchanged()`` cheap enough to run on every call (os.environ.get costs 20x more).
        data = getattr(environ, "_data", None)
        self._fast = isinstance(data, dict) and hasattr(environ, "encodekey")
        self._probe = data.get if self._fast else environ.get  # type: Callable[[Any], Any]
        self._watch = ()  # type: Tuple[Tuple[Any, Any], ...]
        self.config = None  # type: Optional[Path]
        self.config_status = None  # type: Optional[Tuple[int, ...]]

    @classmethod
    def load(cls, environ: Optional[Mapping[str, str]] = None) -> "Settings":
        """The settings of the environment and the INI file.

        Without ``environ``: this process's settings, the same object while nothing it read
        has changed. With one: new settings read from that mapping.
        """
        if environ is not None:
            return cls._read(environ, _ini_files().read)
        loaded = runtime.current().get(Loaded)
        settings = loaded.current()
        return settings if settings is not None else loaded.reload(cls)

    @classmethod
    def _read(cls, environ: Mapping[str, str], read_ini: Callable) -> "Settings":
        settings = cls(environ)
        path, explicit = config_path(settings._environment(CONFIG_VARIABLE))
        settings._ini, settings.config_status = read_ini(path, explicit)
        settings.config = path
        return settings

    def unchanged(self) -> bool:
        """Whether every environment variable read so far still holds the value read."""
        probe = self._probe
        for key, value in self._watch:  # noqa: SIM110 (all() over a generator costs more)
            if probe(key) != value:
                return False
        return True

    def built(self, key: Any, build: Callable[[], Any]) -> Any:
        """What ``build()`` makes from these settings, made once and kept with them.

        While it builds, a missing setting does not stop it: every missing setting (and any
        placeholder left in place) is collected and the whole list raised as one
        ``SettingsError``, so that an administrator learns them all at once. An object that
        also depends on files has a ``stale()`` method: when it answers True, it is made again.
        """
        made = self._built.get(key)
        if made is not None:
            stale = getattr(made, "stale", None)  # what also depends on files (a model)
            if stale is None or not stale():
                return made
        outer = getattr(self._local, "collector", None)
        collector = outer or _Collector()
        self._local.collector = collector
        try:
            made = build()
        except SettingsError as exc:
            if outer is not None or not (collector.missing or collector.placeholders):
                raise
            # After a stand-in, an error may be the stand-in's: only one an accessor found
            # in a real value is kept.
            other = exc if exc is collector.malformed else None
            raise SettingsProblems(collector.missing, collector.placeholders, other) from None
        finally:
            self._local.collector = outer
        if outer is None and (collector.missing or collector.placeholders):
            raise SettingsProblems(collector.missing, collector.placeholders)
        if collector.stand_ins or collector.missing or collector.placeholders:
            return made  # built on stand-ins or defaults: the outer build raises; never kept
        with self._lock:
            self._built[key] = made
        return made

    def _environment(self, name: str) -> Optional[str]:
        """The environment's value of ``name``, watched from now on by ``unchanged()``."""
        if self._fast:
            key = self._environ.encodekey(name)
            seen = self._probe(key)
            value = None if seen is None else self._environ.decodevalue(seen)
        else:
            key = name
            seen = value = self._environ.get(name)
        with self._lock:
            self._watch += ((key, seen),)
        return value

    def raw(self, name: str) -> Optional[str]:
        """The value of ``name`` (the environment's, else the INI file's), stripped; None when
        unset or blank."""
        value = self._values.get(name, _UNREAD)
        if value is _UNREAD:
            value = self._values.setdefault(name, self._value(name))
        if value.__class__ is _Placeholder:
            collector = getattr(self._local, "collector", None)
            if collector is None:
                raise value.error
            if not collector.seen(name):
                collector.placeholders.append(value.error)
            return None
        return value

    def _value(self, name: str) -> Any:
        value = self._environment(name)
        if value is None or not value.strip():
            value = self._ini.get(name)
        if value is None or not value.strip():
            return None
        value = value.strip()
        found = _PLACEHOLDER.search(value)
        if found is None:
            return value
        placeholder = found.group(0)
        shown = "" if name.endswith("_KEY") or _may_be_secret(placeholder) else f" ({placeholder})"
        return _Placeholder(
            SettingsError(
                name, f"still holds a placeholder{shown}, as in the example: set your own value"
            )
        )

    def _missing(self, name: str, stand_in: Any) -> Any:
        collector = getattr(self._local, "collector", None)
        if collector is None:
            raise SettingsError(name, "is not set")
        if not collector.seen(name):
            collector.missing.append(name)
        collector.stand_ins += 1
        return stand_in

    def _malformed(self, name: str, problem: str) -> SettingsError:
        error = SettingsError(name, problem)
        collector = getattr(self._local, "collector", None)
        if collector is not None and collector.malformed is None:
            collector.malformed = error
        return error

    def text(self, name: str, default: Optional[str] = None) -> str:
        value = self.raw(name)
        if value is None:
            if default is None:
                return self._missing(name, _STAND_IN_TEXT)
            return default
        return value

    def secret(self, name: str) -> Secret:
        value = self.raw(name)
        if value is None:
            return self._missing(name, Secret(_STAND_IN_TEXT))
        if any(c.isspace() for c in value) or not value.isprintable():
            raise self._malformed(
                name, "holds spaces or control characters: paste it again from the Azure portal"
            )
        if not all(" " < c <= "~" for c in value):
            # requests would fail on every file with a UnicodeEncodeError building the header.
            raise self._malformed(
                name,
                "has characters that cannot be in a key (only printable ASCII): paste it again "
                "from the Azure portal",
            )
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
            raise self._malformed(
                name, f"must be a number; the value set is not one ({_about(value)})"
            ) from None
        return self._within(name, number, minimum, maximum)

    def integer(
        self, name: str, default: int, minimum: int = 0, maximum: Optional[int] = None
    ) -> int:
        value = self.raw(name)
        if value is None:
            return default
        try:
            number = int(value)
        except ValueError:
            raise self._malformed(
                name, f"must be a whole number; the value set is not one ({_about(value)})"
            ) from None
        return self._within(name, number, minimum, maximum)

    def flag(self, name: str, default: bool) -> bool:
        value = self.raw(name)
        if value is None:
            return default
        if value.lower() in _TRUE:
            return True
        if value.lower() in _FALSE:
            return False
        raise self._malformed(
            name,
            "must be true or false (or yes/no, on/off, 1/0); the value set is none of them "
            f"({_about(value)})",
        )

    def choice(self, name: str, default: str, choices: Sequence[str]) -> str:
        value = self.raw(name)
        if value is None:
            return default
        for choice in choices:
            if value.lower() == choice.lower():
                return choice
        raise self._malformed(
            name,
            f"must be one of {', '.join(choices)}; the value set is none of them ({_about(value)})",
        )

    def words(self, name: str, default: Sequence[str], allowed: Sequence[str]) -> List[str]:
        """A comma-separated list drawn from ``allowed`` (matched case-insensitively)."""
        value = self.raw(name)
        if value is None:
            return list(default)
        lookup = {a.lower(): a for a in allowed}
        words = [w.strip() for w in value.split(",") if w.strip()]
        unknown = [w for w in words if w.lower() not in lookup]
        if unknown or not words:
            # The entries that are allowed words may be shown; the others may be anything.
            found = (
                f"{len(unknown)} of its {len(words)} entries are not among them"
                if words
                else "it lists none"
            )
            raise self._malformed(
                name,
                f"must be a comma-separated list of {', '.join(allowed)}; {found} "
                f"({_about(value)})",
            )
        return list(dict.fromkeys(lookup[w.lower()] for w in words))

    def endpoint(self, name: str) -> str:
        """A service's base URL: https; plain http only to this machine (test servers) or to a
        host named in ``PIXSTOR_AZURE_HTTP_HOSTS`` (a container on the local network)."""
        value = self.raw(name)
        if value is None:
            return self._missing(name, _STAND_IN_ENDPOINT)
        value = value.rstrip("/")
        parts = urlsplit(value)
        try:
            port = parts.port
        except ValueError:
            port = -1
        if parts.scheme not in ("https", "http") or not parts.hostname or port == -1:
            if "://" not in value:
                why = "it has no https://"
            elif parts.scheme not in ("https", "http"):
                why = "it is neither https:// nor http://"
            elif not parts.hostname:
                why = "it names no host"
            else:
                why = "its port is not a number from 0 to 65535"
            raise self._malformed(
                name,
                "must be a URL such as https://NAME.cognitiveservices.azure.com; the value set "
                f"is not one ({why}; {_about(value)})",
            )
        if parts.query or parts.fragment or parts.username or parts.password:
            raise self._malformed(name, "must be a plain base URL, without query, fragment or user")
        if parts.scheme == "http" and not self.plain_http_allowed(parts.hostname, port or 80):
            # The host of a URL written with http:// is a machine's name, never a key: shown,
            # since it is what goes into PIXSTOR_AZURE_HTTP_HOSTS.
            raise self._malformed(
                name,
                f"uses plain http to {parts.hostname}, which is not named in {HTTP_HOSTS}: keys "
                "and images go over https, except to this machine and to the hosts named there "
                "(containers on your network)",
            )
        return value

    def plain_http_allowed(self, host: str, port: int) -> bool:
        """Whether plain http may go to ``host``:``port``: this machine, or a host named in
        ``PIXSTOR_AZURE_HTTP_HOSTS`` (with that port, or any port when it names none)."""
        if is_loopback(host):
            return True
        named = self._memo(HTTP_HOSTS, self._http_hosts)
        host = host.lower().strip("[]")
        return (host, None) in named or (host, port) in named

    def _http_hosts(self) -> FrozenSet[Tuple[str, Optional[int]]]:
        value = self.raw(HTTP_HOSTS)
        named = set()
        entries = [e.strip() for e in (value or "").split(",") if e.strip()]
        for number, entry in enumerate(entries, 1):
            why = _not_a_host(entry)
            if why:
                raise self._malformed(
                    HTTP_HOSTS,
                    "must be a comma-separated list of host or host:port (such as "
                    f"10.0.0.5:5000, read-ocr.studio.lan); its entry {number} of {len(entries)} "
                    f"is not one ({why}; {_about(entry)})",
                )
            parts = urlsplit("//" + entry)
            named.add((parts.hostname.lower(), parts.port))
        return frozenset(named)

    def _memo(self, key: Any, make: Callable[[], Any]) -> Any:
        """``make()``, once per ``Settings``; unlike ``built``, it collects nothing."""
        key = ("memo", key)
        made = self._built.get(key)
        if made is None:
            made = make()  # outside the lock: making reads settings, which takes it
            with self._lock:
                made = self._built.setdefault(key, made)
        return made

    def _within(self, name: str, number, minimum, maximum):
        if not (number >= minimum) or (maximum is not None and number > maximum):  # NaN too
            bounds = f"at least {minimum:g}" if maximum is None else f"{minimum:g} to {maximum:g}"
            if number != number:
                where = "is not a number"
            elif number < minimum:
                where = "is smaller"
            else:
                where = "is larger"
            # Even a number is not shown: a key of digits only would parse as one.
            raise self._malformed(name, f"must be {bounds}; the value set {where}")
        return number


def _about(value: str) -> str:
    """What an error may say of a setting's value without showing it: its length, and whether
    it looks like a key (one set in the wrong setting)."""
    size = f"{len(value)} character{'' if len(value) == 1 else 's'}, not shown"
    if _KEY_LIKE.fullmatch(value):
        return size + "; it looks like a key"
    return size


def _may_be_secret(text: str) -> bool:
    """Whether ``text`` holds a long run of letters and digits with a digit in it: what a key
    or token looks like, and no placeholder word does."""
    return any(any(c.isdigit() for c in run.group(0)) for run in _SECRET_LIKE.finditer(text))


def _not_a_host(entry: str) -> str:
    """Why an entry of ``PIXSTOR_AZURE_HTTP_HOSTS`` is not host or host:port ("" if it is)."""
    if "://" in entry:
        return "it has a scheme: name the host only"
    if "*" in entry:
        return "it has a wildcard: name each host"
    parts = urlsplit("//" + entry)
    try:
        port = parts.port
    except ValueError:
        return "its port is not a number from 1 to 65535"
    if parts.username is not None:
        return "it has a user"
    if parts.path or parts.query or parts.fragment:
        return "it has a path"
    if not parts.hostname:
        return "it names no host"
    if port == 0:
        return "its port is not a number from 1 to 65535"
    return ""


def config_path(named: Optional[str]) -> Tuple[Path, bool]:
    """The INI file for a ``PIXSTOR_AZURE_CONFIG`` value, and whether it was named."""
    named = (named or "").strip()
    if named:
        return Path(named).expanduser(), True
    return DEFAULT_CONFIG, False


class Loaded:
    """This process's settings as last loaded, and what their INI file looked like."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.settings = None  # type: Optional[Settings]
        self.default = None  # type: Optional[Path]
        self.checked = 0.0

    def current(self) -> Optional[Settings]:
        """The settings last loaded, when nothing they read has changed since."""
        settings = self.settings
        if settings is None or self.default is not DEFAULT_CONFIG or not settings.unchanged():
            return None
        now = clock.now()
        if not 0.0 <= now - self.checked < RECHECK_SECONDS:
            if _file_status(settings.config) != settings.config_status:
                return None
            self.checked = now
        return settings

    def reload(self, make: Any) -> Settings:
        with self.lock:
            self.settings = None  # until this load succeeds: an unreadable file fails each call
            default = DEFAULT_CONFIG
            settings = make._read(os.environ, _ini_files().read)
            self.default, self.checked = default, clock.now()
            self.settings = settings
            return settings


def _file_status(path: Path) -> Optional[Tuple[int, ...]]:
    """What tells that a file changed (None: absent or unreachable)."""
    try:
        return _status(os.stat(str(path)))
    except OSError:
        return None


def _status(found: os.stat_result) -> Tuple[int, ...]:
    return (found.st_ino, found.st_size, found.st_mtime_ns, found.st_ctime_ns, found.st_mode)


class IniFiles:
    """The last INI file parsed, kept while its status is unchanged."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.key = None  # type: Optional[Tuple[str, Tuple[int, ...]]]
        self.values = {}  # type: Dict[str, str]

    def read(self, path: Path, explicit: bool) -> Tuple[Dict[str, str], Optional[Tuple[int, ...]]]:
        """``{ENV_NAME: value}`` of the INI file at ``path`` ({} for an absent default file),
        and the file's status as ``_file_status`` gives it."""
        try:
            found = os.stat(str(path))
        except PermissionError:
            raise _unreadable(path, explicit, folder=True) from None
        except OSError:
            found = None
        if found is None or not stat.S_ISREG(found.st_mode):
            if explicit:
                raise SettingsError(CONFIG_VARIABLE, f"names {path}, which is not a readable file")
            return {}, None
        status = _status(found)
        key = (str(path), status)
        with self.lock:
            if key == self.key:
                return self.values, status
        values = _parse(path, explicit, found.st_mode)
        with self.lock:
            self.key, self.values = key, values
        return values, status


def _ini_files() -> IniFiles:
    return runtime.current().get(IniFiles)


def _parse(path: Path, explicit: bool, mode: int) -> Dict[str, str]:
    parser = configparser.ConfigParser(interpolation=None)
    try:
        with open(str(path), encoding="utf-8") as f:
            parser.read_file(f)
    except PermissionError:
        raise _unreadable(path, explicit) from None
    except (configparser.Error, UnicodeDecodeError) as exc:
        # configparser messages quote lines of the file, which may hold a key: keep only the kind.
        raise SettingsError(
            CONFIG_VARIABLE, f"names {path}, which is not a valid INI file ({type(exc).__name__})"
        ) from None
    values = {}  # type: Dict[str, str]
    for section in parser.sections():
        if section.lower() not in SECTIONS:
            raise SettingsError(
                CONFIG_VARIABLE,
                f"names {path}, whose section [{section}] is not one of "
                + ", ".join(f"[{s}]" for s in SECTIONS),
            )
        for option, value in parser.items(section):
            values[f"{section}_{option}".upper()] = value
    if mode & 0o004 and any(name.endswith("_KEY") and v for name, v in values.items()):
        log_once(
            log,
            logging.WARNING,
            f"{path} holds keys and any user of this machine can read it "
            f"(mode {mode & 0o777:o}): chmod 600 {path}",
        )
    return values


def _unreadable(path: Path, explicit: bool, folder: bool = False) -> SettingsError:
    """The one line for an INI file this process may not read, with the commands that fix it."""
    user = _user()
    which = f"names {path}" if explicit else f"is not set, and the default file {path}"
    if folder:
        return SettingsError(
            CONFIG_VARIABLE,
            f"{which}, in a folder user {user} may not enter: chown {user} {path.parent} "
            f"(or chmod o+x {path.parent})",
        )
    return SettingsError(
        CONFIG_VARIABLE,
        f"{which}, which user {user} may not read: chown {user} {path} and chmod 600 {path}",
    )


def _user() -> str:
    """The name of the user this process runs as (PixStor's), for the chown it needs."""
    uid = os.geteuid()
    try:
        import pwd

        return pwd.getpwuid(uid).pw_name
    except (ImportError, KeyError):
        return str(uid)


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
