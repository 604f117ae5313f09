"""sealscope for test suites: a typed client of the REST API (sealscope.client, sync and
async), a pytest plugin (sealscope.pytest_plugin) and the CI commands (sealscope.ci).
None of it needs the compiled engine, except running one in-process (sealscope.local)."""

from sealscope._wire import SealscopeError, SseEvent

__all__ = ["SealscopeError", "SseEvent"]
