"""Verifiers: anything that scores. Judges, reward models, PRMs, critics and programmatic checks all
present the same two shapes, so every protocol can be driven by any of them."""

from referee.verifiers.base import PairwiseVerifier, PointwiseVerifier, Score, Comparison

__all__ = ["PairwiseVerifier", "PointwiseVerifier", "Score", "Comparison"]
