"""A new task is one package plus one task-table entry: a toy task, registered only in a temporary table, runs
through save/load, predict (torch and ONNX Runtime), evaluate and export without any other library file knowing it.

The toy task scores an image's brightness: its network is a global mean of the normalised pixels, its head
returns a :class:`ToyScore`, its evaluator the mean absolute error against ``path,target`` lines.
"""

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

import vision
import vision.tasks
from vision.results import Result, result_type
from vision.tasks import Output, Task

HERE = __name__  # the table names the toy's parts as "<this module>:attr", as a real task names its package's


class ToyNet(nn.Module):
    """Mean of the normalised pixels over channels and space: one score per image."""

    def __init__(self, channels: int):
        super().__init__()
        self.pool, self.mix = nn.AdaptiveAvgPool2d(1), nn.Linear(channels, 1)
        with torch.no_grad():
            self.mix.weight.fill_(1 / channels)
            self.mix.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mix(self.pool(x).flatten(1))


def toy_network(card):
    return ToyNet(card.config["channels"])


def toy_card(name, hparams):
    return vision.ModelCard(name=name, task="toy", architecture="toy", config={"channels": hparams["channels"]},
                            preprocessing=hparams["preprocessing"])


class ToyScore(Result):
    def __init__(self, source: str, score: float):
        super().__init__(source, task="toy")
        self.score = score

    def to_dict(self):
        return {**super().to_dict(), "score": self.score}


class ToyHead:
    """The card's eval transform in; one :class:`ToyScore` per image out."""

    def __init__(self, card, digits: int = 6):
        from vision.data.transforms import build_eval_transform

        self.card, self.digits = card, digits
        self.transform = build_eval_transform(card.data_config)

    def preprocess(self, images):
        return torch.stack([self.transform(image=im)["image"] for im in images]), None

    def postprocess(self, output, meta, sources):
        return [ToyScore(s, round(float(v), self.digits)) for s, v in zip(sources, output[:, 0])]


def toy_evaluate(model, data, opts):
    """Mean absolute error of the toy score against ``path,target`` lines."""
    from vision.predictors import Predictor, TorchRuntime

    rows = [line.split(",") for line in data.read_text().splitlines() if line.strip()]
    p = Predictor(TorchRuntime(model, "score", opts.device))
    got = [r.score for r in p([path for path, _ in rows], batch_size=opts.batch_size)]
    return {"images": len(rows), "mae": round(float(np.mean([abs(g - float(t)) for g, (_, t) in zip(got, rows)])), 6)}


TOY = Task(
    name="toy",
    network=f"{HERE}:toy_network",
    card=f"{HERE}:toy_card",
    module="",       # not trained here: predict, evaluate and export need no training module
    datamodule="",
    config={"channels": ("int>0", True)},
    outputs={"score": Output("vision.models.outputs:identity", "mean normalised pixel value (toy brightness)")},
    evaluator=f"{HERE}:toy_evaluate",
    headline=("val_mae", "MAE"),
    head=f"{HERE}:ToyHead",
    result=f"{HERE}:ToyScore",
)


@pytest.fixture
def toy_zoo(tmp_path, monkeypatch):
    """A table holding the toy task (a new dict: a copy of the table taken anywhere at import would miss it), a
    zoo with one toy model and a few grey images with their expected scores."""
    monkeypatch.setattr(vision.tasks, "TASKS", {**vision.tasks.TASKS, "toy": TOY})
    pre = {"input_size": 16, "crop_pct": 1.0, "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]}
    card = toy_card("toy_bright", {"channels": 3, "preprocessing": pre})
    card.metrics = {"val_mae": 0.0}
    vision.save_model(toy_network(card), card, zoo_dir=tmp_path / "zoo")
    images, lines = tmp_path / "images", []
    images.mkdir()
    for level in (0, 64, 128, 255):
        path = images / f"grey{level}.png"
        Image.new("RGB", (24, 20), (level,) * 3).save(path)
        lines.append(f"{path},{(level / 255 - 0.5) / 0.5}")  # normalised with mean/std 0.5
    (tmp_path / "val.csv").write_text("\n".join(lines) + "\n")
    return tmp_path


def test_a_toy_task_is_one_table_entry_for_predict_eval_and_export(toy_zoo):
    zoo, exports = toy_zoo / "zoo", toy_zoo / "exports"
    assert vision.list_models(task="toy", zoo_dir=zoo) == ["toy_bright"]

    # predict with torch: the head and result type are the table's
    p = vision.predictor("toy_bright", zoo_dir=zoo, export_dir=exports, device="cpu", digits=4)
    assert (p.backend, p.output) == ("torch", "score") and isinstance(p.head, ToyHead)
    torch_results = p(str(toy_zoo / "images"))
    assert all(isinstance(r, ToyScore) for r in torch_results)
    scores = {r.source.rsplit("/", 1)[1]: r.score for r in torch_results}
    assert scores["grey0.png"] == -1.0 and scores["grey255.png"] == 1.0
    assert torch_results[0].to_dict()["task"] == "toy"
    assert result_type("toy") is ToyScore

    # evaluate: the table's evaluator
    report = vision.evaluate("toy_bright", toy_zoo / "val.csv", zoo_dir=zoo, device="cpu", batch_size=2)
    assert report["task"] == "toy" and report["images"] == 4 and report["mae"] < 1e-3

    # export: the default output is the first of the table's outputs; the file carries the card and loads back
    from vision.export import export

    model = vision.load_model("toy_bright", zoo_dir=zoo)
    path = export(model, "onnx", exports / "toy_bright.score.onnx")
    onnx_p = vision.predictor(path, device="cpu")
    assert (onnx_p.backend, onnx_p.output, onnx_p.card.task) == ("onnxruntime", "score", "toy")
    onnx_scores = [r.score for r in onnx_p(str(toy_zoo / "images"))]
    assert onnx_scores == pytest.approx([r.score for r in torch_results], abs=1e-4)

    # backend="auto" finds that export for the zoo name under the task's default output kind
    auto = vision.predictor("toy_bright", zoo_dir=zoo, export_dir=exports, device="cpu")
    assert auto.backend == "onnxruntime"


def test_a_task_without_the_output_asked_for_says_which_it_has(toy_zoo):
    with pytest.raises(vision.ZooError, match=r"unknown output 'logits' for task 'toy'.*\['score'\]"):
        vision.predictor("toy_bright", zoo_dir=toy_zoo / "zoo", backend="torch", output="logits")
