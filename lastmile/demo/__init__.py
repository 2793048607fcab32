"""``lastmile demo``: a live delivery day on a real road network, end to end."""
