"""Reports: PNG plots and a self-contained report.html in a run folder."""
