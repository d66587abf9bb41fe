"""`MixedPrecision`: fastai v1's mixed-precision callback, rebuilt on `torch.amp` (autocast + GradScaler)."""

import torch
from torch import nn

from ..callback import check_state_number
from ..errors import StateError
from ..learner_callback import LearnerCallback

__all__ = ["MixedPrecision"]


class MixedPrecision(LearnerCallback):
    """Run the forward pass under autocast (`dtype`: float16 on GPU, bfloat16 on CPU by default), compute
    the loss in float32 (`loss_fp32`) and scale it: dynamically (a `GradScaler` starting at `loss_scale`,
    growing after `max_noskip` clean steps, capped at `max_scale`) or statically. `clip` clips the
    unscaled gradients. `flat_master` is accepted for compatibility: torch.amp keeps fp32 weights."""

    _order = 999  # after anything else that changes the loss

    def __init__(self, learn, loss_scale=None, max_noskip=1000, dynamic=True, clip=None, flat_master=False,
                 max_scale=2**24, loss_fp32=True, dtype=None):
        super().__init__(learn)
        self.dynamic, self.max_noskip, self.clip, self.max_scale = dynamic, max_noskip, clip, max_scale
        self.flat_master, self.loss_fp32 = flat_master, loss_fp32
        self.loss_scale = float(loss_scale if loss_scale is not None else 2**16 if dynamic else 512)
        if self.loss_scale <= 0:
            raise ValueError(f"loss_scale: expected a positive number, got {loss_scale!r}")
        self.device_type = torch.device(learn.data.device).type
        self.dtype = dtype or (torch.bfloat16 if self.device_type == "cpu" else torch.float16)
        self.scaler, self._autocast = None, None

    def on_train_begin(self, **kwargs):
        """Create the gradient scaler."""
        if self.dynamic:
            self.scaler = torch.amp.GradScaler(self.device_type, init_scale=self.loss_scale,
                                               growth_interval=self.max_noskip)

    def state_dict(self):
        """The dynamic loss scale and its count of clean steps (the rest is configuration)."""
        if self.scaler is None or not self.scaler.is_enabled():
            return {}
        sd = self.scaler.state_dict()
        return {"scale": float(sd["scale"]), "growth_tracker": int(sd["_growth_tracker"])}

    def check_state_dict(self, state):
        """`StateError` unless `state` is a positive finite scale and a non-negative count."""
        if not isinstance(state, dict) or set(state) - {"scale", "growth_tracker"}:
            raise StateError(f"state: expected the keys ['growth_tracker', 'scale'], got {state!r:.80}")
        if state and (self.scaler is None or not self.scaler.is_enabled()):
            raise StateError("state: a loss scale, but this MixedPrecision has no dynamic scaler")
        if "scale" in state:
            check_state_number("scale", state["scale"], finite=True, minimum=0)
        if "growth_tracker" in state:
            check_state_number("growth_tracker", state["growth_tracker"], integer=True, minimum=0)

    def load_state_dict(self, state):
        """Continue the loss scaling from `state` (checked first)."""
        self.check_state_dict(state)
        if state:
            sd = self.scaler.state_dict()
            self.scaler.load_state_dict({**sd, "scale": float(state.get("scale", sd["scale"])),
                                         "_growth_tracker": int(state.get("growth_tracker", sd["_growth_tracker"]))})

    def on_batch_begin(self, **kwargs):
        """Enter autocast for the forward pass."""
        self._autocast = torch.autocast(self.device_type, dtype=self.dtype)
        self._autocast.__enter__()

    def _leave(self):
        if self._autocast is not None:
            self._autocast.__exit__(None, None, None)
            self._autocast = None

    def on_loss_begin(self, last_output, **kwargs):
        """Leave autocast; the loss is computed on a float32 output."""
        self._leave()
        if self.loss_fp32:
            return {"last_output": _to_float(last_output)}

    def on_backward_begin(self, last_loss, **kwargs):
        """Scale the loss so that small gradients survive half precision."""
        scaled = self.scaler.scale(last_loss) if self.dynamic else last_loss * self.loss_scale
        return {"last_loss": scaled}

    def on_backward_end(self, **kwargs):
        """Unscale (and clip) the gradients; with a dynamic scaler, step through it (skipping on overflow)."""
        opt = self.learn.opt
        if not self.dynamic:
            grads = [p.grad for p in self.learn.model.parameters() if p.grad is not None]
            if grads:
                torch._foreach_div_(grads, self.loss_scale)
            self._clip()
            return None
        self.scaler.unscale_(opt)
        self._clip()
        self.scaler.step(opt)
        self.scaler.update()
        scale = getattr(self.scaler, "_scale", None)
        if scale is not None:
            scale.clamp_(max=self.max_scale)
        return {"skip_step": True}

    def _clip(self):
        if self.clip is not None:
            nn.utils.clip_grad_norm_(self.learn.model.parameters(), self.clip)

    def on_train_end(self, **kwargs):
        """Make sure autocast is left even when the forward pass failed."""
        self._leave()


def _to_float(x):
    if isinstance(x, torch.Tensor):
        return x.float() if x.is_floating_point() else x
    if isinstance(x, (list, tuple)):
        return type(x)(_to_float(o) for o in x)
    return x
