"""Scoring named systems per fold on a table's test rows, the typed results they produce, table statistics
and the text-path comparison."""
