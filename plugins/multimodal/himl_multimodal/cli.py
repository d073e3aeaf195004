"""``himl multimodal ground|zero-shot|embed``: phrase grounding, zero-shot scores and embeddings from local weights."""

from __future__ import annotations

import argparse
import csv
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from himl_kernel.errors import HimlError

if TYPE_CHECKING:
    from himl_kernel.contracts import Host
    from himl_multimodal.image.inference import ImageInferenceEngine
    from himl_multimodal.text.inference import TextInferenceEngine

T = TypeVar("T")
ACTIONS = {
    "ground": "similarity map of a phrase over an image (figure and .npy)",
    "zero-shot": "score images against a positive and a negative prompt (CSV, AUROC with labels)",
    "embed": "projected embeddings of images or texts to a .npz or .csv file",
}
EMBEDDING_SUFFIXES = (".npz", ".csv")


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {value}")
    return value


def _image_options(parser: argparse.ArgumentParser, required: bool = True) -> None:
    parser.add_argument("--image-model", choices=("biovil", "biovil_t"), default="biovil_t", help="image model type")
    parser.add_argument("--image-weights", required=required, metavar="W", help="image weights: file or RUN_ID:path")
    parser.add_argument(
        "--backbone",
        default=None,
        help="the image model's ResNet or timm:NAME (default: what training recorded with the weights, or resnet50)",
    )
    parser.add_argument("--resize", type=_positive, default=None, help="resize of the short side (default: 512)")
    parser.add_argument("--crop-size", type=_positive, default=None, help="centre crop (default: 480 / 448)")


def _text_options(parser: argparse.ArgumentParser, required: bool = True) -> None:
    parser.add_argument("--text-model", required=required, metavar="DIR", help="CXR-BERT Hugging Face folder")
    parser.add_argument("--text-model-type", choices=("cxr_bert", "biovil_t_bert"), default="biovil_t_bert")


def _progress(items: Iterable[T], total: int, what: str) -> Iterator[T]:
    """Counts, rate and time left on stderr (tqdm), for more than one item."""
    from tqdm import tqdm  # type: ignore[import-untyped]

    yield from tqdm(items, total=total, desc=what, unit="image", file=sys.stderr, disable=total <= 1)


class MultimodalCommand:
    """The ``himl multimodal`` subcommand."""

    def configure(self, parser: argparse.ArgumentParser) -> None:
        sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
        ground = sub.add_parser("ground", help=ACTIONS["ground"])
        ground.add_argument("image", type=Path, help="the image (DICOM, PNG or JPEG)")
        ground.add_argument("phrase", help="the phrase to ground, e.g. 'left basal opacity'")
        _image_options(ground)
        _text_options(ground)
        ground.add_argument("--output", type=Path, default=Path("map.png"), help="the figure (map.npy beside it)")
        ground.add_argument("--interpolation", default="nearest", help="upsampling of the patch grid (or bilinear)")

        zero = sub.add_parser("zero-shot", help=ACTIONS["zero-shot"])
        zero.add_argument("images", nargs="+", type=Path, help="images, folders of images, or a CSV with 'image'")
        zero.add_argument("--positive", required=True, action="append", help="positive prompt (repeat to average)")
        zero.add_argument("--negative", required=True, action="append", help="negative prompt (repeat to average)")
        zero.add_argument("--label-column", default=None, help="CSV column of 0/1 labels: AUROC is reported")
        zero.add_argument("--output", type=Path, default=Path("zero_shot.csv"), help="the CSV of scores")
        _image_options(zero)
        _text_options(zero)

        embed = sub.add_parser("embed", help=ACTIONS["embed"])
        what = embed.add_mutually_exclusive_group(required=True)
        what.add_argument("--images", nargs="+", type=Path, help="images, folders or a CSV with 'image'")
        what.add_argument("--texts", nargs="+", help="texts to embed")
        embed.add_argument("--output", type=Path, required=True, help="embeddings file: .npz or .csv")
        _image_options(embed, required=False)
        _text_options(embed, required=False)

    def run(self, args: argparse.Namespace, host: Host) -> int:
        if args.action == "ground":
            return ground(args)
        if args.action == "zero-shot":
            return zero_shot(args)
        return embed(args)


def _image_engine(args: argparse.Namespace) -> ImageInferenceEngine:
    from himl_multimodal.image.inference import get_image_inference

    if not args.image_weights:
        raise HimlError("himl multimodal: --image-weights is needed to embed images")
    return get_image_inference(
        args.image_model,
        args.image_weights,
        backbone=args.backbone,
        resize=args.resize,
        center_crop_size=args.crop_size,
    )


def _text_engine(args: argparse.Namespace) -> TextInferenceEngine:
    from himl_multimodal.text.inference import get_bert_inference

    if not args.text_model:
        raise HimlError("himl multimodal: --text-model is needed to embed texts")
    return get_bert_inference(args.text_model_type, model=args.text_model)


