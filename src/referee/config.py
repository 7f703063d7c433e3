"""Configs: read from YAML files (strictly: no key twice, only what JSON can hold), and validated as
pydantic models with errors that name the file and the setting."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Hashable, Mapping

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from referee.errors import RefereeError
from referee.io import read_text
from referee.models.base import MAX_NEW_TOKENS, Sampling


class StrictModel(BaseModel):
    """Unknown settings are errors: a typo must not silently fall back to a default."""

    model_config = ConfigDict(extra="forbid")


# Upper bounds on counts: far beyond any real experiment, yet low enough that a slip of a few zeros is
# refused at once, naming the limit, instead of filling the memory or the disk hours later.
MAX_SAMPLES = 10_000  # samples or rollouts per prompt, step prefix or judgment
MAX_PROMPTS = 100_000  # prompts or problems a protocol makes or evaluates
MAX_EXAMPLES = 10_000_000  # examples in one data split
MAX_RESAMPLES = 1_000_000  # bootstrap resamples and random subsets
MAX_ROUNDS = 100  # iterations of a loop, folds


class SamplingConfig(StrictModel):
    temperature: float = Field(0.7, ge=0, allow_inf_nan=False)  # inf or nan would sample noise
    top_p: float = Field(1.0, gt=0, le=1)
    max_new_tokens: int = Field(256, ge=1, le=MAX_NEW_TOKENS)
    stop: list[str] = []

    def to_sampling(self, seed: int) -> Sampling:
        return Sampling(temperature=self.temperature, top_p=self.top_p, max_new_tokens=self.max_new_tokens,
                        stop=tuple(self.stop), seed=seed)


class ProtocolConfig(StrictModel):
    protocol: str
    out: str | None = Field(None, min_length=1)  # the run folder; defaults to runs/<config file stem>
    seed: int = 0


def validate(cls: type[BaseModel], data: dict[str, Any], where: str,
             options: Mapping[str, str] | None = None) -> BaseModel:
    """Validate settings, turning pydantic's report into one line per problem naming the setting, or the
    command-line option it came from when ``options`` maps the setting's dotted path to one."""
    try:
        return cls.model_validate(data)
    except ValidationError as e:
        problems = []
        for err in e.errors():
            loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
            name = f"option {options[loc]}" if options and loc in options else f"setting '{loc}'"
            msg = "unknown setting" if err["type"] == "extra_forbidden" else err["msg"]
            problems.append(f"{where}: {name}: {msg}")
        raise RefereeError("; ".join(problems)) from None


class _StrictYamlLoader(yaml.SafeLoader):
    """PyYAML's safe loader, except that a key given twice in one mapping is an error: PyYAML would keep
    the last value silently, and a config must not mean something other than what its reader sees."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            first_line: dict = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":  # "<<: *base" may be overridden on purpose
                    continue
                key = self.construct_object(key_node, deep=True)
                if not isinstance(key, Hashable):
                    continue  # the base class reports unhashable keys
                if key in first_line:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"key '{key}' given twice, first on line {first_line[key]}",
                        key_node.start_mark)
                first_line[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)


def load_config_file(path: str | os.PathLike) -> dict:
    path = Path(path)
    text = read_text(path, "config file")
    try:
        data = yaml.load(text, Loader=_StrictYamlLoader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise RefereeError(f"{where}: not valid YAML ({yaml_problem(e)})") from None
    except RecursionError:
        raise RefereeError(f"{path}: YAML nested too deeply to read") from None
    if not isinstance(data, dict):
        raise RefereeError(f"{path}: expected a mapping of settings at the top level")
    check_plain_values(data, str(path))
    return data


def yaml_problem(error: Exception, place: bool = False) -> str:
    """PyYAML's complaint on one line (its own text spans several, quoting the input under a caret), with
    its line and column if ``place``."""
    text = getattr(error, "problem", None) or str(error)
    mark = getattr(error, "problem_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark and place else ""
    return " ".join(str(text).split()) + where


# Values a config may hold: what JSON holds, since the config is saved, fingerprinted and compared as JSON.
_PLAIN = (str, int, float, bool, type(None))
MAX_CONFIG_VALUES = 1_000_000  # YAML aliases can repeat one list into billions of values


def check_plain_values(data: Any, where: str, key: str = "") -> None:
    """Refuse what YAML reads but JSON cannot hold (dates, ``!!binary`` bytes, sets, non-text keys), and
    structures made huge or endless by aliases, naming the setting (``data`` is the one at ``key``);
    iterative, as nesting may be deep."""
    stack, count = [(key, data)], 0
    while stack:
        key, value = stack.pop()
        count += 1
        if count > MAX_CONFIG_VALUES:
            raise RefereeError(f"{where}: more than {MAX_CONFIG_VALUES:,} values (a YAML alias repeated or "
                               f"looping into itself?)")
        if isinstance(value, dict):
            for k, v in value.items():
                if not isinstance(k, str):
                    raise RefereeError(f"{where}: key {k!r} under '{key or '(top level)'}' should be text; "
                                       f"quote it")
                stack.append((f"{key}.{k}" if key else k, v))
        elif isinstance(value, list):
            stack.extend((f"{key}[{i}]", v) for i, v in enumerate(value))
        elif not isinstance(value, _PLAIN):
            raise RefereeError(f"{where}: setting '{key}' is a YAML {type(value).__name__} ({_short(value)}), "
                               f"which a config cannot hold; quote it to make it text")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
