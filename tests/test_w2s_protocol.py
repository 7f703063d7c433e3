"""Weak-to-strong end to end: `referee run` on a config with a bag of words and a tiny backbone."""

from __future__ import annotations

import json
import random

import pytest
import yaml

from referee.cli import main

POS = "bright kind warm happy sunny gentle calm joyful".split()
NEG = "dark cruel cold angry stormy harsh tense gloomy".split()
FILL = "the a of river stone table window garden letter train music paper".split()


def _synthetic(path, n, seed):
    """Sentences whose label is the majority of positive vs negative words, 10% labels flipped."""
    rng = random.Random(seed)
    with open(path, "w") as f:
        for i in range(n):
            k = rng.randint(1, 4)
            npos = rng.randint(0, k)
            words = [rng.choice(FILL) for _ in range(5)] + [rng.choice(POS) for _ in range(npos)] + \
                    [rng.choice(NEG) for _ in range(k - npos)]
            rng.shuffle(words)
            good = npos > k - npos or (2 * npos == k and rng.random() < 0.5)
            if rng.random() < 0.1:
                good = not good
            f.write(json.dumps({"id": f"s{seed}-{i}", "sentence": " ".join(words), "y": "good" if good else "bad"}) + "\n")
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("w2sdata")
    return _synthetic(d / "train.jsonl", 260, 0), _synthetic(d / "test.jsonl", 80, 1)


def _config(tmp_path, files, tiny_model_path, **over):
    cfg = {
        "protocol": "weak_to_strong", "out": str(tmp_path / "run"), "seed": 0,
        "data": {"format": "jsonl", "train": str(files[0]), "test": str(files[1]), "text_field": "sentence",
                 "label_field": "y", "classes": ["bad", "good"]},
        "split": {"n_weak": 80, "n_w2s": 160, "n_test": 0},
        "ladder": [{"name": "bow", "kind": "bow", "min_df": 1, "train": {"lr": 0.05}},
                   {"name": "tiny-L1", "kind": "backbone", "model": f"hf:{tiny_model_path}", "layer": 1},
                   {"name": "tiny-L2", "kind": "backbone", "model": f"hf:{tiny_model_path}", "layer": 2}],
        "train": {"epochs": 4, "batch_size": 32},
        "n_boot": 100,
    }
    for k, v in over.items():
        cfg[k] = v
    path = tmp_path / "w2s.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_protocol_end_to_end_and_resume(tmp_path, files, tiny_model_path, capsys):
    cfg = _config(tmp_path, files, tiny_model_path)
    main(["run", str(cfg)])
    run = tmp_path / "run"
    metrics = json.loads((run / "metrics.json").read_text())["weak_to_strong"]
    assert metrics["split"] == {"weak": 80, "w2s": 160, "test": 80}
    assert len(metrics["pairs"]) == 3 * 2  # three (weak, strong) pairs, two losses
    for r in metrics["pairs"]:
        assert 0 <= r["acc_w2s"] <= 1
        if r["flag"] is None:
            assert r["pgr"] == pytest.approx((r["acc_w2s"] - r["acc_weak"]) / (r["acc_ceiling"] - r["acc_weak"]))
        else:
            assert r["pgr"] is None and r["acc_ceiling"] <= r["acc_weak"]
        assert r["imitation_test"]["weak_wrong"] == round((1 - r["acc_weak"]) * 80)
    [boot] = metrics["bootstrap"]
    assert boot["chain"] == ["bow", "tiny-L1", "tiny-L2"] and boot["loss"] == "naive"
    direct = [r for r in metrics["pairs"] if (r["weak"], r["strong"], r["loss"]) == ("bow", "tiny-L2", "naive")][0]
    assert boot["direct_pgr"] == direct["pgr"] and boot["acc_ceiling"] == direct["acc_ceiling"]
    assert set(metrics["summary"]) == {"naive", "aux", "bootstrap_naive"}
    assert (run / "plots" / "w2s_accuracy.png").stat().st_size > 1000
    assert (run / "plots" / "w2s_pgr.png").stat().st_size > 1000
    records = run / "records"
    weak = [json.loads(line) for line in (records / "weak__bow.jsonl").read_text().splitlines()]
    assert len(weak) == 160 + 80 and {r["part"] for r in weak} == {"w2s", "test"}
    assert (records / "w2s__bow__tiny-L2__aux.jsonl").exists()
    assert len(list(records.glob("boot__bow__tiny-L1__naive__labels_fold*.jsonl"))) == 2
    # the records of the students' weak labels are the weak model's part-2 probabilities
    split = {json.loads(line)["index"]: json.loads(line) for line in (records / "split.jsonl").read_text().splitlines()}
    assert all(split[r["index"]]["part"] == r["part"] for r in weak)
    # run again: every stage is read back, nothing trains, the numbers are the same
    stamp = (records / "w2s__bow__tiny-L2__aux.jsonl").stat().st_mtime_ns
    main(["run", str(cfg)])
    assert (records / "w2s__bow__tiny-L2__aux.jsonl").stat().st_mtime_ns == stamp
    again = json.loads((run / "metrics.json").read_text())["weak_to_strong"]
    assert again["pairs"] == metrics["pairs"]
    capsys.readouterr()
    main(["w2s", "table", str(run)])
    out = capsys.readouterr().out
    assert out.startswith("| weak | strong | loss |") and "bootstrap-naive" in out and "bow > tiny-L1 > tiny-L2" in out


