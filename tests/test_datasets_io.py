"""Hugging Face data sets as inputs and outputs: a folder of ``save_to_disk`` (``hf-disk:``), Parquet and Arrow
files read through ``referee.io.read_records`` exactly as the same rows in JSONL, with column mapping, one-line
errors naming path, row and field, and ``referee data export`` back again. The real ``datasets`` library,
offline, on data sets made in the test."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import datasets
import pytest

from conftest import run_cli
from referee.errors import RefereeError
from referee.io import file_sha256, read_records
from referee.io.tables import parse_source, source_name, source_sha256
from referee.protocols.judge import load_answers
from referee.tasks.pairs import load_pairs

ROWS = [{"prompt": f"question {i}", "chosen": "a long and careful answer " * (i + 1), "rejected": f"short {i}"}
        for i in range(4)]


@pytest.fixture(autouse=True)
def _quiet_datasets():
    datasets.disable_progress_bars()


def jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture
def sources(tmp_path) -> dict:
    """The same preference rows as JSONL, a saved Dataset, a DatasetDict's split, Parquet and Arrow."""
    ds = datasets.Dataset.from_list(ROWS)
    ds.save_to_disk(str(tmp_path / "one"))
    datasets.DatasetDict(train=ds, test=ds.select([0])).save_to_disk(str(tmp_path / "two"))
    ds.to_parquet(str(tmp_path / "pairs.parquet"))
    shutil.copy(next((tmp_path / "one").glob("*.arrow")), tmp_path / "pairs.arrow")
    return {"jsonl": str(jsonl(tmp_path / "pairs.jsonl", ROWS)), "hf": f"hf-disk:{tmp_path / 'one'}",
            "hf_split": f"hf-disk:{tmp_path / 'two'}:train", "parquet": str(tmp_path / "pairs.parquet"),
            "arrow": str(tmp_path / "pairs.arrow")}


@pytest.mark.parametrize("kind", ["hf", "hf_split", "parquet", "arrow"])
def test_pairs_from_a_data_set_equal_the_same_rows_in_jsonl(sources, kind):
    expected = load_pairs(sources["jsonl"])
    assert [p.label for p in expected] == ["A"] * 4 and expected[0].answer_b == "short 0"
    assert load_pairs(sources[kind]) == expected


def test_nested_values_come_out_as_plain_python(tmp_path):
    """Conversational TRL rows (lists of message dicts), ints, floats, bools and nulls, as JSON gives them."""
    rows = [{"prompt": [{"role": "user", "content": f"q{i}"}],
             "chosen": [{"role": "assistant", "content": "a longer answer"}],
             "rejected": [{"role": "assistant", "content": "short"}],
             "n": i, "score": i / 2, "ok": i % 2 == 0, "note": None if i else "first"} for i in range(3)]
    folder = tmp_path / "conv"
    datasets.Dataset.from_list(rows).save_to_disk(str(folder))
    got = [obj for _, obj in read_records(f"hf-disk:{folder}")]
    assert got == rows

    def plain(v):
        if isinstance(v, dict):
            return type(v) is dict and all(type(k) is str and plain(x) for k, x in v.items())
        if isinstance(v, list):
            return type(v) is list and all(plain(x) for x in v)
        return v is None or type(v) in (str, int, float, bool)

    assert all(plain(r) for r in got)
    assert load_pairs(f"hf-disk:{folder}") == load_pairs(jsonl(tmp_path / "conv.jsonl", rows))


def test_a_column_mapping_reads_fields_from_other_columns(tmp_path, sources):
    renamed = [{"question": r["prompt"], "good": r["chosen"], "rejected": r["rejected"]} for r in ROWS]
    datasets.Dataset.from_list(renamed).to_parquet(str(tmp_path / "renamed.parquet"))
    datasets.DatasetDict(train=datasets.Dataset.from_list(renamed)).save_to_disk(str(tmp_path / "rd"))
    expected = load_pairs(sources["jsonl"])
    for spec in (f"{tmp_path / 'renamed.parquet'}?prompt=question&chosen=good",
                 f"hf-disk:{tmp_path / 'rd'}:train?prompt=question&chosen=good",
                 f"{jsonl(tmp_path / 'renamed.jsonl', renamed)}?prompt=question&chosen=good"):
        assert load_pairs(spec) == expected, spec
        assert set(next(read_records(spec))[1]) == {"prompt", "chosen", "rejected"}  # the old names are gone


