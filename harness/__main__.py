"""`python -m harness` is the `faultline` command."""

import sys

from harness.cli.main import main

sys.exit(main())
