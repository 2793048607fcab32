"""Live ETA core: remaining-stop arrival estimates and delay detection (pure functions)."""
