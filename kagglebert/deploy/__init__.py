"""Packaging for Kaggle: the wheel dataset an internet-off notebook installs from, and exports of finished runs."""