def test_stages_read_back_and_retrain_only_what_changed(tmp_path, files, tiny_model_path):
    """A rerun reads every stage back (loss histories too); a changed training setting retrains the
    stages that use it and nothing else; a changed example text retrains everything."""
    test_file = tmp_path / "test.jsonl"
    test_file.write_text(files[1].read_text())
    data = {"format": "jsonl", "train": str(files[0]), "test": str(test_file), "text_field": "sentence",
            "label_field": "y", "classes": ["bad", "good"]}
    ladder = [{"name": "bow", "kind": "bow", "min_df": 1, "train": {"lr": 0.05}},
              {"name": "tiny-L1", "kind": "backbone", "model": f"hf:{tiny_model_path}", "layer": 1}]
    run = tmp_path / "run"

    def run_and_stamp() -> dict:
        main(["run", str(_config(tmp_path, files, tiny_model_path, data=data, ladder=ladder, losses=["naive"]))])
        return {p.stem: (p.stat().st_mtime_ns, p.read_bytes()) for p in (run / "records").glob("*.jsonl")}

    first = run_and_stamp()
    assert set(first) == {"split", "weak__bow", "ceiling__tiny-L1", "w2s__bow__tiny-L1__naive"}
    history = (run / "train_history.json").read_text()
    assert run_and_stamp() == first  # nothing rewritten
    assert (run / "train_history.json").read_text() == history
    [pair] = json.loads((run / "metrics.json").read_text())["weak_to_strong"]["pairs"]
    assert pair["final_train_loss"] == json.loads(history)["w2s__bow__tiny-L1__naive"][-1]

    ladder[1] = {**ladder[1], "train": {"lr": 0.01}}  # one setting of the strong rung
    second = run_and_stamp()
    assert second["split"] == first["split"] and second["weak__bow"] == first["weak__bow"]
    for stage in ("ceiling__tiny-L1", "w2s__bow__tiny-L1__naive"):
        assert second[stage][0] != first[stage][0] and second[stage][1] != first[stage][1]

    lines = test_file.read_text().splitlines()
    example = json.loads(lines[0])
    example["sentence"] += " river"
    test_file.write_text("\n".join([json.dumps(example)] + lines[1:]) + "\n")
    third = run_and_stamp()
    assert all(third[stage][0] != second[stage][0] for stage in second)
    assert example["sentence"] in third["split"][1].decode()


def _fails(capsys, argv) -> str:
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    return capsys.readouterr().err


def test_bad_settings_name_the_setting(tmp_path, files, tiny_model_path, capsys):
    ladder = [{"name": "bow", "kind": "bow"}, {"name": "bow", "kind": "bow"}]
    err = _fails(capsys, ["run", str(_config(tmp_path, files, tiny_model_path, ladder=ladder))])
    assert "ladder names must be unique; repeated: bow" in err
    ladder = [{"name": "bow", "kind": "bow"}, {"name": "deep", "kind": "backbone", "model": f"hf:{tiny_model_path}", "layer": 7}]
    err = _fails(capsys, ["run", str(_config(tmp_path, files, tiny_model_path, ladder=ladder))])
    assert "rung 'deep': setting 'layer' is 7 but the model has 2 layers" in err
    err = _fails(capsys, ["run", str(_config(tmp_path, files, tiny_model_path, split={"n_weak": 200, "n_w2s": 100}))])
    assert "split: settings n_weak + n_w2s ask for 300 examples but" in err and "train.jsonl has only 260" in err
    data = {"format": "jsonl", "train": str(files[0]), "text_field": "sentence", "label_field": "y"}
    err = _fails(capsys, ["run", str(_config(tmp_path, files, tiny_model_path, data=data))])
    assert "setting 'data'" in err and "needs 'classes'" in err
    data = {"format": "liar", "train": str(files[0]), "classes": [0, 1]}
    err = _fails(capsys, ["run", str(_config(tmp_path, files, tiny_model_path, data=data))])
    assert "classes apply to format jsonl only" in err


def test_bad_data_names_file_line_and_field(tmp_path, files, tiny_model_path, capsys):
    bad = tmp_path / "bad.jsonl"
    lines = files[0].read_text().splitlines()
    lines[4] = json.dumps({"id": "x", "sentence": "fine words", "y": "meh"})
    bad.write_text("\n".join(lines) + "\n")
    data = {"format": "jsonl", "train": str(bad), "text_field": "sentence", "label_field": "y", "classes": ["bad", "good"]}
    err = _fails(capsys, ["w2s", "run", str(_config(tmp_path, files, tiny_model_path, data=data))])
    assert f"{bad}:5: field 'y' is 'meh', not one of the declared classes ['bad', 'good']" in err
    lines[4] = json.dumps({"id": "x", "sentence": "", "y": "bad"})
    bad.write_text("\n".join(lines) + "\n")
    err = _fails(capsys, ["w2s", "run", str(_config(tmp_path, files, tiny_model_path, data=data))])
    assert f"{bad}:5: field 'sentence' is empty" in err