def _writable(path: Path, suffixes: tuple[str, ...]) -> Path:
    if path.suffix.lower() not in suffixes:
        raise HimlError(f"--output {path}: expected a file ending in {' or '.join(suffixes)}")
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def ground(args: argparse.Namespace) -> int:
    """Write the grounding figure and the map (``.npy``, NaN outside the crop)."""
    import numpy as np

    from himl_multimodal.figures import plot_phrase_grounding
    from himl_multimodal.image.io import load_image
    from himl_multimodal.vlp import ImageTextInferenceEngine

    output = _writable(args.output, (".png", ".jpg", ".jpeg", ".pdf", ".svg"))
    if not args.phrase.strip():
        raise HimlError("himl multimodal ground: the phrase is empty")
    engine = ImageTextInferenceEngine(_image_engine(args), _text_engine(args))
    similarity = engine.get_similarity_map_from_raw_data(args.image, args.phrase, interpolation=args.interpolation)
    array_path = output.with_suffix(".npy")
    np.save(array_path, similarity)
    plot_phrase_grounding(load_image(args.image), similarity, args.phrase, output)
    row, col = np.unravel_index(int(np.nanargmax(similarity)), similarity.shape)
    print(f"wrote {output} and {array_path}: maximum {np.nanmax(similarity):.3f} at row {row}, column {col}")
    return 0


def auroc(scores: list[float], labels: list[int]) -> float:
    """Area under the ROC curve by ranks (ties count half)."""
    from scipy.stats import rankdata

    positives = sum(labels)
    negatives = len(labels) - positives
    if positives == 0 or negatives == 0:
        raise HimlError("AUROC needs both labels 0 and 1 among the images")
    ranks = rankdata(scores)
    positive_rank_sum = float(sum(r for r, y in zip(ranks, labels, strict=True) if y == 1))
    return (positive_rank_sum - positives * (positives + 1) / 2) / (positives * negatives)


def _binary(value: str | None, where: str) -> int:
    if value not in ("0", "1"):
        raise HimlError(f"{where}: label {value!r} should be 0 or 1")
    return int(value)


def zero_shot(args: argparse.Namespace) -> int:
    """Score each image: similarity with the positive prompts minus that with the negative ones."""
    import torch.nn.functional as F

    from himl_multimodal.inputs import collect_images

    output = _writable(args.output, (".csv",))
    items = collect_images(list(args.images), args.label_column)
    labels = [_binary(item.label, str(item.path)) for item in items] if args.label_column else []
    image_engine, text_engine = _image_engine(args), _text_engine(args)
    positive = F.normalize(text_engine.get_embeddings_from_prompt(args.positive, normalize=False).mean(0), dim=0)
    negative = F.normalize(text_engine.get_embeddings_from_prompt(args.negative, normalize=False).mean(0), dim=0)
    rows: list[dict[str, Any]] = []
    for item in _progress(items, len(items), "zero-shot"):
        embedding = image_engine.get_projected_global_embedding(item.path)
        pos, neg = float(embedding @ positive), float(embedding @ negative)
        row = {"image": str(item.path), "similarity_positive": pos, "similarity_negative": neg, "score": pos - neg}
        row["prediction"] = int(pos > neg)
        if item.label is not None:
            row["label"] = item.label
        rows.append(row)
    with output.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    summary = f"wrote {output}: {len(rows)} images, {sum(r['prediction'] for r in rows)} predicted positive"
    if labels:
        accuracy = sum(int(r["prediction"] == y) for r, y in zip(rows, labels, strict=True)) / len(rows)
        summary += f", accuracy {accuracy:.3f}, AUROC {auroc([r['score'] for r in rows], labels):.3f}"
    print(summary)
    return 0


def embed(args: argparse.Namespace) -> int:
    """Write L2-normalised joint-space embeddings of images or texts, one row per input."""
    import numpy as np
    import torch

    from himl_multimodal.inputs import collect_images

    output = _writable(args.output, EMBEDDING_SUFFIXES)
    if args.texts is not None:
        names = [str(t) for t in args.texts]
        vectors = _text_engine(args).get_embeddings_from_prompt(names)
    else:
        items = collect_images(list(args.images))
        engine = _image_engine(args)
        names = [str(item.path) for item in items]
        found = [engine.get_projected_global_embedding(i.path) for i in _progress(items, len(items), "embed")]
        vectors = torch.stack(found)
    matrix = vectors.cpu().numpy()
    if output.suffix.lower() == ".npz":
        np.savez(output, names=np.array(names), embeddings=matrix)
    else:
        with output.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["name", *[f"e{i}" for i in range(matrix.shape[1])]])
            writer.writerows([name, *map(float, row)] for name, row in zip(names, matrix, strict=True))
    print(f"wrote {output}: {matrix.shape[0]} embeddings of size {matrix.shape[1]}")
    return 0