def test_a_file_name_with_a_question_mark_is_read_when_it_exists(tmp_path):
    odd = jsonl(tmp_path / "what?.jsonl", [{"q": "x", "n": 1}])
    assert [obj for _, obj in read_records(odd)] == [{"q": "x", "n": 1}]
    assert [obj for _, obj in read_records(f"{odd}?prompt=q")] == [{"prompt": "x", "n": 1}]
    with pytest.raises(RefereeError, match=r"no such file"):  # missing: named whole, not cut at the '?'
        list(read_records(tmp_path / "gone?.jsonl"))


def test_splits_columns_and_fields_are_refused_in_one_line(sources, tmp_path):
    two = sources["hf_split"].removesuffix(":train")
    with pytest.raises(RefereeError) as e:
        load_pairs(two)
    assert "splits (train, test)" in str(e.value) and "name one" in str(e.value)
    with pytest.raises(RefereeError, match=r":dev: no split 'dev' \(splits: train, test\)"):
        load_pairs(f"{two}:dev")
    with pytest.raises(RefereeError, match=r"has no splits; drop ':train'"):
        load_pairs(f"{sources['hf']}:train")
    with pytest.raises(RefereeError) as e:
        load_pairs(f"{sources['parquet']}?prompt=question")
    assert str(e.value).startswith(f"{sources['parquet']}?prompt=question: no column 'question'")
    assert "(columns: prompt, chosen, rejected)" in str(e.value)
    with pytest.raises(RefereeError, match="should be FIELD=COLUMN"):
        load_pairs(f"{sources['parquet']}?prompt")


def test_a_bad_row_is_named_by_path_row_and_field(tmp_path):
    rows = [{"prompt": "q1", "response": "fine"}, {"prompt": "q2", "response": None}]
    datasets.Dataset.from_list(rows).to_parquet(str(tmp_path / "answers.parquet"))
    spec = str(tmp_path / "answers.parquet")
    with pytest.raises(RefereeError) as e:
        load_answers(spec)
    assert str(e.value) == f"{spec}: row 2: field 'response' should be str, got NoneType"
    with pytest.raises(RefereeError) as e:
        load_answers(f"{spec}?response=prompt&prompt=nothing")
    assert "no column 'nothing'" in str(e.value)
    datasets.Dataset.from_list([{"prompt": "q"}] * 3).save_to_disk(str(tmp_path / "noresp"))
    with pytest.raises(RefereeError) as e:
        load_answers(f"hf-disk:{tmp_path / 'noresp'}")
    assert str(e.value) == f"hf-disk:{tmp_path / 'noresp'}: row 1: missing field 'response'"


