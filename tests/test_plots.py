"""Figures say what they show: titles, labelled axes, legends, the suggested lr with its value;
files are written in the format their extension names, or refused."""

import pytest
from loop_helpers import tiny_learner

from fastcb import lr_scheduler
from fastcb.preview import one_cycle_trace, plot_schedule, plot_trace, save_schedule

MAGIC = {".png": b"\x89PNG\r\n\x1a\n", ".svg": b"<?xml", ".pdf": b"%PDF"}


@pytest.mark.parametrize("suffix", sorted(MAGIC))
def test_save_schedule_honours_the_extension(tmp_path, suffix):
    path = save_schedule(tmp_path / f"s{suffix.upper()}", lr_scheduler.OneCycleLR, 20, max_lr=0.1, total_steps=20)
    assert path.read_bytes().startswith(MAGIC[suffix])


@pytest.mark.parametrize("name", ["s.jpg", "s", "s.png.txt", "s.eps"])
def test_other_extensions_are_refused_before_any_work(tmp_path, name):
    with pytest.raises(ValueError, match=r"^path: expected a \.png, \.svg or \.pdf file"):
        save_schedule(tmp_path / "sub" / name, lr_scheduler.OneCycleLR, 20, max_lr=0.1, total_steps=20)
    assert not (tmp_path / "sub").exists()


def _texts(ax):
    legend = ax.get_legend()
    return ax.get_title(), ax.get_xlabel(), ax.get_ylabel(), [t.get_text() for t in legend.get_texts()]


def test_schedule_figures_have_titles_labels_and_legends():
    fig = plot_schedule(lr_scheduler.OneCycleLR, 30, max_lr=0.1, total_steps=30, n_groups=2)
    (title, x, y, legend), (title2, _, y2, legend2) = map(_texts, fig.axes)
    assert title == "OneCycleLR" and x == "step" and y == "learning rate"
    assert legend == ["learning rate, group 0", "learning rate, group 1"]
    assert title2 == "Momentum per step" and y2 == "momentum" and len(legend2) == 2
    title, _, _, legend = _texts(plot_trace(one_cycle_trace(10, 0.01)).axes[0])
    assert title == "Learning rate per step" and legend == ["learning rate"]


def test_recorder_plots_are_titled_and_the_suggestion_labelled_with_its_value(tmp_path):
    learn = tiny_learner(tmp_path, n_train=400, bs=4)
    learn.lr_find(num_it=60)
    fig = learn.recorder.plot(suggestion=True, return_fig=True)
    title, x, y, legend = _texts(fig.axes[0])
    assert title == "Learning-rate finder" and "Learning Rate" in x and y == "Loss"
    assert legend[0] == "smoothed training loss"
    assert legend[1] == f"suggested lr = {learn.recorder.min_grad_lr:.2e} (steepest descent)"
    learn.fit_one_cycle(1, 0.01)
    for fig in (learn.recorder.plot_lr(show_moms=True, return_fig=True),
                learn.recorder.plot_losses(return_fig=True)):
        for ax in fig.axes:
            title, x, y, legend = _texts(ax)
            assert title and x and y and legend
