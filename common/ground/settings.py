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
import difflib
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
from . import setting_registry as registry
from .errors import Problem, SettingsError
from .logonce import log_once
from .logtext import keep_secret
from .setting_registry import CONFIG, HTTP_HOSTS, SECTIONS, Setting

log = logging.getLogger(__name__)

# The folder that holds common/ and the plugin files (PixStor's plugins/available/azure).
PLUGINS_FOLDER = Path(__file__).resolve().parents[2]
DEFAULT_CONFIG = PLUGINS_FOLDER / "pixstor-azure.ini"
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
_DECLARED = object()  # Settings.get: the declared default
# What a key looks like: Azure's are 32 hexadecimal digits, or 84 letters and digits. A value
# so shaped, set where a key does not go, is said to look like one (never shown).
_KEY_LIKE = re.compile(r"[0-9A-Fa-f]{32}|[0-9A-Za-z]{80,90}")
# A run of letters and digits long enough, with a digit in it, to be (part of) a key or token.
_SECRET_LIKE = re.compile(r"[0-9A-Za-z]{16,}")
# A word that may be shown in an error: letters only (no key or token is), short.
_PLAIN_WORD = re.compile(r"[A-Za-z][A-Za-z_ -]{0,23}")

# The problems a setting may have: ``setting NAME <problem>``. {about} is what may be said of a
# value without showing it (``_about``), {why} one of the parts below.
NOT_SET = Problem("is not set")
SEVERAL_NOT_SET = Problem("settings {names} are not set")  # the start of ``SettingsProblems``
PLACEHOLDER = Problem(
    "still holds a placeholder ({placeholder}), as in the example: set your own value"
)
PLACEHOLDER_HIDDEN = Problem("still holds a placeholder, as in the example: set your own value")
KEY_SPACES = Problem("holds spaces or control characters: paste it again from the Azure portal")
KEY_NOT_ASCII = Problem(
    "has characters that cannot be in a key (only printable ASCII): paste it again from the "
    "Azure portal"
)
NOT_A_NUMBER = Problem("must be a number; the value set is not one ({about})")
NOT_A_WHOLE_NUMBER = Problem("must be a whole number; the value set is not one ({about})")
BELOW_MINIMUM = Problem("must be at least {minimum:g}; the value set {where}")
OUT_OF_RANGE = Problem("must be {minimum:g} to {maximum:g}; the value set {where}")
NOT_A_FLAG = Problem(
    "must be true or false (or yes/no, on/off, 1/0); the value set is none of them ({about})"
)
NOT_A_CHOICE = Problem("must be one of {choices}; the value set is none of them ({about})")
LISTS_NONE = Problem("must be a comma-separated list of {allowed}; it lists none ({about})")
ONLY_ENTRY_UNKNOWN = Problem(
    "must be a comma-separated list of {allowed}; its one entry is not among them: {entries}"
)
ENTRIES_UNKNOWN = Problem(
    "must be a comma-separated list of {allowed}; {unknown} of its {count} entries {verb} not "
    "among them: {entries}"
)
NOT_A_URL = Problem(
    "must be a URL such as https://NAME.cognitiveservices.azure.com; the value set is not one "
    "({why}; {about})"
)
NOT_A_BASE_URL = Problem("must be a plain base URL, without query, fragment or user")
PLAIN_HTTP = Problem(
    "uses plain http to {host}, which is not named in {hosts}: keys and images go over https, "
    "except to this machine and to the hosts named there (containers on your network)"
)
NOT_HOSTS = Problem(
    "must be a comma-separated list of host or host:port (such as 10.0.0.5:5000, "
    "read-ocr.studio.lan); its entry {number} of {count} is not one ({why}; {about})"
)
# PIXSTOR_AZURE_CONFIG's, the INI file's. {which}: CONFIG_NAMED or CONFIG_DEFAULT.
CONFIG_NOT_A_FILE = Problem("names {path}, which is not a readable file")
CONFIG_NOT_INI = Problem("names {path}, which is not a valid INI file: {why}")
CONFIG_UNKNOWN_SECTION = Problem("names {path}, whose section [{section}] is not one of {sections}")
CONFIG_UNREADABLE = Problem(
    "{which}, which user {user} may not read: chown {user} {path} and chmod 600 {path}"
)
CONFIG_FOLDER_CLOSED = Problem(
    "{which}, in a folder user {user} may not enter: chown {user} {folder} (or chmod o+x {folder})"
)

