"""The public gateway: channel connectors (verify → parse → resolve tenant → hand off)."""
