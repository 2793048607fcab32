"""Road network, travel-time matrices and route optimisation."""
