"""dataworth: how much is data worth? Reproducible scaling-law and augmentation exchange-rate studies."""

__version__ = "0.1.0"
