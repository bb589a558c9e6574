"""The claims ledger: ``python -m collapse.claims`` checks each claim of the seed paper against our theory and
simulations (and the real-image results of ``paper_repro`` when they exist)."""

from collapse.claims.ledger import CLAIMS, Entry, build_ledger

__all__ = ["CLAIMS", "Entry", "build_ledger"]
