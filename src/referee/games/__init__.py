"""Games between models whose rules need no model: rewards, training pairs and measures."""
