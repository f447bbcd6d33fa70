"""Commands of the views: ``report`` (the PDF findings report)."""
from __future__ import annotations
