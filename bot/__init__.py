"""Pieces of the Rasa project that run inside Rasa's own interpreter (Python 3.10).

Rasa imports this package when it loads the stores named in endpoints.yml, i.e. in every
`rasa run`; that is where our measured speed-up is installed. Our own 3.11 environment has no
Rasa: its tests import bot.minilm (ONNX Runtime, no Rasa) and skip the speed-up.
"""

from importlib.util import find_spec

if find_spec("rasa") is not None:
    from bot import speedups

    speedups.install()
