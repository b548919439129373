"""Pieces shared by the Python 3.11 processes (actions, gateway, admin): settings, database, logging."""
