"""Verifiers: anything that scores. Judges, reward models, PRMs, critics and programmatic checks all
present the same two shapes, so every protocol can be driven by any of them."""

from referee.verifiers.base import Comparison, PairwiseVerifier, PointwiseVerifier, Score, StepVerifier, is_step_verifier

__all__ = ["Comparison", "PairwiseVerifier", "PointwiseVerifier", "Score", "StepVerifier", "is_step_verifier"]
