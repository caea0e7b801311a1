"""Diagnostic bundles: reading a directory / ``.zip`` / ``.tar.gz`` back into snapshots (spec/BUNDLE.md)."""

from __future__ import annotations

from diagnostics.bundle.archive import BundleError, Limits, MemberError, open_bundle
from diagnostics.bundle.reader import BundleResult, read_bundle

__all__ = ["BundleError", "BundleResult", "Limits", "MemberError", "open_bundle", "read_bundle"]
