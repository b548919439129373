"""Custom actions for the Rasa bot (rasa-sdk action server, Python 3.11): one module per flow."""
