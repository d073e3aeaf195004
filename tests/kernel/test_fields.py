"""A container's fields as options and YAML config keys."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import pytest
from pydantic import Field

from himl_kernel.container import Container, CrossValidation
from himl_kernel.errors import HimlError
from himl_kernel.fields import non_default_arguments, parse_fields


class Example(CrossValidation, Container):
    """An example with one field of each kind."""

    lr: float = Field(1e-3, description="learning rate")
    epochs: int = 3
    name: str = "x"
    pretrained: bool = False
    sizes: list[int] = Field(default_factory=lambda: [32])
    optimizer: Literal["adam", "sgd"] = "adam"
    checkpoint: Path | None = None
    limit: int | None = None
    folders: list[Path] = Field(default_factory=list)


def test_options_are_converted_to_field_types() -> None:
    model = parse_fields(
        Example,
        ["--lr", "1e-2", "--epochs", "5", "--pretrained", "--sizes", "[8, 16]", "--optimizer", "sgd",
         "--checkpoint", "a/b.ckpt", "--limit", "none", "--name", "123"],
    )  # fmt: skip
    assert model.lr == 0.01 and model.epochs == 5 and model.pretrained is True
    assert model.sizes == [8, 16] and model.optimizer == "sgd"
    assert model.checkpoint == Path("a/b.ckpt") and model.limit is None and model.name == "123"


def test_boolean_takes_an_explicit_value_too() -> None:
    assert parse_fields(Example, ["--pretrained", "false"]).pretrained is False


def test_config_file_gives_defaults_that_options_override(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("lr: 0.5\nepochs: 9\nsizes: [1, 2]\n")
    model = parse_fields(Example, ["--epochs", "2"], config_file=config)
    assert (model.lr, model.epochs, model.sizes) == (0.5, 2, [1, 2])


def test_unknown_field_in_config_file_is_one_line(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("lr: 0.5\nlearning_rat: 3\n")
    with pytest.raises(HimlError) as info:
        parse_fields(Example, [], config_file=config)
    message = str(info.value)
    assert "\n" not in message
    assert "unknown field 'learning_rat'" in message and str(config) in message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("- a\n- b\n", "must hold a mapping"),
        ("lr: [unclosed\n", "not valid YAML at line"),
    ],
)
def test_malformed_config_files(tmp_path: Path, text: str, expected: str) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(text)
    with pytest.raises(HimlError, match=expected):
        parse_fields(Example, [], config_file=config)


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(HimlError, match="does not exist"):
        parse_fields(Example, [], config_file=tmp_path / "none.yaml")


def test_bad_values_name_the_field_and_what_was_given() -> None:
    with pytest.raises(HimlError, match=r"epochs: .*integer.*\(got 'three'\)"):
        parse_fields(Example, ["--epochs", "three"])
    with pytest.raises(HimlError, match="optimizer"):
        parse_fields(Example, ["--optimizer", "adagrad"])


def test_unknown_option_is_one_line() -> None:
    with pytest.raises(HimlError, match="unrecognized arguments: --learning_rate 3"):
        parse_fields(Example, ["--learning_rate", "3"])


def test_crossval_index_must_be_below_count() -> None:
    with pytest.raises(HimlError, match="crossval_index must be below crossval_count"):
        parse_fields(Example, ["--crossval_count", "3", "--crossval_index", "3"])


def test_crossvalidation_parent_expands_into_a_sweep() -> None:
    parent = parse_fields(Example, ["--crossval_count", "3"])
    sweep = parent.get_sweep()
    assert sweep is not None and sweep.trials() == [{"crossval_index": i} for i in range(3)]
    child = parse_fields(Example, ["--crossval_count", "3", "--crossval_index", "1"])
    assert child.get_sweep() is None


def test_non_default_arguments_rebuild_the_same_container() -> None:
    original = parse_fields(Example, ["--lr", "0.25", "--sizes", "[4]", "--pretrained", "--checkpoint", "x.ckpt"])
    args = non_default_arguments(original)
    assert "--epochs" not in args
    assert parse_fields(Example, args) == original


def test_a_list_takes_a_bare_value_or_a_comma_list_and_paths_in_it_rebuild() -> None:
    one = parse_fields(Example, ["--folders", "/data/a", "--sizes", "8"])
    assert one.folders == [Path("/data/a")] and one.sizes == [8]
    two = parse_fields(Example, ["--folders", "/data/a,/data/b", "--sizes", "8, 16"])
    assert two.folders == [Path("/data/a"), Path("/data/b")] and two.sizes == [8, 16]
    assert parse_fields(Example, ["--folders", "[/x, /y]"]).folders == [Path("/x"), Path("/y")]
    args = non_default_arguments(two)  # a list of paths is written back with each path quoted, not refused
    assert args[args.index("--folders") + 1] == '["/data/a", "/data/b"]'
    assert parse_fields(Example, args) == two


def test_none_or_null_in_any_case_is_none_for_an_optional_field() -> None:
    for word in ("none", "None", "null", "NULL"):
        assert parse_fields(Example, ["--limit", "3", "--limit", word]).limit is None
        assert parse_fields(Example, ["--checkpoint", word]).checkpoint is None
    assert parse_fields(Example, ["--name", "none"]).name == "none"  # a plain string field takes it as text


def test_a_boolean_alone_before_another_option_is_true() -> None:
    model = parse_fields(Example, ["--pretrained", "--epochs", "4"])
    assert model.pretrained is True and model.epochs == 4
    assert parse_fields(Example, ["--pretrained=false"]).pretrained is False


def test_a_config_file_that_is_not_utf8_is_one_line(tmp_path: Path) -> None:
    config = tmp_path / "x.yaml"
    config.write_bytes("name: caf\u00e9\n".encode("latin-1"))
    with pytest.raises(HimlError) as info:
        parse_fields(Example, [], config_file=config)
    assert str(info.value) == f"config file {str(config)!r} is not UTF-8 text"


def test_config_text_reads_back_to_the_same_container(tmp_path: Path) -> None:
    from himl_kernel.fields import config_text

    original = parse_fields(Example, ["--lr", "0.25", "--folders", "/a,/b", "--checkpoint", "c.ckpt", "--limit", "2"])
    config = tmp_path / "config.yaml"
    config.write_text(config_text(original), encoding="utf-8")
    assert parse_fields(Example, [], config_file=config) == original
    assert parse_fields(Example, ["--epochs", "7"], config_file=config).epochs == 7


def test_help_groups_fields_by_the_class_that_declares_them_with_types_and_real_defaults() -> None:
    from himl_kernel.fields import build_parser

    text = build_parser(Example, "himl run --model Example").format_help()
    assert "PydanticUndefined" not in text
    flat = " ".join(text.split())
    assert "CrossValidation fields: k-fold cross-validation" in flat
    assert (
        flat.index("--crossval_count int number") < flat.index("Example fields: An") < flat.index("--lr float learning")
    )
    assert "--sizes list[int], --sizes+ list[int] (default: [32])" in flat
    assert "--checkpoint Path|None (default: null)" in flat and "--pretrained [BOOL] (default: false)" in flat
    assert "--lr float learning rate (default: 0.001)" in flat


def test_unknown_option_suggests_the_close_field() -> None:
    with pytest.raises(HimlError, match=r"unrecognized arguments: --lrr 3 \(did you mean --lr\?\)"):
        parse_fields(Example, ["--lrr", "3"])
    with pytest.raises(HimlError, match=r"unrecognized arguments: --epoch 3 \(did you mean --epochs\?\)"):
        parse_fields(Example, ["--epoch", "3"])  # no abbreviations: a prefix is a typo


def test_a_field_that_would_shadow_someone_elses_option_is_refused() -> None:
    from himl_kernel.fields import check_option_clashes

    class Clash(Container):
        experiment: str = ""

    with pytest.raises(HimlError) as info:
        check_option_clashes(Clash, {"--experiment": "himl run", "--cluster": "plugin azure_v2"})
    assert str(info.value) == (
        "field 'experiment' of Clash would be the option --experiment, but --experiment is himl run's; rename the field"
    )

    class Separator(Container):
        num_nodes: int = 1

    with pytest.raises(HimlError, match="field 'num_nodes' of Separator would be the option --num_nodes, but --num-"):
        check_option_clashes(Separator, {"--num-nodes": "himl run"})
    check_option_clashes(Example, {"--num-nodes": "himl run", "--cluster": "plugin azure_v2"})  # no clash: no error


def test_text_for_a_field_that_mixes_text_and_other_types_stays_as_typed() -> None:
    class Mixed(Container):
        weights: str | None = None
        key: int | str = 0

    assert parse_fields(Mixed, ["--weights", "my file #2.ckpt "]).weights == "my file #2.ckpt "
    assert parse_fields(Mixed, ["--weights", "'none'"]).weights == "none"  # quoted: the text itself
    assert parse_fields(Mixed, ["--weights", "none"]).weights is None
    assert parse_fields(Mixed, ["--key", "12"]).key == 12 and parse_fields(Mixed, ["--key", '"12"']).key == "12"
    assert parse_fields(Mixed, ["--key", "1.5"]).key == "1.5"
