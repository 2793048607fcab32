"""Ground-truth delivery days simulated with SUMO on the Monaco OSM extract, for ETA accuracy.

The generator (``python -m bench.scenarios.generate``) is for offline use only; the kept
scenario folders beside this file are test data. See README.md here.
"""
