"""Tasks: data sets plus how to check an answer. Loaders take paths and name file, line and field on bad input."""
