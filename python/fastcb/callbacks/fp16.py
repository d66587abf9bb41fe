"""`MixedPrecision`: fastai v1's mixed-precision callback, rebuilt on `torch.amp` (autocast + GradScaler)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from .._utils import check_number
from ..callback import check_state_number
from ..errors import StateError
from ..learner_callback import LearnerCallback

if TYPE_CHECKING:
    from ..learner import Learner

__all__ = ["MixedPrecision"]


class MixedPrecision(LearnerCallback):
    """Run the forward pass under autocast (`dtype`: float16 on GPU, bfloat16 on CPU by default), compute
    the loss in float32 (`loss_fp32`) and scale it: dynamically (a `GradScaler` starting at `loss_scale`,
    growing after `max_noskip` clean steps, capped at `max_scale`) or statically. `clip` clips the
    unscaled gradients. `flat_master` is accepted for compatibility: torch.amp keeps fp32 weights."""

    _order = 999  # after anything else that changes the loss

    def __init__(self, learn: Learner, loss_scale: float | None = None, max_noskip: int = 1000, dynamic: bool = True,
                 clip: float | None = None, flat_master: bool = False, max_scale: float = 2**24,
                 loss_fp32: bool = True, dtype: torch.dtype | None = None) -> None:
        super().__init__(learn)
        self.dynamic, self.max_noskip, self.clip, self.max_scale = dynamic, max_noskip, clip, max_scale
        self.flat_master, self.loss_fp32 = flat_master, loss_fp32
        self.loss_scale = check_number("loss_scale", float(loss_scale if loss_scale is not None else 2**16 if dynamic
                                                           else 512), positive=True, finite=False)
        self.device_type = torch.device(learn.data.device).type
        self.dtype = dtype or (torch.bfloat16 if self.device_type == "cpu" else torch.float16)
        # (the scaler exists from train begin when `dynamic`: the hooks that use it run after)
        self.scaler: torch.amp.GradScaler | None = None
        self._autocast: torch.autocast | None = None

    def on_train_begin(self, **kwargs: Any) -> None:
        """Create the gradient scaler."""
        if self.dynamic:
            self.scaler = torch.amp.GradScaler(self.device_type, init_scale=self.loss_scale,
                                               growth_interval=self.max_noskip)

    def state_dict(self) -> dict[str, Any]:
        """The dynamic loss scale and its count of clean steps (the rest is configuration)."""
        if self.scaler is None or not self.scaler.is_enabled():
            return {}
        sd = self.scaler.state_dict()
        return {"scale": float(sd["scale"]), "growth_tracker": int(sd["_growth_tracker"])}

    def check_state_dict(self, state: Any) -> None:
        """`StateError` unless `state` is a positive finite scale and a non-negative count."""
        if not isinstance(state, dict) or set(state) - {"scale", "growth_tracker"}:
            raise StateError(f"state: expected the keys ['growth_tracker', 'scale'], got {state!r:.80}")
        if state and (self.scaler is None or not self.scaler.is_enabled()):
            raise StateError("state: a loss scale, but this MixedPrecision has no dynamic scaler")
        if "scale" in state:
            check_state_number("scale", state["scale"], finite=True, minimum=0)
        if "growth_tracker" in state:
            check_state_number("growth_tracker", state["growth_tracker"], integer=True, minimum=0)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue the loss scaling from `state` (checked first)."""
        self.check_state_dict(state)
        if state:
            scaler = self.scaler
            assert scaler is not None  # check_state_dict refused a state without a scaler
            sd = scaler.state_dict()
            scaler.load_state_dict({**sd, "scale": float(state.get("scale", sd["scale"])),
                                    "_growth_tracker": int(state.get("growth_tracker", sd["_growth_tracker"]))})

    def on_batch_begin(self, **kwargs: Any) -> None:
        """Enter autocast for the forward pass."""
        self._autocast = torch.autocast(self.device_type, dtype=self.dtype)
        self._autocast.__enter__()

    def _leave(self) -> None:
        if self._autocast is not None:
            self._autocast.__exit__(None, None, None)
            self._autocast = None

    def on_loss_begin(self, last_output: Any, **kwargs: Any) -> dict[str, Any] | None:
        """Leave autocast; the loss is computed on a float32 output."""
        self._leave()
        if self.loss_fp32:
            return {"last_output": _to_float(last_output)}
        return None

    def on_backward_begin(self, last_loss: torch.Tensor, **kwargs: Any) -> dict[str, Any]:
        """Scale the loss so that small gradients survive half precision."""
        scaled = self.scaler.scale(last_loss) if self.dynamic else last_loss * self.loss_scale  # type: ignore[union-attr]
        return {"last_loss": scaled}

    def on_backward_end(self, **kwargs: Any) -> dict[str, Any] | None:
        """Unscale (and clip) the gradients; with a dynamic scaler, step through it (skipping on overflow)."""
        opt = self.learn.opt
        if not self.dynamic:
            grads = [p.grad for p in self.learn.model.parameters() if p.grad is not None]
            if grads:
                torch._foreach_div_(grads, self.loss_scale)
            self._clip()
            return None
        scaler = self.scaler
        assert scaler is not None  # dynamic: made at train begin
        scaler.unscale_(opt)
        self._clip()
        scaler.step(opt)
        scaler.update()
        scale = getattr(scaler, "_scale", None)
        if scale is not None:
            scale.clamp_(max=self.max_scale)
        return {"skip_step": True}

    def _clip(self) -> None:
        if self.clip is not None:
            nn.utils.clip_grad_norm_(self.learn.model.parameters(), self.clip)

    def on_train_end(self, **kwargs: Any) -> None:
        """Make sure autocast is left even when the forward pass failed."""
        self._leave()


def _to_float(x: Any) -> Any:
    if isinstance(x, torch.Tensor):
        return x.float() if x.is_floating_point() else x
    if isinstance(x, (list, tuple)):
        return type(x)(_to_float(o) for o in x)
    return x
