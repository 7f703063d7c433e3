"""Building blocks of the weak-to-strong experiment (``referee.protocols.weak_to_strong``).

``data`` loads classification tasks and splits them, ``features`` turns texts into fixed features (a
bag of words, a frozen backbone's hidden states), ``models`` the ladder of classifiers and their training
loop, ``losses`` the naive and auxiliary-confidence losses, ``metrics`` PGR and imitation.
"""
