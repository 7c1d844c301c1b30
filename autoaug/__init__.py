"""autoaug."""
