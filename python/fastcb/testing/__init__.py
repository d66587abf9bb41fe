"""Property-test schedules and callbacks with Hypothesis, in a few lines.

    from hypothesis import given
    from fastcb.testing import anneal_cases, check_annealing

    @given(anneal_cases())
    def test_annealing(case):
        check_annealing(*case)          # finite, within, endpoints, monotone: one compiled call

Strategies draw annealing functions and valid arguments, `Stepper`s, composable schedules,
one-cycle configurations, configurations of every `fastcb.lr_scheduler` class and
optimizers with several param groups. Checks raise `AssertionError`s that say what broke,
where: values finite and within the endpoints, monotone, endpoints hit, continuous at phase
joins, resume-equivalent through `state_dict`, equal to torch's twin, and a user callback
keeping the callback handler's contract.
"""

from . import checks, composite, contract, properties, schedulers, strategies
from .checks import *  # noqa: F403
from .composite import *  # noqa: F403
from .contract import *  # noqa: F403
from .properties import *  # noqa: F403
from .schedulers import *  # noqa: F403
from .strategies import *  # noqa: F403

__all__ = [
    *strategies.__all__,
    *schedulers.__all__,
    *checks.__all__,
    *properties.__all__,
    *composite.__all__,
    *contract.__all__,
]
