"""``python -m robofeedback.cli``: the ``robofeedback`` command."""

import sys

from robofeedback.cli import main

sys.exit(main())
