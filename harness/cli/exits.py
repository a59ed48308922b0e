"""Exit codes of every `faultline` subcommand, and the usage error that maps to BAD_INPUT.

A module of its own so that the subcommands and the parser that registers them do not
import each other.
"""

# Exit codes, documented in docs/checking.md.
VALID = 0
INVALID = 1
UNKNOWN = 2
BAD_INPUT = 3
LIVENESS = 4
COULD_NOT_RUN = 5
INTERNAL_ERROR = 6     # a bug in faultline (a checker crashed): never a verdict
INTERRUPTED = 130


class UsageError(Exception):
    """A mistake in how faultline was called: reported in one line, exit BAD_INPUT."""
