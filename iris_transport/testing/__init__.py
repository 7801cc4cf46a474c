"""Tools for testing iris-transport backends.

``TransportConformance`` is the conformance suite every backend runs: a
pytest base class whose subclass supplies a ``ConformanceBackend``. See
``docs/conformance.md``. This package imports pytest, so import it from tests
only.
"""

import pytest

pytest.register_assert_rewrite("iris_transport.testing.conformance")

from iris_transport.testing.conformance import (  # noqa: E402
    ConformanceBackend,
    TransportConformance,
    TransportFactory,
)
from iris_transport.testing.peers import require_peer, running_in_ci  # noqa: E402

__all__ = ["ConformanceBackend", "TransportConformance", "TransportFactory", "require_peer", "running_in_ci"]
