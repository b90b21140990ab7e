"""Ray Tune trainables (one per task kind) and what they compose: data, models, metrics."""
