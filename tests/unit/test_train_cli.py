"""``sidestep train`` / ``sidestep evaluate`` end to end on small generated traces, and their refusals."""
import json
import os

import pytest
from threadpoolctl import threadpool_limits

from controller.cli import main
from models.synth import SynthConfig, generate, write_csv


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """HGB's OpenMP threads crawl when the shared 2-core machine is busy; one thread is steady."""
    with threadpool_limits(1):
        yield


@pytest.fixture(scope="module")
def loads(tmp_path_factory):
    folder = tmp_path_factory.mktemp("loads")
    cfg = SynthConfig(k=4, duration_s=240)
    tr = generate(7, cfg)
    keep = [i for i, l in enumerate(tr.links) if l[0].startswith(("a", "c"))][:12]
    tr.links = [tr.links[i] for i in keep]
    tr.util = tr.util[keep]
    path = str(folder / "loads.csv")
    write_csv(path, tr)
    return path


def train(args):
    return main(["train", "-q", "--window", "32", "--max-iter", "10", "--max-rows", "3000"] + args)


def test_train_then_evaluate(loads, tmp_path, capsys):
    model = str(tmp_path / "m.joblib")
    assert train([loads, "-o", model]) == 0
    assert os.path.exists(model) and os.path.exists(model + ".json")
    out_json = str(tmp_path / "scores.json")
    assert main(["evaluate", "-q", loads, "--model", model, "--json", out_json, "--hot", "0.7"]) == 0
    doc = json.load(open(out_json))
    assert set(doc) == {"model", "persistence", "ewma", "seasonal_naive"}
    for scores in doc.values():
        assert set(scores) == {"mae", "rmse", "precision", "recall"}
    printed = capsys.readouterr().out
    assert "model MAE / persistence MAE" in printed


def test_evaluate_default_model(loads):
    assert main(["evaluate", "-q", loads]) == 0


def one_error_line(capsys, *needles):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    for n in needles:
        assert n in err[0], err[0]
    assert "Traceback" not in err[0]


@pytest.mark.parametrize("content,needle", [
    ("", "file is empty"),
    ("t_s,link,util\n", "no samples"),
    ("t_s,link,util\n0,a->b,0.5\n1,a->b,zero\n", "'zero' is not a number"),
    ("t_s,link,util\n1,a->b,0.5\n0,a->b,0.4\n", "increasing t_s"),
    ("t_s,link,util\n0,ab,0.5\n", "is not a link"),
])
def test_bad_csv_gives_one_line_and_no_model(tmp_path, capsys, content, needle):
    bad = tmp_path / "bad.csv"
    bad.write_text(content)
    model = tmp_path / "m.joblib"
    assert train([str(bad), "-o", str(model)]) == 2
    one_error_line(capsys, str(bad), needle)
    assert list(tmp_path.iterdir()) == [bad]


def test_horizon_zero(loads, tmp_path, capsys):
    assert train([loads, "-o", str(tmp_path / "m.joblib"), "--horizon", "0"]) == 2
    one_error_line(capsys, "--horizon")
    assert main(["evaluate", loads, "--horizon", "0"]) == 2
    one_error_line(capsys, "--horizon")


def test_too_short_trace(tmp_path, capsys):
    short = tmp_path / "short.csv"
    short.write_text("t_s,link,util\n" + "".join("%d,a->b,0.5\n" % t for t in range(20)))
    assert train([str(short), "-o", str(tmp_path / "m.joblib")]) == 2
    one_error_line(capsys, str(short), "usable")


def test_model_of_another_feature_version(loads, tmp_path, capsys):
    from models import model_file
    from models.model_file import load_model, save_model
    est, meta = load_model(os.path.join(os.path.dirname(model_file.__file__), "default_model.joblib"))
    old = str(tmp_path / "old.joblib")
    save_model(old, est, dict(meta, feature_version=-1))
    out_json = tmp_path / "s.json"
    assert main(["evaluate", loads, "--model", old, "--json", str(out_json)]) == 2
    one_error_line(capsys, old, "feature version")
    assert not out_json.exists()


def test_horizon_other_than_the_models(loads, capsys):
    assert main(["evaluate", "-q", loads, "--horizon", "3"]) == 2
    one_error_line(capsys, "--horizon 3")


def test_sampling_period_other_than_the_models(tmp_path, capsys):
    slow = tmp_path / "slow.csv"
    slow.write_text("t_s,link,util\n" + "".join("%d,a->b,0.5\n" % (t * 300) for t in range(200)))
    assert main(["evaluate", "-q", str(slow)]) == 2
    one_error_line(capsys, str(slow), "300 s")


def test_missing_output_folder(loads, tmp_path, capsys):
    assert train([loads, "-o", str(tmp_path / "no" / "m.joblib")]) == 2
    one_error_line(capsys, "does not exist")


