"""The CPU peak-memory measurement every backend shares."""

from __future__ import annotations

import sys

import pytest

from llmos_hub._memory import peak_rss_bytes, reset_peak_rss


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the peak can only be reset on Linux")
def test_peak_follows_an_allocation_and_resets():
    reset_peak_rss()
    before = peak_rss_bytes()
    block = bytearray(200 * 2**20)
    block[:: 4096] = b"x" * len(block[:: 4096])  # touch every page so it becomes resident
    during = peak_rss_bytes()
    assert during - before >= 150 * 2**20
    del block
    reset_peak_rss()
    assert peak_rss_bytes() < during - 100 * 2**20
