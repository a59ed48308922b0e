"""`python -m harness` is the `faultline` command."""

import sys

from harness.cli import main

sys.exit(main())
