"""Settings every test shares.

refnode's adapter defaults to the timings a real deployment would use (1 to 2 s election
timeouts); the tests run clusters with refnode's fast ones (0.3 to 0.6 s), as the issue that
chose the realistic defaults allows. Set before anything imports the adapter, and inherited by
every `faultline` process a test starts. A test that needs the realistic ones says so in its
system options.
"""

import os

os.environ.setdefault("FAULTLINE_REFNODE_TIMINGS", "fast")
