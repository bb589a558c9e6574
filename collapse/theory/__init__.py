"""Theory: our mode-level model of class collapse, its population objective, and the propositions T0-T5.

Read ``docs/theory.md`` for the statements and how the model differs from what the seed paper says.
"""

from collapse.theory.model import ModeModel
from collapse.theory.population import MCEstimate, PopulationOutput, build_loss, monte_carlo_loss, population_loss

__all__ = ["MCEstimate", "ModeModel", "PopulationOutput", "build_loss", "monte_carlo_loss", "population_loss"]
