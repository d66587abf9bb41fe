"""`python -m fastcb`: the `fastcb` command."""

import sys

from .cli import main

sys.exit(main())
