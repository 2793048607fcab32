"""Fault tests: the service, its broker, its database and its SMTP server are real processes
(tests/fault_procs.py), stopped, killed and restarted while fixes flow; every claim is checked
by counting what was published, accepted, stored and delivered. One module per fault.

Each test prints its measured figures as ``[faults] ...`` lines (``pytest -m faults -rA``).
"""
