"""Referee's supervisors inside other frameworks' loops (Inspect AI, TRL), each behind an optional extra."""
