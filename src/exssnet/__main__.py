"""`python -m exssnet` runs the command line."""

import sys

from exssnet.cli import main

sys.exit(main())
