"""Critics of code: critiques that quote the code they find wrong, scored exactly against known bugs."""
