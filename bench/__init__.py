"""``make bench``: gradflow's speed and memory, each figure a ratio measured side by side."""
