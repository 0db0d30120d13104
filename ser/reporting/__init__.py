"""What a run shows: result objects read back from a run directory, the HTML/Markdown report, figures,
paper tables, the leaderboard and experiment tracking."""
