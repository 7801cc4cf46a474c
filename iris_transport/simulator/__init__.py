"""A built-in IRIS simulator, and the demo that runs it.

``IrisSimulator`` consumes ``orders`` and ``gradings`` on the configured
backends and responds on ``events`` and ``results`` as IRIS does::

    from iris_transport.config import load_config
    from iris_transport.simulator import IrisSimulator

    async with IrisSimulator(load_config(), seed=1):
        ...  # submit orders with the client and handle what comes back
"""

from iris_transport.simulator.demo import DemoError, DemoOutcome, example_order_bytes, local_config, run_demo
from iris_transport.simulator.simulator import IrisSimulator, SimulatorDelays

__all__ = [
    "DemoError",
    "DemoOutcome",
    "IrisSimulator",
    "SimulatorDelays",
    "example_order_bytes",
    "local_config",
    "run_demo",
]
