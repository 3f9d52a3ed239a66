"""Jobs that combine packages: pictures and maps built from detectors and data."""
