"""Machine-generated-text detector: small-LM token statistics + stylometry -> calibrated classifier."""
