"""Measuring the ETA core against ground truth: scenarios (what really happened), GPS noise,
and the replay that runs the live code on a simulated clock and scores it."""
