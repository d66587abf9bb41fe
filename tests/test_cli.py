"""The `fastcb` command: its sub-commands run and write their files; bad arguments exit 2."""

import subprocess
import sys

import pytest
import torch

from fastcb.cli import main

PNG = b"\x89PNG\r\n\x1a\n"
TINY_DEMO = ["demo", "--epochs", "2", "--n-train", "256", "--n-valid", "64", "--bs", "32", "--num-it", "12"]


def test_demo_trains_and_writes_its_plots(tmp_path, capsys):
    assert main([*TINY_DEMO, "--out", str(tmp_path / "demo")]) == 0
    out = capsys.readouterr().out
    assert "suggested learning rate" in out
    assert "train_loss" in out and "valid_loss" in out and "accuracy" in out  # the per-epoch table
    assert f"Plots written to {tmp_path / 'demo'}" in out
    for name in ("lr_find.png", "schedule.png", "losses.png", "metrics.png"):
        assert (tmp_path / "demo" / name).read_bytes()[:8] == PNG, name
    assert (tmp_path / "demo" / "history.csv").read_text().count("\n") == 1 + 2  # header, two epochs


def test_demo_with_a_given_lr_skips_the_finder(tmp_path, capsys):
    assert main([*TINY_DEMO, "--lr", "0.01", "--quiet", "--out", str(tmp_path)]) == 0
    assert capsys.readouterr().out == f"Plots written to {tmp_path}\n"
    assert not (tmp_path / "lr_find.png").exists() and (tmp_path / "schedule.png").exists()


def test_demo_lists_only_the_files_it_wrote(tmp_path, capsys):
    (tmp_path / "lr_find.png").write_bytes(PNG)  # left over from an earlier run
    assert main([*TINY_DEMO, "--lr", "0.01", "--out", str(tmp_path)]) == 0
    assert "lr_find.png" not in capsys.readouterr().out


