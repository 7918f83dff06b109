"""`exssnet run --help` in groups with defaults and exact readers; "did you mean" for near-miss names and keys."""

import dataclasses

import pytest

from exssnet.cli import build_parser, main
from exssnet.commands.run_flags import GROUP_HELP, group_of
from exssnet.methods import method_names, settings_classes
from exssnet.report.method_keys import readers, reads


def run_help(capsys) -> str:
    with pytest.raises(SystemExit) as exit_:
        main(["run", "--help"])
    assert exit_.value.code == 0
    return capsys.readouterr().out


def flag_block(text: str, flag: str) -> str:
    """The help lines of one flag (up to the next flag)."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip().startswith(flag + " ") or line.strip() == flag
                 or line.strip().startswith(flag + ","))
    block = [lines[start]]
    for line in lines[start + 1:]:
        if line.strip().startswith("--") or not line.startswith(" " * 8):
            break
        block.append(line)
    text = ""
    for part in (line.strip() for line in block):
        text += part if text.endswith("-") or not text else " " + part  # argparse wraps after hyphens
    return text


def test_help_is_grouped_with_defaults(capsys):
    text = run_help(capsys)
    for group in GROUP_HELP:
        assert f"\n{group}:\n" in text
    assert "(default: 0.1)" in flag_block(text, "--density")
    assert "(default: 500)" in flag_block(text, "--buffer-size")
    assert "(default: off)" in flag_block(text, "--kkt")
    # the groups hold what their names say
    assert group_of("kkt_k") == "supermask + KKT" and group_of("ewc_lambda") == "dense baselines"
    assert group_of("lm_lr") == "language methods" and group_of("threads") == "system"
    assert group_of("classil_rule") == "class-IL" and group_of("benchmark") == "data"


def test_benchmark_and_method_help_list_every_registered_name(capsys):
    from exssnet.data import benchmark_names

    text = run_help(capsys)
    benchmark = flag_block(text, "--benchmark")
    assert all(name in benchmark for name in benchmark_names())
    assert all(name in flag_block(text, "--method") for name in method_names())


def methods_in_help(block: str) -> set[str]:
    named = block.split("[", 1)[1].split("]", 1)[0]
    if named.startswith("every method but "):
        left_out = {m.strip() for m in named.removeprefix("every method but ").split(",")}
        return set(method_names()) - left_out
    return {m.strip() for m in named.split(",")}


def test_each_method_flag_names_exactly_the_methods_that_read_it(capsys):
    text = run_help(capsys)
    keys = {f.name for cls in settings_classes() for f in dataclasses.fields(cls)}
    for key in sorted(keys):
        expected = {m for cls, methods in settings_classes().items() if key in {f.name for f in dataclasses.fields(cls)}
                    for m in methods}
        assert methods_in_help(flag_block(text, "--" + key.replace("_", "-"))) == expected, key
    # buffer_size: never a method without a buffer
    buffer = methods_in_help(flag_block(text, "--buffer-size"))
    assert not buffer & {"naive", "ewc", "lwf", "si", "exssnet", "supsup"}
    # core keys a method does not read
    assert methods_in_help(flag_block(text, "--density")) == {"supsup", "ssnet", "exssnet", "wsn"}  # not packnet
    assert methods_in_help(flag_block(text, "--weight-lr")) == {"ssnet", "exssnet", "packnet"}
    assert "ft" not in readers("model") and reads("er", "model") and not reads("ft", "density")


def test_help_method_shows_one_methods_settings(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["run", "--help-method", "ewc"])
    out = capsys.readouterr().out
    assert exit_.value.code == 0
    assert "--ewc-lambda" in out and "default 100.0" in out and "--kkt" not in out
    with pytest.raises(SystemExit) as exit_:
        main(["run", "--help-method", "exsnet"])
    assert exit_.value.code == 2
    assert "did you mean 'exssnet'?" in capsys.readouterr().err


def test_misspelt_method_suggests_the_close_name(capsys):
    assert main(["run", "--method", "exsnet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "exssnet: error: unknown method 'exsnet'; did you mean 'exssnet'?"
    assert main(["run", "--method", "icarl", "--quiet"]) == 2  # nothing close: the known names
    assert "known methods: " in capsys.readouterr().err


def test_yaml_typo_suggests_the_close_key_in_one_short_line(tmp_path, capsys):
    config = tmp_path / "c.yaml"
    config.write_text("desnity: 0.1\n")
    assert main(["run", "--config", str(config)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "exssnet: error: unknown config key(s) desnity; did you mean 'density'?"
    config.write_text("zzzz_qqq: 1\n")
    assert main(["run", "--config", str(config)]) == 2
    err = capsys.readouterr().err.strip()
    assert "zzzz_qqq" in err and len(err) < 160 and "\n" not in err


def test_misspelt_flag_shows_the_subcommands_usage_and_suggestion(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["run", "--desnity", "0.1"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: exssnet run ")
    assert "exssnet run: error: unrecognized arguments: --desnity 0.1; did you mean '--density'?" in err
    with pytest.raises(SystemExit):
        main(["rn"])
    assert "did you mean 'run'?" in capsys.readouterr().err


def test_parser_builds_every_subcommand():
    parser = build_parser()
    assert parser.parse_args(["report", "x"]).command == "report"
