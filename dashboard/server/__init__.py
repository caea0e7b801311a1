"""Running the service: health probes, request limits, metrics, maintenance, the embedded demo services."""
