"""clusterkit: bring up self-hosted GPU training clusters and keep them healthy."""

__version__ = "0.1.0"