# Parts of the problems above, named alike so that tests name them too (``_part``).
HIDDEN_VALUE = Problem("{length} characters, not shown")
HIDDEN_CHARACTER = Problem("1 character, not shown")
KEY_LIKE_VALUE = Problem("{hidden}; it looks like a key")
NAN = Problem("is not a number")
SMALLER = Problem("is smaller")
LARGER = Problem("is larger")
ENTRY_HIDDEN = Problem("entry {number} ({about})")
ENTRY_SHOWN = Problem("{entry} (entry {number})")
ENTRY_NEAREST = Problem("{entry} (entry {number}; did you mean {nearest}?)")
NO_SCHEME = Problem("it has no https://")
OTHER_SCHEME = Problem("it is neither https:// nor http://")
NO_HOST = Problem("it names no host")
URL_PORT = Problem("its port is not a number from 0 to 65535")
HOST_SCHEME = Problem("it has a scheme: name the host only")
HOST_WILDCARD = Problem("it has a wildcard: name each host")
HOST_PORT = Problem("its port is not a number from 1 to 65535")
HOST_USER = Problem("it has a user")
HOST_PATH = Problem("it has a path")
CONFIG_NAMED = Problem("names {path}")
CONFIG_DEFAULT = Problem("is not set, and the default file {path}")
INI_NOT_UTF8 = Problem("line {line} is not UTF-8 text")
INI_OPTION_TWICE = Problem("line {line} sets {option} in [{section}] a second time")
INI_SECTION_TWICE = Problem("line {line} starts [{section}] a second time")
INI_BEFORE_SECTIONS = Problem(
    "line {line} comes before any section: the first line that is not a comment must be a "
    "section such as [custom_vision]"
)
INI_NOT_LINES = Problem(
    "{lines} {verb} not name = value, a [section] or a comment (not shown: a value goes on its "
    "name's line, or on lines indented below it)"
)
INI_LINE = Problem("line {line}")
INI_LINE_AT_START = Problem("line {line} (at the start of [{section}])")
INI_LINE_AFTER = Problem("line {line} (after {option} in [{section}])")
HIDDEN_OPTION = Problem("an option (its name not shown)")


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

    ``setting`` is the first setting named, ``settings`` all of them in order, ``missing`` those
    not set; with a single problem, ``setting`` and ``problem`` are those of the plain
    ``SettingsError`` it stands for.
    """

    def __init__(
        self,
        missing: Sequence[str],
        placeholders: Sequence[SettingsError],
        other: Optional[SettingsError] = None,
    ) -> None:
        found = [NOT_SET.error(name) for name in missing]
        found.extend(placeholders)
        if other is not None:
            found.append(other)
        self.settings = [error.setting for error in found]
        self.missing = list(missing)
        if len(found) == 1:
            super().__init__(found[0].setting, found[0].problem)
            return
        parts = [str(error) for error in found[len(missing) :]]
        if len(missing) > 1:
            parts.insert(0, _part(SEVERAL_NOT_SET, names=_joined(missing)))
        elif missing:
            parts.insert(0, str(found[0]))
        super().__init__(self.settings[0], "")
        self.problem = "; ".join(parts)
        self.args = (self.problem,)


def unset(error: SettingsError) -> bool:
    """Whether ``error`` says that a setting is not set, alone or among other problems: to the
    tool, a plugin not set up."""
    if isinstance(error, SettingsProblems):
        return bool(error.missing)
    return error.problem == NOT_SET.words


def _part(part: Problem, **values: Any) -> str:
    """The words of ``part``, a part of a problem (or a whole line), ``values`` filled in."""
    return part.words.format(**values)


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
        self._fast = False
        self._probe: Callable[[Any], Any] = environ.get
        if isinstance(data, dict) and hasattr(environ, "encodekey"):
            self._fast, self._probe = True, data.get
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
        check_environment(environ)
        path, explicit = config_path(settings._environment(CONFIG.name))
        settings._ini, settings.config_status = read_ini(path, explicit)
        settings.config = path
        for setting in registry.ALL:  # every key configured, used or not, is never shown
            if setting.secret:
                for value in (environ.get(setting.name), settings._ini.get(setting.name)):
                    if value and value.strip():
                        keep_secret(value.strip())
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
            coded: Any = self._environ  # os.environ: encodekey and decodevalue are not Mapping's
            key = coded.encodekey(name)
            seen = self._probe(key)
            value = None if seen is None else coded.decodevalue(seen)
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
        if name.endswith("_KEY") or _may_be_secret(placeholder):
            return _Placeholder(PLACEHOLDER_HIDDEN.error(name))
        return _Placeholder(PLACEHOLDER.error(name, placeholder=placeholder))

    def _missing(self, name: str, stand_in: Any) -> Any:
        collector = getattr(self._local, "collector", None)
        if collector is None:
            raise NOT_SET.error(name)
        if not collector.seen(name):
            collector.missing.append(name)
        collector.stand_ins += 1
        return stand_in

    def _malformed(self, error: SettingsError) -> SettingsError:
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
            raise self._malformed(KEY_SPACES.error(name))
        if not all(" " < c <= "~" for c in value):
            # requests would fail on every file with a UnicodeEncodeError building the header.
            raise self._malformed(KEY_NOT_ASCII.error(name))
        keep_secret(value)
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
            raise self._malformed(NOT_A_NUMBER.error(name, about=_about(value))) from None
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
            raise self._malformed(NOT_A_WHOLE_NUMBER.error(name, about=_about(value))) from None
        return self._within(name, number, minimum, maximum)

    def flag(self, name: str, default: bool) -> bool:
        value = self.raw(name)
        if value is None:
            return default
        if value.lower() in _TRUE:
            return True
        if value.lower() in _FALSE:
            return False
        raise self._malformed(NOT_A_FLAG.error(name, about=_about(value)))

    def choice(self, name: str, default: str, choices: Sequence[str]) -> str:
        value = self.raw(name)
        if value is None:
            return default
        for choice in choices:
            if value.lower() == choice.lower():
                return choice
        raise self._malformed(
            NOT_A_CHOICE.error(name, choices=", ".join(choices), about=_about(value))
        )

    def words(self, name: str, default: Sequence[str], allowed: Sequence[str]) -> List[str]:
        """A comma-separated list drawn from ``allowed`` (matched case-insensitively)."""
        value = self.raw(name)
        if value is None:
            return list(default)
        lookup = {a.lower(): a for a in allowed}
        words = [w.strip() for w in value.split(",") if w.strip()]
        if not words:
            raise self._malformed(
                LISTS_NONE.error(name, allowed=", ".join(allowed), about=_about(value))
            )
        unknown = [(n, w) for n, w in enumerate(words, 1) if w.lower() not in lookup]
        if unknown:
            # Each entry not allowed is named by its place; shown only when it is a plain word
            # (a misspelt feature), never when it may be a key set in the wrong place.
            said = ", ".join(_entry(n, w, allowed) for n, w in unknown)
            if len(words) == 1:
                error = ONLY_ENTRY_UNKNOWN.error(name, allowed=", ".join(allowed), entries=said)
            else:
                error = ENTRIES_UNKNOWN.error(
                    name,
                    allowed=", ".join(allowed),
                    unknown=len(unknown),
                    count=len(words),
                    verb="is" if len(unknown) == 1 else "are",
                    entries=said,
                )
            raise self._malformed(error)
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
                why = NO_SCHEME
            elif parts.scheme not in ("https", "http"):
                why = OTHER_SCHEME
            elif not parts.hostname:
                why = NO_HOST
            else:
                why = URL_PORT
            raise self._malformed(NOT_A_URL.error(name, why=_part(why), about=_about(value)))
        if parts.query or parts.fragment or parts.username or parts.password:
            raise self._malformed(NOT_A_BASE_URL.error(name))
        if parts.scheme == "http" and not self.plain_http_allowed(parts.hostname, port or 80):
            # The host of a URL written with http:// is a machine's name, never a key: shown,
            # since it is what goes into PIXSTOR_AZURE_HTTP_HOSTS.
            raise self._malformed(
                PLAIN_HTTP.error(name, host=parts.hostname, hosts=HTTP_HOSTS.name)
            )
        return value

    def get(self, setting: Setting, default: Any = _DECLARED) -> Any:
        """The value of a declared setting (``setting_registry``), read as its kind says, with
        its declared default, bounds and choices; ``default`` stands for the declared one where
        the default is worked out from other settings (``CUSTOM_VISION_MAX_LONG_EDGE``)."""
        name, kind = setting.name, setting.kind
        value = setting.default if default is _DECLARED else default
        if kind in (registry.TEXT, registry.PATH):
            return self.text(name, value)
        if kind == registry.SECRET:
            return self.secret(name)
        if kind == registry.ENDPOINT:
            return self.endpoint(name)
        low = 0 if setting.minimum is None else setting.minimum
        if kind == registry.NUMBER:
            return self.number(name, value, low, setting.maximum)
        if kind == registry.INTEGER:
            high = None if setting.maximum is None else int(setting.maximum)
            return self.integer(name, value, int(low), high)
        if kind == registry.FLAG:
            return self.flag(name, value)
        if kind == registry.CHOICE:
            return self.choice(name, value, setting.choices)
        if kind == registry.WORDS:
            return self.words(name, value, setting.choices)
        if kind == registry.HOSTS:
            return self.hosts(name)
        raise ValueError(f"{name} is of no kind Settings reads ({kind})")

    def plain_http_allowed(self, host: str, port: int) -> bool:
        """Whether plain http may go to ``host``:``port``: this machine, or a host named in
        ``PIXSTOR_AZURE_HTTP_HOSTS`` (with that port, or any port when it names none)."""
        if is_loopback(host):
            return True
        named = self.get(HTTP_HOSTS)
        host = host.lower().strip("[]")
        return (host, None) in named or (host, port) in named

    def hosts(self, name: str) -> FrozenSet[Tuple[str, Optional[int]]]:
        """The (host, port or None) pairs of a comma-separated list of host or host:port."""
        return self._memo(("hosts", name), lambda: self._hosts(name))

    def _hosts(self, name: str) -> FrozenSet[Tuple[str, Optional[int]]]:
        value = self.raw(name)
        named = set()
        entries = [e.strip() for e in (value or "").split(",") if e.strip()]
        for number, entry in enumerate(entries, 1):
            why = _not_a_host(entry)
            if why is not None:
                raise self._malformed(
                    NOT_HOSTS.error(
                        name,
                        number=number,
                        count=len(entries),
                        why=_part(why),
                        about=_about(entry),
                    )
                )
            parts = urlsplit("//" + entry)
            named.add(((parts.hostname or "").lower(), parts.port))  # _not_a_host: it has one
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
            if number != number:
                where = _part(NAN)
            elif number < minimum:
                where = _part(SMALLER)
            else:
                where = _part(LARGER)
            # Even a number is not shown: a key of digits only would parse as one.
            if maximum is None:
                error = BELOW_MINIMUM.error(name, minimum=minimum, where=where)
            else:
                error = OUT_OF_RANGE.error(name, minimum=minimum, maximum=maximum, where=where)
            raise self._malformed(error)
        return number


def _about(value: str) -> str:
    """What an error may say of a setting's value without showing it: its length, and whether
    it looks like a key (one set in the wrong setting)."""
    size = _part(HIDDEN_CHARACTER) if len(value) == 1 else _part(HIDDEN_VALUE, length=len(value))
    if _KEY_LIKE.fullmatch(value):
        return _part(KEY_LIKE_VALUE, hidden=size)
    return size


def _entry(number: int, entry: str, allowed: Sequence[str]) -> str:
    """What an error says of a list's entry that is not among ``allowed``: the entry and the
    nearest allowed word when it is a plain word, else only its place and size."""
    if not _PLAIN_WORD.fullmatch(entry):
        return _part(ENTRY_HIDDEN, number=number, about=_about(entry))
    nearest = difflib.get_close_matches(entry.lower(), [a.lower() for a in allowed], 1, 0.75)
    if nearest:
        return _part(ENTRY_NEAREST, entry=entry, number=number, nearest=nearest[0])
    return _part(ENTRY_SHOWN, entry=entry, number=number)


def _may_be_secret(text: str) -> bool:
    """Whether ``text`` holds a long run of letters and digits with a digit in it: what a key
    or token looks like, and no placeholder word does."""
    return any(any(c.isdigit() for c in run.group(0)) for run in _SECRET_LIKE.finditer(text))


def _not_a_host(entry: str) -> Optional[Problem]:
    """Why an entry of ``PIXSTOR_AZURE_HTTP_HOSTS`` is not host or host:port (None if it is)."""
    if "://" in entry:
        return HOST_SCHEME
    if "*" in entry:
        return HOST_WILDCARD
    parts = urlsplit("//" + entry)
    try:
        port = parts.port
    except ValueError:
        return HOST_PORT
    if parts.username is not None:
        return HOST_USER
    if parts.path or parts.query or parts.fragment:
        return HOST_PATH
    if not parts.hostname:
        return NO_HOST
    if port == 0:
        return HOST_PORT
    return None


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


def _file_status(path: Optional[Path]) -> Optional[Tuple[int, ...]]:
    """What tells that a file changed (None: none named, absent or unreachable)."""
    if path is None:
        return None
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
                raise CONFIG_NOT_A_FILE.error(CONFIG.name, path=path)
            return {}, None
        status = _status(found)
        key = (str(path), status)
        with self.lock:
            if key == self.key:
                return self.values, status
        values = _parse(path, explicit, found.st_mode, found.st_uid)
        with self.lock:
            self.key, self.values = key, values
        return values, status


def _ini_files() -> IniFiles:
    return runtime.current().get(IniFiles)


def _parse(path: Path, explicit: bool, mode: int, owner: Optional[int] = None) -> Dict[str, str]:
    """``{ENV_NAME: value}`` of the INI file at ``path``, whose mode and owner (uid) are
    ``mode`` and ``owner``; warns once about keys others may read and names no setting has."""
    parser = configparser.ConfigParser(interpolation=None)
    try:
        with open(str(path), "rb") as f:
            data = f.read()
    except PermissionError:
        raise _unreadable(path, explicit) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise _invalid(path, _part(INI_NOT_UTF8, line=line)) from None
    try:
        parser.read_string(text, source=str(path))
    except configparser.Error as exc:
        # configparser's messages quote lines of the file, which may hold a key: said anew.
        raise _invalid(path, _syntax(exc, parser, text)) from None
    values = {}  # type: Dict[str, str]
    for section in parser.sections():
        if section.lower() not in SECTIONS:
            raise CONFIG_UNKNOWN_SECTION.error(
                CONFIG.name,
                path=path,
                section=section,
                sections=", ".join(f"[{s}]" for s in SECTIONS),
            )
        for option, value in parser.items(section):
            name = f"{section}_{option}".upper()
            values[name] = value
            known = registry.find(name)
            if known is None or not known.in_ini:
                _warn_unknown_key(path, section.lower(), option, known)
    if any(name.endswith("_KEY") and value for name, value in values.items()):
        _warn_readable(path, mode, owner)
    return values


def _invalid(path: Path, why: str) -> SettingsError:
    return CONFIG_NOT_INI.error(CONFIG.name, path=path, why=why)


def _syntax(exc: configparser.Error, parser: configparser.ConfigParser, text: str) -> str:
    """Where and what an INI syntax error is, by line number and option name: never the
    line's text, which may hold a key."""
    if isinstance(exc, configparser.DuplicateOptionError):
        option = _shown_name(exc.option)
        return _part(INI_OPTION_TWICE, line=exc.lineno, option=option, section=exc.section)
    if isinstance(exc, configparser.DuplicateSectionError):
        return _part(INI_SECTION_TWICE, line=exc.lineno, section=exc.section)
    if isinstance(exc, configparser.MissingSectionHeaderError):
        return _part(INI_BEFORE_SECTIONS, line=exc.lineno)
    if isinstance(exc, configparser.ParsingError):
        lines = text.splitlines()
        said = [_line(parser, lines, number) for number, _ in exc.errors]
        verb = "is" if len(said) == 1 else "are"
        return _part(INI_NOT_LINES, lines=", ".join(said), verb=verb)
    return type(exc).__name__


