"""The ground floor shared by our processes: settings (the only reader of the environment),
database, logging, conversation records, deliveries, sender ids, background tasks. Imports
nothing else of ours."""
