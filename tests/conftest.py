"""Test-wide settings: hermetic data loading (no network probe)."""

import os

# The suite never reaches for the network: `data.load("mnist")` goes straight to the embedded sample.
os.environ.setdefault("JAXNN_OFFLINE", "1")
# Hermetic compiles: the experiments' persistent compilation cache stays off unless a test turns it on.
os.environ.setdefault("JAXNN_COMPILATION_CACHE", "off")