def _line(parser: configparser.ConfigParser, lines: Sequence[str], number: int) -> str:
    """``line N (after NAME in [SECTION])``: line ``number`` and the option and section it
    follows."""
    section = option = ""
    for line in lines[: number - 1]:
        stripped = line.strip()
        if not stripped or stripped[0] in "#;":
            continue
        header = parser.SECTCRE.match(stripped)
        if header:
            section, option = header.group("header"), ""
            continue
        found = parser.OPTCRE.match(stripped)
        if found and not line[:1].isspace():
            option = parser.optionxform(found.group("option").rstrip())
    if not section:
        return _part(INI_LINE, line=number)
    if not option:
        return _part(INI_LINE_AT_START, line=number, section=section)
    return _part(INI_LINE_AFTER, line=number, option=_shown_name(option), section=section)


def _shown_name(option: str) -> str:
    """An option's name as an error may show it: not when it may be a key written where a
    name goes."""
    return _part(HIDDEN_OPTION) if _may_be_secret(option) else option


def _warn_unknown_key(path: Path, section: str, option: str, known: Optional[Setting]) -> None:
    """Warn once about an INI option no setting has (a misspelling), naming the nearest."""
    where = f"{path}: [{section}] {_shown_name(option)}"
    if known is not None:
        said = f"{where} is ignored: {known.name} is read from the environment only"
    else:
        said = f"{where} is no setting and is ignored{_nearest_key(section, option)}"
    log_once(log, logging.WARNING, said)