def test_missing_and_unreadable_sources_say_so(tmp_path):
    with pytest.raises(RefereeError, match="no folder at .*save_to_disk"):
        list(read_records(f"hf-disk:{tmp_path / 'none'}"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(RefereeError, match="not a dataset saved with save_to_disk"):
        list(read_records(f"hf-disk:{tmp_path / 'empty'}"))
    (tmp_path / "bad.parquet").write_text("not parquet")
    with pytest.raises(RefereeError, match="not a readable Parquet file"):
        list(read_records(tmp_path / "bad.parquet"))


def test_specs_parse_odd_paths_and_name_runs(tmp_path, sources):
    colon = tmp_path / "a:b"  # a folder whose own name has a colon stays whole
    shutil.copytree(tmp_path / "one", colon)
    assert parse_source(f"hf-disk:{colon}").location == str(colon) and parse_source(f"hf-disk:{colon}").split is None
    assert parse_source(f"hf-disk:{colon}:train").split == "train"
    assert load_pairs(f"hf-disk:{colon}") == load_pairs(sources["jsonl"])
    assert source_name(sources["hf_split"] + "?prompt=x") == "two-train"
    assert source_name(sources["parquet"] + "?prompt=x") == "pairs"
    assert source_name("hf-disk:missing/folder:train") == "folder-train"  # never raises, for default names


def test_fingerprints_follow_the_data(tmp_path, sources):
    """A stage key over a data set changes when its rows, split or mapping change, not otherwise."""
    assert source_sha256(sources["jsonl"]) == file_sha256(sources["jsonl"])
    first = source_sha256(sources["hf"])
    assert source_sha256(sources["hf"]) == first != source_sha256(sources["hf"] + "?prompt=chosen")
    datasets.Dataset.from_list(ROWS[:2]).save_to_disk(str(tmp_path / "one"))
    assert source_sha256(sources["hf"]) != first


def test_the_judge_command_reads_a_data_set_as_it_reads_jsonl(sources, tmp_path, capsys):
    outs = {}
    for kind in ("jsonl", "hf_split", "parquet"):
        run = tmp_path / f"run-{kind}"
        code, _, err = run_cli(["--quiet", "judge", "--judge", "baseline:longer", "--pairs", sources[kind],
                                "--run", str(run)], capsys)
        assert code == 0, err
        outs[kind] = (run / "records" / "judgments.jsonl").read_text()
    assert outs["jsonl"].count("\n") == 4 and '"winner": "A"' in outs["jsonl"]
    assert outs["hf_split"] == outs["jsonl"] == outs["parquet"]
    code, _, err = run_cli(["--quiet", "judge", "--judge", "baseline:longer", "--pairs",
                            sources["hf_split"].removesuffix(":train"), "--run", str(tmp_path / "r2")], capsys)
    assert code == 2 and "splits (train, test)" in err and not (tmp_path / "r2" / "config.yaml").exists()


def test_export_round_trips_a_runs_records(sources, tmp_path, capsys):
    run = tmp_path / "run"
    assert run_cli(["--quiet", "judge", "--judge", "baseline:longer", "--pairs", sources["jsonl"],
                    "--run", str(run)], capsys)[0] == 0
    records = [obj for _, obj in read_records(run / "records" / "judgments.jsonl")]
    for out in (str(tmp_path / "verdicts.parquet"), f"hf-disk:{tmp_path / 'verdicts'}"):
        code, _, err = run_cli(["data", "export", str(run), "--stage", "judgments", "--to", out], capsys)
        assert code == 0, err
        assert [obj for _, obj in read_records(out)] == records
        code, _, err = run_cli(["data", "export", str(run), "--stage", "judgments", "--to", out], capsys)
        assert code == 2 and "already exists; give --force" in err
        assert run_cli(["data", "export", str(run), "--stage", "judgments", "--to", out, "--force"], capsys)[0] == 0
    assert datasets.load_from_disk(str(tmp_path / "verdicts")).num_rows == len(records) == 4


def test_export_refusals(sources, tmp_path, capsys):
    run = tmp_path / "run"
    run_cli(["--quiet", "judge", "--judge", "baseline:longer", "--pairs", sources["jsonl"], "--run", str(run)],
            capsys)
    cases = [([str(run), "--to", str(tmp_path / "x.parquet")], "name the stage to export with --stage (stages: "),
             ([str(run), "--stage", "nope", "--to", str(tmp_path / "x.parquet")], "no stage 'nope'"),
             ([sources["jsonl"], "--to", str(tmp_path / "x.csv")], "expected OUT.parquet, OUT.jsonl or hf-disk:"),
             ([sources["jsonl"], "--to", f"hf-disk:{run}", "--force"], "holds no saved dataset")]
    for args, message in cases:
        code, _, err = run_cli(["data", "export", *args], capsys)
        assert code == 2 and message in err, err
    assert (run / "records" / "judgments.jsonl").is_file()  # --force never empties an unrelated folder
    mixed = jsonl(tmp_path / "mixed.jsonl", [{"prompt": "text"}, {"prompt": [{"role": "user", "content": "x"}]}])
    code, _, err = run_cli(["data", "export", str(mixed), "--to", str(tmp_path / "m.parquet")], capsys)
    assert code == 2 and "field 'prompt' holds values of different kinds (list, str)" in err


def test_start_up_imports_neither_datasets_nor_pyarrow():
    probe = ("import sys\nfrom referee.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
             "print('LOADED', sorted(m for m in ('datasets', 'pyarrow') if m in sys.modules))")
    src = str(Path(__file__).resolve().parents[1] / "src")
    env = dict(os.environ, PYTHONPATH=src)
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env).stdout
    assert out.strip().splitlines()[-1] == "LOADED []"
