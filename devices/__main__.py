"""``python -m devices serial --port /dev/ttyUSB0 …``: the serial bridge on its own."""

import sys

from devices.cli import main

sys.exit(main())
