"""Pieces of the Rasa project that run inside Rasa's own interpreter (Python 3.10).

Rasa imports this package when it loads the stores named in endpoints.yml, i.e. in every
`rasa run`; that is where our measured speed-up is installed.
"""

from bot import speedups

speedups.install()
