"""Switchboard: care-center hotline backend on Asterisk 22 over AMI."""

__version__ = "0.1.0"
