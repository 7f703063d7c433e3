"""An openai model spec's servers, options and keys: what a spec may name, checked before anything is sent.

Which key goes where (a shared config must not be able to send your key to someone else's server, so
what a spec may ask for is bounded by what the user's own environment allows):

- ``api_key_env=VAR`` in the spec: the value of ``$VAR``, to the servers the spec names, but only for a
  variable the user allowed: a name ``REFEREE_..._KEY`` (``REFEREE_VLLM_KEY``; not referee's settings such
  as ``REFEREE_HOME`` or ``REFEREE_LABEL_TOKEN``), or one listed in ``$REFEREE_KEY_ENVS`` (comma-separated).
  ``OPENAI_API_KEY`` is allowed without being listed only for ``https://api.openai.com``.
- else ``REFEREE_API_KEY``: referee's own variable, to the servers any spec names.
- else ``OPENAI_API_KEY``: only to ``https://api.openai.com``; other servers get no key.
- No key at all goes over plain http to a host other than loopback (``referee.net.is_loopback``: 127.0.0.0/8,
  ::1 and ``localhost`` itself), unless the user's environment says ``REFEREE_ALLOW_INSECURE_KEY=1``; a
  spec cannot say so (the option ``allow_insecure_key`` is refused).
- Credentials in the spec itself (``user:pw@host``; an option named like a key, token, secret, password
  or auth, or whose value looks like a key, after any ``?``, ``&``, ``;`` or ``#``) are refused without being
  quoted (``referee.models.credentials``), as they would end up in the cache, ledger, manifest and config;
  unknown options are named, their values never quoted.
- In a pool, the rules are applied to each server's host on its own: ``OPENAI_API_KEY`` goes only to
  the pool's servers at api.openai.com, and a pool with one server that a key may not reach over plain
  http is refused as a whole, naming that host.

The key is sent as a bearer token and appears nowhere else: not in ``describe()``, the cache, logs or
error messages (``referee.models.openai_http`` redacts a server that quotes it back before anything is
cut short).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import urlsplit

from referee.errors import RefereeError
from referee.models import OPENAI_OPTIONS
from referee.models.credentials import refuse_credentials, shown, split_options
from referee.net import is_loopback

OPENAI_HOST = "api.openai.com"  # the one host OPENAI_API_KEY is sent to unless the user allows it elsewhere
KEY_ENVS = "REFEREE_KEY_ENVS"  # the user's list of further variables a spec's api_key_env may name
INSECURE_ENV = "REFEREE_ALLOW_INSECURE_KEY"  # the user's leave to send a key over plain http
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,99}")


def refuse_secrets(spec: str) -> None:
    """Refuse, without quoting it, an openai spec that carries a secret (a key among its options, wherever
    it hides, or credentials in its URL), and any spec whose options are malformed or unknown (named, their
    values not quoted). The CLI calls this before a run folder is written: the spec goes to the cache,
    ledger, manifest and config.yaml."""
    spec = spec.strip()
    options = refuse_credentials(spec, OPENAI_OPTIONS | {"allow_insecure_key"})  # the latter refused below
    base, _, malformed = split_options(spec)
    if malformed:
        raise RefereeError("an openai model spec takes its options after one '?', joined by '&' (no second '?', "
                           "';' or '#'): openai:MODEL@URL?concurrency=8&timeout=60")
    names = {name for name, _ in options}
    if "allow_insecure_key" in names:
        raise RefereeError(f"a model spec cannot allow a key over plain http (allow_insecure_key), since a shared "
                           f"config could: set {INSECURE_ENV}=1 in your own environment instead")
    unknown = names - OPENAI_OPTIONS
    if unknown:
        raise RefereeError(f"an openai model spec: unknown option(s) {', '.join(sorted(map(shown, unknown)))}; "
                           f"accepted: {', '.join(sorted(OPENAI_OPTIONS))}")
    name, _, servers = base.partition(":")[2].partition("@")
    server_urls(name, servers)


def server_urls(name: str, servers: str) -> list[str]:
    """The base URLs the server part of a spec names: one URL, several joined by commas, or ``file:PATH``
    (one a line; blank lines and ``#`` comments skipped). Each is checked as ``check_url`` does."""
    if servers.startswith("file:"):
        return checked_urls(name, _read_server_list(name, Path(servers[len("file:"):]).expanduser()))
    return checked_urls(name, servers.split(","))


def _read_server_list(name: str, path: Path) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        why = getattr(e, "strerror", None) or "not UTF-8 text"
        raise RefereeError(f"openai model {name!r}: cannot read the server list {path} ({why})") from None
    urls = [line.split("#", 1)[0].strip() for line in text.splitlines()]
    urls = [url for url in urls if url]
    if not urls:
        raise RefereeError(f"openai model {name!r}: the server list {path} names no server")
    return urls


def checked_urls(name: str, urls: list[str]) -> list[str]:
    """The URLs, each checked, without a trailing slash; a server named twice is refused (it would take a
    double share of the requests by mistake)."""
    for url in urls:
        check_url(name, url)
    cleaned = [url.strip().rstrip("/") for url in urls]
    twice = sorted({url for url in cleaned if cleaned.count(url) > 1})
    if twice:
        raise RefereeError(f"openai model {name!r}: the server list names {twice[0]} twice")
    return cleaned


def check_url(name: str, url: str) -> tuple[str, str]:
    """(scheme, host) of a server URL; refuses credentials in it without quoting them, and bad ports."""
    where = f"openai model {name!r}"
    parts = urlsplit(url.strip())
    if "@" in parts.netloc or parts.query or "#" in url:
        raise RefereeError(f"{where}: the server URL holds credentials, a query or a fragment (user:password@host, "
                           f"?..., #...), "
                           f"which would be written to the cache, ledger and manifest; put a key in an "
                           f"environment variable and name that with ?api_key_env=VAR after the URL")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        shown = repr(url) if "://" in url else f"an entry of {len(url.strip())} characters (not shown: it may be a key)"
        raise RefereeError(f"{where}: expected a URL like http(s)://HOST:PORT/v1, got {shown}")
    try:
        port = parts.port
    except ValueError:
        port = 0
    if port == 0:
        raise RefereeError(f"{where}: the port of {url!r} should be a number from 1 to 65535")
    return parts.scheme, parts.hostname


def choose_api_key(where: str, address: tuple[str, str], api_key_env: str | None,
                   allow_insecure_key: bool) -> tuple[str | None, str | None]:
    """(key, variable it came from) for this server, by the rules in the module's docstring."""
    scheme, host = address
    if api_key_env:
        _check_key_env(where, api_key_env, address)
        value = os.environ.get(api_key_env)
        if not value:
            raise RefereeError(f"{where}: api_key_env names ${api_key_env}, which is not set")
        key, source = value, api_key_env
    elif os.environ.get("REFEREE_API_KEY"):
        key, source = os.environ["REFEREE_API_KEY"], "REFEREE_API_KEY"
    elif os.environ.get("OPENAI_API_KEY") and scheme == "https" and host == OPENAI_HOST:
        key, source = os.environ["OPENAI_API_KEY"], "OPENAI_API_KEY"
    else:
        return None, None
    key = key.strip()  # a key pasted with its newline
    if not key or not key.isascii() or not key.isprintable() or any(c.isspace() for c in key):
        raise RefereeError(f"{where}: ${source} holds spaces or control characters, which no key has")
    if scheme == "http" and not is_loopback(host) and not allow_insecure_key:
        raise RefereeError(f"{where}: will not send ${source} over plain http to {host}, where anyone on the "
                           f"way can read it; use https, or set {INSECURE_ENV}=1 in your environment if you "
                           f"trust the network"
                           + (", or unset $REFEREE_API_KEY" if source == "REFEREE_API_KEY" else ""))
    return key, source


def _check_key_env(where: str, var: str, address: tuple[str, str]) -> None:
    """Refuse an ``api_key_env`` the user did not allow: otherwise a shared config could name any variable
    of theirs (a cloud secret, a token) and have it sent to its own server."""
    if not ENV_NAME.fullmatch(var):
        raise RefereeError(f"{where}: api_key_env should name an environment variable (letters, digits, _)")
    listed = {name.strip() for name in os.environ.get(KEY_ENVS, "").split(",")}
    if var in listed or (var.startswith("REFEREE_") and var.endswith("_KEY") and var != INSECURE_ENV):
        return
    if var == "OPENAI_API_KEY":
        if address == ("https", OPENAI_HOST):
            return
        raise RefereeError(f"{where}: api_key_env names $OPENAI_API_KEY, which goes only to https://{OPENAI_HOST}; "
                           f"to send it to this server, add OPENAI_API_KEY to ${KEY_ENVS} in your own environment")
    raise RefereeError(f"{where}: api_key_env names ${var}, which is not allowed for keys: a spec may name a "
                       f"variable REFEREE_..._KEY, or one listed in ${KEY_ENVS} (comma-separated) in your own "
                       f"environment; else a shared config could send any of your variables to its server")


def number_option(where: str, key: str, value, kind, minimum):
    try:
        number = kind(value)
    except (TypeError, ValueError):
        raise RefereeError(f"{where}: option {key} should be {'an integer' if kind is int else 'a number'}, "
                           f"got {value!r}") from None
    if number < minimum:
        raise RefereeError(f"{where}: option {key} should be >= {minimum}, got {value!r}")
    return number


def flag_option(where: str, key: str, value: bool | str) -> bool:
    if isinstance(value, bool):
        return value
    if str(value).lower() in ("1", "true", "yes"):
        return True
    if str(value).lower() in ("0", "false", "no", ""):
        return False
    raise RefereeError(f"{where}: option {key} should be 1 or 0, got {value!r}")


