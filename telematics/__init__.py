"""Telematics: position decoders, ingestion and vehicle progress along the route."""
