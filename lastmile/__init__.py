"""The command line (``lastmile``), the demo and the report: what an operator runs."""
