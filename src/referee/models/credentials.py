"""Credentials in a model spec: found wherever they hide among its options, and named without quoting.

A spec is written to the cache, ledger, manifest and config.yaml, and quoted in error messages, so a key
typed into it would be copied everywhere. Every field after the first ``?`` or ``#`` is checked, whatever
separates it (``&``, a second ``?``, ``;``, ``#``), percent-decoded, by its name and by its value.
"""

from __future__ import annotations

import re
from urllib.parse import unquote_plus

from referee.errors import RefereeError

# Parts of option names that hold a credential, compared after folding case and dropping separators.
CREDENTIAL_WORDS = ("key", "token", "secret", "passw", "pwd", "auth", "bearer", "credential", "cookie")
# How common keys begin (OpenAI, GitHub, Hugging Face, Slack, GitLab, AWS, Google, a JWT).
KEY_PREFIXES = ("sk-", "sk_", "pk-", "rk-", "ghp_", "gho_", "ghs_", "github_pat_", "hf_", "xoxb-", "xoxp-",
                "glpat-", "akia", "aiza", "eyj")
SAFE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,39}")


def split_options(spec: str) -> tuple[str, list[tuple[str, str]], bool]:
    """(the spec before its options, every (name, value) after the first ``?`` or ``#``, and whether the
    options are malformed: a ``#``, a second ``?`` or a ``;`` among them)."""
    found = re.search(r"[?#]", spec)
    if not found:
        return spec, [], False
    rest = spec[found.end():]
    fields = [f.partition("=") for f in re.split(r"[&?#;]", rest) if f]
    options = [(unquote_plus(name), unquote_plus(value)) for name, _, value in fields]
    return spec[:found.start()], options, found.group() == "#" or bool(re.search(r"[?#;]", rest))


def looks_like_key(value: str) -> bool:
    """A bearer header, or one run of 20+ key characters that starts like a known key, or is 32+ long and
    mixes letters (some lower-case: an environment variable's name is all upper-case) and digits."""
    value = value.strip()
    if value.lower().startswith("bearer "):
        return True
    if not re.fullmatch(r"[A-Za-z0-9_-]{20,}", value):
        return False
    if value.lower().startswith(KEY_PREFIXES):
        return True
    return len(value) >= 32 and any(c.isdigit() for c in value) and any(c.islower() for c in value)


def names_credential(name: str) -> bool:
    """Whether an option's name says it holds a credential (api-key, X-Auth-Token, client_secret, ...)."""
    folded = re.sub(r"[^a-z]", "", name.lower())
    return any(word in folded for word in CREDENTIAL_WORDS)


def shown(name: str) -> str:
    """An option's name for a message, or a stand-in when the name itself might be the secret."""
    if SAFE_NAME.fullmatch(name) and not looks_like_key(name):
        return name
    return f"an option of {len(name)} characters (not shown)"


def refuse_credentials(spec: str, allowed_names: set[str] = frozenset()) -> list[tuple[str, str]]:
    """The spec's options, once none looks like a credential; else refuse, naming (never quoting) them.
    ``allowed_names`` are the backend's own options, whose names may contain "key" or "token"."""
    _, options, _ = split_options(spec.strip())
    leaked = [name for name, value in options if looks_like_key(name) or looks_like_key(value)
              or (name not in allowed_names and names_credential(name))]
    if leaked:
        raise RefereeError(
            f"a model spec carries what looks like a key or credential (option {', '.join(map(shown, leaked))}), "
            f"and a spec is written to every run's files: put the key in an environment variable and name it "
            f"with ?api_key_env=VAR (docs/models.md, 'The openai backend', says which variables a spec may name)")
    return options
