"""``python -m pepr_utils.cli``: the ``pepr`` command without its console script."""

import sys

from .command import main

sys.exit(main())
