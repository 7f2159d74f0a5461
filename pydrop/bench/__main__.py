"""``python -m pydrop.bench``: the same as ``pydrop bench``."""

import sys

from . import main

sys.exit(main())
