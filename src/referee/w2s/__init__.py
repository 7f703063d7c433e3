"""Weak-to-strong generalisation: weak supervisors, strong students, performance gap recovered.

``data`` loads classification tasks, ``models`` the ladder of classifiers, ``losses`` the naive and
auxiliary-confidence losses, ``metrics`` PGR and imitation, ``plots`` the figures, ``protocol`` the
experiment (registered as the ``weak_to_strong`` protocol).
"""
