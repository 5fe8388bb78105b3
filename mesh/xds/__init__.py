"""xDS protocol pieces: type URLs, the sans-IO ADS state machine, resource translation."""
