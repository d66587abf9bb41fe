"""Every bad `fastcb` argument: exit status 2, one line on stderr naming the argument, no work done."""


import pytest

from fastcb.cli import main

# (argv, a fragment of the one-line message); "{tmp}" is the test's temporary folder, which
# holds a file named "file".
DEMO = [
    (["demo", "--epochs", "0"], "--epochs: expected an int in [1, 10000], got '0'"),
    (["demo", "--epochs", "-3"], "--epochs: expected an int in [1, 10000]"),
    (["demo", "--epochs", "1.5"], "--epochs: expected an int"),
    (["demo", "--epochs", "99999"], "--epochs: expected an int in [1, 10000]"),
    (["demo", "--epochs", "abc"], "--epochs: expected an int"),
    (["demo", "--epochs"], "--epochs: expected one argument"),
    (["demo", "--bs", "many"], "--bs: expected an int in [2, 1e+06], got 'many'"),
    (["demo", "--bs", "0"], "--bs: expected an int in [2,"),
    (["demo", "--bs", "1"], "--bs: expected an int in [2,"),
    (["demo", "--bs", "-64"], "--bs: "),
    (["demo", "--bs", "1e3"], "--bs: "),
    (["demo", "--n-train", "1"], "--n-train: expected an int in [2, 1e+07]"),
    (["demo", "--n-train", "0"], "--n-train: "),
    (["demo", "--n-train", "100000000000"], "--n-train: "),
    (["demo", "--n-train", "nan"], "--n-train: "),
    (["demo", "--n-valid", "0"], "--n-valid: expected an int in [1, 1e+07]"),
    (["demo", "--n-valid", "x"], "--n-valid: "),
    (["demo", "--num-it", "0"], "--num-it: "),
    (["demo", "--num-it", "10000000"], "--num-it: "),
    (["demo", "--lr", "inf"], "--lr: expected a number in (0, 10], got 'inf'"),
    (["demo", "--lr", "-inf"], "--lr: "),
    (["demo", "--lr", "nan"], "--lr: "),
    (["demo", "--lr", "1e9"], "--lr: expected a number in (0, 10], got '1e9'"),
    (["demo", "--lr", "0"], "--lr: "),
    (["demo", "--lr", "-1"], "--lr: "),
    (["demo", "--lr", "fast"], "--lr: "),
    (["demo", "--lr", "1e-400"], "--lr: "),
    (["demo", "--seed", "-1"], "--seed: expected an int in [0, 4.29497e+09], got '-1'"),
    (["demo", "--seed", "4294967296"], "--seed: "),
    (["demo", "--seed", "0.5"], "--seed: "),
    (["demo", "--device", "tpu"], "--device: expected cpu, cuda or cuda:N, got 'tpu'"),
    (["demo", "--device", "cuda:x"], "--device: expected cpu, cuda or cuda:N"),
    (["demo", "--device", "CPU"], "--device: "),
    (["demo", "--device", ""], "--device: "),
    (["demo", "--out", "{tmp}/file"], "--out: '{tmp}/file' is a file, not a folder"),
    (["demo", "--out", "{tmp}/file/sub"], "--out: can't write into '{tmp}/file/sub'"),
    (["demo", "--out", "/proc/fastcb-demo"], "--out: can't write into '/proc/fastcb-demo'"),
    (["demo", "--out", "/dev/null"], "--out: '/dev/null' is a file, not a folder"),
    (["demo", "--quiet=yes"], "--quiet: ignored explicit argument 'yes'"),
    (["demo", "extra"], "unrecognized arguments: extra"),
    (["demo", "--epoch", "3", "--nope"], "unrecognized arguments"),
]
PLOT = [
    (["plot"], "the following arguments are required: SCHEDULE"),
    (["plot", "Nope"], "SCHEDULE: unknown schedule 'Nope'"),
    (["plot", "annealing_tan", "start=1"], "SCHEDULE: unknown annealing function 'annealing_tan'"),
    (["plot", "OneCycleLR", "max_lr"], "expected KEY=VALUE, got 'max_lr'"),
    (["plot", "OneCycleLR", "=0.1"], "expected KEY=VALUE, got '=0.1'"),
    (["plot", "OneCycleLR", "max lr=0.1"], "expected KEY=VALUE"),
    (["plot", "OneCycleLR", "max_lr=0.1"], "OneCycleLR: You must define either total_steps OR"),
    (["plot", "OneCycleLR", "max_lr=0.1", "total_steps=abc"], "OneCycleLR: "),
    (["plot", "OneCycleLR", "max_lr=0.1", "total_steps=-5"], "total_steps"),
    (["plot", "OneCycleLR", "max_lr=0.1", "total_steps=0"], "total_steps"),
    (["plot", "OneCycleLR", "max_lr=0.1", "total_steps=10", "total_steps=20"], "total_steps: given 2 times"),
    (["plot", "OneCycleLR", "max_lr=0.1", "total_steps=10", "max_lrr=1"],
     "max_lrr: unknown argument of fastcb.lr_scheduler.OneCycleLR"),
    (["plot", "OneCycleLR", "max_lr=0.1", "total_steps=10", "pct_start=2"], "OneCycleLR: "),
    (["plot", "OneCycleLR", "max_lr=0.1", "total_steps=10", "foo=1", "--torch"],
     "foo: unknown argument of torch.optim.lr_scheduler.OneCycleLR"),
    (["plot", "StepLR", "steps=3"], "steps: unknown argument of fastcb.lr_scheduler.StepLR"),
    (["plot", "StepLR"], "StepLR: "),
    (["plot", "StepLR", "step_size=abc"], "StepLR: "),
    (["plot", "CosineAnnealingLR", "T_max=0"], "CosineAnnealingLR: "),
    (["plot", "CosineAnnealingLR", "T_max=10", "eta_min=inf"], "CosineAnnealingLR: "),
    (["plot", "ExponentialLR", "gamma=nan"], "ExponentialLR: "),
    (["plot", "ExponentialLR", "gamma=1e308", "--steps", "1000"], "ExponentialLR: "),
    (["plot", "get_cosine_schedule_with_warmup", "num_warmup_steps=10"], "get_cosine_schedule_with_warmup: "),
    (["plot", "get_cosine_schedule_with_warmup", "num_warmup_steps=1", "num_training_steps=abc"],
     "get_cosine_schedule_with_warmup: "),
    (["plot", "get_linear_schedule_with_warmup", "num_warmup_steps=1", "num_training_steps=100", "x=1"],
     "x: unknown argument of"),
    (["plot", "one-cycle"], "one-cycle: needs lr_max=VALUE"),
    (["plot", "one-cycle", "lr_max=0.01", "pct_start=2"], "one-cycle: pct_start: expected a number in [0, 1], got 2"),
    (["plot", "one-cycle", "lr_max=-1"], "one-cycle: lr_max: expected a finite positive number, got -1"),
    (["plot", "one-cycle", "lr_max=inf"], "one-cycle: lr_max: "),
    (["plot", "one-cycle", "lr_max=nan"], "one-cycle: lr_max: "),
    (["plot", "one-cycle", "lr_max=abc"], "one-cycle: lr_max: "),
    (["plot", "one-cycle", "lr_max=0.01", "div_factor=0"], "one-cycle: div_factor: "),
    (["plot", "one-cycle", "lr_max=0.01", "final_div=-2"], "one-cycle: final_div: "),
    (["plot", "one-cycle", "lr_max=0.01", "moms=(1,2,3)"], "one-cycle: moms: "),
    (["plot", "one-cycle", "lr_max=0.01", "lr_max=0.02"], "lr_max: given 2 times"),
    (["plot", "one-cycle", "lr_max=0.01", "pct=0.3"], "pct: unknown argument of one-cycle"),
    (["plot", "one-cycle", "lr_max=0.01", "n_steps=5"], "n_steps: unknown argument of one-cycle"),
    (["plot", "cos", "end=0"], "cos: needs start=VALUE"),
    (["plot", "cos", "start=1", "stop=0"], "stop: unknown argument of cos"),
    (["plot", "cos", "start=abc", "end=0"], "cos: "),
    (["plot", "cos", "start=nan", "end=0"], "cos: "),
    (["plot", "cos", "start=1", "start=2"], "start: given 2 times"),
    (["plot", "linear", "start=1", "degree=2"], "degree: unknown argument of linear"),
    (["plot", "poly", "start=1", "end=0", "degree=abc"], "poly: "),
    (["plot", "poly", "start=1", "end=0", "degree=nan"], "poly: "),
    (["plot", "exp", "start=0", "end=1"], "exp: "),
    (["plot", "sgdr", "max=1", "min=0.1", "period=0"], "sgdr: "),
    (["plot", "sgdr", "max=1", "min=0.1", "period=10", "mult=abc"], "sgdr: "),
    (["plot", "sgdr", "max=1", "min=0.1", "periods=10"], "periods: unknown argument of fastcb.schedules.sgdr"),
    (["plot", "cos", "start=1", "--out", "{tmp}/x.jpg"], "--out: expected a .png, .svg, .pdf file, got"),
    (["plot", "cos", "start=1", "--out", "{tmp}/noext"], "--out: expected a .png, .svg, .pdf file"),
    (["plot", "cos", "start=1", "--out", "{tmp}/file/x.png"], "--out: '{tmp}/file' is a file, not a folder"),
    (["plot", "cos", "start=1", "--out", "/proc/fastcb/x.png"], "--out: can't write into '/proc/fastcb'"),
    (["plot", "cos", "start=1", "--out", "{tmp}/d.png"], "--out: '{tmp}/d.png' is a folder"),
    (["plot", "cos", "start=1", "--steps", "0"], "--steps: expected an int in [1, 1e+07], got '0'"),
    (["plot", "cos", "start=1", "--steps", "-4"], "--steps: "),
    (["plot", "cos", "start=1", "--steps", "1e12"], "--steps: "),
    (["plot", "cos", "start=1", "--steps", "100000000000"], "--steps: "),
    (["plot", "cos", "start=1", "--rows", "0"], "--rows: "),
    (["plot", "cos", "start=1", "--rows", "x"], "--rows: "),
    (["plot", "OneCycleLR", "max_lr=0.1", "total_steps=10", "--groups", "0"], "--groups: "),
    (["plot", "OneCycleLR", "max_lr=0.1", "total_steps=10", "--groups", "5000"], "--groups: "),
    (["plot", "OneCycleLR", "max_lr=0.1", "total_steps=10", "--lr", "inf"], "--lr: "),
    (["plot", "OneCycleLR", "max_lr=0.1", "total_steps=10", "--lr", "-0.1"], "--lr: "),
    (["plot", "OneCycleLR", "max_lr=0.1", "total_steps=10", "--optimizer", "lion"], "--optimizer: invalid choice"),
    (["plot", "--torch", "get_cosine_schedule_with_warmup", "num_warmup_steps=1", "num_training_steps=9"],
     "SCHEDULE: get_cosine_schedule_with_warmup is not in torch.optim.lr_scheduler"),
]
OTHER = [
    (["train"], "invalid choice: 'train'"),
    (["--version-nope"], "unrecognized arguments"),
    (["bench", "--fast"], "unrecognized arguments: --fast"),
    (["bench", "--quick=1"], "--quick: ignored explicit argument"),
    (["bench", "x"], "unrecognized arguments: x"),
]
CASES = DEMO + PLOT + OTHER


def test_there_are_enough_cases():
    assert len(CASES) >= 80


@pytest.mark.parametrize("argv, message", CASES, ids=[" ".join(a)[:60] for a, _ in CASES])
def test_bad_argument_exits_2_with_one_line(tmp_path, capsys, argv, message):
    (tmp_path / "file").write_text("not a folder")
    (tmp_path / "d.png").mkdir()
    before = sorted(p.name for p in tmp_path.iterdir())
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1 and err.endswith("\n"), err
    assert err.startswith("fastcb") and ": error: " in err
    assert message.replace("{tmp}", str(tmp_path)) in err
    assert sorted(p.name for p in tmp_path.iterdir()) == before, "no work done, nothing written"