def test_outputs_never_replace_an_input_and_need_force_to_replace_a_file(loads, tmp_path, capsys):
    """train -o, evaluate --json and plan --json used to write wherever they were pointed."""
    copy = str(tmp_path / "loads.csv")
    with open(loads) as src, open(copy, "w") as dst:
        dst.write(src.read())
    before = open(copy).read()
    assert train([copy, "-o", copy]) == 2
    one_error_line(capsys, "-o %s is also an input" % copy, "choose another -o path")
    assert train([copy, "-o", copy, "--force"]) == 2          # --force does not make an input writable
    one_error_line(capsys, "is also an input")
    model = str(tmp_path / "m.joblib")
    assert train([copy, "-o", model]) == 0
    stamp = os.stat(model).st_mtime_ns
    assert train([copy, "-o", model]) == 2
    one_error_line(capsys, "%s exists" % model, "--force")
    assert os.stat(model).st_mtime_ns == stamp
    assert train([copy, "-o", model, "--force"]) == 0

    assert main(["evaluate", "-q", copy, "--model", model, "--json", copy]) == 2
    one_error_line(capsys, "--json %s is also an input" % copy)
    assert main(["evaluate", "-q", copy, "--model", model, "--json", model]) == 2
    one_error_line(capsys, "--json %s is also an input" % model)
    assert main(["evaluate", "-q", copy, "--model", model, "--json", str(tmp_path)]) == 2
    one_error_line(capsys, "is a folder")
    assert capsys.readouterr().out == ""                     # refused before the scores, not after them
    scores = str(tmp_path / "scores.json")
    assert main(["evaluate", "-q", copy, "--model", model, "--json", scores]) == 0
    assert main(["evaluate", "-q", copy, "--model", model, "--json", scores]) == 2
    one_error_line(capsys, "%s exists" % scores)
    assert main(["evaluate", "-q", copy, "--model", model, "--json", scores, "--force"]) == 0
    assert open(copy).read() == before
    assert [p for p in os.listdir(tmp_path) if ".tmp" in p] == []


def test_the_models_metadata_file_follows_the_same_rules(loads, tmp_path, capsys):
    """train -o M also writes M.json: it replaced an existing M.json unasked, and an input named M.json."""
    model = str(tmp_path / "side.joblib")
    mine = model + ".json"
    with open(mine, "w") as handle:
        handle.write('{"mine": true}\n')
    assert train([loads, "-o", model]) == 2
    one_error_line(capsys, "%s exists" % mine, "also writes the model's metadata to %s" % mine)
    assert open(mine).read() == '{"mine": true}\n' and not os.path.exists(model)
    assert train([loads, "-o", model, "--force"]) == 0
    assert json.load(open(mine))["horizon"] == 2

    data = str(tmp_path / "L.json")                          # a recording whose name is the model's + .json
    with open(loads) as src, open(data, "w") as dst:
        dst.write(src.read())
    before = open(data).read()
    assert train([data, "-o", str(tmp_path / "L"), "--force"]) == 2
    one_error_line(capsys, "is also an input", "model's metadata")
    assert open(data).read() == before and not os.path.exists(str(tmp_path / "L"))


def test_links_devices_and_pipes_are_not_replaced(loads, tmp_path, capsys):
    """An atomic write renames a new file over the name: a link, a device or a pipe would be replaced by it."""
    target = tmp_path / "target.txt"
    target.write_text("keep\n")
    link = tmp_path / "link.json"
    link.symlink_to(target)
    pipe = tmp_path / "pipe.json"
    os.mkfifo(pipe)
    model = str(tmp_path / "m.joblib")
    assert train([loads, "-o", model]) == 0
    for path, words in ((link, ("is a symbolic link (to %s)" % target, "name the file itself")),
                        (pipe, ("is not a regular file", "choose another --json path"))):
        assert main(["evaluate", "-q", loads, "--model", model, "--json", str(path), "--force"]) == 2
        one_error_line(capsys, *words)
    assert main(["evaluate", "-q", loads, "--model", model, "--json", os.devnull, "--force"]) == 2
    one_error_line(capsys, "%s is not a regular file" % os.devnull)
    assert os.path.islink(link) and target.read_text() == "keep\n"
    assert not os.path.isfile(pipe) and os.path.exists(os.devnull) and not os.path.isfile(os.devnull)
    dangling = tmp_path / "gone.joblib"
    dangling.symlink_to(tmp_path / "nowhere")
    assert train([loads, "-o", str(dangling), "--force"]) == 2
    one_error_line(capsys, "is a symbolic link")
    assert os.path.islink(dangling) and not os.path.exists(tmp_path / "nowhere")


def test_evaluate_on_a_series_persistence_predicts_exactly_prints_no_ratio(tmp_path, capsys):
    """Persistence MAE 0 printed 'model MAE / persistence MAE = nan'."""
    path = tmp_path / "flat.csv"
    rows = ["t_s,link,util"] + ["%d,%s,0.3" % (t, link) for t in range(200) for link in ("a0_0->c0", "c0->a1_0")]
    path.write_text("\n".join(rows) + "\n")
    from models.runtime import DEFAULT_MODEL

    assert main(["evaluate", "-q", str(path), "--model", DEFAULT_MODEL]) == 0
    out = capsys.readouterr().out
    assert "model MAE / persistence MAE = n/a (persistence is exact here: MAE 0)" in out and "nan" not in out
