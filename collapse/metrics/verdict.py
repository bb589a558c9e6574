r"""A verdict with explicit states, read off an :func:`~collapse.metrics.instrument.instrument_report`.

States, checked in this order:

1. ``degenerate``, of one of two kinds:

   * *whole space shrunk*: the global radius :math:`R` is below the resolution :math:`\alpha/2`, everything
     sits within half a margin (the trivial solution's neighbourhood; ``loss_over_margin`` is quoted);
   * *no class structure*: the class MAP@R of the embedding at the resolution does not exceed its mode-level
     null (the modes dealt to classes at random) by more than ``null_sds`` standard deviations of that null:
     whatever the modes do, the classes are not organised beyond them (e.g. modes kept, classes lost).
2. ``collapsed``: every multi-mode class has one distinct mode (all :math:`\sum_c (K_c-1)` merges made).
3. ``modes kept``: no mode pair of any class is merged.
4. ``partly collapsed``: anything in between, stated as *n of* :math:`\sum_c (K_c-1)` *merges*.

No threshold here is a fixed distance: merging is judged against the loss's own resolution :math:`\alpha/2` in the
report (overlap of the sample clouds is reported there but is not a merge), and class structure against a
permutation null of the same embedding.
"""

from __future__ import annotations

from dataclasses import dataclass

from collapse._validation import check_real

__all__ = ["STATES", "Verdict", "collapse_verdict"]

STATES = ("collapsed", "partly collapsed", "modes kept", "degenerate")


@dataclass(frozen=True)
class Verdict:
    """One of :data:`STATES`, the merges behind it, the kind of degeneracy (``"shrunk"``, ``"no classes"`` or
    ``""``) and a one-line reason."""

    state: str
    merges: int
    merges_possible: int
    reason: str
    kind: str = ""

    def __str__(self) -> str:
        if self.state == "partly collapsed":
            return f"partly collapsed ({self.merges} of {self.merges_possible} merges)"
        if self.state == "degenerate":
            return "degenerate (whole space shrunk)" if self.kind == "shrunk" else "degenerate (no class structure)"
        return self.state

    @property
    def short(self) -> str:
        """A table cell: ``collapsed``, ``partly 4/8``, ``kept``, ``degen:shrunk`` or ``degen:no classes``."""
        if self.state == "degenerate":
            return f"degen:{self.kind}"
        return {"partly collapsed": f"partly {self.merges}/{self.merges_possible}", "modes kept": "kept"}.get(
            self.state, self.state
        )


def collapse_verdict(report: dict[str, float], *, null_sds: float = 3.0) -> Verdict:
    """The state of an embedding from its instrument report (see the module docstring)."""
    null_sds = check_real("null_sds", null_sds, low=0.0)
    missing = [k for k in _KEYS if k not in report]
    if missing:
        raise ValueError(f"report must be an instrument_report (missing keys: {', '.join(missing)})")
    merges, possible = int(round(report["merges"])), int(round(report["merges_possible"]))
    class_map, null = report["class_map_at_r"], report["class_map_at_r_null"]
    bar = null + null_sds * report["class_map_at_r_null_std"]
    if report["global_radius"] < report["resolution"]:
        why = (f"whole space shrunk: radius {report['global_radius']:.2g} < half margin "
               f"{report['resolution']:.2g}, loss/margin {report['loss_over_margin']:.2f}")
        return Verdict("degenerate", merges, possible, why, "shrunk")
    if not class_map > bar:
        why = (f"no class structure: class MAP@R {class_map:.3f} <= {bar:.3f} (modes alone {null:.3f} + "
               f"{null_sds:g} sd); {merges} of {possible} merges")
        return Verdict("degenerate", merges, possible, why, "no classes")
    detail = f"{merges} of {possible} merges; class MAP@R {class_map:.3f} (modes alone {null:.3f})"
    if merges == possible:
        return Verdict("collapsed", merges, possible, detail)
    if merges == 0:
        return Verdict("modes kept", merges, possible, detail)
    return Verdict("partly collapsed", merges, possible, detail)


_KEYS = ("merges", "merges_possible", "class_map_at_r", "class_map_at_r_null", "class_map_at_r_null_std",
         "global_radius", "resolution", "loss_over_margin")
