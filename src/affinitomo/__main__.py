"""``python -m affinitomo`` = the ``affinitomo`` command."""

import sys

from affinitomo.cli import main

sys.exit(main())
