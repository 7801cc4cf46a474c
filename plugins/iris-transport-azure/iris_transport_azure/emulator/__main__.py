"""Run the Service Bus emulator: ``python -m iris_transport_azure.emulator --port 5672 --queue orders``."""

from iris_transport_azure.emulator.cli import servicebus_command

if __name__ == "__main__":
    servicebus_command(prog_name="python -m iris_transport_azure.emulator")