def _nearest_key(section: str, option: str) -> str:
    """`` (did you mean ...?)`` with the declared setting nearest to an unknown INI option: in
    its own section, else the same or a near key in another section."""
    if _may_be_secret(option):
        return ""
    declared = [s for s in registry.ALL if s.in_ini]
    own = [s.key for s in declared if s.section == section]
    nearest = difflib.get_close_matches(option, own, n=1)
    if nearest:
        return f" (did you mean {nearest[0]}?)"
    nearest = difflib.get_close_matches(option, [s.key for s in declared], n=1)
    if not nearest:
        return ""
    found = next(s for s in declared if s.key == nearest[0])
    return f" (did you mean {found.key} in [{found.section}]?)"


def _warn_readable(path: Path, mode: int, owner: Optional[int]) -> None:
    """Warn once when an INI file that holds keys may be read by other users."""
    if mode & 0o004:
        who = "any user of this machine"
    elif mode & 0o040:
        who = "the users of its group"
    else:
        return
    fix = f"chmod 600 {path}"
    if owner is not None and owner != os.geteuid():
        # Not the owner: only what the group allows lets this process read it.
        user = _user()
        fix = f"chown {user} {path} and chmod 600 {path}"
    log_once(
        log,
        logging.WARNING,
        f"{path} holds keys and {who} can read it (mode {mode & 0o777:o}): {fix}",
    )


def check_environment(environ: Mapping[str, str]) -> None:
    """Warn once about each environment variable that starts as our settings do but names
    none of them (a misspelling), naming the nearest setting."""
    names = [s.name for s in registry.ALL]
    for name in list(environ):
        if not name.startswith(registry.PREFIXES) or registry.find(name) is not None:
            continue
        nearest = difflib.get_close_matches(name, names, n=1)
        hint = f" (did you mean {nearest[0]}?)" if nearest else ""
        log_once(
            log, logging.WARNING, f"environment variable {name} is no setting and is ignored{hint}"
        )


def _unreadable(path: Path, explicit: bool, folder: bool = False) -> SettingsError:
    """The one line for an INI file this process may not read, with the commands that fix it."""
    user = _user()
    which = _part(CONFIG_NAMED if explicit else CONFIG_DEFAULT, path=path)
    if folder:
        return CONFIG_FOLDER_CLOSED.error(CONFIG.name, which=which, user=user, folder=path.parent)
    return CONFIG_UNREADABLE.error(CONFIG.name, which=which, user=user, path=path)


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