@pytest.mark.parametrize("argv, first_line", [
    (["OneCycleLR", "max_lr=0.1", "total_steps=40", "--groups", "2"], "fastcb.lr_scheduler.OneCycleLR over 40 steps"),
    (["CosineAnnealingLR", "T_max=10", "--torch", "--steps", "30"],
     "torch.optim.lr_scheduler.CosineAnnealingLR over 30"),
    (["get_cosine_schedule_with_warmup", "num_warmup_steps=5", "num_training_steps=50"], "over 50 steps"),
    (["one-cycle", "lr_max=0.01", "pct_start=0.25"], "fastai one-cycle policy over 100 steps"),
    (["sgdr", "max=1", "min=0.1", "period=10", "mult=2"], "fastcb.schedules.sgdr over 100 steps"),
    (["poly", "start=1", "end=0", "degree=0.5", "--steps", "20"], "annealing_poly over 20 steps"),
])
def test_plot_writes_a_png_and_a_table(tmp_path, capsys, argv, first_line):
    png = tmp_path / "out.png"
    assert main(["plot", *argv, "--out", str(png), "--rows", "4"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(first_line) or first_line in lines[0]
    assert lines[1].split()[:2] == ["step", "lr"]
    assert len(lines) == 1 + 1 + 4 + 1
    assert png.read_bytes()[:8] == PNG


def test_plot_table_values_are_the_schedules(tmp_path, capsys):
    main(["plot", "linear", "start=1", "end=0", "--steps", "5", "--rows", "5", "--out", str(tmp_path / "l.png")])
    rows = capsys.readouterr().out.splitlines()[2:7]
    assert [float(r.split()[1]) for r in rows] == [1.0, 0.75, 0.5, 0.25, 0.0]


def test_plot_takes_its_arguments_after_the_options_too(tmp_path, capsys):
    main(["plot", "linear", "--steps", "5", "--rows", "5", "start=1", "end=0", "--out", str(tmp_path / "l.png")])
    rows = capsys.readouterr().out.splitlines()[2:7]
    assert [float(r.split()[1]) for r in rows] == [1.0, 0.75, 0.5, 0.25, 0.0]


@pytest.mark.parametrize("argv, message", [
    (["plot", "linear", "--steps", "5", "start"], "expected KEY=VALUE, got 'start'"),
    (["demo", "--bogus"], "unrecognized arguments: --bogus"),
    (["plot", "linear", "--steps", "5", "start=1", "--bogus"], "unrecognized arguments: "),
    (["plot", "SchedulerType"], "unknown schedule 'SchedulerType'"),
    (["plot", "DeviceSchedule"], "unknown schedule 'DeviceSchedule'"),
])
def test_plot_argument_errors_are_one_line(capsys, argv, message):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_bench_prints_ratios(capsys):
    assert main(["bench", "--quick"]) == 0
    out = capsys.readouterr().out
    for row in ("Stepper.step()", "SmoothenValue.add_value", "OneCycleLR.step(), 10 groups", "one-cycle schedule"):
        assert row in out
    assert out.count("x\n") >= 10  # a speed-up on every row but the floor


@pytest.mark.skipif(torch.cuda.is_available(), reason="the message is for machines without CUDA")
def test_demo_on_cuda_without_a_gpu_says_so(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["demo", "--device", "cuda"])
    assert exit_.value.code == 2
    assert "no CUDA device here" in capsys.readouterr().err


@pytest.mark.parametrize("command", [[], ["demo"], ["plot"], ["bench"]])
def test_help_everywhere(capsys, command):
    with pytest.raises(SystemExit) as exit_:
        main([*command, "--help"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.startswith("usage: fastcb")


def test_no_command_shows_a_schedule_table_and_the_core_speed(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    assert "batch          lr  momentum" in out and "    0   4.000e-04    0.9500" in out
    assert "    3   1.000e-02    0.8500" in out, "the one-cycle peak after int(10 * 0.3) batches"
    for row in ("annealing_cos(s, e, p)", "Stepper.step()", "SmoothenValue.add_value(v)"):
        assert row in out
    assert out.count("x)") == 3


def test_python_dash_m():
    done = subprocess.run([sys.executable, "-m", "fastcb", "plot", "--help"], capture_output=True, text=True)
    assert done.returncode == 0 and "SCHEDULE is one of" in done.stdout


def test_ctrl_c_exits_130_with_one_line_and_writes_what_was_finished(tmp_path):
    import os
    import signal
    import time

    out = tmp_path / "demo"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    argv = ["fastcb", "demo", "--epochs", "10000", "--lr", "0.01", "--n-train", "512", "--out", str(out)]
    # A process started in the background by a shell without job control (as CI may start the test run)
    # inherits SIGINT ignored, and Python keeps an inherited SIG_IGN: Ctrl-C would never arrive. The child
    # takes Python's own Ctrl-C handler first, as it has when started from a terminal.
    as_from_a_terminal = ("import runpy, signal, sys\n"
                          "signal.signal(signal.SIGINT, signal.default_int_handler)\n"
                          f"sys.argv = {argv!r}\n"
                          "runpy.run_module('fastcb', run_name='__main__', alter_sys=True)\n")
    # the child writes into files, not pipes: nothing it prints can block it, and nothing is left open
    with open(tmp_path / "stdout", "w+") as out_file, open(tmp_path / "stderr", "w+") as err_file:
        proc = subprocess.Popen([sys.executable, "-c", as_from_a_terminal],
                                stdout=out_file, stderr=err_file, text=True, env=env)
        try:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and proc.poll() is None:  # wait for two finished epochs
                if (out / "history.csv").exists() and len((out / "history.csv").read_text().splitlines()) >= 3:
                    break
                time.sleep(0.2)
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=240)
        finally:
            proc.kill()
            proc.wait()
        out_file.seek(0)
        err_file.seek(0)
        stdout, stderr = out_file.read(), err_file.read()
    assert proc.returncode == 130, stderr
    assert stderr.count("\n") == 1 and "Traceback" not in stderr
    assert stderr.startswith("fastcb demo: interrupted; wrote ")
    assert stdout.endswith("\n"), "the bar is closed on its own line"
    rows = (out / "history.csv").read_text().splitlines()
    assert rows[0].startswith("epoch,train_loss,valid_loss,accuracy,error_rate") and len(rows) >= 3
    for name in ("schedule.png", "losses.png", "metrics.png"):
        assert (out / name).read_bytes()[:8] == PNG, name
        assert name in stderr


def test_help_and_argument_errors_do_not_import_torch():
    code = ("import sys\nfrom fastcb.cli import main\n"
            "for argv in (['--help'], ['demo', '--help'], ['demo', '--lr', 'inf'], ['plot', 'x', '--steps', '0']):\n"
            "    try:\n        main(argv)\n    except SystemExit:\n        pass\n"
            "print(sorted(m for m in ('torch', 'numpy', 'matplotlib') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.stdout.splitlines()[-1] == "[]", done.stdout + done.stderr


@pytest.mark.parametrize("suffix, magic", [(".png", PNG), (".svg", b"<?xml"), (".pdf", b"%PDF")])
def test_plot_writes_the_format_its_extension_names(tmp_path, capsys, suffix, magic):
    path = tmp_path / f"cos{suffix}"
    assert main(["plot", "cos", "start=1", "end=0", "--out", str(path)]) == 0
    assert path.read_bytes().startswith(magic)
