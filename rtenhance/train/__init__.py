"""Training rtenhance's GTCRN: configuration, data mixing, loss, validation and the loop."""
