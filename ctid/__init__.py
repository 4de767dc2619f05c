"""ctid: a call-center CTI and contact-routing server for Asterisk."""

__version__ = "0.1.0"
