"""``python -m simulators``: run ``outpost simulate`` without the gateway's CLI."""

import sys

from simulators.cli import main

sys.exit(main())
