"""Domain types shared by every room: plain frozen dataclasses, no I/O, no frameworks."""
