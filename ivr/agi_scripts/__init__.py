"""Classic (non-network) AGI entry points, for sites that run AGI scripts locally."""
