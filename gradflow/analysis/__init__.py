"""What a pass means: statistics, the report and its verdict."""
