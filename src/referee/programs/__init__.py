"""Programs as data: running untrusted code safely (``sandbox``), code data sets with their tests, and
programmatic bug insertion (tampering) for training and measuring critics."""
