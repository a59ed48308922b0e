"""Where the shared history corpora are: ../shared beside the checkout, or $FAULTLINE_SHARED.

The corpora live outside the project (they are other projects' files); tests that need them
skip with a message saying where they looked.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("FAULTLINE_SHARED", REPO.parent / "shared"))
CORPORA = SHARED / "corpora"
MANIFEST = CORPORA / "manifest.json"

needs_corpora = pytest.mark.skipif(
    not CORPORA.is_dir(),
    reason=f"history corpora not found at {CORPORA} (set FAULTLINE_SHARED to the shared dir)")


def manifest_entries() -> list[dict]:
    """The manifest's histories, or [] where the corpora are absent."""
    if not MANIFEST.is_file():
        return []
    return json.loads(MANIFEST.read_text())["histories"]
