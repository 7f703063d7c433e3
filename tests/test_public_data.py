"""The public data sets: ``data:SET/FILE`` paths, and ``referee data list|get|verify`` against a real HTTP
server on 127.0.0.1 that stands in for the original sources (``--mirror``), serving the copies this machine
has at the upstream paths, so the shipped list's URLs, hashes and conversions are checked end to end."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import re
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from conftest import DATA, REPO, run_cli
from referee.errors import RefereeError
from referee.io import read_records
from referee.paths import data_path
from referee.public_data import Source, catalogue, check, get, in_cosmosqa_half, tree_digest


class Files:
    """A real HTTP server on 127.0.0.1 answering GET /HOST/PATH from a dict; counts requests."""

    def __init__(self, files: dict[str, bytes]):
        self.files, self.requests = files, []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                outer.requests.append(self.path)
                body = outer.files.get(self.path.lstrip("/"))
                self.send_response(200 if body is not None else 404)
                self.end_headers()
                self.wfile.write(body or b"not here")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def mirror(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def mirror_key(url: str) -> str:
    return url.split("://", 1)[1]



def _small_catalogue(tmp_path: Path, body: bytes, url: str = "https://example.org/a/b.jsonl") -> Path:
    entry = [{"name": "tiny", "title": "a tiny set", "homepage": "https://example.org", "licence": "MIT",
              "read_by": "tests", "files": [{"path": "b.jsonl", "size": len(body),
                                             "sha256": hashlib.sha256(body).hexdigest(), "from": [{"url": url}]}]}]
    path = tmp_path / "sets.yaml"
    path.write_text(yaml.safe_dump(entry))
    return path


# ---- data:SET/FILE --------------------------------------------------------------------------------------------
def test_data_paths_resolve_under_the_data_root_and_a_missing_set_says_how_to_get_it(tmp_path, monkeypatch):
    (tmp_path / "tiny").mkdir()
    (tmp_path / "tiny" / "x.jsonl").write_text('{"a": 1}\n')
    monkeypatch.setenv("REFEREE_DATA", str(tmp_path))
    assert data_path("data:tiny/x.jsonl") == tmp_path / "tiny" / "x.jsonl"
    assert [obj for _, obj in read_records("data:tiny/x.jsonl")] == [{"a": 1}]  # every reader takes it
    assert data_path("plain/relative.jsonl") == Path("plain/relative.jsonl")
    with pytest.raises(RefereeError) as e:
        data_path("data:cosmosqa/valid_half.jsonl")
    assert "referee data get cosmosqa" in str(e.value) and "REFEREE_DATA" in str(e.value)
    assert "\n" not in str(e.value)
    with pytest.raises(RefereeError, match="inside the data root"):
        data_path("data:../etc/passwd")


def test_a_config_with_a_missing_set_fails_in_one_line_naming_the_command(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("REFEREE_DATA", str(tmp_path / "empty"))
    code, out, err = run_cli(["run", str(REPO / "configs" / "bon_gsm8k.yaml"), "--set", f"out={tmp_path / 'run'}"],
                          capsys)
    assert code == 2 and err.count("\n") == 1
    assert "data:gsm8k/train.jsonl" in err and "referee data get gsm8k" in err


# ---- the list covers what the project reads ------------------------------------------------------------------
def _data_references() -> set[str]:
    """Every data:SET/FILE named in the shipped configs and benchmarks."""
    found = set()
    for path in [*(REPO / "configs").rglob("*.yaml"), *(REPO / "benchmarks").glob("*.py")]:
        found |= set(re.findall(r"data:([a-z][a-z0-9_]*(?:/[\w.-]+)?)", path.read_text()))
    return found


def test_the_list_names_every_set_and_file_the_configs_and_benchmarks_use(capsys):
    sets = catalogue()
    listed = {s.where(f) for s in sets.values() for f in s.files}
    references = _data_references()
    assert len(references) >= 10
    for ref in references:
        assert ref in listed or ref.rstrip("/") + "/" in listed, f"{ref} is read but not in public_sets.yaml"
    code, out, _ = run_cli(["data", "list"], capsys)
    assert code == 0
    for name, s in sets.items():
        assert f"\n{name}: " in out and s.homepage in out and s.licence in out
    code, out, _ = run_cli(["data", "list", "--json"], capsys)
    rows = [json.loads(line) for line in out.splitlines()]
    assert {r["name"] for r in rows} == set(sets) and all(r["files"][0]["sha256"] for r in rows)


def test_no_public_data_is_copied_into_the_repository():
    digests = {f.sha256 for s in catalogue().values() for f in s.files if not f.is_folder}
    for path in REPO.rglob("*"):
        if path.is_file() and ".git" not in path.parts and ".venv" not in path.parts and "runs" not in path.parts \
                and path.stat().st_size > 10_000:
            assert hashlib.sha256(path.read_bytes()).hexdigest() not in digests, path


# ---- get and verify against a loopback server ----------------------------------------------------------------
def test_get_writes_the_checked_file_and_a_rerun_fetches_nothing(tmp_path, monkeypatch, capsys):
    body = b'{"x": 1}\n{"x": 2}\n'
    sets = _small_catalogue(tmp_path, body)
    monkeypatch.setenv("REFEREE_DATA", str(tmp_path / "root"))
    with Files({"example.org/a/b.jsonl": body}) as server:
        code, out, _ = run_cli(["data", "get", "tiny", "--catalogue", str(sets), "--mirror", server.mirror], capsys)
        assert code == 0 and "wrote tiny/b.jsonl" in out
        assert (tmp_path / "root" / "tiny" / "b.jsonl").read_bytes() == body
        code, out, _ = run_cli(["data", "get", "tiny", "--catalogue", str(sets), "--mirror", server.mirror], capsys)
        assert code == 0 and "already present" in out and len(server.requests) == 1
        (tmp_path / "root" / "tiny" / "b.jsonl").write_bytes(b"edited\n")  # a changed copy is fetched again
        code, out, _ = run_cli(["data", "verify", "--catalogue", str(sets)], capsys)
        assert code == 2 and "wrong  tiny/b.jsonl" in out
        run_cli(["data", "get", "tiny", "--catalogue", str(sets), "--mirror", server.mirror], capsys)
        assert (tmp_path / "root" / "tiny" / "b.jsonl").read_bytes() == body and len(server.requests) == 2
    code, out, _ = run_cli(["data", "verify", "--catalogue", str(sets)], capsys)
    assert code == 0 and "ok  tiny/b.jsonl" in out


def test_an_altered_download_writes_nothing_and_keeps_a_good_copy(tmp_path, monkeypatch, capsys):
    body = b'{"x": 1}\n'
    sets = _small_catalogue(tmp_path, body)
    root = tmp_path / "root"
    monkeypatch.setenv("REFEREE_DATA", str(root))
    with Files({"example.org/a/b.jsonl": b'{"x": 666}\n'}) as server:
        code, _, err = run_cli(["data", "get", "tiny", "--catalogue", str(sets), "--mirror", server.mirror], capsys)
    assert code == 2 and err.count("\n") == 1 and "sha256" in err and "nothing was written" in err
    assert [p.name for p in (root / "tiny").iterdir()] == []  # no staging folder, no partial file left
    (root / "tiny" / "b.jsonl").write_bytes(body)
    with Files({"example.org/a/b.jsonl": b'{"x": 666}\n'}) as server:
        code, _, _ = run_cli(["data", "get", "tiny", "--catalogue", str(sets), "--mirror", server.mirror, "--force"],
                          capsys)
    assert code == 2 and (root / "tiny" / "b.jsonl").read_bytes() == body


def test_a_missing_source_or_no_server_is_one_line(tmp_path, monkeypatch, capsys):
    sets = _small_catalogue(tmp_path, b"x")
    monkeypatch.setenv("REFEREE_DATA", str(tmp_path / "root"))
    with Files({}) as server:
        code, _, err = run_cli(["data", "get", "--catalogue", str(sets), "--mirror", server.mirror], capsys)
        assert code == 2 and "404" in err and err.count("\n") == 1
        closed = server.mirror
    code, _, err = run_cli(["data", "get", "--catalogue", str(sets), "--mirror", closed], capsys)
    assert code == 2 and "could not download" in err and err.count("\n") == 1
    code, _, err = run_cli(["data", "get", "nosuchset", "--catalogue", str(sets)], capsys)
    assert code == 2 and "unknown data set nosuchset; known: tiny" in err
    for text in ("- name: [unclosed", "just text", "- {name: x, files: [{path: a}]}"):
        sets.write_text(text)
        code, _, err = run_cli(["data", "list", "--catalogue", str(sets)], capsys)
        assert code == 2 and err.count("\n") == 1 and str(sets) in err and "Traceback" not in err


def test_the_second_source_is_tried_when_the_first_fails(tmp_path, monkeypatch):
    body = b"the real file\n"
    entry = catalogue(_small_catalogue(tmp_path, body))["tiny"]
    sources = (Source("https://example.org/gone"), Source("https://example.org/b.jsonl.gz", "gunzip"))
    entry = replace(entry, files=(replace(entry.files[0], sources=sources),))
    gz = gzip.compress(body)
    with Files({"example.org/b.jsonl.gz": gz}) as server:
        assert get(entry, tmp_path / "root", mirror=server.mirror) == ["tiny/b.jsonl"]
    assert (tmp_path / "root" / "tiny" / "b.jsonl").read_bytes() == body


def test_an_archive_member_outside_the_folder_is_refused(tmp_path):
    from referee.public_data import quixbugs_folder

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("QuixBugs-master/python_programs/../../../evil.py", "x")
    with pytest.raises(RefereeError, match="outside"):
        quixbugs_folder(buf.getvalue(), tmp_path / "out")
    assert not (tmp_path / "evil.py").exists() and not (tmp_path.parent / "evil.py").exists()


# ---- the shipped list, end to end, from this machine's copies ---------------------------------------------------
def _upstream_copies() -> dict[str, bytes]:
    """What the original sources serve, rebuilt from the copies here: plain files as they are; QuixBugs as a
    GitHub archive with folders referee drops; CosmosQA's whole validation file with the label as a string
    and, between the kept items, items of the other half (made up here, ids with an odd hash)."""
    served = {}
    for s in catalogue().values():
        for f in s.files:
            source = f.sources[0]
            local = DATA / s.name / f.path
            if source.convert is None:
                served[mirror_key(source.url)] = local.read_bytes()
            elif source.convert == "gunzip":
                served[mirror_key(source.url)] = gzip.compress(local.read_bytes())
            elif source.convert == "quixbugs_folder":
                buf = io.BytesIO()
                with zipfile.ZipFile(buf, "w") as z:
                    for p in sorted(local.rglob("*")):
                        if p.is_file():
                            z.writestr(f"QuixBugs-master/{p.relative_to(local).as_posix()}", p.read_bytes())
                    z.writestr("QuixBugs-master/java_programs/BITCOUNT.java", "class BITCOUNT {}")
                    z.writestr("QuixBugs-master/conftest.py", "import pytest")
                served[mirror_key(source.url)] = buf.getvalue()
            elif source.convert == "cosmosqa_half":
                lines = []
                for i, line in enumerate(local.read_text().splitlines()):
                    item = json.loads(line)
                    lines.append(json.dumps({**item, "label": str(item["label"])}))
                    other = next(f"other-{i}-{k}" for k in range(100) if not in_cosmosqa_half(f"other-{i}-{k}"))
                    lines.append(json.dumps({**item, "id": other, "label": "0"}))
                served[mirror_key(source.url)] = ("\n".join(lines) + "\n").encode()
    return served


@pytest.mark.data("gsm8k/train.jsonl", "mt_bench/question.jsonl", "mt_bench/reference_answer_gpt4.jsonl",
                  "llmbar/natural.json", "llmbar/faireval.json", "llmbar/llmeval2.json", "llmbar/mt_bench_human.json",
                  "hh_rlhf/harmless_base_test.jsonl.gz", "liar/train.jsonl", "liar/test.jsonl", "csqa2/train.json",
                  "csqa2/dev.json", "humaneval/HumanEval.jsonl.gz", "quixbugs/correct_python_programs",
                  "cosmosqa/valid_half.jsonl")
def test_every_shipped_set_is_fetched_converted_and_checked(tmp_path, monkeypatch, capsys):
    assert all(state == "ok" for s in catalogue().values() for _, state in check(s, DATA)), \
        "the copies here differ from the list"
    root = tmp_path / "fresh"
    monkeypatch.setenv("REFEREE_DATA", str(root))
    with Files(_upstream_copies()) as server:
        code, _, err = run_cli(["data", "get", "--mirror", server.mirror], capsys)
    assert code == 0, err
    code, out, _ = run_cli(["data", "verify"], capsys)
    assert code == 0 and out.count(" ok  ") == sum(len(s.files) for s in catalogue().values())
    assert tree_digest(root / "quixbugs") == tree_digest(DATA / "quixbugs")
    assert not (root / "quixbugs" / "java_programs").exists()
    assert (root / "cosmosqa" / "valid_half.jsonl").read_bytes() == (DATA / "cosmosqa" / "valid_half.jsonl").read_bytes()
