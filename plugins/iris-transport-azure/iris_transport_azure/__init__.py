"""Azure Service Bus support for iris-transport, and a Service Bus emulator for tests."""
